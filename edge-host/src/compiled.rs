//! Compiled components kept as files and mapped, not read, on load.
//!
//! wasmtime's own cache reads a compiled component into memory: every
//! page of its machine code is resident from the start, in every PoP,
//! whether a request ever runs it or not (the shipped routes' chains are
//! about 35 MB of it). Mapping the file instead (`deserialize_file`)
//! leaves the code on the disk until it runs and lets the PoPs on one
//! machine share the pages, so an idle PoP holds only what it has run.
//!
//! A file is named by the component's bytes and the engine's settings,
//! written under a temporary name and renamed (PoPs sharing the directory
//! never see half a file), and the directory keeps the most recently used
//! [`KEEP`] of them.

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Compiled files kept in the directory: every chain of a few manifests.
pub const KEEP: usize = 64;

const SUFFIX: &str = "cwasm";

/// `bytes` compiled for `engine`: from `dir` when compiled before, else
/// compiled now and kept there. Without a directory, compiled in memory.
pub fn component(engine: &Engine, dir: Option<&Path>, bytes: &[u8]) -> Result<Component> {
    let Some(dir) = dir else {
        return Component::new(engine, bytes).map_err(anyhow::Error::from);
    };
    let path = dir.join(format!("{}.{SUFFIX}", key(engine, bytes)));
    if path.is_file() {
        match map(engine, &path) {
            Ok(component) => {
                // Marks it used, for the pruning below.
                let _ = std::fs::File::options()
                    .append(true)
                    .open(&path)
                    .and_then(|f| f.set_modified(std::time::SystemTime::now()));
                return Ok(component);
            }
            // A file from an older host or a damaged one: compiled again.
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "recompiling a cached component")
            }
        }
    }
    let compiled = engine.precompile_component(bytes)?;
    std::fs::create_dir_all(dir)?;
    let temporary = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("component"),
        std::process::id()
    ));
    std::fs::write(&temporary, &compiled)
        .and_then(|()| std::fs::rename(&temporary, &path))
        .with_context(|| format!("writing {}", path.display()))?;
    prune(dir, KEEP);
    map(engine, &path)
}

/// The file's name: the engine's compatibility (wasmtime version and
/// settings) and the component's bytes.
fn key(engine: &Engine, bytes: &[u8]) -> String {
    let mut settings = std::hash::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut settings);
    let mut digest = Sha256::new();
    digest.update(settings.finish().to_le_bytes());
    digest.update(bytes);
    digest
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn map(engine: &Engine, path: &Path) -> Result<Component> {
    // SAFETY: wasmtime trusts a compiled file to be its own output: only
    // this host writes this directory (the operator's, given with
    // `--cache-dir`, as trusted as the binary), and wasmtime still
    // checks the file's header against this engine's version and
    // settings, refusing a mismatch. wasmtime's own cache trusts its
    // directory the same way.
    #[allow(unsafe_code)]
    unsafe { Component::deserialize_file(engine, path) }.map_err(anyhow::Error::from)
}

/// Keeps the `keep` most recently used compiled files in `dir`.
fn prune(dir: &Path, keep: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut files: Vec<(std::time::SystemTime, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == SUFFIX))
        .filter_map(|p| Some((p.metadata().ok()?.modified().ok()?, p)))
        .collect();
    if files.len() <= keep {
        return;
    }
    files.sort();
    // A PoP still using a removed file keeps its mapping.
    for (_, path) in &files[..files.len() - keep] {
        let _ = std::fs::remove_file(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine() -> Engine {
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true);
        Engine::new(&config).unwrap()
    }

    /// [`EMPTY`] loaded once into a fresh directory: the directory, the
    /// engine, and the one file it compiled to.
    fn compiled_once(name: &str) -> (PathBuf, Engine, PathBuf) {
        let dir = temp_dir(name);
        let engine = engine();
        component(&engine, Some(&dir), EMPTY).unwrap();
        let files = cached(&dir);
        assert_eq!(files.len(), 1, "{files:?}");
        assert!(files[0].extension().is_some_and(|x| x == SUFFIX));
        (dir, engine, files[0].clone())
    }

    /// A component with nothing in it: the preamble of the component
    /// binary format (magic, version 0x0d, layer 1).
    const EMPTY: &[u8] = b"\0asm\x0d\0\x01\0";

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("edgeshop-compiled-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn cached(dir: &Path) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        files
    }

    #[test]
    fn a_component_is_compiled_once_and_mapped_after() {
        let (dir, engine, file) = compiled_once("once");
        // Compiling writes a new file over the name: a new inode.
        use std::os::unix::fs::MetadataExt;
        let written = file.metadata().unwrap().ino();
        component(&engine, Some(&dir), EMPTY).unwrap();
        assert_eq!(cached(&dir), std::slice::from_ref(&file));
        assert_eq!(
            file.metadata().unwrap().ino(),
            written,
            "the second load compiled again"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_damaged_file_is_compiled_again() {
        let (dir, engine, file) = compiled_once("damaged");
        std::fs::write(&file, b"not a compiled component").unwrap();
        component(&engine, Some(&dir), EMPTY).unwrap();
        assert!(std::fs::read(&file).unwrap().len() > 100);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_directory_keeps_the_most_recently_used() {
        let dir = temp_dir("prune");
        std::fs::create_dir_all(&dir).unwrap();
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        for i in 0..5 {
            let path = dir.join(format!("{i}.{SUFFIX}"));
            std::fs::write(&path, b"x").unwrap();
            let f = std::fs::File::options().append(true).open(&path).unwrap();
            f.set_modified(old + std::time::Duration::from_secs(i))
                .unwrap();
        }
        std::fs::write(dir.join("other.txt"), b"x").unwrap();
        prune(&dir, 2);
        let names: Vec<String> = cached(&dir)
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["3.cwasm", "4.cwasm", "other.txt"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
