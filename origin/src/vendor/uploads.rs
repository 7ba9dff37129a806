//! Vendors' uploads at the origin: the row each signed URL gets in the
//! origin's own database, and the quota it counts against.
//!
//! A vendor's quota counts every upload that holds, or may soon hold,
//! bytes in the store: signed (until its URL expires), being processed,
//! and ready. Failed and expired uploads hold nothing and count for
//! nothing; the objects of uploads never attached are swept once their
//! URLs expire. The count and the insert share one immediate
//! transaction, so racing requests cannot both take the last room.

use super::products::in_transaction;
use libsql::{Connection, params};
use serde_json::{Value, json};
use vendor_core::upload::UploadRequest;

/// How much one vendor may hold in uploads and media.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub bytes: u64,
    pub objects: u64,
}

/// What a vendor holds now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub bytes: u64,
    pub objects: u64,
}

impl Usage {
    pub fn json(&self, quota: Quota) -> Value {
        json!({
            "bytes_used": self.bytes,
            "bytes_limit": quota.bytes,
            "objects_used": self.objects,
            "objects_limit": quota.objects,
        })
    }
}

const COLUMNS: &str = "id, object_key, file_name, content_type, size, status, product_id, \
     error, media, created_at, expires_at, updated_at";

/// An upload as its vendor sees it.
#[derive(Debug, Clone)]
pub struct Upload {
    pub id: i64,
    pub object_key: String,
    pub file_name: String,
    pub content_type: String,
    pub size: i64,
    pub status: String,
    pub product_id: Option<i64>,
    pub error: Option<String>,
    pub media: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    pub updated_at: i64,
}

impl Upload {
    fn from_row(row: &libsql::Row) -> Result<Upload, libsql::Error> {
        Ok(Upload {
            id: row.get(0)?,
            object_key: row.get(1)?,
            file_name: row.get(2)?,
            content_type: row.get(3)?,
            size: row.get(4)?,
            status: row.get(5)?,
            product_id: row.get(6)?,
            error: row.get(7)?,
            media: row.get(8)?,
            created_at: row.get(9)?,
            expires_at: row.get(10)?,
            updated_at: row.get(11)?,
        })
    }

    pub fn json(&self) -> Value {
        json!({
            "id": self.id,
            "key": self.object_key,
            "file_name": self.file_name,
            "content_type": self.content_type,
            "size": self.size,
            "status": self.status,
            "product_id": self.product_id,
            "error": self.error,
            "media": self.media.as_deref().and_then(|m| serde_json::from_str::<Value>(m).ok()),
            "created_at": catalog_core::rfc3339(self.created_at),
            "expires_at": catalog_core::rfc3339(self.expires_at),
            "updated_at": catalog_core::rfc3339(self.updated_at),
        })
    }
}

/// What `vendor` holds now.
pub async fn usage(conn: &Connection, vendor: i64, now: i64) -> Result<Usage, libsql::Error> {
    let mut rows = conn
        .query(
            "SELECT coalesce(sum(size), 0), count(*) FROM uploads WHERE vendor_id = ?1 \
             AND (status IN ('processing', 'ready') OR (status = 'signed' AND expires_at > ?2))",
            params![vendor, now],
        )
        .await?;
    let row = rows
        .next()
        .await?
        .ok_or(libsql::Error::QueryReturnedNoRows)?;
    Ok(Usage {
        bytes: row.get::<i64>(0)?.max(0) as u64,
        objects: row.get::<i64>(1)?.max(0) as u64,
    })
}

/// Records a signed upload of `request` at `key`, unless it would take
/// `vendor` past `quota` (then the usage it would have exceeded).
pub async fn create(
    conn: &Connection,
    vendor: i64,
    request: &UploadRequest,
    key: &str,
    quota: Quota,
    now: i64,
    expires_at: i64,
) -> Result<Result<(Upload, Usage), Usage>, libsql::Error> {
    in_transaction(conn, async |tx| {
        let used = usage(tx, vendor, now).await?;
        if used.objects + 1 > quota.objects || used.bytes + request.size > quota.bytes {
            return Ok(Err(used));
        }
        let mut rows = tx
            .query(
                &format!(
                    "INSERT INTO uploads (vendor_id, object_key, file_name, content_type, size, \
                     created_at, expires_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?6) \
                     RETURNING {COLUMNS}"
                ),
                params![
                    vendor,
                    key,
                    request.file_name.as_str(),
                    request.content_type.as_str(),
                    request.size as i64,
                    now,
                    expires_at
                ],
            )
            .await?;
        let row = rows
            .next()
            .await?
            .ok_or(libsql::Error::QueryReturnedNoRows)?;
        let upload = Upload::from_row(&row)?;
        drop(rows);
        let after = Usage {
            bytes: used.bytes + request.size,
            objects: used.objects + 1,
        };
        Ok(Ok((upload, after)))
    })
    .await
}

