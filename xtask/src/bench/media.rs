//! The media rows: a product image read through a PoP's cache, beside the
//! product page's hit on the same host in the same run, and the time the
//! origin's processor takes per image (the seeded pictures: 1600×1200
//! JPEGs into WebP at 200, 800 and 1600 px).

use super::{Row, measure, unreached_limits};
use crate::platform::{BUCKET, Layout, objects_command};
use crate::up::{Service, secret};
use crate::{pictures, root, state_dir};
use anyhow::{Context, Result};
use std::time::{Duration, Instant};

/// How long processing one picture took, each in turn: in this process,
/// and as the origin runs it, in a child process (spawn included).
pub struct Processing {
    pub millis: Vec<f64>,
    pub child_millis: Vec<f64>,
    /// The AVIF fixtures (640×480) in a child.
    pub avif_millis: Vec<f64>,
}

/// Processes `bytes` the way the origin does: its binary as a child.
fn in_child(bytes: &[u8], content_type: &str) -> Result<()> {
    use media_processing::wire;
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(root().join("target/release/edgeshop-origin"))
        .arg(wire::CHILD_ARG)
        .args(wire::child_args(
            content_type,
            media_processing::Bounds::default(),
        ))
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut stdin = child.stdin.take().context("stdin")?;
    let input = bytes.to_vec();
    let feeder = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output()?;
    feeder
        .join()
        .map_err(|_| anyhow::anyhow!("feeding the child panicked"))??;
    anyhow::ensure!(
        out.status.success(),
        "the processing child failed: {}",
        out.status
    );
    wire::decode(&out.stdout)?.map_err(|reason| anyhow::anyhow!(reason))?;
    Ok(())
}

pub fn run(
    rt: &tokio::runtime::Runtime,
    catalog: &std::path::Path,
    seconds: u64,
    connections: usize,
    product_paths: &[String],
) -> Result<(Vec<Row>, Processing)> {
    let dir = state_dir().join("bench/media");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let layout = Layout {
        root: dir.clone(),
        logs: false,
    };
    let objects = Service::start("objects", objects_command(&layout)?)?;

    // Processing, one picture at a time as the origin does.
    let mut millis = Vec::new();
    for n in 0..pictures::PICTURES {
        let jpeg = media_processing::generate::picture(n);
        let started = Instant::now();
        media_processing::process(&jpeg, "image/jpeg", media_processing::Bounds::default())?;
        millis.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let time = |bytes: &[u8], content_type: &str| -> Result<f64> {
        let started = Instant::now();
        in_child(bytes, content_type)?;
        Ok(started.elapsed().as_secs_f64() * 1000.0)
    };
    let child_millis = (0..pictures::PICTURES)
        .map(|n| time(&media_processing::generate::picture(n), "image/jpeg"))
        .collect::<Result<Vec<_>>>()?;
    let avif_millis = media_processing::generate::AVIF
        .iter()
        .map(|(_, bytes)| time(bytes, "image/avif"))
        .collect::<Result<Vec<_>>>()?;
    let made = pictures::make()?;
    pictures::store(
        &objects.url,
        BUCKET,
        &secret("store_processor_secret")?,
        &made,
    )?;
    let mut cmd = super::bench_host(catalog, &root().join("spin.toml"), &unreached_limits()?)?;
    cmd.env("SPIN_VARIABLE_MEDIA_ORIGIN", &objects.url)
        .env("SPIN_VARIABLE_MEDIA_BUCKET", BUCKET);
    let host = Service::start("edge-host", cmd)?;
    std::thread::sleep(Duration::from_secs(1));
    // The product pages' 800 px pictures, as a product page shows them.
    let images: Vec<String> = made
        .iter()
        .filter_map(|p| {
            p.image["variants"]
                .as_array()?
                .iter()
                .find(|v| v["width"] == 800)?["url"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    let rows = vec![
        measure(
            rt,
            "GET /api/v1/products/{id}  cache hit, beside media",
            &host.url,
            product_paths,
            seconds,
            connections,
        )?,
        measure(
            rt,
            "GET /media/{sha256}.webp  cache hit, 800 px",
            &host.url,
            &images,
            seconds,
            connections,
        )?,
    ];
    Ok((
        rows,
        Processing {
            millis,
            child_millis,
            avif_millis,
        },
    ))
}

/// The processing figures, under the table.
pub fn print(p: &Processing) -> String {
    let stats = |millis: &[f64]| {
        let mut sorted = millis.to_vec();
        sorted.sort_by(f64::total_cmp);
        let median = sorted.get(sorted.len() / 2).copied().unwrap_or_default();
        let max = sorted.last().copied().unwrap_or_default();
        format!(
            "median {median:.0} ms, slowest {max:.0} ms over {}",
            sorted.len()
        )
    };
    format!(
        "\nProcessing one 1600×1200 JPEG into WebP at 200, 800 and 1600 px: {} pictures \
         in this process; {} as the origin runs it, in a child process (spawn included). \
         A 640×480 AVIF (the fixtures: 4:2:0, 4:4:4 10-bit, 12-bit grey, lossless, alpha) \
         into WebP at 200 and 640 px, in a child: {}.\n",
        stats(&p.millis),
        stats(&p.child_millis),
        stats(&p.avif_millis),
    )
}
