use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use stella_export::ExporterHealth;
use stella_export::loadbalancing::LoadBalancingConfig;
use stella_metrics::{CounterVec, names};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::auth::TokenStore;
use crate::config::{self, Config, ConfigErrors, Profile};
use crate::consumers::Condition;
use crate::incidents::Incidents;
use crate::jobs::{Jobs, stopped_during};
use crate::receivers::otlp_grpc::GrpcLimits;
use crate::receivers::otlp_http::HttpLimits;
use crate::receivers::{Admission, OtlpService, QuotaConfig, Quotas, ReceiverMetrics, otlp_grpc, otlp_http};
use crate::server::spawn_server;
use crate::tls::{ReloadingTls, TlsSettings};
use crate::topology::{BuildContext, BuildError, Environment, StopMode, Topology, TopologyHandle};
use stella_store::chunks::HoldBook;
use stella_store::tables::{StateDb, StateError};

/// Where the config comes from: a built-in profile, optionally overlaid by a file.
#[derive(Debug, Clone)]
pub struct ConfigSource {
    /// The built-in profile.
    pub profile: Profile,
    /// The user's overlay file (`--config`), re-read on reload.
    pub overlay: Option<PathBuf>,
    /// A check the overlay must pass each time it is read (its signature, for `serve --config-dir`).
    pub check: Option<OverlayCheck>,
    /// The environment variables its `*_env` keys are read from (the process's, taken once at start).
    pub env_vars: config::EnvVars,
}

/// The function behind an [`OverlayCheck`].
pub type CheckFn = dyn Fn(&std::path::Path) -> Result<(), String> + Send + Sync;

/// A check of the overlay file before it is used: `Err(message)` refuses it (at start, or the reload).
#[derive(Clone)]
pub struct OverlayCheck(pub Arc<CheckFn>);

impl std::fmt::Debug for OverlayCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OverlayCheck")
    }
}

impl ConfigSource {
    /// Loads and validates the effective config (after the overlay passed its check).
    pub fn load(&self) -> Result<Config, ConfigErrors> {
        if let (Some(check), Some(overlay)) = (&self.check, &self.overlay) {
            (check.0)(overlay).map_err(|message| ConfigErrors::one(overlay.display().to_string(), message))?;
        }
        config::load(self.profile, self.overlay.as_deref(), &self.env_vars)
    }
}

/// The collector could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The config is invalid.
    #[error(transparent)]
    Config(#[from] ConfigErrors),
    /// A listener could not bind.
    #[error("cannot listen on {address} ({key}){holder}: {source}; stop whatever uses that port or change {key}")]
    Bind {
        /// The config key of the endpoint.
        key: String,
        /// The address.
        address: SocketAddr,
        /// ` (held by pid N (name))` when the port's holder could be found.
        holder: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A component could not be built.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// An ingest log could not be opened.
    #[error(transparent)]
    Log(#[from] stella_store::log::LogError),
    /// A listener would accept data from the network in clear text from anyone.
    #[error(
        "{key} binds {address}, which is not loopback, without TLS and with auth off; add `tls:` there or `auth: {{enabled: true}}`, bind 127.0.0.1, or start with --insecure if this network is trusted"
    )]
    Insecure {
        /// The endpoint's key.
        key: String,
        /// The address.
        address: SocketAddr,
    },
    /// The state database (`<data-dir>/state.redb`: holds, incident mode) cannot be opened, e.g. because
    /// another process has it open.
    #[error(transparent)]
    State(#[from] StateError),
    /// The saved incident mode cannot be read.
    #[error(transparent)]
    Incidents(#[from] crate::incidents::IncidentError),
    /// The token store cannot be opened.
    #[error(transparent)]
    Tokens(#[from] crate::auth::AuthError),
    /// A listener's TLS files are unusable.
    #[error("{key}.{source}")]
    Tls {
        /// The `tls` key of the listener.
        key: String,
        /// What is wrong.
        #[source]
        source: crate::tls::TlsError,
    },
}

impl StartError {
    /// A stable code.
    pub fn code(&self) -> &'static str {
        match self {
            StartError::Config(errors) => errors.code(),
            StartError::Bind { .. } => "collector.bind_failed",
            StartError::Build(_) => "collector.build_failed",
            StartError::Log(error) => error.code(),
            StartError::Tls { .. } => "tls.invalid",
            StartError::Insecure { .. } => "collector.insecure_bind",
            StartError::State(error) => error.code(),
            StartError::Incidents(error) => error.code(),
            StartError::Tokens(error) => error.code(),
        }
    }
}

/// A reload was refused; the running config stays in force.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The new config is invalid.
    #[error(transparent)]
    Config(#[from] ConfigErrors),
    /// A component of the new config could not be built.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// An ingest log of the new config could not be opened.
    #[error(transparent)]
    Log(#[from] stella_store::log::LogError),
    /// The collector is stopping.
    #[error("the collector is shutting down")]
    ShuttingDown,
}

impl ReloadError {
    /// A stable code.
    pub fn code(&self) -> &'static str {
        match self {
            ReloadError::Config(errors) => errors.code(),
            ReloadError::Build(_) => "config.build_failed",
            ReloadError::Log(error) => error.code(),
            ReloadError::ShuttingDown => "collector.shutting_down",
        }
    }
}

/// What a successful reload did.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ReloadReport {
    /// Always true: stages, pipelines and exporters of the new config are live.
    pub applied: bool,
    /// Settings that changed but only take effect after a restart (listeners).
    pub restart_required: Vec<String>,
    /// Pipelines now running.
    pub pipelines: Vec<String>,
}

/// One component's state for `/readyz`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ComponentState {
    /// `receivers.otlp.grpc`, `pipelines.traces`, `exporters.file`, ...
    pub component: String,
    /// `listening`, `running`, `ready`, `degraded` (still taking data; see `detail`), `failing`, `stopping`.
    pub state: String,
    /// Address or last error, where there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The readiness report: ready when every listener is up, every exporter works and no shutdown started.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Readiness {
    /// Whether the collector takes data right now.
    pub ready: bool,
    /// One entry per component.
    pub components: Vec<ComponentState>,
}

