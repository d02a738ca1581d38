//! An ordered index of deadlines, so the checker sleeps exactly until the
//! next one instead of polling.

use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;

use tokio::time::Instant;

/// Deadlines keyed by `K`; at most one deadline per key.
#[derive(Debug)]
pub struct Deadlines<K: Ord + Hash + Clone> {
    ordered: BTreeSet<(Instant, K)>,
    by_key: HashMap<K, Instant>,
}

impl<K: Ord + Hash + Clone> Default for Deadlines<K> {
    fn default() -> Self {
        Deadlines {
            ordered: BTreeSet::new(),
            by_key: HashMap::new(),
        }
    }
}

impl<K: Ord + Hash + Clone> Deadlines<K> {
    /// Sets (or moves) the deadline of `key`.
    pub fn set(&mut self, key: K, at: Instant) {
        if let Some(old) = self.by_key.insert(key.clone(), at) {
            self.ordered.remove(&(old, key.clone()));
        }
        self.ordered.insert((at, key));
    }

    /// Removes the deadline of `key`, if any.
    pub fn clear(&mut self, key: &K) {
        if let Some(old) = self.by_key.remove(key) {
            self.ordered.remove(&(old, key.clone()));
        }
    }

    /// The deadline of `key`, if set.
    pub fn get(&self, key: &K) -> Option<Instant> {
        self.by_key.get(key).copied()
    }

    /// The earliest deadline.
    pub fn next(&self) -> Option<Instant> {
        self.ordered.first().map(|(at, _)| *at)
    }

    /// Removes and returns every key whose deadline is at or before `now`, earliest first.
    #[cfg(test)]
    pub fn pop_due(&mut self, now: Instant) -> Vec<K> {
        self.pop_due_max(now, usize::MAX)
    }

    /// Like [`Deadlines::pop_due`], at most `max` keys.
    pub fn pop_due_max(&mut self, now: Instant, max: usize) -> Vec<K> {
        let mut due = Vec::new();
        while let Some((at, _)) = self.ordered.first() {
            if due.len() >= max {
                break;
            }
            if *at > now {
                break;
            }
            if let Some((_, key)) = self.ordered.pop_first() {
                self.by_key.remove(&key);
                due.push(key);
            }
        }
        due
    }

    /// Adds a deadline its owner keeps the time of (so no lookup entry is
    /// needed: it saves a hash-map entry per key). The owner removes it with
    /// [`Deadlines::remove_untracked`] and the same time.
    pub fn insert_untracked(&mut self, key: K, at: Instant) {
        self.ordered.insert((at, key));
    }

    /// Removes a deadline added with [`Deadlines::insert_untracked`].
    pub fn remove_untracked(&mut self, key: K, at: Instant) {
        self.ordered.remove(&(at, key));
    }

    /// Every deadline, tracked or not, earliest first.
    pub fn iter(&self) -> impl Iterator<Item = (&K, Instant)> {
        self.ordered.iter().map(|(at, k)| (k, *at))
    }

    /// How many deadlines are set.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.ordered.len()
    }

    /// Whether none is set.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.ordered.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn keeps_one_deadline_per_key_in_order() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut d = Deadlines::default();
        d.set("a", t0 + s(10));
        d.set("b", t0 + s(5));
        d.set("c", t0 + s(7));
        assert_eq!(d.next(), Some(t0 + s(5)));
        d.set("b", t0 + s(20)); // moved later
        assert_eq!(d.next(), Some(t0 + s(7)));
        assert_eq!(d.len(), 3);
        d.clear(&"c");
        d.clear(&"zzz");
        assert_eq!(d.pop_due(t0 + s(9)), Vec::<&str>::new());
        assert_eq!(d.pop_due(t0 + s(10)), vec!["a"]);
        assert_eq!(d.pop_due(t0 + s(100)), vec!["b"]);
        assert!(d.is_empty());
        assert_eq!(d.next(), None);
    }
}
