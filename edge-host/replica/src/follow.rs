//! Holding the primary's push stream (`/push/{generation}/{start}`, see
//! `replication::push`): each message goes into the [`Feed`] and wakes
//! the replica's pull, which the feed then answers without the network.
//!
//! A stream that fails, goes silent past [`SILENCE`] or is refused is
//! opened again after a back-off, from where the replica is then; until
//! it is, pulls go to the primary on the replica's interval, so a missed
//! push delays a commit by at most one interval.

use crate::Position;
use crate::delay;
use crate::feed::Feed;
use replication::push::Decoder;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A stream with no message for this long (three heartbeats) is dead.
pub const SILENCE: Duration = Duration::from_secs(30);
/// Longest pause before opening a stream again.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// What a stream needs.
pub struct Follow {
    pub label: String,
    /// The primary's database URL.
    pub url: String,
    pub token: String,
    pub connector: delay::Connector,
    /// The simulated round trip; a pushed message is held for half of it
    /// (the connector can only delay answers to requests).
    pub delay: Duration,
    pub feed: Arc<Mutex<Feed>>,
    /// Woken when frames arrive.
    pub wake: Arc<tokio::sync::Notify>,
}

#[derive(Debug, thiserror::Error)]
enum Broken {
    #[error("the primary refused the push stream: {0}")]
    Refused(hyper014::StatusCode),
    #[error("{0}")]
    Http(#[from] hyper014::Error),
    #[error("no message for {SILENCE:?}")]
    Silent,
    #[error(transparent)]
    Decode(#[from] replication::push::DecodeError),
    #[error(transparent)]
    Feed(#[from] crate::feed::Refused),
}

impl Follow {
    /// Follows the stream while `position` says where the replica is;
    /// ends when it returns `None` for good (the replica is gone).
    pub async fn run(self, position: impl Fn() -> Option<Option<Position>>) {
        let client = hyper014::Client::builder().build::<_, hyper014::Body>(self.connector.clone());
        let mut failures = 0u32;
        loop {
            let Some(at) = position() else { return };
            // Until the first bootstrap there is nothing to follow.
            let Some(at) = at else {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            };
            let result = self.hold(&client, at).await;
            self.feed.lock().expect("feed lock").disconnected();
            match result {
                Err(Broken::Refused(status)) if status == 404 => {
                    tracing::info!(db = %self.label, "the primary does not push; pulling on the interval");
                    return;
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    if failures == 1 {
                        tracing::info!(db = %self.label, error = %e, "the push stream broke; pulling until it is back");
                    }
                }
                Ok(()) => failures = 0,
            }
            let pause = Duration::from_millis(100) * (1 << failures.min(7));
            tokio::time::sleep(pause.min(MAX_BACKOFF)).await;
        }
    }

    /// One stream, from the frame after `at`, until it breaks.
    async fn hold(
        &self,
        client: &hyper014::Client<delay::Connector>,
        at: Position,
    ) -> Result<(), Broken> {
        let url = format!(
            "{}/push/{}/{}",
            self.url.replacen("libsql://", "https://", 1),
            at.generation,
            at.frame + 1
        );
        let req = hyper014::Request::get(url)
            .header("authorization", format!("Bearer {}", self.token))
            .body(hyper014::Body::empty())
            .expect("a valid request");
        let resp = tokio::time::timeout(SILENCE, client.request(req))
            .await
            .map_err(|_| Broken::Silent)??;
        if !resp.status().is_success() {
            return Err(Broken::Refused(resp.status()));
        }
        self.feed
            .lock()
            .expect("feed lock")
            .connected(at.generation, at.frame + 1);
        // Chunks are read as they come and held for the one-way delay
        // from when each arrived, not one after another.
        let (tx, mut rx) = tokio::sync::mpsc::channel(64);
        let mut body = resp.into_body();
        let reader = tokio::spawn(async move {
            use hyper014::body::HttpBody;
            loop {
                let next = match tokio::time::timeout(SILENCE, body.data()).await {
                    Err(_) => Err(Broken::Silent),
                    Ok(None) => return,
                    Ok(Some(chunk)) => chunk.map_err(Broken::from),
                };
                let failed = next.is_err();
                if tx
                    .send(next.map(|c| (tokio::time::Instant::now(), c)))
                    .await
                    .is_err()
                    || failed
                {
                    return;
                }
            }
        });
        let _stop_reading = AbortOnDrop(reader);
        let mut decoder = Decoder::default();
        let one_way = self.delay / 2;
        while let Some(next) = rx.recv().await {
            let (arrived, chunk) = next?;
            if !one_way.is_zero() {
                tokio::time::sleep_until(arrived + one_way).await;
            }
            decoder.push(&chunk);
            let mut frames = false;
            while let Some(message) = decoder.next_message()? {
                frames |= matches!(message, replication::push::Message::Frames { .. });
                self.feed.lock().expect("feed lock").take(message)?;
            }
            if frames {
                self.wake.notify_one();
            }
        }
        Ok(())
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
