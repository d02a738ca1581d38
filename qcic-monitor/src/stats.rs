//! Counters of everything the watcher received, dropped and sent.

use std::sync::atomic::{AtomicU64, Ordering};

use qcic_sdk::DecodeError;
use tracing::info;

/// Why a frame was dropped. The names are stable: they are metric labels
/// and counter names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Longer than the protocol's limit.
    TooLarge,
    /// Not a message of the v1 shape.
    Malformed,
    /// A protocol version this watcher does not know.
    UnsupportedVersion,
    /// A kind code v1 does not define.
    UnknownKind,
    /// A field that breaks a limit of the protocol.
    InvalidField,
    /// More than one frame.
    Multipart,
    /// Over the job's rate limit from its sender.
    RateLimited,
    /// From a sender key the job is not pinned to.
    WrongSender,
}

impl DropReason {
    /// Every reason, in the order of [`Stats::dropped`].
    pub const ALL: [DropReason; 8] = [
        DropReason::TooLarge,
        DropReason::Malformed,
        DropReason::UnsupportedVersion,
        DropReason::UnknownKind,
        DropReason::InvalidField,
        DropReason::Multipart,
        DropReason::RateLimited,
        DropReason::WrongSender,
    ];

    /// The label (`too_large`, ...).
    pub fn name(self) -> &'static str {
        match self {
            DropReason::TooLarge => "too_large",
            DropReason::Malformed => "malformed",
            DropReason::UnsupportedVersion => "unsupported_version",
            DropReason::UnknownKind => "unknown_kind",
            DropReason::InvalidField => "invalid_field",
            DropReason::Multipart => "multipart",
            DropReason::RateLimited => "rate_limited",
            DropReason::WrongSender => "wrong_sender",
        }
    }

    /// The counter's name (`dropped_too_large`, ...).
    pub fn counter(self) -> &'static str {
        match self {
            DropReason::TooLarge => "dropped_too_large",
            DropReason::Malformed => "dropped_malformed",
            DropReason::UnsupportedVersion => "dropped_unsupported_version",
            DropReason::UnknownKind => "dropped_unknown_kind",
            DropReason::InvalidField => "dropped_invalid_field",
            DropReason::Multipart => "dropped_multipart",
            DropReason::RateLimited => "dropped_rate_limited",
            DropReason::WrongSender => "dropped_wrong_sender",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl Stats {
    /// Counts a refused declaration; the new total for its reason.
    pub fn refuse_declaration(&self, why: DeclareRefusal) -> u64 {
        let i = DeclareRefusal::ALL
            .iter()
            .position(|r| *r == why)
            .unwrap_or(0);
        self.declarations_refused[i].fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Declarations refused for `why` so far.
    pub fn declarations_refused(&self, why: DeclareRefusal) -> u64 {
        let i = DeclareRefusal::ALL
            .iter()
            .position(|r| *r == why)
            .unwrap_or(0);
        self.declarations_refused[i].load(Ordering::Relaxed)
    }
}

impl From<&DecodeError> for DropReason {
    fn from(err: &DecodeError) -> DropReason {
        match err {
            DecodeError::TooLarge { .. } => DropReason::TooLarge,
            DecodeError::Malformed(_) => DropReason::Malformed,
            DecodeError::UnsupportedVersion(_) => DropReason::UnsupportedVersion,
            DecodeError::UnknownKind(_) => DropReason::UnknownKind,
            DecodeError::InvalidField { .. } | DecodeError::InvalidExpect(_) => {
                DropReason::InvalidField
            }
        }
    }
}

/// Why a declaration was refused. The names are stable: metric labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeclareRefusal {
    /// No `[declare]` table, or `allow = false`.
    Disabled,
    /// The name matches none of `[declare] jobs`.
    Name,
    /// The sender's key is not in `[declare] senders`.
    Sender,
    /// A value the watcher cannot take (a cron expression or time zone it
    /// cannot read, a limit a `[[job]]` may not have).
    Invalid,
    /// A schedule tighter than `[declare] min_every`.
    Schedule,
    /// A channel the watcher does not have.
    Channel,
    /// `[declare] max_jobs` declared jobs already.
    Full,
    /// The job is in the configuration, which wins (logged once per job).
    Configured,
    /// The job was declared with another sender key.
    Pinned,
}

impl DeclareRefusal {
    /// Every reason, in the order of [`Stats::declarations_refused`].
    pub const ALL: [DeclareRefusal; 9] = [
        DeclareRefusal::Disabled,
        DeclareRefusal::Name,
        DeclareRefusal::Sender,
        DeclareRefusal::Invalid,
        DeclareRefusal::Schedule,
        DeclareRefusal::Channel,
        DeclareRefusal::Full,
        DeclareRefusal::Configured,
        DeclareRefusal::Pinned,
    ];

    /// The label.
    pub fn name(self) -> &'static str {
        match self {
            DeclareRefusal::Disabled => "disabled",
            DeclareRefusal::Name => "name",
            DeclareRefusal::Sender => "sender",
            DeclareRefusal::Invalid => "invalid",
            DeclareRefusal::Schedule => "schedule",
            DeclareRefusal::Channel => "channel",
            DeclareRefusal::Full => "full",
            DeclareRefusal::Configured => "configured",
            DeclareRefusal::Pinned => "pinned",
        }
    }
}

