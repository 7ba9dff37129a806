//! Authored manifest -> the runtime form edge-host serves.

use crate::ManifestError;
use crate::authored::{ComponentDecl, HttpTrigger, Manifest};
use crate::routes::{RoutePattern, Router};
use crate::template::{Template, is_variable_name};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A resolved application.
#[derive(Debug, Clone)]
pub struct App {
    pub name: String,
    pub version: Option<String>,
    pub variables: BTreeMap<String, Variable>,
    pub components: BTreeMap<String, Component>,
    pub routes: Router<HttpRoute>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variable {
    pub default: Option<String>,
    pub required: bool,
    pub secret: bool,
}

#[derive(Debug, Clone)]
pub struct Component {
    pub id: String,
    pub source: PathBuf,
    pub allowed_outbound_hosts: Vec<String>,
    pub key_value_stores: Vec<String>,
    pub sqlite_databases: Vec<String>,
    pub variables: BTreeMap<String, Template>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRoute {
    pub component: String,
    pub middleware: Vec<Middleware>,
}

/// One layer of a route's middleware chain (outermost first). As in
/// Spin, a middleware component's own configuration is ignored: it gets
/// only what it inherits from the route's component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Middleware {
    pub component: String,
    pub inherit: Inherit,
}

/// Which of the route component's configuration a middleware inherits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inherit {
    pub allowed_outbound_hosts: bool,
    pub key_value_stores: bool,
    pub sqlite_databases: bool,
    pub variables: bool,
}

impl Inherit {
    /// The configuration keys edge-host can pass to a middleware.
    pub const KEYS: &[&str] = &[
        "allowed_outbound_hosts",
        "key_value_stores",
        "sqlite_databases",
        "variables",
    ];

    fn all() -> Inherit {
        Inherit {
            allowed_outbound_hosts: true,
            key_value_stores: true,
            sqlite_databases: true,
            variables: true,
        }
    }

    /// `true`, `false` or a list of keys.
    fn parse(field: &str, value: Option<&toml::Value>) -> Result<Inherit, ManifestError> {
        let keys = match value {
            None | Some(toml::Value::Boolean(false)) => return Ok(Inherit::default()),
            Some(toml::Value::Boolean(true)) => return Ok(Inherit::all()),
            Some(toml::Value::Array(keys)) => keys,
            Some(other) => {
                return Err(ManifestError::invalid(
                    field,
                    format!("must be true, false or a list of keys, found {other}"),
                ));
            }
        };
        let mut inherit = Inherit::default();
        for key in keys {
            match key.as_str() {
                Some("allowed_outbound_hosts") => inherit.allowed_outbound_hosts = true,
                Some("key_value_stores") => inherit.key_value_stores = true,
                Some("sqlite_databases") => inherit.sqlite_databases = true,
                Some("variables") => inherit.variables = true,
                Some(k @ ("ai_models" | "files" | "environment")) => {
                    return Err(ManifestError::unsupported(
                        field,
                        format!("edge-host grants no {k}, so there is none to inherit"),
                    ));
                }
                _ => {
                    return Err(ManifestError::invalid(
                        field,
                        format!(
                            "unknown key {key}; the keys are {}",
                            Inherit::KEYS.join(", ")
                        ),
                    ));
                }
            }
        }
        Ok(inherit)
    }
}

