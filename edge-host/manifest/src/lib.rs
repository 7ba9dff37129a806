//! The Spin application manifest (`spin.toml`, manifest version 2): the
//! subset edge-host runs, parsed strictly.
//!
//! [`parse`] reads the authored TOML ([`authored`]); [`resolve`] checks it
//! and produces the runtime form ([`App`]) the host serves: routes compiled,
//! variable templates parsed, sources made absolute. Anything Spin accepts
//! that edge-host does not implement is an error naming the field, never
//! silently ignored.

pub mod authored;
mod resolve;
pub mod routes;
pub mod template;

pub use resolve::{App, Component, HttpRoute, Inherit, Middleware, Variable, resolve};
pub use routes::{RouteMatch, RoutePattern, Router};
pub use template::Template;

use std::path::Path;

/// Why a manifest was refused. `field` is the dotted TOML path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    #[error("spin.toml is not valid TOML for a Spin manifest: {0}")]
    Syntax(String),
    #[error("`{field}`: {message}")]
    Invalid { field: String, message: String },
    #[error("`{field}` is not supported by edge-host: {hint}")]
    Unsupported { field: String, hint: String },
}

impl ManifestError {
    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ManifestError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
    pub(crate) fn unsupported(field: impl Into<String>, hint: impl Into<String>) -> Self {
        ManifestError::Unsupported {
            field: field.into(),
            hint: hint.into(),
        }
    }
}

/// Parses and resolves a manifest's text; `base` is the directory that
/// relative `source` paths are relative to.
pub fn load_str(text: &str, base: &Path) -> Result<App, ManifestError> {
    let manifest = authored::parse(text)?;
    resolve(manifest, base)
}

/// Reads, parses and resolves a manifest file.
pub fn load_file(path: &Path) -> Result<App, ManifestError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ManifestError::Syntax(format!("cannot read {}: {e}", path.display())))?;
    let base = path.parent().unwrap_or(Path::new("."));
    load_str(&text, base)
}
