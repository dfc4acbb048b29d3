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

use futures_util::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use sha2::{Digest, Sha256};
use tokio::runtime::Handle;

use super::store::StoreError;

/// Chunks in object storage: a client, the key prefix, and the runtime requests run on.
#[derive(Debug, Clone)]
pub struct RemoteChunks {
    objects: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    runtime: Handle,
    location: String,
}

impl RemoteChunks {
    /// Chunks in an object store (built by `stella_export::object_storage` for `storage.backend`, or
    /// `object_store`'s in-memory store in tests), under `prefix`; `name` (the bucket) says which in
    /// messages; requests run on `runtime`.
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
