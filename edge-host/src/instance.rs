//! One component's instances: store data, pre-instantiation and reuse.
//!
//! [`ComponentHandler`] implements wasmtime-wasi-http's `HandlerState`, so
//! `ProxyHandler` runs WASI 0.3 instances concurrently and reuses them
//! (bounded by [`Limits`]), as `wasmtime serve` and Spin do.

use crate::capabilities::keyvalue::{KeyValue, KeyValueView};
use crate::capabilities::sqlite::{Sqlite, SqliteView};
use crate::capabilities::variables::Variables;
use crate::capabilities::{ComponentCapabilities, outbound::OutboundHooks};
use crate::limits::Limits;
use crate::metrics::GuestMetrics;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use wasmtime::component::{GuestTaskId, Linker, ResourceTable};
use wasmtime::{Engine, Store, StoreContextMut, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::handler::{
    HandlerState, Instance, ProxyPre, ShouldAccept, WorkerExpiration, WorkerState, WorkerStatus,
};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// Set once the host starts shutting down: workers dropped after this are
/// being torn down with the runtime, not failing.
static SHUTTING_DOWN: AtomicBool = AtomicBool::new(false);

pub fn begin_shutdown() {
    SHUTTING_DOWN.store(true, Ordering::SeqCst);
}

/// Core instances one store may create: a chain of four spin-sdk
/// components and the deny adapter is about twenty.
pub const MAX_CORE_INSTANCES: usize = 64;

/// How long after a request's deadline its instance is dropped.
const EXPIRY_GRACE: Duration = Duration::from_millis(250);

/// Everything one guest instance's store holds.
pub struct HostState {
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: OutboundHooks,
    limits: StoreLimits,
    caps: Arc<ComponentCapabilities>,
}

impl HostState {
    pub fn table_mut(&mut self) -> &mut ResourceTable {
        &mut self.table
    }

    /// The component, or the chain, this store runs.
    pub fn component_id(&self) -> &str {
        &self.caps.component_id
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// Adds every interface a guest may import to the linker: WASI 0.2 (what
/// std in spin-sdk 7 guests imports), WASI 0.3 HTTP, and Spin's.
pub fn linker(engine: &Engine) -> anyhow::Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi::p3::add_to_linker(&mut linker)?;
    wasmtime_wasi_http::p3::add_to_linker(&mut linker)?;
    crate::bindings::middleware::wasi::http::handler::add_to_linker::<
        _,
        crate::capabilities::next::Next,
    >(&mut linker, |s: &mut HostState| s)?;
    crate::bindings::spin::sqlite::sqlite::add_to_linker::<_, Sqlite>(
        &mut linker,
        |s: &mut HostState| SqliteView {
            table: &mut s.table,
            grants: &s.caps.sqlite,
        },
    )?;
    fn kv(s: &mut HostState) -> KeyValueView<'_> {
        KeyValueView {
            table: &mut s.table,
            grants: &s.caps.keyvalue,
        }
    }
    crate::bindings::spin::key_value::key_value::add_to_linker::<_, KeyValue>(&mut linker, kv)?;
    crate::bindings::wasi::keyvalue::store::add_to_linker::<_, KeyValue>(&mut linker, kv)?;
    crate::bindings::wasi::keyvalue::atomics::add_to_linker::<_, KeyValue>(&mut linker, kv)?;
    crate::bindings::wasi::keyvalue::batch::add_to_linker::<_, KeyValue>(&mut linker, kv)?;
    crate::bindings::spin::variables::variables::add_to_linker::<_, Variables>(
        &mut linker,
        |s: &mut HostState| &s.caps.variables,
    )?;
    crate::bindings::wasi::otel::tracing::add_to_linker::<_, crate::capabilities::otel::Otel>(
        &mut linker,
        |s: &mut HostState| &mut s.hooks.spans,
    )?;
    Ok(linker)
}

/// A component ready to serve: its pre-instance, grants and limits.
pub struct ComponentHandler {
    pub id: String,
    pre: ProxyPre<HostState>,
    caps: Arc<ComponentCapabilities>,
    limits: Limits,
    engine: Engine,
    next_instance: AtomicU64,
    metrics: GuestMetrics,
}

impl ComponentHandler {
    pub fn new(
        engine: &Engine,
        linker: &Linker<HostState>,
        component: &wasmtime::component::Component,
        caps: ComponentCapabilities,
        limits: Limits,
        metrics: GuestMetrics,
    ) -> anyhow::Result<ComponentHandler> {
        let pre = linker.instantiate_pre(component)?;
        let pre = wasmtime_wasi_http::p3::bindings::ServicePre::new(pre).map_err(|e| {
            anyhow::anyhow!(
                "component {} does not export wasi:http/handler@0.3.0 (build it with spin-sdk 7): {e}",
                caps.component_id
            )
        })?;
        Ok(ComponentHandler {
            id: caps.component_id.clone(),
            pre: ProxyPre::P3(pre),
            caps: Arc::new(caps),
            limits,
            engine: engine.clone(),
            next_instance: AtomicU64::new(0),
            metrics,
        })
    }

    fn new_store(&self) -> Store<HostState> {
        let mut wasi = WasiCtx::builder();
        // Guest stdout/stderr go to the host's log, not the client.
        wasi.inherit_stdout().inherit_stderr();
        let state = HostState {
            table: ResourceTable::new(),
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            hooks: OutboundHooks {
                policy: self.caps.outbound.clone(),
                sender: self.caps.sender.clone(),
                component_id: self.id.clone(),
                spans: Default::default(),
            },
            limits: StoreLimitsBuilder::new()
                .memory_size(self.limits.guest_memory_bytes)
                .trap_on_grow_failure(true)
                // A composed chain is several components, each a few core
                // instances.
                .instances(MAX_CORE_INSTANCES)
                .build(),
            caps: self.caps.clone(),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        // Yield to the host at every epoch tick so a spinning guest can be
        // dropped when its request deadline passes.
        store.epoch_deadline_async_yield_and_update(1);
        store.set_epoch_deadline(1);
        store
    }
}

impl HandlerState for ComponentHandler {
    type StoreData = HostState;
    type WorkerExpiration = Expiration;
    type WorkerState = Worker;

    async fn instantiate(&self) -> wasmtime::Result<Instance<HostState, Expiration, Worker>> {
        let instance_id = self.next_instance.fetch_add(1, Ordering::Relaxed);
        let mut store = self.new_store();
        let proxy = self.pre.instantiate_async(&mut store).await?;
        tracing::debug!(component = %self.id, instance_id, "instantiated");
        self.metrics.instantiated(&self.id);
        Ok(Instance {
            store,
            proxy,
            view: WasiHttpView::http,
            expiration: Expiration {
                idle: self.limits.instance_idle,
                // A little after the request deadline, so the request itself
                // expires first and its caller sees a timeout, not a crash.
                request: self.limits.request_timeout + EXPIRY_GRACE,
                sleep: Box::pin(tokio::time::sleep(Duration::MAX)),
            },
            state: Worker {
                metrics: self.metrics.clone(),
                component: self.id.clone(),
                reuse: self.limits.instance_reuse,
                concurrency: self.limits.instance_concurrency,
                request_timeout: self.limits.request_timeout,
            },
        })
    }
}

/// Retires an instance once idle too long, or once a request overstays the
/// deadline (the second line of defence the handler docs ask for).
pub struct Expiration {
    idle: Duration,
    request: Duration,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl WorkerExpiration for Expiration {
    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        status: WorkerStatus,
        start: Instant,
    ) -> Poll<()> {
        let timeout = match status {
            WorkerStatus::Idle => self.idle,
            WorkerStatus::Requests | WorkerStatus::PostReturn => self.request,
        };
        let Some(deadline) = start.checked_add(timeout) else {
            return Poll::Pending;
        };
        let deadline = tokio::time::Instant::from_std(deadline);
        if self.sleep.deadline() != deadline {
            self.sleep.as_mut().reset(deadline);
        }
        self.sleep.as_mut().poll(cx)
    }
}

pub struct Worker {
    metrics: GuestMetrics,
    component: String,
    reuse: usize,
    concurrency: usize,
    request_timeout: Duration,
}

impl WorkerState for Worker {
    type StoreData = HostState;
    type RequestData = u64;

    fn should_accept_request(&self, concurrent: usize, total: usize) -> ShouldAccept {
        if total >= self.reuse {
            ShouldAccept::Never
        } else if concurrent >= self.concurrency {
            ShouldAccept::No
        } else {
            ShouldAccept::Yes
        }
    }

    fn on_request_start(
        &self,
        _store: StoreContextMut<'_, HostState>,
        _request_id: u64,
        _task: GuestTaskId,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + Sync + 'static>> {
        Box::pin(tokio::time::sleep(self.request_timeout))
    }

    fn drop(&self, store: Store<HostState>, result: wasmtime::Result<()>) {
        self.metrics.dropped(&self.component);
        if let Err(e) = result {
            // wasmtime-wasi-http reports a worker future dropped before it
            // finished as "worker panicked"; at shutdown that is expected.
            if SHUTTING_DOWN.load(Ordering::SeqCst) {
                tracing::debug!(component = %self.component, error = %format!("{e:#}"), "instance dropped at shutdown");
            } else {
                tracing::error!(component = %self.component, error = %format!("{e:#}"), "guest instance failed");
            }
        }
        drop(store);
    }
}

/// How long a request may wait for an instance slot when the pool is full.
const MAX_CAPACITY_WAIT: Duration = Duration::from_secs(2);

/// Why a request got no instance: the pool stayed full for
/// [`MAX_CAPACITY_WAIT`].
#[derive(Debug, thiserror::Error)]
#[error("every instance slot stayed busy for {MAX_CAPACITY_WAIT:?}")]
pub struct AtCapacity;

/// Hands `request` to `handler`, waiting while the instance pool is full.
///
/// When many requests arrive at once and no worker is free yet, the
/// handler starts one instance per request; past the pool's size those
/// fail to instantiate and the request comes back. It is tried again after
/// a short pause (by then the first instances take requests from the
/// queue), so a burst becomes a queue, and only a pool that stays full
/// turns into [`AtCapacity`].
pub async fn handle_with_backpressure(
    handler: &wasmtime_wasi_http::handler::ProxyHandler<ComponentHandler>,
    id: u64,
    mut request: wasmtime_wasi_http::handler::Request,
) -> wasmtime::Result<wasmtime_wasi_http::handler::Response> {
    use wasmtime_wasi_http::handler::InstantiationError;
    let started = Instant::now();
    let mut pause = Duration::from_millis(2);
    loop {
        match handler.handle(id, request).await {
            Err(e) if e.is::<InstantiationError<u64>>() && is_pool_full(&e) => {
                if started.elapsed() >= MAX_CAPACITY_WAIT {
                    return Err(AtCapacity.into());
                }
                let Ok(back) = e.downcast::<InstantiationError<u64>>() else {
                    unreachable!("checked with is::<InstantiationError>");
                };
                request = back
                    .request
                    .into_inner()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

fn is_pool_full(e: &wasmtime::Error) -> bool {
    // wasmtime reports the pool limit only in its message.
    format!("{e:#}").contains("concurrent limit")
}
