//! Digests: the notifications a channel gathered while a group was open
//! (`group_wait`), sent as one message: counts by event first, then each
//! incident. Each incident in it is still tracked on its own: a digest's
//! delivery is the delivery of every notification it carries (outbox,
//! ledger), and each one's follow-up still comes.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use serde_json::json;

use super::http::{Text, note_key};
use crate::notification::{Event, Notification, rfc3339};

/// Several notifications as one message.
#[derive(Debug, Clone, Copy)]
pub struct Digest<'a> {
    /// What it carries, oldest first.
    pub notes: &'a [Arc<Notification>],
}

impl Digest<'_> {
    /// How many of each event, most serious first.
    pub fn counts(&self) -> Vec<(Event, usize)> {
        let mut counts: BTreeMap<Event, usize> = BTreeMap::new();
        for note in self.notes {
            *counts.entry(note.event).or_default() += 1;
        }
        let mut counts: Vec<(Event, usize)> = counts.into_iter().collect();
        counts.sort_by_key(|(event, n)| (event.severity().rank(), usize::MAX - n));
        counts
    }

    /// `12 notifications: 10 down, 2 recovered`.
    pub fn summary(&self) -> String {
        let counts: Vec<String> = self
            .counts()
            .iter()
            .map(|(event, n)| format!("{n} {event}"))
            .collect();
        format!("{} notifications: {}", self.notes.len(), counts.join(", "))
    }

    /// The watchers that raised its notifications (one, unless the
    /// watchers of a farm took over from each other), comma-separated.
    pub fn watchers(&self) -> String {
        let mut names: Vec<&str> = self.notes.iter().map(|n| &*n.watcher).collect();
        names.sort_unstable();
        names.dedup();
        names.join(", ")
    }

    /// Its most serious event (colours, priorities, icons).
    pub fn worst(&self) -> Event {
        self.counts()
            .first()
            .map_or(Event::Down, |(event, _)| *event)
    }

    /// One line per notification, in ASCII punctuation (an email stays
    /// 7-bit, so no incident id is ever broken across an encoded line):
    /// `DOWN nightly-etl - incident 3f2a... - watcher-a - 2026-12-05T02:00:00Z - reason`.
    pub fn lines(&self) -> String {
        let mut out = String::new();
        for note in self.notes {
            let _ = write!(
                out,
                "{} - incident {} - {} - {}",
                note.headline(),
                note.incident,
                note.watcher,
                rfc3339(note.detected_ms)
            );
            if let Some(text) = &note.text {
                let text: String = crate::printable::one_line(text).chars().take(200).collect();
                let _ = write!(out, " - {text}");
            }
            out.push('\n');
        }
        out
    }

    /// A key stable for every attempt at this digest.
    pub fn key(&self) -> String {
        use sha2::{Digest as _, Sha256};
        let mut hash = Sha256::new();
        for note in self.notes {
            hash.update(note_key(note).as_bytes());
        }
        hex::encode(&hash.finalize()[..12])
    }

    /// As a text message: the summary as its title, a line per
    /// notification as its body.
    pub fn text(&self) -> Text {
        self.text_within(usize::MAX)
    }

    /// As a text message of at most `max` characters (a chat service's
    /// limit, title included): the summary always, then as many whole
    /// lines as fit and `... and N more` for the rest, so a cut message
    /// still says how many it carries.
    pub fn text_within(&self, max: usize) -> Text {
        let title = format!("qcic: {}", self.summary());
        let lines = self.lines();
        let mut body = String::new();
        let mut used = title.chars().count() + 1;
        let total = self.notes.len();
        for (shown, line) in lines.lines().enumerate() {
            let more = format!("... and {} more", total - shown);
            let cost = line.chars().count() + 1;
            // Room for this line and, if others follow, the count of them.
            let reserve = if shown + 1 < total { more.len() + 1 } else { 0 };
            if used + cost + reserve > max {
                body.push_str(&more);
                body.push('\n');
                break;
            }
            body.push_str(line);
            body.push('\n');
            used += cost;
        }
        Text {
            title,
            body,
            event: self.worst(),
            key: self.key(),
            heading: true,
        }
    }

    /// As JSON (webhook, command): `digest`, `count`, `by_event` and every
    /// notification whole, as the channel sends one alone.
    pub fn json(&self) -> serde_json::Value {
        let by_event: BTreeMap<&str, usize> = self
            .counts()
            .iter()
            .map(|(event, n)| (event.name(), *n))
            .collect();
        json!({
            "digest": true,
            "count": self.notes.len(),
            "by_event": by_event,
            "notifications": self.notes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(job: &str, event: Event) -> Arc<Notification> {
        let mut note =
            Notification::new(event, job.into(), format!("{job}-i").into(), "w".into(), 0);
        if event == Event::Recovered {
            note.resolves = Some(Event::Down);
        }
        Arc::new(note)
    }

    #[test]
    fn a_digest_counts_by_event_most_serious_first_then_lists_each() {
        let notes = vec![
            note("a", Event::Recovered),
            note("b", Event::Down),
            note("c", Event::Late),
            note("d", Event::Down),
        ];
        let digest = Digest { notes: &notes };
        assert_eq!(
            digest.summary(),
            "4 notifications: 2 down, 1 late, 1 recovered"
        );
        assert_eq!(digest.worst(), Event::Down);
        let lines = digest.lines();
        assert_eq!(lines.lines().count(), 4);
        assert!(
            lines.starts_with("RECOVERED a (was down) - incident a-i - w - 1970-01-01T00:00:00Z\n"),
            "{lines}"
        );
        let json = digest.json();
        assert_eq!(json["count"], 4);
        assert_eq!(json["by_event"]["down"], 2);
        assert_eq!(json["notifications"][1]["job"], "b");
        assert_eq!(digest.key(), Digest { notes: &notes }.key());
        // Cut to a service's limit: whole lines, then how many more.
        let cut = digest.text_within(160);
        assert!(cut.whole().chars().count() <= 160, "{}", cut.whole());
        assert!(cut.body.ends_with(" more\n"), "{}", cut.body);
        let shown = cut.body.lines().count() - 1;
        assert!(
            cut.body.contains(&format!("... and {} more", 4 - shown)),
            "{}",
            cut.body
        );
        assert_eq!(digest.text_within(10_000).body, digest.lines());
        assert_ne!(digest.key(), Digest { notes: &notes[1..] }.key());
    }
}
