//! [`TraceTable`]: buffered traces by trace id, stored densely.
//!
//! A hash map from trace id to a small index, and the values in a `Vec` (removal swaps the last value into
//! the hole). Compared with a map holding the values themselves, the hash table's empty slots cost 20
//! bytes instead of the size of a whole value, which matters when a million small traces are buffered.
use std::collections::HashMap;

/// Values by 16-byte trace id.
#[derive(Debug)]
pub(crate) struct TraceTable<T> {
    index: HashMap<[u8; 16], u32>,
    ids: Vec<[u8; 16]>,
    values: Vec<T>,
}

impl<T> Default for TraceTable<T> {
    fn default() -> Self {
        TraceTable { index: HashMap::new(), ids: Vec::new(), values: Vec::new() }
    }
}

impl<T> TraceTable<T> {
    /// How many values are stored.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether `id` has a value.
    pub fn contains_key(&self, id: &[u8; 16]) -> bool {
        self.index.contains_key(id)
    }

    /// The value of `id`.
    pub fn get(&self, id: &[u8; 16]) -> Option<&T> {
        self.index.get(id).and_then(|at| self.values.get(*at as usize))
    }

    /// The value of `id`, inserting `make()` first if there is none.
    pub fn get_or_insert_with(&mut self, id: [u8; 16], make: impl FnOnce() -> T) -> &mut T {
        let at = match self.index.get(&id) {
            Some(at) => *at as usize,
            None => {
                let at = self.values.len();
                self.values.push(make());
                self.ids.push(id);
                self.index.insert(id, at as u32);
                at
            }
        };
        &mut self.values[at]
    }

    /// Removes and returns the value of `id`.
    pub fn remove(&mut self, id: &[u8; 16]) -> Option<T> {
        let at = self.index.remove(id)? as usize;
        let value = self.values.swap_remove(at);
        self.ids.swap_remove(at);
        if let Some(moved) = self.ids.get(at) {
            self.index.insert(*moved, at as u32);
        }
        Some(value)
    }

    /// Every (id, value), in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8; 16], &T)> {
        self.ids.iter().zip(&self.values)
    }

    /// Every value.
    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.values.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserts_removals_and_lookups_stay_consistent() {
        let mut table = TraceTable::default();
        let id = |n: u8| [n; 16];
        for n in 0..10 {
            *table.get_or_insert_with(id(n), || 0u32) += u32::from(n);
        }
        *table.get_or_insert_with(id(3), || 100) += 1;
        assert_eq!(table.remove(&id(0)), Some(0));
        assert_eq!(table.remove(&id(0)), None);
        assert_eq!(table.remove(&id(9)), Some(9));
        assert_eq!(table.len(), 8);
        for n in 1..9 {
            let expected = u32::from(n) + u32::from(n == 3);
            assert_eq!(table.get(&id(n)), Some(&expected), "{n}");
        }
        let mut seen: Vec<u8> = table.iter().map(|(key, _)| key[0]).collect();
        seen.sort_unstable();
        assert_eq!(seen, (1..9).collect::<Vec<u8>>());
    }
}
