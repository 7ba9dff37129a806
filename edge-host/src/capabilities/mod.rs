//! What a guest can call, in one place.
//!
//! Each capability is a narrow trait with its backends (Spin's factors are
//! the model): [`sqlite`] (`spin:sqlite@3.1.0`), [`variables`]
//! (`spin:variables@3.0.0`), [`keyvalue`] (`spin:key-value@3.0.0` and
//! `wasi:keyvalue` store/atomics/batch), [`outbound`] (outbound HTTP through
//! `wasi:http`, limited to `allowed_outbound_hosts`) and [`next`] (a
//! middleware's call to the next layer). [`ComponentCapabilities`]
//! is what one component was granted by the manifest; every store of that
//! component shares it.

pub mod keyvalue;
pub mod next;
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
    /// For a middleware layer: the layer its `next(req)` reaches.
    pub next: Option<next::NextLayer>,
}

impl ComponentCapabilities {
    /// What a middleware in front of this component gets: the parts of
    /// this component's grants it inherits, and `next` to call.
    pub fn inherited(
        &self,
        middleware: &str,
        inherit: &edgeshop_manifest::Inherit,
        next: next::NextLayer,
    ) -> ComponentCapabilities {
        ComponentCapabilities {
            component_id: middleware.to_string(),
            sqlite: if inherit.sqlite_databases {
                self.sqlite.clone()
            } else {
                sqlite::SqliteGrants {
                    databases: Default::default(),
                    max_result_bytes: self.sqlite.max_result_bytes,
                }
            },
            keyvalue: if inherit.key_value_stores {
                self.keyvalue.clone()
            } else {
                Default::default()
            },
            variables: if inherit.variables {
                self.variables.clone()
            } else {
                self.variables.emptied()
            },
            outbound: if inherit.allowed_outbound_hosts {
                self.outbound.clone()
            } else {
                Arc::new(outbound::OutboundPolicy::default())
            },
            next: Some(next),
        }
    }
}
