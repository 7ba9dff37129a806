//! Pushed replication: a replica holds one response open and the primary
//! writes each shipped commit into it as it lands, so a PoP learns of a
//! commit one one-way delay after it, instead of at its next poll.
//!
//! `GET /db/{name}/push/{generation}/{start}` answers a stream of
//! messages, each a 13-byte header (a tag, then three big-endian `u32`s)
//! and, for frames, the frames themselves:
//!
//! - `F generation start count` + `count` frames: frames `start..start+count`
//!   of `generation`, whole transactions as the log holds them;
//! - `G next 0 0`: the generation asked for has ended and the stream goes
//!   on with `next` from frame 1 (the replica checkpoints between them);
//! - `H generation frame 0`: nothing new; where the primary is. Sent when
//!   the stream starts and every [`Settings::heartbeat`] while idle, so the
//!   replica knows its lag and can tell a silent stream from a dead one.
//!
//! The stream is a hint, never the only way: the replica still applies
//! frames through the `libsql` crate's own pull, which is answered from
//! what was pushed when it can be and from the primary when not. A
//! stream that breaks costs only speed.
//!
//! Everything is bounded: a stream lives at most [`Settings::lifetime`]
//! (then the replica opens the next), a replica that does not read for
//! [`Settings::send_timeout`] is dropped, and the caller admits streams
//! per client and in total before calling [`serve`].

use crate::log::FRAME_BYTES;
use crate::primary::{MAX_PULL_FRAMES, Position, Primary, Pull};
use std::sync::Arc;
use std::time::Duration;

pub const HEADER_BYTES: usize = 13;
/// The media type of a push stream.
pub const CONTENT_TYPE: &str = "application/vnd.edgeshop.frames";

/// One message of a push stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Frames {
        generation: u32,
        start: u32,
        frames: Vec<u8>,
    },
    Generation {
        next: u32,
    },
    Heartbeat(Position),
}

impl Message {
    pub fn encode(&self) -> Vec<u8> {
        let (tag, a, b, c, body): (u8, u32, u32, u32, &[u8]) = match self {
            Message::Frames {
                generation,
                start,
                frames,
            } => (
                b'F',
                *generation,
                *start,
                (frames.len() / FRAME_BYTES) as u32,
                frames,
            ),
            Message::Generation { next } => (b'G', *next, 0, 0, &[]),
            Message::Heartbeat(p) => (b'H', p.generation, p.frame, 0, &[]),
        };
        let mut out = Vec::with_capacity(HEADER_BYTES + body.len());
        out.push(tag);
        for n in [a, b, c] {
            out.extend_from_slice(&n.to_be_bytes());
        }
        out.extend_from_slice(body);
        out
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown push message tag {0:#04x}")]
    Tag(u8),
    #[error("a push message announces {0} frames; at most {MAX_PULL_FRAMES} are sent at once")]
    TooLong(u32),
}

/// Reassembles messages from the bytes of a stream, however they are cut.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
}

impl Decoder {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole message, if the bytes so far hold one.
    pub fn next_message(&mut self) -> Result<Option<Message>, DecodeError> {
        if self.buf.len() < HEADER_BYTES {
            return Ok(None);
        }
        let word = |i: usize| {
            u32::from_be_bytes(self.buf[1 + 4 * i..5 + 4 * i].try_into().expect("4 bytes"))
        };
        let (tag, a, b, c) = (self.buf[0], word(0), word(1), word(2));
        let body = match tag {
            b'F' if c > MAX_PULL_FRAMES => return Err(DecodeError::TooLong(c)),
            b'F' => c as usize * FRAME_BYTES,
            b'G' | b'H' => 0,
            other => return Err(DecodeError::Tag(other)),
        };
        if self.buf.len() < HEADER_BYTES + body {
            return Ok(None);
        }
        let rest = self.buf.split_off(HEADER_BYTES + body);
        let whole = std::mem::replace(&mut self.buf, rest);
        Ok(Some(match tag {
            b'F' => Message::Frames {
                generation: a,
                start: b,
                frames: whole[HEADER_BYTES..].to_vec(),
            },
            b'G' => Message::Generation { next: a },
            _ => Message::Heartbeat(Position {
                generation: a,
                frame: b,
            }),
        }))
    }
}

/// How long streams live and how idle ones are kept.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Between heartbeats of an idle stream.
    pub heartbeat: Duration,
    /// Longest one stream is held; the replica then opens the next.
    pub lifetime: Duration,
    /// Longest a message waits for the replica to read the one before.
    pub send_timeout: Duration,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            heartbeat: Duration::from_secs(10),
            lifetime: Duration::from_secs(300),
            send_timeout: Duration::from_secs(10),
        }
    }
}

/// Messages queued per stream before the sender waits for the replica.
const QUEUE: usize = 2;

