//! The shared cache on catalog pages and images, in the Workers Cache
//! API: keyed as
//! the PoP cache keys (`cache_core::key`, HEAD from GET's entry), stored
//! and reused by the same rules (`cache_core::storable`, `freshness`), and
//! purged the same way: each entry records the newest change of the
//! origin's `changes` table when it was made, and a hit is used only while
//! none of its `Cache-Tag`s has changed since. A Worker has no replica of
//! `changes`, so that check is a round trip to the origin on every hit
//! (the PoP reads its replica); a miss runs the check's high-water mark and
//! the catalog query in one pipeline. The runtime compresses the answer
//! as it leaves, in the coding [`crate::coding`] marks.

use crate::hrana::Hrana;
use crate::reply::{Fields, Reply};
use cache_core::encoding::{self, Coding};
use cache_core::freshness;
use cache_core::status::{Forward, Outcome};
use cache_core::{CacheControl, conditional, key, storable, tags};
use edge_sql::{Database as _, SqlValue};
use worker::Cache;

/// Where a stored response records the change it is current as of, when
/// it was stored, and its own `Cache-Control` (the Cache API reads the
/// field itself to know how long to keep it); never sent to a client.
const STORED_AT: &str = "edgeshop-stored-at";
const STORED_MS: &str = "edgeshop-stored-ms";
const CACHE_CONTROL: &str = "edgeshop-cache-control";
/// Longest `stale-if-error` honoured.
const MAX_STALE_SECS: u64 = 86_400;
/// The Cache API takes URLs as keys; this host is never fetched.
const KEY_ORIGIN: &str = "https://cache.edgeshop.invalid";
/// Largest response stored.
const MAX_ENTRY_BYTES: u64 = 1 << 20;

/// What the app behind the cache answers, with the newest change when it
/// read (for a stored entry's mark).
pub struct Made {
    pub reply: Reply,
    pub high_water: Option<u64>,
}

/// Answers a catalog read from the cache or through `app`.
pub async fn serve<F, Fut>(
    catalog_db: &Hrana,
    method: &str,
    target: &str,
    fields: &Fields,
    credentials: bool,
    app: F,
) -> Reply
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Made>,
{
    let head = method == "HEAD";
    let request_cc = CacheControl::parse(fields.get("cache-control"));
    if let Err(bypass) = storable::lookup(method, &request_cc) {
        let made = app().await;
        return finish(made.reply, Outcome::bypass(bypass.detail()), fields, head);
    }
    let url = format!("{KEY_ORIGIN}{}", key::normalise(target));
    let cache = Cache::default();
    let mut why = Forward::UriMiss;
    let mut fallback = None;
    if let Ok(Some(mut stored)) = cache.get(url.as_str(), true).await {
        match Entry::read(&mut stored, credentials, &request_cc).await {
            None => why = Forward::Miss,
            Some(entry) if entry.age_ms < entry.limit_ms => match entry.current(catalog_db).await {
                Ok(true) => {
                    let ttl_secs = cache_core::status::ttl_secs(entry.limit_ms, entry.age_ms);
                    let outcome = Outcome::Hit {
                        ttl_secs,
                        detail: None,
                    };
                    return finish(entry.reply, outcome, fields, head);
                }
                // A change to one of its tags: gone for good.
                Ok(false) => why = Forward::Miss,
                // The origin cannot say: what is stored is the best answer
                // there is, as a PoP serves its replica with the origin down.
                Err(e) => {
                    worker::console_error!("cache: the change log could not be read: {e}");
                    let ttl_secs = cache_core::status::ttl_secs(entry.limit_ms, entry.age_ms);
                    let outcome = Outcome::Hit {
                        ttl_secs,
                        detail: Some("origin-unreachable"),
                    };
                    return finish(entry.reply, outcome, fields, head);
                }
            },
            Some(entry) => {
                why = Forward::Stale;
                fallback = Some(entry);
            }
        }
    }
    let made = app().await;
    if made.reply.status >= 500
        && let Some(entry) = fallback.filter(Entry::may_stand_in_for_an_error)
    {
        let outcome = Outcome::Hit {
            ttl_secs: cache_core::status::ttl_secs(entry.lifetime_ms, entry.age_ms),
            detail: Some("stale-if-error"),
        };
        return finish(entry.reply, outcome, fields, head);
    }
    let mut outcome = Outcome::forwarded(why).with_fwd_status(Some(made.reply.status));
    let facts = facts(&made.reply);
    let storable = storable::storable(&facts, credentials, MAX_ENTRY_BYTES).is_ok()
        && tags::parse(made.reply.header("cache-tag")).is_ok();
    if let (true, Some(high_water), Some(lifetime)) = (storable, made.high_water, facts.lifetime) {
        let entry = Entry::stored(&made.reply, high_water, lifetime, &facts.cc).into_worker();
        match entry {
            Ok(entry) => match cache.put(url.as_str(), entry).await {
                Ok(()) => {
                    if let Outcome::Forwarded {
                        stored, ttl_secs, ..
                    } = &mut outcome
                    {
                        *stored = true;
                        *ttl_secs = Some((lifetime / 1000) as i64);
                    }
                }
                Err(e) => worker::console_error!("cache: storing {url} failed: {e}"),
            },
            Err(e) => worker::console_error!("cache: building an entry failed: {e}"),
        }
    }
    finish(made.reply, outcome, fields, head)
}

