//! The front door: nearest healthy PoP by client region, health checks,
//! and failover with no failed request when a PoP dies.

use edgeshop_e2e::{Host, TempDir, binary, browse, probe};
use std::process::Command;
use std::time::{Duration, Instant};

fn front_door(pops: &[(&str, &str, &Host)], dir: &TempDir) -> Host {
    let config = serde_json::json!({
        "pops": pops.iter().map(|(name, region, host)| serde_json::json!({
            "name": name, "region": region, "url": host.url,
        })).collect::<Vec<_>>(),
        "nearest": { "eu": ["fra", "iad", "sin"], "ap": ["sin", "fra", "iad"] },
        "health_interval_ms": 100,
        "health_timeout_ms": 300,
    });
    let path = dir.0.join("front-door.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let mut cmd = Command::new(binary("front-door"));
    cmd.args(["--listen", "127.0.0.1:0", "--config"]).arg(&path);
    Host::spawn(cmd).unwrap_or_else(|log| panic!("front door did not start:\n{log}"))
}

async fn served_by(fd: &Host, region: &str) -> (u16, String) {
    let r = browse(
        &format!("{}/api/v1/products/1", fd.url),
        &[("edgeshop-client-region", region)],
    )
    .await;
    (
        r.status,
        r.header("edgeshop-pop").unwrap_or("-").to_string(),
    )
}

#[tokio::test]
async fn routes_to_the_nearest_pop_and_fails_over_without_errors() {
    let dir = TempDir::new("front-door");
    let fra = Host::catalog();
    let iad = Host::catalog();
    let sin = Host::catalog();
    let mut fra = fra;
    let fd = front_door(
        &[
            ("fra", "eu", &fra),
            ("iad", "us", &iad),
            ("sin", "ap", &sin),
        ],
        &dir,
    );

    assert_eq!(served_by(&fd, "eu").await, (200, "fra".to_string()));
    assert_eq!(served_by(&fd, "ap").await, (200, "sin".to_string()));
    assert_eq!(served_by(&fd, "us").await, (200, "iad".to_string()));

    // Kill the eu PoP while eu clients keep reading.
    let _ = fra.child.kill();
    let _ = fra.child.wait();
    let killed = Instant::now();
    let mut switched_after = None;
    let mut failures = 0;
    while killed.elapsed() < Duration::from_secs(3) {
        let (status, pop) = served_by(&fd, "eu").await;
        if status != 200 {
            failures += 1;
        } else if pop == "iad" && switched_after.is_none() {
            switched_after = Some(killed.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(failures, 0, "requests failed during failover");
    let switched = switched_after.expect("eu traffic moved to the next-nearest PoP");
    assert!(
        switched < Duration::from_secs(2),
        "failover took {switched:?}"
    );

    // The health checks agree within a couple of seconds.
    let status = probe(&format!("{}/.well-known/edgeshop/front-door", fd.url))
        .await
        .json();
    let fra_status = status["pops"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "fra")
        .unwrap()
        .clone();
    assert_eq!(fra_status["healthy"], false, "{status}");
}

#[tokio::test]
async fn no_reachable_pop_is_a_503_with_retry_after() {
    let dir = TempDir::new("front-door-down");
    let mut only = Host::catalog();
    let fd = front_door(&[("fra", "eu", &only)], &dir);
    assert_eq!(served_by(&fd, "eu").await.0, 200);
    let _ = only.child.kill();
    let _ = only.child.wait();
    let r = browse(&format!("{}/api/v1/products/1", fd.url), &[]).await;
    r.problem(503);
    assert_eq!(r.header("retry-after"), Some("1"));
}
