//! Rate limiting without I/O: the generic cell rate algorithm (GCRA).
//!
//! A key's whole state is one number, its theoretical arrival time (TAT):
//! when the key would be back to a full burst if no more requests came. A
//! request at `now` is admitted when pushing the TAT one emission interval
//! further keeps it within `burst` intervals of `now`. Storing one number
//! is what lets a store's compare-and-swap make the limiter exact under
//! concurrency.
//!
//! Times are integer nanoseconds, so decisions are exact and repeatable.

pub mod gcra;
pub mod headers;
pub mod key;
pub mod limiter;
pub mod policy;

pub use gcra::{Decision, Quota};
