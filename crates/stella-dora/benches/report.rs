#![allow(clippy::unwrap_used)] // a benchmark: failing loudly is the point
//! The report over a large tenant (issue target: 1 million deployments and 100k incidents in under 2 s on
//! one core, under 500 MB): 200 services across 3 environments over a year, 2 commits per deployment, a
//! mix of outcomes, rollbacks and hotfixes; incidents linked explicitly, by inference or not at all.
//!
//! `cargo bench -p stella-dora --bench report`; peak memory: `/usr/bin/time -v` on the bench binary with
//! `--bench report --profile-time 5`.
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use jiff::{SignedDuration, Timestamp};
use stella_dora::{Commit, Deployment, DeploymentKind, DoraSettings, Incident, Outcome, Window, report};

const DEPLOYMENTS: usize = 1_000_000;
const INCIDENTS: usize = 100_000;

/// A deterministic xorshift generator: the same data on every run.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

fn events() -> (Vec<Deployment>, Vec<Incident>) {
    let mut random = Random(0x9e37_79b9_7f4a_7c15);
    let start: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
    let year = 365 * 86_400;
    // Names repeat across events and are shared, as `stella_dora::intern` shares them on load.
    let environments: Vec<Arc<str>> = ["production", "staging", "prod"].into_iter().map(Arc::from).collect();
    let services: Vec<Arc<str>> = (0..200).map(|n| Arc::from(format!("service-{n}"))).collect();
    let pipelines: Vec<Arc<str>> = (0..20).map(|n| Arc::from(format!("pipeline-{n}"))).collect();
    let severities: Vec<Arc<str>> = (1..=4).map(|n| Arc::from(format!("sev{n}"))).collect();
    let deployments: Vec<Deployment> = (0..DEPLOYMENTS)
        .map(|n| {
            let finished = start + SignedDuration::from_secs(random.below(year) as i64);
            let commits = (0..2)
                .map(|c| Commit {
                    id: format!("{:016x}", random.next() ^ c),
                    time: finished - SignedDuration::from_secs(random.below(7 * 86_400) as i64 + 1),
                })
                .collect();
            let roll = random.below(100);
            Deployment {
                id: format!("deploy-{n:07}"),
                environment: Arc::clone(&environments[random.below(3) as usize]),
                service: Arc::clone(&services[random.below(200) as usize]),
                pipeline: Arc::clone(&pipelines[random.below(20) as usize]),
                commits,
                started: finished - SignedDuration::from_mins(10),
                finished,
                outcome: match roll {
                    0..=4 => Outcome::Failed,
                    5..=6 => Outcome::RolledBack,
                    _ => Outcome::Succeeded,
                },
                kind: match roll {
                    90..=92 => DeploymentKind::Rollback,
                    93..=95 => DeploymentKind::Hotfix,
                    _ => DeploymentKind::Normal,
                },
                incident_ids: Vec::new(),
            }
        })
        .collect();
    let incidents = (0..INCIDENTS)
        .map(|n| {
            let started = start + SignedDuration::from_secs(random.below(year) as i64);
            Incident {
                id: format!("incident-{n:06}"),
                environment: Arc::clone(&environments[0]),
                service: Arc::clone(&services[random.below(200) as usize]),
                severity: Arc::clone(&severities[random.below(4) as usize]),
                started,
                acknowledged: Some(started + SignedDuration::from_mins(5)),
                resolved: (random.below(10) > 0).then(|| started + SignedDuration::from_mins(90)),
                deployment_id: (random.below(4) == 0)
                    .then(|| format!("deploy-{:07}", random.below(DEPLOYMENTS as u64))),
            }
        })
        .collect();
    (deployments, incidents)
}

fn bench(c: &mut Criterion) {
    let (deployments, incidents) = events();
    let settings = DoraSettings::default();
    let window = Window::parse("2026-01-01", "2027-01-01", Some("Europe/Paris"), None).unwrap();
    let mut group = c.benchmark_group("dora_report");
    group.sample_size(10);
    group.bench_function("1M deployments, 100k incidents, a year in Europe/Paris", |b| {
        b.iter(|| report("acme", &deployments, &incidents, &settings, &window, None))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
