//! TLS and mTLS with certificates made by the real `openssl` tool: a client certificate is required and
//! checked on the mTLS receiver, TLS 1.1 is refused, plain text is refused, and a replaced certificate is
//! served to new connections without a restart.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{Stella, file_pipelines, traces};

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl").args(args).current_dir(dir).output().unwrap();
    assert!(output.status.success(), "openssl {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
}

/// A CA (`<name>-ca.pem`) and a certificate `<cert>.pem`/`<cert>.key` signed by it.
fn issue(dir: &Path, ca: &str, cert: &str, subject: &str) {
    if !dir.join(format!("{ca}.pem")).exists() {
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "2",
                "-subj",
                &format!("/CN={ca}"),
                "-keyout",
                &format!("{ca}.key"),
                "-out",
                &format!("{ca}.pem"),
            ],
        );
    }
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n").unwrap();
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            &format!("/CN={subject}"),
            "-keyout",
            &format!("{cert}.key"),
            "-out",
            &format!("{cert}.csr"),
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{cert}.csr"),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            &format!("{cert}.pem"),
        ],
    );
}

fn client(dir: &Path, identity: Option<&str>) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(dir.join("ca.pem")).unwrap()).unwrap();
    let mut builder = reqwest::Client::builder().tls_certs_only([ca]);
    if let Some(name) = identity {
        let mut pem = std::fs::read(dir.join(format!("{name}.pem"))).unwrap();
        pem.extend(std::fs::read(dir.join(format!("{name}.key"))).unwrap());
        builder = builder.identity(reqwest::Identity::from_pem(&pem).unwrap());
    }
    builder.build().unwrap()
}

async fn send(client: &reqwest::Client, port: u16) -> Result<u16, String> {
    let body = traces("tls", 1).encode_protobuf();
    let url = format!("https://127.0.0.1:{port}/v1/traces");
    match client.post(url).header("content-type", "application/x-protobuf").body(body).send().await {
        Ok(response) => Ok(response.status().as_u16()),
        Err(error) => Err(format!("{error:?}")),
    }
}

/// What `openssl s_client` sees on `port`: the server certificate's subject, or the failure.
fn s_client(port: u16, extra: &[&str]) -> (bool, String) {
    let output = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}"), "-brief"])
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (text.contains("CONNECTION ESTABLISHED"), text)
}

