//! The report's computation; see the crate docs and [`crate::DEFINITIONS`] for what each figure means.
use std::collections::BTreeMap;

use rustc_hash::{FxHashMap, FxHashSet};

use jiff::Timestamp;

use crate::classify::{Tier, Values, classify};
use crate::event::{Deployment, DeploymentKind, Incident, Outcome};
use crate::report::{
    Counts, DEFINITIONS, DailyCohort, MetricSummary, Metrics, PipelineRow, Report, SeverityRow, SloStatus,
    WindowSummary,
};
use crate::settings::DoraSettings;
use crate::stats::{mean, median, p90};
use crate::window::Window;

/// What one local day (or one severity) gathers before its row is built.
#[derive(Debug, Clone, Default)]
struct Tally {
    deployments: u64,
    successful: u64,
    failed: u64,
    leads: Vec<f64>,
    incidents: u64,
    acknowledged: u64,
    resolved: u64,
    acknowledgements: Vec<f64>,
    recoveries: Vec<f64>,
}

/// One production service's events.
type ServiceEvents = (Vec<Deployment>, Vec<Incident>);

/// Nanoseconds per hour.
const NANOS_PER_HOUR: f64 = 3_600_000_000_000.0;

/// An incident as known at `as_of`.
struct Known<'a> {
    incident: &'a Incident,
    acknowledged: Option<Timestamp>,
    resolved: Option<Timestamp>,
    /// The production deployment it is linked to (index into the sorted production deployments).
    link: Option<usize>,
}

/// Hours from `from` to `to` (negative when `to` is earlier): every duration the report and the
/// metrics give.
pub fn hours(from: Timestamp, to: Timestamp) -> f64 {
    (to.as_nanosecond() - from.as_nanosecond()) as f64 / NANOS_PER_HOUR
}

/// Rounded for output (micro-units), so figures read well and stay stable.
fn round(value: f64) -> f64 {
    (value * 1e6).round() / 1e6
}

fn rounded(value: Option<f64>) -> Option<f64> {
    value.map(round)
}

