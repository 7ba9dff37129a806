//! The replication side of the origin's libSQL primary: it ships every
//! committed WAL frame of a database into generation frame logs and
//! serves them with libSQL's v2 sync protocol, which an unmodified
//! `libsql` embedded replica speaks (`/info`, `/export/{gen}`,
//! `/sync/{gen}/{start}/{end}`).
//!
//! A *generation* is a base snapshot plus the frames committed after it.
//! Replicas bootstrap from the current base, pull frames, and at the end
//! of a generation checkpoint locally and continue with the next one;
//! `base(N) + log(N) = base(N + 1)` byte for byte, which is what makes
//! that step safe. Generations roll when a log grows past a bound, and
//! old logs are kept for [`Options::retain`] generations so an offline
//! replica can catch up; one further behind is told its generation is
//! gone and bootstraps again.
//!
//! The shipper reads the WAL file itself (see [`wal`]). Frames must be
//! shipped before SQLite may reuse the WAL, so every connection that
//! writes disables automatic checkpoints ([`prepare_connection`]) and only
//! the shipper checkpoints, holding the write lock after shipping all.

pub mod log;
mod primary;
pub mod protocol;
pub mod push;
pub mod wal;

pub use primary::{MAX_PULL_FRAMES, Options, Position, Primary, Pull, prepare_connection};
