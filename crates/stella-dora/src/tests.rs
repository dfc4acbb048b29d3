use serde_json::json;

use super::*;

fn settings() -> DoraSettings {
    DoraSettings::default()
}

fn deployment(value: serde_json::Value) -> Deployment {
    parse_deployment(&value).unwrap_or_else(|error| panic!("{error}"))
}

fn incident(value: serde_json::Value) -> Incident {
    parse_incident(&value, &settings().severities).unwrap_or_else(|error| panic!("{error}"))
}

/// A production deployment of `service` finished at `finished` (started an hour before).
fn deploy(id: &str, service: &str, finished: &str, outcome: &str, kind: &str) -> Deployment {
    let finished_at: jiff::Timestamp = finished.parse().unwrap_or_else(|error| panic!("{error}"));
    let started = finished_at - jiff::SignedDuration::from_hours(1);
    deployment(json!({
        "id": id, "environment": "production", "service": service, "pipeline": "CI / Main",
        "started": started.to_string(), "finished": finished, "outcome": outcome, "kind": kind,
    }))
}

fn window(from: &str, to: &str) -> Window {
    Window::parse(from, to, None, None).unwrap_or_else(|error| panic!("{error}"))
}

fn run(deployments: &[Deployment], incidents: &[Incident], window: &Window) -> Report {
    report("acme", deployments, incidents, &settings(), window, None)
}

#[test]
fn an_empty_window_is_insufficient_data_never_low() {
    let report = run(&[], &[], &window("2026-11-01", "2026-12-01"));
    assert_eq!(report.overall_tier, Tier::InsufficientData);
    for metric in [
        &report.metrics.deployment_frequency,
        &report.metrics.lead_time,
        &report.metrics.change_failure_rate,
        &report.metrics.mttr,
    ] {
        assert_eq!(
            (metric.value, metric.tier, metric.slo),
            (None, Tier::InsufficientData, SloStatus::InsufficientData)
        );
    }
    assert_eq!(report.daily.len(), 30);
    assert!(report.daily.iter().all(|day| day.deployments == 0 && day.change_failure_rate_percent.is_none()));
    assert!(report.breaches().is_empty());
}

#[test]
fn exact_thresholds_meet_elite_only_where_the_boundary_is_inclusive() {
    // One successful deployment a day for 2 days: 1.0/day is Elite and meets the SLO.
    let mut deployments: Vec<Deployment> = (1..=2)
        .map(|day| {
            let mut d = deploy(&format!("d{day}"), "cart", &format!("2026-11-0{day}T12:00:00Z"), "succeeded", "normal");
            d.commits = vec![Commit { id: format!("c{day}"), time: d.finished - jiff::SignedDuration::from_hours(24) }];
            d
        })
        .collect();
    let report = run(&deployments, &[], &window("2026-11-01", "2026-11-03"));
    assert_eq!(report.metrics.deployment_frequency.value, Some(1.0));
    assert_eq!(
        (report.metrics.deployment_frequency.tier, report.metrics.deployment_frequency.slo),
        (Tier::Elite, SloStatus::Met)
    );
    // Lead time exactly 24h: not below 24h, so High and breached.
    assert_eq!(report.metrics.lead_time.value, Some(24.0));
    assert_eq!((report.metrics.lead_time.tier, report.metrics.lead_time.slo), (Tier::High, SloStatus::Breached));
    // CFR exactly 15%: 3 failed of 20.
    deployments = (0..20)
        .map(|n| {
            deploy(
                &format!("x{n:02}"),
                &format!("svc{n}"),
                "2026-11-01T12:00:00Z",
                if n < 3 { "failed" } else { "succeeded" },
                "normal",
            )
        })
        .collect();
    let report = run(&deployments, &[], &window("2026-11-01", "2026-11-02"));
    assert_eq!(report.metrics.change_failure_rate.value, Some(15.0));
    assert_eq!(
        (report.metrics.change_failure_rate.tier, report.metrics.change_failure_rate.slo),
        (Tier::High, SloStatus::Breached)
    );
    // MTTR exactly 1h.
    let deployments = [deploy("d1", "cart", "2026-11-01T10:00:00Z", "succeeded", "normal")];
    let incidents = [incident(
        json!({"id": "i1", "environment": "production", "service": "cart", "severity": "sev2", "started": "2026-11-01T11:00:00Z", "resolved": "2026-11-01T12:00:00Z"}),
    )];
    let report = run(&deployments, &incidents, &window("2026-11-01", "2026-11-02"));
    assert_eq!(report.metrics.mttr.value, Some(1.0));
    assert_eq!((report.metrics.mttr.tier, report.metrics.mttr.slo), (Tier::High, SloStatus::Breached));
    assert!(report.breaches().contains(&"mttr"));
}