pub fn resolve(m: Manifest, base: &Path) -> Result<App, ManifestError> {
    match &m.spin_manifest_version {
        toml::Value::Integer(2) => {}
        toml::Value::String(s) if s == "2" => {}
        other => {
            return Err(ManifestError::invalid(
                "spin_manifest_version",
                format!("must be 2, found {other}; edge-host reads manifest version 2 only"),
            ));
        }
    }
    if m.application.trigger.is_some() {
        return Err(ManifestError::unsupported(
            "application.trigger",
            "application-level trigger settings (such as a base path) are not implemented; remove the table",
        ));
    }
    if m.application.targets.is_some() {
        return Err(ManifestError::unsupported(
            "application.targets",
            "deployment target checks are not implemented; remove the key",
        ));
    }

    let mut variables = BTreeMap::new();
    for (name, decl) in m.variables {
        let field = format!("variables.{name}");
        if !is_variable_name(&name) {
            return Err(ManifestError::invalid(
                field,
                "variable names are lowercase letters, digits and '_', starting with a letter",
            ));
        }
        if decl.required && decl.default.is_some() {
            return Err(ManifestError::invalid(
                field,
                "a variable cannot be both required and have a default",
            ));
        }
        variables.insert(
            name,
            Variable {
                default: decl.default,
                required: decl.required,
                secret: decl.secret,
            },
        );
    }

    let mut components = BTreeMap::new();
    for (id, decl) in m.component {
        let c = resolve_component(&id, decl, base, &variables)?;
        components.insert(id, c);
    }

    let mut routes = Vec::new();
    for (kind, value) in m.trigger {
        if kind != "http" {
            return Err(ManifestError::unsupported(
                format!("trigger.{kind}"),
                "edge-host runs HTTP triggers only",
            ));
        }
        let triggers: Vec<HttpTrigger> = match value {
            toml::Value::Array(items) => items
                .into_iter()
                .enumerate()
                .map(|(i, v)| {
                    v.try_into().map_err(|e: toml::de::Error| {
                        ManifestError::invalid(
                            format!("trigger.http[{i}]"),
                            e.message().to_string(),
                        )
                    })
                })
                .collect::<Result<_, _>>()?,
            _ => {
                return Err(ManifestError::invalid(
                    "trigger.http",
                    "must be an array of tables: write [[trigger.http]]",
                ));
            }
        };
        for (i, t) in triggers.into_iter().enumerate() {
            let field = format!("trigger.http[{i}]");
            routes.push(resolve_trigger(&field, t, &components)?);
        }
    }
    let routes = Router::new(routes).map_err(|e| ManifestError::invalid("trigger.http", e))?;

    Ok(App {
        name: m.application.name,
        version: m.application.version,
        variables,
        components,
        routes,
    })
}

fn resolve_trigger(
    field: &str,
    t: HttpTrigger,
    components: &BTreeMap<String, Component>,
) -> Result<(RoutePattern, HttpRoute), ManifestError> {
    let route = match t.route {
        toml::Value::String(r) => r,
        toml::Value::Table(_) => {
            return Err(ManifestError::unsupported(
                format!("{field}.route"),
                "private routes ({ private = true }) are not implemented; give the trigger a path",
            ));
        }
        other => {
            return Err(ManifestError::invalid(
                format!("{field}.route"),
                format!("must be a path such as \"/api/...\", found {other}"),
            ));
        }
    };
    let pattern = RoutePattern::parse(&route)
        .map_err(|e| ManifestError::invalid(format!("{field}.route"), e))?;
    let component = match t.component {
        toml::Value::String(c) => c,
        toml::Value::Table(_) => {
            return Err(ManifestError::unsupported(
                format!("{field}.component"),
                "inline component tables are not implemented; declare [component.<id>] and name it",
            ));
        }
        other => {
            return Err(ManifestError::invalid(
                format!("{field}.component"),
                format!("must name a component, found {other}"),
            ));
        }
    };
    if !components.contains_key(&component) {
        return Err(ManifestError::invalid(
            format!("{field}.component"),
            format!("no [component.{component}] is declared"),
        ));
    }
    if t.executor.is_some() {
        return Err(ManifestError::unsupported(
            format!("{field}.executor"),
            "edge-host runs spin-sdk 7 (wasi:http/handler@0.3.0) components only; remove the executor",
        ));
    }
    let mut middleware = Vec::new();
    if let Some(deps) = t.dependencies {
        for (j, mw) in deps.middleware.iter().enumerate() {
            let mfield = format!("{field}.dependencies.middleware[{j}]");
            if !components.contains_key(&mw.component) {
                return Err(ManifestError::invalid(
                    format!("{mfield}.component"),
                    format!("no [component.{}] is declared", mw.component),
                ));
            }
            middleware.push(crate::Middleware {
                component: mw.component.clone(),
                inherit: Inherit::parse(
                    &format!("{mfield}.inherit_configuration"),
                    mw.inherit_configuration.as_ref(),
                )?,
            });
        }
    }
    Ok((
        pattern,
        HttpRoute {
            component,
            middleware,
        },
    ))
}

