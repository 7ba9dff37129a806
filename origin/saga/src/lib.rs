//! The order saga as a pure state machine.
//!
//! Forward steps run in order: reserve stock, authorise the payment
//! (manual capture), confirm the order, capture. A step's outcome moves the
//! saga on, retries it (transient errors, within a budget), or fails it;
//! a failure runs the compensations of every completed step in reverse
//! (void or refund the payment, release the stock) and ends in one final
//! state that says why. Persisting each transition, with the reason, is the
//! caller's job; this crate decides them.

/// A unit of work the orchestrator performs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    ReserveStock,
    AuthorisePayment,
    ConfirmOrder,
    CapturePayment,
    // Compensations.
    VoidPayment,
    RefundPayment,
    ReleaseStock,
}

/// How a step went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// It failed for good (declined, out of stock): no retry helps.
    Rejected,
    /// It failed in a way that may pass on a retry (timeout, 5xx).
    Transient,
}

/// Where a saga ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Final {
    Completed,
    OutOfStock,
    PaymentFailed,
    /// A later step failed (or ran out of retries) and everything before it
    /// was undone.
    Cancelled,
}

/// A saga in flight or ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Saga {
    /// Forward steps completed, in order.
    pub done: Vec<Step>,
    /// Compensations still to run, next first.
    pub undo: Vec<Step>,
    /// Set once the saga fails; it ends there when `undo` is empty.
    pub failed: Option<Final>,
    /// Attempts of the current step so far.
    pub attempts: u32,
    pub ended: Option<Final>,
}

const FORWARD: [Step; 4] = [
    Step::ReserveStock,
    Step::AuthorisePayment,
    Step::ConfirmOrder,
    Step::CapturePayment,
];

impl Final {
    pub fn name(self) -> &'static str {
        match self {
            Final::Completed => "completed",
            Final::OutOfStock => "out_of_stock",
            Final::PaymentFailed => "payment_failed",
            Final::Cancelled => "cancelled",
        }
    }
}

impl Step {
    pub fn name(self) -> &'static str {
        match self {
            Step::ReserveStock => "reserve_stock",
            Step::AuthorisePayment => "authorise_payment",
            Step::ConfirmOrder => "confirm_order",
            Step::CapturePayment => "capture_payment",
            Step::VoidPayment => "release_payment",
            Step::RefundPayment => "refund_payment",
            Step::ReleaseStock => "release_stock",
        }
    }
}

/// Attempts a step gets before a transient failure counts as a failure.
/// Compensations are retried without limit: they must happen (the
/// orchestrator spaces them out with [`backoff_ms`]).
pub const MAX_ATTEMPTS: u32 = 5;

impl Default for Saga {
    fn default() -> Self {
        Saga::new()
    }
}

impl Saga {
    pub fn new() -> Saga {
        Saga {
            done: Vec::new(),
            undo: Vec::new(),
            failed: None,
            attempts: 0,
            ended: None,
        }
    }

    /// The order's status as people and queries see it.
    pub fn status(&self) -> &'static str {
        if let Some(end) = self.ended {
            return end.name();
        }
        if self.failed.is_some() {
            return "compensating";
        }
        match self.done.last() {
            None => "pending",
            Some(Step::ReserveStock) => "reserved",
            Some(Step::AuthorisePayment) => "authorised",
            Some(_) => "confirmed",
        }
    }

    /// Whether `step` ran to completion on the way forward.
    pub fn did(&self, step: Step) -> bool {
        self.done.contains(&step)
    }

    /// The step to run now; `None` once ended.
    pub fn next(&self) -> Option<Step> {
        if self.ended.is_some() {
            return None;
        }
        if self.failed.is_some() {
            return self.undo.first().copied();
        }
        FORWARD.get(self.done.len()).copied()
    }

    /// Records how `step` (which must be [`Saga::next`]) went.
    pub fn record(&mut self, step: Step, outcome: Outcome) {
        debug_assert_eq!(Some(step), self.next());
        if self.failed.is_some() {
            // Compensating: only success moves on.
            if outcome == Outcome::Done {
                self.undo.remove(0);
                self.attempts = 0;
                if self.undo.is_empty() {
                    self.ended = self.failed;
                }
            } else {
                self.attempts += 1;
            }
            return;
        }
        match outcome {
            Outcome::Done => {
                self.done.push(step);
                self.attempts = 0;
                if self.done.len() == FORWARD.len() {
                    self.ended = Some(Final::Completed);
                }
            }
            Outcome::Transient if self.attempts + 1 < MAX_ATTEMPTS => self.attempts += 1,
            Outcome::Transient | Outcome::Rejected => self.fail(step, outcome),
        }
    }

    fn fail(&mut self, step: Step, outcome: Outcome) {
        let why = match (step, outcome) {
            (Step::ReserveStock, Outcome::Rejected) => Final::OutOfStock,
            (Step::AuthorisePayment, Outcome::Rejected) => Final::PaymentFailed,
            _ => Final::Cancelled,
        };
        // Undo what was done, newest first. A payment is voided while it
        // is only authorised; capture is the last step, so a captured
        // payment is never undone here (refunds are for returns).
        self.undo = self
            .done
            .iter()
            .rev()
            .filter_map(|s| match s {
                Step::ReserveStock => Some(Step::ReleaseStock),
                Step::AuthorisePayment => Some(Step::VoidPayment),
                _ => None,
            })
            .collect();
        // An authorisation that never answered may still have happened at
        // the provider: release whatever it holds too. It goes last: the
        // two undos are independent, and while the provider is failing the
        // stock should not wait for it.
        if step == Step::AuthorisePayment && outcome == Outcome::Transient {
            self.undo.push(Step::VoidPayment);
        }
        self.attempts = 0;
        self.failed = Some(why);
        if self.undo.is_empty() {
            self.ended = Some(why);
        }
    }
}