/// Process-wide counters; every one only grows.
#[derive(Debug, Default)]
pub struct Stats {
    /// Each job's run figures for `/metrics` (last success, durations).
    pub runs: crate::metrics::RunMetrics,
    /// Frames taken off the PULL socket.
    pub frames: AtomicU64,
    /// Frames that decoded into a valid message.
    pub accepted: AtomicU64,
    /// Frames dropped, by reason (in the order of [`DropReason::ALL`]).
    dropped: [AtomicU64; 8],
    /// CURVE connections refused by the ZAP handler (unknown key, no CURVE).
    pub curve_refused: AtomicU64,
    /// Failed handshakes on the CURVE socket (plaintext sender, wrong server key, refused key).
    pub handshake_failed: AtomicU64,
    /// Messages whose sender's clock was off by more than `max_clock_skew`.
    pub skewed_messages: AtomicU64,
    /// Messages delivered late (queued while a link was cut) that were
    /// older than what was already known of their job: recorded, but not
    /// taken as new life.
    pub stale_messages: AtomicU64,
    /// Accepted messages by kind (code - 1).
    pub by_kind: [AtomicU64; qcic_sdk::Kind::ALL.len()],
    /// Messages decoded and waiting for the checker (a gauge).
    pub inbound_queued: AtomicU64,
    /// Per channel: (delivered, failed).
    pub channels: std::sync::Mutex<std::collections::BTreeMap<String, (u64, u64)>>,
    /// Declarations refused, by reason (in the order of [`DeclareRefusal::ALL`]).
    pub declarations_refused: [AtomicU64; DeclareRefusal::ALL.len()],
    /// Declarations taken: a new job, or a declared job's settings changed.
    pub declarations_taken: AtomicU64,
    /// Declarations that changed nothing (the periodic re-declaration).
    pub declarations_unchanged: AtomicU64,
    /// Declarations that changed a declared job's settings.
    pub declarations_changed: AtomicU64,
    /// Declared jobs watched now (a gauge).
    pub declared_jobs: AtomicU64,
    /// Declared jobs removed for silence (`[declare] retire_after`).
    pub declared_retired: AtomicU64,
    /// `unknown_job` notifications raised.
    pub unknown_job_alerts: AtomicU64,
    /// New unknown names held back by the alert budget (each alerts later,
    /// when it is heard again with room in the budget).
    pub unknown_job_alerts_held: AtomicU64,
    /// Valid messages for jobs not in the config.
    pub unknown_job_messages: AtomicU64,
    /// Distinct unknown job names remembered (capped by `max_unknown_jobs`).
    pub unknown_job_names: AtomicU64,
    /// Notifications produced (after duplicate suppression).
    pub notifications: AtomicU64,
    /// Notifications the notification log had already seen.
    pub duplicates_suppressed: AtomicU64,
    /// Notifications delivered by a channel.
    pub delivered: AtomicU64,
    /// Delivery attempts that failed and were retried.
    pub delivery_retries: AtomicU64,
    /// Digests delivered: messages carrying several notifications (each
    /// also counted in `delivered`).
    pub digests: AtomicU64,
    /// Notifications a channel gave up on or could not queue.
    pub delivery_failed: AtomicU64,
    /// State database transactions that failed (disk full, I/O error);
    /// what they carried is kept and written again.
    pub state_write_failures: AtomicU64,
    /// HTTP connections closed before they were answered: idle at the
    /// connection cap, request headers not in within 5 s, or past the
    /// time limit.
    pub http_connections_closed: AtomicU64,
    /// The same for the control socket.
    pub control_connections_closed: AtomicU64,
    /// HTTP requests refused by the token check (none, unknown, or a
    /// read token on a write).
    pub http_refused: AtomicU64,
    /// Sender hosts in the clock-skew table (a gauge; the views show the
    /// largest skews, `registry::HOSTS_SHOWN` at most).
    pub hosts_known: AtomicU64,
    /// Connections to the ingest port now (a gauge).
    pub ingest_connections: AtomicU64,
    /// Ingest connections the connection guard closed (over a limit, or
    /// nothing valid sent in time).
    pub ingest_connections_closed: AtomicU64,
    /// Configuration reloads taken (SIGHUP).
    pub config_reloads: AtomicU64,
    /// Configuration reloads refused (the file had an error; the running
    /// configuration stayed).
    pub config_reload_failures: AtomicU64,
    /// Farm: each configured peer and whether it is reachable now.
    pub peers: std::sync::Mutex<std::collections::BTreeMap<String, bool>>,
    /// Farm: notifications this watcher skipped because a peer had sent them.
    pub farm_suppressed: AtomicU64,
    /// Farm: notifications this watcher sent in place of a higher rank.
    pub farm_took_over: AtomicU64,
    /// Farm: notifications known to have been sent by more than one watcher
    /// (a partition or a failed delivery), counted once each.
    pub farm_duplicate_sends: AtomicU64,
    /// Farm: gossip datagrams refused: not sealed with the farm key,
    /// altered, replayed or stale (`farm::sealed`).
    pub farm_gossip_refused: AtomicU64,
}

