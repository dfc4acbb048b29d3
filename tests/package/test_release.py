"""The release as a site receives it: `scripts/release.sh` builds the Debian package, the SBOM and
SHA256SUMS (of the debug build: `--profile dev`; the release profile only changes the compiler's flags),
signed with a release key. Checked with real tools: `lintian`, `dpkg`, `sha256sum -c`, `systemd-analyze
verify`, Python's securesystemslib for the DSSE signature. The package is installed, run, removed and
purged in a throwaway root: an overlay of this machine's own root filesystem (its writes go to a tmpfs, the
host does not change), so dpkg and the maintainer scripts run as on a clean Debian machine. Those tests
need root (mount, chroot, unshare) and say so when skipped."""
import contextlib
import hashlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key
from securesystemslib.dsse import Envelope
from securesystemslib.signer import SSlibKey

ROOT = Path(__file__).resolve().parents[2]
IS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not IS_ROOT, reason="installs into an overlay root: needs root (mount, chroot)")


def run(args, check=True, **kwargs):
    result = subprocess.run([str(arg) for arg in args], capture_output=True, text=True, timeout=900, **kwargs)
    if check:
        assert result.returncode == 0, f"{args}: exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """The signed dev release in dist/, the release and site keys, and the release script's output."""
    work = tmp_path_factory.mktemp("release")
    dist = work / "dist"
    built = run([ROOT / "scripts/release.sh", "--profile", "dev", "--allow-dirty", "--out", dist], cwd=ROOT)
    stella = dist / "stella"
    for name in ("release-key", "site-key"):
        run([stella, "telemetry", "keys", "generate", "--out", work / name])
    signed = run([stella, "telemetry", "release", "sign", dist,
                  "--signing-key", work / "release-key/signing-key.pem", "--json"])
    (deb,) = dist.glob("stella_*.deb")
    return {"work": work, "dist": dist, "deb": deb, "stella": stella, "log": built.stdout,
            "release_pub": work / "release-key/signing-key.pub.pem", "site": work / "site-key",
            "signer": json.loads(signed.stdout)["signer"]["keyid"]}


def git(*args):
    return run(["git", *args], cwd=ROOT).stdout.strip()


def test_the_release_holds_the_package_the_sbom_and_checksums_that_sha256sum_accepts(release):
    names = sorted(path.name for path in release["dist"].iterdir())
    assert names == sorted(["SHA256SUMS", "manifest.dsse.json", "manifest.json", release["deb"].name, "stella",
                            "stella.cdx.json"])
    assert release["deb"].name == "stella_0.1.0-1_amd64.deb"
    checked = run(["sha256sum", "--check", "--strict", "SHA256SUMS"], cwd=release["dist"])
    assert checked.stdout.count(": OK") == 3, checked.stdout
    # A changed byte is found by the same tool.
    copy = release["work"] / "tampered"
    shutil.copytree(release["dist"], copy)
    data = bytearray((copy / "stella.cdx.json").read_bytes())
    data[100] ^= 1
    (copy / "stella.cdx.json").write_bytes(bytes(data))
    assert run(["sha256sum", "--check", "--strict", "SHA256SUMS"], cwd=copy, check=False).returncode == 1


def test_the_binary_says_how_it_was_built_and_names_its_sbom(release):
    info = json.loads(run([release["stella"], "version", "--json"]).stdout)
    sbom = (release["dist"] / "stella.cdx.json").read_bytes()
    assert info["sbom_sha256"] == hashlib.sha256(sbom).hexdigest()
    assert info["git_commit"] == git("rev-parse", "HEAD")
    assert info["source_date_epoch"] == int(git("log", "-1", "--format=%ct"))
    assert info["build_date"].endswith("Z") and info["version"] == "0.1.0"
    assert info["rustc"].startswith("rustc 1.") and info["target"] == "x86_64-unknown-linux-gnu"
    assert info["profile"] == "debug" and info["features"] == []


