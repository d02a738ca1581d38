//! What the watcher tells people and machines: events, incidents and the
//! notification record every channel receives.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What happened to a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// No message within `every + grace`.
    Down,
    /// The job reported `fail`.
    Failed,
    /// A run did not end within `max_runtime`.
    Overrun,
    /// A scheduled run did not start within `start_within`.
    Late,
    /// A run sent nothing for `stall_after`.
    Stalled,
    /// A run succeeded sooner than `min_runtime` (it probably did nothing).
    TooFast,
    /// A follow-up: the incident named in the notification is over.
    Recovered,
    /// A follow-up: the alarm was false. Another watcher of the farm heard
    /// the job all along (this one was cut off from it and from that peer).
    Retracted,
    /// A watcher of the farm went silent (`job` names the watcher).
    PeerDown,
    /// This watcher lost every peer and most of its jobs at once: most
    /// likely its own network is cut. Sent instead of one alert per job.
    WatcherIsolated,
    /// Messages came for a job this watcher neither has in its
    /// configuration nor was declared: nobody watches it.
    UnknownJob,
    /// A declared job was silent for `[declare] retire_after` and is no
    /// longer watched (a notice: it has no follow-up).
    Retired,
    /// A run still going has lasted `slow_after` times the median duration
    /// of the job's last successful runs: raised while it runs, closed by
    /// its end.
    Slow,
}

impl Event {
    /// Every event.
    pub const ALL: [Event; 13] = [
        Event::Down,
        Event::Failed,
        Event::Overrun,
        Event::Late,
        Event::Stalled,
        Event::TooFast,
        Event::Recovered,
        Event::Retracted,
        Event::PeerDown,
        Event::WatcherIsolated,
        Event::UnknownJob,
        Event::Retired,
        Event::Slow,
    ];

    /// The event named `name` (as [`Event::name`] writes it).
    pub fn from_name(name: &str) -> Option<Event> {
        Event::ALL.into_iter().find(|e| e.name() == name)
    }

    /// The lower-case name used in topics, subjects and logs.
    pub fn name(self) -> &'static str {
        match self {
            Event::Down => "down",
            Event::Failed => "failed",
            Event::Overrun => "overrun",
            Event::Late => "late",
            Event::Stalled => "stalled",
            Event::TooFast => "too_fast",
            Event::Recovered => "recovered",
            Event::Retracted => "retracted",
            Event::PeerDown => "peer_down",
            Event::WatcherIsolated => "watcher_isolated",
            Event::UnknownJob => "unknown_job",
            Event::Retired => "retired",
            Event::Slow => "slow",
        }
    }

    /// How serious it is: what every channel with levels (PagerDuty
    /// severities, Opsgenie priorities, colours, icons) maps to its own,
    /// so a new event is placed once, here.
    pub fn severity(self) -> Severity {
        match self {
            Event::Down | Event::Failed | Event::PeerDown | Event::WatcherIsolated => {
                Severity::Critical
            }
            Event::Overrun | Event::Late | Event::Stalled => Severity::Error,
            Event::TooFast | Event::UnknownJob | Event::Slow => Severity::Warning,
            Event::Retired => Severity::Notice,
            Event::Recovered | Event::Retracted => Severity::Resolved,
        }
    }

    /// Whether this ends an incident (names it in `resolves`) rather than
    /// raising one.
    pub fn is_follow_up(self) -> bool {
        matches!(self, Event::Recovered | Event::Retracted)
    }
}

/// How serious an event is (see [`Event::severity`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// A job or watcher is down or failed.
    Critical,
    /// A run went wrong (overrun, late, stalled).
    Error,
    /// Worth a look (too fast, an unknown job).
    Warning,
    /// For the record (a declared job retired).
    Notice,
    /// A follow-up: the trouble is over.
    Resolved,
}

impl Severity {
    /// 0 for the most serious.
    pub fn rank(self) -> u8 {
        match self {
            Severity::Critical => 0,
            Severity::Error => 1,
            Severity::Warning => 2,
            Severity::Notice => 3,
            Severity::Resolved => 4,
        }
    }

    /// Its name in templates: `critical`, `error`, `warning`, `notice`,
    /// `resolved`.
    pub fn name(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Notice => "notice",
            Severity::Resolved => "resolved",
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One spelling of a run id wherever a person or JSON sees it: 16 hex
/// digits (as `qcic send start` prints it and `qcic send --run-id` takes
/// it, as emails and `history` show it). A binary form (MessagePack: the
/// alert stream) keeps the uint. Either form is read back, so a state
/// database written before the change still loads.
pub mod run_id_form {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes `id`: hex text for JSON, the number for MessagePack.
    pub fn serialize<S: Serializer>(id: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
        match id {
            None => s.serialize_none(),
            Some(id) if s.is_human_readable() => s.serialize_some(&format!("{id:016x}")),
            Some(id) => s.serialize_some(id),
        }
    }

    /// Reads a run id written either way.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Number(u64),
            Hex(String),
        }
        match Option::<Form>::deserialize(d)? {
            None => Ok(None),
            Some(Form::Number(id)) => Ok(Some(id)),
            Some(Form::Hex(text)) => u64::from_str_radix(&text, 16).map(Some).map_err(|_| {
                serde::de::Error::custom(format!("{text:?} is no run id (16 hex digits)"))
            }),
        }
    }
}

