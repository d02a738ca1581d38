//! The gate: which watcher of the farm sends each notification, and when.
//!
//! Pure: every input comes in as a call with the time (`now` for waits,
//! `wall` for ledger entries), every effect goes out as an [`Output`]. No
//! gossip, no tokio tasks, no channels: the farm task feeds it, and the
//! tests and the simulation drive it directly.
//!
//! For each notification the watchers are ranked by a rendezvous hash of
//! incident and watcher id (follow-ups: the watchers that sent the alarm
//! first). Rank k waits k × `peer_timeout`, counting only the higher ranks
//! that are alive and did not report a failed delivery (when all are dead
//! it sends at once), and skips if the ledger shows it handled. No
//! quorum, no leader: a lone watcher still alerts (fail open).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::time::Instant;
use tracing::{info, warn};

use super::isolation::Isolation;
use super::ledger::{LEDGER_KEEP, Ledger};
use super::wire::{LedgerEntry, NoteKey, State, ledger_key};
use crate::notification::{Event, FarmView, Notification, incident_id};
use crate::stats::Stats;

/// What the gate asks of the farm task.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Hand this to the channels.
    Send(Notification),
    /// Set this gossip key of ours.
    Publish(String, String),
    /// Delete this gossip key of ours.
    Unpublish(String),
    /// A peer delivered this (a channel still retrying it may stop).
    DeliveredElsewhere(NoteKey),
    /// Forget that a peer delivered this (it left the ledger).
    Forget(NoteKey),
    /// Write this to the durable notification log as sent by this watcher:
    /// its own entry, learnt back from a peer after its state was lost (a
    /// second crash before it is written would send it again).
    Remember(Notification),
}

/// How a channel fared with a notification this watcher sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// A channel delivered it.
    Delivered(NoteKey),
    /// A channel's attempt failed (it may retry).
    Failed(NoteKey),
}

/// The gate's settings.
#[derive(Debug, Clone)]
pub struct GateConfig {
    /// This watcher.
    pub me: Arc<str>,
    /// Every configured watcher, this one included.
    pub members: Vec<Arc<str>>,
    /// `[farm] peer_timeout`.
    pub peer_timeout: Duration,
    /// `[farm] gossip_interval`.
    pub gossip_interval: Duration,
    /// `[farm] dead_after`.
    pub dead_after: Duration,
    /// `[farm] isolation_jobs`.
    pub isolation_jobs: usize,
    /// Jobs watched.
    pub jobs: usize,
}

/// The ledger key of `note`.
pub fn key_of(note: &Notification) -> NoteKey {
    (Arc::clone(&note.incident), note.event, note.round())
}

/// The alarm a follow-up is about.
fn alarm_key(note: &Notification) -> Option<NoteKey> {
    if !note.event.is_follow_up() {
        return None;
    }
    Some((Arc::clone(&note.incident), note.resolves?, 0))
}

/// The rendezvous order of `members` for `incident`: highest score first.
/// Every watcher computes the same order; different incidents spread the
/// first rank over the farm.
pub fn rendezvous(incident: &str, members: &[Arc<str>]) -> Vec<Arc<str>> {
    let score = |m: &str| {
        let mut h = Sha256::new();
        h.update(incident.as_bytes());
        h.update([0u8]);
        h.update(m.as_bytes());
        let d = h.finalize();
        let mut b = [0u8; 8];
        b.copy_from_slice(&d[..8]);
        u64::from_be_bytes(b)
    };
    let mut ranked: Vec<(u64, Arc<str>)> =
        members.iter().map(|m| (score(m), Arc::clone(m))).collect();
    ranked.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    ranked.into_iter().map(|(_, m)| m).collect()
}

/// A notification waiting for its turn.
#[derive(Debug)]
struct Pending {
    note: Notification,
    /// The rendezvous order for its incident, computed once: the gate
    /// judges every pending notification at every wake-up.
    order: Vec<Arc<str>>,
    since: Instant,
    /// Held while the watcher is isolated.
    parked: bool,
    /// An outage that happened, told even if it ended before it went out
    /// (a peer back restarted from a silence this watcher took for its
    /// own isolation): its follow-up does not cancel it.
    happened: bool,
}

/// The gate's state.
#[derive(Debug)]
pub struct Gate {
    cfg: GateConfig,
    /// Peers alive now.
    live: BTreeSet<Arc<str>>,
    /// The generation of each peer seen alive.
    generations: BTreeMap<Arc<str>, u64>,
    /// Since when each live peer has been alive without a break.
    live_since: BTreeMap<Arc<str>, Instant>,
    /// Each peer's last heartbeat known, and when it last moved.
    news: BTreeMap<Arc<str>, (u64, Instant)>,
    /// Open `peer_down` incidents, by peer (this watcher's or learnt
    /// from the ledger).
    peer_down: BTreeMap<Arc<str>, BTreeSet<Arc<str>>>,
    /// Peers whose open `peer_down` needs its follow-up once they are back.
    owed: BTreeSet<Arc<str>>,
    /// `peer_down` incidents the ledger shows closed while their peer is
    /// still silent here, by peer: news of a return this watcher never saw
    /// (it was frozen, or cut off, while the peer came back and went
    /// silent again, and the last heartbeat it knows names the earlier
    /// outage). The silence it sees is another outage.
    closed_while_silent: BTreeMap<Arc<str>, Arc<str>>,
    /// Job alarms the ledger shows sent and not followed up, by job
    /// and event: when one incident of a job's trouble is followed up, so
    /// are the others (a watcher whose state was lost named the same
    /// outage anew, and the alarm it had sent would stay open forever).
    open_alarms: BTreeMap<(Arc<str>, Event), BTreeSet<Arc<str>>>,