def test_the_sbom_is_cyclonedx_of_what_the_binary_links_with_licences(release):
    sbom = json.loads((release["dist"] / "stella.cdx.json").read_text())
    assert sbom["bomFormat"] == "CycloneDX" and sbom["specVersion"] == "1.5"
    assert sbom["metadata"]["component"]["name"] == "stella"
    assert sbom["metadata"]["timestamp"].startswith(
        time.strftime("%Y-%m-%d", time.gmtime(int(git("log", "-1", "--format=%ct")))))
    components = {component["name"]: component for component in sbom["components"]}
    lock = (ROOT / "Cargo.lock").read_text()
    for name in ("tokio", "prost", "axum", "redb", "ed25519-dalek", "promql-parser", "zstd"):
        component = components[name]
        assert f'name = "{name}"\nversion = "{component["version"]}"' in lock, name
        assert component["licenses"], f"{name} has a licence"
        assert component["hashes"][0]["alg"] == "SHA-256"
    # Dev- and build-only dependencies are not in the binary, so not in its SBOM.
    for absent in ("proptest", "criterion", "tempfile-dev-only", "cc"):
        assert absent not in components, absent
    assert all(component.get("licenses") for component in sbom["components"]), "every component has a licence"
    assert "/work/" not in json.dumps(sbom) and str(ROOT) not in json.dumps(sbom), "no build paths"


def test_the_release_signature_verifies_with_securesystemslib_and_stella(release):
    dist = release["dist"]
    public = load_pem_public_key(release["release_pub"].read_bytes())
    keyid = hashlib.sha256(public.public_bytes(Encoding.Raw, PublicFormat.Raw)).hexdigest()
    assert keyid == release["signer"]
    envelope = Envelope.from_dict(json.loads((dist / "manifest.dsse.json").read_text()))
    assert envelope.payload_type == "application/vnd.stellaops.telemetry.release.manifest+json"
    assert keyid in envelope.verify([SSlibKey.from_crypto(public, keyid=keyid, scheme="ed25519")], 1)
    assert envelope.payload == (dist / "manifest.json").read_bytes()
    manifest = json.loads(envelope.payload)
    for entry in manifest["files"]:
        assert hashlib.sha256((dist / entry["path"]).read_bytes()).hexdigest() == entry["sha256"]

    verified = run([release["stella"], "telemetry", "release", "verify", dist,
                    "--trusted-key", release["release_pub"], "--json"])
    assert json.loads(verified.stdout)["signer"]["keyid"] == keyid
    copy = release["work"] / "changed-deb"
    shutil.copytree(dist, copy)
    with open(copy / release["deb"].name, "r+b") as deb:
        deb.seek(200)
        byte = deb.read(1)
        deb.seek(200)
        deb.write(bytes([byte[0] ^ 0x40]))
    refused = run([release["stella"], "telemetry", "release", "verify", copy, "--trusted-key", release["release_pub"]],
                  check=False)
    assert refused.returncode == 10 and "changed after signing" in refused.stderr, refused.stderr
    site_pub = release["site"] / "signing-key.pub.pem"
    refused = run([release["stella"], "telemetry", "release", "verify", dist, "--trusted-key", site_pub], check=False)
    assert refused.returncode == 12, refused.stderr