/// A stored answer, as read back from the Cache API.
struct Entry {
    reply: Reply,
    /// The newest change of the change log when it was made.
    stored_at: u64,
    tags: Vec<String>,
    cc: CacheControl,
    age_ms: u64,
    lifetime_ms: u64,
    /// How old it may be for this request (its lifetime, or less when the
    /// request's `max-age` says so).
    limit_ms: u64,
}

impl Entry {
    /// The entry put in the Cache API: the identity answer with its marks,
    /// kept by the Cache API (which drops an entry when its own
    /// `Cache-Control` says) as long as it may stand in for an error.
    fn stored(reply: &Reply, high_water: u64, lifetime_ms: u64, cc: &CacheControl) -> Reply {
        let mut entry = reply.clone();
        let keep = lifetime_ms / 1000 + cc.stale_if_error.unwrap_or(0).min(MAX_STALE_SECS);
        if let Some(original) = reply.header("cache-control") {
            entry.set(CACHE_CONTROL, original.to_string());
        }
        entry.set("cache-control", format!("public, max-age={keep}"));
        entry.set(STORED_AT, high_water.to_string());
        entry.set(STORED_MS, crate::vars::now_ms().to_string());
        entry
    }

    /// The entry, unless it cannot serve this request at all.
    async fn read(
        stored: &mut worker::Response,
        credentials: bool,
        request_cc: &CacheControl,
    ) -> Option<Entry> {
        let mut headers: Vec<(String, String)> = stored.headers().entries().collect();
        let field = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.to_string())
        };
        let stored_at = field(STORED_AT)?.parse::<u64>().ok()?;
        let stored_ms = field(STORED_MS)?.parse::<u64>().ok()?;
        let original_cc = field(CACHE_CONTROL)?;
        let cc = CacheControl::parse(Some(original_cc.as_str()));
        if credentials && !storable::reusable_with_credentials(&cc) {
            return None;
        }
        if request_cc.no_cache || cc.no_cache {
            return None;
        }
        let lifetime_ms = freshness::lifetime(&cc, None, None)?;
        let tags = tags::parse(field("cache-tag").as_deref()).ok()?;
        let age_ms = crate::vars::now_ms().saturating_sub(stored_ms);
        let limit_ms = match request_cc.max_age {
            Some(max) => lifetime_ms.min(max * 1000),
            None => lifetime_ms,
        };
        headers.retain(|(n, _)| {
            ![STORED_AT, STORED_MS, CACHE_CONTROL, "cache-control"].contains(&n.as_str())
        });
        headers.push(("cache-control".into(), original_cc));
        let body = stored.bytes().await.ok()?;
        let mut reply = Reply::new(stored.status_code(), headers, body);
        reply.set("age", (age_ms / 1000).to_string());
        Some(Entry {
            reply,
            stored_at,
            tags,
            cc,
            age_ms,
            lifetime_ms,
            limit_ms,
        })
    }

    /// Whether no tag of the entry has changed since it was made: one
    /// query to the origin's change log.
    async fn current(&self, catalog_db: &Hrana) -> Result<bool, edge_sql::DbError> {
        if self.tags.is_empty() {
            return Ok(true);
        }
        let params: Vec<SqlValue> = self.tags.iter().map(|t| t.as_str().into()).collect();
        let rows = catalog_db
            .query(&tags::newest_change_sql(params.len()), params)
            .await?;
        let newest = rows
            .first()
            .and_then(|r| r.first())
            .and_then(SqlValue::as_i64)
            .unwrap_or(0);
        Ok(!tags::invalidated(self.stored_at, newest as u64))
    }

    /// Within `stale-if-error` (RFC 5861) of its lifetime, and not told to
    /// revalidate.
    fn may_stand_in_for_an_error(&self) -> bool {
        let grace_ms = self.cc.stale_if_error.unwrap_or(0).min(MAX_STALE_SECS) * 1000;
        !self.cc.must_revalidate
            && !self.cc.proxy_revalidate
            && self.age_ms < self.lifetime_ms + grace_ms
    }
}

