#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;

use jiff::Timestamp;
use proptest::prelude::*;

use super::holds::HOLDS;
use super::migrate::{HOLDS_FILE, INCIDENTS_FILE, MIGRATED_SUFFIX};
use super::*;
use crate::chunks::{Hold, HoldError, HoldKind};

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(seconds).unwrap()
}

const NANOS: u64 = 1_000_000_000;

#[test]
fn holds_are_placed_released_closed_and_listed_per_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let holds = StateDb::open(dir.path()).unwrap().holds();
    let legal = holds.add("acme", HoldKind::Legal, at(100), Some(at(200)), "litigation", "token:a").unwrap();
    let other = holds.add("globex", HoldKind::Legal, at(100), None, "audit", "token:g").unwrap();
    let incident = holds.add("acme", HoldKind::Incident, at(1000), None, "incident mode", "token:a").unwrap();
    assert_eq!((legal.id.as_str(), other.id.as_str(), incident.id.as_str()), ("hold-1", "hold-2", "hold-3"));
    assert!(holds.holds("acme", 150 * NANOS, 160 * NANOS));
    assert!(holds.holds("acme", 5_000 * NANOS, 5_001 * NANOS), "an open incident hold keeps everything after");
    holds.close_incident("acme", at(2000)).unwrap();
    assert!(!holds.holds("acme", 5_000 * NANOS, 5_001 * NANOS));
    assert!(holds.holds("globex", 5_000 * NANOS, 5_001 * NANOS), "closing acme's incident leaves globex alone");
    let reversed = holds.add("acme", HoldKind::Legal, at(5), Some(at(1)), "x", "y").unwrap_err();
    assert_eq!(reversed.code(), "hold.invalid_window");
    assert_eq!(holds.release("globex", &legal.id).unwrap_err().code(), "hold.not_found", "per tenant");
    let released = holds.release("acme", &legal.id).unwrap();
    assert!(released.released.is_some());
    assert!(matches!(holds.release("acme", &legal.id), Err(HoldError::NotFound(_))), "released once");
    let listed: Vec<String> = holds.list("acme").unwrap().into_iter().map(|hold| hold.id).collect();
    assert_eq!(listed, ["hold-1", "hold-3"], "oldest first, released ones included");
    assert_eq!(holds.add("acme", HoldKind::Legal, at(1), None, "again", "a").unwrap().id, "hold-4");
}

#[test]
fn a_damaged_hold_is_reported_and_retention_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let db = StateDb::open(dir.path()).unwrap();
    db.write(|txn| {
        txn.open_table(HOLDS).unwrap().insert(1, b"not json".as_slice()).unwrap();
        Ok::<_, StateError>(())
    })
    .unwrap();
    let holds = db.holds();
    assert_eq!(holds.list("acme").unwrap_err().code(), "hold.damaged");
    assert!(holds.holds("acme", 0, 1), "unreadable holds keep everything");
}

