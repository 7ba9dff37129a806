//! The manifest as written: serde types that accept exactly Spin's
//! manifest-v2 vocabulary, so unknown keys fail to parse.

use crate::ManifestError;
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub spin_manifest_version: toml::Value,
    pub application: Application,
    #[serde(default)]
    pub variables: BTreeMap<String, VariableDecl>,
    #[serde(default)]
    pub trigger: BTreeMap<String, toml::Value>,
    #[serde(default)]
    pub component: BTreeMap<String, ComponentDecl>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Application {
    pub name: String,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub authors: Vec<String>,
    #[serde(default)]
    pub targets: Option<toml::Value>,
    #[serde(default)]
    pub trigger: Option<toml::Value>,
    #[serde(default)]
    pub tool: Option<toml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariableDecl {
    #[serde(default)]
    pub default: Option<String>,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub secret: bool,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpTrigger {
    #[serde(default)]
    pub id: Option<String>,
    pub route: toml::Value,
    pub component: toml::Value,
    #[serde(default)]
    pub executor: Option<toml::Value>,
    #[serde(default)]
    pub dependencies: Option<TriggerDependencies>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerDependencies {
    #[serde(default)]
    pub middleware: Vec<MiddlewareDecl>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MiddlewareDecl {
    pub component: String,
    #[serde(default)]
    pub inherit_configuration: Option<toml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentDecl {
    pub source: toml::Value,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<String>,
    #[serde(default)]
    pub key_value_stores: Vec<String>,
    #[serde(default)]
    pub sqlite_databases: Vec<String>,
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    #[serde(default)]
    pub build: Option<BuildDecl>,
    #[serde(default)]
    pub tool: Option<toml::Value>,
    // Spin fields edge-host does not implement: parsed so the error can
    // name them instead of calling them unknown.
    #[serde(default)]
    pub files: Option<toml::Value>,
    #[serde(default)]
    pub exclude_files: Option<toml::Value>,
    #[serde(default)]
    pub environment: Option<toml::Value>,
    #[serde(default)]
    pub ai_models: Option<toml::Value>,
    #[serde(default)]
    pub allowed_http_hosts: Option<toml::Value>,
    #[serde(default)]
    pub dependencies: Option<toml::Value>,
    #[serde(default)]
    pub dependencies_inherit_configuration: Option<toml::Value>,
    #[serde(default)]
    pub targets: Option<toml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildDecl {
    pub command: toml::Value,
    #[serde(default)]
    pub workdir: Option<String>,
    #[serde(default)]
    pub watch: Vec<String>,
}

pub fn parse(text: &str) -> Result<Manifest, ManifestError> {
    toml::from_str(text)
        .map_err(|e| ManifestError::Syntax(e.message().to_string() + &span(text, &e)))
}

fn span(text: &str, e: &toml::de::Error) -> String {
    match e.span() {
        Some(range) => {
            let line = text[..range.start].matches('\n').count() + 1;
            format!(" (line {line})")
        }
        None => String::new(),
    }
}
