//! The offline kit, whole binary: built and signed, verified (and refused when changed or signed by another
//! key), extracted only after verification, and installed by its own script into a scratch prefix with a
//! systemd unit that `systemd-analyze verify` and a script that `shellcheck` accept.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

fn stella(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stella")).args(args).output().unwrap()
}

fn ok_json(output: &Output) -> serde_json::Value {
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

fn text(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn tool(name: &str, package: &str) -> String {
    let found = std::env::var_os("PATH")
        .and_then(|path| std::env::split_paths(&path).map(|dir| dir.join(name)).find(|candidate| candidate.is_file()));
    let found = found.unwrap_or_else(|| {
        panic!("{name} is not installed; run ./scripts/test.sh, which installs Debian's `{package}`")
    });
    found.display().to_string()
}

#[test]
fn the_kit_verifies_extracts_and_installs_and_refuses_changes_and_strangers() {
    let dir = tempfile::tempdir().unwrap();
    let (data, kit) = (dir.path().join("data"), dir.path().join("kit.tar.zst"));
    let built = ok_json(&stella(&[
        "telemetry",
        "offline-kit",
        "build",
        "--out",
        text(&kit),
        "--compression",
        "zstd",
        "--data-dir",
        text(&data),
        "--json",
    ]));
    let paths: Vec<&str> =
        built["files"].as_array().unwrap().iter().map(|file| file["path"].as_str().unwrap()).collect();
    for expected in [
        "INSTRUCTIONS.md",
        "bin/stella",
        "bootstrap/install.sh",
        "bootstrap/stella.service.in",
        "config/airgap.yaml",
        "config/airgap.yaml.dsse.json",
        "config/default.yaml.dsse.json",
        "config/forensic.yaml.dsse.json",
        "keys/signing-key.pub.pem",
        "redaction-profiles/default.yaml",
        "redaction-profiles/strict.yaml",
        "rules/stella-telemetry.rules.yml",
        "rules/tests/slo-errors.test.yml",
        "dashboards/stella-ingestion.json",
        "dashboards/stella-dora.json",
    ] {
        assert!(paths.contains(&expected), "{expected} missing from {paths:?}");
    }
    let binary = built["files"].as_array().unwrap().iter().find(|file| file["path"] == "bin/stella").unwrap();
    assert_eq!(binary["size"].as_u64(), Some(std::fs::metadata(env!("CARGO_BIN_EXE_stella")).unwrap().len()));
    let key = data.join("keys/signing-key.pub.pem");

    // Someone else's key, and a changed kit: refused with their exit codes; nothing extracted.
    let stranger = dir.path().join("stranger");
    ok_json(&stella(&["telemetry", "keys", "generate", "--out", text(&stranger), "--json"]));
    let untrusted = stella(&[
        "telemetry",
        "offline-kit",
        "verify",
        text(&kit),
        "--trusted-key",
        text(&stranger.join("signing-key.pub.pem")),
    ]);
    assert_eq!(untrusted.status.code(), Some(12), "{}", String::from_utf8_lossy(&untrusted.stderr));
    let mut bytes = std::fs::read(&kit).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x20;
    let changed = dir.path().join("changed.tar.zst");
    std::fs::write(&changed, bytes).unwrap();
    let refused = stella(&[
        "telemetry",
        "offline-kit",
        "verify",
        text(&changed),
        "--trusted-key",
        text(&key),
        "--extract",
        text(&dir.path().join("never")),
    ]);
    assert!(matches!(refused.status.code(), Some(10 | 14)), "{:?}", refused.status);
    assert!(!dir.path().join("never").exists(), "nothing is extracted from a kit that does not verify");

    // Verified, then extracted.
    let extracted = dir.path().join("kit");
    let verified = ok_json(&stella(&[
        "telemetry",
        "offline-kit",
        "verify",
        text(&kit),
        "--trusted-key",
        text(&key),
        "--extract",
        text(&extracted),
        "--json",
    ]));
    assert_eq!(verified["signer"]["keyid"], built["signer"]["keyid"]);
    let mode = |path: &str| std::fs::metadata(extracted.join(path)).unwrap().permissions().mode() & 0o777;
    assert_eq!((mode("bin/stella"), mode("bootstrap/install.sh"), mode("INSTRUCTIONS.md")), (0o755, 0o755, 0o644));
    let shellcheck =
        Command::new(tool("shellcheck", "shellcheck")).arg(extracted.join("bootstrap/install.sh")).output().unwrap();
    assert!(shellcheck.status.success(), "{}", String::from_utf8_lossy(&shellcheck.stdout));

    // Installed into a scratch prefix without systemd: the unit verifies, the config verifies, the binary runs.
    let root = dir.path().join("root");
    let install = Command::new(extracted.join("bootstrap/install.sh"))
        .env("PREFIX", root.join("opt/stella"))
        .env("CONFIG_DIR", root.join("etc/stella"))
        .env("DATA_DIR", root.join("var/lib/stella"))
        .env("UNIT_DIR", root.join("etc/systemd/system"))
        .env("SYSTEMD", "no")
        .output()
        .unwrap();
    assert!(
        install.status.success(),
        "{}{}",
        String::from_utf8_lossy(&install.stdout),
        String::from_utf8_lossy(&install.stderr)
    );
    let unit = root.join("etc/systemd/system/stella.service");
    let unit_text = std::fs::read_to_string(&unit).unwrap();
    assert!(
        unit_text
            .contains(&format!("{}/bin/stella telemetry serve --profile airgap", root.join("opt/stella").display()))
    );
    let analyze = Command::new(tool("systemd-analyze", "systemd")).arg("verify").arg(&unit).output().unwrap();
    assert!(analyze.status.success(), "{}", String::from_utf8_lossy(&analyze.stderr));
    let trust = stella_evidence::TrustStore::from_files([root.join("etc/stella/trusted/signing-key.pub.pem")]).unwrap();
    let signer = stella_evidence::config_bundle::verify_dir(&root.join("etc/stella"), &trust).unwrap();
    assert_eq!(signer.keyid, built["signer"]["keyid"].as_str().unwrap());
    let help = Command::new(root.join("opt/stella/bin/stella")).args(["telemetry", "--help"]).output().unwrap();
    assert!(help.status.success() && String::from_utf8_lossy(&help.stdout).contains("offline-kit"));

    // The same inputs give the same kit.
    let again = dir.path().join("again.tar.zst");
    let rebuilt = ok_json(&stella(&[
        "telemetry",
        "offline-kit",
        "build",
        "--out",
        text(&again),
        "--compression",
        "zstd",
        "--data-dir",
        text(&data),
        "--json",
    ]));
    assert_eq!(rebuilt["sha256"], built["sha256"], "deterministic");
}
