use std::sync::Arc;

use crate::{Ack, AckError, OtlpRequest, Signal};

/// The unit that moves through a pipeline: one tenant's items of one signal, and the
/// acknowledgements of every client request whose items it carries.
///
/// Invariant: a batch never mixes tenants. Whoever finishes with a batch calls [`Batch::settle`];
/// a batch dropped unsettled tells its clients "not delivered, retry".
#[derive(Debug)]
pub struct Batch {
    /// The tenant every item belongs to (`default` while auth is off).
    pub tenant: Arc<str>,
    /// The items, as one OTLP export request.
    pub request: OtlpRequest,
    /// One share of each client request's acknowledgement.
    pub acks: Vec<Ack>,
}

impl Batch {
    /// A batch of one client request.
    pub fn new(tenant: Arc<str>, request: OtlpRequest, ack: Ack) -> Self {
        Batch { tenant, request, acks: vec![ack] }
    }

    /// The signal of the items.
    pub fn signal(&self) -> Signal {
        self.request.signal()
    }

    /// Spans, data points or log records in the batch.
    pub fn item_count(&self) -> usize {
        self.request.item_count()
    }

    /// Settles every acknowledgement the batch carries with the same outcome.
    pub fn settle(self, result: Result<(), AckError>) {
        for ack in self.acks {
            ack.settle(result.clone());
        }
    }
}
