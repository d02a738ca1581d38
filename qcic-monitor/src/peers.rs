//! Watcher farms: membership and shared state over chitchat gossip, and the
//! gate that decides which watcher sends each notification.
//!
//! Every watcher hears every job and evaluates it. What they share, each
//! writing only its own keys (scuttlebutt):
//! - `s:<job>`: what this watcher last heard of the job ([`PeerSeen`]).
//!   A peer that did not hear the job takes it as its own evidence, so a
//!   job is down only if no reachable watcher heard it.
//! - `n:<incident>:<event>:<repeat>:<sender>`: the notification log, every
//!   watcher keeping a copy of every entry it learns, so a watcher that
//!   restarts with its state wiped learns it back from any live peer.
//!
//! The gate: for each notification the watchers are ranked by a rendezvous
//! hash of incident and watcher id (follow-ups: the watchers that sent the
//! alarm first). Rank k waits k × `peer_timeout` (counting only the higher
//! ranks that are alive and did not report a failed delivery: when all are
//! dead, it sends at once) and skips if the log shows the notification
//! sent. No quorum, no leader: a lone watcher still alerts (fail open).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chitchat::transport::UdpTransport;
use chitchat::{
    ChitchatConfig, ChitchatHandle, ChitchatId, FailureDetectorConfig, ListenerHandle,
    ProtocolVersion, spawn_chitchat,
};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until};
use tracing::{info, warn};

use crate::checker::{Query, wall_ms};
use crate::config::FarmConfig;
use crate::error::MonitorError;
use crate::notification::{Event, FarmView, Notification, incident_id};
use crate::registry::PeerSeen;
use crate::stats::Stats;

/// Log entries each watcher keeps (its own and its copies of the others').
pub const LOG_KEEP: usize = 10_000;

/// What a notification is, in the shared log: incident, event, repeat.
type Key = (Arc<str>, Event, u32);

/// A delivery outcome, reported by the channels to the farm.
#[derive(Debug)]
enum Report {
    Delivered(Key),
    Failed(Key),
}

/// The channels' line to the farm: they report how delivery went, and a
/// channel retrying a failed delivery asks whether a peer delivered it
/// meanwhile (then it stops: the peer's copy is the one people got).
#[derive(Debug, Clone)]
pub struct Reporter {
    tx: mpsc::UnboundedSender<Report>,
    delivered_elsewhere: Arc<Mutex<BTreeSet<Key>>>,
}

impl Reporter {
    fn key(note: &Notification) -> Key {
        (Arc::clone(&note.incident), note.event, note.repeat)
    }

    /// A channel delivered `note`.
    pub fn delivered(&self, note: &Notification) {
        let _ = self.tx.send(Report::Delivered(Self::key(note)));
    }

    /// A channel's attempt to deliver `note` failed (it may retry).
    pub fn failed(&self, note: &Notification) {
        let _ = self.tx.send(Report::Failed(Self::key(note)));
    }

    /// Whether a peer has delivered `note`.
    pub fn delivered_elsewhere(&self, note: &Notification) -> bool {
        self.delivered_elsewhere
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&Self::key(note))
    }
}

/// A running farm membership: stop it with [`Farm::stop`].
pub struct Farm {
    chitchat: ChitchatHandle,
    task: JoinHandle<()>,
    _listener: ListenerHandle,
}

/// What [`start`] hands back for wiring.
#[derive(Debug)]
pub struct Started {
    /// The running farm.
    pub farm: Farm,
    /// The checker's notifications go here (the gate), not to the dispatcher.
    pub gate: mpsc::Sender<Notification>,
    /// What the checker heard, to gossip.
    pub heard: mpsc::Sender<Vec<(Arc<str>, PeerSeen)>>,
    /// For the channels.
    pub reporter: Reporter,
}

impl std::fmt::Debug for Farm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Farm")
            .field("id", self.chitchat.chitchat_id())
            .finish_non_exhaustive()
    }
}

impl Farm {
    /// Leaves the farm.
    pub async fn stop(self) {
        self.task.abort();
        let _ = self.chitchat.shutdown().await;
    }
}

