//! Seal, retention and holds against a model: random writes (any time, late records included), legal
//! holds placed and released, incident holds opened and closed, sweeps at any cutoff. After every step
//! the records the store holds are exactly those the model predicts (a sealed chunk stays until a sweep
//! finds it past the cutoff and under no live hold), and the store's indexes check clean.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;

use common::{SECOND, START, TENANT, span};
use jiff::Timestamp;
use proptest::prelude::*;
use stella_otlp::proto::collector::trace::v1::ExportTraceServiceRequest;
use stella_store::chunks::{HoldBook, HoldError, HoldKind, SealLimits, Sealer, Store};

const HOUR: u64 = 3_600 * SECOND;
const DAY: u64 = 24 * HOUR;
/// A span lasts 1 ms from its record's time (see `common::span`).
const SPAN: u64 = 1_000_000;

#[derive(Debug, Clone)]
enum Op {
    /// A record at `START + seconds`.
    Write { seconds: u64 },
    /// A legal hold over hours `[from, to]` after `START` (refused when `to < from`).
    Legal { from: u64, to: u64 },
    /// An incident hold open from hour `from`.
    Incident { from: u64 },
    /// Incident mode ends at hour `at`.
    CloseIncidents { at: u64 },
    /// Releases the `n`th hold placed (modulo the count).
    Release { n: usize },
    /// A sweep deleting what ended before hour `cutoff`.
    Sweep { cutoff: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u64..6 * DAY / SECOND).prop_map(|seconds| Op::Write { seconds }),
        1 => (0u64..150, 0u64..150).prop_map(|(from, to)| Op::Legal { from, to }),
        1 => (0u64..150).prop_map(|from| Op::Incident { from }),
        1 => (0u64..150).prop_map(|at| Op::CloseIncidents { at }),
        1 => any::<usize>().prop_map(|n| Op::Release { n }),
        2 => (0u64..170).prop_map(|cutoff| Op::Sweep { cutoff }),
    ]
}

/// A hold as the model sees it: `[from, to]` (nanos), live until released.
#[derive(Debug, Clone)]
struct ModelHold {
    from: u64,
    to: Option<u64>,
    incident: bool,
    released: bool,
}

/// A sealed chunk: its records and its item time range.
#[derive(Debug, Clone)]
struct ModelChunk {
    records: Vec<u32>,
    min: u64,
    max: u64,
}

/// The model: the sealing rule (a chunk is the records from one of a UTC day until a record of a later
/// day or `max_records`), the holds, and the sealed chunks still stored.
#[derive(Debug, Default)]
struct Model {
    max_records: usize,
    open: Vec<(u32, u64)>,
    open_day: u64,
    chunks: Vec<ModelChunk>,
    holds: Vec<ModelHold>,
}

impl Model {
    fn write(&mut self, record: u32, at: u64) {
        let day = at / DAY;
        if !self.open.is_empty() && day > self.open_day {
            self.seal();
        }
        if self.open.is_empty() {
            self.open_day = day;
        }
        self.open.push((record, at));
        if self.open.len() >= self.max_records {
            self.seal();
        }
    }

    fn seal(&mut self) {
        let open = std::mem::take(&mut self.open);
        let min = open.iter().map(|(_, at)| *at).min().unwrap_or(0);
        let max = open.iter().map(|(_, at)| at + SPAN).max().unwrap_or(0);
        self.chunks.push(ModelChunk { records: open.into_iter().map(|(record, _)| record).collect(), min, max });
    }

    fn held(&self, min: u64, max: u64) -> bool {
        self.holds.iter().any(|hold| !hold.released && min <= hold.to.unwrap_or(u64::MAX) && max >= hold.from)
    }

    /// The chunks a sweep at `cutoff` deletes (and forgets them).
    fn sweep(&mut self, cutoff: u64) -> usize {
        let before = self.chunks.len();
        let chunks = std::mem::take(&mut self.chunks);
        // Kept: not past the cutoff, or under a live hold.
        self.chunks =
            chunks.into_iter().filter(|chunk| chunk.max >= cutoff || self.held(chunk.min, chunk.max)).collect();
        before - self.chunks.len()
    }