#[test]
fn incident_modes_are_replaced_per_tenant_and_listed() {
    let dir = tempfile::tempdir().unwrap();
    let incidents = StateDb::open(dir.path()).unwrap().incidents();
    assert_eq!(incidents.get("acme").unwrap(), None);
    incidents.set("acme", br#"{"state":"on"}"#).unwrap();
    incidents.set("globex", br#"{"state":"on"}"#).unwrap();
    incidents.set("acme", br#"{"state":"off"}"#).unwrap();
    assert_eq!(incidents.get("acme").unwrap().as_deref(), Some(br#"{"state":"off"}"#.as_slice()));
    let tenants: Vec<String> = incidents.list().unwrap().into_iter().map(|(tenant, _)| tenant).collect();
    assert_eq!(tenants, ["acme", "globex"]);
}

#[test]
fn records_are_replaced_by_id_listed_in_id_order_and_kept_apart_by_tenant_and_kind() {
    let dir = tempfile::tempdir().unwrap();
    let db = StateDb::open(dir.path()).unwrap();
    let events = db.records("dora.events");
    assert_eq!(events.list("acme").unwrap(), [], "a kind never written is empty");
    assert_eq!(events.get("acme", "deploy-1").unwrap(), None);
    assert!(!events.put("acme", "deploy-2", at(20), b"second").unwrap());
    assert!(!events.put("acme", "deploy-1", at(10), b"first").unwrap());
    assert!(!events.put("acme-2", "deploy-0", at(10), b"a tenant whose name extends acme").unwrap());
    assert!(!events.put("globex", "deploy-1", at(10), b"globex").unwrap());
    assert!(events.put("acme", "deploy-1", at(15), b"first, re-sent").unwrap(), "same id: replaced");
    db.records("federation.consents").put("acme", "deploy-1", at(1), b"another kind").unwrap();
    let listed = events.list("acme").unwrap();
    let ids: Vec<&str> = listed.iter().map(|record| record.id.as_str()).collect();
    assert_eq!(ids, ["deploy-1", "deploy-2"]);
    assert_eq!(listed[0], Record { id: "deploy-1".into(), at: at(15), value: b"first, re-sent".to_vec() });
    assert!(events.remove("acme", "deploy-2").unwrap());
    assert!(!events.remove("acme", "deploy-2").unwrap());
    assert_eq!(events.list("acme").unwrap().len(), 1);
    assert_eq!(events.get("globex", "deploy-1").unwrap().unwrap().value, b"globex");
    let batch: [(&str, Timestamp, &[u8]); 3] =
        [("deploy-1", at(20), b"batch 1"), ("deploy-9", at(20), b"batch 9"), ("deploy-9", at(21), b"batch 9 again")];
    assert_eq!(events.put_many("acme", &batch).unwrap(), [true, false, true], "one transaction, replace-by-id");
    assert_eq!(events.get("acme", "deploy-9").unwrap().unwrap().value, b"batch 9 again");
}

#[test]
fn the_retention_sweep_removes_older_records_of_one_tenant_or_of_all() {
    let dir = tempfile::tempdir().unwrap();
    let events = StateDb::open(dir.path()).unwrap().records("dora.events");
    for (tenant, id, seconds) in [("acme", "a", 10), ("acme", "b", 30), ("globex", "a", 10), ("globex", "b", 30)] {
        events.put(tenant, id, at(seconds), b"").unwrap();
    }
    assert_eq!(events.remove_older_than(Some("acme"), at(20)).unwrap(), 1);
    assert_eq!(events.get("acme", "a").unwrap(), None);
    assert!(events.get("globex", "a").unwrap().is_some(), "another tenant's records stay");
    assert_eq!(events.remove_older_than(None, at(30)).unwrap(), 1, "the cutoff itself is kept");
    assert_eq!(events.remove_older_than(None, at(31)).unwrap(), 2);
    assert_eq!(events.list("acme").unwrap(), []);
}

#[test]
fn counters_add_up_per_tenant_refuse_non_finite_totals_and_expire() {
    let dir = tempfile::tempdir().unwrap();
    let budgets = StateDb::open(dir.path()).unwrap().counters("federation.budgets");
    assert_eq!(budgets.get("acme", "epsilon/2026-05").unwrap(), 0.0);
    assert_eq!(budgets.add("acme", "epsilon/2026-05", 0.25, at(10)).unwrap(), 0.25);
    assert_eq!(budgets.add("acme", "epsilon/2026-05", 0.5, at(20)).unwrap(), 0.75);
    assert_eq!(budgets.add("acme", "epsilon/2026-05", -0.25, at(30)).unwrap(), 0.5);
    assert_eq!(budgets.add("globex", "epsilon/2026-05", 1.0, at(5)).unwrap(), 1.0);
    let refused = budgets.add("acme", "epsilon/2026-05", f64::NAN, at(40)).unwrap_err();
    assert_eq!(refused.code(), "state.invalid_amount");
    assert_eq!(budgets.add("acme", "epsilon/2026-05", f64::MAX, at(40)).unwrap(), f64::MAX);
    assert_eq!(budgets.add("acme", "epsilon/2026-05", f64::MAX, at(40)).unwrap_err().code(), "state.invalid_amount");
    assert_eq!(budgets.get("acme", "epsilon/2026-05").unwrap(), f64::MAX, "a refused add changes nothing");
    assert_eq!(budgets.remove_older_than(None, at(10)).unwrap(), 1, "last changed at 5: globex's");
    assert_eq!(budgets.get("globex", "epsilon/2026-05").unwrap(), 0.0);
    assert_eq!(budgets.get("acme", "epsilon/2026-05").unwrap(), f64::MAX);
}

#[test]
fn state_survives_closing_and_reopening_the_database() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = StateDb::open(dir.path()).unwrap();
        db.holds().add("acme", HoldKind::Legal, at(1), None, "case", "admin").unwrap();
        db.incidents().set("acme", b"on").unwrap();
        db.records("dora.events").put("acme", "e1", at(5), b"event").unwrap();
        db.counters("federation.budgets").add("acme", "epsilon", 0.5, at(5)).unwrap();
    }
    let db = StateDb::open(dir.path()).unwrap();
    assert_eq!(db.holds().list("acme").unwrap().len(), 1);
    assert_eq!(db.incidents().get("acme").unwrap().as_deref(), Some(b"on".as_slice()));
    assert_eq!(db.records("dora.events").get("acme", "e1").unwrap().unwrap().value, b"event");
    assert_eq!(db.counters("federation.budgets").get("acme", "epsilon").unwrap(), 0.5);
}

#[test]
fn a_second_open_in_the_process_shares_the_first_handle() {
    let dir = tempfile::tempdir().unwrap();
    let first = StateDb::open(dir.path()).unwrap();
    let second = StateDb::open(&dir.path().join(".")).unwrap();
    first.incidents().set("acme", b"on").unwrap();
    assert_eq!(second.incidents().get("acme").unwrap().as_deref(), Some(b"on".as_slice()));
    assert_eq!(first.path(), second.path());
}

#[test]
fn a_database_another_handle_holds_is_refused_at_once_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    // What another process holding the file looks like from here: a redb handle this process's
    // `StateDb` does not know.
    let other = redb::Database::create(dir.path().join(STATE_FILE)).unwrap();
    let refused = StateDb::open(dir.path()).unwrap_err();
    assert_eq!(refused.code(), "state.already_open");
    let message = refused.to_string();
    assert!(message.contains("state.redb") && message.contains("already open"), "{message}");
    drop(other);
    StateDb::open(dir.path()).unwrap();
}

fn write_json(path: &Path, value: &impl serde::Serialize) {
    std::fs::write(path, serde_json::to_vec_pretty(value).unwrap()).unwrap();
}

fn old_hold(n: u64, tenant: &str, released: bool) -> Hold {
    Hold {
        id: format!("hold-{n}"),
        tenant: tenant.into(),
        kind: HoldKind::Legal,
        from: at(100),
        to: Some(at(200)),
        reason: "case".into(),
        by: "admin".into(),
        created: at(50),
        released: released.then(|| at(60)),
    }
}

#[test]
fn the_json_files_of_before_are_imported_once_and_renamed() {
    let dir = tempfile::tempdir().unwrap();
    let old = vec![old_hold(1, "acme", true), old_hold(2, "globex", false)];
    write_json(&dir.path().join(HOLDS_FILE), &old);
    let modes =
        serde_json::json!({"acme": {"state": "on", "services": ["checkout"], "reason": "outage", "by": "token:a"}});
    write_json(&dir.path().join(INCIDENTS_FILE), &modes);
    {
        let db = StateDb::open(dir.path()).unwrap();
        assert_eq!(db.holds().list("acme").unwrap(), [old[0].clone()]);
        assert_eq!(db.holds().list("globex").unwrap(), [old[1].clone()]);
        assert!(!db.holds().holds("acme", 150 * NANOS, 150 * NANOS), "released before: still released");
        assert!(db.holds().holds("globex", 150 * NANOS, 150 * NANOS));
        let mode: serde_json::Value = serde_json::from_slice(&db.incidents().get("acme").unwrap().unwrap()).unwrap();
        assert_eq!(mode, modes["acme"]);
        assert_eq!(db.holds().add("acme", HoldKind::Legal, at(1), None, "new", "admin").unwrap().id, "hold-3");
    }
    for file in [HOLDS_FILE, INCIDENTS_FILE] {
        assert!(!dir.path().join(file).exists(), "{file} renamed");
        assert!(dir.path().join(format!("{file}{MIGRATED_SUFFIX}")).exists(), "{file} kept as .migrated");
    }
    // A file that appears again is not imported over what the tables hold.
    write_json(&dir.path().join(HOLDS_FILE), &vec![old_hold(1, "initech", false)]);
    let db = StateDb::open(dir.path()).unwrap();
    assert_eq!(db.holds().list("initech").unwrap(), []);
    assert_eq!(db.holds().list("acme").unwrap().len(), 2);
    assert!(dir.path().join(HOLDS_FILE).exists(), "left for the operator to remove");
}

#[test]
fn a_damaged_json_file_stops_the_open_and_is_left_in_place() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(INCIDENTS_FILE), b"{ not json").unwrap();
    let refused = StateDb::open(dir.path()).unwrap_err();
    assert_eq!(refused.code(), "state.migration_damaged");
    assert!(refused.to_string().contains(INCIDENTS_FILE), "{refused}");
    assert!(dir.path().join(INCIDENTS_FILE).exists());
}

