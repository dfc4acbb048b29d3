//! The object-storage client of `storage.backend`: an S3-compatible bucket over HTTP(S) (rustls with
//! ring, like every other outbound connection here), with bounded timeouts and retries. The store reads
//! and writes chunks through it (`stella_store::chunks::RemoteChunks`); the egress policy is checked by
//! the caller before this is built.
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::{ClientOptions, ObjectStore, RetryConfig};

/// How long one request may take (a 2 MiB chunk over a slow link included).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Retries of one request inside `object_store` (transient errors, 5xx); the uploader retries rounds
/// with its own backoff on top, so these stay few and short.
const REQUEST_RETRIES: usize = 2;
/// The time one request may spend in `object_store`'s retries.
const RETRY_TIMEOUT: Duration = Duration::from_secs(30);

/// How to reach an S3-compatible bucket; the collector builds it from `storage.backend`.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Options {
    /// The endpoint URL (`https://s3.eu-west-1.amazonaws.com`, `http://127.0.0.1:9000`).
    pub endpoint: String,
    /// The bucket.
    pub bucket: String,
    /// Key prefix under which the store's objects go (no leading or trailing `/`; may be empty).
    pub prefix: String,
    /// The region requests are signed for.
    pub region: String,
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key (never printed: `Debug` redacts it).
    pub secret_access_key: String,
    /// Whether a plain `http://` endpoint is allowed.
    pub allow_http: bool,
}

impl std::fmt::Debug for S3Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Options")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("allow_http", &self.allow_http)
            .finish()
    }
}

/// The client of the bucket `options` name. Opens no connection (the first request does), so it
/// succeeds whether the server is up or not.
pub fn s3(options: &S3Options) -> Result<Arc<dyn ObjectStore>, ObjectStorageError> {
    crate::install_crypto_provider();
    let retry = RetryConfig { max_retries: REQUEST_RETRIES, retry_timeout: RETRY_TIMEOUT, ..Default::default() };
    let client = ClientOptions::new()
        .with_timeout(REQUEST_TIMEOUT)
        .with_connect_timeout(CONNECT_TIMEOUT)
        .with_allow_http(options.allow_http);
    let objects = AmazonS3Builder::new()
        .with_endpoint(&options.endpoint)
        .with_bucket_name(&options.bucket)
        .with_region(&options.region)
        .with_access_key_id(&options.access_key_id)
        .with_secret_access_key(&options.secret_access_key)
        .with_allow_http(options.allow_http)
        .with_virtual_hosted_style_request(false)
        .with_retry(retry)
        .with_client_options(client)
        .build()
        .map_err(|source| ObjectStorageError { bucket: options.bucket.clone(), source: Box::new(source) })?;
    Ok(Arc::new(objects))
}

/// The client could not be set up from `storage.backend`.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up object storage bucket {bucket}: {source}; fix storage.backend")]
pub struct ObjectStorageError {
    /// The bucket.
    pub bucket: String,
    /// Why (boxed: `object_store`'s error is large).
    #[source]
    pub source: Box<object_store::Error>,
}

impl ObjectStorageError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        "store.remote_setup"
    }
}