    ledger: Ledger,
    pending: Vec<Pending>,
    isolation: Isolation,
    /// The open `watcher_isolated` incident.
    isolated: Option<Arc<str>>,
    /// Nothing is sent before this: at start, after a stall and after an
    /// isolation ends, the ledger, the peers' liveness and their evidence
    /// must be learnt afresh first.
    settle_until: Instant,
    /// Alarms held while isolated are judged from this on (the peers'
    /// evidence arrives first). Follow-ups do not wait for it: the peers
    /// rank behind the alarm's sender and would send them meanwhile.
    rejoined_until: Option<Instant>,
    /// Since when every configured peer has been alive (ends settling early).
    all_live_since: Option<Instant>,
    last_tick: Instant,
    /// When the earliest pending notification may go (set by `evaluate`).
    next_at: Option<Instant>,
    stats: Arc<Stats>,
}

impl Gate {
    /// A gate starting at `now`: it settles before it sends anything.
    pub fn new(cfg: GateConfig, stats: Arc<Stats>, now: Instant) -> Gate {
        let settle_until = now + cfg.dead_after + cfg.gossip_interval * 2;
        let isolation = Isolation::new(cfg.isolation_jobs, cfg.jobs, cfg.dead_after);
        Gate {
            cfg,
            live: BTreeSet::new(),
            generations: BTreeMap::new(),
            live_since: BTreeMap::new(),
            news: BTreeMap::new(),
            peer_down: BTreeMap::new(),
            owed: BTreeSet::new(),
            closed_while_silent: BTreeMap::new(),
            open_alarms: BTreeMap::new(),

            ledger: Ledger::new(LEDGER_KEEP),
            pending: Vec::new(),
            isolation,
            isolated: None,
            settle_until,
            rejoined_until: None,
            all_live_since: None,
            last_tick: now,
            next_at: None,
            stats,
        }
    }

    /// What this watcher sent before it (re)started, from its durable
    /// notification log: entered in the ledger as its own and
    /// published, so peers learn it even if they never heard it then, and
    /// an alarm still open gets its follow-up. `open` holds the incidents
    /// the restored job state still has open: an alarm of a job whose
    /// trouble ended while its follow-up waited here (the watcher died
    /// with it held) is owed that follow-up now.
    pub fn remember_sent(
        &mut self,
        sent: &[Notification],
        open: &BTreeSet<Arc<str>>,
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        let me = Arc::clone(&self.cfg.me);
        let followed: BTreeSet<(Arc<str>, Option<Event>)> = sent
            .iter()
            .filter(|n| n.event.is_follow_up())
            .map(|n| (Arc::clone(&n.incident), n.resolves))
            .collect();
        for alarm in sent {
            let job_alarm = matches!(
                alarm.event,
                Event::Down
                    | Event::Failed
                    | Event::Late
                    | Event::Overrun
                    | Event::Stalled
                    | Event::TooFast
            );
            if !job_alarm
                || alarm.round() != 0
                || open.contains(&alarm.incident)
                || followed.contains(&(Arc::clone(&alarm.incident), Some(alarm.event)))
            {
                continue;
            }
            let mut note = self.notice(
                Event::Recovered,
                &alarm.job,
                &alarm.incident,
                alarm.detected_ms,
            );
            note.resolves = Some(alarm.event);
            note.run_id = alarm.run_id;
            note.text = Some(format!("the trouble ended while watcher {me} was stopped"));
            self.hold(note, false, now);
        }
        for note in sent {
            let farm = note.farm.unwrap_or(FarmView {
                rank: 0,
                took_over: false,
                reachable: 1,
                configured: 1,
                partition_suspected: false,
            });
            let entry = LedgerEntry {
                state: State::Sent,
                rank: farm.rank,
                took_over: farm.took_over,
                ts_ms: note.detected_ms,
                job: Arc::clone(&note.job),
            };
            let key = key_of(note);
            if self.ledger.get(&key, &me).is_none() {
                self.record(&key, &me, entry, out);
            }
        }
    }

    /// When the gate wants to be woken (with [`Gate::evaluate`]) next.
    pub fn next_wake(&self) -> Option<Instant> {
        self.next_at
    }

    /// The peers alive now.
    pub fn live(&self) -> &BTreeSet<Arc<str>> {
        &self.live
    }

