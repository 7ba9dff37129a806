//! Turning attached uploads into product media, off the request path: one
//! upload at a time (decoding is CPU-bound and bounded by
//! `media_processing::Bounds`), in a child process (see `isolate`), from the origin's own queue
//! (`uploads` rows in `processing`), with retries while the store is
//! unreachable and a visible status throughout.
//!
//! An upload ends `ready` (its variants stored under content-addressed
//! keys and appended to the product's media, which replicates) or
//! `failed` with a reason the vendor can act on, and nothing published.
//! Either way its original object, EXIF and all, is deleted. Uploads
//! never attached are swept once their URLs have expired.

use super::isolate;
use super::products;
use super::store::{ObjectStore, StoreError, TooLong};
use super::uploads;
use crate::checkout::now_ms;
use serde_json::{Value, json};
use std::time::Duration;
use tokio::sync::Mutex;

/// How often the queue is looked at when it was empty.
const IDLE_POLL: Duration = Duration::from_millis(250);
/// Attempts before an upload the store keeps failing for is given up.
const MAX_ATTEMPTS: i64 = 8;
/// How long after its URL expires an unattached upload is swept: a PUT
/// that started just before expiry has finished by then.
const SWEEP_GRACE_SECS: i64 = 300;
/// How often unattached uploads are swept.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// What processing needs besides the vendor API's connections.
pub struct Processor {
    pub store: ObjectStore,
    pub bounds: media_processing::Bounds,
}

/// One upload's outcome.
enum Outcome {
    Ready(Value),
    Failed(String),
}

/// Runs the queue until the process ends.
pub async fn run(
    processor: &Processor,
    orders: &Mutex<libsql::Connection>,
    catalog: &db_writer::Shared,
    wake: &tokio::sync::Notify,
) {
    let mut last_sweep = tokio::time::Instant::now();
    loop {
        if last_sweep.elapsed() >= SWEEP_EVERY {
            last_sweep = tokio::time::Instant::now();
            sweep(processor, orders).await;
        }
        let due = uploads::due(&*orders.lock().await, now_ms()).await;
        let (upload, attempts) = match due {
            Ok(Some(due)) => due,
            Ok(None) => {
                let _ = tokio::time::timeout(IDLE_POLL, wake.notified()).await;
                continue;
            }
            Err(e) => {
                tracing::warn!("reading the upload queue failed: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let outcome = match process(processor, &upload).await {
            Ok(outcome) => outcome,
            Err(e) if attempts + 1 < MAX_ATTEMPTS => {
                let wait = 1000i64 << (attempts + 1).min(8);
                tracing::warn!(
                    upload = upload.id,
                    attempts,
                    "processing will be retried: {e}"
                );
                let conn = orders.lock().await;
                if let Err(e) = uploads::retry_later(&conn, upload.id, now_ms() + wait).await {
                    tracing::warn!("recording a retry failed: {e}");
                }
                continue;
            }
            Err(e) => Outcome::Failed(format!(
                "{e}; gave up after {MAX_ATTEMPTS} attempts, upload the file again"
            )),
        };
        settle(processor, orders, catalog, &upload, outcome).await;
    }
}

/// What makes processing worth trying again later.
#[derive(Debug, thiserror::Error)]
enum Transient {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Child(#[from] isolate::SpawnError),
}

/// Reads, checks and converts one upload and stores its variants.
async fn process(processor: &Processor, upload: &uploads::Upload) -> Result<Outcome, Transient> {
    let declared = upload.size as u64;
    let bytes = match processor.store.get(&upload.object_key, declared).await? {
        None => {
            return Ok(Outcome::Failed(
                "nothing was uploaded to the signed URL; upload the file, then attach it".into(),
            ));
        }
        Some(Err(TooLong)) => {
            return Ok(Outcome::Failed(format!(
                "the stored file is larger than the {declared} bytes declared"
            )));
        }
        Some(Ok(bytes)) => bytes,
    };
    let variants = match isolate::process(bytes, &upload.content_type, processor.bounds).await? {
        Ok(variants) => variants,
        Err(reason) => return Ok(Outcome::Failed(reason)),
    };
    for v in &variants {
        processor
            .store
            .put_immutable(
                &v.key,
                media_processing::Variant::CONTENT_TYPE,
                v.bytes.clone().into(),
            )
            .await?;
    }
    Ok(Outcome::Ready(json!({
        "upload": upload.id,
        "variants": variants.iter().map(|v| json!({
            "url": format!("/{}", v.key),
            "width": v.width,
            "height": v.height,
            "type": media_processing::Variant::CONTENT_TYPE,
        })).collect::<Vec<_>>(),
    })))
}

/// Publishes a ready upload into its product and records the outcome;
/// the original object goes either way.
async fn settle(
    processor: &Processor,
    orders: &Mutex<libsql::Connection>,
    catalog: &db_writer::Shared,
    upload: &uploads::Upload,
    outcome: Outcome,
) {
    let now = now_ms() / 1000;
    let outcome = match outcome {
        Outcome::Ready(image) => {
            let product = upload.product_id.unwrap_or_default();
            match products::add_media(&*catalog.lock().await, product, &image, now).await {
                Ok(true) => Ok(image),
                Ok(false) => Err("the product was deleted before its image was ready".to_string()),
                Err(e) => {
                    // The catalog will be back; the variants are stored.
                    tracing::warn!(upload = upload.id, "publishing media failed: {e}");
                    let conn = orders.lock().await;
                    let _ = uploads::retry_later(&conn, upload.id, now_ms() + 2_000).await;
                    return;
                }
            }
        }
        Outcome::Failed(why) => Err(why),
    };
    let recorded = {
        let conn = orders.lock().await;
        uploads::finish(
            &conn,
            upload.id,
            outcome.as_ref().map_err(String::as_str),
            now,
        )
        .await
    };
    match (&outcome, recorded) {
        (_, Err(e)) => tracing::error!(upload = upload.id, "recording the outcome failed: {e}"),
        (Ok(_), Ok(())) => tracing::info!(upload = upload.id, "upload published"),
        (Err(why), Ok(())) => tracing::info!(upload = upload.id, %why, "upload failed"),
    }
    if let Err(e) = processor.store.delete(&upload.object_key).await {
        tracing::warn!(upload = upload.id, "deleting the original failed: {e}");
    }
}

/// Deletes the objects of uploads never attached, once their URLs have
/// expired, and marks them `expired`.
async fn sweep(processor: &Processor, orders: &Mutex<libsql::Connection>) {
    let now = now_ms() / 1000;
    let stale = uploads::unattached(&*orders.lock().await, now - SWEEP_GRACE_SECS, 100).await;
    for (id, key) in stale.unwrap_or_default() {
        match processor.store.delete(&key).await {
            Ok(()) => {
                let _ = uploads::expire(&*orders.lock().await, id, now).await;
            }
            Err(e) => {
                tracing::warn!(upload = id, "sweeping an unattached upload failed: {e}");
                return;
            }
        }
    }
}
