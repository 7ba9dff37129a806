//! The payment client against two Stripe-shaped providers: PyPI
//! `localstripe` (a third-party fake, the oracle) and our simulator
//! (`edgeshop-paysim`, which adds idempotency, search and faults). Both run
//! as real processes on 127.0.0.1.

use edgeshop_e2e::{
    Host, TempDir, WEBHOOK_SECRET, private_ca, request, set_faults, start_paysim as paysim,
};
use payments::breaker::{Config as BreakerConfig, Guarded, State};
use payments::stripe::{Client, Config};
use payments::{Authorise, IntentStatus, PayError, PaymentProvider, webhook};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// localstripe's app, served on a loopback port the OS picks.
fn localstripe() -> Host {
    let python = std::env::var("EDGESHOP_ORACLE_PYTHON").expect(
        "EDGESHOP_ORACLE_PYTHON names the Python with localstripe installed; \
         run the suite with `cargo xtask test`",
    );
    let script = "import socket\n\
from aiohttp import web\n\
from localstripe.server import app\n\
s = socket.socket()\n\
s.bind(('127.0.0.1', 0))\n\
s.listen(128)\n\
print('localstripe listening on http://127.0.0.1:%d' % s.getsockname()[1], flush=True)\n\
web.run_app(app, sock=s, print=None)\n";
    let mut cmd = Command::new(python);
    cmd.args(["-c", script]);
    Host::spawn(cmd).unwrap_or_else(|log| panic!("localstripe did not start:\n{log}"))
}

fn client(url: &str, timeout_ms: u64) -> Client {
    Client::new(Config {
        base_url: url.to_string(),
        secret_key: "sk_test_edgeshop".into(),
        timeout: Duration::from_millis(timeout_ms),
        extra_roots: Vec::new(),
    })
    .unwrap()
}

