//! Frames pushed by the primary and not yet applied, and the answers
//! they give to the `libsql` client's pulls.
//!
//! The client pulls `/sync/{generation}/{start}/{end}` and stops at a
//! 400 naming the current generation. With a push stream live, both
//! answers are here already: frames it pushed, and "nothing more" when
//! the pull reaches what the stream last said. Anything else (frames
//! never pushed, a stream that is down) goes to the primary, so the
//! feed only ever makes a pull faster, never different.

use crate::Position;
use replication::push::Message;
use std::collections::VecDeque;

/// Bytes per frame record: a 24-byte header and a 4096-byte page.
pub const FRAME_BYTES: usize = 24 + 4096;
/// Most frames held unapplied; past it the feed is dropped and the
/// replica catches up by pulling (a replica this far behind is not
/// waiting on one commit).
pub const MAX_FRAMES: usize = 4096;

/// What the feed says to one pull.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// Frames from the start asked for.
    Frames(Vec<u8>),
    /// Nothing at or after the start; `generation` is current.
    End { generation: u32 },
}

/// Frames of one generation from `start`; `closed` once the stream said
/// the generation ended (so its end answers with the next one).
#[derive(Debug)]
struct Segment {
    generation: u32,
    start: u32,
    frames: Vec<u8>,
    closed: bool,
}

impl Segment {
    fn end(&self) -> u32 {
        self.start + (self.frames.len() / FRAME_BYTES) as u32
    }
}

#[derive(Debug, Default)]
pub struct Feed {
    segments: VecDeque<Segment>,
    /// A stream is connected and every message it sent is here.
    live: bool,
    /// Where the primary said it was, last.
    primary: Option<Position>,
    /// Frames answered since the last "no more": under a steady stream
    /// of commits a pull would never end (there is always more), and the
    /// replica records its progress only between pulls.
    served: u32,
}

/// Frames one pull is given before it is told "no more" (the next pull
/// goes on at once: the pushes that came meanwhile woke it).
pub const FRAMES_PER_PULL: u32 = 1024;

/// Why a message could not be taken; the stream is then dropped and
/// opened again from the replica's position.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("the push stream skipped from {expected} to {got}")]
    Gap { expected: u32, got: u32 },
    #[error("more than {MAX_FRAMES} frames pushed and not applied")]
    Full,
}

impl Feed {
    /// A new stream from frame `start` of `generation`; it is live from
    /// its first message, which says where the primary is.
    pub fn connected(&mut self, generation: u32, start: u32) {
        self.segments.clear();
        self.segments.push_back(Segment {
            generation,
            start,
            frames: Vec::new(),
            closed: false,
        });
        self.live = false;
    }

    /// The stream ended: pulls go to the primary until the next one.
    pub fn disconnected(&mut self) {
        self.live = false;
        self.segments.clear();
    }

    pub fn is_live(&self) -> bool {
        self.live
    }

    pub fn primary(&self) -> Option<Position> {
        self.primary
    }

    fn held(&self) -> usize {
        self.segments
            .iter()
            .map(|s| s.frames.len() / FRAME_BYTES)
            .sum()
    }

    /// Takes one message of the stream.
    pub fn take(&mut self, message: Message) -> Result<(), Refused> {
        match message {
            Message::Heartbeat(p) => {
                self.live = !self.segments.is_empty();
                self.primary = Some(Position {
                    generation: p.generation,
                    frame: p.frame,
                });
                Ok(())
            }
            Message::Generation { next } => {
                if let Some(last) = self.segments.back_mut() {
                    last.closed = true;
                }
                self.segments.push_back(Segment {
                    generation: next,
                    start: 1,
                    frames: Vec::new(),
                    closed: false,
                });
                self.primary = Some(Position {
                    generation: next,
                    frame: 0,
                });
                Ok(())
            }
            Message::Frames {
                generation,
                start,
                frames,
            } => {
                let count = (frames.len() / FRAME_BYTES) as u32;
                if self.held() + count as usize > MAX_FRAMES {
                    return Err(Refused::Full);
                }
                let Some(last) = self.segments.back_mut() else {
                    return Err(Refused::Gap {
                        expected: 0,
                        got: start,
                    });
                };
                if last.generation != generation || last.closed || last.end() != start {
                    return Err(Refused::Gap {
                        expected: last.end(),
                        got: start,
                    });
                }
                last.frames.extend_from_slice(&frames);
                let tip = Position {
                    generation,
                    frame: last.end() - 1,
                };
                if self.primary.is_none_or(|p| p < tip) {
                    self.primary = Some(tip);
                }
                Ok(())
            }
        }
    }

