//! Admission control, checked before a body is read or decoded: a bound on concurrent requests per
//! protocol and per receiver, and a memory budget for the request bytes held at once. Beyond either the
//! request is refused at once (HTTP 429 + Retry-After, gRPC RESOURCE_EXHAUSTED), never queued unbounded
//! and never answered 500; the client retries.
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};

/// Why a request was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Overloaded {
    /// Too many requests at once.
    #[error("too many concurrent requests ({limit}, {key}); retry after a moment")]
    Concurrency {
        /// The limit hit.
        limit: usize,
        /// The setting that holds it.
        key: &'static str,
    },
    /// The in-flight memory budget is used up.
    #[error(
        "the receiver holds its in-flight memory budget ({budget_mib} MiB, max_inflight_mib); retry after a moment"
    )]
    Memory {
        /// The budget.
        budget_mib: usize,
    },
    /// One request would need more than the whole budget once decoded (never admitted: 413).
    #[error(
        "decoded, this request would take about {needed_mib} MiB, more than the receiver's whole in-flight budget ({budget_mib} MiB, max_inflight_mib); send smaller requests"
    )]
    OverBudget {
        /// What it would take, MiB.
        needed_mib: usize,
        /// The budget.
        budget_mib: usize,
    },
}

/// The limits of one receiver, shared by its protocols.
#[derive(Debug)]
pub struct Admission {
    receiver: Arc<Semaphore>,
    receiver_limit: usize,
    memory_kib: Arc<Semaphore>,
    budget_mib: usize,
}

/// The limit of one protocol of a receiver.
#[derive(Debug, Clone)]
pub struct ProtocolAdmission {
    shared: Arc<Admission>,
    protocol: Arc<Semaphore>,
    protocol_limit: usize,
}

/// An admitted request: holds its permits until dropped.
#[derive(Debug)]
pub struct Admitted {
    _receiver: OwnedSemaphorePermit,
    _protocol: OwnedSemaphorePermit,
    memory: Vec<OwnedSemaphorePermit>,
    shared: Arc<Admission>,
}

impl Admission {
    /// `max_concurrent_requests` over the receiver and `max_inflight_mib` of request bytes.
    pub fn new(max_concurrent_requests: usize, max_inflight_mib: usize) -> Arc<Self> {
        Arc::new(Admission {
            receiver: Arc::new(Semaphore::new(max_concurrent_requests)),
            receiver_limit: max_concurrent_requests,
            memory_kib: Arc::new(Semaphore::new(max_inflight_mib.saturating_mul(1024).min(Semaphore::MAX_PERMITS))),
            budget_mib: max_inflight_mib,
        })
    }

    /// The admission of one protocol with its own `max_concurrent_requests`.
    pub fn protocol(self: &Arc<Self>, max_concurrent_requests: usize) -> ProtocolAdmission {
        ProtocolAdmission {
            shared: Arc::clone(self),
            protocol: Arc::new(Semaphore::new(max_concurrent_requests)),
            protocol_limit: max_concurrent_requests,
        }
    }
}

impl ProtocolAdmission {
    /// Admits a request if both concurrency bounds allow it.
    pub fn enter(&self) -> Result<Admitted, Overloaded> {
        let protocol = Arc::clone(&self.protocol).try_acquire_owned().map_err(|_| Overloaded::Concurrency {
            limit: self.protocol_limit,
            key: "protocols.<protocol>.max_concurrent_requests",
        })?;
        let receiver = Arc::clone(&self.shared.receiver).try_acquire_owned().map_err(|_| Overloaded::Concurrency {
            limit: self.shared.receiver_limit,
            key: "max_concurrent_requests",
        })?;
        Ok(Admitted { _receiver: receiver, _protocol: protocol, memory: Vec::new(), shared: Arc::clone(&self.shared) })
    }
}

impl Admitted {
    /// Reserves `bytes` more of the memory budget for as long as the request lives. More than the whole
    /// budget (with what the request holds already) is [`Overloaded::OverBudget`]; more than what is free
    /// now is [`Overloaded::Memory`] (retry later).
    pub fn reserve(&mut self, bytes: usize) -> Result<(), Overloaded> {
        let held: usize = self.memory.iter().map(|permit| permit.num_permits()).sum();
        let kib = bytes.div_ceil(1024).max(1);
        let budget_kib = self.shared.budget_mib.saturating_mul(1024);
        if held.saturating_add(kib) > budget_kib {
            let needed_mib = (held + kib).div_ceil(1024);
            return Err(Overloaded::OverBudget { needed_mib, budget_mib: self.shared.budget_mib });
        }
        let Ok(kib) = u32::try_from(kib) else { return Err(Overloaded::Memory { budget_mib: self.shared.budget_mib }) };
        match Arc::clone(&self.shared.memory_kib).try_acquire_many_owned(kib) {
            Ok(permit) => {
                self.memory.push(permit);
                Ok(())
            }
            Err(TryAcquireError::NoPermits | TryAcquireError::Closed) => {
                Err(Overloaded::Memory { budget_mib: self.shared.budget_mib })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrency_is_bounded_per_protocol_and_per_receiver() {
        let receiver = Admission::new(3, 1);
        let http = receiver.protocol(2);
        let grpc = receiver.protocol(2);
        let first = http.enter().unwrap();
        let _second = http.enter().unwrap();
        assert!(matches!(http.enter(), Err(Overloaded::Concurrency { limit: 2, .. })));
        let _third = grpc.enter().unwrap();
        assert!(matches!(grpc.enter(), Err(Overloaded::Concurrency { limit: 3, key: "max_concurrent_requests" })));
        drop(first);
        assert!(grpc.enter().is_ok(), "a finished request frees its permits");
    }

    #[test]
    fn the_memory_budget_is_shared_and_released() {
        let receiver = Admission::new(10, 1);
        let http = receiver.protocol(10);
        let mut big = http.enter().unwrap();
        big.reserve(700 * 1024).unwrap();
        let mut other = http.enter().unwrap();
        assert_eq!(other.reserve(400 * 1024), Err(Overloaded::Memory { budget_mib: 1 }));
        drop(big);
        assert!(other.reserve(400 * 1024).is_ok());
    }
}