fn order(order_id: &str, key: &str, method: &'static str) -> Authorise<'static> {
    Authorise {
        order_id: Box::leak(order_id.to_string().into_boxed_str()),
        amount_minor: 4_250,
        currency: "EUR",
        payment_method: method,
        idempotency_key: Box::leak(key.to_string().into_boxed_str()),
    }
}

fn refused(e: &PayError, status: u16) -> bool {
    matches!(e, PayError::Refused { status: s, .. } if *s == status)
}

/// What every Stripe-shaped provider must do for the saga.
async fn contract(p: &Client) {
    // Authorise, then capture.
    let pi = p
        .authorise(&order("o-1", "k-1", "pm_card_visa"))
        .await
        .unwrap();
    assert_eq!(pi.status, IntentStatus::RequiresCapture, "{pi:?}");
    // (localstripe leaves `amount_capturable` out; the simulator sets it.)
    assert_eq!(pi.amount, 4_250);
    assert_eq!(pi.currency, "eur");
    assert_eq!(pi.metadata.get("order_id").map(String::as_str), Some("o-1"));
    assert_eq!(
        p.retrieve(&pi.id).await.unwrap().status,
        IntentStatus::RequiresCapture
    );
    let captured = p.capture(&pi.id, "k-1-capture").await.unwrap();
    assert_eq!(captured.status, IntentStatus::Succeeded);
    // Capturing twice or voiding a capture is refused, not an outage.
    let again = p.capture(&pi.id, "k-1-capture-2").await.unwrap_err();
    assert!(refused(&again, 400), "{again:?}");
    assert!(!again.is_transient());
    let void = p.cancel(&pi.id, "k-1-cancel").await.unwrap_err();
    assert!(refused(&void, 400), "{void:?}");
    // A captured payment is refunded instead, once.
    let refund = p.refund(&pi.id, "k-1-refund").await.unwrap();
    assert_eq!(refund.amount, 4_250);

    // Authorise, then void.
    let pi = p
        .authorise(&order("o-2", "k-2", "pm_card_visa"))
        .await
        .unwrap();
    let voided = p.cancel(&pi.id, "k-2-cancel").await.unwrap();
    assert_eq!(voided.status, IntentStatus::Canceled);
    // A voided payment cannot be taken. (Stripe refuses the capture;
    // localstripe answers 200 but the intent stays canceled.)
    match p.capture(&pi.id, "k-2-capture").await {
        Err(e) => assert!(refused(&e, 400), "{e:?}"),
        Ok(after) => assert_eq!(after.status, IntentStatus::Canceled),
    }
    assert_eq!(
        p.retrieve(&pi.id).await.unwrap().status,
        IntentStatus::Canceled
    );

    // A declined card.
    let declined = p
        .authorise(&order("o-3", "k-3", "pm_card_chargeCustomerFail"))
        .await
        .unwrap_err();
    assert!(
        matches!(&declined, PayError::Declined { .. }),
        "{declined:?}"
    );
    assert!(!declined.is_transient() && !declined.is_provider_failure());

    // Unknown objects and bad keys.
    assert!(refused(
        &p.retrieve("pi_doesnotexist").await.unwrap_err(),
        404
    ));
    assert!(refused(
        &p.capture("pi_doesnotexist", "k-4").await.unwrap_err(),
        404
    ));
}

#[tokio::test]
async fn the_client_works_against_localstripe() {
    let ls = localstripe();
    contract(&client(&ls.url, 5_000)).await;
    let bad = Client::new(Config {
        base_url: ls.url.clone(),
        secret_key: String::new(),
        timeout: Duration::from_secs(5),
        extra_roots: Vec::new(),
    })
    .unwrap();
    assert!(refused(&bad.retrieve("pi_x").await.unwrap_err(), 401));
}

#[tokio::test]
async fn the_client_works_against_the_simulator() {
    let sim = paysim(&[]);
    contract(&client(&sim.url, 5_000)).await;
    let bad = Client::new(Config {
        base_url: sim.url.clone(),
        secret_key: "pk_wrong".into(),
        timeout: Duration::from_secs(5),
        extra_roots: Vec::new(),
    })
    .unwrap();
    assert!(refused(&bad.retrieve("pi_x").await.unwrap_err(), 401));
}

#[tokio::test]
async fn the_client_speaks_https_and_trusts_only_the_roots_it_is_given() {
    let dir = TempDir::new("payments-tls");
    let ca = private_ca(&dir.0);
    let sim = paysim(&[
        "--tls-cert",
        ca.cert.to_str().unwrap(),
        "--tls-key",
        ca.key.to_str().unwrap(),
    ]);
    assert!(sim.url.starts_with("https://127.0.0.1:"), "{}", sim.url);
    let trusting = Client::new(Config {
        base_url: sim.url.clone(),
        secret_key: "sk_test_edgeshop".into(),
        timeout: Duration::from_secs(5),
        extra_roots: admission::tls::read_certificates(&ca.ca).unwrap(),
    })
    .unwrap();
    contract(&trusting).await;

    // With only the web PKI's roots the handshake fails: a provider
    // failure (the breaker counts it), saying why, and nothing was sent.
    let untrusting = client(&sim.url, 5_000);
    let e = untrusting
        .authorise(&order("o-tls", "k-tls", "pm_card_visa"))
        .await
        .unwrap_err();
    assert!(e.is_provider_failure(), "{e:?}");
    assert!(e.to_string().contains("invalid peer certificate"), "{e}");
    assert!(trusting.find_for_order("o-tls").await.unwrap().is_empty());
    // Plain HTTP to the TLS port gets no answer that parses as one.
    let plain = client(&sim.url.replace("https://", "http://"), 2_000);
    assert!(plain.retrieve("pi_x").await.unwrap_err().is_transient());
    // A file without certificates is a start-up error, not a silent default.
    let empty = dir.0.join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    assert!(admission::tls::read_certificates(&empty).is_err());
}

/// A server that records webhook deliveries: (Stripe-Signature, body).
async fn webhook_sink() -> (String, Arc<Mutex<Vec<(String, Vec<u8>)>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/webhooks", listener.local_addr().unwrap());
    let sink = got.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let sink = sink.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let sink = sink.clone();
                        async move {
                            let sig = req
                                .headers()
                                .get("stripe-signature")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("")
                                .to_string();
                            let body = http_body_util::BodyExt::collect(req.into_body())
                                .await
                                .map(|b| b.to_bytes().to_vec())
                                .unwrap_or_default();
                            sink.lock().unwrap().push((sig, body));
                            Ok::<_, std::convert::Infallible>(hyper::Response::new(
                                http_body_util::Full::new(bytes::Bytes::new()),
                            ))
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (url, got)
}

async fn wait_for(got: &Mutex<Vec<(String, Vec<u8>)>>, n: usize) -> Vec<(String, Vec<u8>)> {
    for _ in 0..200 {
        if got.lock().unwrap().len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    got.lock().unwrap().clone()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test]
async fn our_verifier_accepts_localstripe_signed_webhooks() {
    let ls = localstripe();
    let (url, got) = webhook_sink().await;
    let r = request(
        "POST",
        &format!("{}/_config/webhooks/edgeshop", ls.url),
        &[("content-type", "application/x-www-form-urlencoded")],
        format!("url={url}&secret={WEBHOOK_SECRET}").into_bytes(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let p = client(&ls.url, 5_000);
    let pi = p
        .authorise(&order("o-w", "k-w", "pm_card_visa"))
        .await
        .unwrap();
    p.capture(&pi.id, "k-w-capture").await.unwrap();
    let delivered = wait_for(&got, 1).await;
    let succeeded = delivered
        .iter()
        .find(|(_, body)| {
            serde_json::from_slice::<webhook::Event>(body)
                .is_ok_and(|e| e.kind == "payment_intent.succeeded")
        })
        .unwrap_or_else(|| {
            panic!(
                "no payment_intent.succeeded among {} deliveries",
                delivered.len()
            )
        });
    let (sig, body) = succeeded;
    assert_eq!(webhook::verify(sig, body, WEBHOOK_SECRET, now()), Ok(()));
    assert!(webhook::verify(sig, body, "whsec_other", now()).is_err());
    let event: webhook::Event = serde_json::from_slice(body).unwrap();
    assert_eq!(event.payment_intent().unwrap().id, pi.id);
}

#[tokio::test]
async fn the_simulator_replays_idempotent_calls_and_finds_lost_answers() {
    let sim = paysim(&[]);
    let p = client(&sim.url, 5_000);
    let first = p
        .authorise(&order("o-10", "key-10", "pm_card_visa"))
        .await
        .unwrap();
    let again = p
        .authorise(&order("o-10", "key-10", "pm_card_visa"))
        .await
        .unwrap();
    assert_eq!(first.id, again.id, "a replay must not authorise twice");
    // The same key for another order is a conflict.
    let mut other = order("o-11", "key-10", "pm_card_visa");
    other.amount_minor = 1;
    assert!(matches!(
        p.authorise(&other).await.unwrap_err(),
        PayError::IdempotencyConflict(_)
    ));
    // Search by order finds it.
    let found = p.find_for_order("o-10").await.unwrap();
    assert_eq!(
        found.iter().map(|pi| &pi.id).collect::<Vec<_>>(),
        [&first.id]
    );
    assert!(p.find_for_order("o-none").await.unwrap().is_empty());
    let stats = request("GET", &format!("{}/_sim/stats", sim.url), &[], vec![])
        .await
        .json();
    assert_eq!(stats["authorised"], 1);
    assert_eq!(stats["idempotent_replays"], 1);
}

#[tokio::test]
async fn a_timed_out_call_is_retried_safely_and_a_5xx_did_nothing() {
    // Every call is done but answered late: the client times out.
    let sim = paysim(&["--timeout-percent", "100", "--hang-ms", "1500"]);
    let p = client(&sim.url, 300);
    let lost = p
        .authorise(&order("o-20", "key-20", "pm_card_visa"))
        .await
        .unwrap_err();
    assert!(lost.is_transient(), "{lost:?}");
    set_faults(&sim, serde_json::json!({})).await;
    // The retry with the same key gets the first answer: one authorisation.
    let pi = p
        .authorise(&order("o-20", "key-20", "pm_card_visa"))
        .await
        .unwrap();
    assert_eq!(p.find_for_order("o-20").await.unwrap().len(), 1);
    assert_eq!(pi.status, IntentStatus::RequiresCapture);

    set_faults(&sim, serde_json::json!({"error_percent": 100})).await;
    let failed = p
        .authorise(&order("o-21", "key-21", "pm_card_visa"))
        .await
        .unwrap_err();
    assert!(
        failed.is_transient() && failed.is_provider_failure(),
        "{failed:?}"
    );
    set_faults(&sim, serde_json::json!({})).await;
    assert!(p.find_for_order("o-21").await.unwrap().is_empty());
}

#[tokio::test]
async fn the_breaker_fails_fast_while_the_provider_fails_and_recovers() {
    let sim = paysim(&["--error-percent", "100"]);
    let p = Guarded::new(
        client(&sim.url, 2_000),
        BreakerConfig {
            window: 10,
            min_calls: 5,
            failure_percent: 50,
            open_ms: 500,
        },
    );
    for i in 0..5 {
        let e = p.retrieve(&format!("pi_{i}")).await.unwrap_err();
        assert!(matches!(e, PayError::Transient(_)), "{e:?}");
    }
    assert!(matches!(p.state(), State::Open { .. }));
    let started = std::time::Instant::now();
    let e = p.retrieve("pi_x").await.unwrap_err();
    assert!(
        matches!(
            e,
            PayError::CircuitOpen {
                retry_after_secs: 1
            }
        ),
        "{e:?}"
    );
    assert!(p.check().is_err());
    // No I/O: far inside the provider timeout even on a loaded machine.
    assert!(started.elapsed() < Duration::from_millis(500));
    let before = request("GET", &format!("{}/_sim/stats", sim.url), &[], vec![])
        .await
        .json();
    assert_eq!(
        before["injected_errors"], 5,
        "refused calls never reach the provider"
    );
    // The provider heals; after the cool-down one probe closes the breaker.
    set_faults(&sim, serde_json::json!({})).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(refused(&p.retrieve("pi_x").await.unwrap_err(), 404));
    assert_eq!(p.state(), State::Closed);
}

#[tokio::test]
async fn the_simulator_signs_duplicates_and_shuffles_webhooks() {
    let (url, got) = webhook_sink().await;
    let sim = paysim(&[
        "--webhook-url",
        &url,
        "--duplicate-webhook-percent",
        "100",
        "--webhook-jitter-ms",
        "200",
    ]);
    let p = client(&sim.url, 5_000);
    for i in 0..10 {
        let pi = p
            .authorise(&order(&format!("o-{i}"), &format!("k-{i}"), "pm_card_visa"))
            .await
            .unwrap();
        p.capture(&pi.id, &format!("k-{i}-c")).await.unwrap();
    }
    // 20 events, each delivered twice.
    let delivered = wait_for(&got, 40).await;
    assert_eq!(delivered.len(), 40);
    let mut ids = Vec::new();
    for (sig, body) in &delivered {
        assert_eq!(webhook::verify(sig, body, WEBHOOK_SECRET, now()), Ok(()));
        ids.push(serde_json::from_slice::<webhook::Event>(body).unwrap().id);
    }
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 20);
    assert_ne!(
        ids,
        {
            let mut sorted = ids.clone();
            sorted.sort();
            sorted
        },
        "the jitter should deliver some events out of order"
    );
}

#[tokio::test]
async fn a_stored_failure_is_replayed_as_a_refusal_not_an_outage() {
    let sim = paysim(&["--capture-fail-percent", "100"]);
    let p = client(&sim.url, 5_000);
    let pi = p
        .authorise(&order("o-30", "key-30", "pm_card_visa"))
        .await
        .unwrap();
    let first = p.capture(&pi.id, "key-30-capture").await.unwrap_err();
    assert!(
        first.is_transient() && first.is_provider_failure(),
        "{first:?}"
    );
    let again = p.capture(&pi.id, "key-30-capture").await.unwrap_err();
    assert!(
        matches!(&again, PayError::Refused { status: 500, code, .. } if code == "idempotent_replay"),
        "{again:?}"
    );
    assert!(!again.is_transient() && !again.is_provider_failure());
    // The authorisation is still there to be voided.
    assert_eq!(
        p.cancel(&pi.id, "key-30-void").await.unwrap().status,
        IntentStatus::Canceled
    );
}
