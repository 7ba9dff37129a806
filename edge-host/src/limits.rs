//! Every bound the host puts on guests and clients, with their defaults.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Limits {
    /// Linear memory one guest instance may grow to.
    pub guest_memory_bytes: usize,
    /// Longest a guest may take to produce a response.
    pub request_timeout: Duration,
    /// How often the epoch ticks: the granularity of the deadline.
    pub epoch_tick: Duration,
    /// Largest request body accepted before the guest runs.
    pub max_request_body_bytes: u64,
    /// Total size of the request header section (hyper also caps the count
    /// at its default of 100 headers).
    pub max_header_bytes: usize,
    /// Largest result one SQL query may return to a guest.
    pub max_sqlite_result_bytes: usize,
    /// Requests one instance serves before it is retired (WASI 0.3 reuse).
    pub instance_reuse: usize,
    /// Requests one instance serves at once.
    pub instance_concurrency: usize,
    /// How long an idle instance is kept for reuse.
    pub instance_idle: Duration,
    /// Requests in flight per PoP; beyond this clients get 503.
    pub max_concurrent_requests: usize,
    /// Open connections per PoP, in total and per client; past either, a
    /// new connection is answered 503 and closed at once.
    pub connections: admission::Limits,
    /// Longest a client may take to send a request's header section, and
    /// to start its next request on a kept-alive connection: a slow or
    /// idle client's connection is closed after it.
    pub header_read_timeout: Duration,
    /// Instances alive at once (the pooling allocator's slots).
    pub max_instances: u32,
    /// Bytes one key-value store may hold (keys + values + overhead).
    pub kv_capacity_bytes: usize,
    /// Keys untouched this long are dropped.
    pub kv_idle_ttl: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            guest_memory_bytes: 64 << 20,
            request_timeout: Duration::from_secs(10),
            epoch_tick: Duration::from_millis(10),
            max_request_body_bytes: 1 << 20,
            max_header_bytes: 64 << 10,
            max_sqlite_result_bytes: 8 << 20,
            instance_reuse: 128,
            instance_concurrency: 16,
            instance_idle: Duration::from_secs(1),
            max_concurrent_requests: 1000,
            connections: admission::Limits {
                total: 4096,
                per_client: 128,
                trusted: Vec::new(),
            },
            header_read_timeout: Duration::from_secs(20),
            max_instances: 200,
            kv_capacity_bytes: 64 << 20,
            kv_idle_ttl: Duration::from_secs(3600),
        }
    }
}
