//! Loading an app: manifest -> compiled components -> route table.

use crate::capabilities::ComponentCapabilities;
use crate::capabilities::keyvalue::{KeyValueGrants, KeyValueStore, MemoryStore};
use crate::capabilities::outbound::OutboundPolicy;
use crate::capabilities::sqlite::{
    LibsqlDatabase, RemoteDatabase, ReplicaDatabase, SqliteDatabase, SqliteGrants,
};
use crate::capabilities::variables::{
    ComponentVariables, EnvProvider, FileProvider, Resolver, VariableProvider,
};
use crate::instance::{self, ComponentHandler};
use crate::limits::Limits;
use anyhow::{Context, Result, bail};
use edgeshop_manifest::{App, Router};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use wasmtime::{Engine, InstanceAllocationStrategy, PoolingAllocationConfig};
use wasmtime_wasi_http::handler::ProxyHandler;

/// How the host was told to run the app.
#[derive(Debug, Clone)]
pub struct HostOptions {
    pub manifest: PathBuf,
    /// `label=path` pairs: the database file behind each sqlite label.
    pub sqlite: BTreeMap<String, PathBuf>,
    /// Databases used remotely over Hrana: label, then URL and token.
    pub remote: BTreeMap<String, (String, String)>,
    /// The grant replicas' writes are checked against before they are
    /// sent (the `edge` token's).
    pub write_grant: Option<Arc<db_permissions::Grant>>,
    /// Simulated extra round-trip time to the primary.
    pub origin_delay: std::time::Duration,
    /// Whom an `https` primary must prove it is.
    pub origin_tls: replica::tls::ClientConfig,
    /// Components' outbound HTTP, trusting the same roots.
    pub outbound: crate::capabilities::outbound::Sender,
    /// A TOML file of variable values, consulted before the environment
    /// and re-read when it changes.
    pub variables_file: Option<PathBuf>,
    /// Where compiled components are cached between runs.
    pub cache_dir: Option<PathBuf>,
    /// The deny adapter composed in place of what a middleware does not
    /// inherit; by default `components/deny.wasm` beside the directory
    /// of the edge-host binary (where `cargo xtask build` puts it).
    pub deny_adapter: Option<PathBuf>,
    pub limits: Limits,
    /// Instances and failures per component, for `/metrics`.
    pub guests: crate::metrics::GuestMetrics,
}

/// The loaded app: a route table over ready component handlers.
pub struct LoadedApp {
    pub name: String,
    /// Embedded replicas the app reads; the PoP is ready once all are.
    pub replicas: Vec<Arc<replica::Replica>>,
    pub routes: Router<Arc<ProxyHandler<ComponentHandler>>>,
    /// Every component some route runs, as a chain's layer or alone.
    pub components: Vec<String>,
    /// What the host instantiates: one component or composed chain each
    /// (named outermost layer first, `ratelimit > auth-middleware > ...`).
    pub chains: Vec<String>,
    /// The PoP's key-value stores by label, for `/metrics`.
    pub stores: BTreeMap<String, Arc<MemoryStore>>,
}

