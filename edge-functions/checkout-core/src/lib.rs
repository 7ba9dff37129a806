//! The checkout request: parsing and validation, shared by the edge
//! gateway (which refuses bad input before it costs the origin a round
//! trip) and the origin (which trusts nothing the edge says). Pure: no I/O.

use problem::Problem;
use serde::{Deserialize, Serialize};

/// Largest checkout body accepted.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// Most lines in one order.
pub const MAX_LINES: usize = 50;
/// Most units of one product in one order.
pub const MAX_QUANTITY: i64 = 100;
/// Longest `Idempotency-Key`.
pub const MAX_KEY_LEN: usize = 255;

/// What the shopper sends to `POST /api/v1/checkout`. The cart lives in
/// the client, so each line carries the price the shopper saw: the origin
/// re-prices every line and refuses the order if a price moved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckoutRequest {
    pub items: Vec<Item>,
    pub shipping_address: Address,
    /// A payment method token from the payment provider's client SDK.
    pub payment_method: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Item {
    pub product_id: i64,
    pub quantity: i64,
    /// The unit price the shopper was shown, in minor units.
    pub unit_price_minor: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Address {
    pub name: String,
    pub line1: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub line2: String,
    pub city: String,
    pub postal_code: String,
    /// ISO 3166-1 alpha-2, e.g. `DE`.
    pub country: String,
}

fn invalid(field: &str, detail: impl Into<String>) -> Problem {
    Problem::new(
        422,
        "invalid-checkout",
        "The checkout request is not valid",
        detail,
    )
    .with("field", field)
}

fn text(field: &str, value: &str, max: usize, required: bool) -> Result<(), Problem> {
    if required && value.trim().is_empty() {
        return Err(invalid(field, format!("{field} is required")));
    }
    if value.chars().count() > max {
        return Err(invalid(
            field,
            format!("{field} is longer than {max} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid(
            field,
            format!("{field} contains control characters"),
        ));
    }
    Ok(())
}

impl CheckoutRequest {
    /// Parses and validates a body. Errors are 400 (not JSON of this
    /// shape) or 422 (well-formed but not acceptable), naming the field.
    pub fn parse(body: &[u8]) -> Result<CheckoutRequest, Problem> {
        if body.len() > MAX_BODY_BYTES {
            return Err(Problem::payload_too_large(MAX_BODY_BYTES as u64));
        }
        let req: CheckoutRequest = serde_json::from_slice(body).map_err(|e| {
            Problem::bad_request(format!(
                "the body must be a JSON checkout request \
                 ({{\"items\": [...], \"shipping_address\": {{...}}, \"payment_method\": \"pm_...\"}}): {e}"
            ))
        })?;
        req.validate()?;
        Ok(req)
    }

    pub fn validate(&self) -> Result<(), Problem> {
        if self.items.is_empty() {
            return Err(invalid("items", "the order has no items"));
        }
        if self.items.len() > MAX_LINES {
            return Err(invalid(
                "items",
                format!("an order has at most {MAX_LINES} lines"),
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, item) in self.items.iter().enumerate() {
            let field = format!("items[{i}]");
            if item.product_id <= 0 {
                return Err(invalid(&field, "product_id must be a positive integer"));
            }
            if !(1..=MAX_QUANTITY).contains(&item.quantity) {
                return Err(invalid(
                    &field,
                    format!("quantity must be between 1 and {MAX_QUANTITY}"),
                ));
            }
            if item.unit_price_minor < 0 {
                return Err(invalid(&field, "unit_price_minor cannot be negative"));
            }
            if !seen.insert(item.product_id) {
                return Err(invalid(
                    &field,
                    format!(
                        "product {} appears twice; send one line with the total quantity",
                        item.product_id
                    ),
                ));
            }
        }
        let a = &self.shipping_address;
        text("shipping_address.name", &a.name, 200, true)?;
        text("shipping_address.line1", &a.line1, 200, true)?;
        text("shipping_address.line2", &a.line2, 200, false)?;
        text("shipping_address.city", &a.city, 100, true)?;
        text("shipping_address.postal_code", &a.postal_code, 20, true)?;
        if a.country.len() != 2 || !a.country.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(invalid(
                "shipping_address.country",
                "country must be an ISO 3166-1 alpha-2 code in capitals, e.g. DE",
            ));
        }
        let pm = &self.payment_method;
        if !pm.starts_with("pm_")
            || pm.len() > 255
            || !pm.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(invalid(
                "payment_method",
                "payment_method must be a payment method token (pm_...) from the payment form",
            ));
        }
        Ok(())
    }

    /// The request in one canonical form: two bodies that differ only in
    /// spacing or key order are the same request for idempotency.
    pub fn canonical(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a checkout request serialises")
    }
}

/// Checks an `Idempotency-Key` header: required on checkout, 1 to 255
/// visible ASCII characters.
pub fn idempotency_key(header: Option<&[u8]>) -> Result<&str, Problem> {
    let Some(raw) = header else {
        return Err(Problem::new(
            400,
            "idempotency-key-required",
            "Idempotency-Key required",
            "send an Idempotency-Key header (a fresh random value, e.g. a UUID, per checkout; \
             reuse it only to retry the same checkout)",
        ));
    };
    let key = std::str::from_utf8(raw).unwrap_or("");
    if key.is_empty() || key.len() > MAX_KEY_LEN || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Problem::new(
            400,
            "invalid-idempotency-key",
            "Invalid Idempotency-Key",
            format!("the Idempotency-Key must be 1 to {MAX_KEY_LEN} visible ASCII characters"),
        ));
    }
    Ok(key)
}

