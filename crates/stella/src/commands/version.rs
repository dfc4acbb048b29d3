//! `stella version`: what this binary is and how it was built (the facts `build.rs` embeds), for people
//! and, with `--json`, for scripts and auditors comparing a binary with its release's SBOM.
use serde::Serialize;

/// The build facts of this binary.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct BuildInfo {
    /// Always `stella`.
    pub name: &'static str,
    /// The crate version.
    pub version: &'static str,
    /// The git commit built, when known.
    pub git_commit: Option<&'static str>,
    /// The build time, RFC 3339 UTC: `SOURCE_DATE_EPOCH` (else the commit's time), never the clock.
    pub build_date: Option<String>,
    /// The same instant in seconds since the Unix epoch.
    pub source_date_epoch: Option<u64>,
    /// `rustc --version` of the compiler that built it.
    pub rustc: &'static str,
    /// The target triple.
    pub target: &'static str,
    /// The cargo profile (`release` or `debug`).
    pub profile: &'static str,
    /// The crate features enabled, sorted.
    pub features: Vec<&'static str>,
    /// Hex SHA-256 of the CycloneDX SBOM released with this binary (release builds only).
    pub sbom_sha256: Option<&'static str>,
}

/// The facts embedded at build time.
pub fn build_info() -> BuildInfo {
    let present = |value: &'static str| (!value.is_empty()).then_some(value);
    let epoch = env!("STELLA_BUILD_EPOCH").parse::<u64>().ok();
    let build_date = epoch
        .and_then(|seconds| i64::try_from(seconds).ok())
        .and_then(|seconds| jiff::Timestamp::from_second(seconds).ok())
        .map(|at| at.to_string());
    BuildInfo {
        name: "stella",
        version: env!("CARGO_PKG_VERSION"),
        git_commit: present(env!("STELLA_BUILD_COMMIT")),
        build_date,
        source_date_epoch: epoch,
        rustc: env!("STELLA_BUILD_RUSTC"),
        target: env!("STELLA_BUILD_TARGET"),
        profile: env!("STELLA_BUILD_PROFILE"),
        features: env!("STELLA_BUILD_FEATURES").split(',').filter(|feature| !feature.is_empty()).collect(),
        sbom_sha256: present(env!("STELLA_BUILD_SBOM_SHA256")),
    }
}

/// Prints the build facts, as aligned text or one JSON object.
pub fn execute(json: bool) -> anyhow::Result<()> {
    let info = build_info();
    if json {
        println!("{}", serde_json::to_string(&info)?);
        return Ok(());
    }
    let unknown = "unknown";
    println!("{} {}", info.name, info.version);
    println!("  commit    {}", info.git_commit.unwrap_or(unknown));
    println!("  built     {}", info.build_date.as_deref().unwrap_or(unknown));
    println!("  rustc     {}", if info.rustc.is_empty() { unknown } else { info.rustc });
    println!("  target    {} ({})", info.target, info.profile);
    let features = if info.features.is_empty() { "none".to_string() } else { info.features.join(", ") };
    println!("  features  {features}");
    match info.sbom_sha256 {
        Some(digest) => println!("  sbom      sha256:{digest}"),
        None => println!("  sbom      none (not a release build: scripts/release.sh embeds the SBOM's digest)"),
    }
    Ok(())
}
