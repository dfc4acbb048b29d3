//! Build facts for `stella version`: the git commit, the build time, the rustc version, the target, the
//! enabled features and the SBOM's digest, passed to the crate as `STELLA_BUILD_*` environment variables.
//!
//! Nothing here reads the build directory or the clock: the build time is `SOURCE_DATE_EPOCH` (else the
//! commit's time), so two builds of one commit embed the same facts (see `scripts/release.sh`).
use std::env;
use std::path::Path;
use std::process::Command;

fn main() {
    for var in ["STELLA_GIT_COMMIT", "SOURCE_DATE_EPOCH", "STELLA_SBOM_SHA256"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    if let Some(git_dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        for watched in ["HEAD", "refs/heads", "packed-refs"] {
            let path = Path::new(&git_dir).join(watched);
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
    let commit = var("STELLA_GIT_COMMIT").or_else(|| git(&["rev-parse", "HEAD"])).unwrap_or_default();
    let epoch = var("SOURCE_DATE_EPOCH")
        .or_else(|| git(&["log", "-1", "--format=%ct"]))
        .filter(|epoch| epoch.parse::<u64>().is_ok())
        .unwrap_or_default();
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    let rustc_version = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .map(|text| text.trim().to_string())
        .unwrap_or_default();
    let sbom = var("STELLA_SBOM_SHA256")
        .filter(|digest| digest.len() == 64 && digest.bytes().all(|byte| byte.is_ascii_hexdigit()))
        .map(|digest| digest.to_ascii_lowercase())
        .unwrap_or_default();
    let mut features: Vec<String> = env::vars()
        .filter_map(|(name, _)| {
            name.strip_prefix("CARGO_FEATURE_").map(|feature| feature.to_ascii_lowercase().replace('_', "-"))
        })
        .collect();
    features.sort();

    let facts = [
        ("STELLA_BUILD_COMMIT", commit),
        ("STELLA_BUILD_EPOCH", epoch),
        ("STELLA_BUILD_RUSTC", rustc_version),
        ("STELLA_BUILD_TARGET", env::var("TARGET").unwrap_or_default()),
        ("STELLA_BUILD_PROFILE", env::var("PROFILE").unwrap_or_default()),
        ("STELLA_BUILD_FEATURES", features.join(",")),
        ("STELLA_BUILD_SBOM_SHA256", sbom),
    ];
    for (name, value) in facts {
        println!("cargo:rustc-env={name}={value}");
    }
}

/// A non-empty environment variable.
fn var(name: &str) -> Option<String> {
    env::var(name).ok().map(|value| value.trim().to_string()).filter(|value| !value.is_empty())
}

/// The trimmed output of a successful `git` command, run in the crate's directory.
fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(output.stdout).ok()?.trim().to_string();
    (output.status.success() && !text.is_empty()).then_some(text)
}