    /// A notification from the checker.
    pub fn on_notification(
        &mut self,
        note: Notification,
        now: Instant,
        wall: u64,
        out: &mut Vec<Output>,
    ) {
        self.check_stall(now);
        let event = note.event;
        if !event.is_follow_up() {
            // The trouble is not over: a follow-up still waiting for this
            // alarm (held at a restart whose saved job state had lost the
            // incident, raised again now) goes.
            self.pending.retain(|p| {
                alarm_key(&p.note).is_none_or(|(id, e, _)| id != note.incident || e != event)
            });
        }
        if event.is_follow_up() {
            // The trouble is over: its reminders and escalation steps still
            // waiting here would come after the follow-up.
            let before = self.pending.len();
            self.pending.retain(|p| {
                p.note.incident != note.incident
                    || p.note.event.is_follow_up()
                    || p.note.round() == 0
            });
            let dropped = before - self.pending.len();
            self.stats.farm_suppressed.fetch_add(
                u64::try_from(dropped).unwrap_or(u64::MAX),
                Ordering::Relaxed,
            );
        }
        if let (true, Some(resolves)) = (event.is_follow_up(), note.resolves) {
            // Only names given before this one: a later alarm of the job
            // is a later outage (this watcher may be closing an alarm it
            // raised while cut off, which the farm saw end before the job
            // went quiet again).
            let named_at = self
                .ledger
                .first_sent(&(Arc::clone(&note.incident), resolves, 0));
            let siblings: Vec<Arc<str>> = self
                .open_alarms
                .get(&(Arc::clone(&note.job), resolves))
                .map(|open| {
                    open.iter()
                        .filter(|i| ***i != *note.incident)
                        .filter(|i| {
                            let at = self.ledger.first_sent(&(Arc::clone(i), resolves, 0));
                            named_at.is_some_and(|named| at.is_some_and(|at| at <= named))
                        })
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            for id in siblings {
                let mut sibling = note.clone();
                sibling.incident = id;
                sibling.text = Some(format!(
                    "{} (another watcher's name for the same trouble)",
                    note.text.as_deref().unwrap_or("")
                ));
                self.hold(sibling, false, now);
            }
        }
        self.hold(note, false, now);
        if matches!(event, Event::Down | Event::Late) {
            self.check_isolation(now, wall, out);
        }
    }

    /// The checker heard `jobs` jobs here lately (what it gossips).
    pub fn on_heard(&mut self, jobs: usize, now: Instant) {
        if jobs > 0 {
            self.isolation.heard(now);
        }
    }

    /// The gossip interval passed.
    pub fn on_tick(&mut self, now: Instant) {
        self.check_stall(now);
        self.last_tick = now;
    }

    /// A watcher frozen (SIGSTOP, a VM pause) or starved wakes with stale
    /// views: its peers may have taken over meanwhile. It settles again
    /// before it sends anything.
    fn check_stall(&mut self, now: Instant) {
        let gap = now.saturating_duration_since(self.last_tick);
        if gap > self.cfg.dead_after / 2 && gap > self.cfg.gossip_interval * 3 {
            warn!(stalled = ?gap, "this watcher did not run for a while (frozen or starved); relearning the farm before notifying");
            self.resettle(now);
            self.last_tick = now;
        }
    }

    fn resettle(&mut self, now: Instant) {
        self.settle_until = now + self.cfg.dead_after + self.cfg.gossip_interval * 2;
        self.all_live_since = None;
    }

    fn settling(&self, now: Instant) -> bool {
        if now >= self.settle_until {
            return false;
        }
        // Every peer alive and a few rounds exchanged: the ledger is learnt.
        self.all_live_since
            .is_none_or(|t| now < t + self.cfg.gossip_interval * 3)
    }

    /// The peers' heartbeats as known now (each gossip round).
    pub fn on_heartbeats(&mut self, beats: &BTreeMap<Arc<str>, u64>, now: Instant) {
        for (peer, beat) in beats {
            if *peer == self.cfg.me {
                continue;
            }
            let moved = self.news.get(peer).is_none_or(|(known, _)| known != beat);
            if moved {
                self.news.insert(Arc::clone(peer), (*beat, now));
            }
        }
    }

    /// How many watchers this one reaches as it sends: itself, and the live
    /// peers heard for 4 gossip rounds at least, whose heartbeat moved
    /// within the last 4. A peer
    /// is declared dead only after `dead_after`; a notification sent in
    /// between, while a partition begins, is labelled already (a copy sent
    /// on the far side then is not the only one).
    fn reachable(&self, now: Instant) -> usize {
        let fresh = self.cfg.gossip_interval * 4;
        1 + self
            .live
            .iter()
            .filter(|p| {
                // Heard for a few rounds already: one heartbeat relayed
                // right after this watcher (re)joined says nothing of what
                // the peer knows, or whether it is still reachable.
                let settled = self
                    .live_since
                    .get(*p)
                    .is_some_and(|t| now.saturating_duration_since(*t) >= fresh);
                let recent = self
                    .news
                    .get(*p)
                    .is_none_or(|(_, at)| now.saturating_duration_since(*at) <= fresh);
                settled && recent
            })
            .count()
    }

    fn view(&self, rank: u32, now: Instant) -> FarmView {
        let configured = u32::try_from(self.cfg.members.len()).unwrap_or(u32::MAX);
        let reachable = u32::try_from(self.reachable(now)).unwrap_or(u32::MAX);
        FarmView {
            rank,
            took_over: rank > 0,
            reachable,
            configured,
            partition_suspected: reachable < configured,
        }
    }

    /// The ranking for `note`: follow-ups go first to the watchers that
    /// sent the alarm (they told people; they should close it).
    fn ranking<'a>(&self, note: &Notification, order: &'a [Arc<str>]) -> Vec<&'a Arc<str>> {
        let Some(alarm) = alarm_key(note) else {
            return order.iter().collect();
        };
        let senders = self.ledger.senders(&alarm);
        let (mut first, rest): (Vec<_>, Vec<_>) = order.iter().partition(|m| senders.contains(*m));
        first.extend(rest);
        first
    }

    fn hold(&mut self, note: Notification, parked: bool, now: Instant) {
        let order = rendezvous(&note.incident, &self.cfg.members);
        self.pending.push(Pending {
            note,
            order,
            since: now,
            parked,
            happened: false,
        });
    }

    fn is_live(&self, member: &Arc<str>) -> bool {
        *member == self.cfg.me || self.live.contains(member)
    }

