//! Per-tenant ingest quotas: token buckets for items per second and bytes per second, each with a burst
//! of `burst_seconds` worth. A request over quota is refused whole (429 + Retry-After, gRPC
//! RESOURCE_EXHAUSTED) and counted per tenant; nothing of it is stored.
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// `tenants[].quotas`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuotaConfig {
    /// Items (spans, data points, log records) per second; `None`: no limit.
    pub items_per_second: Option<f64>,
    /// Request bytes per second; `None`: no limit.
    pub bytes_per_second: Option<f64>,
    /// How many seconds' worth a tenant may send at once after a quiet spell.
    pub burst_seconds: f64,
}

#[derive(Debug)]
struct Bucket {
    rate: f64,
    capacity: f64,
    tokens: f64,
    refilled: Instant,
}

impl Bucket {
    fn new(rate: f64, burst_seconds: f64) -> Self {
        let capacity = (rate * burst_seconds).max(1.0);
        Bucket { rate, capacity, tokens: capacity, refilled: Instant::now() }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
        self.refilled = now;
    }

    /// Whether `amount` fits now. A request larger than the whole burst passes when the bucket is full
    /// (and empties it), so big requests are slowed, never starved.
    fn fits(&self, amount: f64) -> bool {
        self.tokens >= amount || self.tokens >= self.capacity
    }

    /// Seconds until `amount` would fit.
    fn wait_for(&self, amount: f64) -> Duration {
        let missing = amount.min(self.capacity) - self.tokens;
        Duration::from_secs_f64((missing / self.rate).max(0.0))
    }
}

/// A request that is over its tenant's quota, and when to retry.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("tenant {tenant} is over its {kind} quota; retry in {retry_after:?}")]
pub struct OverQuota {
    /// The tenant.
    pub tenant: String,
    /// `items` or `bytes`.
    pub kind: &'static str,
    /// How long until the request would fit.
    pub retry_after: Duration,
}

/// One tenant's buckets.
#[derive(Debug)]
struct TenantBuckets {
    items: Option<Bucket>,
    bytes: Option<Bucket>,
}

fn buckets_of(tenants: &[(String, QuotaConfig)]) -> HashMap<String, TenantBuckets> {
    tenants
        .iter()
        .map(|(tenant, quota)| {
            let items = quota.items_per_second.map(|rate| Bucket::new(rate, quota.burst_seconds));
            let bytes = quota.bytes_per_second.map(|rate| Bucket::new(rate, quota.burst_seconds));
            (tenant.clone(), TenantBuckets { items, bytes })
        })
        .collect()
}

/// The quota state of every tenant that has one.
#[derive(Debug, Default)]
pub struct Quotas {
    buckets: Mutex<HashMap<String, TenantBuckets>>,
}

impl Quotas {
    /// Quotas for the tenants that declare one.
    pub fn new(tenants: &[(String, QuotaConfig)]) -> Self {
        Quotas { buckets: Mutex::new(buckets_of(tenants)) }
    }

    /// Puts new quotas in force (a reload); buckets start full, as at start.
    pub fn replace(&self, tenants: &[(String, QuotaConfig)]) {
        *self.buckets.lock().unwrap_or_else(|poison| poison.into_inner()) = buckets_of(tenants);
    }

    /// Whether `tenant` has a quota at all.
    pub fn limits(&self, tenant: &str) -> bool {
        self.buckets.lock().unwrap_or_else(|poison| poison.into_inner()).contains_key(tenant)
    }

    /// Takes `items` and `bytes` from `tenant`'s buckets, or says why not (taking nothing).
    pub fn take(&self, tenant: &str, items: usize, bytes: usize) -> Result<(), OverQuota> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|poison| poison.into_inner());
        let Some(TenantBuckets { items: item_bucket, bytes: byte_bucket }) = buckets.get_mut(tenant) else {
            return Ok(());
        };
        let now = Instant::now();
        for (bucket, amount, kind) in
            [(item_bucket.as_mut(), items as f64, "items"), (byte_bucket.as_mut(), bytes as f64, "bytes")]
        {
            if let Some(bucket) = bucket {
                bucket.refill(now);
                if !bucket.fits(amount) {
                    return Err(OverQuota { tenant: tenant.to_string(), kind, retry_after: bucket.wait_for(amount) });
                }
            }
        }
        for (bucket, amount) in [(item_bucket.as_mut(), items as f64), (byte_bucket.as_mut(), bytes as f64)] {
            if let Some(bucket) = bucket {
                bucket.tokens -= amount;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_the_rate_applies_and_other_tenants_are_untouched() {
        let quota = QuotaConfig { items_per_second: Some(100.0), bytes_per_second: None, burst_seconds: 1.0 };
        let quotas = Quotas::new(&[("acme".into(), quota)]);
        assert!(quotas.take("acme", 60, 0).is_ok());
        assert!(quotas.take("acme", 40, 0).is_ok());
        let refused = quotas.take("acme", 50, 0).unwrap_err();
        assert_eq!(refused.kind, "items");
        assert!(
            refused.retry_after > Duration::from_millis(400) && refused.retry_after <= Duration::from_millis(500),
            "{refused:?}"
        );
        assert!(quotas.take("other", 1_000_000, 1_000_000).is_ok(), "no quota, no limit");
    }

    #[test]
    fn bytes_are_limited_too_and_a_refusal_takes_nothing() {
        let quota = QuotaConfig { items_per_second: Some(1000.0), bytes_per_second: Some(1000.0), burst_seconds: 1.0 };
        let quotas = Quotas::new(&[("acme".into(), quota)]);
        assert!(quotas.take("acme", 10, 900).is_ok());
        assert_eq!(quotas.take("acme", 10, 500).unwrap_err().kind, "bytes");
        assert!(quotas.take("acme", 990, 100).is_ok(), "the refused request took no items");
    }

    #[test]
    fn a_request_larger_than_the_burst_is_slowed_not_starved() {
        let quota = QuotaConfig { items_per_second: Some(10.0), bytes_per_second: None, burst_seconds: 1.0 };
        let quotas = Quotas::new(&[("acme".into(), quota)]);
        assert!(quotas.take("acme", 50, 0).is_ok(), "a full bucket lets one big request through");
        assert!(quotas.take("acme", 1, 0).is_err(), "then the tenant waits");
    }
}