def test_lintian_finds_no_error_in_the_package(release):
    result = run(["lintian", "--fail-on", "error", "--tag-display-limit", "0", release["deb"]], check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not [line for line in result.stdout.splitlines() if line.startswith("E:")], result.stdout


def test_the_package_declares_its_files_conffile_unit_and_dependencies(release):
    deb = release["deb"]
    contents = run(["dpkg-deb", "--contents", deb]).stdout
    for path in ("./usr/bin/stella", "./etc/stella/collector.yaml", "/systemd/system/stella.service",
                 "./usr/share/man/man1/stella.1.gz", "./usr/share/man/man1/stella-telemetry-serve.1.gz",
                 "./usr/share/bash-completion/completions/stella", "./usr/share/zsh/vendor-completions/_stella",
                 "./usr/share/fish/vendor_completions.d/stella.fish", "./usr/share/doc/stella/copyright",
                 "./usr/share/doc/stella/changelog.Debian.gz"):
        assert path in contents, path
    assert run(["dpkg-deb", "--field", deb, "Package"]).stdout.strip() == "stella"
    depends = run(["dpkg-deb", "--field", deb, "Depends"]).stdout
    assert "libc6" in depends and "passwd" in depends, depends
    control = release["work"] / "control"
    run(["dpkg-deb", "--control", deb, control])
    assert (control / "conffiles").read_text().split() == ["/etc/stella/collector.yaml"]
    # The conffile is the default profile, as `config show` prints it.
    extracted = release["work"] / "extracted"
    run(["dpkg-deb", "--extract", deb, extracted])
    shown = run([release["stella"], "telemetry", "config", "show", "--profile", "default"]).stdout
    assert (extracted / "etc/stella/collector.yaml").read_text() == shown
    # The binary of the release is the package's, byte for byte.
    assert (extracted / "usr/bin/stella").read_bytes() == release["stella"].read_bytes()
    # The changelog's version is the crate's.
    changelog = (ROOT / "packaging/debian/changelog").read_text().splitlines()[0]
    assert changelog.startswith("stella (0.1.0-1) "), changelog


@contextlib.contextmanager
def throwaway_root():
    """An overlay of this machine's root filesystem whose writes land on a tmpfs, with /proc, /dev, a
    fresh /tmp and a /run without systemd (nothing runs systemd in it)."""
    base = Path(tempfile.mkdtemp(prefix="stella-root-"))
    layer, root = base / "layer", base / "root"
    layer.mkdir()
    root.mkdir()
    mounted = []

    def mount(*args, target):
        run(["mount", *args, target])
        mounted.append(target)

    try:
        mount("-t", "tmpfs", "tmpfs", target=layer)
        (layer / "upper").mkdir()
        (layer / "work").mkdir()
        mount("-t", "overlay", "overlay", "-o", f"lowerdir=/,upperdir={layer}/upper,workdir={layer}/work",
              target=root)
        mount("-t", "proc", "proc", target=root / "proc")
        mount("--bind", "/dev", target=root / "dev")
        mount("-t", "tmpfs", "tmpfs", target=root / "tmp")
        mount("-t", "tmpfs", "tmpfs", target=root / "run")
        yield root
    finally:
        for target in reversed(mounted):
            subprocess.run(["umount", "--lazy", str(target)], check=False)
        shutil.rmtree(base, ignore_errors=True)


def in_root(root, *args, check=True):
    return run(["chroot", root, *args], check=check)


def unit_exec_start(root):
    unit = next(path for path in (root / "lib/systemd/system/stella.service",
                                  root / "usr/lib/systemd/system/stella.service") if path.exists())
    (line,) = [line for line in unit.read_text().splitlines() if line.startswith("ExecStart=")]
    return shlex.split(line.removeprefix("ExecStart="))


def ask(pid, method, url, body=None):
    """An HTTP request sent from inside the network namespace of process `pid`; (status, body)."""
    script = (
        "import sys, urllib.request, urllib.error\n"
        "data = sys.stdin.buffer.read() or None\n"
        f"request = urllib.request.Request({url!r}, data=data, method={method!r},"
        " headers={'Content-Type': 'application/json'})\n"
        "try:\n    answer = urllib.request.urlopen(request, timeout=5)\n"
        "except urllib.error.HTTPError as error:\n    answer = error\n"
        "except OSError as error:\n    print(0, error); sys.exit(0)\n"
        "print(answer.status, answer.read().decode())\n"
    )
    result = subprocess.run(["nsenter", f"--net=/proc/{pid}/ns/net", "python3", "-c", script],
                            input=(body or "").encode(), capture_output=True, timeout=30)
    status, _, text = result.stdout.decode().strip().partition(" ")
    return int(status or 0), text


SPAN = json.dumps({"resourceSpans": [{
    "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "packaged"}}]},
    "scopeSpans": [{"spans": [{
        "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174", "name": "checkout",
        "kind": 2, "status": {"code": 2},
        "startTimeUnixNano": str(time.time_ns() - 10**9), "endTimeUnixNano": str(time.time_ns())}]}]}]})


@needs_root
def test_installed_it_runs_as_an_unprivileged_service_and_remove_keeps_the_data(release):
    with throwaway_root() as root:
        shutil.copy(release["deb"], root / "tmp/stella.deb")
        in_root(root, "dpkg", "--install", "/tmp/stella.deb")
        assert in_root(root, "dpkg-query", "--show", "--showformat=${Status}", "stella").stdout == \
            "install ok installed"
        user = in_root(root, "getent", "passwd", "stella").stdout.strip().split(":")
        assert int(user[2]) < 1000 and user[5] == "/var/lib/stella" and user[6] == "/usr/sbin/nologin", user
        data = root / "var/lib/stella"
        assert data.stat().st_uid == int(user[2]) and oct(data.stat().st_mode & 0o777) == "0o750"
        # Enabled for the next boot by the maintainer scripts (systemd is not running in this root).
        assert (root / "etc/systemd/system/multi-user.target.wants/stella.service").is_symlink()
        in_root(root, "stella", "telemetry", "config", "validate", "/etc/stella/collector.yaml")
        verify = in_root(root, "systemd-analyze", "verify", "/lib/systemd/system/stella.service", check=False)
        assert verify.returncode == 0, verify.stderr
        assert "stella.service" not in verify.stderr, verify.stderr
        unit = unit_exec_start(root)
        assert unit[:3] == ["/usr/bin/stella", "telemetry", "serve"] and "/var/lib/stella" in unit

        # The unit's command as the unit's user, in its own network namespace (the default profile's
        # loopback ports then clash with nothing on this machine).
        command = f"ip link set lo up && exec chroot --userspec=stella:stella {shlex.quote(str(root))} " + \
            " ".join(shlex.quote(part) for part in unit)
        log = open(release["work"] / "service.log", "wb")
        service = subprocess.Popen(["unshare", "--net", "--", "sh", "-c", command], stdout=log, stderr=log)
        try:
            deadline = time.time() + 60
            while ask(service.pid, "GET", "http://127.0.0.1:4319/readyz")[0] != 200:
                assert service.poll() is None, (release["work"] / "service.log").read_text()
                assert time.time() < deadline, (release["work"] / "service.log").read_text()
                time.sleep(0.2)
            status, body = ask(service.pid, "POST", "http://127.0.0.1:4318/v1/traces", SPAN)
            assert status == 200, body
            service.send_signal(signal.SIGTERM)
            assert service.wait(timeout=90) == 0, (release["work"] / "service.log").read_text()
        finally:
            if service.poll() is None:
                service.kill()
        written = [path for path in data.rglob("*") if path.is_file()]
        assert written, "the service wrote its data"
        assert {path.stat().st_uid for path in written} == {int(user[2])}, "every file is the service user's"
        export = data / "export/traces.jsonl"
        assert "5b8efff798038103d269b633813fc60c" in export.read_text(), "the error span was kept and exported"

        in_root(root, "dpkg", "--remove", "stella")
        assert not (root / "usr/bin/stella").exists()
        assert export.exists(), "remove keeps the data"
        assert (root / "etc/stella/collector.yaml").exists(), "remove keeps the conffile"
        in_root(root, "dpkg", "--purge", "stella")
        assert not data.exists(), "purge deletes the data"
        assert not (root / "etc/stella/collector.yaml").exists(), "purge deletes the conffile"


@needs_root
def test_the_offline_kit_carries_the_signed_release_and_installs_the_package(release):
    work, stella = release["work"], release["stella"]
    kit = work / "kit.tar.gz"
    run([stella, "telemetry", "offline-kit", "build", "--out", kit, "--release", release["dist"],
         "--signing-key", release["site"] / "signing-key.pem"])
    site_pub = release["site"] / "signing-key.pub.pem"
    verified = json.loads(run([stella, "telemetry", "offline-kit", "verify", kit, "--trusted-key", site_pub,
                               "--release-key", release["release_pub"], "--json"]).stdout)
    assert verified["release_signer"]["keyid"] == release["signer"] != verified["signer"]["keyid"]
    paths = {entry["path"]: entry for entry in verified["files"]}
    for name in ("SHA256SUMS", "stella.cdx.json", release["deb"].name, "manifest.dsse.json"):
        assert f"release/{name}" in paths, name
    assert paths["bin/stella"]["sha256"] == paths["release/stella"]["sha256"]
    # Without the release key, or with the site's key in its place, the kit is refused.
    refused = run([stella, "telemetry", "offline-kit", "verify", kit, "--trusted-key", site_pub], check=False)
    assert refused.returncode == 12 and "--release-key" in refused.stderr, refused.stderr
    refused = run([stella, "telemetry", "offline-kit", "verify", kit, "--trusted-key", site_pub,
                   "--release-key", site_pub], check=False)
    assert refused.returncode == 12, refused.stderr
    # A release signed with the site's own key is not a release.
    own = work / "own-release"
    shutil.copytree(release["dist"], own)
    run([stella, "telemetry", "release", "sign", own, "--signing-key", release["site"] / "signing-key.pem"])
    refused = run([stella, "telemetry", "offline-kit", "build", "--out", work / "own.tar.gz", "--release", own,
                   "--signing-key", release["site"] / "signing-key.pem"], check=False)
    assert refused.returncode == 1 and "kit's own key" in refused.stderr, refused.stderr

    with throwaway_root() as root:
        extracted = root / "tmp/kit"
        run([stella, "telemetry", "offline-kit", "verify", kit, "--trusted-key", site_pub,
             "--release-key", release["release_pub"], "--extract", extracted])
        installed = in_root(root, "env", "PROFILE=airgap", "sh", "/tmp/kit/bootstrap/install.sh")
        assert "installing the Debian package" in installed.stdout, installed.stdout
        assert in_root(root, "dpkg-query", "--show", "--showformat=${Status}", "stella").stdout == \
            "install ok installed"
        dropin = (root / "etc/systemd/system/stella.service.d/offline-kit.conf").read_text()
        assert "--profile airgap" in dropin and "--config-dir /etc/stella" in dropin, dropin
        assert (root / "etc/stella/collector.yaml").read_text() == (extracted / "config/airgap.yaml").read_text()
        in_root(root, "stella", "telemetry", "config", "validate", "/etc/stella/collector.yaml", "--profile", "airgap")


def test_one_crate_builds_to_the_same_bytes_in_two_directories_at_two_times():
    result = run([ROOT / "scripts/check-reproducible.sh", "--crate", "stella-metrics"], cwd=ROOT)
    assert "reproducible: 1 files identical" in result.stdout, result.stdout


def container_leader(nspawn_pid):
    """The container's PID 1 (systemd), the child of systemd-nspawn."""
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line)
        except OSError:
            continue
        if fields.get("PPid", "").strip() == str(nspawn_pid):
            return int(status.parent.name)
    return None


