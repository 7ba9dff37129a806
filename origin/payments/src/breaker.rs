//! A circuit breaker around the payment provider.
//!
//! [`Breaker`] is pure (time comes in as milliseconds): closed, it admits
//! every call and remembers the last [`Config::window`] outcomes; once at
//! least [`Config::min_calls`] of them are in and the failures reach
//! [`Config::failure_percent`], it opens and refuses calls for
//! [`Config::open_ms`]; then it lets one probe through (half-open) and
//! closes on its success or opens again on its failure. [`Guarded`] puts
//! one in front of a [`PaymentProvider`].

use crate::{Authorise, PayError, PaymentIntent, PaymentProvider, Refund};
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    pub window: usize,
    pub min_calls: usize,
    pub failure_percent: u32,
    pub open_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            window: 20,
            min_calls: 10,
            failure_percent: 50,
            open_ms: 5_000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Closed,
    Open {
        until_ms: u64,
    },
    /// One probe is out; everything else waits for its outcome.
    HalfOpen,
}

#[derive(Debug, Clone)]
pub struct Breaker {
    config: Config,
    state: State,
    /// Recent outcomes while closed, oldest first; `true` is a failure.
    outcomes: VecDeque<bool>,
}

/// A refused call: how long until the breaker lets one through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub retry_after_ms: u64,
}

/// How long callers are told to wait while a probe is out.
const PROBE_WAIT_MS: u64 = 1_000;