fn resolve_component(
    id: &str,
    c: ComponentDecl,
    base: &Path,
    variables: &BTreeMap<String, Variable>,
) -> Result<Component, ManifestError> {
    let field = |f: &str| format!("component.{id}.{f}");
    let id_ok = id.starts_with(|c: char| c.is_ascii_lowercase())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !id_ok {
        return Err(ManifestError::invalid(
            format!("component.{id}"),
            "component ids are lowercase letters, digits and '-', starting with a letter",
        ));
    }
    let unsupported: [(&str, bool, &str); 8] = [
        (
            "files",
            c.files.is_some(),
            "mounting files into guests is not implemented",
        ),
        (
            "exclude_files",
            c.exclude_files.is_some(),
            "mounting files into guests is not implemented",
        ),
        (
            "environment",
            c.environment.is_some(),
            "use [variables] and spin:variables instead",
        ),
        (
            "ai_models",
            c.ai_models.is_some(),
            "LLM inference is not provided at the edge",
        ),
        (
            "allowed_http_hosts",
            c.allowed_http_hosts.is_some(),
            "this is the manifest-v1 name; use allowed_outbound_hosts",
        ),
        (
            "dependencies",
            c.dependencies.is_some(),
            "component dependencies are not composed",
        ),
        (
            "dependencies_inherit_configuration",
            c.dependencies_inherit_configuration.is_some(),
            "component dependencies are not composed",
        ),
        (
            "targets",
            c.targets.is_some(),
            "deployment target checks are not implemented",
        ),
    ];
    if let Some((name, _, hint)) = unsupported.iter().find(|(_, set, _)| *set) {
        return Err(ManifestError::unsupported(field(name), *hint));
    }
    let source = match c.source {
        toml::Value::String(s) if !s.is_empty() => base.join(s),
        toml::Value::Table(_) => {
            return Err(ManifestError::unsupported(
                field("source"),
                "remote sources ({ url, digest }) are not fetched; build the component and give its path",
            ));
        }
        other => {
            return Err(ManifestError::invalid(
                field("source"),
                format!("must be the path of a .wasm file, found {other}"),
            ));
        }
    };
    for (i, host) in c.allowed_outbound_hosts.iter().enumerate() {
        let ok = host.contains("{{")
            || ["http://", "https://", "*://"]
                .iter()
                .any(|s| host.starts_with(s));
        if !ok {
            return Err(ManifestError::invalid(
                format!("{}[{i}]", field("allowed_outbound_hosts")),
                format!(
                    "{host:?} must be scheme://host[:port], e.g. \"https://api.example.com\" or \"http://127.0.0.1:*\""
                ),
            ));
        }
    }
    for (kind, labels) in [
        ("key_value_stores", &c.key_value_stores),
        ("sqlite_databases", &c.sqlite_databases),
    ] {
        for l in labels {
            let ok = !l.is_empty()
                && l.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
                });
            if !ok {
                return Err(ManifestError::invalid(
                    field(kind),
                    format!("label {l:?} must be lowercase letters, digits, '_' or '-'"),
                ));
            }
        }
    }
    let mut templates = BTreeMap::new();
    for (name, value) in c.variables {
        let vfield = format!("{}.{name}", field("variables"));
        if !is_variable_name(&name) {
            return Err(ManifestError::invalid(
                vfield,
                "variable names are lowercase letters, digits and '_', starting with a letter",
            ));
        }
        let t = Template::parse(&value).map_err(|e| ManifestError::invalid(&vfield, e))?;
        if let Some(missing) = t.variables().find(|v| !variables.contains_key(*v)) {
            return Err(ManifestError::invalid(
                vfield,
                format!("refers to {{{{ {missing} }}}}, which is not declared in [variables]"),
            ));
        }
        templates.insert(name, t);
    }
    Ok(Component {
        id: id.to_string(),
        source,
        allowed_outbound_hosts: c.allowed_outbound_hosts,
        key_value_stores: c.key_value_stores,
        sqlite_databases: c.sqlite_databases,
        variables: templates,
    })
}