/// One entry of the shared log, as gossiped: `state;rank;took_over;ts_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    state: State,
    rank: u32,
    took_over: bool,
    ts_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Handed to the channels.
    Sent,
    /// A channel delivered it.
    Delivered,
    /// A channel failed to deliver it (others may take over).
    Failed,
}

impl Entry {
    fn encode(&self) -> String {
        let state = match self.state {
            State::Sent => "sent",
            State::Delivered => "delivered",
            State::Failed => "failed",
        };
        format!(
            "{state};{};{};{}",
            self.rank, self.took_over as u8, self.ts_ms
        )
    }

    fn decode(text: &str) -> Option<Entry> {
        let mut parts = text.split(';');
        let state = match parts.next()? {
            "sent" => State::Sent,
            "delivered" => State::Delivered,
            "failed" => State::Failed,
            _ => return None,
        };
        Some(Entry {
            state,
            rank: parts.next()?.parse().ok()?,
            took_over: parts.next()? == "1",
            ts_ms: parts.next()?.parse().ok()?,
        })
    }
}

/// `n:<incident>:<event>:<repeat>:<sender>`.
fn log_key(key: &Key, sender: &str) -> String {
    format!("n:{}:{}:{}:{sender}", key.0, key.1.name(), key.2)
}

fn parse_log_key(text: &str) -> Option<(Key, &str)> {
    let rest = text.strip_prefix("n:")?;
    let mut parts = rest.splitn(4, ':');
    let incident = parts.next()?;
    let event = Event::from_name(parts.next()?)?;
    let repeat = parts.next()?.parse().ok()?;
    let sender = parts.next()?;
    Some(((Arc::from(incident), event, repeat), sender))
}

