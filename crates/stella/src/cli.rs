//! The command line, parsed by clap into plain enums (unit-tested below).
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use stella_collector::config::Profile;

const AFTER_HELP: &str = "\
Exit codes: 0 success, 1 run-time failure, 2 usage error, 3 invalid config, 4 server unreachable or refused.

Examples:
  stella telemetry serve                         # default profile: OTLP on 127.0.0.1:4317 (gRPC) and :4318 (HTTP)
  stella telemetry serve --config site.yaml      # the default profile overlaid with site.yaml
  stella telemetry config validate site.yaml     # every problem at once, with key paths and fixes
  stella telemetry config show --profile airgap  # the effective YAML";

/// Stella Telemetry: an OpenTelemetry collector that guards, keeps and proves your telemetry.
#[derive(Debug, Parser, PartialEq)]
#[command(name = "stella", version, after_help = AFTER_HELP)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// Log line format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log filter: a level (`info`, `debug`) or directives such as `info,stella_collector=debug`.
    #[arg(long, global = true, env = "STELLA_LOG", default_value = "info")]
    pub log_level: String,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Top-level command groups.
#[derive(Debug, Subcommand, PartialEq)]
pub enum Command {
    /// The telemetry tier: collector, config and tools.
    Telemetry {
        /// The telemetry command.
        #[command(subcommand)]
        command: Box<TelemetryCommand>,
    },
    /// What this binary is and how it was built: version, git commit, build date (SOURCE_DATE_EPOCH),
    /// rustc, target, features and the SHA-256 of its release's SBOM.
    Version {
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Print a completion script for `stella` on stdout, e.g. `stella completions bash >
    /// /etc/bash_completion.d/stella` (the Debian package installs bash, zsh and fish ones).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write the man pages of `stella` and of every subcommand (`stella-telemetry-serve.1`, ...) into DIR.
    Manpages {
        /// The directory to write into (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

/// `stella telemetry ...`
#[derive(Debug, Subcommand, PartialEq)]
pub enum TelemetryCommand {
    /// Run the collector: OTLP receivers, pipelines, exporters and the HTTP API, until SIGTERM or Ctrl-C.
    ///
    /// SIGHUP (or a change to the --config file, or POST /telemetry/config/reload) reloads the config.
    Serve(ServeArgs),
    /// Send generated OTLP load (unique trace ids, current timestamps) and report what was accepted.
    Loadgen(LoadgenArgs),
    /// Check the audit trail of admin and operator actions.
    Audit {
        /// The audit command.
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Create, list and revoke access tokens (offline, on --data-dir).
    Tokens {
        /// The tokens command.
        #[command(subcommand)]
        command: TokensCommand,
    },
    /// Incident mode: keep every trace of the named services (or all of the tenant's) at 100% until it is
    /// turned off or its TTL passes. Needs an admin token (operators may pass --tenant).
    Incident {
        /// The incident command.
        #[command(subcommand)]
        command: IncidentCommand,
    },
    /// Legal holds: data in a hold's window is never deleted by retention. Needs an admin token.
    Hold {
        /// The hold command.
        #[command(subcommand)]
        command: HoldCommand,
    },
    /// Check the embedded store offline: every chunk against its digest, every trace index against a
    /// rebuild from its chunks. Exit 1 when something is damaged or stale.
    Store {
        /// The store command.
        #[command(subcommand)]
        command: StoreCommand,
    },
    /// Query the embedded store of a running server (scope `read`).
    Query {
        /// The query command.
        #[command(subcommand)]
        command: QueryCommand,
    },
    /// Evidence signing keys.
    Keys {
        /// The keys command.
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Cut a signed forensic bundle of one tenant's stored telemetry in a time window.
    ///
    /// A tar.gz or tar.zst, from
    /// the store on --data-dir (signed with <data-dir>/keys or --signing-key), or from a running server
    /// with --server (signed by the server; needs the `export` scope).
    Capture(CaptureArgs),
    /// Verify a forensic bundle (or an export file's signed manifest) offline; exit 0 when it verified.
    ///
    /// Checks every file digest, the signature, the key's trust and the payload type of a bundle or
    /// of `<file>.dsse.json`. Exit 10 digest mismatch, 11 bad signature, 12 untrusted key, 13 wrong
    /// payload type, 14 malformed or unsafe archive, 15 the file could not be read.
    Verify(VerifyArgs),
    /// Fetch, verify and install a profile's signed config bundle, then ask the server to reload.
    ///
    /// Fetches it from a server (or signs it locally with --local), verifies it
    /// against the trusted keys, write it into --config-dir for `serve --config-dir`, and ask the server to
    /// reload.
    Deploy(DeployArgs),
    /// Build or verify the offline kit: the binary, signed configs of every profile, redaction profiles,
    /// bootstrap scripts (systemd unit, installer) and instructions, with a signed manifest of every file.
    OfflineKit {
        /// The offline-kit command.
        #[command(subcommand)]
        command: OfflineKitCommand,
    },
    /// Sign or verify a release directory (the binary, the Debian package, the SBOM, SHA256SUMS) with the
    /// publisher's release key; `scripts/release.sh` writes and signs one.
    Release {
        /// The release command.
        #[command(subcommand)]
        command: ReleaseCommand,
    },
    /// Re-send a bundle's OTLP records to an OTLP/HTTP endpoint (after verifying the whole bundle).
    Replay(ReplayArgs),
    /// DORA metrics: record deployment and incident events, and read the executive report (deployment
    /// frequency, lead time, change failure rate, time to recovery, tiers and SLOs; per pipeline,
    /// severity and local day).
    Dora {
        /// The DORA command.
        #[command(subcommand)]
        command: DoraCommand,
    },
    /// Federation: consents (grant, revoke, show), signed bundles of aggregated vulnerability-noise
    /// statistics (build on a site, verify anywhere, push to a hub), revocations to hubs.
    Federation {
        /// The federation command.
        #[command(subcommand)]
        command: FederationCommand,
    },
    /// Prometheus alerting and recording rules for the telemetry tier and the services it observes
    /// (burn-rate SLO alerts from the span metrics, exporter health, ingest log usage, incident mode,
    /// bundles, refusals, DORA SLOs), with their `promtool test rules` unit tests.
    Rules {
        /// The rules command.
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Grafana dashboards (ingestion, exporters, retention and store, rule evaluations, incident mode,
    /// DORA) for a Prometheus that scrapes our /metrics and receives our remote-write.
    Dashboards {
        /// The dashboards command.
        #[command(subcommand)]
        command: RenderCommand,
    },
    /// Check, show or reload configs.
    Config {
        /// The config command.
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

/// `stella telemetry keys ...`
#[derive(Debug, Subcommand, PartialEq)]
pub enum KeysCommand {
    /// Generate a signing key into DIR (never overwrites an existing key).
    ///
    /// Writes `signing-key.pem` (PKCS#8, mode 0600) and, for Ed25519,
    /// `signing-key.pub.pem` (SPKI, 0644) to hand to verifiers. Never overwrites an existing key.
    Generate {
        /// The directory to write the key files into (created with mode 0700).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// `ed25519` (default: proves who signed) or `hmac` (a shared secret: integrity-only).
        #[arg(long, default_value = "ed25519", value_parser = parse_key_kind)]
        kind: stella_evidence::KeyKind,
        /// Print the key id and file paths as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `stella telemetry capture`.
#[derive(Debug, Args, PartialEq)]
pub struct CaptureArgs {
    /// The window: a duration back from now (24h, 90m, 7d) or START..END in RFC 3339
    /// (2026-11-01T00:00:00Z..2026-11-02T00:00:00Z; the end is exclusive).
    #[arg(long)]
    pub window: String,
    /// The bundle file to write (`.tar.gz`, or `.tar.zst` with --compression zstd).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// `gzip` (default) or `zstd` (faster, smaller).
    #[arg(long, value_enum, default_value_t = CompressionArg::Gzip)]
    pub compression: CompressionArg,
    /// The tenant (default `default`; with --server, operators only: absent means the token's tenant).
    #[arg(long)]
    pub tenant: Option<String>,
    /// Offline: the data directory whose store is read.
    #[arg(long, value_name = "DIR", default_value = "./stella-data")]
    pub data_dir: PathBuf,
    /// Offline: the server's config file, so chunks its `storage.backend` moved to object storage are
    /// read back from there.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Offline: the signing key (default: `<data-dir>/keys/signing-key.pem`, the server's key, generated
    /// there if missing).
    #[arg(long, value_name = "FILE")]
    pub signing_key: Option<PathBuf>,
    /// Offline: the profile the data was collected under, recorded in the manifest.
    #[arg(long, value_parser = parse_profile, default_value = "default")]
    pub profile: Profile,
    /// Print what was written as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

/// How bundles are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompressionArg {
    /// `.tar.gz`.
    Gzip,
    /// `.tar.zst`.
    Zstd,
}

/// `stella telemetry verify`.
#[derive(Debug, Args, PartialEq)]
pub struct VerifyArgs {
    /// The bundle file, or the `<file>.dsse.json` manifest of a rotated export file.
    pub bundle: PathBuf,
    /// A trusted public key (SPKI PEM) or HMAC key file; repeat for several.
    #[arg(long = "trusted-key", value_name = "FILE", required = true)]
    pub trusted_keys: Vec<PathBuf>,
    /// Print the verified manifest summary (or the failure) as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `stella telemetry replay`.
#[derive(Debug, Args, PartialEq)]
pub struct ReplayArgs {
    /// The bundle file.
    pub bundle: PathBuf,
    /// The OTLP/HTTP endpoint base URL (records go to `<URL>/v1/traces`, `/v1/metrics`, `/v1/logs`).
    #[arg(long)]
    pub endpoint: String,
    /// A trusted public key (SPKI PEM) or HMAC key file; repeat for several.
    #[arg(long = "trusted-key", value_name = "FILE", required = true)]
    pub trusted_keys: Vec<PathBuf>,
    /// Records per second at most (default: as fast as the endpoint accepts).
    #[arg(long)]
    pub rate: Option<u32>,
    /// A bearer token for the endpoint.
    #[arg(long, env = "STELLA_REPLAY_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// `stella telemetry serve`.
#[derive(Debug, Args, PartialEq)]
pub struct ServeArgs {
    /// A YAML file overlaid on the profile: maps merge, lists replace, null removes a key.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The built-in profile to start from.
    #[arg(long, value_parser = parse_profile, default_value = "default")]
    pub profile: Profile,
    /// Where exports and state live; relative export paths are resolved here.
    #[arg(long, value_name = "DIR", default_value = "./stella-data")]
    pub data_dir: PathBuf,
    /// Allow listening on a non-loopback address without TLS and without auth (a trusted network only).
    #[arg(long)]
    pub insecure: bool,
    /// Run the signed config `stella telemetry deploy` wrote into DIR: `collector.yaml` is used (as with
    /// --config) only if `collector.yaml.dsse.json` verifies with a trusted key and signs its exact bytes;
    /// checked again on every reload.
    #[arg(long, value_name = "DIR", conflicts_with = "config")]
    pub config_dir: Option<PathBuf>,
    /// A public key (SPKI PEM) or HMAC key file trusted for --config-dir, besides the server's own key;
    /// repeat for several.
    #[arg(long = "trusted-key", value_name = "FILE", requires = "config_dir")]
    pub trusted_keys: Vec<PathBuf>,
}

/// `stella telemetry offline-kit ...`
#[derive(Debug, Subcommand, PartialEq)]
pub enum OfflineKitCommand {
    /// Write the kit (deterministic tar.gz or tar.zst, signed with Ed25519).
    Build {
        /// The kit file to write.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// `gzip` (default) or `zstd`.
        #[arg(long, value_enum, default_value_t = CompressionArg::Gzip)]
        compression: CompressionArg,
        /// The data directory whose key signs (`<data-dir>/keys`, generated there if missing).
        #[arg(long, value_name = "DIR", default_value = "./stella-data")]
        data_dir: PathBuf,
        /// An Ed25519 signing key to use instead of the data directory's.
        #[arg(long, value_name = "FILE")]
        signing_key: Option<PathBuf>,
        /// The binary to ship (default: this one, or the release's with --release).
        #[arg(long, value_name = "FILE")]
        binary: Option<PathBuf>,
        /// A signed release directory (`scripts/release.sh --sign`) to carry under `release/`: the Debian
        /// package, the SBOM, SHA256SUMS and the release signature; its binary becomes `bin/stella`.
        #[arg(long, value_name = "DIR", conflicts_with = "binary")]
        release: Option<PathBuf>,
        /// Print the kit's files, digest and signer as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check a kit before installing anything; with --extract, unpack it once all of it verified.
    ///
    /// Checks every file's digest, the signature, key trust and payload
    /// type (exit codes as `verify`); with --extract, unpack it only once all of it verified.
    Verify {
        /// The kit file.
        kit: PathBuf,
        /// The signer's public key, from a trusted channel; repeat for several.
        #[arg(long = "trusted-key", value_name = "FILE", required = true)]
        trusted_keys: Vec<PathBuf>,
        /// The release signer's public key, from a trusted channel, for a kit that carries a release;
        /// repeat for several.
        #[arg(long = "release-key", value_name = "FILE")]
        release_keys: Vec<PathBuf>,
        /// A directory to extract into (must not exist yet).
        #[arg(long, value_name = "DIR")]
        extract: Option<PathBuf>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `stella telemetry release ...`
#[derive(Debug, Subcommand, PartialEq)]
pub enum ReleaseCommand {
    /// Sign the release in DIR with the release key (manifest.json and manifest.dsse.json beside it).
    ///
    /// `manifest.json` lists every file's SHA-256 and size; `manifest.dsse.json` signs it (DSSE, Ed25519).
    /// Refuses a release whose SHA256SUMS disagrees with its files.
    Sign {
        /// The release directory (the binary `stella`, the `.deb`, the SBOM, SHA256SUMS).
        dir: PathBuf,
        /// The release key (Ed25519, PKCS#8 PEM), kept apart from any site's key.
        #[arg(long, value_name = "FILE")]
        signing_key: PathBuf,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Verify the release in DIR: signature, key, every file, no unsigned file, SHA256SUMS (exit codes as
    /// `verify`).
    Verify {
        /// The release directory.
        dir: PathBuf,
        /// The release signer's public key, from a trusted channel; repeat for several.
        #[arg(long = "trusted-key", value_name = "FILE", required = true)]
        trusted_keys: Vec<PathBuf>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `stella telemetry deploy`.
#[derive(Debug, Args, PartialEq)]
pub struct DeployArgs {
    /// The profile whose signed config bundle to deploy.
    #[arg(long, value_parser = parse_profile, default_value = "default")]
    pub profile: Profile,
    /// The directory `serve --config-dir` runs from; `collector.yaml` and `collector.yaml.dsse.json` are
    /// written there atomically.
    #[arg(long, value_name = "DIR", default_value = "./stella-config")]
    pub config_dir: PathBuf,
    /// A public key (SPKI PEM) or HMAC key file the bundle must be signed with; repeat for several. With
    /// --local, the local signing key is trusted as well.
    #[arg(long = "trusted-key", value_name = "FILE")]
    pub trusted_keys: Vec<PathBuf>,
    /// Render and sign the profile here with the key of --data-dir instead of fetching it from --server.
    #[arg(long)]
    pub local: bool,
    /// With --local: the data directory whose key signs (`<data-dir>/keys`).
    #[arg(long, value_name = "DIR", default_value = "./stella-data")]
    pub data_dir: PathBuf,
    /// Do not ask the server to reload afterwards.
    #[arg(long)]
    pub no_reload: bool,
    /// Print what was deployed as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `stella telemetry tokens ...`: API and ingest tokens, kept (hashed) in `<data-dir>/auth/tokens.json`.
#[derive(Debug, Subcommand, PartialEq)]
pub enum TokensCommand {
    /// Create a token; it is printed once and never stored in the clear.
    Create {
        /// The tenant it acts for.
        #[arg(long)]
        tenant: String,
        /// Comma-separated scopes: ingest, read, export, admin, operator.
        #[arg(long, value_delimiter = ',', required = true)]
        scopes: Vec<stella_collector::auth::Scope>,
        /// Lifetime, e.g. 90d or 12h; absent: no expiry.
        #[arg(long, value_parser = parse_duration)]
        expires: Option<std::time::Duration>,
        /// The data directory of the server the token is for.
        #[arg(long, value_name = "DIR", default_value = "./stella-data")]
        data_dir: PathBuf,
        /// Print {"id","tenant","scopes","expires","token"} as JSON.
        #[arg(long)]
        json: bool,
        /// Ask a running server instead of writing --data-dir.
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// List tokens (never their secrets).
    List {
        /// The data directory.
        #[arg(long, value_name = "DIR", default_value = "./stella-data")]
        data_dir: PathBuf,
        /// Print the records as JSON.
        #[arg(long)]
        json: bool,
        /// Ask a running server instead of reading --data-dir.
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Revoke a token by id; it stops working at once, also on a running server.
    Revoke {
        /// The token id (the part after `stl_`).
        id: String,
        /// The data directory.
        #[arg(long, value_name = "DIR", default_value = "./stella-data")]
        data_dir: PathBuf,
        /// Ask a running server instead of writing --data-dir.
        #[command(flatten)]
        remote: RemoteArgs,
    },
}

/// `stella telemetry hold ...`
#[derive(Debug, Subcommand, PartialEq)]
pub enum HoldCommand {
    /// Place a hold on the tenant's data from `--from` to `--to` (RFC 3339; no `--to`: open until released).
    Add {
        /// Start, e.g. 2026-11-01T00:00:00Z.
        #[arg(long, value_parser = parse_instant)]
        from: String,
        /// End (absent: open).
        #[arg(long, value_parser = parse_instant)]
        to: Option<String>,
        /// Why (recorded in the hold and the audit trail).
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// List the tenant's holds.
    List {
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Release a hold by id.
    Release {
        /// The hold id (`hold-3`).
        id: String,
        #[command(flatten)]
        target: TargetArgs,
    },
}

/// `stella telemetry dora ...`
#[derive(Debug, Subcommand, PartialEq)]
pub enum DoraCommand {
    /// Record one event on a running server (scope `ingest`); re-sending the same id replaces it.
    Record {
        /// The kind of event.
        #[command(subcommand)]
        event: DoraEvent,
    },
    /// The report of a window (scope `read`), in Markdown (default), JSON (RFC 8785), HTML or CSV.
    Report(DoraReportArgs),
}

/// `stella telemetry dora record ...`
#[derive(Debug, Subcommand, PartialEq)]
pub enum DoraEvent {
    /// A deployment.
    Deployment {
        /// Its id (unique per tenant).
        #[arg(long)]
        id: String,
        /// Where (e.g. production).
        #[arg(long)]
        environment: String,
        /// What.
        #[arg(long)]
        service: String,
        /// The delivery pipeline (normalised: lower-case, runs of other characters to `-`).
        #[arg(long)]
        pipeline: Option<String>,
        /// A commit it carries, `SHA@RFC3339` (repeat for several).
        #[arg(long = "commit", value_name = "SHA@TIME")]
        commits: Vec<String>,
        /// When it started (RFC 3339).
        #[arg(long, value_parser = parse_instant)]
        started: String,
        /// When it finished (RFC 3339).
        #[arg(long, value_parser = parse_instant)]
        finished: String,
        /// succeeded, failed or rolled_back.
        #[arg(long, value_parser = ["succeeded", "failed", "rolled_back"])]
        outcome: String,
        /// normal (default), rollback or hotfix.
        #[arg(long, value_parser = ["normal", "rollback", "hotfix"])]
        kind: Option<String>,
        /// An incident it caused (repeat for several).
        #[arg(long = "incident-id")]
        incident_ids: Vec<String>,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// An incident.
    Incident {
        /// Its id (unique per tenant).
        #[arg(long)]
        id: String,
        /// Where.
        #[arg(long)]
        environment: String,
        /// What.
        #[arg(long)]
        service: String,
        /// One of dora.severities (default sev1..sev4); others count as unknown.
        #[arg(long)]
        severity: Option<String>,
        /// When it started (RFC 3339).
        #[arg(long, value_parser = parse_instant)]
        started: String,
        /// When it was acknowledged.
        #[arg(long, value_parser = parse_instant)]
        acknowledged: Option<String>,
        /// When it was resolved.
        #[arg(long, value_parser = parse_instant)]
        resolved: Option<String>,
        /// The deployment that caused it.
        #[arg(long)]
        deployment_id: Option<String>,
        #[command(flatten)]
        target: TargetArgs,
    },
}

/// `stella telemetry dora report`.
#[derive(Debug, Args, PartialEq)]
pub struct DoraReportArgs {
    /// Window start: RFC 3339, or a date (local midnight in --tz). Default: 30 days before --to.
    #[arg(long)]
    pub from: Option<String>,
    /// Window end (excluded): RFC 3339 or a date. Default: now.
    #[arg(long)]
    pub to: Option<String>,
    /// The IANA time zone days are counted in (default UTC).
    #[arg(long)]
    pub tz: Option<String>,
    /// Evaluate as of this instant (default: --to).
    #[arg(long)]
    pub as_of: Option<String>,
    /// Report one environment as production instead of dora.production_environments.
    #[arg(long)]
    pub environment: Option<String>,
    /// md (default), json, html or csv.
    #[arg(long, default_value = "md", value_parser = ["md", "json", "html", "csv"])]
    pub format: String,
    /// Write the report to this file instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// The tenant (operators only); absent: the token's.
    #[arg(long)]
    pub tenant: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `stella telemetry federation ...`
#[derive(Debug, Subcommand, PartialEq)]
pub enum FederationCommand {
    /// Consents (scope `admin` on the site's server).
    Consent {
        /// The consent command.
        #[command(subcommand)]
        command: ConsentCommand,
    },
    /// Bundles.
    Bundle {
        /// The bundle command.
        #[command(subcommand)]
        command: BundleCommand,
    },
    /// Send a revocation statement (from `consent revoke --out`) to a hub.
    PushRevocation {
        /// The revocation file.
        file: PathBuf,
        #[command(flatten)]
        hub: HubArgs,
    },
}

/// `stella telemetry federation consent ...`
#[derive(Debug, Subcommand, PartialEq)]
pub enum ConsentCommand {
    /// Grant a consent for a federation, signed by the server's key.
    Grant {
        /// The federation id.
        #[arg(long)]
        federation: String,
        /// What may be shared.
        #[arg(long, default_value = "vuln-noise-aggregates")]
        scope: String,
        /// Why.
        #[arg(long)]
        purpose: String,
        /// Valid until (RFC 3339).
        #[arg(long)]
        expires_at: String,
        /// Valid from (RFC 3339; default now).
        #[arg(long)]
        not_before: Option<String>,
        /// The site's alias (default: federation.aliases of the tenant).
        #[arg(long)]
        alias: Option<String>,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Revoke a consent; the signed revocation is printed (or written with --out) for the hubs.
    Revoke {
        /// The consent digest (`sha256:...`).
        digest: String,
        /// Why.
        #[arg(long)]
        reason: String,
        /// Write the revocation statement here.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// List the tenant's consents and their status.
    Show {
        #[command(flatten)]
        target: TargetArgs,
    },
}

/// `stella telemetry federation bundle ...`
#[derive(Debug, Subcommand, PartialEq)]
pub enum BundleCommand {
    /// Build the signed bundle of a window on the site's server (scope `export`).
    Build {
        /// `7d`, or `START..END` (RFC 3339).
        #[arg(long)]
        window: String,
        /// The bundle file to write.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// The consent (default: the only unrevoked one).
        #[arg(long)]
        consent: Option<String>,
        /// The tenant (operators only).
        #[arg(long)]
        tenant: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Verify a federation bundle offline; exit 0 when it verified, 1 otherwise.
    ///
    /// Checks digests, payload types, signatures, consent linkage, expiry, revocation.
    /// Exit 0 when it verified, 1 otherwise (the stable code is printed).
    Verify {
        /// The bundle file.
        file: PathBuf,
        /// A trusted public key (SPKI PEM) or HMAC key file; repeat for several.
        #[arg(long = "trusted-key", value_name = "FILE", required = true)]
        trusted_keys: Vec<PathBuf>,
        /// A revocation statement the verifier knows of; repeat for several.
        #[arg(long = "revocation", value_name = "FILE")]
        revocations: Vec<PathBuf>,
        /// Accept envelopes that carry only the offline-unsigned-fallback placeholder.
        #[arg(long)]
        allow_unsigned: bool,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Send a bundle to a hub.
    Push {
        /// The bundle file.
        file: PathBuf,
        #[command(flatten)]
        hub: HubArgs,
    },
}

/// Where a federation file goes.
#[derive(Debug, Args, PartialEq)]
pub struct HubArgs {
    /// The hub's API base URL.
    #[arg(long)]
    pub hub: String,
    /// A token of the hub (scope `ingest`).
    #[arg(long, env = "STELLA_HUB_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The config whose egress policy the hub must pass (default: the default profile: loopback only).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// `stella telemetry rules|dashboards ...`
#[derive(Debug, Subcommand, PartialEq)]
pub enum RenderCommand {
    /// Write the files into a directory (created if missing; files of the same name are replaced).
    Render {
        /// The directory to write into.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// List the files written as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `stella telemetry rules ...`
#[derive(Debug, Subcommand, PartialEq)]
pub enum RulesCommand {
    /// Write the rules and their tests into a directory (created if missing; same-named files replaced).
    Render {
        /// The directory to write into.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Where your runbooks live: every alert's `runbook_url` becomes `<URL>/<alert-name-in-kebab-case>`.
        #[arg(long, value_name = "URL", default_value = stella_export::monitoring::RUNBOOK_BASE_URL)]
        runbook_base_url: String,
        /// List the files written as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run `promtool test rules` files with Stella's own rule evaluator.
    ///
    /// The files hold input series, `alert_rule_test` and `promql_expr_test`; the evaluator is the one
    /// `serve` runs on its store. Prints `SUCCESS` or `FAILED` per file as promtool does; exits 1 if any test failed.
    Test {
        /// Test files; their `rule_files` are relative to each file's directory.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// One JSON object per file: `{"file","failures":[...]}`.
        #[arg(long)]
        json: bool,
    },
}

/// `stella telemetry store ...`
#[derive(Debug, Subcommand, PartialEq)]
pub enum StoreCommand {
    /// Verify chunks and indexes under `<data-dir>/store`; `--repair` rewrites stale indexes.
    ///
    /// Damaged chunks are reported, never changed.
    Check {
        /// The data directory.
        #[arg(long, value_name = "DIR", default_value = "./stella-data")]
        data_dir: PathBuf,
        /// Rebuild stale trace indexes from their chunks.
        #[arg(long)]
        repair: bool,
        /// The server's config file: with `storage.backend`, chunks moved to object storage are read
        /// back from there and checked (credentials from the same environment variables).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// What every search command takes: the window, the tenant, the output and the server.
#[derive(Debug, Args, PartialEq)]
pub struct SearchArgs {
    /// From (RFC 3339 or unix seconds).
    #[arg(long, value_parser = parse_time)]
    pub start: Option<String>,
    /// Until (RFC 3339 or unix seconds).
    #[arg(long, value_parser = parse_time)]
    pub end: Option<String>,
    #[command(flatten)]
    pub target: TargetArgs,
}

/// `stella telemetry query ...`
#[derive(Debug, Subcommand, PartialEq)]
pub enum QueryCommand {
    /// The series of one metric: each series' labels, points and last value.
    ///
    /// Gauges and sums; histograms as NAME_count and NAME_sum. A table of each
    /// series' labels, points and last value, or `--json` (raw points, and step-aligned ones with --step).
    Metrics {
        /// The metric name.
        #[arg(long)]
        name: String,
        /// Label KEY=VALUE (data-point attribute or service.name; repeatable).
        #[arg(long = "label", value_name = "KEY=VALUE")]
        labels: Vec<String>,
        /// Step for aligned points, e.g. 1m (needs --start and --end).
        #[arg(long, requires_all = ["start", "end"], value_parser = parse_duration_text)]
        step: Option<String>,
        #[command(flatten)]
        search: SearchArgs,
    },
    /// Log records matching every filter, newest first: a table, or `--json`.
    Logs {
        /// `service.name`.
        #[arg(long)]
        service: Option<String>,
        /// Lowest severity: 1 to 24, or TRACE, DEBUG, INFO, WARN, ERROR, FATAL.
        #[arg(long)]
        severity_min: Option<String>,
        /// Text the body contains.
        #[arg(long)]
        contains: Option<String>,
        /// Log attribute KEY=VALUE (repeatable).
        #[arg(long = "attr", value_name = "KEY=VALUE")]
        attributes: Vec<String>,
        /// At most this many records (1 to 1000).
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[command(flatten)]
        search: SearchArgs,
    },
    /// Traces with a span matching every filter, newest first: a table, or `--json`.
    Traces {
        /// `service.name`.
        #[arg(long)]
        service: Option<String>,
        /// Span name.
        #[arg(long)]
        name: Option<String>,
        /// Shortest span duration, e.g. 500ms.
        #[arg(long)]
        min_duration: Option<String>,
        /// error, ok or unset.
        #[arg(long)]
        status: Option<String>,
        /// Span attribute KEY=VALUE (repeatable).
        #[arg(long = "attr", value_name = "KEY=VALUE")]
        attributes: Vec<String>,
        /// At most this many traces (1 to 1000).
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[command(flatten)]
        search: SearchArgs,
    },
    /// One trace by id: a table of its spans (service, name, start, duration, status), or `--json` (Tempo v1).
    Trace {
        /// The trace id: 1 to 32 hex digits.
        id: String,
        /// The tenant (operators only); absent: the token's.
        #[arg(long)]
        tenant: Option<String>,
        /// Print the server's JSON answer.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// `stella telemetry incident ...`
#[derive(Debug, Subcommand, PartialEq)]
pub enum IncidentCommand {
    /// Turn incident mode on: the services' traces are kept at once, buffered ones included.
    On {
        /// Services to keep at 100% (comma-separated); absent: every service of the tenant.
        #[arg(long, value_delimiter = ',')]
        services: Vec<String>,
        /// How long it stays on (e.g. 30m, 2h; at most 7d; default 4h).
        #[arg(long, value_parser = parse_ttl)]
        ttl: Option<String>,
        /// Why: recorded in the audit trail and shown by `incident status`.
        #[arg(long, default_value = "")]
        reason: String,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Turn incident mode off.
    Off {
        /// Why: recorded in the audit trail.
        #[arg(long, default_value = "")]
        reason: String,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Show incident mode: state, services, since, by whom, until.
    Status {
        #[command(flatten)]
        target: TargetArgs,
    },
}

/// Which server and tenant a client command addresses, and how it prints.
#[derive(Debug, Args, PartialEq)]
pub struct TargetArgs {
    /// The tenant (operators only; `*` for every tenant where the command allows it); absent: the token's.
    #[arg(long)]
    pub tenant: Option<String>,
    /// Print the server's JSON answer.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// For commands that work offline by default: `--server` makes them ask a running server instead.
#[derive(Debug, Args, PartialEq, Default)]
pub struct RemoteArgs {
    /// The server's API base URL (e.g. http://127.0.0.1:4319); absent (and no STELLA_SERVER): work on
    /// --data-dir.
    #[arg(long, env = "STELLA_SERVER")]
    pub server: Option<String>,
    /// An operator token for the server.
    #[arg(long, env = "STELLA_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// `stella telemetry audit ...`
#[derive(Debug, Subcommand, PartialEq)]
pub enum AuditCommand {
    /// Verify the audit trail `<data-dir>/audit/audit.jsonl`; exit 1 when anything does not hold.
    ///
    /// Checks the hash chain, its end against the head the state database
    /// records (truncation, lines appended outside stella, a replaced file), and with --trusted-key the
    /// signature of every checkpoint. Names the first broken line and the last verified checkpoint; exit 1
    /// when anything does not hold.
    Verify {
        /// The data directory.
        #[arg(long, value_name = "DIR", default_value = "./stella-data")]
        data_dir: PathBuf,
        /// The server's public key (`keys/signing-key.pub.pem`): checkpoints must verify with it.
        #[arg(long = "trusted-key", value_name = "PUB.pem")]
        trusted_keys: Vec<PathBuf>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `stella telemetry loadgen`.
#[derive(Debug, Args, PartialEq)]
pub struct LoadgenArgs {
    /// The OTLP/HTTP base URL; requests go to URL/v1/<signal>.
    #[arg(long, default_value = "http://127.0.0.1:4318")]
    pub endpoint: String,
    /// What to send.
    #[arg(long, value_enum, default_value_t = LoadSignal::Traces)]
    pub signal: LoadSignal,
    /// Requests per second over all workers; 0 sends as fast as the server answers.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// How long to send, e.g. 30s or 2m (ignored with --requests).
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub duration: std::time::Duration,
    /// Send exactly this many requests (over all workers), however long it takes.
    #[arg(long, value_name = "N")]
    pub requests: Option<u64>,
    /// Bearer token for the receiver (needs the `ingest` scope when auth is on).
    #[arg(long, env = "STELLA_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Concurrent connections.
    #[arg(long, default_value_t = 4)]
    pub workers: usize,
    /// Spans per trace (or data points / log records per group for other signals).
    #[arg(long, default_value_t = 10)]
    pub spans_per_trace: usize,
    /// Traces (groups) per request.
    #[arg(long, default_value_t = 10)]
    pub traces_per_request: usize,
    /// Percent of traces whose last span has status ERROR (traces only).
    #[arg(long, default_value_t = 0.0)]
    pub error_percent: f64,
    /// Extra attributes per span (semantic-convention keys such as `url.path` and `server.address`, with
    /// varied values), for span sizes like real instrumentation's.
    #[arg(long, default_value_t = 0)]
    pub attributes: usize,
    /// `service.name`s the traces are spread over at random (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "loadgen")]
    pub services: Vec<String>,
    /// Append the id of every acknowledged request to this file, one per line (for loss checks).
    #[arg(long, value_name = "FILE")]
    pub ack_log: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// The signal loadgen sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LoadSignal {
    /// Spans.
    Traces,
    /// Gauge data points.
    Metrics,
    /// Log records.
    Logs,
}

fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    stella_pipeline::duration::parse(text)
}

/// A duration flag kept as text (the server parses it again), checked here first.
fn parse_duration_text(text: &str) -> Result<String, String> {
    parse_duration(text).map(|_| text.to_string())
}

/// An incident-mode TTL: a duration of at most 7 days.
fn parse_ttl(text: &str) -> Result<String, String> {
    let ttl = parse_duration(text)?;
    if ttl > std::time::Duration::from_secs(7 * 24 * 3600) {
        return Err(format!("{text} is longer than the 7 days incident mode may last"));
    }
    Ok(text.to_string())
}

/// An RFC 3339 instant (e.g. 2026-11-01T00:00:00Z), kept as text.
fn parse_instant(text: &str) -> Result<String, String> {
    text.parse::<jiff::Timestamp>()
        .map(|_| text.to_string())
        .map_err(|_| format!("{text:?} is not an RFC 3339 instant; give e.g. 2026-11-01T00:00:00Z"))
}

/// An RFC 3339 instant or unix seconds, kept as text.
fn parse_time(text: &str) -> Result<String, String> {
    if text.parse::<u64>().is_ok() {
        return Ok(text.to_string());
    }
    parse_instant(text)
        .map_err(|_| format!("{text:?} is not a time; give RFC 3339 (2026-11-01T00:00:00Z) or unix seconds"))
}

/// `stella telemetry config ...`
#[derive(Debug, Subcommand, PartialEq)]
pub enum ConfigCommand {
    /// Validate a config file (overlaid on a profile) and report every problem with its key path and fix.
    Validate {
        /// The YAML file to check.
        file: PathBuf,
        /// The profile the file overlays.
        #[arg(long, value_parser = parse_profile, default_value = "default")]
        profile: Profile,
        /// Accept listeners beyond loopback without TLS or auth, as `serve --insecure` does.
        #[arg(long)]
        insecure: bool,
        /// Print the result as JSON: {"valid": bool, "errors": [{"path", "message"}]}.
        #[arg(long)]
        json: bool,
    },
    /// Print the effective config (a profile, overlaid with --config) as YAML.
    Show {
        /// The built-in profile.
        #[arg(long, value_parser = parse_profile, default_value = "default")]
        profile: Profile,
        /// A file to overlay.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Ask a running server to reload its config; prints what changed and what needs a restart.
    Reload {
        /// How to reach the server.
        #[command(flatten)]
        client: ClientArgs,
        /// Print the server's JSON answer as is.
        #[arg(long)]
        json: bool,
    },
}

/// How client commands reach a running `stella`.
#[derive(Debug, Args, PartialEq)]
pub struct ClientArgs {
    /// The server's API base URL.
    #[arg(long, env = "STELLA_SERVER", default_value = "http://127.0.0.1:4319")]
    pub server: String,
    /// A bearer token, when the server requires one.
    #[arg(long, env = "STELLA_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

fn parse_key_kind(text: &str) -> Result<stella_evidence::KeyKind, String> {
    text.parse().map_err(|error: stella_evidence::keys::UnknownKeyKind| error.to_string())
}

fn parse_profile(text: &str) -> Result<Profile, String> {
    text.parse().map_err(|error: stella_collector::config::UnknownProfile| error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Command {
        Cli::try_parse_from(args).unwrap().command
    }

    /// The `stella telemetry ...` command `args` parse to.
    fn telemetry(command: Command) -> TelemetryCommand {
        let Command::Telemetry { command } = command else { panic!("not a telemetry command: {command:?}") };
        *command
    }

    #[test]
    fn serve_defaults_to_the_default_profile_and_data_dir() {
        let TelemetryCommand::Serve(serve) = telemetry(parse(&["stella", "telemetry", "serve"])) else {
            panic!("not serve")
        };
        assert_eq!(
            serve,
            ServeArgs {
                config: None,
                profile: Profile::Default,
                data_dir: PathBuf::from("./stella-data"),
                insecure: false,
                config_dir: None,
                trusted_keys: Vec::new(),
            }
        );
    }

    #[test]
    fn serve_takes_config_profile_and_data_dir() {
        let command =
            parse(&["stella", "telemetry", "serve", "--config", "a.yaml", "--profile", "airgap", "--data-dir", "/d"]);
        let expected = ServeArgs {
            config: Some("a.yaml".into()),
            profile: Profile::Airgap,
            data_dir: "/d".into(),
            insecure: false,
            config_dir: None,
            trusted_keys: Vec::new(),
        };
        assert_eq!(telemetry(command), TelemetryCommand::Serve(expected));
    }

    #[test]
    fn an_unknown_profile_is_a_usage_error_naming_the_choices() {
        let error = Cli::try_parse_from(["stella", "telemetry", "serve", "--profile", "fast"]).unwrap_err();
        assert!(error.to_string().contains("choose default, forensic or airgap"), "{error}");
    }

    #[test]
    fn tokens_flags_parse_and_refuse_unknown_scopes() {
        use stella_collector::auth::Scope;
        let command = parse(&[
            "stella",
            "telemetry",
            "tokens",
            "create",
            "--tenant",
            "acme",
            "--scopes",
            "read,export",
            "--expires",
            "90d",
        ]);
        let TelemetryCommand::Tokens { command: TokensCommand::Create { tenant, scopes, expires, .. } } =
            telemetry(command)
        else {
            panic!("not tokens create")
        };
        assert_eq!((tenant.as_str(), scopes), ("acme", vec![Scope::Read, Scope::Export]));
        assert_eq!(expires, Some(std::time::Duration::from_secs(90 * 86_400)));
        let error =
            Cli::try_parse_from(["stella", "telemetry", "tokens", "create", "--tenant", "a", "--scopes", "root"])
                .unwrap_err();
        assert!(error.to_string().contains("scopes are ingest, read, export, admin, operator"), "{error}");
    }

    #[test]
    fn loadgen_flags_parse() {
        let command = parse(&[
            "stella",
            "telemetry",
            "loadgen",
            "--endpoint",
            "http://127.0.0.1:9",
            "--signal",
            "logs",
            "--rate",
            "50",
            "--duration",
            "2s",
            "--workers",
            "3",
            "--spans-per-trace",
            "4",
            "--ack-log",
            "acks.txt",
            "--json",
        ]);
        let TelemetryCommand::Loadgen(args) = telemetry(command) else { panic!("not loadgen") };
        assert_eq!(args.signal, LoadSignal::Logs);
        assert_eq!((args.rate, args.workers, args.spans_per_trace, args.traces_per_request), (50, 3, 4, 10));
        assert_eq!(args.duration, std::time::Duration::from_secs(2));
        assert_eq!(args.ack_log, Some(PathBuf::from("acks.txt")));
        assert!(args.json);
        assert!(Cli::try_parse_from(["stella", "telemetry", "loadgen", "--duration", "soon"]).is_err());
    }

    #[test]
    fn config_validate_show_and_reload_parse() {
        let validate = parse(&["stella", "telemetry", "config", "validate", "x.yaml", "--json"]);
        assert_eq!(
            telemetry(validate),
            TelemetryCommand::Config {
                command: ConfigCommand::Validate {
                    file: "x.yaml".into(),
                    profile: Profile::Default,
                    insecure: false,
                    json: true
                }
            }
        );
        let show = parse(&["stella", "telemetry", "config", "show", "--profile", "forensic"]);
        assert_eq!(
            telemetry(show),
            TelemetryCommand::Config { command: ConfigCommand::Show { profile: Profile::Forensic, config: None } }
        );
        let reload = parse(&["stella", "telemetry", "config", "reload", "--server", "http://h:1", "--token", "t"]);
        let client = ClientArgs { server: "http://h:1".into(), token: Some("t".into()) };
        assert_eq!(
            telemetry(reload),
            TelemetryCommand::Config { command: ConfigCommand::Reload { client, json: false } }
        );
    }

    /// Flags every client command takes, described once under the commands table.
    const SHARED_FLAGS: &[&str] = &["--server", "--token", "--tenant", "--json", "--help", "--data-dir"];

    /// Every leaf command of `stella telemetry` with its long flags, and `--help` summaries.
    fn leaf_commands() -> Vec<(String, Vec<String>, String)> {
        fn walk(command: &clap::Command, prefix: &str, out: &mut Vec<(String, Vec<String>, String)>) {
            let path = if prefix.is_empty() {
                command.get_name().to_string()
            } else {
                format!("{prefix} {}", command.get_name())
            };
            if command.get_subcommands().next().is_none() {
                let flags = command
                    .get_arguments()
                    .filter(|argument| !argument.is_global_set())
                    .filter_map(|argument| argument.get_long().map(|long| format!("--{long}")))
                    .collect();
                let about = command.get_about().map(ToString::to_string).unwrap_or_default();
                out.push((path, flags, about));
                return;
            }
            for sub in command.get_subcommands() {
                walk(sub, &path, out);
            }
        }
        let cli = <Cli as clap::CommandFactory>::command();
        let telemetry = cli.find_subcommand("telemetry").expect("the telemetry command");
        let mut out = Vec::new();
        for command in telemetry.get_subcommands() {
            walk(command, "", &mut out);
        }
        out
    }

    #[test]
    fn every_command_and_flag_is_in_the_guide_and_every_documented_flag_exists() {
        let guide = include_str!("../../../docs/guide.md");
        let table =
            guide.split("## Commands").nth(1).expect("a Commands section").split("\n## ").next().unwrap_or_default();
        let rows: Vec<&str> = table.lines().filter(|line| line.starts_with("| `")).collect();
        let mut problems = Vec::new();
        for (path, flags, _) in leaf_commands() {
            let Some(row) = rows.iter().find(|row| {
                row.split(" | ").next().is_some_and(|cell| {
                    cell.split(" / ").any(|part| {
                        let part = part.trim_start_matches("| ").trim_matches('`');
                        part == path
                            || part.starts_with(&format!("{path} "))
                            || part.contains(&format!("`{path} "))
                            || part.contains(&format!("`{path}`"))
                    })
                })
            }) else {
                problems.push(format!("`{path}` has no row in the commands table of docs/guide.md"));
                continue;
            };
            for flag in flags.iter().filter(|flag| !SHARED_FLAGS.contains(&flag.as_str())) {
                let written = row.contains(&format!("{flag} "))
                    || row.contains(&format!("{flag}]"))
                    || row.contains(&format!("{flag}`"));
                if !written {
                    problems.push(format!("`{path} {flag}` is not documented in its row"));
                }
            }
            let command_cell = row.split(" | ").next().unwrap_or_default();
            for word in command_cell.split(|c: char| c.is_whitespace() || "[]()|`\\".contains(c)) {
                let Some(flag) = word.strip_prefix("--") else { continue };
                let flag = format!("--{}", flag.trim_end_matches(|c: char| !c.is_ascii_alphanumeric() && c != '-'));
                let known = leaf_commands()
                    .iter()
                    .any(|(other, other_flags, _)| row.contains(other.as_str()) && other_flags.contains(&flag));
                if !known && !SHARED_FLAGS.contains(&flag.as_str()) {
                    problems.push(format!("`{flag}` in the row of `{path}` is no flag of it"));
                }
            }
        }
        problems.sort();
        problems.dedup();
        assert!(problems.is_empty(), "docs/guide.md and --help disagree:\n{}", problems.join("\n"));
    }

    #[test]
    fn help_summaries_are_one_short_line() {
        let long: Vec<String> = leaf_commands()
            .into_iter()
            .filter(|(_, _, about)| about.len() > 120 || about.contains('\n'))
            .map(|(path, _, about)| format!("`{path}`: {about:?} ({} characters)", about.len()))
            .collect();
        assert!(long.is_empty(), "help summaries longer than one short line:\n{}", long.join("\n"));
    }
}