    /// When a pending notification may go, or `None` if it should be dropped.
    fn due(&self, p: &Pending, now: Instant) -> Option<Instant> {
        let key = key_of(&p.note);
        if self.ledger.handled(&key, |w| self.is_live(w)) {
            return None;
        }
        let order = self.ranking(&p.note, &p.order);
        let rank = order.iter().position(|m| **m == self.cfg.me).unwrap_or(0);
        let ahead_peers: Vec<&Arc<str>> = order[..rank]
            .iter()
            .copied()
            .filter(|m| self.is_live(m) && !self.ledger.failed(&key, m))
            .collect();
        let ahead = ahead_peers.len();
        // A higher rank may be settling (after its start, a freeze or a
        // rejoin: `dead_after` + 2 rounds) before it sends anything, and a
        // freeze shorter than `dead_after` does not show here at all: its
        // turn runs from when it became reachable, and lasts at least such
        // a freeze, that settle and a round. Waiting less, both would send
        // unlabelled.
        let start = ahead_peers
            .iter()
            .filter_map(|m| self.live_since.get(*m))
            .max()
            .map_or(p.since, |t| p.since.max(*t));
        let turn = self
            .cfg
            .peer_timeout
            .max(self.cfg.dead_after * 2 + self.cfg.gossip_interval * 3);
        // Two gossip rounds more behind a live higher rank: the time its
        // ledger entry takes to arrive once it has sent (it may send late
        // itself, settling after a freeze).
        let margin = if ahead > 0 {
            self.cfg.gossip_interval * 2
        } else {
            Duration::ZERO
        };
        let mut due = start + turn * u32::try_from(ahead).unwrap_or(u32::MAX) + margin;
        // With no peer reachable and no sender heard lately, absence alarms
        // and peer_down wait a little: if many jobs fall silent with the
        // peers, this watcher is the one cut off, and says so once instead.
        // A watcher that still hears its senders sends at once.
        if matches!(p.note.event, Event::Down | Event::Late | Event::PeerDown)
            && self.isolation.hold_absence(self.live.len(), now)
        {
            due = due.max(p.since + self.cfg.peer_timeout);
        }
        if self.settling(now) {
            due = due.max(self.settle_until);
        }
        // (An outage known to have happened needs no evidence relearnt.)
        if let Some(until) = self
            .rejoined_until
            .filter(|_| !p.note.event.is_follow_up() && !p.happened)
        {
            due = due.max(until);
        }
        // A follow-up waits until the ledger of every peer that just became
        // reachable is learnt: when a partition heals, each side's senders
        // of the alarm would otherwise close it at once, each unaware of
        // the other's copy (and so both first in the follow-up's ranking).
        if p.note.event.is_follow_up() {
            if let Some(newest) = self.live_since.values().max() {
                due = due.max(*newest + self.cfg.gossip_interval * 3);
            }
        }
        Some(due)
    }

    /// Sends what is due, drops what is handled, and sets the next wake-up.
    pub fn evaluate(&mut self, now: Instant, wall: u64, out: &mut Vec<Output>) {
        // A watcher that wakes from a freeze must not act on its stale view
        // (whichever of its wake-ups comes first).
        self.check_stall(now);
        self.close_returned(now, wall);
        for (peer, closed) in std::mem::take(&mut self.closed_while_silent) {
            if !self.live.contains(&peer) {
                self.raise_peer_down(&peer, &format!("again:{closed}"), now, wall);
            }
        }

        // A follow-up for an alarm nobody sent is owed to nobody; if the
        // alarm is still waiting here, both go. Not while settling: the
        // ledger is not learnt yet, and "nobody" may be a peer not heard yet.
        let settling = self.settling(now);
        let happened: BTreeSet<NoteKey> = self
            .pending
            .iter()
            .filter(|p| p.happened)
            .map(|p| key_of(&p.note))
            .collect();
        let cancelled: BTreeSet<NoteKey> = self
            .pending
            .iter()
            .filter(|_| !settling)
            .filter(|p| !p.parked)
            .filter_map(|p| alarm_key(&p.note))
            // Owed if any round went out: an escalation step sent by a
            // watcher restarted before its alarm left is closed too.
            .filter(|alarm| {
                !self.ledger.any_round_sent(&alarm.0, alarm.1) && !happened.contains(alarm)
            })
            .collect();
        let pending = std::mem::take(&mut self.pending);
        let mut keep = Vec::with_capacity(pending.len());
        let mut send = Vec::new();
        let mut next_at: Option<Instant> = None;
        // A follow-up never goes before its alarm.
        let unsent: BTreeSet<NoteKey> = pending
            .iter()
            .filter(|p| !p.note.event.is_follow_up())
            .map(|p| key_of(&p.note))
            .collect();
        // Every round of a cancelled alarm (its reminders, its escalation
        // steps) goes with it.
        let cancelled_incidents: BTreeSet<(Arc<str>, Event)> = cancelled
            .iter()
            .map(|(id, event, _)| (Arc::clone(id), *event))
            .collect();
        for p in pending {
            // A parked alarm retracted meanwhile goes too.
            let orphan = alarm_key(&p.note).is_some_and(|a| cancelled.contains(&a));
            let round_of_cancelled = !p.note.event.is_follow_up()
                && cancelled_incidents.contains(&(Arc::clone(&p.note.incident), p.note.event));
            if orphan || round_of_cancelled {
                continue;
            }
            let before_alarm = alarm_key(&p.note).is_some_and(|a| unsent.contains(&a));
            if p.parked || before_alarm {
                keep.push(p);
                continue;
            }
            match self.due(&p, now) {
                None => {
                    self.stats.farm_suppressed.fetch_add(1, Ordering::Relaxed);
                }
                Some(due) if due <= now => send.push(p),
                Some(due) => {
                    next_at = Some(next_at.map_or(due, |t| t.min(due)));
                    keep.push(p);
                }
            }
        }
        self.pending = keep;
        self.next_at = next_at;
        for p in send {
            self.send(p.note, &p.order, now, wall, out);
        }
    }