#[test]
fn incidents_link_explicitly_then_by_service_within_the_window_and_count_a_deployment_once() {
    let deployments = [
        deploy("a", "cart", "2026-11-01T08:00:00Z", "succeeded", "normal"),
        deploy("b", "cart", "2026-11-01T08:00:00Z", "succeeded", "normal"),
        deploy("c", "search", "2026-11-01T09:00:00Z", "succeeded", "normal"),
        deploy("d", "search", "2026-11-03T09:00:00Z", "succeeded", "normal"),
    ];
    let base = |id: &str, service: &str, started: &str| json!({"id": id, "environment": "production", "service": service, "severity": "SEV1", "started": started});
    let mut explicit = base("i-explicit", "cart", "2026-11-03T10:00:00Z");
    explicit["deployment_id"] = json!("d");
    let incidents = [
        incident(base("i1", "cart", "2026-11-01T09:00:00Z")),
        incident(base("i2", "cart", "2026-11-01T10:00:00Z")),
        incident(explicit),
        // Before any deployment of its service, and more than link_window after search's first.
        incident(base("early", "billing", "2026-11-01T00:00:00Z")),
        incident(base("late", "search", "2026-11-02T10:00:01Z")),
    ];
    let report = run(&deployments, &incidents, &window("2026-11-01", "2026-11-04"));
    // a and b tie at 08:00: the smaller id, a, gets both cart incidents, counted once; d explicitly.
    assert_eq!((report.counts.deployments, report.counts.failed), (4, 2));
    assert_eq!((report.counts.linked_incidents, report.counts.unlinked_incidents), (3, 2));
    assert_eq!(report.metrics.change_failure_rate.value, Some(50.0));
    let sev1 = &report.severities[0];
    assert_eq!((sev1.severity.as_str(), sev1.incidents), ("sev1", 5), "unlinked incidents stay in the severity table");
}

#[test]
fn rollbacks_and_hotfixes_fail_the_deployment_before_them_not_themselves() {
    let deployments = [
        deploy("1", "cart", "2026-11-01T08:00:00Z", "succeeded", "normal"),
        deploy("2", "cart", "2026-11-01T09:00:00Z", "succeeded", "rollback"),
        deploy("3", "cart", "2026-11-01T10:00:00Z", "succeeded", "normal"),
        deploy("4", "cart", "2026-11-01T11:00:00Z", "succeeded", "hotfix"),
        deploy("5", "search", "2026-11-01T12:00:00Z", "rolled_back", "normal"),
    ];
    let report = run(&deployments, &[], &window("2026-11-01", "2026-11-02"));
    assert_eq!((report.counts.deployments, report.counts.failed), (5, 3), "1, 3 (followed) and 5 (outcome)");
    assert_eq!(report.counts.successful, 4);
    assert_eq!(report.metrics.change_failure_rate.value, Some(60.0));
}

#[test]
fn lead_time_counts_each_commit_at_its_first_successful_deployment_and_drops_non_positive_samples() {
    let commit =
        |id: &str, at: &str| Commit { id: id.into(), time: at.parse().unwrap_or_else(|error| panic!("{error}")) };
    let mut first = deploy("1", "cart", "2026-11-01T12:00:00Z", "failed", "normal");
    first.commits = vec![commit("a", "2026-11-01T00:00:00Z")];
    let mut second = deploy("2", "cart", "2026-11-01T14:00:00Z", "succeeded", "normal");
    second.commits = vec![
        commit("a", "2026-11-01T00:00:00Z"),
        commit("b", "2026-11-01T13:00:00Z"),
        commit("future", "2026-11-01T15:00:00Z"),
    ];
    let mut third = deploy("3", "cart", "2026-11-01T20:00:00Z", "succeeded", "normal");
    third.commits = vec![commit("a", "2026-11-01T00:00:00Z"), commit("c", "2026-11-01T16:00:00Z")];
    let report = run(&[first, second, third], &[], &window("2026-11-01", "2026-11-02"));
    // a: 14h at deployment 2 (1 failed); b: 1h; c: 4h; "future" is negative and dropped; a not again at 3.
    assert_eq!(report.counts.lead_time_samples, 3);
    assert_eq!(report.counts.lead_time_dropped, 1);
    assert_eq!(report.metrics.lead_time.value, Some(4.0));
    assert_eq!(report.metrics.lead_time.details.get("p90_hours"), Some(&Some(14.0)));
}

