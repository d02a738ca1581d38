//! The farm ledger: which watcher sent, delivered or
//! failed to deliver which notification. It knows nothing of gossip: the
//! gate records what it sends and what peers say, and publishes what
//! changed.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use super::wire::{LedgerEntry, NoteKey, State};
use crate::notification::Event;

/// Notifications the ledger remembers; past it the oldest go.
pub const LEDGER_KEEP: usize = 10_000;

/// Who did what with each notification. Bounded.
#[derive(Debug)]
pub struct Ledger {
    by_key: HashMap<NoteKey, BTreeMap<Arc<str>, LedgerEntry>>,
    /// Keys, oldest first.
    order: VecDeque<NoteKey>,
    keep: usize,
}

/// What [`Ledger::record`] changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Recorded {
    /// Whether the entry was new or different.
    pub changed: bool,
    /// A second watcher now sent this notification too.
    pub duplicate: bool,
    /// Notifications dropped to stay bounded, with the watchers that had
    /// entries for them (their gossip keys go too).
    pub evicted: Vec<(NoteKey, Vec<Arc<str>>)>,
}

impl Ledger {
    /// An empty ledger of at most `keep` notifications.
    pub fn new(keep: usize) -> Ledger {
        Ledger {
            by_key: HashMap::new(),
            order: VecDeque::new(),
            keep: keep.max(1),
        }
    }

    /// `sender`'s entry for `key`.
    pub fn get(&self, key: &NoteKey, sender: &str) -> Option<&LedgerEntry> {
        self.by_key.get(key)?.get(sender)
    }

    /// When `key` was first sent by any watcher (wall ms), if it was.
    pub fn first_sent(&self, key: &NoteKey) -> Option<u64> {
        self.by_key
            .get(key)?
            .values()
            .filter(|e| e.state != State::Failed)
            .map(|e| e.ts_ms)
            .min()
    }

    /// The alarm event the ledger holds for `incident` (what a follow-up of
    /// it resolves), if any.
    pub fn alarm_of(&self, incident: &str) -> Option<Event> {
        self.by_key
            .keys()
            .find(|(id, event, _)| **id == *incident && !event.is_follow_up())
            .map(|(_, event, _)| *event)
    }

    /// Whether any round of the alarm `event` of `incident` (the alarm, a
    /// reminder, an escalation step) was sent by some watcher: its
    /// follow-up is owed then.
    pub fn any_round_sent(&self, incident: &str, event: Event) -> bool {
        self.by_key.iter().any(|((id, e, _), by)| {
            **id == *incident && *e == event && by.values().any(|x| x.state != State::Failed)
        })
    }

    /// Whether anything is known of `key`.
    pub fn contains(&self, key: &NoteKey) -> bool {
        self.by_key.contains_key(key)
    }

    /// Records `sender`'s entry for `key`.
    pub fn record(&mut self, key: &NoteKey, sender: &Arc<str>, entry: LedgerEntry) -> Recorded {
        let by = self.by_key.entry(key.clone()).or_default();
        if by.get(sender) == Some(&entry) {
            return Recorded::default();
        }
        let counted = |by: &BTreeMap<Arc<str>, LedgerEntry>| {
            by.values().filter(|e| e.state != State::Failed).count()
        };
        let before = counted(by);
        let fresh = by.is_empty();
        by.insert(Arc::clone(sender), entry);
        let duplicate = before == 1 && counted(by) == 2;
        if fresh {
            self.order.push_back(key.clone());
        }
        let mut evicted = Vec::new();
        while self.order.len() > self.keep {
            if let Some(old) = self.order.pop_front() {
                let who = self
                    .by_key
                    .remove(&old)
                    .map(|by| by.into_keys().collect())
                    .unwrap_or_default();
                evicted.push((old, who));
            }
        }
        Recorded {
            changed: true,
            duplicate,
            evicted,
        }
    }

    /// The watchers that sent (or delivered) `key`.
    pub fn senders(&self, key: &NoteKey) -> BTreeSet<Arc<str>> {
        self.by_key
            .get(key)
            .map(|by| {
                by.iter()
                    .filter(|(_, e)| e.state != State::Failed)
                    .map(|(s, _)| Arc::clone(s))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether `member` failed to deliver `key`.
    pub fn failed(&self, key: &NoteKey, member: &str) -> bool {
        self.get(key, member)
            .is_some_and(|e| e.state == State::Failed)
    }

    /// Whether someone's send of `key` makes another unneeded: a delivery
    /// by anyone, or a send by a watcher still alive.
    pub fn handled(&self, key: &NoteKey, is_live: impl Fn(&Arc<str>) -> bool) -> bool {
        self.by_key.get(key).is_some_and(|by| {
            by.iter().any(|(who, e)| match e.state {
                State::Delivered => true,
                State::Sent => is_live(who),
                State::Failed => false,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notification::Event;

    fn entry(state: State) -> LedgerEntry {
        LedgerEntry {
            state,
            rank: 0,
            took_over: false,
            ts_ms: 1,
            job: Arc::from("j"),
        }
    }

    #[test]
    fn counts_duplicates_tells_who_handled_and_stays_bounded() {
        let mut ledger = Ledger::new(2);
        let (a, b): (Arc<str>, Arc<str>) = (Arc::from("a"), Arc::from("b"));
        let k1: NoteKey = (Arc::from("i1"), Event::Down, 0);
        assert!(ledger.record(&k1, &a, entry(State::Sent)).changed);
        assert!(!ledger.record(&k1, &a, entry(State::Sent)).changed);
        assert!(ledger.handled(&k1, |w| **w == *"a"));
        assert!(!ledger.handled(&k1, |_| false), "sent by a dead watcher");
        assert!(ledger.record(&k1, &b, entry(State::Sent)).duplicate);
        ledger.record(&k1, &b, entry(State::Failed));
        assert!(ledger.failed(&k1, "b"));
        assert_eq!(ledger.senders(&k1), BTreeSet::from([Arc::clone(&a)]));
        ledger.record(&k1, &b, entry(State::Delivered));
        assert!(ledger.handled(&k1, |_| false), "delivered by anyone");
        let k2: NoteKey = (Arc::from("i2"), Event::Down, 0);
        let k3: NoteKey = (Arc::from("i3"), Event::Down, 0);
        ledger.record(&k2, &a, entry(State::Sent));
        let out = ledger.record(&k3, &a, entry(State::Sent));
        assert_eq!(out.evicted, vec![(k1.clone(), vec![a, b])]);
        assert!(!ledger.contains(&k1));
    }
}