fn facts(reply: &Reply) -> storable::ResponseFacts {
    let cc = CacheControl::parse(reply.header("cache-control"));
    storable::ResponseFacts {
        status: reply.status,
        lifetime: freshness::lifetime(&cc, None, None),
        cc,
        set_cookie: reply.header("set-cookie").is_some(),
        vary_any: reply.header("vary").is_some_and(|v| v.trim() == "*"),
        content_length: Some(reply.body.len() as u64),
    }
}

/// Adds `Cache-Status`, the content coding the client prefers when the
/// answer is worth compressing (the runtime compresses the body as it
/// leaves, from the `Content-Encoding` set here), and answers
/// `If-None-Match` against the tag of the coding sent.
fn finish(mut reply: Reply, outcome: Outcome, fields: &Fields, head: bool) -> Reply {
    reply.set("cache-status", outcome.header_value());
    deliver(reply, fields, head)
}

/// Marks the coding the runtime will compress `reply` in for this client
/// (its entity tag naming it), and answers `If-None-Match` against it.
pub fn deliver(mut reply: Reply, fields: &Fields, head: bool) -> Reply {
    let no_transform = CacheControl::parse(reply.header("cache-control")).no_transform;
    let negotiable = reply.status == 200
        && reply.header("content-encoding").is_none()
        && reply
            .header("content-type")
            .is_some_and(encoding::compressible)
        && reply.body.len() >= encoding::MIN_COMPRESSIBLE_BYTES
        && !no_transform;
    if negotiable {
        reply.set("vary", "accept-encoding");
        let coding = crate::coding::front_line(fields.get("accept-encoding"));
        if coding != Coding::Identity {
            reply.set("content-encoding", coding.token());
            if let Some(tag) = reply
                .header("etag")
                .and_then(|t| encoding::variant_etag(t, coding))
            {
                reply.set("etag", tag);
            }
        }
    }
    if reply.status == 200
        && conditional::not_modified(fields.get("if-none-match"), reply.header("etag"))
    {
        reply.status = 304;
        reply.body.clear();
        reply
            .headers
            .retain(|(n, _)| n != "content-encoding" && n != "content-length");
    }
    if head {
        reply.body.clear();
    }
    reply
}

/// The newest change of all, as the catalog query's companion statement.
pub fn high_water_statement() -> (String, Vec<SqlValue>) {
    (tags::HIGH_WATER_SQL.to_string(), Vec::new())
}