#[test]
fn acknowledgement_and_resolution_are_known_only_as_of_and_bad_orders_are_refused() {
    let deployments = [deploy("d", "cart", "2026-11-01T08:00:00Z", "succeeded", "normal")];
    let incidents = [
        incident(
            json!({"id": "open", "environment": "production", "service": "cart", "severity": "sev3", "started": "2026-11-01T09:00:00Z"}),
        ),
        incident(
            json!({"id": "later", "environment": "production", "service": "cart", "severity": "sev3", "started": "2026-11-01T09:00:00Z",
            "acknowledged": "2026-11-01T09:30:00Z", "resolved": "2026-11-05T00:00:00Z"}),
        ),
    ];
    let window = Window::parse("2026-11-01", "2026-11-02", None, Some("2026-11-02T00:00:00Z"))
        .unwrap_or_else(|error| panic!("{error}"));
    let report = run(&deployments, &incidents, &window);
    let sev3 = &report.severities[2];
    assert_eq!((sev3.incidents, sev3.acknowledged, sev3.resolved), (2, 1, 0), "resolved after as_of is still open");
    assert_eq!(report.metrics.mtta_hours, Some(0.5));
    assert_eq!(report.metrics.mttr.value, None);
    for (field, body) in [
        (
            "acknowledged",
            json!({"id": "x", "environment": "p", "service": "s", "started": "2026-11-01T09:00:00Z", "acknowledged": "2026-11-01T08:00:00Z"}),
        ),
        (
            "resolved",
            json!({"id": "x", "environment": "p", "service": "s", "started": "2026-11-01T09:00:00Z", "resolved": "2026-11-01T08:00:00Z"}),
        ),
        ("id", json!({"environment": "p", "service": "s", "started": "2026-11-01T09:00:00Z"})),
        ("started", json!({"id": "x", "environment": "p", "service": "s", "started": "yesterday"})),
    ] {
        let error =
            parse_incident(&body, &settings().severities).err().unwrap_or_else(|| panic!("{body} was accepted"));
        assert_eq!(error.field, field, "{error}");
    }
}

#[test]
fn days_are_local_across_dst_month_and_year_ends() {
    // 23:30 in Los Angeles is the next day in UTC: the local date counts.
    let deployments = [deploy("d", "cart", "2026-11-02T07:30:00Z", "succeeded", "normal")];
    let la = Window::parse("2026-11-01", "2026-11-03", Some("America/Los_Angeles"), None)
        .unwrap_or_else(|error| panic!("{error}"));
    let report = run(&deployments, &[], &la);
    assert_eq!(
        report.daily.iter().map(|day| (day.date.as_str(), day.deployments)).collect::<Vec<_>>(),
        vec![("2026-11-01", 1), ("2026-11-02", 0)]
    );
    assert_eq!(report.window.calendar_days, 2.0, "1 Nov 2026 is a 25-hour day in Los Angeles and still one day");
    // A month across the spring change in Paris is 31 days; the change day is one 23-hour day.
    let paris =
        Window::parse("2026-03-01", "2026-04-01", Some("Europe/Paris"), None).unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(paris.calendar_days(), 31.0);
    let change =
        paris.days().into_iter().find(|day| day.date.to_string() == "2026-03-29").map(|day| day.length_seconds);
    assert_eq!(change, Some(23 * 3600));
    // Across the year end.
    let year = run(&[], &[], &window("2026-12-31", "2027-01-02"));
    assert_eq!(year.daily.iter().map(|day| day.date.as_str()).collect::<Vec<_>>(), vec!["2026-12-31", "2027-01-01"]);
    // A hostile window is refused, not walked day by day.
    let error = Window::parse("0001-01-01", "9999-01-01", None, None).err().map(|error| error.parameter);
    assert_eq!(error, Some("from"));
    // Half a day counts as half.
    assert_eq!(window("2026-11-01T00:00:00Z", "2026-11-01T12:00:00Z").calendar_days(), 0.5);
}

