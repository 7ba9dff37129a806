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
use wasmtime::component::Component;
use wasmtime::{Engine, InstanceAllocationStrategy, PoolingAllocationConfig};
use wasmtime_wasi_http::handler::ProxyHandler;

/// How the host was told to run the app.
#[derive(Debug, Clone)]
pub struct HostOptions {
    pub manifest: PathBuf,
    /// `label=path` pairs: the database file behind each sqlite label.
    pub sqlite: BTreeMap<String, PathBuf>,
    /// `label=url` pairs: databases used remotely over Hrana.
    pub remote: BTreeMap<String, String>,
    /// Bearer token for remote databases and replicas' primaries.
    pub primary_token: String,
    /// Simulated extra round-trip time to the primary.
    pub origin_delay: std::time::Duration,
    /// A TOML file of variable values, consulted before the environment
    /// and re-read when it changes.
    pub variables_file: Option<PathBuf>,
    /// Where compiled components are cached between runs.
    pub cache_dir: Option<PathBuf>,
    pub limits: Limits,
}

/// The loaded app: a route table over ready component handlers.
pub struct LoadedApp {
    pub name: String,
    /// Embedded replicas the app reads; the PoP is ready once all are.
    pub replicas: Vec<Arc<replica::Replica>>,
    pub routes: Router<Arc<ProxyHandler<ComponentHandler>>>,
    pub components: Vec<String>,
}

pub fn engine(limits: &Limits, cache_dir: Option<&Path>, perf_map: bool) -> Result<Engine> {
    let mut config = wasmtime::Config::new();
    if perf_map {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    config.wasm_component_model(true);
    config.wasm_component_model_async(true);
    config.epoch_interruption(true);
    if let Some(dir) = cache_dir {
        std::fs::create_dir_all(dir)?;
        let mut cache = wasmtime::CacheConfig::new();
        cache.with_directory(dir);
        config.cache(Some(wasmtime::Cache::new(cache)?));
    }
    // Pre-reserved slots make instantiation a few microseconds; each slot
    // is bounded by the guest memory limit.
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(limits.max_instances)
        .total_core_instances(limits.max_instances * 4)
        .total_memories(limits.max_instances * 2)
        .total_tables(limits.max_instances * 4)
        .total_stacks(limits.max_instances)
        .max_memory_size(limits.guest_memory_bytes);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Ok(Engine::new(&config)?)
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
    for (label, url) in &options.remote {
        let db = RemoteDatabase::open(url, &options.primary_token, options.origin_delay)
            .await
            .with_context(|| format!("opening remote database {label:?} at {url}"))?;
        databases.insert(label.clone(), Arc::new(db));
    }
    for (label, r) in replicas {
        databases.insert(label.clone(), Arc::new(ReplicaDatabase::new(r.clone())));
    }

    let mut providers: Vec<Box<dyn VariableProvider>> = Vec::new();
    if let Some(path) = &options.variables_file {
        providers.push(Box::new(FileProvider::open(path.clone())?));
    }
    providers.push(Box::new(EnvProvider));
    let resolver = Arc::new(Resolver::new(&app, providers));
    let mut handlers = BTreeMap::new();
    // Each component's compiled code and its own grants, for building
    // middleware layers from.
    let mut granted = BTreeMap::new();
    let mut kv_stores: BTreeMap<String, Arc<dyn KeyValueStore>> = BTreeMap::new();
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
                    )) as Arc<dyn KeyValueStore>
                })
                .clone();
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
        let bytes = std::fs::read(&c.source).with_context(|| {
            format!(
                "component {id}: cannot read {}; build it with `cargo xtask build`",
                c.source.display()
            )
        })?;
        let component = Component::new(engine, &bytes)
            .map_err(anyhow::Error::from)
            .with_context(|| {
                format!(
                    "component {id}: {} is not a valid component",
                    c.source.display()
                )
            })?;
        let caps = ComponentCapabilities {
            component_id: id.clone(),
            sqlite: grants,
            keyvalue: kv,
            variables,
            outbound: Arc::new(outbound),
            next: None,
        };
        let handler = ComponentHandler::new(
            engine,
            &linker,
            &component,
            caps.clone(),
            options.limits.clone(),
        )
        .with_context(|| format!("component {id}"))?;
        handlers.insert(id.clone(), Arc::new(ProxyHandler::new(handler)));
        granted.insert(id.clone(), (component, caps));
    }

    let mut routes = Vec::new();
    for (pattern, route) in app.routes.iter() {
        // Innermost first: the app, then each middleware around it, each
        // with only what it inherits from the app component.
        let mut next = handlers[&route.component].clone();
        let (_, parent) = &granted[&route.component];
        for mw in route.middleware.iter().rev() {
            let (component, _) = &granted[&mw.component];
            let caps = parent.inherited(&mw.component, &mw.inherit, next);
            let handler =
                ComponentHandler::new(engine, &linker, component, caps, options.limits.clone())
                    .with_context(|| {
                        format!("middleware {} on {}", mw.component, pattern.as_str())
                    })?;
            next = Arc::new(ProxyHandler::new(handler));
        }
        routes.push((pattern.clone(), next));
    }
    let routes = Router::new(routes).map_err(|e| anyhow::anyhow!(e))?;
    Ok(LoadedApp {
        name: app.name,
        replicas: replicas.values().cloned().collect(),
        routes,
        components: handlers.keys().cloned().collect(),
    })
}
