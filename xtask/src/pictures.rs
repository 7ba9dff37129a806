//! The seeded catalog's product pictures: generated images put through the
//! processor's own checks and conversion (`media-processing`), so every
//! seeded product page shows real images, served by every PoP like any
//! vendor's. The variants are content-addressed and the pictures
//! deterministic, so `seed` can name them before `up` stores them, and
//! storing them again changes nothing.

use anyhow::{Context, Result};
use media_processing::{Bounds, Variant, generate, process};
use serde_json::{Value, json};
use std::time::{Duration, SystemTime};

/// Distinct pictures the seeded products share.
pub const PICTURES: usize = 8;

/// One processed picture: its `media` entry and the variants to store.
pub struct Picture {
    pub image: Value,
    pub variants: Vec<Variant>,
}

/// Makes and processes every picture (a few seconds on two cores).
pub fn make() -> Result<Vec<Picture>> {
    (0..PICTURES)
        .map(|n| {
            let variants = process(&generate::picture(n), "image/jpeg", Bounds::default())
                .with_context(|| format!("processing seeded picture {n}"))?;
            let image = json!({
                // Not from an upload: 0 marks a seeded picture.
                "upload": 0,
                "variants": variants.iter().map(|v| json!({
                    "url": format!("/{}", v.key),
                    "width": v.width,
                    "height": v.height,
                    "type": Variant::CONTENT_TYPE,
                })).collect::<Vec<_>>(),
            });
            Ok(Picture { image, variants })
        })
        .collect()
}

/// Stores every variant in the object store at `url` with the processor's
/// key, as the origin's processor does.
pub fn store(url: &str, bucket: &str, secret: &str, pictures: &[Picture]) -> Result<()> {
    let store = uploads::Store {
        endpoint: url.to_string(),
        region: "us-east-1".into(),
        bucket: bucket.into(),
        access_key: crate::platform::PROCESSOR_KEY.into(),
        secret_key: secret.into(),
    };
    for v in pictures.iter().flat_map(|p| &p.variants) {
        let signed = [
            ("content-type", Variant::CONTENT_TYPE.to_string()),
            ("content-length", v.bytes.len().to_string()),
        ];
        let put = store.presign_object(
            "PUT",
            &v.key,
            &signed,
            SystemTime::now(),
            Duration::from_secs(60),
        )?;
        crate::up::send(
            "PUT",
            &put,
            &[
                ("content-type", Variant::CONTENT_TYPE),
                ("cache-control", media_core::IMMUTABLE),
            ],
            &v.bytes,
        )
        .with_context(|| format!("storing {}", v.key))?;
    }
    Ok(())
}