#[tokio::test(flavor = "multi_thread")]
async fn mtls_tls_versions_plain_text_and_certificate_reload() {
    let certs = tempfile::tempdir().unwrap();
    let dir = certs.path();
    issue(dir, "ca", "server", "stella-server");
    issue(dir, "ca", "client", "good-client");
    issue(dir, "rogue-ca", "rogue", "rogue-client");
    let path = |name: &str| -> PathBuf { dir.join(name) };
    let tls = format!(
        "tls: {{cert_file: \"{}\", key_file: \"{}\", client_ca_file: \"{}\"}}",
        path("server.pem").display(),
        path("server.key").display(),
        path("ca.pem").display()
    );
    let api_tls = format!(
        "tls: {{cert_file: \"{}\", key_file: \"{}\"}}",
        path("server.pem").display(),
        path("server.key").display()
    );
    let extra = common::Extra { receiver: "", protocol: &tls, api: &api_tls, caps: None };
    let mut stella = Stella::start_with_receiver(&extra, &file_pipelines(""));

    assert_eq!(
        send(&client(dir, Some("client")), stella.http).await,
        Ok(200),
        "a client certificate from the CA is accepted"
    );
    assert!(send(&client(dir, None), stella.http).await.is_err(), "mTLS: no client certificate, no connection");
    assert!(send(&client(dir, Some("rogue")), stella.http).await.is_err(), "a certificate from another CA is refused");
    let plain = reqwest::Client::new().post(stella.url("/v1/traces")).body(Vec::new()).send().await;
    assert!(plain.is_err() || plain.unwrap().status() != 200, "plain HTTP is not served on a TLS port");

    let (tls12, text) = s_client(stella.api, &["-tls1_2"]);
    assert!(tls12, "TLS 1.2 is accepted: {text}");
    let (tls11, _) = s_client(stella.api, &["-tls1_1"]);
    assert!(!tls11, "TLS 1.1 is refused");
    assert!(text.contains("CN=stella-server") || text.contains("CN = stella-server"), "{text}");

    issue(dir, "ca", "renewed", "stella-server-renewed");
    std::fs::copy(path("renewed.key"), path("server.key")).unwrap();
    std::fs::copy(path("renewed.pem"), path("server.pem")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, text) = s_client(stella.api, &[]);
        if text.contains("stella-server-renewed") {
            break;
        }
        assert!(Instant::now() < deadline, "the renewed certificate was not picked up:\n{text}\n{}", stella.log());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        send(&client(dir, Some("client")), stella.http).await,
        Ok(200),
        "the receiver serves the renewed certificate too"
    );
    assert!(stella.terminate().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn otlp_exporters_deliver_over_mtls() {
    let certs = tempfile::tempdir().unwrap();
    let dir = certs.path();
    issue(dir, "ca", "server", "stella-server");
    issue(dir, "ca", "client", "stella-sender");
    let path = |name: &str| dir.join(name).display().to_string();
    let server_tls = format!(
        "tls: {{cert_file: \"{}\", key_file: \"{}\", client_ca_file: \"{}\"}}",
        path("server.pem"),
        path("server.key"),
        path("ca.pem")
    );
    let mut target = Stella::start_with_receiver(
        &common::Extra { receiver: "", protocol: &server_tls, api: "", caps: None },
        &file_pipelines(""),
    );
    let client_tls = format!(
        "tls: {{ca_file: \"{}\", cert_file: \"{}\", key_file: \"{}\"}}",
        path("ca.pem"),
        path("client.pem"),
        path("client.key")
    );
    let sender_config = format!(
        "exporters:\n  otlphttp: {{endpoint: \"https://127.0.0.1:{}\", {client_tls}}}\n  otlp: {{endpoint: \"https://127.0.0.1:{}\", {client_tls}}}\nservice:\n  pipelines:\n    traces: {{receivers: [otlp], processors: [], exporters: [otlphttp, otlp]}}\n",
        target.http, target.grpc
    );
    let mut sender = Stella::start(&sender_config);
    assert_eq!(sender.post(&traces("over-https", 3)).await.0, 200);
    assert_eq!(sender.post(&traces("over-grpc-tls", 2)).await.0, 200);
    // Both exporters deliver every span: once over HTTPS, once over gRPC with TLS.
    let deadline = Instant::now() + Duration::from_secs(20);
    while common::span_names(&target.exported(stella_otlp::Signal::Traces)).len() < 10 {
        assert!(Instant::now() < deadline, "spans did not arrive over mTLS:\n{}", sender.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(sender.terminate().success());
    assert!(target.terminate().success());
    let mut names = common::span_names(&target.exported(stella_otlp::Signal::Traces));
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mapped_client_certificate_names_the_tenant_without_a_token() {
    let certs = tempfile::tempdir().unwrap();
    let dir = certs.path();
    issue(dir, "ca", "server", "stella-server");
    issue(dir, "ca", "client", "collector.acme.example");
    issue(dir, "ca", "stranger", "collector.unknown.example");
    let path = |name: &str| dir.join(name).display().to_string();
    let tls = format!(
        "tls: {{cert_file: \"{}\", key_file: \"{}\", client_ca_file: \"{}\"}}",
        path("server.pem"),
        path("server.key"),
        path("ca.pem")
    );
    let body = format!(
        "auth: {{enabled: true, client_certificates: [{{name: collector.acme.example, tenant: acme}}]}}\ntenants: [{{id: acme}}]\n{}",
        file_pipelines("")
    );
    let mut stella =
        Stella::start_with_receiver(&common::Extra { receiver: "", protocol: &tls, api: "", caps: None }, &body);
    assert_eq!(send(&client(dir, Some("client")), stella.http).await, Ok(200), "the mapped certificate sends as acme");
    assert_eq!(
        send(&client(dir, Some("stranger")), stella.http).await,
        Ok(401),
        "a valid but unmapped certificate needs a token"
    );
    assert!(stella.data_dir().join("log/traces/acme").is_dir());
    assert!(stella.terminate().success());
}
