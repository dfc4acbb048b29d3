use super::*;

fn errors_of(yaml: &str) -> Vec<String> {
    let mut value = parse_yaml(Profile::Default.yaml(), "profile default").unwrap();
    merge(&mut value, parse_yaml(yaml, "test").unwrap());
    match Config::from_value(&value) {
        Ok(_) => Vec::new(),
        Err(errors) => errors.0.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn every_built_in_profile_is_a_valid_config() {
    for profile in Profile::ALL {
        let config = load(profile, None, &EnvVars::default()).unwrap_or_else(|errors| panic!("{profile}: {errors}"));
        assert_eq!(config.pipelines.len(), 3, "{profile}");
        assert_eq!(config.api.endpoint.to_string(), "127.0.0.1:4319");
        let otlp = &config.receivers["otlp"];
        assert_eq!(otlp.grpc.as_ref().unwrap().endpoint.to_string(), "127.0.0.1:4317");
        assert_eq!(otlp.http.as_ref().unwrap().endpoint.to_string(), "127.0.0.1:4318");
        assert_eq!(otlp.max_decompressed_bytes, 64 * 1024 * 1024);
    }
}

#[test]
fn every_problem_is_reported_at_once_with_its_key_path() {
    let errors = errors_of(
        r#"
receivers:
  otlp:
    protocols:
      grpc: {endpoint: "not-an-address"}
processors:
  batch: {send_batch_size: "many"}
exporters:
  file: {path: x.jsonl, colour: blue}
  kafka: {}
service:
  pipelines:
    traces: {receivers: [otlp], processors: [batch], exporters: [file, missing]}
    spans: {receivers: [otlp], exporters: [file]}
extra: 1
"#,
    );
    let expected = [
        "extra: unknown key; valid top-level keys are",
        "receivers.otlp.protocols.grpc.endpoint: \"not-an-address\" is not an address",
        "processors.batch.send_batch_size: invalid type: string \"many\"",
        "exporters.file.colour: unknown field `colour`",
        "exporters.kafka: unknown exporter type `kafka`; available: debug, events, file, loadbalancing, loki, nop",
        "service.pipelines.traces.exporters[1]: `missing` is not defined under `exporters:`",
        "service.pipelines.spans: unknown signal `spans`",
    ];
    for wanted in expected {
        assert!(errors.iter().any(|error| error.starts_with(wanted)), "missing {wanted:?} in {errors:#?}");
    }
}

#[test]
fn a_pipeline_naming_a_missing_processor_says_what_is_defined() {
    let errors =
        errors_of("service: {pipelines: {logs: {receivers: [otlp], processors: [batch/fast], exporters: [file]}}}");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].starts_with("service.pipelines.logs.processors[0]: `batch/fast` is not defined under `processors:` (defined: batch, redaction, resourcedetection, spanmetrics, tail_sampling)"), "{errors:?}");
}

#[test]
fn overlay_merges_maps_replaces_lists_and_null_removes() {
    let mut base = serde_json::json!({"a": {"b": 1, "c": [1, 2]}, "d": 1});
    merge(&mut base, serde_json::json!({"a": {"c": [3], "e": null}, "d": null}));
    assert_eq!(base, serde_json::json!({"a": {"b": 1, "c": [3], "e": null}}));
}

#[test]
fn batch_max_smaller_than_size_is_refused_with_the_fix() {
    let errors = errors_of("processors: {batch: {send_batch_size: 100, send_batch_max_size: 10}}");
    assert_eq!(
        errors,
        vec![
            "processors.batch.send_batch_max_size: 10 is smaller than send_batch_size (100); set it to 0 or at least 100"
        ]
    );
}

