//! [`Contexts`]: the resources and scopes buffered spans came with, shared by id and counted by use.
//!
//! A context is kept encoded, as it was logged, and copied into the output as it is for traces that
//! are kept. Equal contexts (the same service sending request after request) are
//! stored once.
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

/// Bytes counted per context on top of its encoded bytes (slot, index entry, allocations).
const CONTEXT_OVERHEAD: u64 = 128;

/// The resource and scope of a group of spans.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct Context {
    /// The encoded resource.
    pub resource: Option<Vec<u8>>,
    /// The resource's schema URL.
    pub resource_schema_url: String,
    /// The encoded instrumentation scope.
    pub scope: Option<Vec<u8>>,
    /// The scope's schema URL.
    pub scope_schema_url: String,
    /// The resource's `service.name`.
    pub service: Option<Arc<str>>,
}

impl Context {
    fn memory(&self) -> u64 {
        let encoded = self.resource.as_ref().map_or(0, Vec::capacity) + self.scope.as_ref().map_or(0, Vec::capacity);
        let text = self.resource_schema_url.capacity()
            + self.scope_schema_url.capacity()
            + self.service.as_ref().map_or(0, |service| service.len());
        (encoded + text) as u64 + CONTEXT_OVERHEAD
    }
}

#[derive(Debug)]
struct Slot {
    context: Context,
    key: u64,
    /// Runs of buffered spans referring to this context.
    uses: u32,
}

/// Contexts by id.
#[derive(Debug, Default)]
pub(crate) struct Contexts {
    slots: Vec<Option<Slot>>,
    free: Vec<u32>,
    by_key: HashMap<u64, u32>,
    hasher: RandomState,
    memory: u64,
}

impl Contexts {
    /// The id of `context`, stored now unless an equal one is.
    pub fn intern(&mut self, context: Context) -> u32 {
        let key = self.hasher.hash_one(&context);
        if let Some(id) = self.by_key.get(&key)
            && self.get(*id) == Some(&context)
        {
            return *id;
        }
        self.memory += context.memory();
        let slot = Some(Slot { context, key, uses: 0 });
        let id = match self.free.pop() {
            Some(id) => {
                self.slots[id as usize] = slot;
                id
            }
            None => {
                self.slots.push(slot);
                self.slots.len() as u32 - 1
            }
        };
        self.by_key.entry(key).or_insert(id);
        id
    }

    /// The context `id`.
    pub fn get(&self, id: u32) -> Option<&Context> {
        self.slots.get(id as usize)?.as_ref().map(|slot| &slot.context)
    }

    /// Counts one more run using `id`.
    pub fn hold(&mut self, id: u32) {
        if let Some(Some(slot)) = self.slots.get_mut(id as usize) {
            slot.uses += 1;
        }
    }

    /// Counts one run less using `id`, removing the context when nothing uses it.
    pub fn release(&mut self, id: u32) {
        if let Some(Some(slot)) = self.slots.get_mut(id as usize) {
            slot.uses = slot.uses.saturating_sub(1);
        }
        self.remove_if_unused(id);
    }

    /// Removes `id` if nothing uses it.
    fn remove_if_unused(&mut self, id: u32) {
        let Some(entry) = self.slots.get_mut(id as usize) else { return };
        if entry.as_ref().is_none_or(|slot| slot.uses > 0) {
            return;
        }
        if let Some(slot) = entry.take() {
            self.memory -= slot.context.memory();
            if self.by_key.get(&slot.key) == Some(&id) {
                self.by_key.remove(&slot.key);
            }
            self.free.push(id);
        }
    }

    /// Bytes the stored contexts hold, as counted against the buffer's budget.
    pub fn memory(&self) -> u64 {
        self.memory
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(service: &str) -> Context {
        Context {
            resource: Some(service.as_bytes().to_vec()),
            resource_schema_url: String::new(),
            scope: None,
            scope_schema_url: String::new(),
            service: Some(Arc::from(service)),
        }
    }

    #[test]
    fn equal_contexts_are_stored_once_and_removed_with_their_last_use() {
        let mut contexts = Contexts::default();
        let a = contexts.intern(context("a"));
        contexts.hold(a);
        assert_eq!(contexts.intern(context("a")), a);
        contexts.hold(a);
        let b = contexts.intern(context("b"));
        assert_ne!(a, b);
        contexts.remove_if_unused(b);
        assert!(contexts.get(b).is_none(), "an unused context goes at once");
        contexts.release(a);
        assert_eq!(contexts.get(a).and_then(|context| context.service.as_deref()), Some("a"));
        contexts.release(a);
        assert!(contexts.get(a).is_none());
        assert_eq!(contexts.memory(), 0);
        let c = contexts.intern(context("c"));
        assert!(c == a || c == b, "freed slots are reused");
        assert_eq!(contexts.slots.len(), 2);
    }
}