/// The rendezvous order of `members` for `incident`: highest score first.
/// Every watcher computes the same order; different incidents spread the
/// first rank over the farm.
fn rendezvous(incident: &str, members: &[Arc<str>]) -> Vec<Arc<str>> {
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

/// What arrives from chitchat's key listener.
type KeyChange = (Arc<str>, String, String);

/// Starts the gossip and the gate. `out` is the dispatcher's queue;
/// `queries` the checker's (peer evidence goes there).
pub async fn start(
    cfg: &FarmConfig,
    me: &str,
    jobs: usize,
    out: mpsc::Sender<Notification>,
    queries: mpsc::Sender<Query>,
    stats: Arc<Stats>,
) -> Result<Started, MonitorError> {
    let id = ChitchatId::new(me.to_owned(), wall_ms(), cfg.advertise);
    let rounds = (cfg.dead_after.as_secs_f64() / cfg.gossip_interval.as_secs_f64()).max(3.0);
    let config = ChitchatConfig {
        chitchat_id: id,
        cluster_id: cfg.cluster.clone(),
        gossip_interval: cfg.gossip_interval,
        listen_addr: cfg.gossip,
        seed_nodes: cfg.peers.iter().map(|p| p.gossip.clone()).collect(),
        // chitchat's phi is "time since the last heartbeat / mean interval":
        // a threshold of dead_after / interval marks a peer dead after
        // about dead_after of silence.
        failure_detector_config: FailureDetectorConfig {
            phi_threshold: rounds,
            sampling_window_size: 100,
            max_interval: cfg.dead_after,
            initial_interval: cfg.gossip_interval,
            dead_node_grace_period: Duration::from_secs(3600),
        },
        marked_for_deletion_grace_period: Duration::from_secs(3600),
        catchup_callback: None,
        extra_liveness_predicate: None,
        protocol_version: ProtocolVersion::V0,
    };
    let handle = spawn_chitchat(config, Vec::new(), &UdpTransport)
        .await
        .map_err(|e| MonitorError::Farm {
            addr: cfg.gossip,
            reason: e.to_string(),
        })?;
    let (kv_tx, kv_rx) = mpsc::unbounded_channel::<KeyChange>();
    let me_arc: Arc<str> = Arc::from(me);
    let listener = {
        let chitchat = handle.chitchat();
        let guard = chitchat.lock().await;
        let me = Arc::clone(&me_arc);
        guard.subscribe_event("", move |event| {
            if *event.node.node_id != *me {
                let _ = kv_tx.send((
                    Arc::clone(&event.node.node_id),
                    event.key.to_owned(),
                    event.value.to_owned(),
                ));
            }
        })
    };
    let live_rx = handle.chitchat().lock().await.live_nodes_watcher();
    let (gate_tx, gate_rx) = mpsc::channel(1024);
    let (heard_tx, heard_rx) = mpsc::channel(16);
    let (report_tx, report_rx) = mpsc::unbounded_channel();
    let delivered_elsewhere = Arc::new(Mutex::new(BTreeSet::new()));
    let reporter = Reporter {
        tx: report_tx,
        delivered_elsewhere: Arc::clone(&delivered_elsewhere),
    };
    let mut members: Vec<Arc<str>> = cfg.peers.iter().map(|p| Arc::from(p.id.as_str())).collect();
    members.push(Arc::clone(&me_arc));
    *stats.peers.lock().unwrap_or_else(PoisonError::into_inner) =
        cfg.peers.iter().map(|p| (p.id.clone(), false)).collect();
    let now = Instant::now();
    let gate = Gate {
        me: me_arc,
        members,
        peer_timeout: cfg.peer_timeout,
        gossip_interval: cfg.gossip_interval,
        dead_after: cfg.dead_after,
        isolation_jobs: cfg.isolation_jobs,
        jobs,
        live: BTreeSet::new(),
        ever_live: BTreeMap::new(),
        peer_down: BTreeMap::new(),
        log: HashMap::new(),
        order: VecDeque::new(),
        pending: Vec::new(),
        isolated: None,
        settle_until: now + cfg.dead_after + cfg.gossip_interval * 2,
        all_live_since: None,
        last_tick: now,
        next_at: None,
        delivered_elsewhere,
        chitchat: handle.chitchat(),
        out,
        queries,
        stats,
    };
    let task = tokio::spawn(gate.run(gate_rx, heard_rx, kv_rx, report_rx, live_rx));
    info!(gossip = %cfg.gossip, advertise = %cfg.advertise, peers = cfg.peers.len(), peer_timeout = ?cfg.peer_timeout, dead_after = ?cfg.dead_after, "joined the watcher farm");
    Ok(Started {
        farm: Farm {
            chitchat: handle,
            task,
            _listener: listener,
        },
        gate: gate_tx,
        heard: heard_tx,
        reporter,
    })
}

/// A notification waiting for its turn.
#[derive(Debug)]
struct Pending {
    note: Notification,
    /// The rendezvous order of the watchers for its incident, computed
    /// once: the gate judges every pending notification at every wake-up.
    order: Vec<Arc<str>>,
    since: Instant,
    /// Held while the watcher is isolated.
    parked: bool,
}

struct Gate {
    me: Arc<str>,
    /// Every configured watcher, this one included.
    members: Vec<Arc<str>>,
    peer_timeout: Duration,
    gossip_interval: Duration,
    dead_after: Duration,
    isolation_jobs: usize,
    jobs: usize,
    /// Peers alive now.
    live: BTreeSet<Arc<str>>,
    /// Peers seen alive since the start, with their generation.
    ever_live: BTreeMap<Arc<str>, u64>,
    /// Open `peer_down` incidents, by peer.
    peer_down: BTreeMap<Arc<str>, Arc<str>>,
    /// The shared log: who sent what.
    log: HashMap<Key, BTreeMap<Arc<str>, Entry>>,
    /// Log keys, oldest first, to keep the log bounded.
    order: VecDeque<Key>,
    pending: Vec<Pending>,
    /// The open `watcher_isolated` incident.
    isolated: Option<Arc<str>>,
    /// Nothing is sent before this: at start and after a stall, the log
    /// and the peers' liveness must be learnt afresh first.
    settle_until: Instant,
    /// Since when every configured peer has been alive (ends settling early).
    all_live_since: Option<Instant>,
    last_tick: Instant,
    /// When the earliest pending notification may go (set by `evaluate`).
    next_at: Option<Instant>,
    delivered_elsewhere: Arc<Mutex<BTreeSet<Key>>>,
    chitchat: Arc<tokio::sync::Mutex<chitchat::Chitchat>>,
    out: mpsc::Sender<Notification>,
    queries: mpsc::Sender<Query>,
    stats: Arc<Stats>,
}

impl Gate {
    async fn run(
        mut self,
        mut notes: mpsc::Receiver<Notification>,
        mut heard: mpsc::Receiver<Vec<(Arc<str>, PeerSeen)>>,
        mut kv: mpsc::UnboundedReceiver<KeyChange>,
        mut reports: mpsc::UnboundedReceiver<Report>,
        mut live: tokio::sync::watch::Receiver<BTreeMap<ChitchatId, chitchat::NodeState>>,
    ) {
        let mut tick = tokio::time::interval(self.gossip_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let next = self.next_at;
            tokio::select! {
                note = notes.recv() => match note {
                    Some(note) => {
                        self.check_stall();
                        let event = note.event;
                        self.hold(note, false);
                        if matches!(event, Event::Down | Event::Late) {
                            self.check_isolation().await;
                        }
                    }
                    // The checker stopped: shutdown.
                    None => break,
                },
                Some(batch) = heard.recv() => self.publish_heard(batch).await,
                Some(first) = kv.recv() => {
                    let mut batch = vec![first];
                    while let Ok(more) = kv.try_recv() {
                        batch.push(more);
                        if batch.len() >= 4096 {
                            break;
                        }
                    }
                    self.on_key_changes(batch).await;
                }
                Some(report) = reports.recv() => self.on_report(report).await,
                Ok(()) = live.changed() => {
                    let nodes: Vec<(Arc<str>, u64)> = live
                        .borrow_and_update()
                        .keys()
                        .map(|id| (Arc::clone(&id.node_id), id.generation_id))
                        .collect();
                    self.on_live(nodes).await;
                }
                _ = tick.tick() => {
                    self.check_stall();
                    self.last_tick = Instant::now();
                }
                () = sleep_until(next.unwrap_or_else(Instant::now)), if next.is_some() => {}
            }
            self.evaluate().await;
        }
    }

    /// A watcher frozen (SIGSTOP, a VM pause) or starved wakes with stale
    /// views: its peers may have taken over meanwhile. It settles again
    /// before it sends anything.
    fn check_stall(&mut self) {
        let gap = self.last_tick.elapsed();
        if gap > self.dead_after / 2 && gap > self.gossip_interval * 3 {
            warn!(stalled = ?gap, "this watcher did not run for a while (frozen or starved); relearning the farm before notifying");
            self.settle_until = Instant::now() + self.dead_after + self.gossip_interval * 2;
            self.all_live_since = None;
            self.last_tick = Instant::now();
        }
    }

    fn settling(&self, now: Instant) -> bool {
        if now >= self.settle_until {
            return false;
        }
        // Every peer alive and a few rounds exchanged: the log is learnt.
        self.all_live_since
            .is_none_or(|t| now < t + self.gossip_interval * 3)
    }

    fn view(&self, rank: u32) -> FarmView {
        let configured = u32::try_from(self.members.len()).unwrap_or(u32::MAX);
        let reachable = u32::try_from(self.live.len() + 1).unwrap_or(u32::MAX);
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
        let senders = self.senders(&alarm);
        let (mut first, rest): (Vec<_>, Vec<_>) = order.iter().partition(|m| senders.contains(*m));
        first.extend(rest);
        first
    }

    /// Holds `note` for the gate.
    fn hold(&mut self, note: Notification, parked: bool) {
        let order = rendezvous(&note.incident, &self.members);
        self.pending.push(Pending {
            note,
            order,
            since: Instant::now(),
            parked,
        });
    }

    /// Watchers that sent (or delivered) `key`.
    fn senders(&self, key: &Key) -> BTreeSet<Arc<str>> {
        self.log
            .get(key)
            .map(|by| {
                by.iter()
                    .filter(|(_, e)| e.state != State::Failed)
                    .map(|(s, _)| Arc::clone(s))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn is_live(&self, member: &Arc<str>) -> bool {
        *member == self.me || self.live.contains(member)
    }

    /// Whether someone's send of `key` makes ours unneeded: a delivery by
    /// anyone, or a send by a watcher still alive.
    fn handled(&self, key: &Key) -> bool {
        self.log.get(key).is_some_and(|by| {
            by.iter().any(|(who, e)| match e.state {
                State::Delivered => true,
                State::Sent => self.is_live(who),
                State::Failed => false,
            })
        })
    }

    /// When each pending notification may go, or `None` if it should be dropped.
    fn due(&self, p: &Pending, now: Instant) -> Option<Instant> {
        let key = Reporter::key(&p.note);
        if self.handled(&key) {
            return None;
        }
        let order = self.ranking(&p.note, &p.order);
        let rank = order.iter().position(|m| **m == self.me).unwrap_or(0);
        let failed = |m: &Arc<str>| {
            self.log
                .get(&key)
                .and_then(|by| by.get(m))
                .is_some_and(|e| e.state == State::Failed)
        };
        let ahead = order[..rank]
            .iter()
            .filter(|m| self.is_live(m) && !failed(m))
            .count();
        let mut due = p.since + self.peer_timeout * u32::try_from(ahead).unwrap_or(u32::MAX);
        // With no peer reachable, absence alarms and peer_down wait a
        // little: if many jobs fall silent with the peers, the watcher is
        // the one cut off, and says so once instead.
        if self.live.is_empty()
            && matches!(p.note.event, Event::Down | Event::Late | Event::PeerDown)
        {
            due = due.max(p.since + self.peer_timeout);
        }
        if self.settling(now) {
            due = due.max(self.settle_until);
        }
        Some(due)
    }

    async fn evaluate(&mut self) {
        let now = Instant::now();
        // A follow-up for an alarm nobody sent is owed to nobody; if the
        // alarm is still waiting here, both go.
        let cancelled: BTreeSet<Key> = self
            .pending
            .iter()
            .filter(|p| !p.parked)
            .filter_map(|p| alarm_key(&p.note))
            .filter(|alarm| self.senders(alarm).is_empty())
            .collect();
        let pending = std::mem::take(&mut self.pending);
        let mut keep = Vec::with_capacity(pending.len());
        let mut send = Vec::new();
        let mut next_at: Option<Instant> = None;
        for p in pending {
            if p.parked {
                keep.push(p);
                continue;
            }
            let own = Reporter::key(&p.note);
            let orphan = alarm_key(&p.note).is_some_and(|a| cancelled.contains(&a));
            if orphan || cancelled.contains(&own) {
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
            self.send(p.note, &p.order).await;
        }
    }

    async fn send(&mut self, mut note: Notification, order: &[Arc<str>]) {
        let order = self.ranking(&note, order);
        let rank = u32::try_from(order.iter().position(|m| **m == self.me).unwrap_or(0))
            .unwrap_or(u32::MAX);
        note.farm = Some(self.view(rank));
        if rank > 0 {
            self.stats.farm_took_over.fetch_add(1, Ordering::Relaxed);
        }
        let key = Reporter::key(&note);
        let entry = Entry {
            state: State::Sent,
            rank,
            took_over: rank > 0,
            ts_ms: wall_ms(),
        };
        let me = Arc::clone(&self.me);
        self.record(key, me, entry).await;
        let _ = self.out.send(note).await;
    }

    /// Records a log entry, ours or a copy of a peer's, in the log and in
    /// our gossip state (every watcher keeps a copy of every entry).
    async fn record(&mut self, key: Key, sender: Arc<str>, entry: Entry) {
        let by = self.log.entry(key.clone()).or_default();
        let before = by.values().filter(|e| e.state != State::Failed).count();
        let changed = by.get(&sender) != Some(&entry);
        if !changed {
            return;
        }
        let fresh = by.is_empty();
        by.insert(Arc::clone(&sender), entry);
        let after = by.values().filter(|e| e.state != State::Failed).count();
        if before == 1 && after == 2 {
            self.stats
                .farm_duplicate_sends
                .fetch_add(1, Ordering::Relaxed);
            warn!(incident = %key.0, event = %key.1, "sent by more than one watcher (partition or failed delivery); each copy names its watcher");
        }
        if entry.state == State::Delivered && *sender != *self.me {
            self.delivered_elsewhere
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(key.clone());
        }
        if fresh {
            self.order.push_back(key.clone());
        }
        {
            let mut chitchat = self.chitchat.lock().await;
            let state = chitchat.self_node_state();
            state.set(log_key(&key, &sender), entry.encode());
            while self.order.len() > LOG_KEEP {
                if let Some(old) = self.order.pop_front() {
                    if let Some(by) = self.log.remove(&old) {
                        for who in by.keys() {
                            state.delete(&log_key(&old, who));
                        }
                    }
                    self.delivered_elsewhere
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .remove(&old);
                }
            }
        }
    }

    async fn on_report(&mut self, report: Report) {
        let (key, state) = match report {
            Report::Delivered(key) => (key, State::Delivered),
            Report::Failed(key) => (key, State::Failed),
        };
        let me = Arc::clone(&self.me);
        let Some(mut entry) = self.log.get(&key).and_then(|by| by.get(&me)).copied() else {
            return;
        };
        // Delivered by one channel stays delivered.
        if entry.state == State::Delivered {
            return;
        }
        entry.state = state;
        self.record(key, me, entry).await;
    }

    async fn publish_heard(&mut self, batch: Vec<(Arc<str>, PeerSeen)>) {
        tracing::debug!(jobs = batch.len(), "gossiping what was heard here");
        let mut chitchat = self.chitchat.lock().await;
        let state = chitchat.self_node_state();
        for (job, seen) in batch {
            state.set(format!("s:{job}"), seen.encode());
        }
    }

    async fn on_key_changes(&mut self, batch: Vec<KeyChange>) {
        let mut seen: BTreeMap<Arc<str>, Vec<(String, PeerSeen)>> = BTreeMap::new();
        for (node, key, value) in batch {
            if let Some(job) = key.strip_prefix("s:") {
                if let Some(s) = PeerSeen::decode(&value) {
                    seen.entry(node).or_default().push((job.to_owned(), s));
                }
            } else if let Some((log_key, sender)) = parse_log_key(&key) {
                let Some(entry) = Entry::decode(&value) else {
                    continue;
                };
                let sender: Arc<str> = Arc::from(sender);
                if *sender == *self.me && !self.log.contains_key(&log_key) {
                    // Our own entry from before a restart: learnt back.
                    self.record(log_key, sender, entry).await;
                    continue;
                }
                let known = self
                    .log
                    .get(&log_key)
                    .and_then(|by| by.get(&sender))
                    .copied();
                // The sender's own key is the truth; a copy only fills a gap.
                let take = if *node == *sender {
                    known != Some(entry)
                } else {
                    known.is_none()
                };
                if take && *sender != *self.me {
                    self.record(log_key, sender, entry).await;
                }
            }
        }
        for (peer, seen) in seen {
            tracing::debug!(peer = %peer, jobs = seen.len(), "evidence from a peer");
            let _ = self.queries.send(Query::PeerSeen { peer, seen }).await;
        }
    }

    async fn on_live(&mut self, nodes: Vec<(Arc<str>, u64)>) {
        let now = Instant::now();
        let live: BTreeSet<Arc<str>> = nodes
            .iter()
            .filter(|(n, _)| *n != self.me && self.members.contains(n))
            .map(|(n, _)| Arc::clone(n))
            .collect();
        for (node, generation) in &nodes {
            if *node != self.me && self.members.contains(node) {
                self.ever_live.insert(Arc::clone(node), *generation);
            }
        }
        let gone: Vec<Arc<str>> = self.live.difference(&live).cloned().collect();
        let back: Vec<Arc<str>> = live.difference(&self.live).cloned().collect();
        self.live = live;
        for (peer, live) in self
            .stats
            .peers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter_mut()
        {
            *live = self.live.contains(peer.as_str());
        }
        let everyone = self.live.len() + 1 == self.members.len();
        self.all_live_since = if everyone {
            self.all_live_since.or(Some(now))
        } else {
            None
        };
        for peer in gone {
            warn!(peer = %peer, "a farm peer went silent");
            let generation = self.ever_live.get(&peer).copied().unwrap_or(0);
            let id: Arc<str> = Arc::from(incident_id(
                &peer,
                Event::PeerDown,
                &format!("generation:{generation}"),
            ));
            self.peer_down.insert(Arc::clone(&peer), Arc::clone(&id));
            let mut note = self.notice(Event::PeerDown, &peer, &id);
            note.text = Some(format!(
                "watcher {peer} went silent; its duty is taken over"
            ));
            self.hold(note, self.isolated.is_some());
        }
        for peer in back {
            info!(peer = %peer, "a farm peer is reachable");
            if let Some(id) = self.peer_down.remove(&peer) {
                let mut note = self.notice(Event::Recovered, &peer, &id);
                note.resolves = Some(Event::PeerDown);
                note.text = Some(format!("watcher {peer} is reachable again"));
                self.hold(note, false);
            }
        }
        if !self.live.is_empty() {
            self.end_isolation().await;
        }
    }

    fn notice(&self, event: Event, job: &Arc<str>, incident: &Arc<str>) -> Notification {
        Notification::new(
            event,
            Arc::clone(job),
            Arc::clone(incident),
            Arc::clone(&self.me),
            wall_ms(),
        )
    }

    /// No peer reachable and many jobs silent at once: this watcher is the
    /// one cut off. One `watcher_isolated` instead of an alert per job;
    /// the per-job alarms wait until a peer is reachable again.
    async fn check_isolation(&mut self) {
        if self.live.is_empty() && self.isolated.is_none() {
            let silent = self
                .pending
                .iter()
                .filter(|p| matches!(p.note.event, Event::Down | Event::Late))
                .count();
            if silent >= self.isolation_jobs && silent * 2 >= self.jobs {
                let id: Arc<str> = Arc::from(incident_id(
                    &self.me,
                    Event::WatcherIsolated,
                    &wall_ms().to_string(),
                ));
                warn!(
                    silent_jobs = silent,
                    "no peer reachable and most jobs silent: this watcher is isolated"
                );
                self.isolated = Some(Arc::clone(&id));
                let me = Arc::clone(&self.me);
                let mut note = self.notice(Event::WatcherIsolated, &me, &id);
                note.text = Some(format!(
                    "watcher {me} reaches no peer and {silent} of its {} jobs fell silent at once: most likely its own network is cut; per-job alerts are held",
                    self.jobs
                ));
                // About this watcher alone: nobody else can send it, so it is rank 0.
                let order = [Arc::clone(&self.me)];
                self.send(note, &order).await;
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

    async fn end_isolation(&mut self) {
        let Some(id) = self.isolated.take() else {
            return;
        };
        let now = Instant::now();
        for p in &mut self.pending {
            if p.parked {
                // Judged afresh: with peers back, what they heard reaches
                // the checker and closes the incidents that were not real.
                p.parked = false;
                p.since = now;
            }
        }
        // Our own isolation showed as peer_down on this side only.
        self.pending.retain(|p| p.note.event != Event::PeerDown);
        let me = Arc::clone(&self.me);
        let mut note = self.notice(Event::Recovered, &me, &id);
        note.resolves = Some(Event::WatcherIsolated);
        note.text = Some(format!("watcher {me} reaches its peers again"));
        // About this watcher alone: nobody else can send it, so it is rank 0.
        let order = [Arc::clone(&self.me)];
        self.send(note, &order).await;
    }
}

/// The alarm a follow-up is about.
fn alarm_key(note: &Notification) -> Option<Key> {
    if !note.event.is_follow_up() {
        return None;
    }
    Some((Arc::clone(&note.incident), note.resolves?, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn log_entries_round_trip() {
        let e = Entry {
            state: State::Delivered,
            rank: 2,
            took_over: true,
            ts_ms: 1_700_000_000_000,
        };
        assert_eq!(Entry::decode(&e.encode()), Some(e));
        let key: Key = (Arc::from("0123abcd"), Event::Down, 0);
        let text = log_key(&key, "watcher:b");
        let (back, sender) = parse_log_key(&text).expect("parses");
        assert_eq!((back, sender), (key, "watcher:b"));
        assert_eq!(Entry::decode("bogus;1;0;5"), None);
    }
}