#[test]
fn query_limits_default_to_prometheus_s_and_refuse_zero_and_bad_durations() {
    let config = load(Profile::Default, None, &EnvVars::default()).unwrap();
    assert_eq!(config.api.limits, stella_query::Limits::DEFAULT);
    assert_eq!(config.api.limits.max_samples, 50_000_000);
    let mut value = parse_yaml(Profile::Default.yaml(), "profile default").unwrap();
    merge(&mut value, parse_yaml("api: {limits: {max_spans: 1000, timeout: 30s}}", "test").unwrap());
    let limits = Config::from_value(&value).unwrap().api.limits;
    assert_eq!((limits.max_spans, limits.timeout), (1000, std::time::Duration::from_secs(30)));
    assert_eq!((limits.max_samples, limits.max_lines), (50_000_000, 5_000_000), "absent keys keep their defaults");
    let errors = errors_of("api: {limits: {max_lines: 0}}");
    assert_eq!(errors, vec!["api.limits.max_lines: must be at least 1; the default is 5000000"]);
    let errors = errors_of("api: {limits: {timeout: soon}}");
    assert!(errors[0].starts_with("api.limits.timeout: invalid duration \"soon\""), "{errors:?}");
    let errors = errors_of("api: {limits: {max_samples: -1}}");
    assert!(errors[0].starts_with("api.limits.max_samples: invalid value"), "{errors:?}");
}

#[test]
fn a_missing_host_gets_both_fixes() {
    let errors = errors_of("api: {endpoint: \":4319\"}");
    assert!(
        errors[0].contains("write 127.0.0.1:4319 for this machine only or 0.0.0.0:4319 for every interface"),
        "{errors:?}"
    );
}

#[test]
fn an_exporter_outside_the_allow_list_names_the_key_and_the_rule_to_add() {
    let exporter = "exporters: {otlphttp: {endpoint: \"https://collector.example.com:4318\"}}\n";
    let errors = errors_of(exporter);
    assert_eq!(
        errors,
        vec![
            "exporters.otlphttp.endpoint: https://collector.example.com:4318 is not allowed by egress.allow; add `- https://collector.example.com:4318` under egress.allow"
        ]
    );
    assert!(errors_of(&format!("{exporter}egress: {{allow: [\"https://collector.example.com:4318\"]}}\n")).is_empty());
    assert!(errors_of(&format!("{exporter}egress: {{sealed: true}}\n")).is_empty(), "sealed mode wins over validation");
    assert!(
        errors_of("exporters: {otlp: {endpoint: \"http://127.0.0.1:4317\"}}\n").is_empty(),
        "loopback needs no rule"
    );
    let bad_rule = errors_of("egress: {allow: [\"https://:1\"]}\n");
    assert!(bad_rule[0].starts_with("egress.allow[0]: \"https://:1\""), "{bad_rule:?}");
}