    fn send(
        &mut self,
        mut note: Notification,
        order: &[Arc<str>],
        now: Instant,
        wall: u64,
        out: &mut Vec<Output>,
    ) {
        let order = self.ranking(&note, order);
        let rank = u32::try_from(order.iter().position(|m| **m == self.cfg.me).unwrap_or(0))
            .unwrap_or(u32::MAX);
        note.farm = Some(self.view(rank, now));
        if rank > 0 {
            self.stats.farm_took_over.fetch_add(1, Ordering::Relaxed);
        }
        let entry = LedgerEntry {
            state: State::Sent,
            rank,
            took_over: rank > 0,
            ts_ms: wall,
            job: Arc::clone(&note.job),
        };
        let me = Arc::clone(&self.cfg.me);
        self.record(&key_of(&note), &me, entry, out);
        out.push(Output::Send(note));
    }

    /// Records a ledger entry, ours or a copy of a peer's, and publishes it
    /// (every watcher keeps a copy of every entry).
    fn record(
        &mut self,
        key: &NoteKey,
        sender: &Arc<str>,
        entry: LedgerEntry,
        out: &mut Vec<Output>,
    ) {
        let recorded = self.ledger.record(key, sender, entry.clone());
        if !recorded.changed {
            return;
        }
        self.learn_peer_down(key, &entry);
        if recorded.duplicate {
            self.stats
                .farm_duplicate_sends
                .fetch_add(1, Ordering::Relaxed);
            warn!(incident = %key.0, event = %key.1, "sent by more than one watcher (partition or failed delivery); each copy names its watcher");
        }
        if entry.state == State::Delivered && **sender != *self.cfg.me {
            out.push(Output::DeliveredElsewhere(key.clone()));
        }
        out.push(Output::Publish(ledger_key(key, sender), entry.encode()));
        for (old, who) in recorded.evicted {
            for w in who {
                out.push(Output::Unpublish(ledger_key(&old, &w)));
            }
            out.push(Output::Forget(old));
        }
    }

    /// Keeps track of every open `peer_down` the farm sent, whoever sent
    /// it, and of this watcher's own open `watcher_isolated`: a watcher
    /// that sent one and then died or restarted forgets it, and the end of
    /// the trouble must still be told. When that peer is back,
    /// the follow-up is held here too (ranked, the alarm's senders first).
    fn learn_peer_down(&mut self, key: &NoteKey, entry: &LedgerEntry) {
        let (incident, event, _) = key;
        match event {
            Event::PeerDown if *entry.job != *self.cfg.me && entry.state != State::Failed => {
                let closed = [Event::Recovered, Event::Retracted]
                    .iter()
                    .any(|e| self.ledger.contains(&(Arc::clone(incident), *e, 0)));
                if !closed {
                    self.peer_down
                        .entry(Arc::clone(&entry.job))
                        .or_default()
                        .insert(Arc::clone(incident));
                    self.owed.insert(Arc::clone(&entry.job));
                }
            }
            // Our own isolation, from before a restart: still to be closed
            // once a peer is reachable.
            Event::WatcherIsolated if *entry.job == *self.cfg.me && self.isolated.is_none() => {
                let closed = self
                    .ledger
                    .contains(&(Arc::clone(incident), Event::Recovered, 0));
                if !closed {
                    self.isolated = Some(Arc::clone(incident));
                }
            }
            Event::Down | Event::Failed | Event::Late | Event::TooFast
                if entry.state != State::Failed =>
            {
                let closed = [Event::Recovered, Event::Retracted]
                    .iter()
                    .any(|e| self.ledger.contains(&(Arc::clone(incident), *e, 0)));
                if !closed {
                    self.open_alarms
                        .entry((Arc::clone(&entry.job), *event))
                        .or_default()
                        .insert(Arc::clone(incident));
                }
            }
            Event::Recovered | Event::Retracted => {
                for open in self.open_alarms.values_mut() {
                    open.remove(incident);
                }
                self.open_alarms.retain(|_, open| !open.is_empty());
                for (peer, open) in &mut self.peer_down {
                    if open.remove(incident) && !self.live.contains(peer) {
                        self.closed_while_silent
                            .insert(Arc::clone(peer), Arc::clone(incident));
                    }
                }
                self.peer_down.retain(|_, open| !open.is_empty());
                if self.isolated.as_deref() == Some(&**incident) {
                    self.isolated = None;
                }
            }
            _ => {}
        }
    }

    /// Holds the follow-up of every open `peer_down` whose peer is back.
    fn close_returned(&mut self, now: Instant, wall: u64) {
        let owed: Vec<Arc<str>> = self
            .owed
            .iter()
            .filter(|p| self.live.contains(*p))
            .cloned()
            .collect();
        for peer in owed {
            self.owed.remove(&peer);
            for id in self.peer_down.remove(&peer).unwrap_or_default() {
                let mut note = self.notice(Event::Recovered, &peer, &id, wall);
                note.resolves = Some(Event::PeerDown);
                note.text = Some(format!("watcher {peer} is reachable again"));
                self.hold(note, false, now);
            }
        }
    }

    /// How a channel fared with a notification this watcher sent.
    pub fn on_report(&mut self, report: Report, out: &mut Vec<Output>) {
        let (key, state) = match report {
            Report::Delivered(key) => (key, State::Delivered),
            Report::Failed(key) => (key, State::Failed),
        };
        let me = Arc::clone(&self.cfg.me);
        let Some(mut entry) = self.ledger.get(&key, &me).cloned() else {
            return;
        };
        // Delivered by one channel stays delivered.
        if entry.state == State::Delivered {
            return;
        }
        entry.state = state;
        self.record(&key, &me, entry, out);
    }

