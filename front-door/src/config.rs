//! The front door's view of `cdn-config/pops.toml` plus the PoP addresses
//! chosen at start-up.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// What the front door is given: where the PoPs are and how to choose.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrontDoorConfig {
    pub pops: Vec<PopTarget>,
    /// Client region -> PoP names, nearest first.
    #[serde(default)]
    pub nearest: BTreeMap<String, Vec<String>>,
    /// Request header naming the client's region (the stand-in for geo-IP).
    #[serde(default = "default_region_header")]
    pub region_header: String,
    #[serde(default = "default_interval_ms")]
    pub health_interval_ms: u64,
    #[serde(default = "default_timeout_ms")]
    pub health_timeout_ms: u64,
    /// Consecutive failed checks before a PoP is taken out.
    #[serde(default = "default_failures")]
    pub unhealthy_after: u32,
    /// Longest a client may take to send a request's header section, or
    /// to start its next request on a kept-alive connection.
    #[serde(default = "default_header_read_timeout_ms")]
    pub header_read_timeout_ms: u64,
    /// Client connections held at once; one past it is answered 503 and
    /// closed (lowered to fit the open-files limit).
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Client connections held at once from one address (an IPv6 client
    /// is its /64).
    #[serde(default = "default_max_connections_per_client")]
    pub max_connections_per_client: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PopTarget {
    pub name: String,
    pub region: String,
    /// `http://host:port` of the PoP.
    pub url: String,
}

fn default_region_header() -> String {
    "edgeshop-client-region".to_string()
}
fn default_interval_ms() -> u64 {
    250
}
fn default_timeout_ms() -> u64 {
    500
}
fn default_failures() -> u32 {
    2
}
fn default_header_read_timeout_ms() -> u64 {
    20_000
}
fn default_max_connections() -> usize {
    4096
}
fn default_max_connections_per_client() -> usize {
    128
}

impl FrontDoorConfig {
    pub fn health_interval(&self) -> Duration {
        Duration::from_millis(self.health_interval_ms)
    }
    pub fn health_timeout(&self) -> Duration {
        Duration::from_millis(self.health_timeout_ms)
    }
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_millis(self.header_read_timeout_ms.max(1))
    }
    /// The connection bounds: every client is untrusted here.
    pub fn connections(&self) -> admission::Limits {
        admission::Limits {
            total: self.max_connections.max(1),
            per_client: self.max_connections_per_client.max(1),
            trusted: Vec::new(),
        }
    }
}