impl Breaker {
    pub fn new(config: Config) -> Breaker {
        Breaker {
            config,
            state: State::Closed,
            outcomes: VecDeque::with_capacity(config.window),
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// Whether a call may go to the provider now. An admitted call must be
    /// followed by [`Breaker::record`].
    pub fn admit(&mut self, now_ms: u64) -> Result<(), Refused> {
        match self.state {
            State::Closed => Ok(()),
            State::Open { until_ms } if now_ms >= until_ms => {
                self.state = State::HalfOpen;
                Ok(())
            }
            State::Open { until_ms } => Err(Refused {
                retry_after_ms: until_ms - now_ms,
            }),
            State::HalfOpen => Err(Refused {
                retry_after_ms: PROBE_WAIT_MS,
            }),
        }
    }

    /// How an admitted call went; `failed` means the provider failed (not
    /// a decline).
    pub fn record(&mut self, now_ms: u64, failed: bool) {
        match self.state {
            State::Closed => {
                if self.outcomes.len() == self.config.window.max(1) {
                    self.outcomes.pop_front();
                }
                self.outcomes.push_back(failed);
                let failures = self.outcomes.iter().filter(|f| **f).count();
                if self.outcomes.len() >= self.config.min_calls
                    && failures * 100 >= self.outcomes.len() * self.config.failure_percent as usize
                {
                    self.open(now_ms);
                }
            }
            State::HalfOpen if failed => self.open(now_ms),
            State::HalfOpen => {
                self.state = State::Closed;
                self.outcomes.clear();
            }
            // A call admitted before the breaker opened: its news is old.
            State::Open { .. } => {}
        }
    }

    fn open(&mut self, now_ms: u64) {
        self.state = State::Open {
            until_ms: now_ms + self.config.open_ms,
        };
        self.outcomes.clear();
    }
}

/// A provider behind a breaker: refused calls fail at once with
/// [`PayError::CircuitOpen`], without touching the network.
#[derive(Debug)]
pub struct Guarded<P> {
    inner: P,
    breaker: Mutex<Breaker>,
    epoch: Instant,
}

impl<P: PaymentProvider> Guarded<P> {
    pub fn new(inner: P, config: Config) -> Guarded<P> {
        Guarded {
            inner,
            breaker: Mutex::new(Breaker::new(config)),
            epoch: Instant::now(),
        }
    }

    pub fn inner(&self) -> &P {
        &self.inner
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Refuses fast when the breaker is open, without admitting a call: for
    /// turning new work away before any of it starts.
    pub fn check(&self) -> Result<(), PayError> {
        let now = self.now_ms();
        let b = self.breaker.lock().expect("breaker lock");
        match b.state {
            State::Open { until_ms } if now < until_ms => Err(PayError::CircuitOpen {
                retry_after_secs: (until_ms - now).div_ceil(1000),
            }),
            State::HalfOpen => Err(PayError::CircuitOpen {
                retry_after_secs: PROBE_WAIT_MS.div_ceil(1000),
            }),
            _ => Ok(()),
        }
    }

    pub fn state(&self) -> State {
        self.breaker.lock().expect("breaker lock").state()
    }

    async fn guard<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, PayError>>,
    ) -> Result<T, PayError> {
        let admitted = self
            .breaker
            .lock()
            .expect("breaker lock")
            .admit(self.now_ms());
        if let Err(r) = admitted {
            return Err(PayError::CircuitOpen {
                retry_after_secs: r.retry_after_ms.div_ceil(1000).max(1),
            });
        }
        let result = call.await;
        let failed = matches!(&result, Err(e) if e.is_provider_failure());
        let (before, after) = {
            let mut b = self.breaker.lock().expect("breaker lock");
            let before = b.state();
            b.record(self.now_ms(), failed);
            (before, b.state())
        };
        match (before, after) {
            (State::Open { .. }, _) | (_, State::HalfOpen) => {}
            (_, State::Open { .. }) => {
                if let Err(e) = &result {
                    tracing::warn!("payment breaker opened: the provider is failing ({e})");
                }
            }
            (State::HalfOpen, State::Closed) => tracing::info!("payment breaker closed"),
            _ => {}
        }
        result
    }
}

impl<P: PaymentProvider> PaymentProvider for Guarded<P> {
    async fn authorise(&self, req: &Authorise<'_>) -> Result<PaymentIntent, PayError> {
        self.guard(self.inner.authorise(req)).await
    }
    async fn retrieve(&self, id: &str) -> Result<PaymentIntent, PayError> {
        self.guard(self.inner.retrieve(id)).await
    }
    async fn capture(&self, id: &str, key: &str) -> Result<PaymentIntent, PayError> {
        self.guard(self.inner.capture(id, key)).await
    }
    async fn cancel(&self, id: &str, key: &str) -> Result<PaymentIntent, PayError> {
        self.guard(self.inner.cancel(id, key)).await
    }
    async fn refund(&self, id: &str, key: &str) -> Result<Refund, PayError> {
        self.guard(self.inner.refund(id, key)).await
    }
    async fn find_for_order(&self, order_id: &str) -> Result<Vec<PaymentIntent>, PayError> {
        self.guard(self.inner.find_for_order(order_id)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> Breaker {
        Breaker::new(Config {
            window: 10,
            min_calls: 4,
            failure_percent: 50,
            open_ms: 1_000,
        })
    }

    #[test]
    fn opens_on_failures_probes_then_closes() {
        let mut b = breaker();
        // Three failures are not enough calls to judge.
        for t in 0..3 {
            b.admit(t).unwrap();
            b.record(t, true);
        }
        assert_eq!(b.state(), State::Closed);
        b.admit(3).unwrap();
        b.record(3, true);
        assert_eq!(b.state(), State::Open { until_ms: 1_003 });
        assert_eq!(
            b.admit(500),
            Err(Refused {
                retry_after_ms: 503
            })
        );
        // One probe after the cool-down; others wait for it.
        b.admit(1_003).unwrap();
        assert_eq!(b.state(), State::HalfOpen);
        assert!(b.admit(1_004).is_err());
        b.record(1_010, false);
        assert_eq!(b.state(), State::Closed);
        // The old failures are forgotten.
        b.admit(1_011).unwrap();
        b.record(1_011, true);
        assert_eq!(b.state(), State::Closed);
    }

    #[test]
    fn a_failed_probe_opens_again() {
        let mut b = breaker();
        for t in 0..4 {
            b.admit(t).unwrap();
            b.record(t, true);
        }
        b.admit(2_000).unwrap();
        b.record(2_100, true);
        assert_eq!(b.state(), State::Open { until_ms: 3_100 });
    }

    #[test]
    fn a_healthy_provider_with_some_failures_stays_closed() {
        let mut b = breaker();
        for t in 0..1_000u64 {
            b.admit(t).unwrap();
            // One failure in three: under the 50% threshold in every window
            // of ten.
            b.record(t, t % 3 == 2);
        }
        assert_eq!(b.state(), State::Closed);
    }

    #[test]
    fn never_admits_while_open_and_only_one_probe_at_a_time() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut rnd = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut b = breaker();
        let mut now = 0u64;
        let mut out = 0u32;
        for _ in 0..100_000 {
            now += rnd() % 50;
            let before = b.state();
            if out > 0 && rnd() % 2 == 0 {
                out -= 1;
                b.record(now, rnd() % 3 != 0);
                continue;
            }
            match b.admit(now) {
                Ok(()) => {
                    if let State::Open { until_ms } = before {
                        assert!(now >= until_ms);
                    }
                    assert!(before != State::HalfOpen, "a second probe was admitted");
                    out += 1;
                }
                Err(r) => {
                    assert!(r.retry_after_ms > 0);
                    assert!(before != State::Closed);
                }
            }
        }
    }
}
