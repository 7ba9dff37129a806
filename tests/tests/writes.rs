//! Writes from the edge: each auth write is read back at once at the PoP
//! that made it, however far it is from the origin; a replica that
//! misses pushes catches up by itself; and the origin's push streams are
//! bounded (per client, in time) while holding many idle replicas costs
//! it almost nothing.

use edgeshop_e2e::{
    CutProxy, EDGE_TOKEN, Host, TempDir, catalog_info, get, post_json, primary_connection, probe,
    request, root, start_origin_on_seed, start_pop, wait_ready,
};
use std::path::Path;
use std::time::{Duration, Instant};

/// A PoP serving the shipped `spin.toml` `delay_ms` from `origin_url`,
/// pulling on its own only every minute: what it reads right after a
/// write, it has because the write waited for it.
async fn pop(origin_url: &str, dir: &Path, delay_ms: u64, extra: &[&str]) -> Host {
    let delay = delay_ms.to_string();
    let mut args = vec![
        "--origin-delay-ms",
        delay.as_str(),
        "--sync-interval-ms",
        "60000",
    ];
    args.extend_from_slice(extra);
    let pop = start_pop(&root().join("spin.toml"), origin_url, dir, &args)
        .unwrap_or_else(|log| panic!("PoP did not start:\n{log}"));
    wait_ready(&pop).await;
    pop
}

async fn me(pop: &Host, access: &str) -> u16 {
    let bearer = format!("Bearer {access}");
    request(
        "GET",
        &format!("{}/api/v1/auth/me", pop.url),
        &[("authorization", &bearer), ("accept", "application/json")],
        Vec::new(),
    )
    .await
    .status
}

/// Sign-up, sign-in, refresh and sign-out at `pop`, each followed at once
/// by the read that depends on it, at the same PoP.
async fn auth_writes_read_back(pop: &Host, email: &str) {
    let password = "a long enough password";
    let creds = serde_json::json!({ "email": email, "password": password });
    let url = |path: &str| format!("{}{path}", pop.url);

    let r = post_json(&url("/api/v1/auth/signup"), &creds, &[]).await;
    assert_eq!(r.status, 201, "{}: {}", pop.url, r.text());
    let signed_up = r.json();
    let access = signed_up["access_token"].as_str().unwrap();
    assert_eq!(me(pop, access).await, 200, "the new session at {}", pop.url);

    let r = post_json(&url("/api/v1/auth/login"), &creds, &[]).await;
    assert_eq!(r.status, 200, "{}: {}", pop.url, r.text());
    let signed_in = r.json();
    assert_eq!(signed_in["account_id"], signed_up["account_id"]);
    let access = signed_in["access_token"].as_str().unwrap().to_string();
    assert_eq!(me(pop, &access).await, 200, "the sign-in's session");

    // Two rotations back to back: the second presents the token the first
    // made, which this PoP must already know.
    let mut refresh = signed_in["refresh_token"].as_str().unwrap().to_string();
    for round in 0..2 {
        let r = post_json(
            &url("/api/v1/auth/refresh"),
            &serde_json::json!({ "refresh_token": refresh }),
            &[],
        )
        .await;
        assert_eq!(
            r.status,
            200,
            "refresh {round} at {}: {}",
            pop.url,
            r.text()
        );
        refresh = r.json()["refresh_token"].as_str().unwrap().to_string();
    }

    let bearer = format!("Bearer {access}");
    let r = post_json(
        &url("/api/v1/auth/logout"),
        &serde_json::json!({}),
        &[("authorization", &bearer)],
    )
    .await;
    assert!(r.status == 204 || r.status == 200, "{}", r.text());
    assert_eq!(
        me(pop, &access).await,
        401,
        "a signed-out token still counted at {}",
        pop.url
    );
}