/// The vendor's newest uploads, at most `limit`.
pub async fn list(
    conn: &Connection,
    vendor: i64,
    limit: i64,
) -> Result<Vec<Upload>, libsql::Error> {
    let mut rows = conn
        .query(
            &format!(
                "SELECT {COLUMNS} FROM uploads WHERE vendor_id = ?1 ORDER BY id DESC LIMIT ?2"
            ),
            params![vendor, limit],
        )
        .await?;
    let mut uploads = Vec::new();
    while let Some(row) = rows.next().await? {
        uploads.push(Upload::from_row(&row)?);
    }
    Ok(uploads)
}

/// The vendor's upload `id`, if it is theirs.
pub async fn load(
    conn: &Connection,
    vendor: i64,
    id: i64,
) -> Result<Option<Upload>, libsql::Error> {
    let mut rows = conn
        .query(
            &format!("SELECT {COLUMNS} FROM uploads WHERE id = ?1 AND vendor_id = ?2"),
            params![id, vendor],
        )
        .await?;
    match rows.next().await? {
        Some(row) => Ok(Some(Upload::from_row(&row)?)),
        None => Ok(None),
    }
}

/// Why an upload cannot be attached.
#[derive(Debug)]
pub enum AttachRefusal {
    NoSuchUpload,
    /// Attached already, failed, or expired: its status.
    NotSigned(String),
}

/// Attaches the vendor's signed upload `id` to `product` (checked to be
/// theirs by the caller): it is processed from now on.
pub async fn attach(
    conn: &Connection,
    vendor: i64,
    id: i64,
    product: i64,
    now: i64,
) -> Result<Result<Upload, AttachRefusal>, libsql::Error> {
    in_transaction(conn, async |tx| {
        let Some(upload) = load(tx, vendor, id).await? else {
            return Ok(Err(AttachRefusal::NoSuchUpload));
        };
        if upload.status != "signed" {
            return Ok(Err(AttachRefusal::NotSigned(upload.status)));
        }
        tx.execute(
            "UPDATE uploads SET status = 'processing', product_id = ?1, next_attempt_at = 0, \
             updated_at = ?2 WHERE id = ?3",
            params![product, now, id],
        )
        .await?;
        Ok(load(tx, vendor, id)
            .await?
            .ok_or(AttachRefusal::NoSuchUpload))
    })
    .await
}

/// The next upload due for processing, with its attempts so far.
pub async fn due(conn: &Connection, now_ms: i64) -> Result<Option<(Upload, i64)>, libsql::Error> {
    let mut rows = conn
        .query(
            &format!(
                "SELECT {COLUMNS}, attempts FROM uploads WHERE status = 'processing' \
                 AND next_attempt_at <= ?1 ORDER BY next_attempt_at, id LIMIT 1"
            ),
            params![now_ms],
        )
        .await?;
    match rows.next().await? {
        Some(row) => Ok(Some((Upload::from_row(&row)?, row.get(12)?))),
        None => Ok(None),
    }
}

/// Ends processing of `id`: `ready` with its `media`, or `failed` with
/// why.
pub async fn finish(
    conn: &Connection,
    id: i64,
    outcome: Result<&Value, &str>,
    now: i64,
) -> Result<(), libsql::Error> {
    let (status, media, error) = match outcome {
        Ok(media) => ("ready", Some(media.to_string()), None),
        Err(why) => ("failed", None, Some(why.to_string())),
    };
    conn.execute(
        "UPDATE uploads SET status = ?1, media = ?2, error = ?3, updated_at = ?4 \
         WHERE id = ?5 AND status = 'processing'",
        params![status, media, error, now, id],
    )
    .await?;
    Ok(())
}

/// Puts `id` off until `next_ms`, counting the attempt.
pub async fn retry_later(conn: &Connection, id: i64, next_ms: i64) -> Result<(), libsql::Error> {
    conn.execute(
        "UPDATE uploads SET attempts = attempts + 1, next_attempt_at = ?1 WHERE id = ?2",
        params![next_ms, id],
    )
    .await?;
    Ok(())
}

/// Signed uploads whose URLs expired before `before`, never attached:
/// their ids and keys, at most `limit`.
pub async fn unattached(
    conn: &Connection,
    before: i64,
    limit: i64,
) -> Result<Vec<(i64, String)>, libsql::Error> {
    let mut rows = conn
        .query(
            "SELECT id, object_key FROM uploads WHERE status = 'signed' AND expires_at < ?1 \
             ORDER BY expires_at LIMIT ?2",
            params![before, limit],
        )
        .await?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().await? {
        out.push((row.get(0)?, row.get(1)?));
    }
    Ok(out)
}

/// Marks a swept upload `expired`.
pub async fn expire(conn: &Connection, id: i64, now: i64) -> Result<(), libsql::Error> {
    conn.execute(
        "UPDATE uploads SET status = 'expired', updated_at = ?1 WHERE id = ?2 AND status = 'signed'",
        params![now, id],
    )
    .await?;
    Ok(())
}