struct Listener {
    component: String,
    address: SocketAddr,
}

/// A running collector: listeners, the current topology, reload and shutdown.
pub struct Collector {
    source: ConfigSource,
    pub(crate) context: BuildContext,
    pub(crate) topology: TopologyHandle,
    config: Mutex<Config>,
    reload_lock: tokio::sync::Mutex<()>,
    listeners: Vec<Listener>,
    stop_receivers: CancellationToken,
    servers: Mutex<Vec<JoinHandle<()>>>,
    jobs: Jobs,
    reloads: CounterVec,
    incidents: Arc<Incidents>,
    state: StateDb,
    quotas: Arc<Quotas>,
    tokens: Arc<TokenStore>,
}

impl Collector {
    /// Loads the config, builds the pipelines and starts every receiver.
    pub async fn start(source: ConfigSource, environment: Environment) -> Result<Arc<Collector>, StartError> {
        let allow_insecure = environment.allow_insecure;
        let config = source.load()?;
        let state = StateDb::open(&environment.data_dir)?;
        let incidents = Arc::new(Incidents::open(Arc::new(state.incidents()), &environment.registry)?);
        let holds: Arc<HoldBook> = Arc::new(state.holds());
        let context = BuildContext::new(environment, &config.storage, Arc::clone(incidents.board()), holds);
        let topology = Topology::build(&config, &context, None)?;
        topology.start_consumers(&context)?;
        let topology = TopologyHandle::new(topology);
        let receiver_metrics = ReceiverMetrics::new(&context.registry);
        let token_store = Arc::new(TokenStore::with_state(&state, &context.data_dir)?);
        let tokens = config.auth_enabled.then(|| Arc::clone(&token_store));
        let quotas = Arc::new(Quotas::new(&tenant_quotas(&config)));
        let certificate_tenants = Arc::new(config.certificate_tenants.clone());
        refuse_insecure_listeners(&config, allow_insecure)?;
        let stop_receivers = CancellationToken::new();
        let mut listeners = Vec::new();
        let mut servers = Vec::new();
        for (id, receiver) in &config.receivers {
            let service = OtlpService::new(
                id,
                topology.clone(),
                receiver_metrics.clone(),
                tokens.clone(),
                Arc::clone(&quotas),
                Arc::clone(&certificate_tenants),
            );
            let admission = Admission::new(receiver.max_concurrent_requests, receiver.max_inflight_mib);
            if let Some(grpc) = &receiver.grpc {
                let key = format!("receivers.{id}.protocols.grpc.endpoint");
                let listener = bind(&key, grpc.endpoint).await?;
                let address = local_address(&listener, grpc.endpoint);
                let limits = GrpcLimits {
                    max_message_bytes: grpc.max_recv_msg_bytes,
                    max_decompressed_bytes: receiver.max_decompressed_bytes,
                    read_timeout: receiver.read_timeout,
                };
                let router =
                    otlp_grpc::router(service.clone(), limits, admission.protocol(grpc.max_concurrent_requests));
                let tls = listener_tls(grpc.tls.as_ref(), &key, &stop_receivers)?;
                servers.push(spawn_server(
                    listener,
                    router,
                    tls,
                    stop_receivers.clone(),
                    ("OTLP/gRPC", false),
                    receiver.read_timeout,
                ));
                tracing::info!(receiver = %id, protocol = "grpc", %address, "listening");
                listeners.push(Listener { component: format!("receivers.{id}.grpc"), address });
            }
            if let Some(http) = &receiver.http {
                let key = format!("receivers.{id}.protocols.http.endpoint");
                let listener = bind(&key, http.endpoint).await?;
                let address = local_address(&listener, http.endpoint);
                let limits = HttpLimits {
                    max_request_body_size: http.max_request_body_size,
                    max_decompressed_bytes: receiver.max_decompressed_bytes,
                    read_timeout: receiver.read_timeout,
                };
                let router =
                    otlp_http::router(service.clone(), limits, admission.protocol(http.max_concurrent_requests));
                let tls = listener_tls(http.tls.as_ref(), &key, &stop_receivers)?;
                servers.push(spawn_server(
                    listener,
                    router,
                    tls,
                    stop_receivers.clone(),
                    ("OTLP/HTTP", false),
                    receiver.read_timeout,
                ));
                tracing::info!(receiver = %id, protocol = "http", %address, "listening");
                listeners.push(Listener { component: format!("receivers.{id}.http"), address });
            }
        }
        let reloads = context.registry.counter(names::CONFIG_RELOADS, "Config reloads, by result.", &["result"]);
        Ok(Arc::new(Collector {
            source,
            context,
            topology,
            config: Mutex::new(config),
            reload_lock: tokio::sync::Mutex::new(()),
            listeners,
            stop_receivers,
            servers: Mutex::new(servers),
            jobs: Jobs::default(),
            reloads,
            incidents,
            quotas,
            state,
            tokens: token_store,
        }))
    }

