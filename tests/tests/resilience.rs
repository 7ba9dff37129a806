//! Edge writes in real time, as users meet them: the first sign-in after a
//! quiet spell longer than the origin keeps an idle stream, the first one
//! right after the origin restarts, and answers lost on the way back from
//! the primary. A healthy origin is never a 503; an unknown outcome is a
//! 503 the client can retry with the same request, and the retry works.

use edgeshop_e2e::{
    AnswerDropper, Host, Reply, TempDir, browse, post_json, root, start_origin,
    start_origin_on_seed, start_pop, wait_ready,
};
use std::time::Duration;

const PASSWORD: &str = "a long enough password";

async fn pop(origin: &str, dir: &TempDir) -> Host {
    let pop = start_pop(&root().join("spin.toml"), origin, &dir.0.join("pop"), &[])
        .unwrap_or_else(|log| panic!("the PoP did not start:\n{log}"));
    wait_ready(&pop).await;
    pop
}

async fn signup(pop: &Host, email: &str) -> Reply {
    let body = serde_json::json!({ "email": email, "password": PASSWORD });
    post_json(&format!("{}/api/v1/auth/signup", pop.url), &body, &[]).await
}

async fn login(pop: &Host, email: &str) -> Reply {
    let body = serde_json::json!({ "email": email, "password": PASSWORD });
    post_json(&format!("{}/api/v1/auth/login", pop.url), &body, &[]).await
}

async fn refresh(pop: &Host, token: &str) -> Reply {
    let body = serde_json::json!({ "refresh_token": token });
    post_json(&format!("{}/api/v1/auth/refresh", pop.url), &body, &[]).await
}

async fn logout(pop: &Host, access: &str) -> Reply {
    let bearer = format!("Bearer {access}");
    let url = format!("{}/api/v1/auth/logout", pop.url);
    post_json(&url, &serde_json::json!({}), &[("authorization", &bearer)]).await
}

async fn me(pop: &Host, access: &str) -> Reply {
    let bearer = format!("Bearer {access}");
    browse(
        &format!("{}/api/v1/auth/me", pop.url),
        &[("authorization", &bearer)],
    )
    .await
}

fn field(r: &Reply, name: &str) -> String {
    r.json()[name]
        .as_str()
        .unwrap_or_else(|| panic!("no {name} in {}", r.text()))
        .to_string()
}

/// Every account write works the first time after the PoP sat idle past
/// the 10 s the origin keeps an idle Hrana stream (it used to fail once
/// with 503 "the origin cannot be reached").
#[tokio::test(flavor = "multi_thread")]
async fn edge_writes_work_after_a_quiet_spell() {
    let dir = TempDir::new("quiet");
    let origin = start_origin_on_seed(&dir.0, &[]);
    let pop = pop(&origin.url, &dir).await;
    let first = signup(&pop, "quiet@example.com").await;
    assert_eq!(first.status, 201, "{}", first.text());

    tokio::time::sleep(Duration::from_secs(12)).await;
    let r = signup(&pop, "after@example.com").await;
    assert_eq!(r.status, 201, "sign-up after a quiet spell: {}", r.text());
    tokio::time::sleep(Duration::from_secs(11)).await;
    let signed_in = login(&pop, "quiet@example.com").await;
    assert_eq!(signed_in.status, 200, "sign-in: {}", signed_in.text());
    tokio::time::sleep(Duration::from_secs(11)).await;
    let refreshed = refresh(&pop, &field(&signed_in, "refresh_token")).await;
    assert_eq!(refreshed.status, 200, "refresh: {}", refreshed.text());
    tokio::time::sleep(Duration::from_secs(11)).await;
    let out = logout(&pop, &field(&refreshed, "access_token")).await;
    assert_eq!(out.status, 204, "sign-out: {}", out.text());
    assert!(
        !pop.log().contains("baton"),
        "no write met an expired stream:\n{}",
        pop.log()
    );
}

/// The origin crashes and comes back on the same address: the PoP's
/// kept-alive connections are dead and the new process knows no stream
/// of the old one. Each edge write is a stream of its own, opened and
/// closed in one request, so nothing stale is presented, a request on a
/// dead connection goes again on a new one, and the user never sees the
/// restart.
#[tokio::test(flavor = "multi_thread")]
async fn edge_writes_work_right_after_the_origin_restarts() {
    let dir = TempDir::new("restart");
    let mut origin = start_origin_on_seed(&dir.0, &[]);
    let address = origin.url.trim_start_matches("http://").to_string();
    let pop = pop(&origin.url, &dir).await;
    assert_eq!(signup(&pop, "ada@example.com").await.status, 201);
    let signed_in = login(&pop, "ada@example.com").await;
    assert_eq!(signed_in.status, 200);

    origin.kill();
    let catalog = dir.0.join("catalog.db");
    let _origin = start_origin(&catalog, &["--listen", &address])
        .unwrap_or_else(|log| panic!("the origin did not restart:\n{log}"));
    // At once: the PoP's pooled connections still hold the old streams.
    let r = refresh(&pop, &field(&signed_in, "refresh_token")).await;
    assert_eq!(r.status, 200, "refresh after the restart: {}", r.text());
    let r = login(&pop, "ada@example.com").await;
    assert_eq!(r.status, 200, "sign-in after the restart: {}", r.text());
}

