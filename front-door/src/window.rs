//! The last few minutes of one PoP's traffic as the front door saw it, in
//! fixed slots, for the status page: request rate, p99, cache hit ratio,
//! error rate and replication lag per slot. Pure: the caller passes the
//! clock.
//!
//! Latencies go into log-spaced buckets (a quarter of a doubling each),
//! so a slot is a few hundred bytes whatever the traffic, and a p99 read
//! from them is within 19% of the true one.

use std::collections::VecDeque;
use std::time::Duration;

/// Width of one slot.
pub const SLOT: Duration = Duration::from_secs(10);
/// Slots kept: five minutes.
pub const SLOTS: usize = 30;

/// Bucket `i` holds latencies up to `FIRST_US * 2^(i/4)`: 100 µs to
/// about 100 s across 80 buckets.
const FIRST_US: f64 = 100.0;
const BUCKETS: usize = 80;

#[derive(Debug, Clone, PartialEq)]
pub struct Slot {
    /// Which slot since the clock's epoch (`now / SLOT`).
    pub index: u64,
    pub requests: u64,
    /// Answers with a 5xx status, or none at all.
    pub errors: u64,
    /// Responses the edge cache served (fresh or stale).
    pub hits: u64,
    /// Responses that went through the edge cache's lookup at all.
    pub looked_up: u64,
    /// Largest replication lag any of the PoP's replicas reported.
    pub lag_ms: Option<u64>,
    latency: Vec<u32>,
}

impl Slot {
    fn new(index: u64) -> Slot {
        Slot {
            index,
            requests: 0,
            errors: 0,
            hits: 0,
            looked_up: 0,
            lag_ms: None,
            latency: vec![0; BUCKETS],
        }
    }

    /// The 99th percentile latency in ms (the upper bound of its bucket).
    pub fn p99_ms(&self) -> Option<f64> {
        let total: u64 = self.latency.iter().map(|&n| u64::from(n)).sum();
        if total == 0 {
            return None;
        }
        let rank = (total * 99).div_ceil(100);
        let mut seen = 0;
        for (i, &n) in self.latency.iter().enumerate() {
            seen += u64::from(n);
            if seen >= rank {
                return Some(bucket_upper_us(i) / 1000.0);
            }
        }
        None
    }

    pub fn per_second(&self) -> f64 {
        self.requests as f64 / SLOT.as_secs_f64()
    }

    pub fn hit_ratio(&self) -> Option<f64> {
        (self.looked_up > 0).then(|| self.hits as f64 / self.looked_up as f64)
    }

    pub fn error_ratio(&self) -> Option<f64> {
        (self.requests > 0).then(|| self.errors as f64 / self.requests as f64)
    }
}

fn bucket_upper_us(i: usize) -> f64 {
    FIRST_US * 2f64.powf(i as f64 / 4.0)
}

fn bucket_of(latency: Duration) -> usize {
    let us = latency.as_secs_f64() * 1e6;
    if us <= FIRST_US {
        return 0;
    }
    ((4.0 * (us / FIRST_US).log2()).ceil() as usize).min(BUCKETS - 1)
}

/// What one response told the front door.
#[derive(Debug, Clone, Copy)]
pub struct Seen {
    pub latency: Duration,
    pub error: bool,
    /// `Some(true)` for a cache hit, `Some(false)` for a lookup that missed,
    /// `None` when the cache was not consulted.
    pub hit: Option<bool>,
}

#[derive(Debug, Default)]
pub struct Window {
    slots: VecDeque<Slot>,
}

impl Window {
    fn slot(&mut self, now: Duration) -> &mut Slot {
        let index = now.as_secs() / SLOT.as_secs();
        if self.slots.back().is_none_or(|s| s.index != index) {
            self.slots.push_back(Slot::new(index));
            while self.slots.len() > SLOTS {
                self.slots.pop_front();
            }
        }
        self.slots.back_mut().expect("a slot was just added")
    }

    pub fn record(&mut self, now: Duration, seen: Seen) {
        let slot = self.slot(now);
        slot.requests += 1;
        slot.errors += u64::from(seen.error);
        if let Some(hit) = seen.hit {
            slot.looked_up += 1;
            slot.hits += u64::from(hit);
        }
        let b = bucket_of(seen.latency);
        slot.latency[b] = slot.latency[b].saturating_add(1);
    }

    pub fn record_lag(&mut self, now: Duration, lag_ms: u64) {
        let slot = self.slot(now);
        slot.lag_ms = Some(slot.lag_ms.map_or(lag_ms, |l| l.max(lag_ms)));
    }

    /// The last [`SLOTS`] slots up to `now`, oldest first, empty ones
    /// included (a quiet PoP shows zero, not a gap; so do the minutes
    /// before the clock started).
    pub fn series(&self, now: Duration) -> Vec<Slot> {
        let last = now.as_secs() / SLOT.as_secs();
        (0..SLOTS as u64)
            .rev()
            .map(|back| match last.checked_sub(back) {
                Some(i) => self
                    .slots
                    .iter()
                    .find(|s| s.index == i)
                    .cloned()
                    .unwrap_or_else(|| Slot::new(i)),
                None => Slot::new(u64::MAX),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(ms: u64, error: bool, hit: Option<bool>) -> Seen {
        Seen {
            latency: Duration::from_millis(ms),
            error,
            hit,
        }
    }

    #[test]
    fn a_slot_counts_rate_errors_hits_and_the_tail() {
        let mut w = Window::default();
        let now = Duration::from_secs(1_000);
        for _ in 0..98 {
            w.record(now, seen(2, false, Some(true)));
        }
        w.record(now, seen(40, true, Some(false)));
        w.record(now, seen(400, false, None));
        let s = w.series(now).pop().unwrap();
        assert_eq!(s.requests, 100);
        assert_eq!(s.per_second(), 10.0);
        assert_eq!(s.error_ratio(), Some(0.01));
        assert_eq!(s.hit_ratio(), Some(98.0 / 99.0));
        // The 99th of 100 is the 40 ms one; its bucket's bound is within
        // a quarter doubling above it.
        let p99 = s.p99_ms().unwrap();
        assert!((40.0..=40.0 * 1.19).contains(&p99), "{p99}");
    }

    #[test]
    fn old_slots_fall_out_and_quiet_ones_read_as_zero() {
        let mut w = Window::default();
        w.record(Duration::from_secs(0), seen(1, false, None));
        w.record_lag(Duration::from_secs(5), 300);
        w.record_lag(Duration::from_secs(6), 200);
        let now = Duration::from_secs(25);
        w.record(now, seen(1, false, None));
        let series = w.series(now);
        assert_eq!(series.len(), SLOTS);
        let tail: Vec<u64> = series.iter().rev().take(3).map(|s| s.requests).collect();
        assert_eq!(tail, [1, 0, 1]);
        assert_eq!(series[SLOTS - 3].lag_ms, Some(300));
        assert_eq!(series[SLOTS - 2].p99_ms(), None);
        // Five minutes on, the first slot is gone.
        let later = now + SLOT * SLOTS as u32;
        w.record(later, seen(1, false, None));
        assert!(
            w.series(later)
                .iter()
                .take(SLOTS - 1)
                .all(|s| s.requests == 0)
        );
        assert!(w.slots.len() <= SLOTS);
    }
}
