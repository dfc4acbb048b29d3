//! The API router driven with `oneshot`, no API socket: a real collector (receivers on ephemeral ports)
//! behind it.
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use stella_collector::config::Profile;
use stella_collector::topology::Environment;
use stella_collector::{Collector, ConfigSource};
use stella_metrics::Registry;
use stella_pipeline::resource_detection::HostFacts;
use tower::ServiceExt;

use super::{ApiState, register_build_info, router};

const CONFIG: &str = "receivers:\n  otlp:\n    protocols:\n      grpc: {endpoint: 127.0.0.1:0}\n      http: {endpoint: 127.0.0.1:0}\nexporters: {nop: {}}\nservice:\n  pipelines:\n    traces: {receivers: [otlp], processors: [], exporters: [nop]}\n    metrics: null\n    logs: null\n";

async fn start() -> (ApiState, tempfile::TempDir) {
    start_with(CONFIG).await
}

async fn start_with(config_text: &str) -> (ApiState, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("stella.yaml");
    std::fs::write(&config, config_text).unwrap();
    let registry = Registry::default();
    register_build_info(&registry, "1.2.3");
    let context = Environment {
        data_dir: dir.path().to_path_buf(),
        registry: registry.clone(),
        host_facts: Arc::new(HostFacts::default()),
        allow_insecure: false,
        rotation_signer: None,
        event_exporter: None,
    };
    let source =
        ConfigSource { profile: Profile::Default, overlay: Some(config), check: None, env_vars: Default::default() };
    let collector = Collector::start(source, context).await.unwrap();
    let audit = Arc::new(super::audit::AuditLog::new(dir.path(), None));
    let token_admin = Arc::new(stella_collector::auth::TokenStore::open(dir.path()).unwrap());
    let evidence = super::evidence::load(&collector.config().evidence, dir.path(), "default", &registry);
    let evidence = Arc::new(evidence.unwrap());
    (
        ApiState {
            collector,
            registry,
            tokens: None,
            metrics_public: false,
            audit,
            token_admin,
            evidence,
            rules: Default::default(),
        },
        dir,
    )
}

async fn call(state: &ApiState, method: &str, uri: &str) -> (StatusCode, String) {
    call_as(state, method, uri, None).await
}