/// Starts a stream from frame `start` of `generation`, or says why not
/// (the generation is gone, or the start is not a frame number). The
/// receiver yields encoded messages and ends when the stream does.
pub fn serve(
    primary: Arc<Primary>,
    generation: u32,
    start: u32,
    settings: Settings,
) -> Result<tokio::sync::mpsc::Receiver<Vec<u8>>, Pull> {
    if start == 0 {
        return Err(Pull::BadRange);
    }
    if !primary.serves(generation) {
        return Err(Pull::Gone {
            generation,
            current: primary.position().generation,
        });
    }
    let (tx, rx) = tokio::sync::mpsc::channel(QUEUE);
    tokio::spawn(async move {
        let ended = tokio::time::timeout(
            settings.lifetime,
            run(&primary, generation, start, &settings, &tx),
        )
        .await;
        if let Ok(Err(why)) = ended {
            tracing::debug!(db = primary.name(), %why, "a push stream ended");
        }
    });
    Ok(rx)
}

#[derive(Debug, thiserror::Error)]
enum Ended {
    #[error("the replica went away")]
    Gone,
    #[error("the replica did not read for {0:?}")]
    Slow(Duration),
    #[error("the history ended: {0:?}")]
    History(Pull),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

async fn send(
    tx: &tokio::sync::mpsc::Sender<Vec<u8>>,
    message: Message,
    settings: &Settings,
) -> Result<(), Ended> {
    match tokio::time::timeout(settings.send_timeout, tx.send(message.encode())).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(Ended::Gone),
        Err(_) => Err(Ended::Slow(settings.send_timeout)),
    }
}

async fn run(
    primary: &Arc<Primary>,
    mut generation: u32,
    mut next: u32,
    settings: &Settings,
    tx: &tokio::sync::mpsc::Sender<Vec<u8>>,
) -> Result<(), Ended> {
    let mut shipped = primary.subscribe();
    send(tx, Message::Heartbeat(primary.position()), settings).await?;
    loop {
        // Mark what has been seen before reading, so a pass that lands
        // while this one sends wakes the wait below.
        shipped.borrow_and_update();
        let p = primary.clone();
        let read = tokio::task::spawn_blocking(move || {
            p.frames(generation, next, next.saturating_add(MAX_PULL_FRAMES))
        })
        .await
        .map_err(std::io::Error::other)??;
        match read {
            Ok(frames) => {
                let count = (frames.len() / FRAME_BYTES) as u32;
                send(
                    tx,
                    Message::Frames {
                        generation,
                        start: next,
                        frames,
                    },
                    settings,
                )
                .await?;
                next += count;
            }
            Err(Pull::End { current }) if current > generation => {
                // Replicas go from one generation to the next; a jump is
                // a new history, which they must bootstrap.
                if !primary.serves(generation + 1) {
                    send(tx, Message::Generation { next: current }, settings).await?;
                    return Err(Ended::History(Pull::Gone {
                        generation: generation + 1,
                        current,
                    }));
                }
                generation += 1;
                next = 1;
                send(tx, Message::Generation { next: generation }, settings).await?;
            }
            Err(Pull::End { .. }) => {
                // Caught up: wait for the shipper, or send a heartbeat.
                match tokio::time::timeout(settings.heartbeat, shipped.changed()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => return Ok(()),
                    Err(_) => send(tx, Message::Heartbeat(primary.position()), settings).await?,
                }
            }
            Err(other) => return Err(Ended::History(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(n: usize, fill: u8) -> Vec<u8> {
        vec![fill; n * FRAME_BYTES]
    }

    #[test]
    fn messages_survive_any_cut() {
        let messages = vec![
            Message::Heartbeat(Position {
                generation: 7,
                frame: 12,
            }),
            Message::Frames {
                generation: 7,
                start: 13,
                frames: frames(3, 0xab),
            },
            Message::Generation { next: 8 },
            Message::Frames {
                generation: 8,
                start: 1,
                frames: frames(1, 0x01),
            },
        ];
        let bytes: Vec<u8> = messages.iter().flat_map(Message::encode).collect();
        for cut in [1, 5, 13, 100, FRAME_BYTES + 3, bytes.len()] {
            let mut d = Decoder::default();
            let mut got = Vec::new();
            for chunk in bytes.chunks(cut) {
                d.push(chunk);
                while let Some(m) = d.next_message().unwrap() {
                    got.push(m);
                }
            }
            assert_eq!(got, messages, "cut every {cut} bytes");
        }
    }

    #[test]
    fn refuses_garbage_and_oversized_announcements() {
        let mut d = Decoder::default();
        d.push(&[b'X'; HEADER_BYTES]);
        assert_eq!(d.next_message(), Err(DecodeError::Tag(b'X')));
        let mut d = Decoder::default();
        let mut header = vec![b'F'];
        for n in [1u32, 1, MAX_PULL_FRAMES + 1] {
            header.extend_from_slice(&n.to_be_bytes());
        }
        d.push(&header);
        assert_eq!(
            d.next_message(),
            Err(DecodeError::TooLong(MAX_PULL_FRAMES + 1))
        );
    }
}