impl Stats {
    /// Counts a channel's delivery (`ok`) or failure.
    pub fn channel_result(&self, channel: &str, ok: bool) {
        let mut map = self
            .channels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = map.entry(channel.to_owned()).or_default();
        if ok {
            entry.0 += 1;
        } else {
            entry.1 += 1;
        }
    }

    /// Farm peers: (reachable now, configured).
    pub fn peer_counts(&self) -> (u64, u64) {
        let peers = self
            .peers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let live = peers.values().filter(|live| **live).count();
        (live as u64, peers.len() as u64)
    }

    /// Every counter by name.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let (peers_live, peers_configured) = self.peer_counts();
        let mut v = vec![
            ("frames", get(&self.frames)),
            ("accepted", get(&self.accepted)),
            ("dropped", self.dropped_total()),
        ];
        for reason in DropReason::ALL {
            v.push((reason.counter(), self.dropped(reason)));
        }
        v.extend([
            ("unknown_job_messages", get(&self.unknown_job_messages)),
            ("unknown_job_names", get(&self.unknown_job_names)),
            ("notifications", get(&self.notifications)),
            ("duplicates_suppressed", get(&self.duplicates_suppressed)),
            ("delivered", get(&self.delivered)),
            ("delivery_retries", get(&self.delivery_retries)),
            ("digests", get(&self.digests)),
            ("delivery_failed", get(&self.delivery_failed)),
            ("curve_refused", get(&self.curve_refused)),
            ("handshake_failed", get(&self.handshake_failed)),
            ("skewed_messages", get(&self.skewed_messages)),
            ("stale_messages", get(&self.stale_messages)),
            ("inbound_queued", get(&self.inbound_queued)),
            ("state_write_failures", get(&self.state_write_failures)),
            (
                "http_connections_closed",
                get(&self.http_connections_closed),
            ),
            (
                "control_connections_closed",
                get(&self.control_connections_closed),
            ),
            ("http_refused", get(&self.http_refused)),
            ("hosts_known", get(&self.hosts_known)),
            ("ingest_connections", get(&self.ingest_connections)),
            (
                "ingest_connections_closed",
                get(&self.ingest_connections_closed),
            ),
            ("config_reloads", get(&self.config_reloads)),
            ("config_reload_failures", get(&self.config_reload_failures)),
            ("peers_live", peers_live),
            ("peers_configured", peers_configured),
            ("farm_suppressed", get(&self.farm_suppressed)),
            ("farm_took_over", get(&self.farm_took_over)),
            ("farm_duplicate_sends", get(&self.farm_duplicate_sends)),
            ("farm_gossip_refused", get(&self.farm_gossip_refused)),
        ]);
        v
    }

    /// Counts a dropped frame; returns how many were dropped for `reason`.
    pub fn drop_frame(&self, reason: DropReason) -> u64 {
        self.dropped[reason.index()].fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Frames dropped for `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped[reason.index()].load(Ordering::Relaxed)
    }

    /// All dropped frames.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// Writes every counter as one structured log line.
    pub fn log_summary(&self, what: &str) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let d = |reason| self.dropped(reason);
        info!(
            frames = get(&self.frames),
            accepted = get(&self.accepted),
            dropped = self.dropped_total(),
            dropped_too_large = d(DropReason::TooLarge),
            dropped_malformed = d(DropReason::Malformed),
            dropped_unsupported_version = d(DropReason::UnsupportedVersion),
            dropped_unknown_kind = d(DropReason::UnknownKind),
            dropped_invalid_field = d(DropReason::InvalidField),
            dropped_multipart = d(DropReason::Multipart),
            dropped_rate_limited = d(DropReason::RateLimited),
            dropped_wrong_sender = d(DropReason::WrongSender),
            curve_refused = get(&self.curve_refused),
            handshake_failed = get(&self.handshake_failed),
            skewed_messages = get(&self.skewed_messages),
            stale_messages = get(&self.stale_messages),
            unknown_job_messages = get(&self.unknown_job_messages),
            unknown_job_names = get(&self.unknown_job_names),
            declarations_taken = get(&self.declarations_taken),
            declarations_unchanged = get(&self.declarations_unchanged),
            declarations_changed = get(&self.declarations_changed),
            declarations_refused = self.declarations_refused.iter().map(get).sum::<u64>(),
            declared_jobs = get(&self.declared_jobs),
            declared_retired = get(&self.declared_retired),
            unknown_job_alerts = get(&self.unknown_job_alerts),
            unknown_job_alerts_held = get(&self.unknown_job_alerts_held),
            notifications = get(&self.notifications),
            duplicates_suppressed = get(&self.duplicates_suppressed),
            delivered = get(&self.delivered),
            delivery_retries = get(&self.delivery_retries),
            digests = get(&self.digests),
            delivery_failed = get(&self.delivery_failed),
            state_write_failures = get(&self.state_write_failures),
            http_connections_closed = get(&self.http_connections_closed),
            control_connections_closed = get(&self.control_connections_closed),
            http_refused = get(&self.http_refused),
            ingest_connections_closed = get(&self.ingest_connections_closed),
            config_reloads = get(&self.config_reloads),
            config_reload_failures = get(&self.config_reload_failures),
            farm_suppressed = get(&self.farm_suppressed),
            farm_took_over = get(&self.farm_took_over),
            farm_duplicate_sends = get(&self.farm_duplicate_sends),
            farm_gossip_refused = get(&self.farm_gossip_refused),
            "{what}"
        );
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn drop_reasons_read_as_the_decoder_names_them() {
        use qcic_sdk::DecodeError;
        for err in [
            DecodeError::TooLarge { len: 3000 },
            DecodeError::Malformed(String::new()),
            DecodeError::UnsupportedVersion(2),
            DecodeError::UnknownKind(9),
            DecodeError::InvalidField {
                field: "job",
                reason: "",
            },
            DecodeError::InvalidExpect(qcic_sdk::SpecError {
                key: "every",
                reason: String::new(),
            }),
        ] {
            assert_eq!(super::DropReason::from(&err).name(), err.reason());
        }
    }

    use super::*;

    /// The watcher's labels and the SDK's (which qcic-py raises with) are
    /// one spelling, and every reason has a counter of its own.
    #[test]
    fn drop_reasons_agree_with_the_decoder_and_are_distinct() {
        let errors = [
            DecodeError::TooLarge { len: 1 },
            DecodeError::Malformed(String::new()),
            DecodeError::UnsupportedVersion(9),
            DecodeError::UnknownKind(9),
            DecodeError::InvalidField {
                field: "host",
                reason: "x",
            },
        ];
        for err in &errors {
            assert_eq!(DropReason::from(err).name(), err.reason());
        }
        let names: std::collections::HashSet<_> =
            DropReason::ALL.iter().map(|r| r.name()).collect();
        assert_eq!(names.len(), DropReason::ALL.len());
        let stats = Stats::default();
        for (i, reason) in DropReason::ALL.into_iter().enumerate() {
            assert_eq!(reason.counter(), format!("dropped_{}", reason.name()));
            for _ in 0..=i {
                stats.drop_frame(reason);
            }
        }
        for (i, reason) in DropReason::ALL.into_iter().enumerate() {
            assert_eq!(stats.dropped(reason), i as u64 + 1);
        }
    }
}

/// A farm peer, as this watcher sees it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PeerView {
    /// Its `[monitor] id`.
    pub id: String,
    /// Reachable now (gossip heard within `dead_after`).
    pub live: bool,
}

/// The farm's peers, as this watcher sees them (empty outside a farm).
pub fn peer_views(stats: &Stats) -> Vec<PeerView> {
    stats
        .peers
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
        .map(|(id, live)| PeerView {
            id: id.clone(),
            live: *live,
        })
        .collect()
}