async fn call_as(state: &ApiState, method: &str, uri: &str, token: Option<&str>) -> (StatusCode, String) {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let request = request.body(Body::empty()).unwrap();
    let response = router(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn health_readiness_and_metrics_answer() {
    let (state, _dir) = start().await;
    assert_eq!(call(&state, "GET", "/healthz").await, (StatusCode::OK, r#"{"status":"ok"}"#.to_string()));
    let (status, ready) = call(&state, "GET", "/readyz").await;
    assert_eq!(status, StatusCode::OK);
    let ready: serde_json::Value = serde_json::from_str(&ready).unwrap();
    assert_eq!(ready["ready"], true);
    assert_eq!(ready["components"].as_array().unwrap().len(), 4, "{ready}");
    let (status, metrics) = call(&state, "GET", "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert!(metrics.contains("stella_build_info{version=\"1.2.3\"} 1"), "{metrics}");
    state.collector.shutdown(std::time::Duration::from_secs(5)).await;
    let (status, _) = call(&state, "GET", "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "not ready once shutdown began");
}

#[tokio::test]
async fn an_invalid_reload_lists_every_error_and_keeps_the_config() {
    let (state, dir) = start().await;
    std::fs::write(dir.path().join("stella.yaml"), "exporters: {nop: {x: 1}}\nprocessors: {batch: {timeout: soon}}\n")
        .unwrap();
    let (status, body) = call(&state, "POST", "/telemetry/config/reload").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["code"], "config.invalid");
    assert_eq!(body["errors"].as_array().unwrap().len(), 2, "{body}");
    assert_eq!(state.collector.config().pipelines.len(), 1);
    let (status, audit) = call(&state, "GET", "/telemetry/audit").await;
    assert_eq!(status, StatusCode::OK);
    let audit: serde_json::Value = serde_json::from_str(&audit).unwrap();
    assert_eq!(audit["lines"][0]["action"], "config.reload");
    assert_eq!(audit["lines"][0]["result"], "error: config.invalid", "the refused reload is on the trail");
    let (status, body) = call(&state, "GET", "/nowhere").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("api.not_found"));
}

#[tokio::test]
async fn every_protected_route_refuses_without_a_token_and_without_its_scope() {
    use stella_collector::auth::{Scope, TokenStore};
    let (mut state, dir) = start().await;
    let tokens = Arc::new(TokenStore::open(dir.path()).unwrap());
    state.tokens = Some(Arc::clone(&tokens));
    for route in super::ROUTES {
        let Some(scope) = route.scope else {
            let (status, _) = call(&state, route.method, route.path).await;
            assert_ne!(status, StatusCode::UNAUTHORIZED, "{} is open", route.path);
            continue;
        };
        let (status, body) = call(&state, route.method, route.path).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{} without a token: {body}", route.path);
        assert!(body.contains("auth.missing"), "{body}");
        let (_, garbage) = call_as(&state, route.method, route.path, Some("stl_nope_nope")).await;
        assert!(garbage.contains("auth.invalid"), "{garbage}");
        let other =
            Scope::ALL.into_iter().find(|candidate| *candidate != scope && *candidate != Scope::Operator).unwrap();
        let (_, wrong) = tokens.create("default", [other].into_iter().collect(), None).unwrap();
        let (status, body) = call_as(&state, route.method, route.path, Some(&wrong)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{} with scope {other}: {body}", route.path);
        let (_, right) = tokens.create("default", [scope].into_iter().collect(), None).unwrap();
        let (status, body) = call_as(&state, route.method, route.path, Some(&right)).await;
        assert!(
            status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
            "{} with scope {scope}: {status} {body}",
            route.path
        );
    }
    state.metrics_public = true;
    assert_eq!(call(&state, "GET", "/metrics").await.0, StatusCode::OK, "api.metrics_public opens /metrics");
}

#[tokio::test]
async fn operators_manage_tokens_through_the_api_and_it_is_audited() {
    use stella_collector::auth::{Scope, TokenStore};
    let (mut state, dir) = start().await;
    let tokens = Arc::new(TokenStore::open(dir.path()).unwrap());
    state.tokens = Some(Arc::clone(&tokens));
    let (_, operator) = tokens.create("default", [Scope::Operator].into_iter().collect(), None).unwrap();
    let create = |tenant: &str| {
        Request::builder()
            .method("POST")
            .uri("/telemetry/tokens")
            .header("authorization", format!("Bearer {operator}"))
            .header("content-type", "application/json")
            .body(Body::from(format!(r#"{{"tenant":"{tenant}","scopes":["read"],"expires_seconds":3600}}"#)))
            .unwrap()
    };
    let refused = router(state.clone()).oneshot(create("acme")).await.unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "a token for a tenant the config does not declare");
    let body = refused.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("tokens.undeclared_tenant"));
    let response = router(state.clone()).oneshot(create("default")).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&body));
    let created: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let id = created["id"].as_str().unwrap().to_string();
    let new_token = created["token"].as_str().unwrap().to_string();
    assert!(tokens.authorize(Some(&format!("Bearer {new_token}")), Scope::Read).is_ok(), "the new token works at once");
    let (status, listed) = call_as(&state, "GET", "/telemetry/tokens", Some(&operator)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(listed.contains(&id) && !listed.contains(&new_token), "listed without its secret: {listed}");
    let (status, _) = call_as(&state, "DELETE", &format!("/telemetry/tokens/{id}"), Some(&operator)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(tokens.authorize(Some(&format!("Bearer {new_token}")), Scope::Read).is_err(), "revoked through the API");
    let (status, _) = call_as(&state, "DELETE", "/telemetry/tokens/nope", Some(&operator)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let trail = state.audit.lines().unwrap().join("\n");
    assert!(trail.contains("\"action\":\"token.create\"") && trail.contains("\"action\":\"token.revoke\""), "{trail}");
    assert!(!trail.contains(&new_token), "a token never reaches the audit trail");
}

#[test]
fn routes_of_one_path_share_one_scope() {
    for route in super::ROUTES {
        for other in super::ROUTES.iter().filter(|other| other.path == route.path) {
            assert_eq!(route.scope, other.scope, "{} {} and {} {}", route.method, route.path, other.method, other.path);
        }
    }
}

async fn send_json(
    state: &ApiState,
    method: &str,
    uri: &str,
    token: &str,
    body: &str,
) -> (StatusCode, serde_json::Value) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let response = router(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap_or_default())
}

#[tokio::test]
async fn incident_mode_is_tenant_scoped_and_a_tenant_in_the_body_must_be_the_tokens() {
    use stella_collector::auth::{Scope, TokenStore};
    let (mut state, dir) = start_with(&format!("{CONFIG}tenants: [{{id: acme}}, {{id: globex}}]\n")).await;
    let tokens = Arc::new(TokenStore::open(dir.path()).unwrap());
    state.tokens = Some(Arc::clone(&tokens));
    let token = |tenant: &str, scope: Scope| tokens.create(tenant, [scope].into_iter().collect(), None).unwrap().1;
    let (acme, globex, operator) =
        (token("acme", Scope::Admin), token("globex", Scope::Admin), token("acme", Scope::Operator));
    let path = "/telemetry/incidents/mode";

    let (status, body) = send_json(
        &state,
        "POST",
        path,
        &acme,
        r#"{"state":"on","services":["checkout"],"ttl":"1h","reason":"sev1","tenant":"globex"}"#,
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::FORBIDDEN, Some("auth.tenant_mismatch")), "{body}");
    let (status, body) = send_json(&state, "POST", path, &acme, r#"{"state":"on","tenant":"*"}"#).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) =
        send_json(&state, "POST", path, &acme, r#"{"state":"on","services":["checkout"],"ttl":"1h","reason":"sev1"}"#)
            .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!((body["tenant"].as_str(), body["state"].as_str()), (Some("acme"), Some("on")));
    assert!(body["until"].as_str().is_some(), "{body}");

    let (status, body) = call_as(&state, "GET", &format!("{path}?tenant=acme"), Some(&globex)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "globex cannot read acme's incident mode: {body}");
    let (_, body) = call_as(&state, "GET", path, Some(&globex)).await;
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!((body["tenant"].as_str(), body["state"].as_str()), (Some("globex"), Some("off")), "{body}");
    let (_, body) = call_as(&state, "GET", &format!("{path}?tenant=acme"), Some(&operator)).await;
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["services"], serde_json::json!(["checkout"]), "operators read any tenant: {body}");

    for (body, code) in [
        (r#"{"state":"maybe"}"#, "api.invalid_body"),
        (r#"{"state":"on","ttl":"30d"}"#, "incident.invalid_ttl"),
        (r#"{"state":"on","ttl":"soon"}"#, "incident.invalid_ttl"),
        (r#"{"state":"on","tenant":"initech"}"#, "tenant.unknown"),
    ] {
        let (status, answer) = send_json(&state, "POST", path, &operator, body).await;
        assert_eq!(answer["code"].as_str(), Some(code), "{body}: {status} {answer}");
    }
    let (status, body) =
        send_json(&state, "POST", path, &operator, r#"{"state":"off","tenant":"*","reason":"resolved"}"#).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["tenants"].as_array().map(Vec::len), Some(3), "default, acme, globex: {body}");
    assert!(!state.collector.incidents().board().any_on());
    let trail = state.audit.lines().unwrap();
    assert_eq!(trail.iter().filter(|line| line.contains("\"action\":\"incident.mode\"")).count(), 4, "{trail:?}");
    assert_eq!(state.collector.incidents().saved("acme").unwrap().reason, "resolved", "saved before the answer");
}
