//! The flows against real libSQL databases with the real schemas.

use super::*;
use std::sync::atomic::{AtomicU64, Ordering};

struct Db(libsql::Connection);

impl Database for Db {
    async fn query(&self, sql: &str, params: Vec<SqlValue>) -> Result<Vec<Row>, DbError> {
        let params: Vec<libsql::Value> = params
            .into_iter()
            .map(|v| match v {
                SqlValue::Integer(i) => libsql::Value::Integer(i),
                SqlValue::Real(f) => libsql::Value::Real(f),
                SqlValue::Text(s) => libsql::Value::Text(s),
                SqlValue::Blob(b) => libsql::Value::Blob(b),
                SqlValue::Null => libsql::Value::Null,
            })
            .collect();
        let err = |e: libsql::Error| DbError(e.to_string());
        let mut rows = self.0.query(sql, params).await.map_err(err)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().await.map_err(err)? {
            let mut values = Vec::new();
            for i in 0..row.column_count() {
                values.push(match row.get_value(i).map_err(err)? {
                    libsql::Value::Integer(i) => SqlValue::Integer(i),
                    libsql::Value::Real(f) => SqlValue::Real(f),
                    libsql::Value::Text(s) => SqlValue::Text(s),
                    libsql::Value::Blob(b) => SqlValue::Blob(b),
                    libsql::Value::Null => SqlValue::Null,
                });
            }
            out.push(values);
        }
        Ok(out)
    }
}

struct World {
    identity: Db,
    catalog: Db,
    settings: Settings,
    signer: Signer,
    keys: KeySet,
    now: i64,
    _dbs: (libsql::Database, libsql::Database),
}

static COUNTER: AtomicU64 = AtomicU64::new(1);

fn random(buf: &mut [u8]) {
    // Distinct, not secret: enough for tests.
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    for (i, b) in buf.iter_mut().enumerate() {
        *b = (n.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> ((i % 8) * 8)) as u8 ^ i as u8;
    }
}

async fn world() -> World {
    let open = || async {
        let db = libsql::Builder::new_local(":memory:")
            .build()
            .await
            .unwrap();
        let conn = db.connect().unwrap();
        (db, conn)
    };
    let (idb, iconn) = open().await;
    identity_db::migrate(&iconn).await.unwrap();
    let (cdb, cconn) = open().await;
    catalog_db::migrate(&cconn).await.unwrap();
    let signer = Signer::from_seed("k1", [3; 32]);
    let keys = KeySet::from_jwks(&serde_json::json!({ "keys": [signer.public_jwk()] }).to_string())
        .unwrap();
    World {
        identity: Db(iconn),
        catalog: Db(cconn),
        settings: Settings::default(),
        signer,
        keys,
        now: 1_800_000_000,
        _dbs: (idb, cdb),
    }
}

impl World {
    async fn call(&self, method: &str, path: &str, body: serde_json::Value) -> Response {
        self.call_as(method, path, body, None).await
    }

    async fn call_as(
        &self,
        method: &str,
        path: &str,
        body: serde_json::Value,
        identity: Option<Identity>,
    ) -> Response {
        self.call_on(&self.identity, method, path, body, identity)
            .await
    }

    /// Calls with `db` as the PoP's identity database.
    async fn call_on(
        &self,
        db: &impl Database,
        method: &str,
        path: &str,
        body: serde_json::Value,
        identity: Option<Identity>,
    ) -> Response {
        let body = serde_json::to_vec(&body).unwrap();
        let env = Env {
            now: self.now,
            settings: &self.settings,
            signer: Some(&self.signer),
            keys: &self.keys,
            random: &random,
            log: &|_| {},
        };
        let req = Request {
            method,
            path,
            content_type: Some("application/json"),
            body: &body,
            identity,
        };
        handle(req, db, &self.catalog, &env).await
    }

    async fn login(&self, email: &str, password: &str) -> Response {
        self.call("POST", "/api/v1/auth/login", creds(email, password))
            .await
    }

    fn identity_of(&self, r: &Response) -> Identity {
        let token = json(r)["access_token"].as_str().unwrap().to_string();
        let claims = tokens::verify(&token, &self.keys, &self.settings.policy(), self.now).unwrap();
        Identity::from_claims(&claims).unwrap()
    }
}

fn json(r: &Response) -> serde_json::Value {
    serde_json::from_slice(&r.body).unwrap()
}

