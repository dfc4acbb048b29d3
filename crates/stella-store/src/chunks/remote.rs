//! [`RemoteChunks`]: sealed chunks and their manifests in S3-compatible object storage, so chunk storage
//! can outgrow one disk (`storage.backend: s3`).
//!
//! ```text
//! <prefix>/<tenant>/<signal>/<YYYY-MM-DD>/<sha256>.chunk   the chunk file, byte for byte
//!                                        /<sha256>.json    its manifest (RFC 8785), byte for byte
//! ```
//! The keys are the chunk's path under the local store root, so a chunk is found in both places by the
//! same name, and its name is its digest: every object read back is checked against it.
//!
//! `object_store` is async; the store is not (it runs on blocking threads). Each request is spawned on
//! the runtime given at construction and waited for on the calling thread, so a method here must be
//! called from a blocking thread (`spawn_blocking`, or a thread outside the runtime), never from async
//! code.
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, RetryConfig};
use sha2::{Digest, Sha256};
use tokio::runtime::Handle;

use super::store::StoreError;

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

/// Chunks in object storage: a client, the key prefix, and the runtime requests run on.
#[derive(Debug, Clone)]
pub struct RemoteChunks {
    objects: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    runtime: Handle,
    location: String,
}

impl RemoteChunks {
    /// The S3-compatible bucket `options` name; requests run on `runtime`. Opens no connection (the
    /// first upload or read does), so it succeeds whether the server is up or not. With TLS endpoints a
    /// rustls crypto provider must be installed first (`main` installs ring).
    pub fn s3(options: &S3Options, runtime: Handle) -> Result<Self, StoreError> {
        let location = location(&options.bucket, &options.prefix);
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
            .map_err(|source| StoreError::RemoteSetup { location: location.clone(), source: Box::new(source) })?;
        Ok(RemoteChunks {
            objects: Arc::new(objects),
            prefix: ObjectPath::from(options.prefix.as_str()),
            runtime,
            location,
        })
    }

    /// Chunks in any object store (`name` says which in messages), under `prefix`; requests run on
    /// `runtime`. Tests use `object_store`'s in-memory store.
    pub fn new(objects: Arc<dyn ObjectStore>, name: &str, prefix: &str, runtime: Handle) -> Self {
        RemoteChunks { objects, prefix: ObjectPath::from(prefix), runtime, location: location(name, prefix) }
    }

    /// `bucket/prefix`, for messages and logs (no endpoint credentials in it).
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The key of the file at `relative` (a path under the local store root).
    pub(super) fn key(&self, relative: &Path) -> ObjectPath {
        relative.iter().fold(self.prefix.clone(), |key, part| key.join(part.to_string_lossy().as_ref()))
    }

    /// Stores `bytes` at `key` (replacing what is there: keys are digests, so it is the same content).
    pub(super) fn put(&self, key: &ObjectPath, bytes: Vec<u8>) -> Result<(), StoreError> {
        let (objects, target) = (Arc::clone(&self.objects), key.clone());
        self.wait("upload", key, async move { objects.put(&target, bytes.into()).await.map(|_| ()) })?
            .map_err(|source| self.failed("upload", key, source))
    }

    /// The chunk at `key`, checked against `sha256` (its name): a missing object and one whose bytes do
    /// not match are precise errors.
    pub(super) fn fetch_chunk(&self, key: &ObjectPath, sha256: &str) -> Result<Vec<u8>, StoreError> {
        let (objects, target) = (Arc::clone(&self.objects), key.clone());
        let bytes = self
            .wait("read", key, async move {
                let found = objects.get(&target).await?;
                found.bytes().await
            })?
            .map_err(|source| self.failed("read", key, source))?;
        let found = hex::encode(Sha256::digest(&bytes));
        if found != sha256 {
            return Err(StoreError::RemoteDamaged { key: key.to_string(), location: self.location.clone(), found });
        }
        Ok(bytes.to_vec())
    }

    /// Checks the object at `key` against `sha256` while it streams in (nothing is kept); its size.
    pub(super) fn verify_chunk(&self, key: &ObjectPath, sha256: &str) -> Result<u64, StoreError> {
        let (objects, target) = (Arc::clone(&self.objects), key.clone());
        let (found, size) = self
            .wait("verify", key, async move {
                let mut stream = objects.get(&target).await?.into_stream();
                let (mut hasher, mut size) = (Sha256::new(), 0u64);
                while let Some(piece) = stream.next().await {
                    let piece = piece?;
                    size += piece.len() as u64;
                    hasher.update(&piece);
                }
                Ok((hex::encode(hasher.finalize()), size))
            })?
            .map_err(|source| self.failed("verify", key, source))?;
        if found != sha256 {
            return Err(StoreError::RemoteDamaged { key: key.to_string(), location: self.location.clone(), found });
        }
        Ok(size)
    }

    /// Deletes the object at `key`; one already gone is fine.
    pub(super) fn delete(&self, key: &ObjectPath) -> Result<(), StoreError> {
        let (objects, target) = (Arc::clone(&self.objects), key.clone());
        match self.wait("delete", key, async move { objects.delete(&target).await })? {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(source) => Err(self.failed("delete", key, source)),
        }
    }

    /// Runs `work` on the runtime and waits for it on this (blocking) thread.
    fn wait<T: Send + 'static>(
        &self,
        action: &'static str,
        key: &ObjectPath,
        work: impl Future<Output = T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (done, outcome) = std::sync::mpsc::sync_channel(1);
        self.runtime.spawn(async move {
            // The receiver is gone only if the waiting thread is: nothing to tell.
            let _ = done.send(work.await);
        });
        outcome.recv().map_err(|_| StoreError::RemoteStopped { action, key: key.to_string() })
    }

    fn failed(&self, action: &'static str, key: &ObjectPath, source: object_store::Error) -> StoreError {
        match source {
            object_store::Error::NotFound { .. } => {
                StoreError::RemoteMissing { key: key.to_string(), location: self.location.clone() }
            }
            source => StoreError::Remote {
                action,
                key: key.to_string(),
                location: self.location.clone(),
                source: Box::new(source),
            },
        }
    }
}

fn location(bucket: &str, prefix: &str) -> String {
    if prefix.is_empty() { bucket.to_string() } else { format!("{bucket}/{prefix}") }
}
