//! Watcher farms: every watcher hears and judges every job; they gossip
//! what they heard and what they sent, and a gate decides which of them
//! sends each notification.
//!
//! # Layout
//! - [`membership`]: chitchat (the only file that knows it): who is alive,
//!   keys peers set, keys we set.
//! - [`wire`]: the gossip keys and values.
//! - [`ledger`]: the farm ledger (who sent, delivered or failed
//!   what), knowing nothing of gossip.
//! - [`gate`]: who sends each notification and when; pure (inputs with
//!   the time, outputs as values), so tests and the simulation drive it.
//! - [`isolation`]: telling a watcher cut off from everything apart.
//! - this file: the task that feeds the gate and carries out what it says.

pub mod gate;
pub mod isolation;
pub mod ledger;
pub mod membership;
pub mod sealed;
pub mod wire;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until};
use tracing::info;

use crate::checker::CheckerHandle;
use crate::clock::wall_ms;
use crate::config::FarmConfig;
use crate::error::MonitorError;
use crate::notification::Notification;
use crate::registry::PeerSeen;
use crate::stats::Stats;
use crate::store::Store;
use gate::{Gate, GateConfig, Output, Report, key_of};
use membership::{Events, Membership};
use wire::{NoteKey, Said};

/// The channels' line to the farm: they report how delivery went, and a
/// channel retrying a failed delivery asks whether a peer delivered it
/// meanwhile (then it stops: the peer's copy is the one people got).
#[derive(Debug, Clone)]
pub struct Reporter {
    tx: mpsc::UnboundedSender<Report>,
    delivered_elsewhere: Arc<Mutex<BTreeSet<NoteKey>>>,
}

impl crate::notify::DeliveryReports for Reporter {
    fn delivered(&self, note: &Notification) {
        let _ = self.tx.send(Report::Delivered(key_of(note)));
    }

    fn failed(&self, note: &Notification) {
        let _ = self.tx.send(Report::Failed(key_of(note)));
    }

    fn delivered_elsewhere(&self, note: &Notification) -> bool {
        self.delivered_elsewhere
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&key_of(note))
    }
}

