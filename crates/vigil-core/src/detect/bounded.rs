//! A least-recently-used map with a hard cap on entries, growing its table
//! only as entries arrive. (`lru::LruCache::new(cap)` reserves the whole
//! capacity up front: 1,000 remembered values per group would cost tens of
//! kilobytes per group before the first value is seen.)

use foldhash::fast::RandomState;
use lru::LruCache;
use serde::{Deserialize, Serialize, Serializer};

/// Entries [`BoundedLru::insert_sparing`] weighs before evicting one.
pub const CANDIDATES: usize = 8;

#[derive(Debug)]
pub struct BoundedLru<V> {
    map: LruCache<Box<str>, V, RandomState>,
    cap: usize,
}

impl<V> BoundedLru<V> {
    pub fn new(cap: usize) -> BoundedLru<V> {
        BoundedLru { map: LruCache::unbounded_with_hasher(RandomState::default()), cap: cap.max(1) }
    }

    /// Inserts a key that is not present; returns true if the least
    /// recently used entry was evicted to make room.
    pub fn insert(&mut self, key: &str, value: V) -> bool {
        self.map.push(key.into(), value);
        if self.map.len() > self.cap {
            self.map.pop_lru();
            return true;
        }
        false
    }

    /// Inserts a key that is not present; past the cap, evicts the lightest
    /// of the [`CANDIDATES`] least recently used entries (the least recent
    /// on a tie), so that a flood of new keys pushes out other one-off keys
    /// before a key that has gathered state. Returns the evicted key.
    pub fn insert_sparing(&mut self, key: &str, value: V, weight: impl Fn(&V) -> usize) -> Option<Box<str>> {
        let evict = if self.map.len() >= self.cap {
            let mut lightest: Option<(&Box<str>, usize)> = None;
            for (k, v) in self.map.iter().rev().take(CANDIDATES) {
                let w = weight(v);
                if lightest.is_none_or(|(_, best)| w < best) {
                    lightest = Some((k, w));
                }
            }
            lightest.map(|(k, _)| k.clone())
        } else {
            None
        };
        if let Some(k) = &evict {
            self.map.pop(k);
        }
        self.map.push(key.into(), value);
        evict
    }

    /// The value for `key`, marking it most recently used.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut V> {
        self.map.get_mut(key)
    }

    /// The value for `key`, leaving its recency as it is.
    pub fn peek_mut(&mut self, key: &str) -> Option<&mut V> {
        self.map.peek_mut(key)
    }

    pub fn contains(&self, key: &str) -> bool {
        self.map.contains(key)
    }

    pub fn peek_lru(&self) -> Option<(&str, &V)> {
        self.map.peek_lru().map(|(k, v)| (&**k, v))
    }

    pub fn pop_lru(&mut self) -> Option<(Box<str>, V)> {
        self.map.pop_lru()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &V)> {
        self.map.iter().map(|(k, v)| (&**k, v))
    }

    /// All entries, without touching their recency.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&str, &mut V)> {
        self.map.iter_mut().map(|(k, v)| (&**k, v))
    }

    pub fn cap(&self) -> usize {
        self.cap
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// The serialized form: entries from least to most recently used, so that
/// reinserting them in order restores the recency.
#[derive(Serialize, Deserialize)]
#[serde(rename = "BoundedLru")]
struct Saved<K, V> {
    cap: usize,
    entries: Vec<(K, V)>,
}

impl<V: Serialize> Serialize for BoundedLru<V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let entries: Vec<(&str, &V)> = self.map.iter().rev().map(|(k, v)| (&**k, v)).collect();
        Saved { cap: self.cap, entries }.serialize(serializer)
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for BoundedLru<V> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let saved = Saved::<Box<str>, V>::deserialize(deserializer)?;
        let mut lru = BoundedLru::new(saved.cap);
        for (key, value) in saved.entries {
            lru.map.push(key, value);
            if lru.map.len() > lru.cap {
                lru.map.pop_lru();
            }
        }
        Ok(lru)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_the_least_recently_used_beyond_the_cap() {
        let mut lru = BoundedLru::new(2);
        assert!(!lru.insert("a", 1));
        assert!(!lru.insert("b", 2));
        *lru.get_mut("a").unwrap() += 10;
        assert!(lru.insert("c", 3));
        assert!(lru.contains("a") && lru.contains("c") && !lru.contains("b"));
    }
}