    /// The tokens of the data directory: the one store that receivers and the API both check and change,
    /// so a revocation is in force everywhere once it returns.
    pub fn tokens(&self) -> &Arc<TokenStore> {
        &self.tokens
    }

    /// The state database of the data directory (`state.redb`).
    pub fn state_db(&self) -> &StateDb {
        &self.state
    }

    /// Holds retention respects (the API places and releases them).
    pub fn holds(&self) -> &Arc<HoldBook> {
        &self.context.holds
    }

    /// The embedded store, for queries.
    pub fn stores(&self) -> &Arc<crate::store::StoreRegistry> {
        &self.context.stores
    }

    /// Incident mode of every tenant (the API changes it; samplers read it).
    pub fn incidents(&self) -> &Arc<Incidents> {
        &self.incidents
    }

    /// The config in force.
    pub fn config(&self) -> Config {
        self.config.lock().unwrap_or_else(|poison| poison.into_inner()).clone()
    }

    /// `api.limits` in force (a reload changes them for the queries that start after it).
    pub fn query_limits(&self) -> stella_query::Limits {
        self.config.lock().unwrap_or_else(|poison| poison.into_inner()).api.limits
    }

    /// The address each receiver listens on, by component (`receivers.otlp.grpc`).
    pub fn listen_addresses(&self) -> Vec<(String, SocketAddr)> {
        self.listeners.iter().map(|listener| (listener.component.clone(), listener.address)).collect()
    }

