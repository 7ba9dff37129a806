//! The media rows: a product image read through a PoP's cache, beside the
//! product page's hit on the same host in the same run, and the time the
//! origin's processor takes per image (the seeded pictures: 1600×1200
//! JPEGs into WebP at 200, 800 and 1600 px).

use super::{Row, measure, unreached_limits};
use crate::platform::{BUCKET, Layout, objects_command};
use crate::up::{Service, secret};
use crate::{pictures, root, state_dir};
use anyhow::Result;
use std::time::{Duration, Instant};

/// How long processing one picture took, each in turn.
pub struct Processing {
    pub millis: Vec<f64>,
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
    Ok((rows, Processing { millis }))
}

/// The processing figures, under the table.
pub fn print(p: &Processing) -> String {
    let mut sorted = p.millis.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or_default();
    let max = sorted.last().copied().unwrap_or_default();
    format!(
        "\nProcessing one 1600×1200 JPEG into WebP at 200, 800 and 1600 px (the origin's \
         processor, one at a time): median {median:.0} ms, slowest {max:.0} ms over {} \
         pictures.\n",
        sorted.len()
    )
}