/// The report of `tenant`'s events over `window`. With `environment`, production is that environment
/// only.
pub fn report(
    tenant: &str,
    deployments: &[Deployment],
    incidents: &[Incident],
    settings: &DoraSettings,
    window: &Window,
    environment: Option<&str>,
) -> Report {
    let as_of = window.as_of;
    let production_environments: Vec<String> = match environment {
        Some(environment) => vec![environment.to_lowercase()],
        None => settings.production_environments.clone(),
    };
    let is_production = |name: &str| production_environments.iter().any(|production| production == name);

    // Production deployments known as of `as_of`, by finish time then id.
    // Sorted on compact keys (read once, in memory order) rather than through the pointers; the finish
    // times and kinds the passes below read are kept in arrays of that order.
    let mut keyed: Vec<(Timestamp, &str, &Deployment)> = deployments
        .iter()
        .filter(|deployment| deployment.finished <= as_of && is_production(&deployment.environment))
        .map(|deployment| (deployment.finished, deployment.id.as_str(), deployment))
        .collect();
    keyed.sort_unstable_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    let production: Vec<&Deployment> = keyed.iter().map(|(_, _, deployment)| *deployment).collect();
    let finished: Vec<Timestamp> = keyed.iter().map(|(at, _, _)| *at).collect();
    let kinds: Vec<DeploymentKind> = production.iter().map(|deployment| deployment.kind).collect();
    drop(keyed);
    // Positions of the deployments incidents name explicitly (only those: the others need no lookup).
    let named_ids: FxHashSet<&str> =
        incidents.iter().filter_map(|incident| incident.deployment_id.as_deref()).collect();
    let position: FxHashMap<&str, usize> = production
        .iter()
        .enumerate()
        .filter(|(_, deployment)| named_ids.contains(deployment.id.as_str()))
        .map(|(index, deployment)| (deployment.id.as_str(), index))
        .collect();
    let mut by_service: FxHashMap<(&str, &str), Vec<usize>> = FxHashMap::default();
    for (index, deployment) in production.iter().enumerate() {
        by_service.entry((&*deployment.service, &*deployment.environment)).or_default().push(index);
    }
    // Deployments naming incidents: the smallest id wins.
    let mut named: FxHashMap<&str, usize> = FxHashMap::default();
    for (index, deployment) in production.iter().enumerate() {
        for incident in &deployment.incident_ids {
            let entry = named.entry(incident.as_str()).or_insert(index);
            if production[*entry].id > deployment.id {
                *entry = index;
            }
        }
    }

    // Incidents known as of `as_of`, linked.
    let link_window = i128::try_from(settings.link_window.as_nanos()).unwrap_or(i128::MAX);
    let known: Vec<Known<'_>> = incidents
        .iter()
        .filter(|incident| incident.started <= as_of)
        .map(|incident| {
            let explicit = incident
                .deployment_id
                .as_deref()
                .and_then(|id| position.get(id).copied())
                .or_else(|| named.get(incident.id.as_str()).copied());
            let inferred = || {
                let candidates = by_service.get(&(&*incident.service, &*incident.environment))?;
                let before = candidates.partition_point(|index| finished[*index] <= incident.started);
                let latest = finished[*candidates.get(before.checked_sub(1)?)?];
                if incident.started.as_nanosecond() - latest.as_nanosecond() > link_window {
                    return None;
                }
                // Several finished at that instant: the smaller id (the first of them in the sorted order).
                let mut first = before - 1;
                while first > 0 && finished[candidates[first - 1]] == latest {
                    first -= 1;
                }
                Some(candidates[first])
            };
            Known {
                incident,
                acknowledged: incident.acknowledged.filter(|at| *at <= as_of),
                resolved: incident.resolved.filter(|at| *at <= as_of),
                link: explicit.or_else(inferred),
            }
        })
        .collect();

    // Which production deployments failed.
    let mut failed: Vec<bool> = production
        .iter()
        .map(|deployment| matches!(deployment.outcome, Outcome::Failed | Outcome::RolledBack))
        .collect();
    for indices in by_service.values() {
        for pair in indices.windows(2) {
            if matches!(kinds[pair[1]], DeploymentKind::Rollback | DeploymentKind::Hotfix) {
                failed[pair[0]] = true;
            }
        }
    }
    for incident in &known {
        if let Some(index) = incident.link {
            failed[index] = true;
        }
    }

    // Lead-time samples: each commit at its first successful production deployment.
    let mut seen: FxHashSet<&str> = FxHashSet::default();
    // Which deployment each sample is of, and the sample (hours): two arrays, the second used as is.
    let (mut sample_of, mut leads): (Vec<u32>, Vec<f64>) = (Vec::new(), Vec::new());
    let mut dropped = 0u64;
    for (index, deployment) in production.iter().enumerate() {
        if deployment.outcome != Outcome::Succeeded {
            continue;
        }
        for commit in &deployment.commits {
            if !seen.insert(commit.id.as_str()) || !window.contains(deployment.finished) {
                continue;
            }
            let lead = hours(commit.time, deployment.finished);
            if lead > 0.0 {
                sample_of.push(u32::try_from(index).unwrap_or(u32::MAX));
                leads.push(lead);
            } else {
                dropped += 1;
            }
        }
    }
    drop(seen);

    // The window's deployments, per pipeline and per day.
    let in_window: Vec<usize> = (0..production.len()).filter(|index| window.contains(finished[*index])).collect();
    let mut counts = Counts { lead_time_samples: leads.len() as u64, lead_time_dropped: dropped, ..Counts::default() };
    // Pipelines by index (one lookup per deployment), named and sorted when the rows are built.
    let mut pipeline_index: FxHashMap<&str, usize> = FxHashMap::default();
    let pipeline_of: Vec<usize> = production
        .iter()
        .map(|deployment| {
            let next = pipeline_index.len();
            *pipeline_index.entry(&*deployment.pipeline).or_insert(next)
        })
        .collect();
    let mut pipeline_tallies: Vec<(u64, u64, Vec<f64>)> = vec![(0, 0, Vec::new()); pipeline_index.len()];
    let days = window.days();
    // The local day of an instant in the window: a binary search over the days' bounds (no time-zone
    // conversion per event).
    let mut daily: Vec<Tally> = vec![Tally::default(); days.len()];
    let day_of = |at: Timestamp| {
        let index = days.partition_point(|day| day.end <= at);
        days.get(index).filter(|day| day.start <= at).map(|_| index)
    };
    for index in &in_window {
        let deployment = production[*index];
        counts.deployments += 1;
        let succeeded = deployment.outcome == Outcome::Succeeded;
        counts.successful += u64::from(succeeded);
        counts.failed += u64::from(failed[*index]);
        let row = &mut pipeline_tallies[pipeline_of[*index]];
        row.0 += 1;
        row.1 += u64::from(failed[*index]);
        if let Some(day) = day_of(deployment.finished) {
            daily[day].deployments += 1;
            daily[day].successful += u64::from(succeeded);
            daily[day].failed += u64::from(failed[*index]);
        }
    }
    for (index, lead) in sample_of.iter().map(|index| *index as usize).zip(&leads) {
        pipeline_tallies[pipeline_of[index]].2.push(*lead);
        if let Some(day) = day_of(finished[index]) {
            daily[day].leads.push(*lead);
        }
    }
    drop(sample_of);

    // Incidents started in the window: severities, recovery, acknowledgement.
    let mut severities: Vec<(String, Tally)> = settings
        .severities
        .iter()
        .cloned()
        .chain(std::iter::once("unknown".to_string()))
        .map(|severity| (severity, Tally::default()))
        .collect();
    let (mut recoveries, mut acknowledgements) = (Vec::new(), Vec::new());
    for incident in known.iter().filter(|incident| window.contains(incident.incident.started)) {
        counts.incidents += 1;
        if incident.link.is_some() {
            counts.linked_incidents += 1;
        } else {
            counts.unlinked_incidents += 1;
        }
        let row =
            severities.iter().position(|row| *row.0 == *incident.incident.severity).unwrap_or(severities.len() - 1);
        let row = &mut severities[row].1;
        row.incidents += 1;
        let started = incident.incident.started;
        if let Some(acknowledged) = incident.acknowledged {
            row.acknowledged += 1;
            row.acknowledgements.push(hours(started, acknowledged));
            acknowledgements.push(hours(started, acknowledged));
        }
        if let Some(resolved) = incident.resolved {
            row.resolved += 1;
            if incident.link.is_some() {
                let recovery = hours(started, resolved);
                row.recoveries.push(recovery);
                recoveries.push(recovery);
                if let Some(day) = day_of(started) {
                    daily[day].recoveries.push(recovery);
                }
            }
        }
        if let Some(day) = day_of(started) {
            daily[day].incidents += 1;
        }
    }

    // The metrics, tiers and SLOs.
    let calendar_days = window.calendar_days();
    // Without any production deployment in the window there is nothing to classify (not Low).
    let frequency = (calendar_days > 0.0 && counts.deployments > 0).then(|| counts.successful as f64 / calendar_days);
    let lead_median = median(&leads);
    let failure_rate = (counts.deployments > 0).then(|| 100.0 * counts.failed as f64 / counts.deployments as f64);
    let mttr = mean(&recoveries);
    let values = Values {
        deployment_frequency_per_day: frequency,
        lead_time_hours: lead_median,
        change_failure_rate_percent: failure_rate,
        mttr_hours: mttr,
    };
    let (tiers, overall_tier) = classify(&values, &settings.preset);
    let slo = &settings.slo;
    let status = |value: Option<f64>, meets: &dyn Fn(f64) -> bool| match value {
        None => SloStatus::InsufficientData,
        Some(value) if meets(value) => SloStatus::Met,
        Some(_) => SloStatus::Breached,
    };
    let summary = |value: Option<f64>,
                   unit,
                   tier: Tier,
                   target: f64,
                   meets: &dyn Fn(f64) -> bool,
                   details: Vec<(&'static str, Option<f64>)>| MetricSummary {
        value: rounded(value),
        unit,
        tier,
        slo_target: target,
        slo: status(value, meets),
        details: details.into_iter().map(|(key, value)| (key, rounded(value))).collect(),
    };
    let metrics = Metrics {
        deployment_frequency: summary(
            frequency,
            "per day",
            tiers[0],
            slo.deployment_frequency_slo_per_day,
            &|value| value >= slo.deployment_frequency_slo_per_day,
            vec![
                ("per_week", frequency.map(|per_day| per_day * 7.0)),
                ("successful_deployments", Some(counts.successful as f64)),
            ],
        ),
        lead_time: summary(
            lead_median,
            "median hours",
            tiers[1],
            slo.lead_time_slo_hours,
            &|value| value < slo.lead_time_slo_hours,
            vec![
                ("p90_hours", p90(&leads)),
                ("samples", Some(leads.len() as f64)),
                ("dropped_non_positive", Some(dropped as f64)),
            ],
        ),
        change_failure_rate: summary(
            failure_rate,
            "percent",
            tiers[2],
            slo.change_failure_rate_slo_percent,
            &|value| value < slo.change_failure_rate_slo_percent,
            vec![("failed", Some(counts.failed as f64)), ("deployments", Some(counts.deployments as f64))],
        ),
        mttr: summary(
            mttr,
            "mean hours",
            tiers[3],
            slo.mttr_slo_hours,
            &|value| value < slo.mttr_slo_hours,
            vec![("median_hours", median(&recoveries)), ("recovered_incidents", Some(recoveries.len() as f64))],
        ),
        mtta_hours: rounded(mean(&acknowledgements)),
    };

    let rate = |failed: u64, total: u64| (total > 0).then(|| round(100.0 * failed as f64 / total as f64));
    Report {
        tenant: tenant.to_string(),
        environment: environment.map(str::to_lowercase),
        production_environments,
        window: WindowSummary {
            from: window.from.to_string(),
            to: window.to.to_string(),
            time_zone: window.time_zone_name.clone(),
            as_of: window.as_of.to_string(),
            calendar_days: round(calendar_days),
        },
        preset: settings.preset.name.clone(),
        slo_targets: settings.slo.clone(),
        link_window_seconds: settings.link_window.as_secs(),
        metrics,
        overall_tier,
        counts,
        pipelines: {
            let mut names: Vec<(&str, usize)> = pipeline_index.into_iter().collect();
            names.sort_unstable();
            names
                .into_iter()
                .map(|(pipeline, index)| (pipeline, std::mem::take(&mut pipeline_tallies[index])))
                .map(|(pipeline, (deployments, failed, leads))| PipelineRow {
                    pipeline: pipeline.to_string(),
                    deployments,
                    failed,
                    change_failure_rate_percent: rate(failed, deployments),
                    lead_time_samples: leads.len() as u64,
                    median_lead_time_hours: rounded(median(&leads)),
                })
                .collect()
        },
        severities: severities
            .into_iter()
            .map(|(severity, tally)| SeverityRow {
                severity,
                incidents: tally.incidents,
                acknowledged: tally.acknowledged,
                resolved: tally.resolved,
                mtta_hours: rounded(mean(&tally.acknowledgements)),
                mttr_hours: rounded(mean(&tally.recoveries)),
            })
            .collect(),
        daily: days
            .iter()
            .zip(daily)
            .map(|(day, tally)| DailyCohort {
                date: day.date.to_string(),
                deployments: tally.deployments,
                successful: tally.successful,
                failed: tally.failed,
                change_failure_rate_percent: rate(tally.failed, tally.deployments),
                median_lead_time_hours: rounded(median(&tally.leads)),
                incidents: tally.incidents,
                mttr_hours: rounded(mean(&tally.recoveries)),
            })
            .collect(),
        definitions: DEFINITIONS,
    }
}

