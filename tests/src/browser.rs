//! Headless Chromium driven over WebDriver (`chromedriver`, through the
//! `fantoccini` client), for the storefront's journeys: what a shopper or
//! a vendor does in a real browser, with screenshots of the key pages
//! under `target/screenshots/` and axe-core's accessibility check.
//!
//! `cargo xtask test` passes `EDGESHOP_CHROMIUM`, `EDGESHOP_CHROMEDRIVER`
//! and `EDGESHOP_AXE`; without them the journeys say they skipped.

use crate::{TempDir, root};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Tools {
    chromium: PathBuf,
    chromedriver: PathBuf,
    axe: PathBuf,
}

fn tools() -> Option<Tools> {
    let var = |name| {
        std::env::var_os(name)
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
    };
    Some(Tools {
        chromium: var("EDGESHOP_CHROMIUM")?,
        chromedriver: var("EDGESHOP_CHROMEDRIVER")?,
        axe: var("EDGESHOP_AXE")?,
    })
}

/// A Chromium session of its own (fresh profile), with its chromedriver;
/// both stop when it is dropped.
pub struct Browser {
    pub client: Client,
    driver: Child,
    axe: String,
    shots: PathBuf,
    _profile: TempDir,
}

impl Browser {
    /// Starts a browser for `journey`, or `None` after saying the journey
    /// is skipped because this machine has no browser for it.
    pub async fn start_or_skip(journey: &str) -> Option<Browser> {
        Self::start_with(journey, true).await
    }

    /// [`Browser::start_or_skip`] with JavaScript turned off when `script`
    /// is false: pages must still read and navigate.
    pub async fn start_with(journey: &str, script: bool) -> Option<Browser> {
        let Some(tools) = tools() else {
            eprintln!(
                "SKIPPED: no browser here (EDGESHOP_CHROMIUM, EDGESHOP_CHROMEDRIVER and \
                 EDGESHOP_AXE are set by cargo xtask test)"
            );
            return None;
        };
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let driver = Command::new(&tools.chromedriver)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let profile = TempDir::new("chromium");
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": tools.chromium,
                "args": [
                    "--headless=new",
                    // Root in a container has no user namespace to sandbox with.
                    "--no-sandbox",
                    "--disable-dev-shm-usage",
                    "--disable-gpu",
                    "--window-size=1280,900",
                    "--lang=en-GB",
                    format!("--user-data-dir={}", profile.0.display()),
                ],
                "prefs": {
                    "profile.managed_default_content_settings.javascript": if script { 1 } else { 2 },
                },
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        let client = loop {
            let conn = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(conn)
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(c) => break c,
                Err(e) if started.elapsed() > Duration::from_secs(30) => {
                    panic!("chromedriver did not start a session: {e}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        };
        let shots = root().join("target/screenshots").join(journey);
        std::fs::create_dir_all(&shots).unwrap();
        Some(Browser {
            client,
            driver,
            axe: std::fs::read_to_string(&tools.axe).expect("axe.min.js"),
            shots,
            _profile: profile,
        })
    }

    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
    }

    /// Saves a screenshot of the viewport as `{name}.png` for this journey.
    pub async fn shot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("screenshot");
        std::fs::write(self.shots.join(format!("{name}.png")), png).unwrap();
    }

    pub async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.unwrap()
    }

    pub async fn find(&self, css: &str) -> fantoccini::elements::Element {
        match self
            .client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(css))
            .await
        {
            Ok(e) => e,
            Err(e) => panic!("no {css} on {}: {e}", self.url().await),
        }
    }

    /// Clicks the element at `css` (no page change expected).
    pub async fn click(&self, css: &str) {
        self.find(css).await.click().await.unwrap();
    }

    /// Picks `value` in the `select` at `css`.
    pub async fn choose(&self, css: &str, value: &str) {
        self.find(css).await.select_by_value(value).await.unwrap();
    }

    /// Clicks the element at `css` and waits for the page it leads to (a
    /// new URL, fully loaded), so nothing is read from the page before.
    pub async fn follow(&self, css: &str) {
        let before = self.url().await;
        self.find(css).await.click().await.unwrap();
        let started = Instant::now();
        loop {
            let ready = self
                .eval("return document.readyState")
                .await
                .as_str()
                .is_some_and(|s| s == "complete");
            if ready && self.url().await != before {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "clicking {css} on {before} led nowhere"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits (across page loads) until the element at `css` shows text
    /// containing `needle`, and returns that text.
    pub async fn wait_text(&self, css: &str, needle: &str) -> String {
        let script = format!(
            "const e = document.querySelector({css:?}); return e && !e.hidden ? e.textContent : null;"
        );
        let started = Instant::now();
        let mut seen = String::new();
        while started.elapsed() < Duration::from_secs(30) {
            // A page being replaced may refuse the script; ask again.
            if let Ok(Value::String(text)) = self.client.execute(&script, vec![]).await {
                if text.contains(needle) {
                    return text;
                }
                seen = text;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "{css} on {} never said {needle:?}; it says {seen:?}",
            self.url().await
        )
    }

    pub async fn url(&self) -> String {
        self.client.current_url().await.unwrap().to_string()
    }

    /// Runs `script` (a function body) in the page and returns its value.
    pub async fn eval(&self, script: &str) -> Value {
        self.client.execute(script, vec![]).await.expect("script")
    }

    /// axe-core's serious and critical violations on the current page
    /// (WCAG 2.x A and AA rules), as `rule: target, ...` lines.
    pub async fn accessibility_problems(&self) -> Vec<String> {
        self.client
            .execute(&self.axe, vec![])
            .await
            .expect("inject axe-core");
        let result = self
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 axe.run(document, { runOnly: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] })
                    .then(r => done(r.violations), e => done({ error: String(e) }));",
                vec![],
            )
            .await
            .expect("run axe-core");
        assert!(result.get("error").is_none(), "axe-core failed: {result}");
        result
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
            .map(|v| {
                let targets: Vec<String> = v["nodes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|n| n["target"].to_string())
                    .collect();
                format!("{}: {} ({})", v["id"], v["help"], targets.join(", "))
            })
            .collect()
    }

    /// The page's Largest Contentful Paint and time to first byte, in ms.
    pub async fn paint_timings(&self) -> (f64, f64) {
        let v = self
            .client
            .execute_async(edgeshop_clients::PAINT_TIMINGS_SCRIPT, vec![])
            .await
            .expect("paint timings");
        (v[0].as_f64().unwrap(), v[1].as_f64().unwrap())
    }

    /// Ends the WebDriver session (the processes stop on drop).
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // chromedriver's group holds the Chromium processes it started.
        let _ = Command::new("kill")
            .args(["-TERM", "--", &format!("-{}", self.driver.id())])
            .status();
        let _ = self.driver.wait();
    }
}