    /// Re-reads the config source and applies it: stages, pipelines and exporters change live; listener
    /// settings are reported as needing a restart. An invalid config changes nothing.
    pub async fn reload(&self) -> Result<ReloadReport, ReloadError> {
        let _one_at_a_time = self.reload_lock.lock().await;
        let outcome = self.apply_reload().await;
        let result = if outcome.is_ok() { "applied" } else { "rejected" };
        self.reloads.with(&[result]).inc();
        match &outcome {
            Ok(report) => {
                tracing::info!(restart_required = ?report.restart_required, pipelines = ?report.pipelines, "config reloaded")
            }
            Err(error) => {
                tracing::warn!(code = error.code(), %error, "config reload refused; the running config stays")
            }
        }
        outcome
    }

    /// Builds the new topology, swaps it in, stops the old consumers (they save their cursors) and starts
    /// the new ones from those cursors, so no record is delivered twice or skipped across a reload.
    async fn apply_reload(&self) -> Result<ReloadReport, ReloadError> {
        let next_config = self.source.load()?;
        let current = self.topology.current().ok_or(ReloadError::ShuttingDown)?;
        let next = Topology::build(&next_config, &self.context, Some(&current))?;
        let restart_required = {
            let before = self.config.lock().unwrap_or_else(|poison| poison.into_inner()).restart_settings();
            let after = next_config.restart_settings();
            let mut changed: Vec<String> =
                before.keys().chain(after.keys()).filter(|key| before.get(*key) != after.get(*key)).cloned().collect();
            changed.dedup();
            changed
        };
        let report = ReloadReport {
            applied: true,
            restart_required,
            pipelines: next_config.pipelines.keys().cloned().collect(),
        };
        self.quotas.replace(&tenant_quotas(&next_config));
        *self.config.lock().unwrap_or_else(|poison| poison.into_inner()) = next_config;
        let previous = self.topology.replace(Some(next)).ok_or(ReloadError::ShuttingDown)?;
        let successor = self.topology.current().ok_or(ReloadError::ShuttingDown)?;
        previous.stop_consumers(StopMode::Abort, Some(&successor), Duration::from_secs(30)).await;
        successor.start_consumers(&self.context)?;
        Ok(report)
    }

    /// Reloads whenever the overlay file changes (polled every `interval`), until shutdown.
    pub fn watch_config_file(self: &Arc<Self>, interval: Duration) {
        let Some(path) = self.source.overlay.clone() else {
            return;
        };
        let collector = Arc::clone(self);
        let stamp = move || {
            std::fs::metadata(&path).ok().map(|meta| (meta.modified().unwrap_or(SystemTime::UNIX_EPOCH), meta.len()))
        };
        self.jobs.spawn("config file watch", |stop| async move {
            let mut last = stamp();
            while !stopped_during(&stop, interval).await {
                let now = stamp();
                if now != last {
                    last = now;
                    tracing::info!("config file changed; reloading");
                    let _ = collector.reload().await;
                }
            }
        });
    }

    /// Resolves the DNS names of `loadbalancing` exporters again every `resolver.dns.interval` and reloads
    /// when the backends changed (the ring is rebuilt; each backend keeps its cursor by name), until
    /// shutdown. A failed lookup keeps the current backends.
    pub fn watch_balancers(self: &Arc<Self>) {
        let collector = Arc::clone(self);
        self.jobs.spawn("load balancing DNS watch", |stop| async move {
            let mut checked: HashMap<String, tokio::time::Instant> = HashMap::new();
            while !stopped_during(&stop, Duration::from_secs(1)).await {
                let Some(topology) = collector.topology.current() else { return };
                let due: Vec<(String, LoadBalancingConfig, Vec<String>)> = topology
                    .dns_balancers()
                    .filter(|(id, balancing, _)| {
                        let interval =
                            balancing.resolver.dns.as_ref().map_or(Duration::from_secs(5), |dns| dns.interval);
                        checked.get(*id).is_none_or(|at| at.elapsed() >= interval)
                    })
                    .map(|(id, balancing, backends)| (id.to_string(), balancing.clone(), backends))
                    .collect();
                drop(topology);
                for (id, balancing, backends) in due {
                    checked.insert(id.clone(), tokio::time::Instant::now());
                    let resolved = tokio::task::spawn_blocking(move || balancing.members()).await;
                    match resolved {
                        Ok(Ok(now)) if now != backends => {
                            tracing::info!(exporter = %id, before = ?backends, after = ?now, "load balancing backends changed; rebuilding the ring");
                            let _ = collector.reload().await;
                        }
                        Ok(Err(error)) => {
                            tracing::warn!(exporter = %id, %error, "DNS lookup failed; keeping the current backends")
                        }
                        _ => {}
                    }
                }
            }
        });
    }

