//! A route's middleware chain composed into one component, as Spin does.
//!
//! spin.toml puts middleware in front of a component
//! (`dependencies.middleware`); each layer imports `wasi:http/handler`
//! (its `next`) and exports it. [`compose`] plugs each layer's import into
//! the export of the layer behind it with `wac-graph`, so a request crosses
//! a layer as a call inside one instance instead of a trip through the
//! host, and the host instantiates and reuses the chain as one component.
//!
//! What a layer may reach follows Spin's inheritance: a layer either
//! inherits one of the app component's capabilities (`sqlite_databases`,
//! `key_value_stores`, `variables`, `allowed_outbound_hosts`) and shares its
//! imports, satisfied by the host with the app component's grants, or has
//! those imports wired to the deny adapter (`wasm-components/deny`), whose
//! every entry point fails as a host does for a component granted nothing.
//!
//! Pure: component bytes in, component bytes out.

use edgeshop_manifest::Inherit;
use std::collections::BTreeMap;
use wac_graph::types::Package;
use wac_graph::{CompositionGraph, EncodeOptions, NodeId};

/// The interface a layer calls its next layer through and every layer
/// exports.
pub const HANDLER: &str = "wasi:http/handler@0.3.0";

/// A capability spin.toml grants per component and a middleware inherits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    SqliteDatabases,
    KeyValueStores,
    Variables,
    AllowedOutboundHosts,
}

impl Capability {
    /// The capability an import belongs to, by its interface name without
    /// the version; `None` for what every component shares (WASI CLI,
    /// clocks, random, `wasi:http/types`).
    pub fn of_import(name: &str) -> Option<Capability> {
        let interface = name.split('@').next().unwrap_or(name);
        Some(match interface {
            "spin:sqlite/sqlite" => Capability::SqliteDatabases,
            "spin:key-value/key-value"
            | "wasi:keyvalue/store"
            | "wasi:keyvalue/atomics"
            | "wasi:keyvalue/batch" => Capability::KeyValueStores,
            "spin:variables/variables" | "wasi:config/store" => Capability::Variables,
            "wasi:http/client" | "wasi:http/outgoing-handler" => Capability::AllowedOutboundHosts,
            _ => return None,
        })
    }

    fn inherited(self, inherit: &Inherit) -> bool {
        match self {
            Capability::SqliteDatabases => inherit.sqlite_databases,
            Capability::KeyValueStores => inherit.key_value_stores,
            Capability::Variables => inherit.variables,
            Capability::AllowedOutboundHosts => inherit.allowed_outbound_hosts,
        }
    }

    /// Its spin.toml name.
    pub fn key(self) -> &'static str {
        match self {
            Capability::SqliteDatabases => "sqlite_databases",
            Capability::KeyValueStores => "key_value_stores",
            Capability::Variables => "variables",
            Capability::AllowedOutboundHosts => "allowed_outbound_hosts",
        }
    }
}

/// A component in the chain: its manifest id and its bytes.
#[derive(Debug, Clone, Copy)]
pub struct Part<'a> {
    pub id: &'a str,
    pub bytes: &'a [u8],
}

/// One middleware layer and what it inherits from the app component.
#[derive(Debug, Clone, Copy)]
pub struct Layer<'a> {
    pub part: Part<'a>,
    pub inherit: &'a Inherit,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ComposeError {
    #[error("component {id} is not a component wac can read: {reason}")]
    Unreadable { id: String, reason: String },
    #[error("component {id} does not export {HANDLER} (build it with spin-sdk 7)")]
    NoHandler { id: String },
    #[error(
        "middleware {id} imports {import} without inheriting {}, and the deny adapter has no \
         such interface to put in its place; inherit `{}` or build the middleware against \
         the interfaces of spin-sdk 7",
        capability.key(),
        capability.key()
    )]
    CannotDeny {
        id: String,
        import: String,
        capability: Capability,
    },
    #[error("composing the chain in front of {app}: {reason}")]
    Graph { app: String, reason: String },
}

/// Composes `layers` (outermost first, as spin.toml lists them) in front
/// of `app` into one component exporting [`HANDLER`]. `deny` is the deny
/// adapter; it is instantiated once, and only if some layer needs it.
pub fn compose(app: Part<'_>, layers: &[Layer<'_>], deny: &[u8]) -> Result<Vec<u8>, ComposeError> {
    let graph_error = |e: &dyn std::fmt::Display| ComposeError::Graph {
        app: app.id.to_string(),
        reason: e.to_string(),
    };
    let mut chain = Chain {
        graph: CompositionGraph::new(),
        packages: BTreeMap::new(),
        deny: None,
        deny_bytes: deny,
        denied: BTreeMap::new(),
    };
    let app_package = chain.package(app)?;
    let mut inner = chain.graph.instantiate(app_package);
    let mut inner_id = app.id;
    for layer in layers.iter().rev() {
        let package = chain.package(layer.part)?;
        let instance = chain.graph.instantiate(package);
        let next = chain
            .graph
            .alias_instance_export(inner, HANDLER)
            .map_err(|_| ComposeError::NoHandler {
                id: inner_id.to_string(),
            })?;
        let imports: Vec<String> = {
            let world = &chain.graph.types()[chain.graph[package].ty()];
            world.imports.keys().cloned().collect()
        };
        for import in imports {
            let source = if import == HANDLER {
                next
            } else {
                match Capability::of_import(&import) {
                    Some(cap) if !cap.inherited(layer.inherit) => {
                        chain.denied(layer.part.id, &import, cap)?
                    }
                    // Shared: left for the host, with the app's grants.
                    _ => continue,
                }
            };
            chain
                .graph
                .set_instantiation_argument(instance, &import, source)
                .map_err(|e| graph_error(&e))?;
        }
        inner = instance;
        inner_id = layer.part.id;
    }
    let handler = chain
        .graph
        .alias_instance_export(inner, HANDLER)
        .map_err(|_| ComposeError::NoHandler {
            id: inner_id.to_string(),
        })?;
    chain
        .graph
        .export(handler, HANDLER)
        .map_err(|e| graph_error(&e))?;
    chain
        .graph
        .encode(EncodeOptions {
            define_components: true,
            // wasmtime validates the result when it compiles it.
            validate: false,
            processor: None,
        })
        .map_err(|e| graph_error(&e))
}