/// The last second an RFC 3339 date can name (9999-12-31T23:59:59Z), unix ms.
const LAST_RFC3339_MS: u64 = 253_402_300_799_000;

/// `ms` (unix) as an RFC 3339 date, to the second. Never panics: a time
/// past the year 9999 (which humantime cannot format) reads "after 9999".
pub fn rfc3339(ms: u64) -> String {
    if ms > LAST_RFC3339_MS {
        return "after 9999-12-31T23:59:59Z".to_owned();
    }
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms))
        .to_string()
}

/// A stable incident id: the same for every watcher that sees the same
/// trouble, because it is derived only from what the trouble is (job, event,
/// and the message or run it is about), never from the watcher or its clock.
pub fn incident_id(job: &str, event: Event, basis: &str) -> String {
    let mut hash = Sha256::new();
    for part in ["qcic-incident-v1", job, event.name(), basis] {
        hash.update(part.as_bytes());
        hash.update([0u8]);
    }
    hex::encode(&hash.finalize()[..8])
}

/// One notification, as every channel receives it. The ZeroMQ channel sends
/// it as a MessagePack map with these field names (`docs/PROTOCOL.md`).
/// Names are shared (`Arc<str>`): the same job, watcher and host names are
/// in every notification, and a notification is cloned for the log, the
/// reminders and every channel; a burst of ten thousand paid ~10
/// allocations each.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// What happened.
    pub event: Event,
    /// The job.
    pub job: Arc<str>,
    /// The incident this is about; a `recovered` carries its incident's id.
    pub incident: Arc<str>,
    /// The watcher that sent it.
    pub watcher: Arc<str>,
    /// When the watcher detected it, unix ms on the watcher's clock.
    pub detected_ms: u64,
    /// When the watcher last heard from the job, unix ms on its clock.
    pub last_seen_ms: Option<u64>,
    /// On `recovered`: the event the incident was opened for.
    pub resolves: Option<Event>,
    /// On `recovered`: how long the incident lasted, in ms (for `down`, from
    /// the last message before it to the first one after).
    pub duration_ms: Option<u64>,
    /// The run concerned, if any: 16 hex digits in JSON (a u64 past 2^53
    /// is no JavaScript number), a uint in MessagePack.
    #[serde(with = "run_id_form")]
    pub run_id: Option<u64>,
    /// The sending host, if known.
    pub host: Option<Arc<str>>,
    /// The exit code reported with `fail`.
    pub exit_code: Option<i32>,
    /// A short explanation (the failure reason, or what ended the incident).
    pub text: Option<String>,
    /// 0 for the first notification of an incident; 1, 2, ... for the
    /// reminders `repeat` sends while it stays open.
    #[serde(default)]
    pub repeat: u32,
    /// In a watcher farm: where this notification stands (absent for a
    /// watcher on its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub farm: Option<FarmView>,
    /// The channels (by index) this notification goes to, when decided
    /// where it was raised: the follow-ups of a declared job that is no
    /// longer watched go where its alarms went, though its route is gone.
    /// `None`: routed by the job's name. Not sent, not stored.
    #[serde(skip)]
    pub route: Option<Arc<[usize]>>,
    /// On an alarm held back because a job it depends on (`depends_on`)
    /// was down or failed: that job. Sent when the hold ended with the
    /// alarm still open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked_by: Option<Arc<str>>,
    /// On an alarm held back by a maintenance window: its name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_by: Option<String>,
    /// On an alarm held back (silence, maintenance, dependency): how long, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_ms: Option<u64>,
    /// On a follow-up of an acknowledged incident: who acknowledged it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acked: Option<Ack>,
    /// On an escalation: its step (1 for the first), sent to the step's
    /// channels. On a follow-up: how many steps went out (it goes to
    /// their channels too, so a pager that was paged is told it is over).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub escalation: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Where escalation steps start among an incident's rounds (see
/// [`Notification::round`]): past any count of reminders.
pub const ESCALATION_ROUND: u32 = 1 << 31;

/// Someone said "I'm on it" for an incident: no reminders and no
/// escalation follow for it; its follow-up still goes out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// Who (`--by`, or the HTTP token's name).
    pub by: String,
    /// When, unix ms on the clock of the watcher that took it.
    pub at_ms: u64,
    /// What they said, if anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// What a farm watcher knew when it sent a notification: enough for a
/// person or a machine to tell a duplicate (same `incident`, another
/// `watcher`) for what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FarmView {
    /// The sender's rank for this incident: 0 is the watcher meant to send it.
    pub rank: u32,
    /// Sent by a lower rank because the higher ones were dead, silent or
    /// failed to deliver.
    pub took_over: bool,
    /// Watchers the sender could reach, itself included.
    pub reachable: u32,
    /// Watchers configured, itself included.
    pub configured: u32,
    /// Some watcher was unreachable: another may have sent this too.
    pub partition_suspected: bool,
}

