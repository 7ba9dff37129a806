//! Payments through a provider with the Stripe API's shape.
//!
//! [`PaymentProvider`] is the seam the order saga calls: authorise (a
//! PaymentIntent confirmed with `capture_method=manual`), capture, cancel
//! (void), refund, and finding the intents of an order whose answer was
//! lost. [`stripe::Client`] implements it over HTTP; [`sim`] is a
//! Stripe-shaped server for the embedded default and for fault injection.
//! [`breaker`] (pure) keeps a failing provider from piling up requests, and
//! [`webhook`] signs and verifies event deliveries.
//!
//! Errors say whether a retry can help ([`PayError::is_transient`]); the
//! saga decides from that, never from a message.

pub mod breaker;
pub mod sim;
pub mod stripe;
pub mod webhook;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::future::Future;

/// A PaymentIntent as far as the saga cares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentIntent {
    pub id: String,
    pub status: IntentStatus,
    pub amount: i64,
    pub currency: String,
    #[serde(default)]
    pub amount_capturable: i64,
    #[serde(default)]
    pub amount_received: i64,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

/// Where a PaymentIntent is in its life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntentStatus {
    RequiresPaymentMethod,
    RequiresConfirmation,
    RequiresAction,
    Processing,
    /// Authorised, waiting for capture or cancel.
    RequiresCapture,
    Canceled,
    Succeeded,
    #[serde(other)]
    Unknown,
}

/// What authorising a payment for an order needs.
#[derive(Debug, Clone)]
pub struct Authorise<'a> {
    /// Our order id, stored as `metadata[order_id]` so a lost answer can
    /// be found again.
    pub order_id: &'a str,
    pub amount_minor: i64,
    /// ISO 4217, lower or upper case.
    pub currency: &'a str,
    /// A payment method token from the client (`pm_...`).
    pub payment_method: &'a str,
    pub idempotency_key: &'a str,
}

/// A refund of a captured payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refund {
    pub id: String,
    pub amount: i64,
    #[serde(default)]
    pub payment_intent: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
}

/// Why a provider call failed, and whether trying again can help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PayError {
    /// The card or its issuer said no; retrying will not change that.
    #[error("the payment was declined ({code}): {message}")]
    Declined { code: String, message: String },
    /// No answer in time, a dropped connection, a 5xx, a 429 or a lock
    /// timeout: the call may or may not have happened, so it is retried
    /// with the same idempotency key.
    #[error("the payment provider is unavailable: {0}")]
    Transient(String),
    /// The provider refused the call as made (4xx): a wrong state, an
    /// unknown object, a bad parameter.
    #[error("the payment provider refused the call ({status}, {code}): {message}")]
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    /// The idempotency key was used before with other parameters.
    #[error("idempotency key reused with different parameters: {0}")]
    IdempotencyConflict(String),
    /// The circuit breaker is open: the call was not made.
    #[error("the payment provider is failing; calls resume in {retry_after_secs} s")]
    CircuitOpen { retry_after_secs: u64 },
}

impl PayError {
    /// Whether the same call may succeed later.
    pub fn is_transient(&self) -> bool {
        matches!(self, PayError::Transient(_) | PayError::CircuitOpen { .. })
    }

    /// Whether the provider counts as failing for the circuit breaker: a
    /// decline or a refusal means it is working.
    pub fn is_provider_failure(&self) -> bool {
        matches!(self, PayError::Transient(_))
    }
}

/// The calls the order saga makes. Every mutating call carries an
/// idempotency key, so a retry after a lost answer never charges twice.
pub trait PaymentProvider: Send + Sync {
    /// Creates and confirms a PaymentIntent with manual capture. `Ok` is
    /// normally `requires_capture`; a decline is [`PayError::Declined`].
    fn authorise(
        &self,
        req: &Authorise<'_>,
    ) -> impl Future<Output = Result<PaymentIntent, PayError>> + Send;

    fn retrieve(&self, id: &str) -> impl Future<Output = Result<PaymentIntent, PayError>> + Send;

    /// Captures the whole authorised amount.
    fn capture(
        &self,
        id: &str,
        idempotency_key: &str,
    ) -> impl Future<Output = Result<PaymentIntent, PayError>> + Send;

    /// Cancels (voids) an authorisation that was not captured.
    fn cancel(
        &self,
        id: &str,
        idempotency_key: &str,
    ) -> impl Future<Output = Result<PaymentIntent, PayError>> + Send;

    /// Refunds a captured payment in full.
    fn refund(
        &self,
        payment_intent: &str,
        idempotency_key: &str,
    ) -> impl Future<Output = Result<Refund, PayError>> + Send;

    /// The intents created for an order (by `metadata[order_id]`), for
    /// when an authorisation's answer was lost.
    fn find_for_order(
        &self,
        order_id: &str,
    ) -> impl Future<Output = Result<Vec<PaymentIntent>, PayError>> + Send;
}

/// What an API call does, never its ids: the simulator's metrics label
/// and the client's span name.
pub fn operation(method: &http::Method, path: &str) -> &'static str {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method.as_str(), segments.as_slice()) {
        (_, ["_sim", ..]) => "admin",
        ("POST", ["v1", "payment_intents"]) => "create",
        ("GET", ["v1", "payment_intents"]) => "list",
        ("GET", ["v1", "payment_intents", "search"]) => "search",
        ("GET", ["v1", "payment_intents", _]) => "retrieve",
        ("POST", ["v1", "payment_intents", _, "confirm"]) => "confirm",
        ("POST", ["v1", "payment_intents", _, "capture"]) => "capture",
        ("POST", ["v1", "payment_intents", _, "cancel"]) => "cancel",
        ("POST", ["v1", "refunds"]) => "refund",
        ("GET", ["metrics"]) => "metrics",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_labelled_by_operation_never_by_id() {
        let (post, get) = (http::Method::POST, http::Method::GET);
        assert_eq!(operation(&post, "/v1/payment_intents"), "create");
        assert_eq!(
            operation(&post, "/v1/payment_intents/pi_1/capture"),
            "capture"
        );
        assert_eq!(operation(&get, "/v1/payment_intents/pi_1"), "retrieve");
        assert_eq!(operation(&get, "/v1/payment_intents/search"), "search");
        assert_eq!(operation(&post, "/_sim/faults"), "admin");
        assert_eq!(operation(&get, "/v1/customers/cus_1"), "other");
    }
}
