use stella_otlp::Batch;

use crate::{BoxFuture, Delivery, Encoded, ExportError, Exporter};

/// `exporters.nop`: takes every batch and keeps nothing. For benchmarks of the receive path.
#[derive(Debug)]
pub struct NopExporter {
    id: String,
}

impl NopExporter {
    /// A nop exporter with this component id.
    pub fn new(id: String) -> Self {
        NopExporter { id }
    }
}

impl Exporter for NopExporter {
    fn id(&self) -> &str {
        &self.id
    }

    fn export<'a>(&'a self, _batch: &'a Batch, _delivery: Delivery<'a>) -> BoxFuture<'a, Result<(), ExportError>> {
        Box::pin(async { Ok(()) })
    }

    fn takes_encoded(&self) -> bool {
        true
    }

    fn export_encoded<'a>(
        &'a self,
        _encoded: &'a Encoded,
        _delivery: Delivery<'a>,
    ) -> BoxFuture<'a, Result<(), ExportError>> {
        Box::pin(async { Ok(()) })
    }
}