/// Full-jitter exponential backoff: a delay in `[0, min(cap, base * 2^attempt))`
/// from a uniform `random` in `[0, 1)`.
pub fn backoff_ms(attempt: u32, base_ms: u64, cap_ms: u64, random: f64) -> u64 {
    let ceiling = base_ms.saturating_mul(1u64 << attempt.min(32)).min(cap_ms);
    (ceiling as f64 * random.clamp(0.0, 1.0 - f64::EPSILON)) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a saga on outcomes from `pick` until it ends; returns it and
    /// every step run.
    fn run(mut pick: impl FnMut(Step) -> Outcome) -> (Saga, Vec<(Step, Outcome)>) {
        let mut saga = Saga::new();
        let mut log = Vec::new();
        for _ in 0..10_000 {
            let Some(step) = saga.next() else {
                return (saga, log);
            };
            let outcome = pick(step);
            log.push((step, outcome));
            saga.record(step, outcome);
        }
        panic!("the saga never ended: {saga:?}");
    }

    #[test]
    fn the_happy_path_completes() {
        let (saga, log) = run(|_| Outcome::Done);
        assert_eq!(saga.ended, Some(Final::Completed));
        assert_eq!(log.iter().map(|(s, _)| *s).collect::<Vec<_>>(), FORWARD);
    }

    #[test]
    fn each_failure_ends_in_its_own_state_with_everything_undone() {
        let (s, _) = run(|step| match step {
            Step::ReserveStock => Outcome::Rejected,
            _ => Outcome::Done,
        });
        assert_eq!(s.ended, Some(Final::OutOfStock));
        let (s, log) = run(|step| match step {
            Step::AuthorisePayment => Outcome::Rejected,
            _ => Outcome::Done,
        });
        assert_eq!(s.ended, Some(Final::PaymentFailed));
        assert_eq!(log.last().unwrap().0, Step::ReleaseStock);
        let (s, log) = run(|step| match step {
            Step::CapturePayment => Outcome::Transient,
            _ => Outcome::Done,
        });
        assert_eq!(s.ended, Some(Final::Cancelled));
        let undo: Vec<Step> = log.iter().rev().take(2).map(|(s, _)| *s).collect();
        assert_eq!(undo, [Step::ReleaseStock, Step::VoidPayment]);
    }

    #[test]
    fn any_sequence_of_outcomes_ends_consistently() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            let (saga, log) = run(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                match x % 10 {
                    0 => Outcome::Rejected,
                    1..=2 => Outcome::Transient,
                    _ => Outcome::Done,
                }
            });
            let ended = saga.ended.expect("ended");
            let did = |step: Step| log.iter().any(|&(s, o)| s == step && o == Outcome::Done);
            match ended {
                Final::Completed => {
                    assert!(did(Step::CapturePayment));
                    assert!(!did(Step::ReleaseStock) && !did(Step::VoidPayment));
                }
                Final::OutOfStock => assert!(!did(Step::AuthorisePayment)),
                Final::PaymentFailed | Final::Cancelled => {
                    // Nothing captured, and whatever was held is given back.
                    assert!(!did(Step::CapturePayment));
                    assert_eq!(did(Step::ReserveStock), did(Step::ReleaseStock));
                    if did(Step::AuthorisePayment) {
                        assert!(did(Step::VoidPayment));
                    }
                }
            }
        }
    }

    #[test]
    fn an_authorisation_that_never_answered_is_released_too() {
        let (s, log) = run(|step| match step {
            Step::AuthorisePayment => Outcome::Transient,
            _ => Outcome::Done,
        });
        assert_eq!(s.ended, Some(Final::Cancelled));
        let undo: Vec<Step> = log.iter().rev().take(2).map(|(s, _)| *s).collect();
        assert_eq!(undo, [Step::VoidPayment, Step::ReleaseStock]);
    }

    #[test]
    fn the_state_survives_a_round_trip_through_json() {
        let mut saga = Saga::new();
        saga.record(Step::ReserveStock, Outcome::Done);
        saga.record(Step::AuthorisePayment, Outcome::Transient);
        let json = serde_json::to_string(&saga).unwrap();
        assert_eq!(serde_json::from_str::<Saga>(&json).unwrap(), saga);
        assert_eq!(saga.status(), "reserved");
    }

    #[test]
    fn backoff_is_jittered_exponential_and_capped() {
        assert_eq!(backoff_ms(0, 100, 10_000, 0.0), 0);
        assert_eq!(backoff_ms(0, 100, 10_000, 0.5), 50);
        assert_eq!(backoff_ms(3, 100, 10_000, 0.5), 400);
        assert_eq!(backoff_ms(20, 100, 10_000, 0.5), 5_000);
        assert!(backoff_ms(60, 100, 10_000, 1.0) < 10_000);
    }
}