/// A running farm membership: stop it with [`Farm::stop`].
#[derive(Debug)]
pub struct Farm {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Farm {
    /// Leaves the farm (notifications the gate still holds are left to the peers).
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
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
    /// Acknowledgements taken here, to gossip.
    pub acks: mpsc::Sender<(Arc<str>, crate::notification::Ack)>,
    /// For the channels.
    pub reporter: Reporter,
}

/// Joins the farm and starts the gate. `out` is the dispatcher's queue;
/// `checker` takes the peers' evidence.
/// `sent` is this watcher's durable notification log and `open` the
/// incidents its restored job state holds open (see [`Gate::remember_sent`]).
#[expect(clippy::too_many_arguments, reason = "what the farm is wired to")]
pub async fn start(
    cfg: &FarmConfig,
    me: &str,
    jobs: usize,
    sent: &[Notification],
    open: &BTreeSet<Arc<str>>,
    out: mpsc::Sender<Notification>,
    checker: CheckerHandle,
    stats: Arc<Stats>,
    store: Option<Store>,
) -> Result<Started, MonitorError> {
    let (membership, events) = Membership::join(cfg, me, Arc::clone(&stats)).await?;
    let me: Arc<str> = Arc::from(me);
    let mut members: Vec<Arc<str>> = cfg.peers.iter().map(|p| Arc::from(p.id.as_str())).collect();
    members.push(Arc::clone(&me));
    *stats.peers.lock().unwrap_or_else(PoisonError::into_inner) =
        cfg.peers.iter().map(|p| (p.id.clone(), false)).collect();
    let mut gate = Gate::new(
        GateConfig {
            me,
            members,
            peer_timeout: cfg.peer_timeout,
            gossip_interval: cfg.gossip_interval,
            dead_after: cfg.dead_after,
            isolation_jobs: cfg.isolation_jobs,
            jobs,
        },
        Arc::clone(&stats),
        Instant::now(),
    );
    let mut remembered = Vec::new();
    gate.remember_sent(sent, open, Instant::now(), &mut remembered);
    let (gate_tx, gate_rx) = mpsc::channel(1024);
    let (heard_tx, heard_rx) = mpsc::channel(16);
    let (acks_tx, acks_rx) = mpsc::channel(256);
    let (report_tx, report_rx) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = oneshot::channel();
    let delivered_elsewhere = Arc::new(Mutex::new(BTreeSet::new()));
    let reporter = Reporter {
        tx: report_tx,
        delivered_elsewhere: Arc::clone(&delivered_elsewhere),
    };
    let mut task = Task {
        gate,
        membership,
        out,
        checker,
        stats,
        delivered_elsewhere,
        gossip_interval: cfg.gossip_interval,
        store,
        acked: std::collections::VecDeque::new(),
    };
    task.carry_out(remembered).await;
    let task = tokio::spawn(task.run(
        events,
        Inputs {
            notes: gate_rx,
            heard: heard_rx,
            reports: report_rx,
            acks: acks_rx,
        },
        stop_rx,
    ));
    info!(gossip = %cfg.gossip, advertise = %cfg.advertise, peers = cfg.peers.len(), peer_timeout = ?cfg.peer_timeout, dead_after = ?cfg.dead_after, "joined the watcher farm");
    Ok(Started {
        farm: Farm {
            stop: stop_tx,
            task,
        },
        gate: gate_tx,
        heard: heard_tx,
        acks: acks_tx,
        reporter,
    })
}

/// The farm task: feeds the gate and carries out its outputs.
struct Task {
    gate: Gate,
    membership: Membership,
    out: mpsc::Sender<Notification>,
    checker: CheckerHandle,
    stats: Arc<Stats>,
    delivered_elsewhere: Arc<Mutex<BTreeSet<NoteKey>>>,
    gossip_interval: std::time::Duration,
    /// Where this watcher's own ledger entries learnt back are written.
    store: Option<Store>,
    /// The acknowledgement keys this watcher publishes, oldest first
    /// (bounded by [`wire::ACKS_KEPT`]).
    acked: std::collections::VecDeque<String>,
}

/// What the farm task takes besides gossip events.
struct Inputs {
    /// The checker's notifications, for the gate.
    notes: mpsc::Receiver<Notification>,
    /// What the checker heard.
    heard: mpsc::Receiver<Vec<(Arc<str>, PeerSeen)>>,
    /// How the channels' deliveries went.
    reports: mpsc::UnboundedReceiver<Report>,
    /// Acknowledgements taken here.
    acks: mpsc::Receiver<(Arc<str>, crate::notification::Ack)>,
}

impl Task {
    async fn run(mut self, mut events: Events, inputs: Inputs, mut stop: oneshot::Receiver<()>) {
        let Inputs {
            mut notes,
            mut heard,
            mut reports,
            mut acks,
        } = inputs;
        let mut tick = tokio::time::interval(self.gossip_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let next = self.gate.next_wake();
            let mut out = Vec::new();
            tokio::select! {
                _ = &mut stop => break,
                note = notes.recv() => match note {
                    Some(note) => self.gate.on_notification(note, Instant::now(), wall_ms(), &mut out),
                    // The checker stopped: shutdown.
                    None => break,
                },
                Some(batch) = heard.recv() => {
                    self.gate.on_heard(batch.len(), Instant::now());
                    tracing::debug!(jobs = batch.len(), "gossiping what was heard here");
                    let set = batch
                        .into_iter()
                        .map(|(job, seen)| (wire::seen_key(&job), seen.encode()))
                        .collect();
                    self.membership.update(set, Vec::new()).await;
                }
                Some(first) = events.keys.recv() => {
                    let mut batch = vec![first];
                    while let Ok(more) = events.keys.try_recv() {
                        batch.push(more);
                        if batch.len() >= 4096 {
                            break;
                        }
                    }
                    self.on_key_changes(batch, &mut out).await;
                }
                Some(report) = reports.recv() => self.gate.on_report(report, &mut out),
                Some((incident, ack)) = acks.recv() => self.publish_ack(&incident, &ack).await,
                Ok(()) = events.live.changed() => {
                    let nodes = membership::live_nodes(&events.live.borrow_and_update());
                    let beats = self.membership.heartbeats().await;
                    let heartbeat = |peer: &str| beats.get(peer).copied().unwrap_or(0);
                    self.gate.on_live(&nodes, &heartbeat, Instant::now(), wall_ms(), &mut out);
                    let live = self.gate.live();
                    for (peer, up) in self
                        .stats
                        .peers
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .iter_mut()
                    {
                        *up = live.contains(peer.as_str());
                    }
                }
                _ = tick.tick() => {
                    let beats = self.membership.heartbeats().await;
                    self.gate.on_heartbeats(&beats, Instant::now());
                    self.gate.on_tick(Instant::now());
                }
                () = sleep_until(next.unwrap_or_else(Instant::now)), if next.is_some() => {}
            }
            self.gate.evaluate(Instant::now(), wall_ms(), &mut out);
            self.carry_out(out).await;
        }
        self.membership.leave().await;
    }

