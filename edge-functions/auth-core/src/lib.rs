//! Sign-in at the edge, without I/O: the account API's flows (over the
//! [`edge_sql::Database`] seam), the middleware's gate (token, revocation
//! and route rules) and the identity headers between the two.
//!
//! The auth component and the auth middleware component are thin adapters
//! from Spin to this crate.

pub mod flows;
pub mod gate;
pub mod identity;
pub mod response;
pub mod rules;
pub mod settings;
pub mod throttle;
pub mod web;

pub use identity::Identity;
pub use response::Response;
pub use settings::Settings;