    /// The answer to a pull of `start..end` in `generation`, if the feed
    /// has it; `None` sends the pull to the primary. The client asks for
    /// a frame only once it has applied the ones before, so what lies
    /// before `start` is let go.
    pub fn answer(&mut self, generation: u32, start: u32, end: u32) -> Option<Answer> {
        if start > 1 {
            self.applied(Position {
                generation,
                frame: start - 1,
            });
        }
        if !self.live || end <= start {
            return None;
        }
        let answer = self.lookup(generation, start, end)?;
        Some(match answer {
            Answer::Frames(_) if self.served >= FRAMES_PER_PULL => {
                self.served = 0;
                Answer::End { generation }
            }
            Answer::Frames(frames) => {
                self.served += (frames.len() / FRAME_BYTES) as u32;
                Answer::Frames(frames)
            }
            end => {
                self.served = 0;
                end
            }
        })
    }

    fn lookup(&self, generation: u32, start: u32, end: u32) -> Option<Answer> {
        let at = self
            .segments
            .iter()
            .position(|s| s.generation == generation)?;
        let seg = &self.segments[at];
        if start >= seg.start && start < seg.end() {
            let from = (start - seg.start) as usize * FRAME_BYTES;
            let to = (end.min(seg.end()) - seg.start) as usize * FRAME_BYTES;
            return Some(Answer::Frames(seg.frames[from..to].to_vec()));
        }
        if start != seg.end() {
            return None;
        }
        if seg.closed {
            // The client checkpoints and asks for the next generation.
            let next = self.segments.get(at + 1)?;
            return Some(Answer::End {
                generation: next.generation,
            });
        }
        // At the tip of what the stream said.
        (at + 1 == self.segments.len()).then_some(Answer::End { generation })
    }

