//! `spin:variables@3.0.0`: application variables, resolved once at start-up.
//!
//! [`VariableProvider`] is the seam: [`EnvProvider`] reads
//! `SPIN_VARIABLE_<NAME>` (Spin's default), then the manifest default.
//! Values are resolved for each component's templates when the app loads, so
//! a missing required variable stops the host at start-up, not mid-request.

use crate::bindings::spin::variables::variables as wit;
use edgeshop_manifest::{App, Template};
use std::collections::BTreeMap;
use wasmtime::component::{Accessor, HasData};

/// Where application variable values come from.
pub trait VariableProvider {
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

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VariablesError {
    #[error(
        "variable {name:?} is required but has no value; set SPIN_VARIABLE_{} in the environment",
        name.to_ascii_uppercase()
    )]
    Missing { name: String },
}

/// A component's variables, rendered.
#[derive(Debug, Clone, Default)]
pub struct ComponentVariables {
    values: BTreeMap<String, String>,
}

/// Renders a template against application variables (used for manifest
/// fields that may contain `{{ var }}`, such as `allowed_outbound_hosts`).
pub fn render(
    app: &App,
    template: &Template,
    providers: &[&dyn VariableProvider],
) -> Result<String, VariablesError> {
    template.render(|name| {
        providers
            .iter()
            .find_map(|p| p.get(name))
            .or_else(|| app.variables.get(name).and_then(|v| v.default.clone()))
            .ok_or_else(|| VariablesError::Missing {
                name: name.to_string(),
            })
    })
}

impl ComponentVariables {
    pub fn resolve(
        app: &App,
        templates: &BTreeMap<String, Template>,
        providers: &[&dyn VariableProvider],
    ) -> Result<ComponentVariables, VariablesError> {
        let mut values = BTreeMap::new();
        for (key, template) in templates {
            values.insert(key.clone(), render(app, template, providers)?);
        }
        Ok(ComponentVariables { values })
    }

    pub fn get(&self, name: &str) -> Result<String, wit::Error> {
        if !edgeshop_manifest::template::is_variable_name(name) {
            return Err(wit::Error::InvalidName(format!(
                "{name:?} is not a valid variable name"
            )));
        }
        self.values.get(name).cloned().ok_or_else(|| {
            wit::Error::Undefined(format!("no variable {name:?} for this component"))
        })
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
