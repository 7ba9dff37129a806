//! The PoP's access log: one event per request, its fields named as
//! OpenTelemetry's HTTP semantic conventions name them. Off unless asked
//! for (`EDGESHOP_LOG=info,edge_host::access=info`); its target is this
//! module's path.

use std::net::IpAddr;
use std::time::Duration;

/// Whether anyone listens; the caller copies the request line only then.
pub fn on() -> bool {
    tracing::enabled!(tracing::Level::INFO)
}

/// What the access log needs of a request before it is handed on.
pub struct Seen {
    pub method: http::Method,
    pub path: String,
    pub user_agent: String,
    pub forwarded_for: String,
}

impl Seen {
    pub fn of<B>(req: &http::Request<B>) -> Seen {
        let header = |name: &str| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        };
        Seen {
            method: req.method().clone(),
            path: req.uri().path().to_string(),
            user_agent: header("user-agent"),
            forwarded_for: header("x-forwarded-for"),
        }
    }
}

/// Logs one answered request. `client` is the connection's peer (the
/// front door, for shoppers: their own address is `forwarded_for`).
pub fn log(pop: &str, client: IpAddr, seen: &Seen, route: &str, status: u16, took: Duration) {
    tracing::info!(
        edgeshop.pop = pop,
        client.address = %client,
        http.request.header.x_forwarded_for = %seen.forwarded_for,
        http.request.method = %seen.method,
        url.path = %seen.path,
        http.route = route,
        http.response.status_code = status,
        duration_ms = took.as_secs_f64() * 1000.0,
        user_agent.original = %seen.user_agent,
        "access"
    );
}
