//! What a guest can call, in one place.
//!
//! Each capability is a narrow trait with its backends (Spin's factors are
//! the model): [`sqlite`] (`spin:sqlite@3.1.0`), [`variables`]
//! (`spin:variables@3.0.0`), [`keyvalue`] (`spin:key-value@3.0.0` and
//! `wasi:keyvalue` store/atomics/batch), [`outbound`] (outbound HTTP through
//! `wasi:http`, limited to `allowed_outbound_hosts`), [`next`] (the
//! `wasi:http/handler` import, which nothing outside a composed chain may
//! call) and [`otel`] (`wasi:otel/tracing`: a guest's own spans, which
//! every component may make). [`ComponentCapabilities`] is what one
//! component was granted by the manifest; every store of that component,
//! or of a chain in front of it, shares it.

pub mod keyvalue;
pub mod next;
pub mod otel;
pub mod outbound;
pub mod sqlite;
pub mod variables;

use std::sync::Arc;

/// The capabilities granted to one component.
#[derive(Clone)]
pub struct ComponentCapabilities {
    pub component_id: String,
    pub sqlite: sqlite::SqliteGrants,
    pub keyvalue: keyvalue::KeyValueGrants,
    pub variables: variables::ComponentVariables,
    pub outbound: Arc<outbound::OutboundPolicy>,
    /// The host's one outbound client.
    pub sender: outbound::Sender,
}