/// Checks an order id from a path: ours are `ord_` and 32 hex digits (the
/// time, then 80 random bits), or 20 (random only, before ids carried
/// their time).
pub fn order_id(segment: &str) -> Option<&str> {
    let hex = segment.strip_prefix("ord_")?;
    (matches!(hex.len(), 20 | 32) && hex.bytes().all(|b| b.is_ascii_hexdigit())).then_some(segment)
}

/// A checkout gateway's routes at the edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `POST /api/v1/checkout`: place an order.
    Checkout,
    /// `GET /api/v1/orders`: the shopper's orders.
    Orders,
    /// `GET /api/v1/orders/{id}`: one of them.
    Order,
}

impl Route {
    /// The route of `path`, or the 404 to answer.
    pub fn parse(path: &str) -> Result<Route, Problem> {
        match path {
            "/api/v1/checkout" => Ok(Route::Checkout),
            "/api/v1/orders" => Ok(Route::Orders),
            p => match p.strip_prefix("/api/v1/orders/") {
                Some(id) if order_id(id).is_some() => Ok(Route::Order),
                Some(_) => Err(Problem::not_found(
                    "there is no such order; GET /api/v1/orders lists yours",
                )),
                None => Err(Problem::not_found(format!("there is nothing at {path}"))),
            },
        }
    }

    /// The one method the route takes.
    pub fn method(self) -> &'static str {
        match self {
            Route::Checkout => "POST",
            Route::Orders | Route::Order => "GET",
        }
    }
}

/// The answer when the order service cannot be reached from the edge;
/// `how` says what happened.
pub fn unreachable(how: &str) -> Problem {
    Problem::unavailable(format!(
        "checkout is unavailable from here right now: the order service {how}. \
         Nothing was charged; browsing still works. Retry with the same Idempotency-Key."
    ))
    .with("retry_after", 5)
}

