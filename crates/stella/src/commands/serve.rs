//! `stella telemetry serve`: runs the collector and the API until SIGTERM/SIGINT; SIGHUP reloads.
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use stella_collector::config::EnvVars;
use stella_collector::topology::Environment;
use stella_collector::{API_HEADER_TIMEOUT, Collector, ConfigSource, listener_tls, spawn_server};
use stella_metrics::Registry;
use stella_pipeline::resource_detection::HostFacts;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use crate::cli::ServeArgs;

/// How long each shutdown stage may take.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(30);
/// How often the --config file is checked for changes.
const CONFIG_POLL: Duration = Duration::from_secs(1);

/// The config file of `--config-dir`.
fn dir_config(args: &ServeArgs) -> std::path::PathBuf {
    args.config_dir.as_deref().unwrap_or(std::path::Path::new(".")).join(stella_evidence::config_bundle::CONFIG_FILE)
}

/// Runs the collector.
pub async fn execute(args: ServeArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir).with_context(|| {
        format!("cannot create the data directory {}; pass a writable --data-dir", args.data_dir.display())
    })?;
    // One server per data directory; offline commands that change it refuse while this is held.
    let _data_dir_lock = stella_store::lock::DataDirLock::for_server(&args.data_dir)?;
    let registry = Registry::default();
    stella_api::register_build_info(&registry, env!("CARGO_PKG_VERSION"));
    let source = match &args.config_dir {
        Some(dir) => {
            let mut trust = stella_evidence::TrustStore::from_files(&args.trusted_keys)?;
            let own = stella_evidence::SigningKey::load_or_generate(&args.data_dir.join("keys"))?;
            trust.insert(own.trusted_key());
            let dir = dir.clone();
            let check = move |_: &std::path::Path| {
                stella_evidence::config_bundle::verify_dir(&dir, &trust)
                    .map(|signer| tracing::info!(keyid = %signer.keyid, "signed config verified"))
                    .map_err(|error| {
                        format!(
                            "{}: {error}; serve runs only a config signed by a trusted key (--trusted-key)",
                            error.code()
                        )
                    })
            };
            ConfigSource {
                profile: args.profile,
                overlay: Some(dir_config(&args)),
                check: Some(stella_collector::OverlayCheck(Arc::new(check))),
                env_vars: EnvVars::of_this_process(),
            }
        }
        None => ConfigSource {
            profile: args.profile,
            overlay: args.config.clone(),
            check: None,
            env_vars: EnvVars::of_this_process(),
        },
    };
    // The signing key comes first: file exporters sign their rotations from the start.
    let evidence =
        stella_api::evidence::load(&source.load()?.evidence, &args.data_dir, &args.profile.to_string(), &registry)?;
    tracing::info!(
        keyid = evidence.key.keyid(),
        kind = %evidence.key.kind(),
        trusted_keys = evidence.trust.len(),
        "evidence signing key ready"
    );
    let log_events = Arc::new(stella_api::events::LogEvents::new(&registry));
    let context = Environment {
        data_dir: args.data_dir.clone(),
        registry: registry.clone(),
        host_facts: Arc::new(HostFacts::of_this_process()),
        allow_insecure: args.insecure,
        rotation_signer: Some(Arc::new(stella_evidence::rotation::RotationSigning::new(evidence.key.clone()))),
        event_exporter: Some(Arc::clone(&log_events) as Arc<dyn stella_export::Exporter>),
    };
    let collector = Collector::start(source, context).await?;
    log_events.attach(Arc::clone(&collector));
    let api_config = collector.config().api;
    let api_endpoint = api_config.endpoint;
    let api_listener = stella_collector::bind("api.endpoint", api_endpoint).await?;
    let api_stop = CancellationToken::new();
    let tokens = collector.config().auth_enabled.then(|| Arc::clone(collector.tokens()));
    let audit = Arc::new(stella_api::audit::AuditLog::new(&args.data_dir, Some(collector.state_db())));
    let checkpoint_key = evidence.key.clone();
    let api_state = stella_api::ApiState {
        collector: Arc::clone(&collector),
        registry,
        tokens,
        metrics_public: api_config.metrics_public,
        audit: Arc::clone(&audit),
        token_admin: Arc::clone(collector.tokens()),
        evidence: Arc::new(evidence),
        rules: Default::default(),
    };
    stella_api::incidents::enforce_ttl(&api_state);
    stella_api::rules::spawn_evaluation(&api_state);
    collector.start_self_monitoring();
    stella_api::evidence::spawn_schedule(&api_state);
    stella_api::dora::spawn_refresh(api_state.clone());
    let api_tls = listener_tls(api_config.tls.as_ref(), "api.endpoint", &api_stop)?;
    let api = spawn_server(
        api_listener,
        stella_api::router(api_state),
        api_tls,
        api_stop.clone(),
        ("API", true),
        API_HEADER_TIMEOUT,
    );
    collector.watch_config_file(CONFIG_POLL);
    collector.watch_balancers();
    tracing::info!(
        profile = %args.profile,
        data_dir = %args.data_dir.display(),
        api = %api_endpoint,
        listeners = ?collector.listen_addresses(),
        "stella telemetry is running"
    );
    let checkpoints = spawn_audit_checkpoints(Arc::clone(&audit), checkpoint_key.clone(), api_stop.clone());
    wait_for_stop(&collector).await?;
    collector.shutdown(SHUTDOWN_DEADLINE).await;
    api_stop.cancel();
    let _ = tokio::time::timeout(SHUTDOWN_DEADLINE, api).await;
    let _ = checkpoints.await;
    // The last checkpoint vouches for everything the trail holds at the stop.
    if let Err(error) = audit.checkpoint(&checkpoint_key) {
        tracing::error!(code = error.code(), %error, "cannot write the audit checkpoint at shutdown");
    }
    Ok(())
}

/// How often the audit trail gets a signed checkpoint (when it has new lines).
const AUDIT_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(3600);

/// Appends a signed checkpoint to the audit trail every [`AUDIT_CHECKPOINT_INTERVAL`] until `stop`.
fn spawn_audit_checkpoints(
    audit: Arc<stella_api::audit::AuditLog>,
    key: stella_evidence::SigningKey,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(AUDIT_CHECKPOINT_INTERVAL) => {}
            }
            let (audit, key) = (Arc::clone(&audit), key.clone());
            match tokio::task::spawn_blocking(move || audit.checkpoint(&key)).await {
                Ok(Ok(_)) => {}
                Ok(Err(error)) => tracing::error!(code = error.code(), %error, "cannot write an audit checkpoint"),
                Err(error) => tracing::error!(%error, "the audit checkpoint failed unexpectedly"),
            }
        }
    })
}

/// Returns on SIGTERM or SIGINT; reloads on SIGHUP.
async fn wait_for_stop(collector: &Collector) -> anyhow::Result<()> {
    let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    let mut hangup = signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?;
    loop {
        tokio::select! {
            _ = terminate.recv() => { tracing::info!("SIGTERM received"); return Ok(()); }
            _ = interrupt.recv() => { tracing::info!("SIGINT received"); return Ok(()); }
            _ = hangup.recv() => {
                tracing::info!("SIGHUP received; reloading the config");
                let _ = collector.reload().await;
            }
        }
    }
}