/// What the model of a replace-by-id table is told to do.
#[derive(Debug, Clone)]
enum Op {
    Put { tenant: &'static str, id: String, at: i64, value: Vec<u8> },
    Remove { tenant: &'static str, id: String },
    Sweep { tenant: Option<&'static str>, cutoff: i64 },
    Reopen,
}

fn tenant() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["acme", "acme-2", "globex", ""])
}

fn id() -> impl Strategy<Value = String> {
    "[ab]{0,3}"
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (tenant(), id(), 0i64..100, prop::collection::vec(any::<u8>(), 0..8))
            .prop_map(|(tenant, id, at, value)| Op::Put { tenant, id, at, value }),
        2 => (tenant(), id()).prop_map(|(tenant, id)| Op::Remove { tenant, id }),
        1 => (prop::option::of(tenant()), 0i64..100).prop_map(|(tenant, cutoff)| Op::Sweep { tenant, cutoff }),
        1 => Just(Op::Reopen),
    ]
}

type Model = BTreeMap<(String, String), (i64, Vec<u8>)>;

fn model_list(model: &Model, tenant: &str) -> Vec<Record> {
    model
        .iter()
        .filter(|((owner, _), _)| owner == tenant)
        .map(|((_, id), (seconds, value))| Record { id: id.clone(), at: at(*seconds), value: value.clone() })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn a_record_table_behaves_as_a_map_by_tenant_and_id(ops in prop::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let mut db = StateDb::open(dir.path()).unwrap();
        let mut model = Model::new();
        for op in &ops {
            let records = db.records("model");
            match op {
                Op::Put { tenant, id, at: seconds, value } => {
                    let replaced = records.put(tenant, id, at(*seconds), value).unwrap();
                    let before = model.insert((tenant.to_string(), id.clone()), (*seconds, value.clone()));
                    prop_assert_eq!(replaced, before.is_some());
                }
                Op::Remove { tenant, id } => {
                    let removed = records.remove(tenant, id).unwrap();
                    prop_assert_eq!(removed, model.remove(&(tenant.to_string(), id.clone())).is_some());
                }
                Op::Sweep { tenant, cutoff } => {
                    let removed = records.remove_older_than(*tenant, at(*cutoff)).unwrap();
                    let before = model.len();
                    model.retain(|(owner, _), (seconds, _)| tenant.is_some_and(|tenant| tenant != owner) || *seconds >= *cutoff);
                    prop_assert_eq!(removed, before - model.len());
                }
                Op::Reopen => {
                    drop(records);
                    drop(db);
                    db = StateDb::open(dir.path()).unwrap();
                    continue;
                }
            }
            for tenant in ["acme", "acme-2", "globex", ""] {
                prop_assert_eq!(records.list(tenant).unwrap(), model_list(&model, tenant), "{} after {:?}", tenant, op);
            }
            if let Op::Put { tenant, id, .. } | Op::Remove { tenant, id } = op {
                let expected = model_list(&model, tenant).into_iter().find(|record| record.id == *id);
                prop_assert_eq!(records.get(tenant, id).unwrap(), expected);
            }
        }
    }
}
