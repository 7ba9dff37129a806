//! The algorithm, with the numbers the `RateLimit` fields report.

/// `quota` requests per `window`, with up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Nanoseconds between requests at the sustained rate.
    interval_ns: u64,
    /// How far the TAT may run ahead of `now`: `burst` intervals.
    tolerance_ns: u64,
    quota: u64,
    window_secs: u64,
    burst: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuotaError {
    Zero,
    TooLarge,
}

impl std::fmt::Display for QuotaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QuotaError::Zero => write!(f, "quota, window and burst must all be at least 1"),
            QuotaError::TooLarge => write!(f, "the window is too long for this quota"),
        }
    }
}

impl std::error::Error for QuotaError {}

const NS: u64 = 1_000_000_000;

impl Quota {
    pub fn new(quota: u64, window_secs: u64, burst: u64) -> Result<Quota, QuotaError> {
        if quota == 0 || window_secs == 0 || burst == 0 {
            return Err(QuotaError::Zero);
        }
        let window_ns = window_secs.checked_mul(NS).ok_or(QuotaError::TooLarge)?;
        let interval_ns = (window_ns / quota).max(1);
        let tolerance_ns = interval_ns.checked_mul(burst).ok_or(QuotaError::TooLarge)?;
        Ok(Quota {
            interval_ns,
            tolerance_ns,
            quota,
            window_secs,
            burst,
        })
    }

    pub fn quota(&self) -> u64 {
        self.quota
    }

    pub fn window_secs(&self) -> u64 {
        self.window_secs
    }

    pub fn burst(&self) -> u64 {
        self.burst
    }

    pub fn interval_ns(&self) -> u64 {
        self.interval_ns
    }

    /// Decides one request at `now` for a key whose stored TAT is `tat`
    /// (`None` for a key never seen, or forgotten).
    pub fn decide(&self, tat: Option<u64>, now: u64) -> Decision {
        let tat = tat.unwrap_or(now).max(now);
        let next = tat.saturating_add(self.interval_ns);
        let ahead = next - now;
        if ahead > self.tolerance_ns {
            // Admitted once the TAT has fallen back by the excess.
            let wait = ahead - self.tolerance_ns;
            Decision::Denied {
                retry_after_secs: ceil_secs(wait),
                reset_secs: ceil_secs(tat - now),
            }
        } else {
            Decision::Allowed {
                tat: next,
                remaining: (self.tolerance_ns - ahead) / self.interval_ns,
                reset_secs: ceil_secs(ahead),
            }
        }
    }
}

fn ceil_secs(ns: u64) -> u64 {
    ns.div_ceil(NS)
}

/// What to do with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Admit it and store `tat` for the key (only if the key still holds
    /// the value the decision was made on: compare-and-swap).
    Allowed {
        tat: u64,
        /// Requests that could follow at once.
        remaining: u64,
        /// Seconds until the key is back to a full burst.
        reset_secs: u64,
    },
    /// Refuse it; nothing is stored.
    Denied {
        /// Seconds until a request would be admitted (at least 1).
        retry_after_secs: u64,
        reset_secs: u64,
    },
}

impl Decision {
    pub fn allowed(&self) -> bool {
        matches!(self, Decision::Allowed { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference: a continuous-state leaky bucket (ITU-T I.371's other
    /// formulation of the same rate), written independently.
    struct Bucket {
        level: u64,
        last: u64,
        increment: u64,
        limit: u64,
    }

    impl Bucket {
        fn arrive(&mut self, t: u64) -> (bool, u64) {
            let drained = self.level.saturating_sub(t.saturating_sub(self.last));
            let t = t.max(self.last);
            if drained + self.increment > self.limit {
                let wait = drained + self.increment - self.limit;
                (false, wait)
            } else {
                self.level = drained + self.increment;
                self.last = t;
                (true, 0)
            }
        }
    }

    /// A small seeded generator, so a failure names its case.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    #[test]
    fn gcra_decides_like_the_leaky_bucket_on_random_arrivals() {
        for seed in 1..=2_000u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
            let q = Quota::new(1 + rng.below(200), 1 + rng.below(120), 1 + rng.below(50)).unwrap();
            let mut bucket = Bucket {
                level: 0,
                last: 0,
                increment: q.interval_ns,
                limit: q.tolerance_ns,
            };
            let mut tat = None;
            let mut now = rng.below(10 * NS);
            for step in 0..300 {
                // Bursts, steady arrivals, long idles.
                now = match rng.below(10) {
                    0 => now + rng.below(600) * NS,
                    1..=5 => now,
                    _ => now + rng.below(2 * q.interval_ns),
                };
                // A clock reading from behind (another instance's skew)
                // never admits what the true time would refuse.
                let earlier = now.saturating_sub(rng.below(3 * q.interval_ns));
                if q.decide(tat, earlier).allowed() {
                    assert!(q.decide(tat, now).allowed(), "seed {seed} step {step}");
                }
                let decision = q.decide(tat, now);
                let (ok, wait) = bucket.arrive(now);
                assert_eq!(decision.allowed(), ok, "seed {seed} step {step} {q:?}");
                match decision {
                    Decision::Allowed { tat: t, .. } => tat = Some(t),
                    Decision::Denied {
                        retry_after_secs, ..
                    } => {
                        assert_eq!(retry_after_secs, ceil_secs(wait), "seed {seed} step {step}");
                        assert!(retry_after_secs >= 1);
                        // Waiting exactly that long is always enough.
                        let later = now + retry_after_secs * NS;
                        assert!(q.decide(tat, later).allowed(), "seed {seed} step {step}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_fresh_key_gets_its_burst_then_the_sustained_rate() {
        // 10 per 10 s with a burst of 5: five at once, then one a second.
        let q = Quota::new(10, 10, 5).unwrap();
        let mut tat = None;
        for i in 0..5 {
            match q.decide(tat, 0) {
                Decision::Allowed {
                    tat: t, remaining, ..
                } => {
                    assert_eq!(remaining, 4 - i);
                    tat = Some(t);
                }
                d => panic!("request {i}: {d:?}"),
            }
        }
        assert_eq!(
            q.decide(tat, 0),
            Decision::Denied {
                retry_after_secs: 1,
                reset_secs: 5
            }
        );
        assert!(q.decide(tat, NS).allowed());
        assert!(!q.decide(tat, NS - 1).allowed());
    }

    #[test]
    fn admitted_requests_never_exceed_rate_times_time_plus_burst() {
        let q = Quota::new(100, 60, 20).unwrap();
        let mut tat = None;
        let mut admitted = 0u64;
        let span = 30 * NS;
        let mut now = 0;
        while now <= span {
            if let Decision::Allowed { tat: t, .. } = q.decide(tat, now) {
                tat = Some(t);
                admitted += 1;
            }
            now += 7_000_000; // a request every 7 ms, far above the rate
        }
        let bound = span / q.interval_ns() + q.burst();
        assert!(admitted <= bound, "{admitted} > {bound}");
        assert!(admitted >= bound - 1, "{admitted} is well under {bound}");
    }

    #[test]
    fn bad_quotas_are_refused() {
        assert_eq!(Quota::new(0, 60, 1), Err(QuotaError::Zero));
        assert_eq!(Quota::new(1, 0, 1), Err(QuotaError::Zero));
        assert_eq!(Quota::new(1, 60, 0), Err(QuotaError::Zero));
        assert_eq!(Quota::new(1, u64::MAX, 1), Err(QuotaError::TooLarge));
    }
}