    async fn on_key_changes(&mut self, batch: Vec<membership::KeyChange>, out: &mut Vec<Output>) {
        let mut seen: BTreeMap<Arc<str>, Vec<(String, PeerSeen)>> = BTreeMap::new();
        for (node, key, value) in batch {
            match wire::read(&key, &value) {
                Some(Said::Seen { job, seen: s }) => {
                    seen.entry(node).or_default().push((job, s));
                }
                Some(Said::Ledger { key, sender, entry }) => {
                    self.gate.on_ledger_entry(&node, key, sender, entry, out);
                }
                Some(Said::Ack { incident, ack }) => {
                    tracing::debug!(peer = %node, %incident, by = %ack.by, "a peer's acknowledgement");
                    // A copy is published under this watcher's name too, as
                    // ledger entries are: a peer restarted with its state
                    // wiped learns it back from any watcher, even once the
                    // one that took it is gone.
                    self.publish_ack(&incident, &ack).await;
                    // Not open here yet: the registry keeps it for when it is.
                    let _ = self.checker.ack(incident, ack, true).await;
                }
                None => {}
            }
        }
        for (peer, seen) in seen {
            tracing::debug!(peer = %peer, jobs = seen.len(), "evidence from a peer");
            self.checker.peer_seen(peer, seen).await;
        }
    }

    /// Publishes an acknowledgement under this watcher's name, once
    /// (bounded: the oldest go past [`wire::ACKS_KEPT`]).
    async fn publish_ack(&mut self, incident: &str, ack: &crate::notification::Ack) {
        let key = wire::ack_key(incident);
        if self.acked.contains(&key) {
            return;
        }
        self.acked.push_back(key.clone());
        let mut delete = Vec::new();
        while self.acked.len() > wire::ACKS_KEPT {
            delete.extend(self.acked.pop_front());
        }
        self.membership
            .update(vec![(key, wire::encode_ack(ack))], delete)
            .await;
    }

    async fn carry_out(&mut self, outputs: Vec<Output>) {
        let (mut set, mut delete) = (Vec::new(), Vec::new());
        for output in outputs {
            match output {
                Output::Send(note) => {
                    // Published before it is handed on: a peer learns it
                    // was sent even if this watcher dies in the middle.
                    self.membership
                        .update(std::mem::take(&mut set), std::mem::take(&mut delete))
                        .await;
                    let _ = self.out.send(note).await;
                }
                Output::Publish(key, value) => set.push((key, value)),
                Output::Unpublish(key) => delete.push(key),
                Output::DeliveredElsewhere(key) => {
                    self.delivered_elsewhere
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(key);
                }
                Output::Remember(note) => {
                    if let Some(store) = &self.store {
                        store.remember(note);
                    }
                }
                Output::Forget(key) => {
                    self.delivered_elsewhere
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .remove(&key);
                }
            }
        }
        self.membership.update(set, delete).await;
    }
}