    /// A ledger entry gossiped by `node`: its own, or its copy of `sender`'s.
    pub fn on_ledger_entry(
        &mut self,
        node: &str,
        key: NoteKey,
        sender: Arc<str>,
        entry: LedgerEntry,
        out: &mut Vec<Output>,
    ) {
        if *sender == *self.cfg.me {
            if self.ledger.get(&key, &sender).is_none() {
                // Our own entry from before a restart: learnt back (the
                // ledger may already hold a peer's entry for the same key).
                let mut note = self.notice(key.1, &entry.job, &key.0, entry.ts_ms);
                note.set_round(key.2);
                if key.1.is_follow_up() {
                    note.resolves = self.ledger.alarm_of(&key.0);
                }
                let mut view = self.view(entry.rank, self.last_tick);
                view.took_over = entry.took_over;
                note.farm = Some(view);
                self.record(&key, &sender, entry, out);
                out.push(Output::Remember(note));
            }
            return;
        }
        let known = self.ledger.get(&key, &sender);
        // The sender's own key is the truth; a copy only fills a gap.
        let take = if *node == *sender {
            known != Some(&entry)
        } else {
            known.is_none()
        };
        if take {
            self.record(&key, &sender, entry, out);
        }
    }

    /// The peers alive now, with their generations. `heartbeat` tells the
    /// last heartbeat known of a peer: with its generation it names one
    /// outage of that peer (every survivor learns the same last heartbeat),
    /// so a peer that goes silent a second time is a new incident.
    pub fn on_live(
        &mut self,
        nodes: &[(Arc<str>, u64)],
        heartbeat: &dyn Fn(&str) -> u64,
        now: Instant,
        wall: u64,
        out: &mut Vec<Output>,
    ) {
        let members: BTreeSet<&Arc<str>> = self.cfg.members.iter().collect();
        let generations: BTreeMap<Arc<str>, u64> = nodes
            .iter()
            .filter(|(n, _)| *n != self.cfg.me && members.contains(n))
            .map(|(n, g)| (Arc::clone(n), *g))
            .collect();
        let live: BTreeSet<Arc<str>> = generations.keys().cloned().collect();
        self.live_since.retain(|p, _| live.contains(p));
        for p in &live {
            self.live_since.entry(Arc::clone(p)).or_insert(now);
        }
        let gone: Vec<Arc<str>> = self.live.difference(&live).cloned().collect();
        let back: Vec<Arc<str>> = live.difference(&self.live).cloned().collect();
        self.live = live;
        let everyone = self.live.len() + 1 == self.cfg.members.len();
        self.all_live_since = if everyone {
            self.all_live_since.or(Some(now))
        } else {
            None
        };
        for peer in gone {
            warn!(peer = %peer, "a farm peer went silent");
            // A return whose follow-up has not gone out yet is judged
            // again at the next one, timed from then: news of an old
            // heartbeat relayed late looks like a return, and a follow-up
            // held since would go out the moment the peer really returns,
            // beside the one its alarm's sender sends then. The silence is
            // still named anew below (this watcher may not know that the
            // outage was closed elsewhere meanwhile).
            let mut unconfirmed = Vec::new();
            self.pending.retain(|p| {
                let back = p.note.event == Event::Recovered
                    && p.note.resolves == Some(Event::PeerDown)
                    && p.note.job == peer;
                if back {
                    unconfirmed.push(Arc::clone(&p.note.incident));
                }
                !back
            });
            if !unconfirmed.is_empty() {
                self.peer_down
                    .entry(Arc::clone(&peer))
                    .or_default()
                    .extend(unconfirmed);
            }
            let generation = self.generations.get(&peer).copied().unwrap_or(0);
            let basis = format!("generation:{generation}/heartbeat:{}", heartbeat(&peer));
            self.raise_peer_down(&peer, &basis, now, wall);
        }
        for peer in back {
            info!(peer = %peer, "a farm peer is reachable");
        }
        self.close_returned(now, wall);
        // Peers back under a new generation restarted: their silence was
        // an outage of theirs, whatever this watcher made of it.
        let restarted: BTreeSet<Arc<str>> = generations
            .iter()
            .filter(|(p, g)| self.generations.get(*p).is_some_and(|old| old != *g))
            .map(|(p, _)| Arc::clone(p))
            .collect();
        for (peer, g) in generations {
            self.generations.insert(peer, g);
        }
        if !self.live.is_empty() {
            self.end_isolation(&restarted, now, wall, out);
        }
    }

    /// Holds a `peer_down` for `peer`, named by `basis`.
    fn raise_peer_down(&mut self, peer: &Arc<str>, basis: &str, now: Instant, wall: u64) {
        let id: Arc<str> = Arc::from(incident_id(peer, Event::PeerDown, basis));
        self.peer_down
            .entry(Arc::clone(peer))
            .or_default()
            .insert(Arc::clone(&id));
        self.owed.insert(Arc::clone(peer));
        let mut note = self.notice(Event::PeerDown, peer, &id, wall);
        note.text = Some(format!(
            "watcher {peer} went silent; its duty is taken over"
        ));
        let parked = self.isolated.is_some();
        self.hold(note, parked, now);
    }

    fn notice(&self, event: Event, job: &Arc<str>, incident: &Arc<str>, wall: u64) -> Notification {
        Notification::new(
            event,
            Arc::clone(job),
            Arc::clone(incident),
            Arc::clone(&self.cfg.me),
            wall,
        )
    }