#[test]
fn redaction_profiles_resolve_from_files_built_ins_or_inline_and_errors_name_the_key() {
    let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
    let profiles = dir.path().join("redaction-profiles");
    std::fs::create_dir_all(&profiles).unwrap_or_else(|error| panic!("{error}"));
    std::fs::write(profiles.join("site.yaml"), "allowed_keys: [app.*]\ndetectors: [email]\n")
        .unwrap_or_else(|error| panic!("{error}"));
    std::fs::write(profiles.join("broken.yaml"), "detectors: [ssn]\n").unwrap_or_else(|error| panic!("{error}"));
    let load = |processor: &str| {
        let mut value = parse_yaml(Profile::Default.yaml(), "default").unwrap_or_else(|error| panic!("{error}"));
        merge(&mut value, parse_yaml(&format!("processors: {{redaction: {processor}}}"), "test").unwrap_or_default());
        Config::from_value_at(&value, dir.path(), &EnvVars::default())
    };
    let settings =
        |config: Result<Config, ConfigErrors>| match config.map(|config| config.processors.get("redaction").cloned()) {
            Ok(Some(ProcessorConfig::Redaction(settings))) => settings,
            other => panic!("{other:?}"),
        };
    let site = settings(load("{profile: site}"));
    assert_eq!((site.profile.as_str(), site.policy.allowed_keys.clone()), ("site", vec!["app.*".to_string()]));
    assert_eq!(settings(load("{profile: strict}")).policy.summary, stella_pipeline::redaction::Summary::Debug);
    let inline = settings(load("{profile: mine, policy: {allow_all_keys: true}}"));
    assert!(inline.policy.allow_all_keys);
    for (processor, wanted) in [
        ("{profile: nowhere}", "processors.redaction.profile: no profile \"nowhere\""),
        ("{profile: broken}", "processors.redaction.profile: "),
        ("{profile: ../etc}", "processors.redaction.profile: \"../etc\" is not a profile name"),
        (
            "{policy: {blocked_values: ['(']}}",
            "processors.redaction: redaction profile default: blocked_values pattern",
        ),
        ("{policy: {summary: loud}}", "processors.redaction.policy.summary: unknown variant"),
        (
            "{policy: {hash_function: hmac-sha256}}",
            "processors.redaction.hash_key_env: hash_function: hmac-sha256 needs a key",
        ),
        (
            "{policy: {hash_function: hmac-sha256}, hash_key_env: STELLA_TEST_UNSET_KEY}",
            "processors.redaction.hash_key_env: the environment variable STELLA_TEST_UNSET_KEY is not set",
        ),
    ] {
        let errors = load(processor).err().map(|errors| errors.to_string()).unwrap_or_default();
        assert!(errors.contains(wanted), "{processor}: {errors}");
    }
}

#[test]
fn tail_sampling_is_checked_where_it_is_defined_and_where_it_is_used() {
    let errors = errors_of(
        "processors:\n  tail_sampling: {policies: [{name: p, type: probabilistic, probabilistic: {sampling_percentage: 150}}]}\n",
    );
    assert!(
        errors
            .iter()
            .any(|error| error.starts_with("processors.tail_sampling.policies[0].probabilistic.sampling_percentage")),
        "{errors:?}"
    );
    let errors = errors_of(
        "service: {pipelines: {logs: {receivers: [otlp], processors: [tail_sampling], exporters: [file]}, \
         traces: {receivers: [otlp], processors: [batch, tail_sampling, redaction], exporters: [file]}}}",
    );
    for wanted in [
        "service.pipelines.logs.processors[0]: tail_sampling samples traces",
        "service.pipelines.traces.processors[1]: tail_sampling must come before batch",
        "service.pipelines.traces.processors[2]: stateless processors go before tail_sampling",
    ] {
        assert!(errors.iter().any(|error| error.starts_with(wanted)), "missing {wanted:?} in {errors:#?}");
    }
}

#[test]
fn push_exporters_are_egress_checked_and_take_their_signal_only() {
    let exporter = "exporters: {prometheusremotewrite: {endpoint: \"https://mimir.example.com/api/v1/push\"}}\n";
    assert_eq!(
        errors_of(exporter),
        vec![
            "exporters.prometheusremotewrite.endpoint: https://mimir.example.com:443 is not allowed by egress.allow; add `- https://mimir.example.com:443` under egress.allow"
        ]
    );
    let in_traces = "exporters: {prometheusremotewrite: {endpoint: \"http://127.0.0.1:9090/api/v1/write\"}}\nservice: {pipelines: {traces: {receivers: [otlp], processors: [], exporters: [prometheusremotewrite]}}}\n";
    assert_eq!(
        errors_of(in_traces),
        vec![
            "service.pipelines.traces.exporters[0]: exporter prometheusremotewrite takes metrics only; move it to a metrics pipeline"
        ]
    );
    let loki_in_metrics = "exporters: {loki: {endpoint: \"http://127.0.0.1:3100/loki/api/v1/push\"}}\nservice: {pipelines: {metrics: {receivers: [otlp], processors: [], exporters: [loki]}}}\n";
    assert_eq!(
        errors_of(loki_in_metrics),
        vec!["service.pipelines.metrics.exporters[0]: exporter loki takes logs only; move it to a logs pipeline"]
    );
    let balancer = "exporters: {loadbalancing: {protocol: {otlp: {}}, resolver: {static: {hostnames: [\"sampler.example.com:4317\"]}}}}\nservice: {pipelines: {metrics: {receivers: [otlp], processors: [], exporters: [loadbalancing]}}}\n";
    assert_eq!(
        errors_of(balancer),
        vec![
            "exporters.loadbalancing.resolver.static.hostnames[0]: http://sampler.example.com:4317 is not allowed by egress.allow; add `- http://sampler.example.com:4317` under egress.allow",
            "service.pipelines.metrics.exporters[0]: exporter loadbalancing routes traces and logs by trace id; metrics need no routing, send them with otlp"
        ]
    );
    let typo = "exporters: {prometheusremotewrite: {endpoint: \"http://127.0.0.1:9090/api/v1/write\", namespce: x}}\n";
    assert!(
        errors_of(typo)[0].starts_with("exporters.prometheusremotewrite.namespce: unknown field `namespce`"),
        "{:?}",
        errors_of(typo)
    );
}