    /// Brings the metrics that are read rather than pushed up to date: the bytes each ingest log holds and
    /// the limit at which it refuses data, the records lost to damage, and every consumer's backlog and
    /// seconds since its last success (true while it waits on a failing backend). Called before
    /// `/metrics` is encoded.
    pub fn refresh_gauges(&self) {
        let registry = &self.context.registry;
        let bytes = registry.gauge(
            names::INGEST_LOG_BYTES,
            "Bytes an ingest log holds, by log and tenant; receivers answer 503 at storage.log.max_bytes.",
            &["log", "tenant"],
        );
        let damaged = registry.counter(
            names::INGEST_LOG_DAMAGED_RECORDS,
            "Records lost to damage in an ingest log (quarantined and skipped), by log and tenant.",
            &["log", "tenant"],
        );
        for (log, tenant, opened) in self.context.logs.open_logs() {
            bytes.with(&[&log, &tenant]).set(i64::try_from(opened.bytes()).unwrap_or(i64::MAX));
            let counter = damaged.with(&[&log, &tenant]);
            counter.add(opened.damaged_records().saturating_sub(counter.get()));
        }
        let limit = self.config().storage.log_max_bytes;
        registry
            .gauge(
                names::INGEST_LOG_MAX_BYTES,
                "storage.log.max_bytes: the size at which an ingest log refuses data.",
                &[],
            )
            .with(&[])
            .set(i64::try_from(limit).unwrap_or(i64::MAX));
        let export = stella_export::ExportMetrics::new(registry);
        let since = registry.gauge(
            names::EXPORT_SECONDS_SINCE_SUCCESS,
            "Seconds since an exporter's consumer last delivered or was caught up, by exporter and tenant (grows while it waits on a failing backend).",
            &["exporter", "tenant"],
        );
        for consumer in self.context.consumers.all() {
            let Some(exporter) = &consumer.exporter else { continue };
            export.backlog(exporter, &consumer.tenant, consumer.backlog());
            let seconds = i64::try_from(consumer.since_success().as_secs()).unwrap_or(i64::MAX);
            since.with(&[exporter, &consumer.tenant]).set(seconds);
        }
    }

    /// The replace-by-id table of records of `kind` in the state database (DORA events, federation).
    pub fn records(&self, kind: &'static str) -> stella_store::tables::RedbRecords {
        self.state.records(kind)
    }

    /// Whether the receivers have been told to stop.
    pub fn is_stopping(&self) -> bool {
        self.stop_receivers.is_cancelled()
    }

    /// Readiness of every component.
    pub fn readiness(&self) -> Readiness {
        let stopping = self.is_stopping();
        let mut components: Vec<ComponentState> = self
            .listeners
            .iter()
            .map(|listener| ComponentState {
                component: listener.component.clone(),
                state: if stopping { "stopping" } else { "listening" }.into(),
                detail: Some(listener.address.to_string()),
            })
            .collect();
        let mut ready = !stopping;
        for pipeline in self.config().pipelines.keys() {
            components.push(ComponentState {
                component: format!("pipelines.{pipeline}"),
                state: "running".into(),
                detail: None,
            });
        }
        // Each exporter (the store and tail samplers included) with the worst of its own health and its
        // consumers' (one per tenant).
        let mut states: std::collections::BTreeMap<String, (String, Option<String>)> = Default::default();
        if let Some(topology) = self.topology.current() {
            for (id, exporter) in topology.exporters() {
                let state = match exporter.health() {
                    ExporterHealth::Ready => ("ready".to_string(), None),
                    ExporterHealth::Failing(message) => {
                        ready = false;
                        ("failing".to_string(), Some(message))
                    }
                };
                states.insert(format!("exporters.{id}"), state);
            }
        }
        for consumer in self.context.consumers.all() {
            let entry = states.entry(consumer.component.clone()).or_insert_with(|| ("ready".into(), None));
            if let Condition::Degraded(reason) = consumer.condition()
                && entry.0 != "failing"
            {
                entry.0 = "degraded".into();
                entry.1 = Some(match entry.1.take() {
                    Some(earlier) => format!("{earlier}; {reason}"),
                    None => reason,
                });
            }
        }
        for (component, (state, detail)) in states {
            components.push(ComponentState { component, state, detail });
        }
        Readiness { ready, components }
    }