    /// No peer reachable and many jobs silent at once, with no sender
    /// heard lately: this watcher is the one cut off. One
    /// `watcher_isolated` instead of an alert per job; the per-job alarms
    /// wait until a peer is reachable again.
    fn check_isolation(&mut self, now: Instant, wall: u64, out: &mut Vec<Output>) {
        // While settling (just started, or woken from a freeze), reaching no
        // peer only means not having heard from them yet.
        if self.isolated.is_none() && !self.settling(now) {
            let silent = self
                .pending
                .iter()
                .filter(|p| matches!(p.note.event, Event::Down | Event::Late))
                .count();
            if self.isolation.looks_isolated(self.live.len(), silent, now) {
                let me = Arc::clone(&self.cfg.me);
                let id: Arc<str> =
                    Arc::from(incident_id(&me, Event::WatcherIsolated, &wall.to_string()));
                warn!(
                    silent_jobs = silent,
                    "no peer reachable, no sender heard and most jobs silent: this watcher is isolated"
                );
                self.isolated = Some(Arc::clone(&id));
                let mut note = self.notice(Event::WatcherIsolated, &me, &id, wall);
                note.text = Some(format!(
                    "watcher {me} reaches no peer and {silent} of its {} jobs fell silent at once: most likely its own network is cut; per-job alerts are held",
                    self.cfg.jobs
                ));
                // About this watcher alone: nobody else can send it, so it is rank 0.
                let order = [Arc::clone(&self.cfg.me)];
                self.send(note, &order, now, wall, out);
            }
        }
        if self.isolated.is_some() {
            // A peer_down raised while isolated is parked when raised.
            for p in &mut self.pending {
                if matches!(p.note.event, Event::Down | Event::Late | Event::PeerDown) {
                    p.parked = true;
                }
            }
        }
    }