/// A write whose answer is lost after the primary ran it: the user gets a
/// 503 that says to retry, and the retry of the same request works, for
/// a refresh (the rotated token is accepted once more, within its grace)
/// and a sign-in (a new session; the lost one is never handed out).
#[tokio::test(flavor = "multi_thread")]
async fn a_write_whose_answer_is_lost_can_be_retried() {
    let dir = TempDir::new("lost");
    let origin = start_origin_on_seed(&dir.0, &[]);
    let dropper = AnswerDropper::start(&origin.url).await;
    let pop = pop(&dropper.url, &dir).await;
    let signed_up = signup(&pop, "lin@example.com").await;
    assert_eq!(signed_up.status, 201, "{}", signed_up.text());
    let identity = {
        let db = libsql::Builder::new_remote(
            format!("{}/db/identity", origin.url),
            edgeshop_e2e::ORIGIN_TOKEN.to_string(),
        )
        .build()
        .await
        .unwrap();
        db.connect().unwrap()
    };
    let count = |sql: &'static str| {
        let identity = identity.clone();
        async move {
            let mut rows = identity.query(sql, ()).await.unwrap();
            rows.next().await.unwrap().unwrap().get::<i64>(0).unwrap()
        }
    };

    // The rotation commits at the primary; its answer never reaches the PoP.
    let token = field(&signed_up, "refresh_token");
    dropper.arm(&["INSERT INTO refresh_tokens", "\"stmt\""]);
    let lost = refresh(&pop, &token).await;
    assert_eq!(dropper.dropped(), 1);
    lost.problem(503);
    assert!(lost.header("retry-after").is_some());
    assert_eq!(
        count("SELECT count(*) FROM refresh_tokens WHERE rotated_at IS NOT NULL").await,
        1,
        "the primary ran the rotation"
    );
    let retried = refresh(&pop, &token).await;
    assert_eq!(retried.status, 200, "the retry: {}", retried.text());
    assert_eq!(me(&pop, &field(&retried, "access_token")).await.status, 200);
    let next = refresh(&pop, &field(&retried, "refresh_token")).await;
    assert_eq!(next.status, 200, "the session lives on: {}", next.text());
    assert_eq!(count("SELECT count(*) FROM revocations").await, 0);

    // A sign-in whose session was created but never handed out.
    dropper.arm(&["INSERT INTO sessions", "\"stmt\""]);
    let lost = login(&pop, "lin@example.com").await;
    assert_eq!(dropper.dropped(), 2);
    lost.problem(503);
    let retried = login(&pop, "lin@example.com").await;
    assert_eq!(retried.status, 200, "{}", retried.text());
    assert_eq!(me(&pop, &field(&retried, "access_token")).await.status, 200);

    // A sign-out whose answer is lost has still signed out; its retry
    // changes nothing more.
    let access = field(&retried, "access_token");
    dropper.arm(&["UPDATE sessions SET revoked_at", "\"stmt\""]);
    let lost = logout(&pop, &access).await;
    assert_eq!(dropper.dropped(), 3);
    lost.problem(503);
    let again = logout(&pop, &access).await;
    assert!(
        again.status == 204 || again.status == 401,
        "{}: {}",
        again.status,
        again.text()
    );
    for _ in 0..100 {
        if me(&pop, &access).await.status == 401 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(me(&pop, &access).await.status, 401, "signed out");
    assert_eq!(
        count("SELECT count(*) FROM sessions WHERE revoked_reason = 'logout'").await,
        1
    );
}

/// The primary stops answering without closing anything (a partition, a
/// hung process): reads at the PoP go on from its replica, a write fails
/// with a 503 in bounded time instead of holding the PoP's write queue
/// forever, and writes work again once the primary answers.
#[tokio::test(flavor = "multi_thread")]
async fn a_primary_that_stops_answering_costs_writes_a_bounded_wait() {
    let dir = TempDir::new("stall");
    let origin = start_origin_on_seed(&dir.0, &[]);
    let proxy = AnswerDropper::start(&origin.url).await;
    let pop = pop(&proxy.url, &dir).await;
    let signed_up = signup(&pop, "kim@example.com").await;
    assert_eq!(signed_up.status, 201, "{}", signed_up.text());
    let access = field(&signed_up, "access_token");

    proxy.stall(true);
    let started = std::time::Instant::now();
    let r = login(&pop, "kim@example.com").await;
    let waited = started.elapsed();
    r.problem(503);
    assert!(r.header("retry-after").is_some());
    assert!(waited < Duration::from_secs(10), "waited {waited:?}");
    // Reads are local: they do not wait for the primary.
    for _ in 0..5 {
        let product = browse(&format!("{}/api/v1/products/9", pop.url), &[]).await;
        assert_eq!(product.status, 200);
        assert_eq!(me(&pop, &access).await.status, 200);
    }

    proxy.stall(false);
    let mut last = None;
    for _ in 0..40 {
        let r = login(&pop, "kim@example.com").await;
        if r.status == 200 {
            last = None;
            break;
        }
        last = Some(format!("{}: {}", r.status, r.text()));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(last, None, "writes never came back:\n{}", pop.log());
}