    /// Runs a background job of the server under the staged shutdown (see [`Jobs`]); `job` gets the stop
    /// signal and must return once it fires.
    pub fn spawn_job<F>(&self, name: &'static str, job: impl FnOnce(CancellationToken) -> F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.jobs.spawn(name, job);
    }

    /// Staged shutdown: receivers stop taking requests and finish the ones in flight, background jobs
    /// stop, the pipelines drain, exporters flush. Each stage gets at most `deadline`.
    pub async fn shutdown(&self, deadline: Duration) {
        tracing::info!("shutting down: stopping receivers");
        self.stop_receivers.cancel();
        let servers = std::mem::take(&mut *self.servers.lock().unwrap_or_else(|poison| poison.into_inner()));
        for server in servers {
            if tokio::time::timeout(deadline, server).await.is_err() {
                tracing::warn!(?deadline, "a receiver did not finish its requests in time");
            }
        }
        tracing::info!("receivers stopped: background jobs finish");
        self.jobs.stop(deadline).await;
        tracing::info!("consumers deliver what the ingest logs hold, then exporters flush");
        if let Some(topology) = self.topology.replace(None) {
            topology.stop_consumers(StopMode::Drain, None, deadline).await;
        }
        self.context.logs.close_all();
        tracing::info!("shutdown complete");
    }
}

/// The quotas the tenants of `config` declare.
fn tenant_quotas(config: &Config) -> Vec<(String, QuotaConfig)> {
    config.tenants.iter().filter_map(|tenant| Some((tenant.id.clone(), tenant.quotas?))).collect()
}

/// Binds the listener of config key `key`; a failure names the address and, when it can be found, the
/// process holding it.
pub async fn bind(key: &str, address: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(address).await.map_err(|source| StartError::Bind {
        key: key.to_string(),
        address,
        holder: crate::server::port_holder(address).map(|holder| format!(" (held by {holder})")).unwrap_or_default(),
        source,
    })
}

fn local_address(listener: &TcpListener, configured: SocketAddr) -> SocketAddr {
    listener.local_addr().unwrap_or(configured)
}

/// How often certificate files are checked for changes.
const TLS_RELOAD_INTERVAL: Duration = Duration::from_secs(2);

/// The reloading TLS configuration of a listener whose endpoint is `key`, if it has `tls:`.
pub fn listener_tls(
    settings: Option<&TlsSettings>,
    key: &str,
    stop: &CancellationToken,
) -> Result<Option<Arc<ReloadingTls>>, StartError> {
    let Some(settings) = settings else { return Ok(None) };
    let listener = key.trim_end_matches(".endpoint").to_string();
    ReloadingTls::start(settings.clone(), TLS_RELOAD_INTERVAL, stop.clone(), listener.clone())
        .map(Some)
        .map_err(|source| StartError::Tls { key: format!("{listener}.tls"), source })
}

/// Safe default: a non-loopback listener needs TLS or auth, unless the operator says `--insecure`.
/// `serve` and `config validate` both check it.
pub fn refuse_insecure_listeners(config: &Config, allow_insecure: bool) -> Result<(), StartError> {
    if allow_insecure || config.auth_enabled {
        return Ok(());
    }
    let mut listeners = vec![("api.endpoint".to_string(), config.api.endpoint, config.api.tls.is_some())];
    for (id, receiver) in &config.receivers {
        if let Some(grpc) = &receiver.grpc {
            listeners.push((format!("receivers.{id}.protocols.grpc.endpoint"), grpc.endpoint, grpc.tls.is_some()));
        }
        if let Some(http) = &receiver.http {
            listeners.push((format!("receivers.{id}.protocols.http.endpoint"), http.endpoint, http.tls.is_some()));
        }
    }
    match listeners.into_iter().find(|(_, address, tls)| !address.ip().is_loopback() && !tls) {
        Some((key, address, _)) => Err(StartError::Insecure { key, address }),
        None => Ok(()),
    }
}