def inside(leader, *args, check=True):
    return run(["nsenter", "--target", leader, "--all", *args], check=check)


@needs_root
def test_on_a_clean_debian_machine_systemctl_runs_it_as_an_unprivileged_service(release):
    """A clean Debian bookworm (debootstrap minbase with systemd) booted by systemd-nspawn: the package is
    installed, and the systemd of that machine starts, stops and restarts the service."""
    machine = release["work"] / "debian"
    run(["debootstrap", "--variant=minbase", "--include=systemd,systemd-sysv,dbus", "bookworm", machine,
         "http://deb.debian.org/debian"])
    shutil.copy(release["deb"], machine / "tmp/stella.deb")
    run(["chroot", machine, "dpkg", "--install", "/tmp/stella.deb"])
    # systemd-nspawn keeps its propagation directory under /run/systemd/nspawn and wants a tmpfs there.
    propagate = Path("/run/systemd/nspawn")
    propagate.mkdir(parents=True, exist_ok=True)
    run(["mount", "-t", "tmpfs", "tmpfs", propagate])
    log = open(release["work"] / "nspawn.log", "wb")
    nspawn = subprocess.Popen(["systemd-nspawn", "--directory", str(machine), "--boot", "--console=pipe",
                               "--private-network", "--register=no", "--keep-unit", "--machine", "stella-test"],
                              stdout=log, stderr=log)
    try:
        deadline = time.time() + 120
        leader = None
        while True:
            assert nspawn.poll() is None, (release["work"] / "nspawn.log").read_text()
            assert time.time() < deadline, (release["work"] / "nspawn.log").read_text()
            leader = leader or container_leader(nspawn.pid)
            if leader:
                state = inside(leader, "systemctl", "is-system-running", check=False).stdout.strip()
                if state in ("running", "degraded"):
                    break
            time.sleep(0.5)
        # Enabled by the package, so started at boot; `systemctl restart` as an operator would.
        inside(leader, "systemctl", "restart", "stella")
        assert inside(leader, "systemctl", "is-active", "stella").stdout.strip() == "active"
        deadline = time.time() + 60
        while ask(leader, "GET", "http://127.0.0.1:4319/readyz")[0] != 200:
            assert time.time() < deadline, inside(leader, "journalctl", "-u", "stella", "--no-pager").stdout
            time.sleep(0.2)
        # Serving, so past the exec (systemd drops to the user just before it).
        show = inside(leader, "systemctl", "show", "stella", "--property=MainPID,User").stdout
        properties = dict(line.split("=", 1) for line in show.splitlines())
        assert properties["User"] == "stella"
        status = inside(leader, "cat", f"/proc/{properties['MainPID']}/status").stdout
        fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        assert fields["Name"].strip() == "stella", fields["Name"]
        uid = int(inside(leader, "id", "-u", "stella").stdout)
        assert fields["Uid"].split() == [str(uid)] * 4 and uid != 0, fields["Uid"]
        assert int(fields["CapEff"], 16) == 0 and int(fields["CapBnd"], 16) == 0, fields
        assert fields["NoNewPrivs"].strip() == "1"
        assert ask(leader, "POST", "http://127.0.0.1:4318/v1/traces", SPAN)[0] == 200
        inside(leader, "systemctl", "stop", "stella")
        result = inside(leader, "systemctl", "show", "stella", "--property=ExecMainStatus,Result").stdout
        assert "ExecMainStatus=0" in result and "Result=success" in result, result
        journal = inside(leader, "journalctl", "-u", "stella", "--no-pager").stdout
        assert "panicked" not in journal and '"level":"ERROR"' not in journal, journal
        assert "retention.paused" not in journal, "an empty store is no clock problem"
        # apt remove keeps the data.
        inside(leader, "dpkg", "--remove", "stella")
        assert (machine / "var/lib/stella/export").is_dir()
        inside(leader, "systemctl", "poweroff", check=False)
        nspawn.wait(timeout=60)
    finally:
        if nspawn.poll() is None:
            nspawn.kill()
            nspawn.wait()
        subprocess.run(["umount", "--lazy", str(propagate)], check=False)