    /// Drops what the replica has applied (it is at `applied`).
    pub fn applied(&mut self, applied: Position) {
        while self
            .segments
            .front()
            .is_some_and(|s| s.generation < applied.generation && self.segments.len() > 1)
        {
            self.segments.pop_front();
        }
        if let Some(seg) = self.segments.front_mut()
            && seg.generation == applied.generation
            && applied.frame >= seg.start
        {
            let drop = (applied.frame + 1).min(seg.end()) - seg.start;
            seg.frames.drain(..drop as usize * FRAME_BYTES);
            seg.start += drop;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(n: u32) -> Vec<u8> {
        (0..n)
            .flat_map(|i| vec![i as u8; FRAME_BYTES])
            .collect::<Vec<u8>>()
    }

    fn pos(generation: u32, frame: u32) -> Position {
        Position { generation, frame }
    }

    #[test]
    fn answers_pushed_frames_then_the_end_then_defers() {
        let mut f = Feed::default();
        assert_eq!(f.answer(3, 10, 20), None, "no stream: the primary answers");
        f.connected(3, 10);
        assert_eq!(f.answer(3, 10, 20), None, "live from its first message");
        f.take(Message::Heartbeat(replication::Position {
            generation: 3,
            frame: 9,
        }))
        .unwrap();
        assert_eq!(f.answer(3, 10, 20), Some(Answer::End { generation: 3 }));
        f.take(Message::Frames {
            generation: 3,
            start: 10,
            frames: frames(4),
        })
        .unwrap();
        assert_eq!(f.primary(), Some(pos(3, 13)));
        let Some(Answer::Frames(got)) = f.answer(3, 11, 13) else {
            panic!("frames expected")
        };
        assert_eq!(got.len(), 2 * FRAME_BYTES);
        assert_eq!(got[0], 1, "frame 11 is the second pushed");
        assert_eq!(f.answer(3, 14, 1038), Some(Answer::End { generation: 3 }));
        // Older than the feed, or another generation: the primary.
        assert_eq!(f.answer(3, 9, 12), None);
        assert_eq!(f.answer(2, 14, 20), None);
        f.disconnected();
        assert_eq!(f.answer(3, 14, 20), None);
    }

    #[test]
    fn a_closed_generation_ends_with_the_next() {
        let mut f = Feed::default();
        f.connected(3, 10);
        f.take(Message::Heartbeat(replication::Position {
            generation: 3,
            frame: 9,
        }))
        .unwrap();
        f.take(Message::Frames {
            generation: 3,
            start: 10,
            frames: frames(2),
        })
        .unwrap();
        f.take(Message::Generation { next: 4 }).unwrap();
        f.take(Message::Frames {
            generation: 4,
            start: 1,
            frames: frames(1),
        })
        .unwrap();
        assert_eq!(f.answer(3, 12, 20), Some(Answer::End { generation: 4 }));
        assert!(matches!(f.answer(4, 1, 20), Some(Answer::Frames(b)) if b.len() == FRAME_BYTES));
        f.applied(pos(4, 1));
        assert_eq!(f.answer(3, 12, 20), None, "gone once applied");
        assert_eq!(f.answer(4, 2, 20), Some(Answer::End { generation: 4 }));
    }

    #[test]
    fn a_long_pull_is_cut_into_pulls_and_lets_go_of_what_it_passed() {
        let mut f = Feed::default();
        f.connected(1, 1);
        f.take(Message::Heartbeat(replication::Position {
            generation: 1,
            frame: 0,
        }))
        .unwrap();
        f.take(Message::Frames {
            generation: 1,
            start: 1,
            frames: frames(FRAMES_PER_PULL + 10),
        })
        .unwrap();
        let mut next = 1;
        while let Some(Answer::Frames(b)) = f.answer(1, next, next + 128) {
            next += (b.len() / FRAME_BYTES) as u32;
        }
        assert_eq!(next, FRAMES_PER_PULL + 1, "cut after a pull's worth");
        assert!(f.held() <= 128, "frames passed were let go: {}", f.held());
        // The next pull goes on from there.
        assert!(matches!(
            f.answer(1, next, next + 128),
            Some(Answer::Frames(_))
        ));
    }

    #[test]
    fn refuses_gaps_and_bounds_what_it_holds() {
        let mut f = Feed::default();
        f.connected(1, 5);
        f.take(Message::Heartbeat(replication::Position {
            generation: 1,
            frame: 4,
        }))
        .unwrap();
        assert_eq!(
            f.take(Message::Frames {
                generation: 1,
                start: 7,
                frames: frames(1),
            }),
            Err(Refused::Gap {
                expected: 5,
                got: 7
            })
        );
        let mut start = 5;
        while f.held() + 1000 <= MAX_FRAMES {
            f.take(Message::Frames {
                generation: 1,
                start,
                frames: vec![0; 1000 * FRAME_BYTES],
            })
            .unwrap();
            start += 1000;
        }
        assert_eq!(
            f.take(Message::Frames {
                generation: 1,
                start,
                frames: vec![0; 1000 * FRAME_BYTES],
            }),
            Err(Refused::Full)
        );
        f.applied(pos(1, start - 1));
        assert_eq!(f.held(), 0, "applied frames are let go");
        assert_eq!(
            f.answer(1, start, start + 1),
            Some(Answer::End { generation: 1 })
        );
    }
}