    fn stored(&self) -> BTreeSet<u32> {
        self.chunks.iter().flat_map(|chunk| chunk.records.iter().copied()).collect()
    }
}

fn timestamp(nanos: u64) -> Timestamp {
    Timestamp::from_nanosecond(i128::from(nanos)).unwrap()
}

/// The record numbers the store holds (each record's trace id is its number).
fn stored(store: &Store) -> BTreeSet<u32> {
    let mut found = BTreeSet::new();
    store
        .scan(TENANT, "traces", (0, u64::MAX), None, &mut |record| {
            let request = <ExportTraceServiceRequest as prost::Message>::decode(record).unwrap();
            for span in
                request.resource_spans.iter().flat_map(|group| &group.scope_spans).flat_map(|scope| &scope.spans)
            {
                found.insert(u32::from_be_bytes(span.trace_id[12..].try_into().unwrap()));
            }
            true
        })
        .unwrap();
    found
}

fn trace_id(record: u32) -> [u8; 16] {
    let mut id = [0u8; 16];
    id[12..].copy_from_slice(&record.to_be_bytes());
    id
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn the_store_keeps_exactly_what_the_model_of_seal_retention_and_holds_keeps(
        max_records in 1usize..5,
        ops in prop::collection::vec(op(), 1..40),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("store"));
        let book = HoldBook::open(dir.path()).unwrap();
        let mut sealer = Sealer::new(TENANT, stella_otlp::Signal::Traces, SealLimits { max_records, max_bytes: 1 << 24 });
        let mut model = Model { max_records, ..Model::default() };
        let mut written = 0u32;
        for op in &ops {
            match op {
                Op::Write { seconds } => {
                    let at = START + seconds * SECOND;
                    for chunk in sealer.add(u64::from(written), span(written, 0, "svc", at)).unwrap() {
                        store.write(&chunk).unwrap();
                    }
                    model.write(written, at);
                    written += 1;
                }
                Op::Legal { from, to } => {
                    let (from, to) = (START + from * HOUR, START + to * HOUR);
                    let placed = book.add(TENANT, HoldKind::Legal, timestamp(from), Some(timestamp(to)), "case", "test");
                    if to < from {
                        prop_assert!(matches!(placed, Err(HoldError::Reversed { .. })), "{:?}", placed);
                    } else {
                        placed.unwrap();
                        model.holds.push(ModelHold { from, to: Some(to), incident: false, released: false });
                    }
                }
                Op::Incident { from } => {
                    let from = START + from * HOUR;
                    book.add(TENANT, HoldKind::Incident, timestamp(from), None, "incident", "test").unwrap();
                    model.holds.push(ModelHold { from, to: None, incident: true, released: false });
                }
                Op::CloseIncidents { at } => {
                    let at = START + at * HOUR;
                    book.close_incident(TENANT, timestamp(at)).unwrap();
                    for hold in model.holds.iter_mut().filter(|hold| hold.incident && hold.to.is_none()) {
                        hold.to = Some(at);
                    }
                }
                Op::Release { n } => {
                    if model.holds.is_empty() {
                        continue;
                    }
                    let at = n % model.holds.len();
                    let released = book.release(TENANT, &format!("hold-{}", at + 1));
                    if model.holds[at].released {
                        prop_assert!(matches!(released, Err(HoldError::NotFound(_))), "{:?}", released);
                    } else {
                        released.unwrap();
                        model.holds[at].released = true;
                    }
                }
                Op::Sweep { cutoff } => {
                    let cutoff = START + cutoff * HOUR;
                    let deleted = store.sweep(TENANT, "traces", cutoff, &|min, max| book.holds(TENANT, min, max)).unwrap();
                    prop_assert_eq!(deleted.len(), model.sweep(cutoff), "chunks deleted at {}", cutoff);
                    let report = store.check(false).unwrap();
                    prop_assert!(report.damaged.is_empty() && report.stale_indexes.is_empty(), "{:?}", report);
                }
            }
            prop_assert_eq!(stored(&store), model.stored(), "after {:?}", op);
        }
        for record in 0..written {
            let found = !store.records_with_trace(TENANT, &trace_id(record)).unwrap().is_empty();
            prop_assert_eq!(found, model.stored().contains(&record), "record {} by trace id", record);
        }
    }
}