async fn read_back_at_every_pop(extra: &[&str]) {
    let dir = TempDir::new("writes-ryw");
    let origin = start_origin_on_seed(&dir.0, &[]);
    for (name, delay) in [("fra", 5), ("iad", 90), ("sin", 160)] {
        let p = pop(&origin.url, &dir.0.join(name), delay, extra).await;
        for i in 0..2 {
            auth_writes_read_back(&p, &format!("ryw-{name}-{i}@example.com")).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_auth_write_is_read_back_at_once_at_every_pop() {
    read_back_at_every_pop(&[]).await;
}

/// The same without push streams: the writer pulls what it wrote.
#[tokio::test(flavor = "multi_thread")]
async fn every_auth_write_is_read_back_at_once_without_pushes_too() {
    read_back_at_every_pop(&["--pull-only"]).await;
}

async fn replication_status(pop: &Host) -> serde_json::Value {
    probe(&format!("{}/.well-known/edgeshop/replication", pop.url))
        .await
        .json()
}

/// Waits (at most `limit`) until the PoP's catalog has vendor `id`.
async fn sees_vendor(pop: &Host, id: i64, limit: Duration) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        let r = get(&format!("{}/api/v1/vendors/{id}", pop.url)).await;
        if r.status == 200 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// A vendor written at the primary; its id.
async fn insert_vendor(p: &libsql::Connection, slug: &str) -> i64 {
    p.execute(
        "INSERT INTO vendors (slug, name, country, created_at, updated_at) VALUES (?1, ?1, 'DE', 1, 1)",
        [slug],
    )
    .await
    .unwrap();
    p.last_insert_rowid()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replica_that_misses_pushes_catches_up_by_itself() {
    let dir = TempDir::new("writes-missed-push");
    let origin = start_origin_on_seed(&dir.0, &[]);
    let proxy = CutProxy::start(&origin.url).await;
    // Pulls on the interval every 2 s: a commit arrives sooner only if
    // it is pushed.
    let p = start_pop(
        &root().join("spin.toml"),
        &proxy.url,
        &dir.0.join("pop"),
        &["--sync-interval-ms", "2000"],
    )
    .unwrap_or_else(|log| panic!("PoP did not start:\n{log}"));
    wait_ready(&p).await;
    let primary = primary_connection(&origin).await;
    for _ in 0..100 {
        if replication_status(&p).await["replicas"][0]["pushed"] == true {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(replication_status(&p).await["replicas"][0]["pushed"], true);

    let pushed = insert_vendor(&primary, "pushed-1").await;
    assert!(
        sees_vendor(&p, pushed, Duration::from_millis(1500)).await,
        "a commit was not pushed within 1.5 s (pulls come every 2 s)"
    );

    // The network fails: the stream breaks and nothing gets through.
    proxy.cut();
    let while_cut = insert_vendor(&primary, "while-cut").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let status = replication_status(&p).await;
    assert_eq!(status["replicas"][0]["pushed"], false, "{status}");
    assert_eq!(
        get(&format!("{}/api/v1/vendors/{while_cut}", p.url))
            .await
            .status,
        404
    );
    // Reads go on from the local copy meanwhile.
    assert_eq!(
        get(&format!("{}/api/v1/vendors/{pushed}", p.url))
            .await
            .status,
        200
    );

    // Back: the commit made while cut arrives without any other write,
    // and so does the next one, pushed again.
    proxy.heal();
    assert!(
        sees_vendor(&p, while_cut, Duration::from_secs(15)).await,
        "the replica did not catch up after the network came back:\n{}",
        p.log()
    );
    for _ in 0..100 {
        if replication_status(&p).await["replicas"][0]["pushed"] == true {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let again = insert_vendor(&primary, "pushed-2").await;
    assert!(
        sees_vendor(&p, again, Duration::from_millis(1500)).await,
        "pushes did not resume"
    );
}

/// Bytes the process has read (`rchar`: files and sockets alike).
fn bytes_read(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .expect("the PoP's /proc/PID/io")
        .lines()
        .find_map(|l| l.strip_prefix("rchar: "))
        .and_then(|n| n.parse().ok())
        .expect("an rchar line")
}

/// Waits (at most 15 s) until the PoP's catalog replica holds all the
/// primary has shipped, asking only the status endpoints: no request
/// reads the replica meanwhile.
async fn caught_up(origin: &Host, pop: &Host) {
    let info = catalog_info(origin).await;
    let want = (
        info["current_generation"].clone(),
        info["current_frame"].clone(),
    );
    let started = Instant::now();
    loop {
        let status = replication_status(pop).await;
        let catalog = status["replicas"]
            .as_array()
            .and_then(|r| r.iter().find(|r| r["label"] == "catalog"))
            .cloned()
            .unwrap_or_default();
        let at = &catalog["position"];
        if (at["generation"].clone(), at["frame"].clone()) == want {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the PoP never caught up with {want:?}: {status}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pop_applies_each_commit_without_reading_its_whole_wal() {
    let dir = TempDir::new("writes-wal-reads");
    let origin = start_origin_on_seed(&dir.0, &[]);
    let p = pop(&origin.url, &dir.0.join("pop"), 0, &[]).await;
    let primary = primary_connection(&origin).await;
    // A large commit first, so the replica's WAL holds megabytes.
    primary
        .execute(
            "UPDATE products SET description = description || ' (restocked)'",
            (),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    caught_up(&origin, &p).await;
    let wal: u64 = std::fs::read_dir(dir.0.join("pop/catalog"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".db-wal"))
        .map(|e| e.metadata().unwrap().len())
        .sum();
    assert!(
        wal > 1 << 20,
        "the premise: a WAL of megabytes, not {wal} bytes"
    );

    // Forty small commits, each pushed and applied on its own, and no
    // request reading the catalog meanwhile. SQLite rebuilds a WAL's
    // index by reading the whole WAL whenever a connection opens a file
    // nobody else has open, and the `libsql` client opens one per pull:
    // the replica holds its file open, so a pull reads what it applies.
    let before = bytes_read(p.pid());
    for i in 0..40 {
        insert_vendor(&primary, &format!("small-{i}")).await;
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    caught_up(&origin, &p).await;
    let read = bytes_read(p.pid()) - before;
    assert!(
        read < wal,
        "forty small commits made the PoP read {read} bytes, more than its whole WAL ({wal})"
    );
}

/// A push stream read with a plain HTTP client, as a replica would.
struct Stream {
    body: hyper::body::Incoming,
    buf: Vec<u8>,
    /// The origin ended the response (not merely quiet).
    ended: bool,
}

impl Stream {
    /// The next message's tag, within `limit`.
    async fn next_tag(&mut self, limit: Duration) -> Option<u8> {
        use http_body_util::BodyExt;
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if self.buf.len() >= 13 {
                let count = u32::from_be_bytes(self.buf[9..13].try_into().unwrap()) as usize;
                let len = 13 + if self.buf[0] == b'F' { count * 4120 } else { 0 };
                if self.buf.len() >= len {
                    let tag = self.buf[0];
                    self.buf.drain(..len);
                    return Some(tag);
                }
            }
            let frame = match tokio::time::timeout_at(deadline, self.body.frame()).await {
                Err(_) => return None,
                Ok(None) | Ok(Some(Err(_))) => {
                    self.ended = true;
                    return None;
                }
                Ok(Some(Ok(frame))) => frame,
            };
            if let Ok(data) = frame.into_data() {
                self.buf.extend_from_slice(&data);
            }
        }
    }
}

async fn open_stream(
    client: &hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        http_body_util::Empty<bytes::Bytes>,
    >,
    url: &str,
) -> Result<Stream, (u16, hyper::HeaderMap, Vec<u8>)> {
    use http_body_util::BodyExt;
    let req = hyper::Request::get(url)
        .header("authorization", format!("Bearer {EDGE_TOKEN}"))
        .body(http_body_util::Empty::new())
        .unwrap();
    let resp = client.request(req).await.expect("the origin answers");
    let status = resp.status().as_u16();
    if status != 200 {
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        return Err((status, headers, body));
    }
    Ok(Stream {
        body: resp.into_body(),
        buf: Vec::new(),
        ended: false,
    })
}

/// A client whose connections come from `ip` (any of 127.0.0.0/8).
fn client_from(
    ip: std::net::IpAddr,
) -> hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    http_body_util::Empty<bytes::Bytes>,
> {
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.set_local_address(Some(ip));
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build(http)
}

/// Where a push stream for the catalog starts now at `origin`: the frame
/// after the last one shipped.
async fn push_url(origin: &Host) -> String {
    let info = catalog_info(origin).await;
    format!(
        "{}/db/catalog/push/{}/{}",
        origin.url,
        info["current_generation"],
        info["current_frame"].as_u64().unwrap() + 1
    )
}

/// CPU seconds a process has used (user and system), from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split(' ').collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

#[tokio::test(flavor = "multi_thread")]
async fn push_streams_are_bounded_and_a_thousand_idle_replicas_cost_the_origin_nothing() {
    let dir = TempDir::new("writes-push-bounds");
    let origin = start_origin_on_seed(
        &dir.0,
        &["--push-lifetime-secs", "3", "--max-push-streams", "1100"],
    );
    let info = get(&format!("{}/db/catalog/info", origin.url)).await;
    assert_eq!(info.status, 401, "replication needs a token");
    let push = push_url(&origin).await;
    let generation = push.rsplit('/').nth(1).unwrap().to_string();

    // Bad starts are refused with a problem, before any stream is held.
    let local = client_from("127.0.0.1".parse().unwrap());
    for (url, status) in [
        (
            format!("{}/db/catalog/push/{generation}/0", origin.url),
            400,
        ),
        (format!("{}/db/catalog/push/1/1", origin.url), 410),
        // The edge token reaches no orders at all.
        (format!("{}/db/orders/push/1/1", origin.url), 403),
    ] {
        match open_stream(&local, &url).await {
            Err((got, headers, _)) => {
                assert_eq!(got, status, "{url}");
                assert_eq!(headers["content-type"], "application/problem+json");
            }
            Ok(_) => panic!("{url} was streamed"),
        }
    }

    // One client holds at most 8; the ninth is told to come back later.
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(open_stream(&local, &push).await.expect("a stream"));
    }
    let Err((status, headers, body)) = open_stream(&local, &push).await else {
        panic!("a ninth stream from one client was held");
    };
    assert_eq!(status, 429, "{}", String::from_utf8_lossy(&body));
    assert!(headers.contains_key("retry-after"));
    let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(problem["detail"].as_str().unwrap().contains("push streams"));
    // Every stream opens with where the primary is, and ends by itself
    // at its lifetime, giving its place back.
    for s in &mut held {
        assert_eq!(s.next_tag(Duration::from_secs(2)).await, Some(b'H'));
    }
    for s in &mut held {
        assert_eq!(s.next_tag(Duration::from_secs(6)).await, None);
        assert!(s.ended, "a stream outlived its lifetime");
    }
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        open_stream(&local, &push).await.is_ok(),
        "places were not given back"
    );

    // A thousand idle replicas, eight from each of 125 addresses.
    let many = dir.0.join("many");
    std::fs::create_dir_all(&many).unwrap();
    let origin_bounds = start_origin_on_seed(&many, &["--max-push-streams", "1100"]);
    let push = push_url(&origin_bounds).await;
    let mut streams = Vec::new();
    for a in 0..125u32 {
        let ip = std::net::Ipv4Addr::from(0x7f00_0000 + 0x0001_0000 + a + 2);
        let client = client_from(ip.into());
        let opened = futures::future::join_all((0..8).map(|_| open_stream(&client, &push))).await;
        for s in opened {
            streams.push(s.expect("a stream for each of a thousand replicas"));
        }
    }
    assert_eq!(streams.len(), 1000);
    for s in &mut streams {
        assert_eq!(s.next_tag(Duration::from_secs(5)).await, Some(b'H'));
    }
    let health = get(&format!("{}/health", origin_bounds.url)).await;
    assert_eq!(health.status, 200, "{}", health.text());
    // Held idle, they cost the origin (next to) no CPU.
    let pid = origin_bounds.pid();
    let before = cpu_seconds(pid);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle = cpu_seconds(pid) - before;
    assert!(
        idle < 0.15,
        "the origin used {idle:.2} s of CPU in 3 s holding 1,000 idle streams"
    );
    // And one commit reaches every one of them.
    let primary = primary_connection(&origin_bounds).await;
    insert_vendor(&primary, "to-a-thousand").await;
    let started = Instant::now();
    for s in &mut streams {
        assert_eq!(s.next_tag(Duration::from_secs(10)).await, Some(b'F'));
    }
    eprintln!(
        "one commit pushed to 1,000 streams in {:?}; idle CPU {idle:.3} s over 3 s",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replica_that_stops_reading_is_dropped_not_waited_for() {
    let dir = TempDir::new("writes-slow-reader");
    let origin = start_origin_on_seed(&dir.0, &["--push-send-timeout-secs", "2"]);
    let primary = primary_connection(&origin).await;
    let push = push_url(&origin).await;
    let client = client_from("127.0.0.1".parse().unwrap());
    let mut slow = open_stream(&client, &push).await.expect("a stream");
    assert_eq!(slow.next_tag(Duration::from_secs(2)).await, Some(b'H'));
    // Far more than the socket buffers hold, while nobody reads.
    primary
        .execute("CREATE TABLE bulk (b BLOB)", ())
        .await
        .unwrap();
    for _ in 0..40 {
        primary
            .execute("INSERT INTO bulk VALUES (randomblob(1000000))", ())
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    // The origin gave up on it: what was buffered drains, then the
    // response ends (its lifetime is five minutes: only the send timeout
    // ends it this soon).
    let started = Instant::now();
    while slow.next_tag(Duration::from_secs(5)).await.is_some() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the stream of a reader that stopped went on"
        );
    }
    assert!(slow.ended, "the stream went quiet but was not ended");
    // A healthy replica opening a stream now gets all of it.
    let mut fresh = open_stream(&client, &push).await.expect("a new stream");
    let mut got = 0;
    while let Some(tag) = fresh.next_tag(Duration::from_secs(2)).await {
        if tag == b'F' {
            got += 1;
        }
    }
    assert!(got >= 1, "the new stream carried the frames");
}