/// The trailing-window gauges of one production service.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceGauge {
    /// Its environment.
    pub environment: String,
    /// The service.
    pub service: String,
    /// Successful deployments per day (`None`: none in the window).
    pub deployment_frequency_per_day: Option<f64>,
    /// Change failure rate, percent (`None`: no deployment in the window).
    pub change_failure_rate_percent: Option<f64>,
}

/// Deployment frequency and change failure rate per production environment and service over
/// `window`, by the report's definitions (each service's figures from its own events).
pub fn service_gauges(
    deployments: &[Deployment],
    incidents: &[Incident],
    settings: &DoraSettings,
    window: &Window,
) -> Vec<ServiceGauge> {
    let mut groups: BTreeMap<(&str, &str), ServiceEvents> = BTreeMap::new();
    for deployment in deployments.iter().filter(|deployment| settings.is_production(&deployment.environment)) {
        groups.entry((&deployment.environment, &deployment.service)).or_default().0.push(deployment.clone());
    }
    for incident in incidents {
        if let Some(group) = groups.get_mut(&(&*incident.environment, &*incident.service)) {
            group.1.push(incident.clone());
        }
    }
    groups
        .into_iter()
        .map(|((environment, service), (deployments, incidents))| {
            let figures = report("", &deployments, &incidents, settings, window, Some(environment));
            ServiceGauge {
                environment: environment.to_string(),
                service: service.to_string(),
                deployment_frequency_per_day: figures.metrics.deployment_frequency.value,
                change_failure_rate_percent: figures.metrics.change_failure_rate.value,
            }
        })
        .collect()
}
