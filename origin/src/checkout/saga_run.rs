//! The orchestrator: runs an order's saga one step at a time, persisting
//! every move with its reason before the next, so a crash at any point
//! leaves a state a restart resumes from. Every step is idempotent (stock
//! holds are named by the order; provider calls carry per-order
//! idempotency keys), bounded by a timeout, and transient failures are
//! retried with jittered exponential backoff within the saga's budget.

use super::stock::{self, Held};
use super::store::{self, Order};
use super::{Checkout, now_ms};
use payments::{Authorise, IntentStatus, PayError, PaymentProvider};
use saga::{Outcome, Step};
use std::time::{Duration, Instant};

/// First retry delay ceiling, and the largest.
const BACKOFF_BASE_MS: u64 = 100;
const BACKOFF_CAP_MS: u64 = 2_000;

/// How one attempt at a step went, and what to write in the history.
struct Attempt {
    outcome: Outcome,
    detail: String,
    /// Set when the step failed for good: why the order ends.
    reason: Option<String>,
}

impl Attempt {
    fn done(detail: impl Into<String>) -> Attempt {
        Attempt {
            outcome: Outcome::Done,
            detail: detail.into(),
            reason: None,
        }
    }
    fn transient(detail: impl Into<String>) -> Attempt {
        Attempt {
            outcome: Outcome::Transient,
            detail: detail.into(),
            reason: None,
        }
    }
    fn rejected(why: impl Into<String>) -> Attempt {
        let why = why.into();
        Attempt {
            outcome: Outcome::Rejected,
            detail: why.clone(),
            reason: Some(why),
        }
    }
}

/// Whether a call drove an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driven {
    /// This task drove it as far as it could, or it had already ended.
    Here,
    /// Another task of this process, or another process holding the
    /// order's lease, is driving it.
    Elsewhere,
}

impl Checkout {
    /// Moves an order's saga until it ends or, with a deadline, until the
    /// next move would be after it. One task in one process drives an
    /// order at a time: this process's other tasks return at once, and
    /// so does this one while another process holds the order's lease.
    /// `leased`: this process took the lease when it created the order.
    pub async fn drive(
        &self,
        id: &str,
        deadline: Option<Instant>,
        leased: bool,
    ) -> Result<Driven, libsql::Error> {
        if !self
            .driving
            .lock()
            .expect("driving lock")
            .insert(id.to_string())
        {
            return Ok(Driven::Elsewhere);
        }
        let result = self.drive_claimed(id, deadline, leased).await;
        self.driving.lock().expect("driving lock").remove(id);
        self.finished.notify_waiters();
        result
    }