#[test]
fn pipelines_add_up_to_the_totals_and_appear_without_deployments_and_severities_default_to_unknown() {
    let mut old = deploy("old", "cart", "2026-10-01T08:00:00Z", "succeeded", "normal");
    old.pipeline = normalize_pipeline("  Legacy__Jenkins!! ").into();
    let deployments = [
        old,
        deploy("1", "cart", "2026-11-01T08:00:00Z", "failed", "normal"),
        deploy("2", "cart", "2026-11-01T09:00:00Z", "succeeded", "normal"),
    ];
    let incidents = [incident(
        json!({"id": "i", "environment": "staging", "service": "cart", "severity": "P0", "started": "2026-11-01T10:00:00Z"}),
    )];
    let report = run(&deployments, &incidents, &window("2026-11-01", "2026-11-02"));
    let rows: Vec<(&str, u64, u64, Option<f64>)> = report
        .pipelines
        .iter()
        .map(|row| (row.pipeline.as_str(), row.deployments, row.failed, row.change_failure_rate_percent))
        .collect();
    assert_eq!(rows, vec![("ci-main", 2, 1, Some(50.0)), ("legacy-jenkins", 0, 0, None)]);
    assert_eq!(report.pipelines.iter().map(|row| row.deployments).sum::<u64>(), report.counts.deployments);
    assert_eq!(report.severities.last().map(|row| (row.severity.as_str(), row.incidents)), Some(("unknown", 1)));
    assert_eq!(normalize_pipeline("   "), "unknown");
}

#[test]
fn the_same_inputs_give_the_same_report() {
    let deployments = [
        deploy("1", "cart", "2026-11-01T08:00:00Z", "succeeded", "normal"),
        deploy("2", "cart", "2026-11-01T09:00:00Z", "succeeded", "hotfix"),
    ];
    let w = window("2026-11-01", "2026-11-02");
    let first = serde_json::to_string(&run(&deployments, &[], &w)).unwrap_or_default();
    let mut reversed = deployments.to_vec();
    reversed.reverse();
    assert_eq!(
        first,
        serde_json::to_string(&run(&reversed, &[], &w)).unwrap_or_default(),
        "input order does not matter"
    );
    assert!(render::html(&run(&deployments, &[], &w)).contains("Overall tier"));
    assert!(render::csv(&run(&deployments, &[], &w)).starts_with("date,deployments"));
}

proptest::proptest! {
    #[test]
    fn per_pipeline_and_per_day_counts_add_up_and_rates_stay_within_0_and_100(
        events in proptest::collection::vec((0u8..4, 0u8..3, 0u32..(7 * 24 * 60), 0u8..3, 0u8..3), 0..60)
    ) {
        let outcomes = ["succeeded", "failed", "rolled_back"];
        let kinds = ["normal", "rollback", "hotfix"];
        let start: jiff::Timestamp = "2026-11-01T00:00:00Z".parse().unwrap_or_else(|error| panic!("{error}"));
        let deployments: Vec<Deployment> = events.iter().enumerate().map(|(n, (pipeline, service, minute, outcome, kind))| {
            let finished = start + jiff::SignedDuration::from_mins(i64::from(*minute));
            let mut d = deploy(&format!("d{n}"), &format!("s{service}"), &finished.to_string(), outcomes[*outcome as usize], kinds[*kind as usize]);
            d.pipeline = format!("p{pipeline}").into();
            d
        }).collect();
        let report = run(&deployments, &[], &Window::parse("2026-11-01", "2026-11-08", Some("Europe/Paris"), None).unwrap_or_else(|error| panic!("{error}")));
        proptest::prop_assert_eq!(report.pipelines.iter().map(|row| row.deployments).sum::<u64>(), report.counts.deployments);
        proptest::prop_assert_eq!(report.pipelines.iter().map(|row| row.failed).sum::<u64>(), report.counts.failed);
        proptest::prop_assert_eq!(report.daily.iter().map(|day| day.deployments).sum::<u64>(), report.counts.deployments);
        if let Some(rate) = report.metrics.change_failure_rate.value {
            proptest::prop_assert!((0.0..=100.0).contains(&rate));
        }
    }
}
