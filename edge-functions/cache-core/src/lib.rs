//! A shared HTTP cache's decisions, without I/O: what the cache-control
//! directives say (RFC 9111, RFC 5861), how old a stored response is and
//! whether it may be used, conditional and range requests, content-coding
//! negotiation, and the `Cache-Status` field (RFC 9211).
//!
//! Times are milliseconds since the Unix epoch; header values are seconds.

pub mod conditional;
pub mod directives;
pub mod encoding;
pub mod entry;
pub mod freshness;
pub mod key;
pub mod range;
pub mod status;
pub mod storable;
pub mod tags;

pub use directives::CacheControl;