    async fn drive_claimed(
        &self,
        id: &str,
        deadline: Option<Instant>,
        leased: bool,
    ) -> Result<Driven, libsql::Error> {
        if !leased {
            let (order_id, lease) = (id.to_string(), self.lease.clone());
            // A lost claim is taken again: no disk wait.
            let claim = self
                .orders
                .write_unsynced(move |c| {
                    Box::pin(async move {
                        store::claim(c, &order_id, now_ms(), &lease)
                            .await
                            .map(db_writer::Step::Commit)
                    })
                })
                .await?;
            match claim {
                store::Claim::Ended => return Ok(Driven::Here),
                store::Claim::Held => return Ok(Driven::Elsewhere),
                store::Claim::Taken { from: Some(from) } => {
                    tracing::info!(order = id, from, "took over a saga whose lease ran out");
                    self.takeovers
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                store::Claim::Taken { from: None } => {}
            }
        }
        // Loaded once: while this task holds the order's lease, nobody
        // else writes its saga, and every move below is written before
        // the next.
        let Some(mut order) = self
            .orders
            .read(async |c| store::load(c, id, None).await)
            .await?
        else {
            return Ok(Driven::Here);
        };
        loop {
            let Some(step) = order.saga.next() else {
                return Ok(Driven::Here);
            };
            let wait = Duration::from_millis((order.next_attempt_at - now_ms()).max(0) as u64);
            if let Some(d) = deadline {
                // A request stops at its deadline, and once the order's
                // fate is decided and what is left is a compensation that
                // must wait to be retried: the background finishes it.
                if Instant::now() + wait > d || (order.saga.failed.is_some() && !wait.is_zero()) {
                    return Ok(Driven::Here);
                }
            }
            // Not `sleep(ZERO)`: tokio rounds a deadline up to its next
            // millisecond tick, so a step due now would wait about a
            // millisecond for the timer wheel (a fifth of an order's time).
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            let span = tracing::info_span!(
                "saga step",
                otel.name = step.name(),
                saga.step = step.name(),
                saga.order = %order.id,
                saga.outcome = tracing::field::Empty,
            );
            let attempt = match tokio::time::timeout(
                self.step_timeout,
                tracing::Instrument::instrument(self.run(step, &mut order), span.clone()),
            )
            .await
            {
                Ok(a) => a,
                Err(_) => Attempt::transient(format!(
                    "no result within {} ms",
                    self.step_timeout.as_millis()
                )),
            };
            let attempts_before = order.saga.attempts;
            order.saga.record(step, attempt.outcome);
            if let Some(why) = attempt.reason.clone()
                && order.reason.is_none()
            {
                order.reason = Some(why);
            }
            if order.saga.failed.is_some() && order.reason.is_none() {
                order.reason = Some(format!("{} kept failing: {}", step.name(), attempt.detail));
            }
            let retrying = order.saga.next() == Some(step) && attempt.outcome != Outcome::Done;
            order.next_attempt_at = if retrying {
                let delay = saga::backoff_ms(
                    order.saga.attempts.max(attempts_before + 1),
                    BACKOFF_BASE_MS,
                    BACKOFF_CAP_MS,
                    self.random_unit(),
                );
                now_ms() + delay as i64
            } else {
                0
            };
            let outcome = match attempt.outcome {
                Outcome::Done => "done",
                Outcome::Transient if retrying => "retrying",
                Outcome::Transient => "gave up",
                Outcome::Rejected => "failed",
            };
            self.metrics.step(step.name(), outcome);
            span.record("saga.outcome", outcome);
            let detail = if attempt.detail.is_empty() {
                outcome.to_string()
            } else {
                format!("{outcome}: {}", attempt.detail)
            };
            let (moved, lease) = (order.clone(), self.lease.clone());
            // On the disk when the order ends (its answer and outbox
            // event). A move before that which a machine crash loses is
            // redone: every step is idempotent, and the order itself was
            // on the disk before the first step.
            let synced = order.saga.ended.is_some();
            let held = self
                .orders
                .write_as(synced, move |c| {
                    Box::pin(async move {
                        let held =
                            store::advance(c, &moved, step.name(), &detail, now_ms(), &lease)
                                .await?;
                        Ok(db_writer::Step::Commit(held))
                    })
                })
                .await?;
            if !held {
                // This process stalled past its lease and another took the
                // order over; the step just run is idempotent, so running
                // it twice changed nothing, and the new owner records it.
                tracing::warn!(order = id, step = step.name(), "lost the saga's lease");
                return Ok(Driven::Elsewhere);
            }
            if let Some(end) = order.saga.ended {
                tracing::debug!(order = id, status = end.name(), "order ended");
                return Ok(Driven::Here);
            }
        }
    }

    async fn run(&self, step: Step, order: &mut Order) -> Attempt {
        let hold = self.hold_id(&order.id);
        match step {
            Step::ReserveStock => {
                let lines = order.lines.clone();
                let held = self
                    .catalog
                    .write(move |c| {
                        Box::pin(async move {
                            Ok(match stock::hold(c, &hold, &lines).await? {
                                Held::Done => db_writer::Step::Commit(Held::Done),
                                // Lines taken before the short one go back.
                                short => db_writer::Step::Rollback(short),
                            })
                        })
                    })
                    .await;
                match held {
                    Ok(Held::Done) => Attempt::done(format!("{} lines held", order.lines.len())),
                    Ok(Held::Short { product_id, left }) => {
                        Attempt::rejected(format!("product {product_id} has only {left} left"))
                    }
                    Err(e) => Attempt::transient(format!("catalog: {e}")),
                }
            }
            Step::ConfirmOrder => match self
                .catalog
                .write(move |c| {
                    Box::pin(async move {
                        stock::sell(c, &hold).await?;
                        Ok(db_writer::Step::Commit(()))
                    })
                })
                .await
            {
                Ok(()) => Attempt::done("stock sold"),
                Err(e) => Attempt::transient(format!("catalog: {e}")),
            },
            Step::ReleaseStock => match self
                .catalog
                .write(move |c| {
                    Box::pin(async move {
                        stock::release(c, &hold).await?;
                        Ok(db_writer::Step::Commit(()))
                    })
                })
                .await
            {
                Ok(()) => Attempt::done("stock returned"),
                Err(e) => Attempt::transient(format!("catalog: {e}")),
            },
            Step::AuthorisePayment => self.authorise(order).await,
            Step::CapturePayment => self.capture(order).await,
            Step::VoidPayment | Step::RefundPayment => self.release_payment(order).await,
        }
    }

    async fn authorise(&self, order: &mut Order) -> Attempt {
        let key = format!("{}-authorise", order.id);
        let req = Authorise {
            order_id: &order.id,
            amount_minor: order.total_minor,
            currency: &order.currency,
            payment_method: &order.payment_method,
            idempotency_key: &key,
        };
        match self.provider.authorise(&req).await {
            Ok(pi) => {
                order.payment_intent = Some(pi.id.clone());
                match pi.status {
                    IntentStatus::RequiresCapture | IntentStatus::Succeeded => {
                        Attempt::done(format!("{} authorised", pi.id))
                    }
                    other => Attempt::rejected(format!(
                        "the payment needs a step this checkout does not support ({other:?})"
                    )),
                }
            }
            Err(PayError::Declined { message, code }) => {
                Attempt::rejected(format!("payment declined ({code}): {message}"))
            }
            Err(e) if e.is_transient() => Attempt::transient(e.to_string()),
            Err(e) => Attempt::rejected(format!("the payment provider refused: {e}")),
        }
    }

    async fn capture(&self, order: &Order) -> Attempt {
        let Some(pi) = order.payment_intent.as_deref() else {
            return Attempt::rejected("no authorisation to capture");
        };
        match self
            .provider
            .capture(pi, &format!("{}-capture", order.id))
            .await
        {
            Ok(p) if p.status == IntentStatus::Succeeded => Attempt::done(format!("{pi} captured")),
            Ok(p) => Attempt::transient(format!("{pi} is {:?} after capture", p.status)),
            Err(e) if e.is_transient() => Attempt::transient(e.to_string()),
            // A capture that already happened (an answer lost in a crash)
            // is refused as a wrong state: look at what is there.
            Err(PayError::Refused { .. }) => match self.provider.retrieve(pi).await {
                Ok(p) if p.status == IntentStatus::Succeeded => {
                    Attempt::done(format!("{pi} was already captured"))
                }
                Ok(p) => {
                    Attempt::rejected(format!("{pi} cannot be captured: it is {:?}", p.status))
                }
                Err(e) => Attempt::transient(e.to_string()),
            },
            Err(e) => Attempt::rejected(format!("capture failed: {e}")),
        }
    }

    /// Gives back whatever the order's payment holds: voids an
    /// authorisation, refunds a capture. With no known intent (its answer
    /// was lost), finds the order's intents at the provider.
    async fn release_payment(&self, order: &Order) -> Attempt {
        let intents = match order.payment_intent.as_deref() {
            Some(pi) => self.provider.retrieve(pi).await.map(|p| vec![p]),
            None => self.provider.find_for_order(&order.id).await,
        };
        let intents = match intents {
            Ok(i) => i,
            Err(e) => return Attempt::transient(e.to_string()),
        };
        let mut did = Vec::new();
        for pi in intents {
            let result = match pi.status {
                IntentStatus::Canceled => continue,
                IntentStatus::Succeeded => self
                    .provider
                    .refund(&pi.id, &format!("{}-refund-{}", order.id, pi.id))
                    .await
                    .map(|_| format!("{} refunded", pi.id)),
                // Still processing: it will settle; look again next attempt.
                IntentStatus::Processing => {
                    return Attempt::transient(format!("{} is still processing", pi.id));
                }
                _ => self
                    .provider
                    .cancel(&pi.id, &format!("{}-void-{}", order.id, pi.id))
                    .await
                    .map(|_| format!("{} voided", pi.id)),
            };
            match result {
                Ok(d) => did.push(d),
                Err(PayError::Refused { code, .. }) if code == "charge_already_refunded" => {
                    did.push(format!("{} was already refunded", pi.id));
                }
                // A declined intent holds nothing and may refuse a cancel.
                Err(PayError::Refused { .. })
                    if pi.status == IntentStatus::RequiresPaymentMethod => {}
                Err(e) => return Attempt::transient(format!("{}: {e}", pi.id)),
            }
        }
        Attempt::done(if did.is_empty() {
            "nothing held".to_string()
        } else {
            did.join(", ")
        })
    }
}