    /// A peer is reachable again: the alarms held while isolated are judged
    /// again, once the peers' evidence has been learnt (the gate settles
    /// first: released at once, they went out as genuine alarms for jobs
    /// the peers heard all along).
    fn end_isolation(
        &mut self,
        restarted: &BTreeSet<Arc<str>>,
        now: Instant,
        wall: u64,
        out: &mut Vec<Output>,
    ) {
        let Some(id) = self.isolated.take() else {
            return;
        };
        for p in &mut self.pending {
            if p.parked {
                p.parked = false;
                p.since = now;
            }
        }
        self.rejoined_until = Some(now + self.cfg.dead_after + self.cfg.gossip_interval * 2);
        // Our own isolation showed as peer_down on this side only, unless
        // the peer is back restarted: then it was down too, and that is
        // told (ranked as any alarm; its follow-up comes as for any return).
        self.pending.retain_mut(|p| {
            if p.note.event != Event::PeerDown {
                return true;
            }
            p.happened = restarted.contains(&p.note.job);
            p.happened
        });
        let me = Arc::clone(&self.cfg.me);
        let mut note = self.notice(Event::Recovered, &me, &id, wall);
        note.resolves = Some(Event::WatcherIsolated);
        note.text = Some(format!("watcher {me} reaches its peers again"));
        // About this watcher alone: nobody else can send it, so it is rank 0.
        let order = [Arc::clone(&self.cfg.me)];
        self.send(note, &order, now, wall, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn gate(me: &str, t0: Instant) -> Gate {
        Gate::new(
            GateConfig {
                me: Arc::from(me),
                members: ["a", "b", "c"].iter().map(|m| Arc::from(*m)).collect(),
                peer_timeout: 5 * S,
                gossip_interval: S / 2,
                dead_after: 4 * S,
                isolation_jobs: 2,
                jobs: 4,
            },
            Arc::new(Stats::default()),
            t0,
        )
    }

    fn live(peers: &[&str]) -> Vec<(Arc<str>, u64)> {
        peers.iter().map(|p| (Arc::from(*p), 7)).collect()
    }

    fn sent(out: &[Output]) -> Vec<(Event, String)> {
        out.iter()
            .filter_map(|o| match o {
                Output::Send(n) => Some((n.event, n.job.to_string())),
                _ => None,
            })
            .collect()
    }

    fn incidents(out: &[Output]) -> Vec<Arc<str>> {
        out.iter()
            .filter_map(|o| match o {
                Output::Send(n) => Some(Arc::clone(&n.incident)),
                _ => None,
            })
            .collect()
    }

    /// Drives the gate to `at`, ticking every gossip interval (as the farm
    /// task does; a longer gap is a stall) and evaluating at each tick.
    fn run_to(g: &mut Gate, at: Instant, wall: u64, out: &mut Vec<Output>) {
        let mut t = g.last_tick;
        while t < at {
            t = (t + S / 2).min(at);
            g.on_tick(t);
            g.evaluate(t, wall, out);
        }
    }

    #[test]
    fn a_peer_that_goes_silent_twice_is_two_incidents() {
        let t0 = Instant::now();
        let mut g = gate("a", t0);
        let mut out = Vec::new();
        let mut beat = 100;
        for round in 0..2u32 {
            let t = t0 + 20 * S * round;
            g.on_live(&live(&["b", "c"]), &|_| beat, t, 0, &mut out);
            beat += 50;
            // c goes silent; its last heartbeat is what every survivor learnt.
            g.on_live(&live(&["b"]), &|_| beat, t + S, 0, &mut out);
            run_to(&mut g, t + 19 * S, 0, &mut out);
        }
        let downs: Vec<Arc<str>> = out
            .iter()
            .filter_map(|o| match o {
                Output::Send(n) if n.event == Event::PeerDown => Some(Arc::clone(&n.incident)),
                _ => None,
            })
            .collect();
        assert_eq!(downs.len(), 2, "{:?}", sent(&out));
        assert_ne!(downs[0], downs[1]);
    }

    /// A watcher that missed a peer's brief return (a peer closed the
    /// outage it knows) while the peer stays silent to it names the
    /// silence anew: the name it has is the closed outage's.
    #[test]
    fn a_peer_down_closed_elsewhere_while_the_peer_is_silent_here_is_raised_anew() {
        let t0 = Instant::now();
        let mut g = gate("a", t0);
        let mut out = Vec::new();
        g.on_live(&live(&["b", "c"]), &|_| 100, t0, 0, &mut out);
        g.on_live(&live(&["b"]), &|_| 100, t0 + S, 0, &mut out);
        run_to(&mut g, t0 + 19 * S, 0, &mut out);
        let first = incidents(&out);
        assert_eq!(sent(&out), [(Event::PeerDown, "c".to_owned())]);
        // b saw c come back and closed it; c is silent again before a hears it.
        let entry = LedgerEntry {
            state: State::Sent,
            rank: 0,
            took_over: false,
            ts_ms: 20_000,
            job: Arc::from("c"),
        };
        let key = (Arc::clone(&first[0]), Event::Recovered, 0);
        g.on_ledger_entry("b", key, Arc::from("b"), entry, &mut out);
        out.clear();
        run_to(&mut g, t0 + 40 * S, 0, &mut out);
        let again = incidents(&out);
        assert_eq!(sent(&out), [(Event::PeerDown, "c".to_owned())]);
        assert_ne!(again[0], first[0], "the silence named anew");
    }

    fn down(job: &str, incident: &str) -> Notification {
        Notification::new(
            Event::Down,
            Arc::from(job),
            Arc::from(incident),
            Arc::from("a"),
            0,
        )
    }

    #[test]
    fn a_watcher_that_still_hears_senders_sends_at_once_with_no_peer() {
        let t0 = Instant::now();
        let mut g = gate("a", t0);
        let mut out = Vec::new();
        run_to(&mut g, t0 + 10 * S, 0, &mut out); // settled, nobody reachable
        g.on_heard(3, t0 + 10 * S);
        g.on_notification(down("j1", "i1"), t0 + 10 * S, 0, &mut out);
        g.evaluate(t0 + 10 * S, 0, &mut out);
        assert_eq!(
            sent(&out),
            [(Event::Down, "j1".to_owned())],
            "at D, not D + peer_timeout"
        );
        // Hearing nobody, it holds the next one peer_timeout.
        let later = t0 + 30 * S;
        g.on_notification(down("j2", "i2"), later, 0, &mut out);
        g.evaluate(later, 0, &mut out);
        assert_eq!(
            out.iter().filter(|o| matches!(o, Output::Send(_))).count(),
            1
        );
        run_to(&mut g, later + 5 * S, 0, &mut out);
        assert_eq!(sent(&out).len(), 2);
    }

    #[test]
    fn an_isolated_watcher_that_rejoins_learns_before_it_releases_held_alarms() {
        let t0 = Instant::now();
        let mut g = gate("a", t0);
        let mut out = Vec::new();
        g.on_live(&live(&["b", "c"]), &|_| 1, t0, 0, &mut out);
        run_to(&mut g, t0 + 10 * S, 0, &mut out);
        // Cut from everything: peers gone, and two jobs silent.
        let t1 = t0 + 20 * S;
        run_to(&mut g, t1, 0, &mut out);
        g.on_live(&live(&[]), &|_| 1, t1, 0, &mut out);
        g.on_notification(down("j1", "i1"), t1, 0, &mut out);
        g.on_notification(down("j2", "i2"), t1, 0, &mut out);
        run_to(&mut g, t1 + 30 * S, 0, &mut out);
        assert_eq!(sent(&out), [(Event::WatcherIsolated, "a".to_owned())]);
        // Healed: the held downs wait while the peers' evidence arrives ...
        let t2 = t1 + 31 * S;
        g.on_live(&live(&["b", "c"]), &|_| 2, t2, 0, &mut out);
        g.evaluate(t2, 0, &mut out);
        assert_eq!(
            sent(&out).iter().filter(|(e, _)| *e == Event::Down).count(),
            0,
            "released at once: {:?}",
            sent(&out)
        );
        // ... which shows j1 was heard all along: the checker retracts it,
        // and an alarm nobody sent needs no follow-up: both go.
        let mut retracted = down("j1", "i1");
        retracted.event = Event::Retracted;
        retracted.resolves = Some(Event::Down);
        g.on_notification(retracted, t2 + S, 0, &mut out);
        run_to(&mut g, t2 + 30 * S, 0, &mut out);
        let downs: Vec<String> = sent(&out)
            .into_iter()
            .filter(|(e, _)| *e == Event::Down || *e == Event::Retracted)
            .map(|(e, j)| format!("{e} {j}"))
            .collect();
        assert_eq!(
            downs,
            ["down j2"],
            "j2 was really silent: {:?}",
            incidents(&out)
        );
    }

    #[test]
    fn an_alarm_retracted_while_it_waits_is_never_sent() {
        let t0 = Instant::now();
        let mut g = gate("a", t0);
        let mut out = Vec::new();
        g.on_notification(down("j1", "i1"), t0 + S / 10, 0, &mut out);
        g.evaluate(t0 + S / 10, 0, &mut out);
        let mut retracted = down("j1", "i1");
        retracted.event = Event::Retracted;
        retracted.resolves = Some(Event::Down);
        g.on_notification(retracted, t0 + S / 5, 0, &mut out);
        g.evaluate(t0 + S / 5, 0, &mut out);
        run_to(&mut g, t0 + 30 * S, 0, &mut out);
        assert_eq!(sent(&out), [], "{out:?}");
    }

    #[test]
    fn rendezvous_is_stable_and_spreads() {
        let members: Vec<Arc<str>> = ["a", "b", "c"].iter().map(|m| Arc::from(*m)).collect();
        let first = rendezvous("inc-1", &members);
        assert_eq!(first, rendezvous("inc-1", &members));
        let mut reversed = members.clone();
        reversed.reverse();
        assert_eq!(
            first,
            rendezvous("inc-1", &reversed),
            "order of the config does not matter"
        );
        let mut firsts = BTreeSet::new();
        for i in 0..60 {
            firsts.insert(rendezvous(&format!("inc-{i}"), &members)[0].clone());
        }
        assert_eq!(firsts.len(), 3, "every watcher is first for some incidents");
    }
}
