//! Acknowledgement: a receiver answers its client only once every sink has taken the request's items.
//!
//! ```text
//!   receiver ──Ack──▶ stages ──clone per batch / per sink──▶ sinks settle(Ok | Err)
//!      ▲                                                        │
//!      └──────────── AckReceiver::wait() ◀── last clone gone ───┘
//! ```
//! Every clone of an [`Ack`] must be settled. A clone dropped without [`Ack::settle`] (a task that
//! died, a queue dropped at shutdown) counts as "not delivered", so the client is told to retry
//! instead of being told a lie.
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

/// Why the items of a request were not all taken by the sinks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AckError {
    /// A sink refused or failed to write the items.
    #[error("sink {sink} failed: {source}")]
    SinkFailed {
        /// The sink's component id (`file`, `file/audit`, ...).
        sink: String,
        /// The sink's own error, typed (a `LogError` of the ingest log, with its OS error).
        #[source]
        source: SinkError,
    },
    /// Part of the request was dropped before any sink settled it (the pipeline was stopping).
    #[error("the pipeline stopped before the data was delivered; retry")]
    NotDelivered,
}

/// A sink's error, shared by every clone of the acknowledgement it failed; its type is kept (see
/// [`SinkError::downcast_ref`]), so a refusal's cause reaches the receiver as the sink reported it.
#[derive(Debug, Clone)]
pub struct SinkError(Arc<dyn std::error::Error + Send + Sync>);

impl SinkError {
    /// Wraps the sink's error.
    pub fn new(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        SinkError(Arc::new(error))
    }

    /// The sink's error as `T`, if it is one.
    pub fn downcast_ref<T: std::error::Error + 'static>(&self) -> Option<&T> {
        self.0.downcast_ref::<T>()
    }
}

impl std::fmt::Display for SinkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for SinkError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// Two sink errors are equal when they read the same (for tests and deduplication).
impl PartialEq for SinkError {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

impl Eq for SinkError {}

/// One share of a request's acknowledgement. Clone it for every batch or sink that carries the items.
#[derive(Debug)]
pub struct Ack {
    shared: Arc<Shared>,
    settled: bool,
}

#[derive(Debug)]
struct Shared {
    answer: Mutex<Option<oneshot::Sender<Result<(), AckError>>>>,
    first_error: Mutex<Option<AckError>>,
}

/// The receiver's side: resolves once every [`Ack`] clone is settled or dropped.
#[derive(Debug)]
pub struct AckReceiver(oneshot::Receiver<Result<(), AckError>>);

impl Ack {
    /// A new acknowledgement and the receiver that waits for it.
    pub fn new() -> (Ack, AckReceiver) {
        let (sender, receiver) = oneshot::channel();
        let shared = Shared { answer: Mutex::new(Some(sender)), first_error: Mutex::new(None) };
        let ack = Ack { shared: Arc::new(shared), settled: false };
        (ack, AckReceiver(receiver))
    }

    /// Settles this share: `Ok` when the sink has taken the items, or the reason it did not.
    pub fn settle(mut self, result: Result<(), AckError>) {
        self.settled = true;
        if let Err(error) = result {
            self.shared.record(error);
        }
    }
}

impl Clone for Ack {
    fn clone(&self) -> Self {
        Ack { shared: Arc::clone(&self.shared), settled: false }
    }
}

impl Drop for Ack {
    fn drop(&mut self) {
        if !self.settled {
            self.shared.record(AckError::NotDelivered);
        }
    }
}

impl Shared {
    fn record(&self, error: AckError) {
        let mut first = self.first_error.lock().unwrap_or_else(|poison| poison.into_inner());
        if first.is_none() {
            *first = Some(error);
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let answer = self.answer.get_mut().unwrap_or_else(|poison| poison.into_inner()).take();
        let first_error = self.first_error.get_mut().unwrap_or_else(|poison| poison.into_inner()).take();
        if let Some(answer) = answer {
            // The receiver may have gone (client disconnected); nothing to tell then.
            let _ = answer.send(first_error.map_or(Ok(()), Err));
        }
    }
}

impl AckReceiver {
    /// Waits until every share is settled; the first error any share reported, if one did.
    pub async fn wait(self) -> Result<(), AckError> {
        self.0.await.unwrap_or(Err(AckError::NotDelivered))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn resolves_ok_once_every_clone_is_settled() {
        let (ack, receiver) = Ack::new();
        let second = ack.clone();
        ack.settle(Ok(()));
        second.settle(Ok(()));
        assert_eq!(receiver.wait().await, Ok(()));
    }

    #[tokio::test]
    async fn a_clone_dropped_unsettled_means_not_delivered() {
        let (ack, receiver) = Ack::new();
        let second = ack.clone();
        ack.settle(Ok(()));
        drop(second);
        assert_eq!(receiver.wait().await, Err(AckError::NotDelivered));
    }

    #[tokio::test]
    async fn the_first_sink_error_is_reported() {
        let (ack, receiver) = Ack::new();
        let second = ack.clone();
        let failure =
            AckError::SinkFailed { sink: "file".into(), source: SinkError::new(std::io::Error::from_raw_os_error(28)) };
        ack.settle(Err(failure.clone()));
        second.settle(Ok(()));
        assert_eq!(receiver.wait().await, Err(failure));
    }
}
