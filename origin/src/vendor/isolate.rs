//! Image processing in a child process: the origin runs its own binary
//! again with [`CHILD_ARG`], writes the upload to the child's stdin and
//! reads the outcome (`media_processing::wire`) from its stdout.
//!
//! Why: decoders face hostile bytes, and one of them (rav1d, for AVIF)
//! aborts the process on some damaged files instead of returning an
//! error. In a child, a crash, a runaway loop or a memory blow-up fails
//! that one upload; the origin, its sagas and its connections carry on.
//! The child gets no environment (so none of the origin's secrets), no
//! database, no network of its own, a CPU-time and address-space limit,
//! and a wall-clock deadline after which it is killed.

use media_processing::{Bounds, Variant, wire};
use std::io::{Read, Write};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub use media_processing::wire::CHILD_ARG;
/// Wall-clock time a child may take.
const DEADLINE: Duration = Duration::from_secs(60);
/// CPU seconds a child may use (the kernel stops it past this).
const CPU_SECS: u64 = 60;
/// Address space beyond the decoder's allocation bound: the binary, its
/// libraries, the variants being encoded.
const HEADROOM: u64 = 512 << 20;
/// The most output read from a child: three WebP variants of at most
/// 1600 px are far smaller.
const MAX_OUTPUT: u64 = 64 << 20;

/// Why a child could not be run at all (worth retrying, unlike a file
/// that fails in it).
#[derive(Debug, thiserror::Error)]
#[error("the image processor could not run: {0}")]
pub struct SpawnError(#[from] std::io::Error);

/// Processes `bytes`, uploaded as `content_type`, in a child: the
/// variants, or the reason for the vendor that there are none.
pub async fn process(
    bytes: bytes::Bytes,
    content_type: &str,
    bounds: Bounds,
) -> Result<Result<Vec<Variant>, String>, SpawnError> {
    let mut child = tokio::process::Command::new(std::env::current_exe()?)
        .arg(CHILD_ARG)
        .args(wire::child_args(content_type, bounds))
        .env_clear()
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()?;
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let stdout = child.stdout.take().expect("stdout is piped");
    let run = async {
        // Written while the output is read: neither side waits on a full
        // pipe. A child that dies early closes stdin; that shows in its
        // exit status, not here.
        let feed = async move {
            let _ = stdin.write_all(&bytes).await;
            drop(stdin);
        };
        let mut out = Vec::new();
        let mut limited = stdout.take(MAX_OUTPUT);
        let read = limited.read_to_end(&mut out);
        let ((), read) = tokio::join!(feed, read);
        read?;
        let status = child.wait().await?;
        Ok::<_, std::io::Error>((status, out))
    };
    let (status, out) = match tokio::time::timeout(DEADLINE, run).await {
        Err(_) => {
            // kill_on_drop ends it; say why.
            return Ok(Err(format!(
                "processing the image took longer than {} s; upload a smaller or simpler file",
                DEADLINE.as_secs()
            )));
        }
        Ok(result) => result?,
    };
    if !status.success() {
        tracing::warn!(%status, content_type, "an image processing child failed");
        return Ok(Err(
            "the image's data is damaged and could not be decoded; check that it opens in an image viewer and upload it again"
                .into(),
        ));
    }
    Ok(wire::decode(&out).unwrap_or_else(|e| {
        tracing::error!("{e}");
        Err("the image could not be processed".into())
    }))
}

/// The child's whole life: limits itself, reads the upload from stdin,
/// processes it and writes the outcome to stdout. `args` follow
/// [`CHILD_ARG`]: content type, max width, max height, max pixels, max
/// allocation.
pub fn child_main(args: &[String]) -> ! {
    let code = match child(args) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("image processing child: {e}");
            2
        }
    };
    std::process::exit(code)
}

fn child(args: &[String]) -> Result<(), String> {
    let [content_type, numbers @ ..] = args else {
        return Err("no content type".into());
    };
    let numbers: Vec<u64> = numbers
        .iter()
        .map(|n| n.parse().map_err(|e| format!("{n}: {e}")))
        .collect::<Result<_, _>>()?;
    let [max_width, max_height, max_pixels, max_alloc] = numbers[..] else {
        return Err("expected four bounds".into());
    };
    let bounds = Bounds {
        max_width: u32::try_from(max_width).map_err(|e| e.to_string())?,
        max_height: u32::try_from(max_height).map_err(|e| e.to_string())?,
        max_pixels,
        max_alloc,
    };
    rlimit::setrlimit(rlimit::Resource::CPU, CPU_SECS, CPU_SECS).map_err(|e| e.to_string())?;
    let space = max_alloc.saturating_add(HEADROOM);
    rlimit::setrlimit(rlimit::Resource::AS, space, space).map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    std::io::stdin()
        .take(vendor_core::upload::MAX_UPLOAD_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    let outcome = media_processing::process(&bytes, content_type, bounds);
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(&wire::encode(&outcome))
        .and_then(|()| stdout.flush())
        .map_err(|e| e.to_string())
}