pub fn engine(limits: &Limits, perf_map: bool) -> Result<Engine> {
    let mut config = wasmtime::Config::new();
    if perf_map {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    config.wasm_component_model(true);
    config.wasm_component_model_async(true);
    config.epoch_interruption(true);
    // Pre-reserved slots make instantiation a few microseconds; each slot
    // is bounded by the guest memory limit. An instance of a composed
    // chain holds each layer's core instances, memory and tables.
    //
    // A stack (fiber) is held by every guest task suspended in a host
    // call, not by every instance: an instance serves many requests at
    // once, and a layer may still be working after its answer went out (a
    // cache storing a body), so there are two per request in flight. Too
    // few and a request fails mid-flight instead of waiting for a slot.
    // Stacks are reserved address space; only the pages used are memory.
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(limits.max_instances)
        .total_core_instances(limits.max_instances * 24)
        .total_memories(limits.max_instances * 6)
        .total_tables(limits.max_instances * 24)
        .total_stacks(stacks(limits))
        .max_memory_size(limits.guest_memory_bytes);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Ok(Engine::new(&config)?)
}

/// Fibers the pool holds: see [`engine`].
fn stacks(limits: &Limits) -> u32 {
    let requests = u32::try_from(limits.max_concurrent_requests).unwrap_or(u32::MAX / 4);
    requests.saturating_mul(2).max(limits.max_instances)
}

pub async fn load(
    options: &HostOptions,
    replicas: &BTreeMap<String, Arc<replica::Replica>>,
    engine: &Engine,
) -> Result<LoadedApp> {
    let app: App = edgeshop_manifest::load_file(&options.manifest)
        .with_context(|| format!("loading {}", options.manifest.display()))?;
    let linker = instance::linker(engine)?;

    let mut databases: BTreeMap<String, Arc<dyn SqliteDatabase>> = BTreeMap::new();
    for (label, path) in &options.sqlite {
        if !path.exists() {
            bail!(
                "sqlite database {label:?} at {} does not exist; run `cargo xtask seed` first",
                path.display()
            );
        }
        let db = LibsqlDatabase::open(path)
            .await
            .with_context(|| format!("opening sqlite database {label:?} at {}", path.display()))?;
        databases.insert(label.clone(), Arc::new(db));
    }
    for (label, (url, token)) in &options.remote {
        let db = RemoteDatabase::open(url, token, options.origin_delay, options.origin_tls.clone())
            .await
            .with_context(|| format!("opening remote database {label:?} at {url}"))?;
        databases.insert(label.clone(), Arc::new(db));
    }
    for (label, r) in replicas {
        databases.insert(
            label.clone(),
            Arc::new(ReplicaDatabase::new(r.clone(), options.write_grant.clone())),
        );
    }

    let mut providers: Vec<Box<dyn VariableProvider>> = Vec::new();
    if let Some(path) = &options.variables_file {
        providers.push(Box::new(FileProvider::open(path.clone())?));
    }
    providers.push(Box::new(EnvProvider));
    let resolver = Arc::new(Resolver::new(&app, providers));
    // Each component's bytes and its own grants, for building chains from.
    let mut granted = BTreeMap::new();
    let mut kv_stores: BTreeMap<String, Arc<MemoryStore>> = BTreeMap::new();
    for (id, c) in &app.components {
        let mut grants = SqliteGrants {
            databases: BTreeMap::new(),
            max_result_bytes: options.limits.max_sqlite_result_bytes,
        };
        for label in &c.sqlite_databases {
            let db = databases.get(label).with_context(|| {
                format!(
                    "component {id} uses sqlite database {label:?}, but none is configured; \
                     pass --sqlite {label}=PATH or --replica {label}=URL"
                )
            })?;
            grants.databases.insert(label.clone(), db.clone());
        }
        let mut kv = KeyValueGrants::default();
        for label in &c.key_value_stores {
            // One store per label per PoP, shared by every component that
            // names it (as Spin does).
            let store = kv_stores
                .entry(label.clone())
                .or_insert_with(|| {
                    Arc::new(MemoryStore::new(
                        options.limits.kv_capacity_bytes,
                        options.limits.kv_idle_ttl,
                    ))
                })
                .clone();
            let mut store = store as Arc<dyn KeyValueStore>;
            if label == ratelimit_core::limiter::STORE {
                store = crate::metrics::count_decisions(store, &options.guests);
            }
            kv.stores.insert(label.clone(), store);
        }
        let variables = ComponentVariables::resolve(&c.variables, &resolver)
            .with_context(|| format!("component {id}"))?;
        let hosts = c
            .allowed_outbound_hosts
            .iter()
            .map(|h| {
                let t = edgeshop_manifest::Template::parse(h).map_err(|e| anyhow::anyhow!(e))?;
                Ok(resolver.render(&t)?)
            })
            .collect::<Result<Vec<String>>>()
            .with_context(|| format!("component.{id}.allowed_outbound_hosts"))?;
        let outbound = OutboundPolicy::parse(&hosts)
            .map_err(|e| anyhow::anyhow!("component.{id}.allowed_outbound_hosts: {e}"))?;
        let source = traced_build(&c.source).unwrap_or_else(|| c.source.clone());
        let bytes = std::fs::read(&source).with_context(|| {
            format!(
                "component {id}: cannot read {}; build it with `cargo xtask build`",
                source.display()
            )
        })?;
        let caps = ComponentCapabilities {
            component_id: id.clone(),
            sqlite: grants,
            keyvalue: kv,
            variables,
            outbound: Arc::new(outbound),
            sender: options.outbound.clone(),
        };
        granted.insert(id.clone(), (bytes, caps));
    }

    // One handler per distinct chain: a component alone, or composed with
    // the middleware in front of it (routes sharing a chain share its
    // instances). A chain runs with the app component's grants; what a
    // layer does not inherit is denied inside the composition.
    let mut handlers: BTreeMap<String, Arc<ProxyHandler<ComponentHandler>>> = BTreeMap::new();
    let mut deny: Option<Vec<u8>> = None;
    let mut routes = Vec::new();
    for (pattern, route) in app.routes.iter() {
        let (app_bytes, app_caps) = &granted[&route.component];
        let name = std::iter::once(route.component.as_str())
            .chain(route.middleware.iter().rev().map(|m| m.component.as_str()))
            .rev()
            .collect::<Vec<_>>()
            .join(" > ");
        let key = format!(
            "{name} {:?}",
            route
                .middleware
                .iter()
                .map(|m| &m.inherit)
                .collect::<Vec<_>>()
        );
        if let Some(handler) = handlers.get(&key) {
            routes.push((pattern.clone(), handler.clone()));
            continue;
        }
        let bytes = if route.middleware.is_empty() {
            std::borrow::Cow::Borrowed(app_bytes.as_slice())
        } else {
            if deny.is_none() {
                deny = Some(read_deny_adapter(options)?);
            }
            let layers = route
                .middleware
                .iter()
                .map(|m| edgeshop_compose::Layer {
                    part: edgeshop_compose::Part {
                        id: &m.component,
                        bytes: &granted[&m.component].0,
                    },
                    inherit: &m.inherit,
                })
                .collect::<Vec<_>>();
            let app_part = edgeshop_compose::Part {
                id: &route.component,
                bytes: app_bytes,
            };
            let composed =
                edgeshop_compose::compose(app_part, &layers, deny.as_deref().unwrap_or_default())
                    .with_context(|| format!("route {}", pattern.as_str()))?;
            std::borrow::Cow::Owned(composed)
        };
        let component = crate::compiled::component(engine, options.cache_dir.as_deref(), &bytes)
            .with_context(|| format!("compiling {name} for route {}", pattern.as_str()))?;
        let caps = ComponentCapabilities {
            component_id: name.clone(),
            ..app_caps.clone()
        };
        let handler = ComponentHandler::new(
            engine,
            &linker,
            &component,
            caps,
            options.limits.clone(),
            options.guests.clone(),
        )
        .with_context(|| format!("{name} on route {}", pattern.as_str()))?;
        let handler = Arc::new(ProxyHandler::new(handler));
        handlers.insert(key, handler.clone());
        routes.push((pattern.clone(), handler));
    }
    let routes = Router::new(routes).map_err(|e| anyhow::anyhow!(e))?;
    Ok(LoadedApp {
        name: app.name,
        replicas: replicas.values().cloned().collect(),
        routes,
        components: app
            .routes
            .iter()
            .flat_map(|(_, r)| {
                std::iter::once(r.component.clone())
                    .chain(r.middleware.iter().map(|m| m.component.clone()))
            })
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect(),
        chains: handlers.values().map(|h| h.state().id.clone()).collect(),
        stores: kv_stores,
    })
}

/// While spans are exported, the build of a middleware that makes a span
/// per traced request (`<name>.traced.wasm` beside `<name>.wasm`, from
/// `cargo xtask build`), if there is one and `EDGESHOP_TRACE_LAYERS` is not
/// `off`. spin.toml names the plain build: Spin links `wasi:otel` only
/// behind an experimental flag. A sampled cache hit costs about a fifth
/// more CPU with them; at one trace in ten that is within the noise
/// (docs/benchmarks.md).
fn traced_build(source: &Path) -> Option<PathBuf> {
    if !edgeshop_telemetry::trace::enabled()
        || std::env::var("EDGESHOP_TRACE_LAYERS").ok().as_deref() == Some("off")
    {
        return None;
    }
    let traced = source.with_extension("traced.wasm");
    traced.is_file().then_some(traced)
}

fn read_deny_adapter(options: &HostOptions) -> Result<Vec<u8>> {
    let path = match &options.deny_adapter {
        Some(path) => path.clone(),
        None => std::env::current_exe()?
            .parent()
            .and_then(Path::parent)
            .context("the edge-host binary has no parent directory")?
            .join("components/deny.wasm"),
    };
    std::fs::read(&path).with_context(|| {
        format!(
            "reading the deny adapter at {} (what a middleware does not inherit is wired to it); \
             build it with `cargo xtask build --components` or pass --deny-adapter",
            path.display()
        )
    })
}