impl Notification {
    /// A first notification of `event`: what it is about, who sends it and
    /// when; every optional detail empty, for the caller to fill in.
    pub fn new(
        event: Event,
        job: Arc<str>,
        incident: Arc<str>,
        watcher: Arc<str>,
        detected_ms: u64,
    ) -> Notification {
        Notification {
            event,
            job,
            incident,
            watcher,
            detected_ms,
            last_seen_ms: None,
            resolves: None,
            duration_ms: None,
            run_id: None,
            host: None,
            exit_code: None,
            text: None,
            repeat: 0,
            farm: None,
            route: None,
            blocked_by: None,
            held_by: None,
            held_ms: None,
            acked: None,
            escalation: 0,
        }
    }

    /// Which sending of its incident's alarm this is: 0 the first, `n` the
    /// n-th reminder, [`ESCALATION_ROUND`] + `k` the k-th escalation step
    /// (a follow-up is 0). What the notification log and the farm ledger
    /// tell notifications of one incident apart by.
    pub fn round(&self) -> u32 {
        if self.escalation > 0 && !self.event.is_follow_up() {
            ESCALATION_ROUND.saturating_add(self.escalation)
        } else {
            self.repeat
        }
    }

    /// Sets what [`Notification::round`] reads.
    pub fn set_round(&mut self, round: u32) {
        if round > ESCALATION_ROUND {
            self.escalation = round - ESCALATION_ROUND;
            self.repeat = 0;
        } else {
            self.repeat = round;
        }
    }

    /// One line for logs and subjects: `DOWN nightly-etl`.
    pub fn headline(&self) -> String {
        if self.escalation > 0 && !self.event.is_follow_up() {
            return format!(
                "{} {} (escalation {})",
                self.event.name().to_uppercase(),
                self.job,
                self.escalation
            );
        }
        match (self.resolves, self.repeat) {
            (Some(resolved), _) => format!(
                "{} {} (was {resolved})",
                self.event.name().to_uppercase(),
                self.job
            ),
            (None, 0) => format!("{} {}", self.event.name().to_uppercase(), self.job),
            (None, n) => format!(
                "{} {} (reminder {n})",
                self.event.name().to_uppercase(),
                self.job
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_past_the_year_9999_are_written_not_panicked_on() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(LAST_RFC3339_MS), "9999-12-31T23:59:59Z");
        assert_eq!(
            rfc3339(LAST_RFC3339_MS + 1000),
            "after 9999-12-31T23:59:59Z"
        );
        assert_eq!(rfc3339(u64::MAX), "after 9999-12-31T23:59:59Z");
    }

    #[test]
    fn a_run_id_is_hex_text_in_json_a_uint_in_messagepack_and_read_either_way() {
        let mut note = Notification::new(Event::Overrun, "j".into(), "i".into(), "w".into(), 0);
        note.run_id = Some(u64::MAX - 1);
        let json = serde_json::to_value(&note).unwrap();
        assert_eq!(json["run_id"], "fffffffffffffffe");
        let back: Notification = serde_json::from_value(json).unwrap();
        assert_eq!(back.run_id, note.run_id);
        let packed = rmp_serde::to_vec_named(&note).unwrap();
        let value: rmpv_like::Value = rmp_serde::from_slice(&packed).unwrap();
        assert_eq!(value.run_id, Some(u64::MAX - 1), "a uint in MessagePack");
        // A row written before the change (a number) still loads.
        let mut old = serde_json::to_value(&note).unwrap();
        old["run_id"] = serde_json::json!(66);
        let back: Notification = serde_json::from_value(old).unwrap();
        assert_eq!(back.run_id, Some(66));
    }

    /// The MessagePack body read as plain values, not through the same
    /// `run_id_form`.
    mod rmpv_like {
        #[derive(serde::Deserialize)]
        pub struct Value {
            pub run_id: Option<u64>,
        }
    }

    #[test]
    fn every_event_is_found_by_its_name() {
        for event in Event::ALL {
            assert_eq!(Event::from_name(event.name()), Some(event));
        }
        assert_eq!(Event::from_name("bogus"), None);
    }

    #[test]
    fn incident_ids_depend_on_what_not_who() {
        let a = incident_id("etl", Event::Down, "host/1/7");
        assert_eq!(a, incident_id("etl", Event::Down, "host/1/7"));
        assert_eq!(a.len(), 16);
        assert_ne!(a, incident_id("etl", Event::Down, "host/1/8"));
        assert_ne!(a, incident_id("etl", Event::Failed, "host/1/7"));
        assert_ne!(a, incident_id("etl2", Event::Down, "host/1/7"));
        // Separators keep ("ab", "c") apart from ("a", "bc").
        assert_ne!(
            incident_id("ab", Event::Down, "c"),
            incident_id("a", Event::Down, "bc")
        );
        // Pinned: changing the derivation would break farms mid-upgrade.
        assert_eq!(incident_id("nightly-etl", Event::Down, "never"), PINNED);
    }

    // sha256("qcic-incident-v1\0nightly-etl\0down\0never\0")[..8], computed with Python's hashlib.
    const PINNED: &str = "ecc92f763f6584cd";
}