/// The graph being built, with each component registered once however
/// many layers use it, and the deny adapter's instance and exports made
/// once.
struct Chain<'a> {
    graph: CompositionGraph,
    packages: BTreeMap<String, wac_graph::PackageId>,
    deny: Option<NodeId>,
    deny_bytes: &'a [u8],
    denied: BTreeMap<String, NodeId>,
}

impl Chain<'_> {
    fn package(&mut self, part: Part<'_>) -> Result<wac_graph::PackageId, ComposeError> {
        if let Some(id) = self.packages.get(part.id) {
            return Ok(*id);
        }
        let unreadable = |e: &dyn std::fmt::Display| ComposeError::Unreadable {
            id: part.id.to_string(),
            reason: e.to_string(),
        };
        let name = format!("edgeshop:part{}", self.packages.len());
        let package = Package::from_bytes(&name, None, part.bytes.to_vec(), self.graph.types_mut())
            .map_err(|e| unreadable(&e))?;
        let id = self
            .graph
            .register_package(package)
            .map_err(|e| unreadable(&e))?;
        self.packages.insert(part.id.to_string(), id);
        Ok(id)
    }

    /// The deny adapter's export standing in for `import`.
    fn denied(
        &mut self,
        layer: &str,
        import: &str,
        capability: Capability,
    ) -> Result<NodeId, ComposeError> {
        if let Some(node) = self.denied.get(import) {
            return Ok(*node);
        }
        let deny = match self.deny {
            Some(node) => node,
            None => {
                let bytes = self.deny_bytes;
                let package = self.package(Part {
                    id: "edgeshop deny adapter",
                    bytes,
                })?;
                let node = self.graph.instantiate(package);
                self.deny = Some(node);
                node
            }
        };
        let node = self
            .graph
            .alias_instance_export(deny, import)
            .map_err(|_| ComposeError::CannotDeny {
                id: layer.to_string(),
                import: import.to_string(),
                capability,
            })?;
        self.denied.insert(import.to_string(), node);
        Ok(node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imports_belong_to_the_capability_spin_toml_names() {
        for (import, cap) in [
            (
                "spin:sqlite/sqlite@3.1.0",
                Some(Capability::SqliteDatabases),
            ),
            (
                "spin:key-value/key-value@3.0.0",
                Some(Capability::KeyValueStores),
            ),
            (
                "wasi:keyvalue/atomics@0.2.0-draft2",
                Some(Capability::KeyValueStores),
            ),
            (
                "spin:variables/variables@3.0.0",
                Some(Capability::Variables),
            ),
            (
                "wasi:http/client@0.3.0",
                Some(Capability::AllowedOutboundHosts),
            ),
            // Shared by every layer, granted to none in particular.
            ("wasi:http/types@0.3.0", None),
            ("wasi:http/handler@0.3.0", None),
            ("wasi:cli/stdout@0.3.0", None),
            ("wasi:clocks/monotonic-clock@0.3.0", None),
        ] {
            assert_eq!(Capability::of_import(import), cap, "{import}");
        }
    }

    #[test]
    fn errors_name_the_component_at_fault() {
        let empty = wat::parse_str("(component)").unwrap();
        let app = Part {
            id: "catalog",
            bytes: &empty,
        };
        let layer = |id| Layer {
            part: Part { id, bytes: &empty },
            inherit: &Inherit {
                allowed_outbound_hosts: false,
                key_value_stores: false,
                sqlite_databases: false,
                variables: false,
            },
        };
        // A component with no handler cannot be the next layer.
        let e = compose(app, &[layer("cache")], &empty).unwrap_err();
        assert!(
            matches!(&e, ComposeError::NoHandler { id } if id == "catalog"),
            "{e}"
        );
        assert!(e.to_string().contains("spin-sdk 7"), "{e}");
        // Bytes that are no component.
        let garbage = Part {
            id: "ratelimit",
            bytes: b"not wasm",
        };
        let e = compose(garbage, &[layer("cache")], &empty).unwrap_err();
        assert!(
            matches!(&e, ComposeError::Unreadable { id, .. } if id == "ratelimit"),
            "{e}"
        );
    }
}