#[test]
fn dora_settings_default_to_the_seed_and_bad_values_name_their_key() {
    let mut value = parse_yaml(Profile::Default.yaml(), "profile default").unwrap();
    merge(
        &mut value,
        parse_yaml("dora: {production_environments: [Prod, live], slo: {mttr_slo_hours: 2}}\n", "test").unwrap(),
    );
    let config = Config::from_value(&value).unwrap();
    assert_eq!(config.dora.production_environments, ["prod", "live"]);
    assert_eq!((config.dora.slo.mttr_slo_hours, config.dora.slo.lead_time_slo_hours), (2.0, 24.0));
    assert_eq!(config.dora.metrics_window, std::time::Duration::from_secs(30 * 86_400));
    let errors = errors_of(
        "dora: {severities: [p1, unknown], slo: {lead_time_slo_hours: 0}, classification: {name: x, deployment_frequency_per_day: [0.1, 1, 7], lead_time_hours: [1, 2, 3], change_failure_rate_percent: [1, 2, 3], mttr_hours: [1, 2, 3]}}\n",
    );
    let keys: Vec<&str> = errors.iter().filter_map(|error| error.split(':').next()).collect();
    assert_eq!(
        keys,
        ["dora.severities", "dora.slo.lead_time_slo_hours", "dora.classification.deployment_frequency_per_day"],
        "{errors:?}"
    );
}

#[test]
fn federation_settings_check_aliases_privacy_and_the_noise_key() {
    let errors = errors_of("federation: {aliases: {acme: acme}, k_anonymity: 0, epsilon: 0.5}\n");
    let keys: Vec<&str> = errors.iter().filter_map(|error| error.split(':').next()).collect();
    assert_eq!(keys, ["federation.k_anonymity", "federation.noise_key_env", "federation.aliases.acme"], "{errors:?}");
    let with_key = "federation: {aliases: {acme: site-1}, epsilon: 0.5, noise_key_env: STELLA_TEST_UNSET_NOISE_KEY}\n";
    let unset = errors_of(with_key);
    assert!(
        unset.len() == 1
            && unset[0].starts_with(
                "federation.noise_key_env: the environment variable STELLA_TEST_UNSET_NOISE_KEY is not set"
            ),
        "{unset:?}"
    );
    let mut value = parse_yaml(Profile::Default.yaml(), "profile default").unwrap();
    merge(&mut value, parse_yaml(with_key, "test").unwrap());
    let env_vars: EnvVars = [("STELLA_TEST_UNSET_NOISE_KEY", "noise")].into_iter().collect();
    let config = Config::from_value_at(&value, std::path::Path::new("."), &env_vars).unwrap();
    assert_eq!(config.federation.noise_key.as_ref().map(Secret::expose), Some("noise"));
}
