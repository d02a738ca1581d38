//! What watchers of a farm say to each other, as gossip keys and values.
//! Each watcher writes only its own keys (scuttlebutt):
//! - `s:<job>` = [`PeerSeen`]: what it last heard of the job.
//! - `n:<incident>:<event>:<repeat>:<sender>` = [`LedgerEntry`]: one line of the
//!   farm ledger. Every watcher keeps a copy of every entry it
//!   learns, so a watcher restarted with its state wiped learns it back.
//! - `a:<incident>` = [`Ack`] as JSON: an acknowledgement taken by the
//!   watcher that writes it.

use std::sync::Arc;

use crate::notification::{Ack, Event};

/// Acknowledgement keys a watcher publishes at most; past it the oldest go
/// (an incident acknowledged that long ago is closed, or known to every peer).
pub const ACKS_KEPT: usize = 1_000;

/// The gossip key of an acknowledgement of `incident`.
pub fn ack_key(incident: &str) -> String {
    format!("a:{incident}")
}

/// An acknowledgement's gossip value.
pub fn encode_ack(ack: &Ack) -> String {
    serde_json::to_string(ack).unwrap_or_default()
}
use crate::registry::PeerSeen;

/// A notification in the ledger: incident, event, repeat.
pub type NoteKey = (Arc<str>, Event, u32);

/// The gossip key of what this watcher heard of `job`.
pub fn seen_key(job: &str) -> String {
    format!("s:{job}")
}

/// The job a [`seen_key`] names.
pub fn parse_seen_key(key: &str) -> Option<&str> {
    key.strip_prefix("s:")
}

/// How a sent notification fared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Handed to the channels.
    Sent,
    /// A channel delivered it.
    Delivered,
    /// A channel failed to deliver it (others may take over).
    Failed,
}

impl State {
    /// Every state.
    pub const ALL: [State; 3] = [State::Sent, State::Delivered, State::Failed];

    fn name(self) -> &'static str {
        match self {
            State::Sent => "sent",
            State::Delivered => "delivered",
            State::Failed => "failed",
        }
    }
}

/// One entry of the ledger, as gossiped: `state;rank;took_over;ts_ms;job`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    /// How it fared.
    pub state: State,
    /// The sender's rank for it.
    pub rank: u32,
    /// Sent in place of a higher rank.
    pub took_over: bool,
    /// When (unix ms, the sender's clock).
    pub ts_ms: u64,
    /// What it is about: the job (for `peer_down`, the silent watcher), so
    /// that any watcher can close an alarm whose sender is gone.
    pub job: Arc<str>,
}

impl LedgerEntry {
    /// The gossip form.
    pub fn encode(&self) -> String {
        format!(
            "{};{};{};{};{}",
            self.state.name(),
            self.rank,
            u8::from(self.took_over),
            self.ts_ms,
            self.job
        )
    }

    /// From the gossip form; `None` if it is not one.
    pub fn decode(text: &str) -> Option<LedgerEntry> {
        let mut parts = text.splitn(5, ';');
        let name = parts.next()?;
        let state = State::ALL.into_iter().find(|s| s.name() == name)?;
        Some(LedgerEntry {
            state,
            rank: parts.next()?.parse().ok()?,
            took_over: parts.next()? == "1",
            ts_ms: parts.next()?.parse().ok()?,
            job: Arc::from(parts.next()?),
        })
    }
}

/// `n:<incident>:<event>:<repeat>:<sender>`.
pub fn ledger_key(key: &NoteKey, sender: &str) -> String {
    format!("n:{}:{}:{}:{sender}", key.0, key.1.name(), key.2)
}

/// The notification and sender a [`ledger_key`] names.
pub fn parse_ledger_key(text: &str) -> Option<(NoteKey, &str)> {
    let rest = text.strip_prefix("n:")?;
    let mut parts = rest.splitn(4, ':');
    let incident = parts.next()?;
    let event = Event::from_name(parts.next()?)?;
    let repeat = parts.next()?.parse().ok()?;
    let sender = parts.next()?;
    Some(((Arc::from(incident), event, repeat), sender))
}

/// A gossip key and value, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Said {
    /// What the peer heard of a job.
    Seen {
        /// The job.
        job: String,
        /// What it heard.
        seen: PeerSeen,
    },
    /// A line of the ledger (the peer's own, or its copy of another's).
    Ledger {
        /// The notification.
        key: NoteKey,
        /// The watcher that sent it.
        sender: Arc<str>,
        /// How it fared.
        entry: LedgerEntry,
    },
    /// A peer's acknowledgement of an incident.
    Ack {
        /// The incident.
        incident: String,
        /// Who, when, why.
        ack: Ack,
    },
}

/// Reads one key and value; `None` for anything else (unknown or malformed).
pub fn read(key: &str, value: &str) -> Option<Said> {
    if let Some(job) = parse_seen_key(key) {
        return Some(Said::Seen {
            job: job.to_owned(),
            seen: PeerSeen::decode(value)?,
        });
    }
    if let Some(incident) = key.strip_prefix("a:") {
        // Bounded like a message: a peer's gossip is input too.
        if incident.len() > 64 || value.len() > 4096 {
            return None;
        }
        return Some(Said::Ack {
            incident: incident.to_owned(),
            ack: serde_json::from_str(value).ok()?,
        });
    }
    let (key, sender) = parse_ledger_key(key)?;
    Some(Said::Ledger {
        key,
        sender: Arc::from(sender),
        entry: LedgerEntry::decode(value)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ledger_entries_round_trip() {
        let e = LedgerEntry {
            state: State::Delivered,
            rank: 2,
            took_over: true,
            ts_ms: 1_700_000_000_000,
            job: Arc::from("nightly-etl"),
        };
        assert_eq!(LedgerEntry::decode(&e.encode()), Some(e.clone()));
        let key: NoteKey = (Arc::from("0123abcd"), Event::Down, 0);
        let text = ledger_key(&key, "watcher:b");
        let (back, sender) = parse_ledger_key(&text).expect("parses");
        assert_eq!((back, sender), (key.clone(), "watcher:b"));
        assert_eq!(LedgerEntry::decode("bogus;1;0;5;j"), None);
        assert_eq!(LedgerEntry::decode("sent;1;0;5"), None, "no job");
        assert_eq!(
            read(&text, &e.encode()),
            Some(Said::Ledger {
                key,
                sender: Arc::from("watcher:b"),
                entry: e
            })
        );
        assert_eq!(read("x:other", "1"), None);
        assert_eq!(read("s:etl", "not evidence"), None);
    }
}