fn creds(email: &str, password: &str) -> serde_json::Value {
    serde_json::json!({ "email": email, "password": password })
}

const PASSWORD: &str = "correct horse battery";

#[tokio::test]
async fn sign_up_sign_in_refresh_and_sign_out() {
    let w = world().await;
    let r = w
        .call(
            "POST",
            "/api/v1/auth/signup",
            creds(" Ada@Example.COM ", PASSWORD),
        )
        .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let who = w.identity_of(&r);
    assert_eq!(who.roles, vec!["shopper"]);

    let again = w
        .call(
            "POST",
            "/api/v1/auth/signup",
            creds("ada@example.com", PASSWORD),
        )
        .await;
    assert_eq!(again.status, 409);

    let login = w.login("ADA@example.com", PASSWORD).await;
    assert_eq!(login.status, 200);
    let me = w
        .call_as(
            "GET",
            "/api/v1/auth/me",
            serde_json::json!(null),
            Some(w.identity_of(&login)),
        )
        .await;
    assert_eq!(me.status, 200);
    assert_eq!(json(&me)["email"], "ada@example.com");

    // Rotation: each refresh token works once; the new one works next.
    let first = json(&login)["refresh_token"].as_str().unwrap().to_string();
    let r1 = w
        .call(
            "POST",
            "/api/v1/auth/refresh",
            serde_json::json!({ "refresh_token": first }),
        )
        .await;
    assert_eq!(r1.status, 200, "{}", String::from_utf8_lossy(&r1.body));
    let second = json(&r1)["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(first, second);
    let sid = w.identity_of(&r1).session;
    assert_eq!(sid, w.identity_of(&login).session, "same session");
    // One statement each: the triggers filed the first token, then marked
    // it rotated when its child arrived.
    let chain = w
        .identity
        .query(
            "SELECT rotated_at IS NOT NULL, parent_hash IS NULL FROM refresh_tokens \
             WHERE session_id = ?1 ORDER BY issued_at, rotated_at IS NULL",
            vec![sid.as_str().into()],
        )
        .await
        .unwrap();
    assert_eq!(
        chain,
        vec![
            vec![SqlValue::Integer(1), SqlValue::Integer(1)],
            vec![SqlValue::Integer(0), SqlValue::Integer(0)],
        ]
    );
    let leftover = w
        .identity
        .query(
            "SELECT count(*) FROM sessions WHERE first_refresh_hash IS NOT NULL",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(leftover[0][0], SqlValue::Integer(0));

    // Presenting the rotated token again within the grace is a retry of a
    // refresh whose answer was lost: its unused child is rotated instead,
    // once. The child the client never got is dead from then on.
    let retried = w
        .call(
            "POST",
            "/api/v1/auth/refresh",
            serde_json::json!({ "refresh_token": first }),
        )
        .await;
    assert_eq!(
        retried.status,
        200,
        "{}",
        String::from_utf8_lossy(&retried.body)
    );
    assert_eq!(w.identity_of(&retried).session, sid, "the same session");
    let third = json(&retried)["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(third != first && third != second);

    // Any further use of a rotated token is a reuse: it may have been
    // copied, so the whole session ends, even for the token that
    // replaced it. Here the lost child turns up after all.
    let replay = w
        .call(
            "POST",
            "/api/v1/auth/refresh",
            serde_json::json!({ "refresh_token": second }),
        )
        .await;
    assert_eq!(replay.status, 401);
    assert!(
        json(&replay)["detail"]
            .as_str()
            .unwrap()
            .contains("already used")
    );
    let revoked = w
        .identity
        .query(
            "SELECT 1 FROM revocations WHERE session_id = ?1",
            vec![sid.as_str().into()],
        )
        .await
        .unwrap();
    assert_eq!(revoked.len(), 1);
    for token in [&first, &third] {
        let after = w
            .call(
                "POST",
                "/api/v1/auth/refresh",
                serde_json::json!({ "refresh_token": token }),
            )
            .await;
        assert_eq!(after.status, 401);
    }

    // Sign-out revokes the session it was called with.
    let out = w
        .call_as(
            "POST",
            "/api/v1/auth/logout",
            serde_json::json!({}),
            Some(w.identity_of(&r)),
        )
        .await;
    assert_eq!(out.status, 204);
    let revoked = w
        .identity
        .query(
            "SELECT revoked_reason FROM sessions WHERE id = ?1",
            vec![w.identity_of(&r).session.as_str().into()],
        )
        .await
        .unwrap();
    assert_eq!(revoked[0][0], SqlValue::Text("logout".into()));
    let ended = w
        .call(
            "POST",
            "/api/v1/auth/refresh",
            serde_json::json!({ "refresh_token": json(&r)["refresh_token"] }),
        )
        .await;
    assert_eq!(ended.status, 401);
    assert!(
        json(&ended)["detail"]
            .as_str()
            .unwrap()
            .contains("session has ended")
    );
    let anonymous = w
        .call("POST", "/api/v1/auth/logout", serde_json::json!({}))
        .await;
    assert_eq!(anonymous.status, 401);
}

#[tokio::test]
async fn wrong_password_and_unknown_email_look_the_same_and_are_throttled() {
    let mut w = world().await;
    w.call(
        "POST",
        "/api/v1/auth/signup",
        creds("bob@example.com", PASSWORD),
    )
    .await;
    let wrong = w.login("bob@example.com", "not the password").await;
    let nobody = w.login("eve@example.com", "not the password").await;
    assert_eq!(wrong.status, 401);
    assert_eq!(
        (wrong.status, &wrong.headers, &wrong.body),
        (nobody.status, &nobody.headers, &nobody.body)
    );

    // Four more failures reach the free limit: the fifth locks for 1 s,
    // to the end of the next whole second (the clock counts seconds).
    for _ in 0..4 {
        let r = w.login("bob@example.com", "still wrong!!").await;
        assert_eq!(r.status, 401);
    }
    let locked = w.login("bob@example.com", PASSWORD).await;
    assert_eq!(locked.status, 429, "even the right password waits");
    assert_eq!(locked.header("retry-after"), Some("2"));
    w.now += 1;
    assert_eq!(w.login("bob@example.com", PASSWORD).await.status, 429);
    w.now += 1;
    let r = w.login("bob@example.com", "wrong again!!").await;
    assert_eq!(r.status, 401);
    let locked = w.login("bob@example.com", PASSWORD).await;
    assert_eq!(locked.header("retry-after"), Some("3"), "doubling");
    w.now += 3;
    let ok = w.login("bob@example.com", PASSWORD).await;
    assert_eq!(ok.status, 200);
    let left = w
        .identity
        .query("SELECT count(*) FROM login_failures", vec![])
        .await
        .unwrap();
    assert_eq!(
        left[0][0],
        SqlValue::Integer(1),
        "only eve's failure is left"
    );

    // Unknown addresses are locked the same way.
    for _ in 0..4 {
        w.login("eve@example.com", "guess guess 1").await;
    }
    let r = w.login("eve@example.com", "guess guess 2").await;
    assert_eq!(r.status, 429);

    // Failures age out of the window.
    w.now += throttle::WINDOW_SECS + 1;
    let r = w.login("eve@example.com", "guess guess 3").await;
    assert_eq!(r.status, 401);
}

/// A PoP whose replica has not seen the primary's latest commits: reads
/// go to one database, everything else to another.
struct Stale<'a> {
    replica: &'a Db,
    primary: &'a Db,
}

impl Database for Stale<'_> {
    async fn query(&self, sql: &str, params: Vec<SqlValue>) -> Result<Vec<Row>, DbError> {
        if edge_sql::plainly_reads(sql) {
            self.replica.query(sql, params).await
        } else {
            self.primary.query(sql, params).await
        }
    }
}

async fn login_at(w: &World, pop: &impl Database, password: &str) -> Response {
    w.call_on(
        pop,
        "POST",
        "/api/v1/auth/login",
        creds("bob@example.com", password),
        None,
    )
    .await
}

#[tokio::test]
async fn guesses_racing_a_lock_get_at_most_the_free_number_of_password_checks() {
    // The primary and a replica that has bob's account but will never see
    // a failure: every guess passes the local lock check, as concurrent
    // guesses at several PoPs do while the lock is still replicating.
    let mut w = world().await;
    let replica = world().await;
    for at in [&w, &replica] {
        let r = at
            .call(
                "POST",
                "/api/v1/auth/signup",
                creds("bob@example.com", PASSWORD),
            )
            .await;
        assert_eq!(r.status, 201);
    }
    let pop = Stale {
        replica: &replica.identity,
        primary: &w.identity,
    };
    let mut statuses = Vec::new();
    for _ in 0..30 {
        let r = login_at(&w, &pop, "a wrong guess").await;
        if r.status == 429 {
            assert_eq!(
                r.header("retry-after"),
                Some("1"),
                "the replica does not know the lock's end yet"
            );
        }
        statuses.push(r.status);
    }
    let checked = statuses.iter().filter(|s| **s == 401).count();
    assert_eq!(checked, throttle::FREE_FAILURES as usize, "{statuses:?}");
    assert!(statuses.iter().all(|s| [401, 429].contains(s)));
    let count = w
        .identity
        .query("SELECT failures FROM login_failures", vec![])
        .await
        .unwrap();
    assert_eq!(
        count,
        vec![vec![SqlValue::Integer(throttle::FREE_FAILURES)]],
        "refused guesses are not counted"
    );

    // Once the lock ends, the right password gets in, and the same
    // statement that starts the session gives the attempts back.
    w.now += 2;
    assert_eq!(login_at(&w, &pop, PASSWORD).await.status, 200);
    let left = w
        .identity
        .query("SELECT count(*) FROM login_failures", vec![])
        .await
        .unwrap();
    assert_eq!(left[0][0], SqlValue::Integer(0));
    let kept = w
        .identity
        .query(
            "SELECT count(*) FROM sessions WHERE signin_key IS NOT NULL",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(kept[0][0], SqlValue::Integer(0), "the key is not kept");
}

#[tokio::test]
async fn a_vendor_account_owns_a_new_vendor_row() {
    let w = world().await;
    let body = serde_json::json!({
        "email": "shop@example.com", "password": PASSWORD, "kind": "vendor",
        "vendor": { "name": "Kettle & Co.", "country": "de" }
    });
    let r = w.call("POST", "/api/v1/auth/signup", body.clone()).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(w.identity_of(&r).roles, vec!["vendor"]);
    let rows = w
        .catalog
        .query("SELECT id, slug, country FROM vendors", vec![])
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert!(rows[0][1].as_str().unwrap().starts_with("kettle-co-"));
    assert_eq!(rows[0][2], SqlValue::Text("DE".into()));
    let owner = w
        .identity
        .query("SELECT vendor_id FROM accounts", vec![])
        .await
        .unwrap();
    assert_eq!(owner[0][0], rows[0][0]);

    // A second sign-up with the same address leaves no vendor behind.
    let r = w.call("POST", "/api/v1/auth/signup", body).await;
    assert_eq!(r.status, 409);
    let n = w
        .catalog
        .query("SELECT count(*) FROM vendors", vec![])
        .await
        .unwrap();
    assert_eq!(n[0][0], SqlValue::Integer(1));
}

#[tokio::test]
async fn bad_requests_are_refused_with_problems_and_change_nothing() {
    let w = world().await;
    let cases = [
        (creds("not-an-email", PASSWORD), 400, "email"),
        (creds("a@example.com", "short"), 400, "password"),
        (
            serde_json::json!({ "email": "a@example.com", "password": PASSWORD, "kind": "admin" }),
            400,
            "kind",
        ),
        (
            serde_json::json!({ "email": "a@example.com", "password": PASSWORD, "kind": "vendor" }),
            400,
            "vendor",
        ),
        (
            serde_json::json!({ "email": "a@example.com", "password": PASSWORD, "role": "admin" }),
            400,
            "",
        ),
    ];
    for (body, status, parameter) in cases {
        let r = w.call("POST", "/api/v1/auth/signup", body.clone()).await;
        assert_eq!(r.status, status, "{body}");
        assert_eq!(
            r.header("content-type"),
            Some(problem::Problem::CONTENT_TYPE)
        );
        if !parameter.is_empty() {
            assert_eq!(json(&r)["parameter"], parameter, "{body}");
        }
    }
    let n = w
        .identity
        .query("SELECT count(*) FROM accounts", vec![])
        .await
        .unwrap();
    assert_eq!(n[0][0], SqlValue::Integer(0));

    let env = Env {
        now: w.now,
        settings: &w.settings,
        signer: Some(&w.signer),
        keys: &w.keys,
        random: &random,
        log: &|_| {},
    };
    let form = Request {
        method: "POST",
        path: "/api/v1/auth/login",
        content_type: Some("application/x-www-form-urlencoded"),
        body: b"email=a",
        identity: None,
    };
    assert_eq!(
        handle(form, &w.identity, &w.catalog, &env).await.status,
        415
    );
    assert_eq!(
        w.call("GET", "/api/v1/auth/login", serde_json::json!(null))
            .await
            .status,
        405
    );
    assert_eq!(
        w.call("GET", "/api/v1/auth/nope", serde_json::json!(null))
            .await
            .status,
        404
    );
    let jwks = w
        .call("GET", "/.well-known/jwks.json", serde_json::json!(null))
        .await;
    assert_eq!(jwks.status, 200);
    assert_eq!(json(&jwks)["keys"][0]["kid"], "k1");
    let types: Vec<_> = jwks
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("content-type"))
        .collect();
    assert_eq!(
        types,
        [&(
            "content-type".to_string(),
            "application/jwk-set+json".to_string()
        )],
        "one Content-Type"
    );
    assert!(json(&jwks)["keys"][0].get("d").is_none());
    let head = w
        .call("HEAD", "/.well-known/jwks.json", serde_json::json!(null))
        .await;
    assert_eq!((head.status, head.body.len()), (200, 0));
    assert_eq!(head.header("content-type"), jwks.header("content-type"));
}

async fn refresh(w: &World, token: &str) -> Response {
    let body = serde_json::json!({ "refresh_token": token });
    w.call("POST", "/api/v1/auth/refresh", body).await
}

fn token(r: &Response) -> String {
    json(r)["refresh_token"].as_str().unwrap().to_string()
}

async fn revoked(w: &World, sid: &str) -> bool {
    !w.identity
        .query(
            "SELECT 1 FROM revocations WHERE session_id = ?1",
            vec![sid.into()],
        )
        .await
        .unwrap()
        .is_empty()
}

/// A refresh whose answer was lost is retried with the same token: that
/// works once, within the grace, and never opens a second branch.
#[tokio::test]
async fn a_lost_refresh_answer_can_be_retried_once_within_the_grace() {
    let mut w = world().await;
    let signup = w
        .call(
            "POST",
            "/api/v1/auth/signup",
            creds("lin@example.com", PASSWORD),
        )
        .await;
    assert_eq!(signup.status, 201);
    let sid = w.identity_of(&signup).session;
    // Two retries of one lost answer: the first works, the second is a
    // reuse (two clients hold the token) and ends the session.
    let t0 = token(&signup);
    let lost = refresh(&w, &t0).await;
    assert_eq!(lost.status, 200);
    w.now += REFRESH_RETRY_GRACE_SECS - 1;
    let retry = refresh(&w, &t0).await;
    assert_eq!(
        retry.status,
        200,
        "{}",
        String::from_utf8_lossy(&retry.body)
    );
    assert!(!revoked(&w, &sid).await);
    let t2 = token(&retry);
    assert_ne!(t2, token(&lost));
    let again = refresh(&w, &t0).await;
    assert_eq!(again.status, 401);
    assert!(revoked(&w, &sid).await);
    assert_eq!(
        refresh(&w, &t2).await.status,
        401,
        "the whole session ended"
    );

    // Past the grace, the rotated token is a reuse at once.
    let login = w.login("lin@example.com", PASSWORD).await;
    let sid = w.identity_of(&login).session;
    let t0 = token(&login);
    let next = refresh(&w, &t0).await;
    assert_eq!(next.status, 200);
    w.now += REFRESH_RETRY_GRACE_SECS + 1;
    assert_eq!(refresh(&w, &t0).await.status, 401);
    let rows = w
        .identity
        .query(
            "SELECT revoked_reason FROM sessions WHERE id = ?1",
            vec![sid.as_str().into()],
        )
        .await
        .unwrap();
    assert_eq!(rows[0][0], SqlValue::Text("refresh_reuse".into()));
    assert_eq!(refresh(&w, &token(&next)).await.status, 401);

    // Once the child was used, the parent is not a retry any more.
    let login = w.login("lin@example.com", PASSWORD).await;
    let t0 = token(&login);
    let t1 = token(&refresh(&w, &t0).await);
    assert_eq!(refresh(&w, &t1).await.status, 200);
    assert_eq!(refresh(&w, &t0).await.status, 401);
}

/// Two holders of one refresh token cannot take turns at the grace: the
/// token a retry made cannot be retried in turn.
#[tokio::test]
async fn two_holders_of_a_token_cannot_keep_rotating_each_other() {
    let w = world().await;
    let login = {
        w.call(
            "POST",
            "/api/v1/auth/signup",
            creds("eve@example.com", PASSWORD),
        )
        .await
    };
    let sid = w.identity_of(&login).session;
    let stolen = token(&login);
    // The owner refreshes; the thief presents the old token in the grace
    // and gets the next one (indistinguishable from a retry).
    let owner = token(&refresh(&w, &stolen).await);
    let thief = refresh(&w, &stolen).await;
    assert_eq!(thief.status, 200);
    // The owner's next refresh is the reuse that ends it for both.
    assert_eq!(refresh(&w, &owner).await.status, 401);
    assert!(revoked(&w, &sid).await);
    assert_eq!(refresh(&w, &token(&thief)).await.status, 401);
}

#[tokio::test]
async fn the_gate_accepts_only_live_sessions_of_the_tokens_account() {
    use crate::gate::{GateError, SESSION_ARRIVAL_WAITS_MS, check_session};
    use std::cell::RefCell;
    let w = world().await;
    let r = w
        .call(
            "POST",
            "/api/v1/auth/signup",
            creds("eve@example.com", PASSWORD),
        )
        .await;
    assert_eq!(r.status, 201);
    let who = w.identity_of(&r);
    let refused = |outcome: Result<(), GateError>| match outcome {
        Err(GateError::Denied(d)) => d.status == 401 && d.detail == crate::gate::SESSION_ENDED,
        _ => false,
    };
    // Every wait the gate asks for, in milliseconds.
    let waited = RefCell::new(Vec::new());
    let sleep = |ms: u64| {
        waited.borrow_mut().push(ms);
        std::future::ready(())
    };
    assert!(check_session(&w.identity, &who, w.now, sleep).await.is_ok());
    assert!(waited.borrow().is_empty());

    // A correctly signed token for a session that was never issued (a
    // leaked key, an invented `sid`) is refused once the session has had
    // time to arrive by replication; so is one for another account's.
    let invented = Identity {
        session: "invented-session-id-0000000".into(),
        ..who.clone()
    };
    assert!(refused(
        check_session(&w.identity, &invented, w.now, sleep).await
    ));
    assert_eq!(*waited.borrow(), SESSION_ARRIVAL_WAITS_MS);
    let other = w
        .call(
            "POST",
            "/api/v1/auth/signup",
            creds("mallory@example.com", PASSWORD),
        )
        .await;
    let borrowed = Identity {
        session: w.identity_of(&other).session,
        ..who.clone()
    };
    assert!(refused(
        check_session(&w.identity, &borrowed, w.now, sleep).await
    ));

    // A session that arrives while the gate waits is accepted.
    waited.borrow_mut().clear();
    let late = Identity {
        session: "arrives-late-session-00000".into(),
        ..who.clone()
    };
    let arriving = |ms: u64| {
        waited.borrow_mut().push(ms);
        let db = &w.identity;
        let sid = late.session.clone();
        let (account, now) = (who.account, w.now);
        async move {
            db.query(
                "INSERT OR IGNORE INTO sessions (id, account_id, created_at, expires_at) \
                 VALUES (?1, ?2, ?3, ?4)",
                vec![sid.into(), account.into(), now.into(), (now + 60).into()],
            )
            .await
            .unwrap();
        }
    };
    assert!(
        check_session(&w.identity, &late, w.now, arriving)
            .await
            .is_ok()
    );
    assert_eq!(waited.borrow().len(), 1);

    // A session past its absolute end, and one signed out: refused at
    // once, without waiting.
    waited.borrow_mut().clear();
    let end = w
        .identity
        .query(
            "SELECT expires_at FROM sessions WHERE id = ?1",
            vec![who.session.as_str().into()],
        )
        .await
        .unwrap();
    let SqlValue::Integer(end) = end[0][0] else {
        panic!("expires_at is an integer")
    };
    assert!(
        check_session(&w.identity, &who, end - 1, sleep)
            .await
            .is_ok()
    );
    assert!(refused(check_session(&w.identity, &who, end, sleep).await));
    let out = w
        .call_as(
            "POST",
            "/api/v1/auth/logout",
            serde_json::json!({}),
            Some(who.clone()),
        )
        .await;
    assert_eq!(out.status, 204);
    assert!(refused(
        check_session(&w.identity, &who, w.now, sleep).await
    ));
    assert!(waited.borrow().is_empty());
}
