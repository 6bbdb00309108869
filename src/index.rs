//! A hash index from string keys to small values (the store's record offsets, the graph's file
//! ids) that keeps no copy of its keys: each key is held as its 64-bit hash, and the caller says
//! which key a value stands for, so a lookup compares the one key it finds. A key whose hash
//! another key already has is kept whole in a side table, so colliding keys stay apart.

use crate::ids::{Fast, key_hash};
use std::collections::HashMap;
use std::collections::hash_map::Entry;

/// Keys to values by hash; a key whose hash another key already has goes to `collided`.
#[derive(Debug)]
pub(crate) struct KeyIndex<V> {
    by_hash: HashMap<u64, V, Fast>,
    collided: HashMap<Box<str>, V>,
}

impl<V> Default for KeyIndex<V> {
    fn default() -> Self {
        KeyIndex {
            by_hash: HashMap::default(),
            collided: HashMap::new(),
        }
    }
}

impl<V: Copy> KeyIndex<V> {
    /// An empty index with room for `n` keys.
    pub(crate) fn with_capacity(n: usize) -> Self {
        KeyIndex {
            by_hash: HashMap::with_capacity_and_hasher(n, Fast::default()),
            collided: HashMap::new(),
        }
    }

    /// The value of `key`; `key_of` says which key a value stands for.
    pub(crate) fn get<'k>(&self, key: &str, key_of: impl Fn(V) -> Option<&'k str>) -> Option<V> {
        self.get_hashed(key_hash(key), key, key_of)
    }

    fn get_hashed<'k>(
        &self,
        h: u64,
        key: &str,
        key_of: impl Fn(V) -> Option<&'k str>,
    ) -> Option<V> {
        let v = *self.by_hash.get(&h)?;
        if key_of(v) == Some(key) {
            Some(v)
        } else {
            self.collided.get(key).copied()
        }
    }

    /// Sets the value of `key`, replacing the one it had.
    pub(crate) fn insert<'k>(&mut self, key: &str, v: V, key_of: impl Fn(V) -> Option<&'k str>) {
        self.insert_hashed(key_hash(key), key, v, key_of)
    }

    fn insert_hashed<'k>(
        &mut self,
        h: u64,
        key: &str,
        v: V,
        key_of: impl Fn(V) -> Option<&'k str>,
    ) {
        match self.by_hash.entry(h) {
            Entry::Vacant(e) => {
                e.insert(v);
            }
            Entry::Occupied(mut e) => {
                if key_of(*e.get()) == Some(key) {
                    e.insert(v);
                } else {
                    self.collided.insert(key.into(), v);
                }
            }
        }
    }

    /// Removes `key`, if present.
    pub(crate) fn remove<'k>(&mut self, key: &str, key_of: impl Fn(V) -> Option<&'k str>) {
        let h = key_hash(key);
        if let Some(&v) = self.by_hash.get(&h)
            && key_of(v) == Some(key)
        {
            self.by_hash.remove(&h);
            // A collided key with the same hash takes the place.
            if let Some(other) = self.collided.keys().find(|k| key_hash(k) == h).cloned() {
                let v = self.collided.remove(&other).expect("present");
                self.by_hash.insert(h, v);
            }
        } else {
            self.collided.remove(key);
        }
    }

    /// How many keys there are.
    pub(crate) fn len(&self) -> usize {
        self.by_hash.len() + self.collided.len()
    }

    /// Every key's value, in no order.
    pub(crate) fn values(&self) -> impl Iterator<Item = V> + '_ {
        self.by_hash.values().chain(self.collided.values()).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colliding_keys_stay_apart() {
        let keys = ["a", "b", "c"];
        let key_of = |o: usize| keys.get(o).copied();
        let mut index = KeyIndex::default();
        // Three keys under one hash.
        for (at, key) in keys.iter().enumerate() {
            index.insert_hashed(42, key, at, key_of);
        }
        for (at, key) in keys.iter().enumerate() {
            assert_eq!(index.get_hashed(42, key, key_of), Some(at));
        }
        assert_eq!(index.len(), 3);
        assert_eq!(index.get_hashed(42, "d", key_of), None);
    }

    #[test]
    fn a_removed_key_leaves_the_others() {
        let keys = ["a", "b", "a", "c"];
        let key_of = |o: usize| keys.get(o).copied();
        let mut index = KeyIndex::with_capacity(4);
        for (at, key) in keys.iter().enumerate() {
            index.insert(key, at, key_of);
        }
        assert_eq!(index.get("a", key_of), Some(2), "the latest value wins");
        assert_eq!(index.len(), 3);
        index.remove("a", key_of);
        index.remove("d", key_of);
        assert_eq!(index.get("a", key_of), None);
        assert_eq!(
            (index.get("b", key_of), index.get("c", key_of)),
            (Some(1), Some(3))
        );
        let mut values: Vec<usize> = index.values().collect();
        values.sort();
        assert_eq!(values, [1, 3]);
    }
}
