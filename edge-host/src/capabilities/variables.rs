//! `spin:variables@3.0.0`: application variables.
//!
//! [`VariableProvider`] is the seam: [`FileProvider`] reads a TOML file of
//! values that it re-reads when the file changes (so keys can be rotated
//! without a restart), [`EnvProvider`] reads `SPIN_VARIABLE_<NAME>` (Spin's
//! default), and the manifest default comes last. Every component's
//! templates are rendered once when the app loads, so a missing required
//! variable stops the host at start-up, and again on each `get`, so a
//! changed value is seen by the next request.

use crate::bindings::spin::variables::variables as wit;
use edgeshop_manifest::{App, Template};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use wasmtime::component::{Accessor, HasData};

/// Where application variable values come from.
pub trait VariableProvider: Send + Sync {
    fn get(&self, name: &str) -> Option<String>;
}

/// `SPIN_VARIABLE_<NAME>` environment variables.
pub struct EnvProvider;

impl VariableProvider for EnvProvider {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase())).ok()
    }
}

/// A fixed map, for tests and for values given on the command line.
impl VariableProvider for BTreeMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        BTreeMap::get(self, name).cloned()
    }
}

/// A TOML file of `name = "value"` pairs, re-read when its size or
/// modification time changes (looked at most every [`FileProvider::RECHECK`]).
/// A file that stops parsing keeps the last good values, with a warning.
pub struct FileProvider {
    path: PathBuf,
    state: Mutex<FileState>,
}

struct FileState {
    checked: Instant,
    stamp: Option<(SystemTime, u64)>,
    values: BTreeMap<String, String>,
}

impl FileProvider {
    pub const RECHECK: Duration = Duration::from_millis(200);

    /// Reads the file now; it must exist and parse.
    pub fn open(path: PathBuf) -> anyhow::Result<FileProvider> {
        let (stamp, values) = read_values(&path)?;
        Ok(FileProvider {
            path,
            state: Mutex::new(FileState {
                checked: Instant::now(),
                stamp: Some(stamp),
                values,
            }),
        })
    }
}

fn stamp(path: &std::path::Path) -> std::io::Result<(SystemTime, u64)> {
    let m = std::fs::metadata(path)?;
    Ok((m.modified()?, m.len()))
}

fn read_values(
    path: &std::path::Path,
) -> anyhow::Result<((SystemTime, u64), BTreeMap<String, String>)> {
    use anyhow::Context;
    let stamp = stamp(path).with_context(|| format!("reading {}", path.display()))?;
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let values: BTreeMap<String, String> = toml::from_str(&text).with_context(|| {
        format!(
            "{} must be a TOML table of string values (name = \"value\")",
            path.display()
        )
    })?;
    Ok((stamp, values))
}

impl VariableProvider for FileProvider {
    fn get(&self, name: &str) -> Option<String> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.checked.elapsed() >= Self::RECHECK {
            state.checked = Instant::now();
            let now = stamp(&self.path).ok();
            if now.is_some() && now != state.stamp {
                match read_values(&self.path) {
                    Ok((stamp, values)) => {
                        tracing::info!(path = %self.path.display(), "variables file changed; new values apply from the next request");
                        state.stamp = Some(stamp);
                        state.values = values;
                    }
                    Err(e) => {
                        tracing::warn!("keeping the previous variables: {e:#}");
                        state.stamp = now;
                    }
                }
            }
        }
        state.values.get(name).cloned()
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VariablesError {
    #[error(
        "variable {name:?} is required but has no value; set SPIN_VARIABLE_{} in the environment",
        name.to_ascii_uppercase()
    )]
    Missing { name: String },
}

/// Application variables: the providers, in order, then the manifest's
/// defaults.
pub struct Resolver {
    providers: Vec<Box<dyn VariableProvider>>,
    defaults: BTreeMap<String, String>,
}

impl Resolver {
    pub fn new(app: &App, providers: Vec<Box<dyn VariableProvider>>) -> Resolver {
        let defaults = app
            .variables
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.default.clone()?)))
            .collect();
        Resolver {
            providers,
            defaults,
        }
    }

    /// Renders a template (a component variable, or a manifest field such
    /// as `allowed_outbound_hosts` that may contain `{{ var }}`).
    pub fn render(&self, template: &Template) -> Result<String, VariablesError> {
        template.render(|name| {
            self.providers
                .iter()
                .find_map(|p| p.get(name))
                .or_else(|| self.defaults.get(name).cloned())
                .ok_or_else(|| VariablesError::Missing {
                    name: name.to_string(),
                })
        })
    }
}

/// A component's variables: its templates, rendered on each `get`.
#[derive(Clone)]
pub struct ComponentVariables {
    templates: Arc<BTreeMap<String, Template>>,
    resolver: Arc<Resolver>,
}

impl std::fmt::Debug for ComponentVariables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ComponentVariables")
            .field("names", &self.templates.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl ComponentVariables {
    /// Checks that every template renders now.
    pub fn resolve(
        templates: &BTreeMap<String, Template>,
        resolver: &Arc<Resolver>,
    ) -> Result<ComponentVariables, VariablesError> {
        for template in templates.values() {
            resolver.render(template)?;
        }
        Ok(ComponentVariables {
            templates: Arc::new(templates.clone()),
            resolver: resolver.clone(),
        })
    }

    pub fn get(&self, name: &str) -> Result<String, wit::Error> {
        if !edgeshop_manifest::template::is_variable_name(name) {
            return Err(wit::Error::InvalidName(format!(
                "{name:?} is not a valid variable name"
            )));
        }
        let template = self.templates.get(name).ok_or_else(|| {
            wit::Error::Undefined(format!("no variable {name:?} for this component"))
        })?;
        self.resolver
            .render(template)
            .map_err(|e| wit::Error::Provider(e.to_string()))
    }
}

/// `HasData` marker for the variables capability.
pub struct Variables;

impl HasData for Variables {
    type Data<'a> = &'a ComponentVariables;
}

impl wit::Host for &ComponentVariables {}

impl<T> wit::HostWithStore<T> for Variables {
    async fn get(
        accessor: &Accessor<T, Self>,
        name: String,
    ) -> wasmtime::Result<Result<String, wit::Error>> {
        Ok(accessor.with(|mut access| access.get().get(&name)))
    }
}