/// The answer when the order service did not answer in time: the order
/// may still complete, and a retry with the same key tells.
pub fn timed_out() -> Problem {
    Problem::gateway_timeout(
        "the order service did not answer in time; your checkout may still complete: \
         retry with the same Idempotency-Key to get its outcome (you will not be charged twice)",
    )
    .with("retry_after", 5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_routes_and_their_methods() {
        assert_eq!(Route::parse("/api/v1/checkout").unwrap().method(), "POST");
        assert_eq!(Route::parse("/api/v1/orders").unwrap(), Route::Orders);
        let order = Route::parse("/api/v1/orders/ord_0123456789abcdef0123").unwrap();
        assert_eq!((order, order.method()), (Route::Order, "GET"));
        assert_eq!(Route::parse("/api/v1/orders/42").unwrap_err().status, 404);
        assert_eq!(Route::parse("/api/v1/checkouts").unwrap_err().status, 404);
    }

    fn body() -> serde_json::Value {
        serde_json::json!({
            "items": [{"product_id": 1, "quantity": 2, "unit_price_minor": 1299}],
            "shipping_address": {"name": "Ada", "line1": "1 Loop Rd", "city": "Berlin",
                                 "postal_code": "10115", "country": "DE"},
            "payment_method": "pm_card_visa"
        })
    }

    fn field_of(v: serde_json::Value) -> String {
        let p = CheckoutRequest::parse(&serde_json::to_vec(&v).unwrap()).unwrap_err();
        assert_eq!(p.status, 422, "{p}");
        p.extensions["field"].as_str().unwrap().to_string()
    }

    #[test]
    fn a_good_request_parses_and_canonicalises() {
        let r = CheckoutRequest::parse(&serde_json::to_vec(&body()).unwrap()).unwrap();
        let spaced = serde_json::to_string_pretty(&body()).unwrap();
        let again = CheckoutRequest::parse(spaced.as_bytes()).unwrap();
        assert_eq!(r.canonical(), again.canonical());
    }

    #[test]
    fn bad_input_names_the_field() {
        let mut v = body();
        v["items"] = serde_json::json!([]);
        assert_eq!(field_of(v), "items");
        let mut v = body();
        v["items"][0]["quantity"] = 0.into();
        assert_eq!(field_of(v), "items[0]");
        let mut v = body();
        v["items"][0]["quantity"] = 101.into();
        assert_eq!(field_of(v), "items[0]");
        let mut v = body();
        v["items"] = serde_json::json!([
            {"product_id": 1, "quantity": 1, "unit_price_minor": 1},
            {"product_id": 1, "quantity": 1, "unit_price_minor": 1}]);
        assert_eq!(field_of(v), "items[1]");
        let mut v = body();
        v["shipping_address"]["country"] = "Germany".into();
        assert_eq!(field_of(v), "shipping_address.country");
        let mut v = body();
        v["shipping_address"]["name"] = " ".into();
        assert_eq!(field_of(v), "shipping_address.name");
        let mut v = body();
        v["shipping_address"]["city"] = "a\u{0}b".into();
        assert_eq!(field_of(v), "shipping_address.city");
        let mut v = body();
        v["payment_method"] = "4242424242424242".into();
        assert_eq!(field_of(v), "payment_method");
        let items: Vec<_> = (1..=51)
            .map(|i| serde_json::json!({"product_id": i, "quantity": 1, "unit_price_minor": 1}))
            .collect();
        let mut v = body();
        v["items"] = items.into();
        assert_eq!(field_of(v), "items");
    }

    #[test]
    fn malformed_or_oversized_bodies_are_refused() {
        assert_eq!(CheckoutRequest::parse(b"{").unwrap_err().status, 400);
        let mut v = body();
        v["coupon"] = "FREE".into();
        assert_eq!(
            CheckoutRequest::parse(&serde_json::to_vec(&v).unwrap())
                .unwrap_err()
                .status,
            400
        );
        let big = vec![b' '; MAX_BODY_BYTES + 1];
        assert_eq!(CheckoutRequest::parse(&big).unwrap_err().status, 413);
    }

    #[test]
    fn idempotency_keys_and_order_ids() {
        assert_eq!(idempotency_key(None).unwrap_err().status, 400);
        assert_eq!(idempotency_key(Some(b"")).unwrap_err().status, 400);
        assert_eq!(idempotency_key(Some(b"a b")).unwrap_err().status, 400);
        assert_eq!(idempotency_key(Some(&[b'k'; 256])).unwrap_err().status, 400);
        assert_eq!(idempotency_key(Some(b"9f1c-42")).unwrap(), "9f1c-42");
        assert!(order_id("ord_0123456789abcdef0123").is_some());
        assert!(order_id("ord_019af2c3d4e5aabbccddeeff00112233").is_some());
        for bad in [
            "ord_",
            "ord_xyz",
            "ord_0123456789abcdef012",
            "ord_019af2c3d4e5aabbccddeeff0011223",
            "ord_019af2c3d4e5aabbccddeeff001122334",
            "1",
            "ord_0123456789abcdef0123/x",
        ] {
            assert!(order_id(bad).is_none(), "{bad}");
        }
    }
}
