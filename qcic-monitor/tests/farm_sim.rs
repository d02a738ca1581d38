//! Deterministic simulation of a watcher farm: 2 to 5 watchers, each the
//! real `Registry` and the real farm `Gate`, on a simulated network and
//! clock, under seeded random schedules of kills and restarts (state kept or
//! wiped), freezes, partitions (full, one-way, job links only, one watcher
//! cut from everything), messages queued while a link is cut and delivered
//! when it heals, messages lost on one link, two senders of one job, and
//! heals. Gossip is modelled as scuttlebutt: each watcher
//! writes only its own keys, and any two watchers that reach each other
//! both ways exchange everything they know each gossip round; a peer is
//! alive while news of its heartbeat keeps coming.
//!
//! After every schedule (everything healed, every job back, time to
//! settle) it checks:
//! - every outage that outlasts its deadline plus the documented bound is
//!   notified by at least one watcher (a `down`, or the `watcher_isolated`
//!   a watcher that hears nothing sends instead of per-job alerts);
//! - no watcher sends the same (incident, event, repeat) twice;
//! - of the copies of a notification (alarm or follow-up) sent by more
//!   than one watcher, at most one is unlabelled: every other says
//!   `partition_suspected` (the unlabelled one may come from a watcher that
//!   died before it could tell anyone, or that reached everyone while a
//!   peer did not reach it);
//! - no unlabelled `down` goes out while a watcher the sender reached, and
//!   the sending watcher reached, heard the job within its deadline;
//! - no unlabelled `recovered` closes the alarm of a job stopped for
//!   longer than its deadline (messages queued during a cut and delivered
//!   late are no life);
//! - the unlabelled `down`s sent during one outage of a job all carry one
//!   incident id, whatever messages each watcher heard;
//! - every alarm sent gets a follow-up once the trouble ends;
//! - a watcher that holds an acknowledgement of an incident (taken by an
//!   operator at a random watcher, spread by the gossip, kept across
//!   restarts) never raises a reminder or an escalation step of it; job
//!   `job0` reminds every 4 s and escalates after 6 s;
//! - every time a peer stays silent past `dead_after` and the bound, a
//!   `peer_down` is sent for it, each time a new incident (a return shorter
//!   than `dead_after`, seen by one watcher from news relayed late, counts
//!   as none).
//!
//! A failure prints the seed and the schedule: `QCIC_SIM_SEED=N` replays
//! one, `QCIC_SIM_SCHEDULES=N` runs more.

#![expect(clippy::unwrap_used, reason = "tests: a panic is the failure report")]

use qcic_testkit::Rng;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use qcic_monitor::clock::Now;
use qcic_monitor::config::JobConfig;
use qcic_monitor::farm::gate::{Gate, GateConfig, Output, Report, key_of};
use qcic_monitor::farm::wire::{self, Said};
use qcic_monitor::notification::{Event, Notification};
use qcic_monitor::registry::Registry;
use qcic_monitor::schedule::Schedule;
use qcic_monitor::stats::Stats;
use qcic_sdk::{Kind, Message};
use tokio::time::Instant;

/// Seeds that failed while the gate was made to pass, run first: 9 (a
/// restarted watcher declared itself isolated before it had heard
/// anyone), 28 and 41 (an open peer_down forgotten by its sender's restart,
/// or kept as one per peer), 57 (a rejoin settle delaying a follow-up past
/// the next rank), 78 (a follow-up cancelled while the ledger was not learnt
/// yet), 141 (a frozen watcher sending on its stale view before its tick
/// noticed the freeze), 172 (an alarm whose job state every watcher lost),
/// 258 (the next rank sending as the first one's ledger entry was on its way);
/// and, beyond the default range: 310 (peer evidence restored as heard
/// here), 349 (a rank overtaken while it relearnt the farm after a
/// rejoin), 462 (a backlog's head at a watcher that lost its offsets),
/// 777 (a follow-up held at a restart for an incident raised again), 910
/// (a watcher's own ledger entries learnt back but not kept), 1027 (a
/// restarted watcher that did not tell what peers had told it).
const REGRESSION_SEEDS: &[u64] = &[
    9, 28, 41, 57, 78, 141, 172, 258, 310, 349, 462, 777, 910, 1027,
];
const SCHEDULES: u64 = 300;

const TICK: u64 = 100;
const ROUND: u64 = 500;
const DEAD_AFTER: u64 = 4_000;
const PEER_TIMEOUT: u64 = 5_000;
const EVERY: u64 = 10_000;
const GRACE: u64 = 2_000;
const BEAT: u64 = 2_000;
const JOBS: usize = 3;
/// How long the faults last, then the heal phase.
const FAULTS_FOR: u64 = 120_000;
const HEAL_FOR: u64 = 60_000;

/// (watcher, incident, event, resolves, repeat).
type SentKey = (Arc<str>, String, Event, Option<Event>, u32);

fn job_name(j: usize) -> String {
    format!("job{j}")
}

fn jobs() -> Vec<JobConfig> {
    (0..JOBS)
        .map(|j| {
            let mut job = JobConfig::new(
                &job_name(j),
                Schedule::Every(Duration::from_millis(EVERY)),
                Duration::from_millis(GRACE),
            );
            if j == 0 {
                job.repeat = Some(Duration::from_millis(4_000));
                job.escalate = vec![qcic_monitor::config::EscalationStep {
                    after: Duration::from_millis(6_000),
                    notify: vec!["pager".into()],
                }];
            }
            job
        })
        .collect()
}

/// What one watcher knows of one origin's gossip state.
#[derive(Debug, Clone, Default)]
struct Known {
    generation: u64,
    heartbeat: u64,
    /// key -> (version, value; None: deleted)
    kv: BTreeMap<String, (u64, Option<String>)>,
    /// When this watcher last saw the heartbeat move (sim ms).
    beat_seen_at: u64,
}

struct Watcher {
    id: Arc<str>,
    /// Its wall clock minus the true time (watchers keep NTP time: within
    /// half a second of each other).
    clock: i64,
    up: bool,
    frozen_until: u64,
    generation: u64,
    registry: Registry,
    gate: Gate,
    stats: Arc<Stats>,
    /// Own gossip state (origin = this watcher).
    own: Known,
    version: u64,
    /// What it knows of the others, by index.
    view: BTreeMap<usize, Known>,
    /// Peers the gate was last told are alive.
    live: BTreeSet<usize>,
    /// The dispatcher's log: what it already handed to channels (kept in
    /// the state database).
    dispatched: HashSet<(String, Event, Option<Event>, u32)>,
    dispatched_notes: Vec<Notification>,
    /// The state database.
    saved: BTreeMap<String, String>,
    /// Messages waiting to be delivered to it, per sender link.
    inbox: Vec<Message>,
}

#[derive(Debug, Clone)]
struct Sent {
    at: u64,
    by: usize,
    note: Notification,
}

struct Sender {
    running: bool,
    /// Its clock minus the true time (ms); it steps now and then.
    clock: i64,
    host: String,
    pid: u32,
    seq: u64,
    next_beat: u64,
    /// A second process also reporting this job (its pid).
    twin: Option<(u32, u64)>,
    /// Since when it has been running without a break (sim ms).
    running_since: u64,
}

struct Sim {
    seed: u64,
    rng: Rng,
    trace: Vec<String>,
    t0: Instant,
    now: u64,
    wall0: u64,
    watchers: Vec<Watcher>,
    /// gossip[a][b]: a's packets reach b.
    gossip: Vec<Vec<bool>>,
    /// link[j][w]: job j's sender reaches watcher w.
    link: Vec<Vec<bool>>,
    /// Messages queued at a sender for a watcher it cannot reach: [j][w].
    queued: Vec<Vec<Vec<Message>>>,
    senders: Vec<Sender>,
    sent: Vec<Sent>,
    /// Job outages: (job, stopped at, resumed at).
    outages: Vec<(usize, u64, Option<u64>)>,
    /// Watcher outages: (watcher, silent from, back at), for watchers a
    /// running peer reached when they died (one no peer has seen since its
    /// start, none can report: it was never known alive).
    silences: Vec<(usize, u64, Option<u64>)>,
    /// good[j][w]: since when job j's sender has reached watcher w, which
    /// has been up and running, without a break.
    good_since: Vec<Vec<Option<u64>>>,
    /// connected_since[a][b]: since when a and b reach each other both ways.
    connected_since: Vec<Vec<Option<u64>>>,
    /// (a, b, t): watchers a and b reached each other again at t.
    reconnects: Vec<(usize, usize, u64)>,
    /// lose[j][w]: how many of job j's next messages to w are lost.
    lose: Vec<Vec<u32>>,
    /// reconnect_at[j][w]: when job j's sender, whose link to w is back,
    /// has reconnected (ZeroMQ retries with a backoff; gossip is back
    /// sooner). What it queued arrives then, before anything newer.
    reconnect_at: Vec<Vec<Option<u64>>>,
    /// Percent chance of a fault per tick: stormy schedules, and calm ones
    /// where every watcher reaches every other when a job stops.
    fault_rate: u64,
    /// Operators acknowledging incidents: a stream of its own, so the
    /// faults of every seed stay what they were.
    ack_rng: Rng,
    /// Acknowledgements taken.
    acks: usize,
    /// Reminders and escalation steps raised (that acknowledgements stop).
    reminders: usize,
}

fn gate_for(id: &Arc<str>, members: &[Arc<str>], t: Instant, stats: &Arc<Stats>) -> Gate {
    Gate::new(
        GateConfig {
            me: Arc::clone(id),
            members: members.to_vec(),
            peer_timeout: Duration::from_millis(PEER_TIMEOUT),
            gossip_interval: Duration::from_millis(ROUND),
            dead_after: Duration::from_millis(DEAD_AFTER),
            isolation_jobs: 2,
            jobs: JOBS,
        },
        Arc::clone(stats),
        t,
    )
}

impl Sim {
    fn new(seed: u64) -> Sim {
        let mut rng = Rng(seed);
        let n = 2 + rng.below(4) as usize;
        let t0 = Instant::now();
        let wall0 = 1_780_000_000_000 + rng.below(86_400_000);
        let members: Vec<Arc<str>> = (0..n).map(|i| Arc::from(format!("w{i}"))).collect();
        let watchers = members
            .iter()
            .map(|id| {
                let stats = Arc::new(Stats::default());
                Watcher {
                    id: Arc::clone(id),
                    clock: 0,
                    up: true,
                    frozen_until: 0,
                    generation: 1,
                    registry: Registry::new(
                        id,
                        &jobs(),
                        8,
                        Duration::from_secs(300),
                        Arc::clone(&stats),
                        Now::new(t0, wall0),
                    )
                    .with_heard_tracking(),
                    gate: gate_for(id, &members, t0, &stats),
                    stats,
                    own: Known {
                        generation: 1,
                        ..Known::default()
                    },
                    version: 0,
                    view: BTreeMap::new(),
                    live: BTreeSet::new(),
                    dispatched: HashSet::new(),
                    dispatched_notes: Vec::new(),
                    saved: BTreeMap::new(),
                    inbox: Vec::new(),
                }
            })
            .collect();
        let senders = (0..JOBS)
            .map(|j| Sender {
                running: true,
                clock: 0,
                host: format!("host{j}"),
                pid: 100 + j as u32,
                seq: 0,
                next_beat: rng.below(BEAT),
                twin: None,
                running_since: 0,
            })
            .collect();
        let mut watchers: Vec<Watcher> = watchers;
        for w in &mut watchers {
            w.clock = rng.below(1_000) as i64 - 500;
        }
        let mut senders: Vec<Sender> = senders;
        for (j, s) in senders.iter_mut().enumerate() {
            s.clock = rng.below(10_000) as i64 - 5_000;
            if rng.chance(30) {
                s.twin = Some((900 + j as u32, 0));
            }
        }
        let fault_rate = [1, 2, 4][rng.below(3) as usize];
        Sim {
            seed,
            rng,
            trace: Vec::new(),
            t0,
            now: 0,
            wall0,
            watchers,
            gossip: vec![vec![true; n]; n],
            link: vec![vec![true; n]; JOBS],
            queued: vec![vec![Vec::new(); n]; JOBS],
            senders,
            sent: Vec::new(),
            outages: Vec::new(),
            silences: Vec::new(),
            good_since: vec![vec![Some(0); n]; JOBS],
            connected_since: vec![vec![Some(0); n]; n],
            reconnects: Vec::new(),
            lose: vec![vec![0; n]; JOBS],
            reconnect_at: vec![vec![None; n]; JOBS],
            fault_rate,
            ack_rng: Rng(seed ^ 0xACC0_FFEE),
            acks: 0,
            reminders: 0,
        }
    }

    fn fail(&self, what: &str) -> ! {
        let path = self.dump();
        panic!(
            "seed {} (replay: QCIC_SIM_SEED={}), {} watchers: {what}\nschedule and sends in {}",
            self.seed,
            self.seed,
            self.watchers.len(),
            path.display()
        );
    }

    /// Writes the schedule, what was sent and the watchers' views to a file.
    fn dump(&self) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!("qcic-farm-sim-seed-{}.txt", self.seed));
        let mut text = self.trace.join("\n");
        text.push_str("\n\nsent:\n");
        for s in &self.sent {
            text.push_str(&format!(
                "t={} {} {} {} {} repeat={} escalation={} farm={:?}\n",
                s.at,
                self.watchers[s.by].id,
                s.note.event,
                s.note.job,
                s.note.incident,
                s.note.repeat,
                s.note.escalation,
                s.note.farm
            ));
        }
        text.push_str("\nwatchers now:\n");
        for w in &self.watchers {
            text.push_str(&format!("{} up={} live={:?}\n", w.id, w.up, w.live));
            for v in w.registry.views(Now::new(self.instant(), self.wall())) {
                text.push_str(&format!(
                    "  {} {} last={:?} host={:?} next={:?} incidents={:?}\n",
                    v.name, v.state, v.last_seen_ms, v.last_host, v.next_deadline_ms, v.incidents
                ));
            }
        }
        let _ = std::fs::write(&path, text);
        path
    }

    fn note(&mut self, what: String) {
        self.trace.push(format!("t={} {what}", self.now));
    }

    fn instant(&self) -> Instant {
        self.t0 + Duration::from_millis(self.now)
    }

    fn wall(&self) -> u64 {
        self.wall0 + self.now
    }

    /// Watcher `w`'s wall clock.
    fn wall_of(&self, w: usize) -> u64 {
        self.wall().saturating_add_signed(self.watchers[w].clock)
    }

    fn running(&self, w: usize) -> bool {
        self.watchers[w].up && self.watchers[w].frozen_until <= self.now
    }

    // ---- one tick --------------------------------------------------------

    fn tick(&mut self) {
        self.now += TICK;
        for j in 0..JOBS {
            for w in 0..self.watchers.len() {
                if self.reconnect_at[j][w].is_some_and(|t| t <= self.now) {
                    self.reconnect_at[j][w] = None;
                    self.link[j][w] = true;
                    if self.watchers[w].up {
                        let q = std::mem::take(&mut self.queued[j][w]);
                        self.watchers[w].inbox.extend(q);
                    }
                }
            }
        }
        self.senders_send();
        self.maybe_ack();
        for w in 0..self.watchers.len() {
            if self.running(w) {
                self.watcher_work(w);
            }
        }
        if self.now % ROUND == 0 {
            self.gossip_round();
        }
        self.track();
    }

    fn senders_send(&mut self) {
        let wall = self.wall();
        for j in 0..JOBS {
            let s = &mut self.senders[j];
            if !s.running || self.now < s.next_beat {
                continue;
            }
            s.next_beat = self.now + BEAT;
            s.seq += 1;
            let mut msgs = vec![Message {
                seq: s.seq,
                ts_ms: wall.saturating_add_signed(s.clock),
                host: s.host.clone(),
                pid: s.pid,
                ..Message::new(Kind::Heartbeat, job_name(j))
            }];
            if let Some((pid, seq)) = &mut s.twin {
                *seq += 1;
                let mut m = msgs[0].clone();
                m.pid = *pid;
                m.seq = *seq;
                msgs.push(m);
            }
            for w in 0..self.watchers.len() {
                // Two processes reach each watcher on their own
                // connections: in either order.
                let mut msgs = msgs.clone();
                if msgs.len() > 1 && self.rng.chance(50) {
                    msgs.reverse();
                }
                for m in &msgs {
                    if self.lose[j][w] > 0 {
                        // Lost on the way (a reconnect that drops what was
                        // in flight).
                        self.lose[j][w] -= 1;
                        continue;
                    }
                    if self.link[j][w] && self.watchers[w].up {
                        self.watchers[w].inbox.push(m.clone());
                    } else if self.queued[j][w].len() < 1000 {
                        // ZeroMQ queues while the peer is unreachable.
                        self.queued[j][w].push(m.clone());
                    }
                }
            }
        }
    }

    fn watcher_work(&mut self, w: usize) {
        let (now, wall) = (self.instant(), self.wall_of(w));
        let watcher = &mut self.watchers[w];
        let mut notes = Vec::new();
        for m in std::mem::take(&mut watcher.inbox) {
            notes.extend(watcher.registry.on_message(&m, Now::new(now, wall)));
        }
        let acked: HashSet<String> = watcher
            .registry
            .views(Now::new(now, wall))
            .into_iter()
            .flat_map(|v| v.incidents)
            .filter(|i| i.acked.is_some())
            .map(|i| i.id)
            .collect();
        let due = watcher.registry.on_deadlines(Now::new(now, wall));
        for n in &due {
            if !n.event.is_follow_up() && (n.repeat > 0 || n.escalation > 0) {
                self.reminders += 1;
                if acked.contains(&*n.incident) {
                    let what = format!(
                        "w{w} raised {} (repeat {}, escalation {}) of {}, which it holds acknowledged",
                        n.event, n.repeat, n.escalation, n.incident
                    );
                    self.fail(&what);
                }
            }
        }
        let watcher = &mut self.watchers[w];
        notes.extend(due);
        let mut out = Vec::new();
        let debug = std::env::var_os("QCIC_SIM_DEBUG").is_some();
        let mut lines = Vec::new();
        for n in notes {
            if debug {
                lines.push(format!(
                    "   w{w} raises {} {} {}",
                    n.event, n.job, n.incident
                ));
            }
            watcher.gate.on_notification(n, now, wall, &mut out);
        }
        watcher.gate.evaluate(now, wall, &mut out);
        for l in lines {
            self.note(l);
        }
        self.carry_out(w, out);
    }

    fn carry_out(&mut self, w: usize, out: Vec<Output>) {
        let (now, wall) = (self.instant(), self.wall_of(w));
        let mut reports = Vec::new();
        for o in out {
            let watcher = &mut self.watchers[w];
            match o {
                Output::Send(note) => {
                    if watcher.dispatched.insert(dispatch_key(&note)) {
                        reports.push(key_of(&note));
                        watcher.dispatched_notes.push(note.clone());
                        self.sent.push(Sent {
                            at: self.now,
                            by: w,
                            note,
                        });
                    }
                }
                Output::Publish(k, v) => {
                    watcher.version += 1;
                    watcher.own.kv.insert(k, (watcher.version, Some(v)));
                }
                Output::Unpublish(k) => {
                    watcher.version += 1;
                    watcher.own.kv.insert(k, (watcher.version, None));
                }
                Output::Remember(note) => {
                    // Into its durable notification log.
                    if watcher.dispatched.insert(dispatch_key(&note)) {
                        watcher.dispatched_notes.push(note);
                    }
                }
                Output::DeliveredElsewhere(_) | Output::Forget(_) => {}
            }
        }
        // Every channel delivers at once.
        let mut more = Vec::new();
        for key in reports {
            self.watchers[w]
                .gate
                .on_report(Report::Delivered(key), &mut more);
        }
        self.watchers[w].gate.evaluate(now, wall, &mut more);
        if !more.is_empty() {
            self.carry_out(w, more);
        }
    }

    fn gossip_round(&mut self) {
        let (now, wall) = (self.instant(), self.wall());
        let n = self.watchers.len();
        for w in 0..n {
            if !self.running(w) {
                continue;
            }
            let wall = self.wall_of(w);
            let watcher = &mut self.watchers[w];
            watcher.own.heartbeat += 1;
            let heard = watcher.registry.take_heard();
            watcher.gate.on_heard(heard.len(), now);
            for (job, seen) in heard {
                watcher.version += 1;
                let v = watcher.version;
                watcher
                    .own
                    .kv
                    .insert(wire::seen_key(&job), (v, Some(seen.encode())));
            }
            watcher.gate.on_tick(now);
            for (name, rec) in watcher.registry.take_dirty(Now::new(now, wall)) {
                watcher
                    .saved
                    .insert(name, serde_json::to_string(&rec).unwrap());
            }
        }
        // Every pair that reaches each other both ways exchanges all it knows.
        for a in 0..n {
            for b in (a + 1)..n {
                if self.running(a) && self.running(b) && self.gossip[a][b] && self.gossip[b][a] {
                    self.exchange(a, b);
                    self.exchange(b, a);
                }
            }
        }
        for w in 0..n {
            if self.running(w) {
                let beats: BTreeMap<Arc<str>, u64> = self.watchers[w]
                    .view
                    .iter()
                    .map(|(o, k)| (Arc::clone(&self.watchers[*o].id), k.heartbeat))
                    .collect();
                self.watchers[w].gate.on_heartbeats(&beats, now);
                self.liveness(w);
            }
        }
        if std::env::var_os("QCIC_SIM_DEBUG").is_some() && self.now % 2000 == 0 {
            for w in 0..n {
                let d = format!("{:?}", self.watchers[w].gate);
                let pd = d
                    .find("peer_down")
                    .map(|i| &d[i..(i + 300).min(d.len())])
                    .unwrap_or("");
                self.trace.push(format!("   GATE w{w} {pd}"));
            }
        }
        // QCIC_SIM_DEBUG=1 traces every watcher's view of every job each round.
        if std::env::var_os("QCIC_SIM_DEBUG").is_some() {
            for w in 0..n {
                for v in self.watchers[w].registry.views(Now::new(now, wall)) {
                    let line = format!(
                        "   w{w} {} {} last={:?} next={:?} {:?} live={:?}",
                        v.name,
                        v.state,
                        v.last_seen_ms.map(|t| t - self.wall0),
                        v.next_deadline_ms.map(|t| t.saturating_sub(self.wall0)),
                        v.incidents.iter().map(|i| i.id.clone()).collect::<Vec<_>>(),
                        self.watchers[w].live
                    );
                    self.trace.push(line);
                }
            }
        }
    }

    /// What `from` knows reaches `to`.
    fn exchange(&mut self, from: usize, to: usize) {
        let (now, wall) = (self.instant(), self.wall_of(to));
        let mut learnt: Vec<(usize, String, String)> = Vec::new();
        // Heartbeats travel in every digest; the keys' deltas come after
        // them and are bounded (chitchat's MTU): the first exchange after
        // two watchers reconnect may carry heartbeats only, so a watcher
        // can learn that a peer is alive a round before it learns what the
        // peer knows.
        let reconnected = self.connected_since[from][to].is_none();
        let mut budget = if reconnected && self.rng.chance(50) {
            0
        } else {
            usize::MAX
        };
        let origins: Vec<(usize, Known)> = {
            let f = &self.watchers[from];
            let mut v: Vec<(usize, Known)> = f.view.iter().map(|(o, k)| (*o, k.clone())).collect();
            v.push((from, f.own.clone()));
            v
        };
        for (origin, theirs) in origins {
            if origin == to {
                continue;
            }
            let mine = self.watchers[to].view.entry(origin).or_default();
            if theirs.generation > mine.generation {
                *mine = Known {
                    generation: theirs.generation,
                    ..Known::default()
                };
            }
            if theirs.generation < mine.generation {
                continue;
            }
            if theirs.heartbeat > mine.heartbeat {
                mine.heartbeat = theirs.heartbeat;
                mine.beat_seen_at = self.now;
            }
            let mut keys: Vec<(&String, &(u64, Option<String>))> = theirs.kv.iter().collect();
            keys.sort_by_key(|(_, (ver, _))| *ver);
            for (k, (ver, val)) in keys {
                let newer = mine.kv.get(k).is_none_or(|(v, _)| v < ver);
                if newer && budget > 0 {
                    budget -= 1;
                    mine.kv.insert(k.clone(), (*ver, val.clone()));
                    if let Some(val) = val {
                        learnt.push((origin, k.clone(), val.clone()));
                    }
                }
            }
        }
        let mut out = Vec::new();
        let mut notes = Vec::new();
        let mut acks_learnt = Vec::new();
        for (origin, key, value) in learnt {
            let node = Arc::clone(&self.watchers[origin].id);
            let watcher = &mut self.watchers[to];
            match wire::read(&key, &value) {
                Some(Said::Seen { job, seen }) => {
                    notes.extend(watcher.registry.on_peer_seen(
                        &node,
                        &job,
                        &seen,
                        Now::new(now, wall),
                    ));
                }
                Some(Said::Ledger { key, sender, entry }) => {
                    watcher
                        .gate
                        .on_ledger_entry(&node, key, sender, entry, &mut out);
                }
                Some(Said::Ack { incident, ack }) => {
                    // As the farm task does: applied (or kept for when it
                    // opens here), and published as a copy.
                    if watcher
                        .registry
                        .ack(&incident, ack.clone(), Now::new(now, wall))
                        .is_err()
                    {
                        watcher.registry.ack_when_opened(&incident, ack.clone());
                    }
                    acks_learnt.push((incident, ack));
                }
                None => {}
            }
        }
        if std::env::var_os("QCIC_SIM_DEBUG").is_some() {
            for n in &notes {
                self.trace.push(format!(
                    "t={} w{to} raises (evidence) {} {} {}",
                    self.now, n.event, n.job, n.incident
                ));
            }
        }
        for (incident, ack) in acks_learnt {
            self.publish_ack(to, &incident, &ack);
        }
        let watcher = &mut self.watchers[to];
        for n in notes {
            watcher.gate.on_notification(n, now, wall, &mut out);
        }
        self.carry_out(to, out);
    }

    /// Now and then an operator acknowledges an open incident at a
    /// running watcher.
    fn maybe_ack(&mut self) {
        if self.ack_rng.below(100) != 0 {
            return;
        }
        let w = self.ack_rng.below(self.watchers.len() as u64) as usize;
        if !self.running(w) {
            return;
        }
        let (now, wall) = (self.instant(), self.wall_of(w));
        let registry = &mut self.watchers[w].registry;
        let Some(id) = registry
            .views(Now::new(now, wall))
            .into_iter()
            .flat_map(|v| v.incidents)
            .find(|i| i.acked.is_none())
            .map(|i| i.id)
        else {
            return;
        };
        let ack = qcic_monitor::notification::Ack {
            by: format!("op-w{w}"),
            at_ms: wall,
            comment: None,
        };
        if registry.ack(&id, ack.clone(), Now::new(now, wall)).is_ok() {
            self.acks += 1;
            self.publish_ack(w, &id, &ack);
            self.note(format!("w{w} acknowledges {id}"));
        }
    }

    /// `a:<incident>` in `w`'s own gossip state, once.
    fn publish_ack(&mut self, w: usize, incident: &str, ack: &qcic_monitor::notification::Ack) {
        let watcher = &mut self.watchers[w];
        let key = wire::ack_key(incident);
        if watcher.own.kv.get(&key).is_some_and(|(_, v)| v.is_some()) {
            return;
        }
        watcher.version += 1;
        let v = watcher.version;
        watcher.own.kv.insert(key, (v, Some(wire::encode_ack(ack))));
    }

    fn liveness(&mut self, w: usize) {
        let (now, wall) = (self.instant(), self.wall_of(w));
        let watcher = &self.watchers[w];
        let live: BTreeSet<usize> = watcher
            .view
            .iter()
            .filter(|(_, k)| {
                k.heartbeat > 0 && self.now.saturating_sub(k.beat_seen_at) < DEAD_AFTER
            })
            .map(|(o, _)| *o)
            .collect();
        if live == watcher.live {
            return;
        }
        let nodes: Vec<(Arc<str>, u64)> = live
            .iter()
            .map(|o| {
                (
                    Arc::clone(&self.watchers[*o].id),
                    watcher.view[o].generation,
                )
            })
            .collect();
        let beats: HashMap<String, u64> = watcher
            .view
            .iter()
            .map(|(o, k)| (self.watchers[*o].id.to_string(), k.heartbeat))
            .collect();
        let watcher = &mut self.watchers[w];
        watcher.live = live;
        let mut out = Vec::new();
        watcher.gate.on_live(
            &nodes,
            &|p: &str| beats.get(p).copied().unwrap_or(0),
            now,
            wall,
            &mut out,
        );
        self.carry_out(w, out);
    }

    /// Bookkeeping for the invariants: who reached whom, since when.
    fn track(&mut self) {
        let n = self.watchers.len();
        for j in 0..JOBS {
            for w in 0..n {
                let ok = self.senders[j].running && self.link[j][w] && self.running(w);
                let g = &mut self.good_since[j][w];
                *g = if ok { g.or(Some(self.now)) } else { None };
            }
        }
        for a in 0..n {
            for b in 0..n {
                let ok = a == b
                    || (self.running(a)
                        && self.running(b)
                        && self.gossip[a][b]
                        && self.gossip[b][a]);
                let c = &mut self.connected_since[a][b];
                if ok && c.is_none() {
                    self.reconnects.push((a, b, self.now));
                }
                *c = if ok { c.or(Some(self.now)) } else { None };
            }
        }
        // Invariant: an unlabelled down while a reachable watcher heard the job.
        let fresh: Vec<Sent> = self
            .sent
            .iter()
            .filter(|s| s.at == self.now && s.note.event == Event::Down)
            .cloned()
            .collect();
        for s in fresh {
            let j: usize = s.note.job.trim_start_matches("job").parse().unwrap();
            let window = self.now.saturating_sub(EVERY + GRACE - 3_000);
            // Invariant: a watcher whose isolation just ended sends none of
            // the alarms it held, labelled or not, for a job a peer it
            // reaches again heard all along: it learns the peers' evidence
            // first (defect 2 of issue 14).
            let me = &self.watchers[s.by].id;
            let rejoined = self.sent.iter().any(|r| {
                r.by == s.by
                    && r.note.event == Event::Recovered
                    && r.note.resolves == Some(Event::WatcherIsolated)
                    && r.note.job == *me
                    && r.at + DEAD_AFTER + 4 * ROUND >= self.now
            });
            let peer_heard = (0..n).any(|v| {
                v != s.by
                    && self.connected_since[s.by][v].is_some()
                    && self.good_since[j][v].is_some_and(|t| t <= window)
            });
            if rejoined && peer_heard {
                self.fail(&format!(
                    "{me} sent a down for {} it held while isolated, though a peer it reaches heard the job all along",
                    s.note.job
                ));
            }
            if s.note.farm.is_some_and(|f| f.partition_suspected) {
                continue;
            }
            // The job was heard, within its deadline, by a watcher the sender
            // reached and the sending watcher reached, all that time.
            let heard = (0..n).any(|v| self.good_since[j][v].is_some_and(|t| t <= window));
            if heard {
                self.fail(&format!(
                    "{} sent an unlabelled down for {} while a watcher the sender reached heard the job all along",
                    self.watchers[s.by].id, s.note.job
                ));
            }
        }
        // Invariant: no recovery of a job that has not sent since before
        // its deadline (messages queued during a cut are no life).
        let recovered: Vec<Sent> = self
            .sent
            .iter()
            .filter(|s| {
                s.at == self.now
                    && s.note.event == Event::Recovered
                    && s.note.resolves == Some(Event::Down)
            })
            .cloned()
            .collect();
        for s in recovered {
            let Some(j) = s
                .note
                .job
                .strip_prefix("job")
                .and_then(|j| j.parse::<usize>().ok())
            else {
                continue;
            };
            // The alarm it closes was raised for this stop (a follow-up
            // sent late for an earlier trouble, one that ended before the
            // job stopped, is no false recovery).
            let alarm_at = self
                .sent
                .iter()
                .filter(|a| a.note.incident == s.note.incident && a.note.event == Event::Down)
                .map(|a| a.at)
                .min()
                .unwrap_or(0);
            // Labelled ones are not passed off as genuine: a watcher cut
            // from its peers, that lost its state and its senders' clock
            // offsets, cannot date the head of a backlog (a known limit).
            let labelled = s.note.farm.is_some_and(|f| f.partition_suspected);
            let stopped_long = !labelled
                && !self.senders[j].running
                && self.outages.iter().any(|o| {
                    o.0 == j
                        && o.2.is_none()
                        && alarm_at >= o.1
                        && self.now.saturating_sub(o.1) > EVERY + GRACE + 2 * ROUND
                });
            if stopped_long {
                self.fail(&format!(
                    "{} sent a recovered for {} while it had been stopped for longer than its deadline (messages delivered late taken as life)",
                    self.watchers[s.by].id, s.note.job
                ));
            }
        }
    }

    // ---- faults -------------------------------------------------------------

    fn fault(&mut self) {
        let n = self.watchers.len();
        match self.rng.below(13) {
            0 => {
                // Kill a watcher, if another stays up.
                let up: Vec<usize> = (0..n).filter(|w| self.watchers[*w].up).collect();
                if up.len() >= 2 {
                    let w = up[self.rng.below(up.len() as u64) as usize];
                    self.kill(w);
                }
            }
            1 => {
                let down: Vec<usize> = (0..n).filter(|w| !self.watchers[*w].up).collect();
                if let Some(&w) = down.first() {
                    // Wiped only where its log can be learnt back: every
                    // other watcher up and reaching it (a farm that loses
                    // every copy of its log can only repeat itself).
                    let own: Vec<&String> = self.watchers[w]
                        .own
                        .kv
                        .iter()
                        .filter(|(k, (_, v))| k.starts_with("n:") && v.is_some())
                        .map(|(k, _)| k)
                        .collect();
                    let others_hold_it = (0..n).all(|v| {
                        v == w || (self.running(v) && self.gossip[v][w] && self.gossip[w][v])
                    }) && own.iter().all(|k| {
                        (0..n).any(|v| {
                            v != w
                                && self.watchers[v]
                                    .own
                                    .kv
                                    .get(*k)
                                    .is_some_and(|(_, x)| x.is_some())
                        })
                    });
                    let wiped = others_hold_it && self.rng.chance(30);
                    self.restart(w, wiped);
                }
            }
            2 => {
                let w = self.rng.below(n as u64) as usize;
                if self.running(w) {
                    let d = 2_000 + self.rng.below(8_000);
                    self.watchers[w].frozen_until = self.now + d;
                    self.note(format!("freeze w{w} for {d}ms"));
                }
            }
            3 => {
                // A full partition: a random side against the rest.
                let side: Vec<bool> = (0..n).map(|_| self.rng.chance(50)).collect();
                for a in 0..n {
                    for b in 0..n {
                        if side[a] != side[b] {
                            self.gossip[a][b] = false;
                        }
                    }
                }
                self.note(format!("partition {side:?}"));
            }
            4 => {
                let (a, b) = (
                    self.rng.below(n as u64) as usize,
                    self.rng.below(n as u64) as usize,
                );
                if a != b {
                    self.gossip[a][b] = false;
                    self.note(format!("one-way cut w{a} -> w{b}"));
                }
            }
            5 => {
                let (j, w) = (
                    self.rng.below(JOBS as u64) as usize,
                    self.rng.below(n as u64) as usize,
                );
                self.link[j][w] = false;
                self.reconnect_at[j][w] = None;
                self.note(format!("job{j} cannot reach w{w}"));
            }
            6 => self.heal(),
            7 => {
                let j = self.rng.below(JOBS as u64) as usize;
                if self.senders[j].running {
                    self.senders[j].running = false;
                    self.outages.push((j, self.now, None));
                    self.note(format!("job{j} stops"));
                } else {
                    self.resume(j);
                }
            }
            8 => {
                let j = self.rng.below(JOBS as u64) as usize;
                if self.senders[j].twin.is_none() {
                    self.senders[j].twin = Some((900 + j as u32, 0));
                    self.note(format!("job{j} has a second sender"));
                }
            }
            9 => {
                let (j, w) = (
                    self.rng.below(JOBS as u64) as usize,
                    self.rng.below(n as u64) as usize,
                );
                let k = 1 + self.rng.below(3) as u32;
                self.lose[j][w] += k;
                self.note(format!("job{j}'s next {k} messages to w{w} are lost"));
            }
            11 => {
                let j = self.rng.below(JOBS as u64) as usize;
                // Set back by up to 90 s, or forward by up to 1 s: a clock
                // set forward by X while a link is cut makes up to X of
                // the backlog look fresh (the offset estimate trusts the
                // smallest delay, transit only ever adds), a documented
                // limit.
                let step = self.rng.below(91_000) as i64 - 90_000;
                self.senders[j].clock += step;
                self.note(format!("job{j}'s clock steps by {step}ms"));
            }
            10 => {
                // One watcher cut off from every sender and every peer.
                let w = self.rng.below(n as u64) as usize;
                for v in 0..n {
                    if v != w {
                        self.gossip[v][w] = false;
                        self.gossip[w][v] = false;
                    }
                }
                for j in 0..JOBS {
                    self.link[j][w] = false;
                    self.reconnect_at[j][w] = None;
                }
                self.note(format!("isolate w{w}"));
            }
            _ => {}
        }
    }

    fn resume(&mut self, j: usize) {
        self.senders[j].running = true;
        self.senders[j].running_since = self.now;
        if let Some(o) = self
            .outages
            .iter_mut()
            .rev()
            .find(|o| o.0 == j && o.2.is_none())
        {
            o.2 = Some(self.now);
        }
        self.note(format!("job{j} resumes"));
    }

    fn kill(&mut self, w: usize) {
        let seen = (0..self.watchers.len())
            .any(|v| v != w && self.running(v) && self.watchers[v].live.contains(&w));
        self.watchers[w].up = false;
        self.watchers[w].inbox.clear();
        if seen {
            self.silences.push((w, self.now, None));
        }
        self.note(format!("kill -9 w{w}"));
    }

    fn restart(&mut self, w: usize, wiped: bool) {
        let (now, wall) = (self.instant(), self.wall_of(w));
        let members: Vec<Arc<str>> = self.watchers.iter().map(|x| Arc::clone(&x.id)).collect();
        let watcher = &mut self.watchers[w];
        let stats = Arc::new(Stats::default());
        let mut registry = Registry::new(
            &watcher.id,
            &jobs(),
            8,
            Duration::from_secs(300),
            Arc::clone(&stats),
            Now::new(now, wall),
        )
        .with_heard_tracking();
        if wiped {
            watcher.saved.clear();
            watcher.dispatched.clear();
            watcher.dispatched_notes.clear();
        }
        let records: Vec<(String, String)> = watcher.saved.clone().into_iter().collect();
        registry.restore(&records, Now::new(now, wall));
        watcher.registry = registry;
        watcher.gate = gate_for(&watcher.id, &members, now, &stats);
        watcher.stats = stats;
        watcher.generation += 1;
        watcher.own = Known {
            generation: watcher.generation,
            ..Known::default()
        };
        watcher.version = 0;
        watcher.view.clear();
        watcher.live.clear();
        watcher.up = true;
        watcher.frozen_until = 0;
        // Its senders reconnect (after their backoff): what they queued
        // arrives then.
        for j in 0..JOBS {
            if self.link[j][w] && !self.queued[j][w].is_empty() {
                self.link[j][w] = false;
                self.reconnect_at[j][w] = Some(self.now + 500 + self.rng.below(2_500));
            }
        }
        // What it sent before, from its notification log.
        let before = self.watchers[w].dispatched_notes.clone();
        let open: BTreeSet<Arc<str>> = self.watchers[w]
            .registry
            .views(Now::new(now, wall))
            .into_iter()
            .flat_map(|v| v.incidents.into_iter().map(|i| Arc::from(i.id.as_str())))
            .collect();
        let mut out = Vec::new();
        self.watchers[w]
            .gate
            .remember_sent(&before, &open, now, &mut out);
        if std::env::var_os("QCIC_SIM_DEBUG").is_some() {
            let ids: Vec<String> = before
                .iter()
                .map(|n| format!("{} {}", n.event, n.incident))
                .collect();
            self.trace.push(format!(
                "   remember w{w}: {ids:?} -> {} outputs",
                out.len()
            ));
        }
        self.carry_out(w, out);
        if let Some(s) = self
            .silences
            .iter_mut()
            .rev()
            .find(|s| s.0 == w && s.2.is_none())
        {
            s.2 = Some(self.now);
        }
        self.note(format!(
            "restart w{w}{}",
            if wiped { " (state wiped)" } else { "" }
        ));
    }

    fn heal(&mut self) {
        let n = self.watchers.len();
        self.gossip = vec![vec![true; n]; n];
        for j in 0..JOBS {
            for w in 0..n {
                // A sender that was cut off reconnects after its backoff;
                // what it queued arrives then.
                let cut = !self.link[j][w] || !self.queued[j][w].is_empty();
                if cut && self.reconnect_at[j][w].is_none() {
                    self.link[j][w] = false;
                    self.reconnect_at[j][w] = Some(self.now + 500 + self.rng.below(2_500));
                }
            }
        }
        self.note("heal every link".into());
    }

    fn run(mut self) -> Tally {
        // Everyone meets first.
        for _ in 0..(10_000 / TICK) {
            self.tick();
        }
        let faults_until = self.now + FAULTS_FOR;
        while self.now < faults_until {
            if self.rng.chance(self.fault_rate) {
                self.fault();
            }
            self.tick();
        }
        // Heal everything, bring everyone back, let it settle.
        self.heal();
        for w in 0..self.watchers.len() {
            if !self.watchers[w].up {
                self.restart(w, false);
            }
            self.watchers[w].frozen_until = 0;
        }
        for j in 0..JOBS {
            if !self.senders[j].running {
                self.resume(j);
            }
        }
        for _ in 0..(HEAL_FOR / TICK) {
            self.tick();
        }
        self.check();
        if std::env::var_os("QCIC_SIM_DEBUG").is_some() {
            self.dump();
        }
        let downs = self.sent.iter().filter(|s| s.note.event == Event::Down);
        let labelled = downs
            .clone()
            .filter(|s| s.note.farm.is_some_and(|f| f.partition_suspected))
            .count();
        Tally {
            sent: self.sent.len(),
            outages: self.outages.len(),
            downs: downs.count(),
            labelled,
            acks: self.acks,
            reminders: self.reminders,
        }
    }

    fn check(&mut self) {
        // No watcher sends one thing twice.
        let mut by_watcher: HashMap<SentKey, usize> = HashMap::new();
        for s in &self.sent {
            let k = (
                Arc::clone(&self.watchers[s.by].id),
                s.note.incident.to_string(),
                s.note.event,
                s.note.resolves,
                s.note.round(),
            );
            *by_watcher.entry(k.clone()).or_default() += 1;
            if by_watcher[&k] > 1 {
                self.fail(&format!(
                    "{} sent {} {} ({}) twice",
                    k.0, k.2, s.note.job, k.1
                ));
            }
        }
        // Duplicates across watchers are labelled after the first copy.
        let mut copies: BTreeMap<(String, Event, u32), Vec<&Sent>> = BTreeMap::new();
        for s in &self.sent {
            copies
                .entry((s.note.incident.to_string(), s.note.event, s.note.round()))
                .or_default()
                .push(s);
        }
        let labelled = |s: &Sent| s.note.farm.is_some_and(|f| f.partition_suspected);
        for ((incident, event, _), list) in &copies {
            if list.len() > 1 && list.iter().filter(|s| !labelled(s)).count() > 1 {
                self.fail(&format!(
                    "{event} {incident} sent by {} watchers, more than one of them without partition_suspected",
                    list.len()
                ));
            }
        }
        // Every alarm has its follow-up.
        let follow_ups: HashSet<(String, Event)> = self
            .sent
            .iter()
            .filter(|s| s.note.event.is_follow_up())
            .filter_map(|s| Some((s.note.incident.to_string(), s.note.resolves?)))
            .collect();
        for s in &self.sent {
            let alarm = matches!(
                s.note.event,
                Event::Down | Event::PeerDown | Event::WatcherIsolated
            );
            if alarm
                && s.note.repeat == 0
                && !follow_ups.contains(&(s.note.incident.to_string(), s.note.event))
            {
                self.fail(&format!(
                    "{} {} ({}) sent by {} at {} never got a follow-up",
                    s.note.event, s.note.job, s.note.incident, self.watchers[s.by].id, s.at
                ));
            }
        }
        // One outage, one name: the unlabelled downs sent during an outage
        // all carry one incident id (watchers that heard different last
        // messages must still agree).
        for &(j, from, until) in &self.outages {
            let until = until.unwrap_or(self.now);
            let ids: HashSet<&str> = self
                .sent
                .iter()
                .filter(|s| {
                    s.note.event == Event::Down
                        && *s.note.job == *job_name(j)
                        && s.at >= from
                        && s.at <= until
                        && !s.note.farm.is_some_and(|f| f.partition_suspected)
                })
                .map(|s| &*s.note.incident)
                .collect();
            if ids.len() > 1 {
                self.fail(&format!(
                    "job{j}'s outage from {from} was given {} names: {ids:?}",
                    ids.len()
                ));
            }
        }
        // Every long enough outage of a job is notified by someone.
        let bound =
            EVERY + GRACE + PEER_TIMEOUT * self.watchers.len() as u64 + 2 * DEAD_AFTER + 4 * ROUND;
        for &(j, from, until) in &self.outages {
            let until = until.unwrap_or(self.now);
            if until.saturating_sub(from) < bound {
                continue;
            }
            // By a down, or by the watcher_isolated a lone watcher sends
            // instead of per-job alerts when it hears nothing at all.
            // A down still open when it began counts: a return nobody
            // heard (its messages queued until after it ended) is no return.
            let notified = self.sent.iter().any(|s| {
                s.at <= until
                    && ((s.note.event == Event::Down
                        && *s.note.job == *job_name(j)
                        && (s.at >= from
                            || !closed_before_any(&self.sent, &s.note.incident, from)))
                        || (s.note.event == Event::WatcherIsolated
                            && !closed_before_any(&self.sent, &s.note.incident, from)))
            });
            if !notified {
                self.fail(&format!(
                    "job{j}'s outage {from}..{until} was never notified"
                ));
            }
        }
        // Every long enough silence of a watcher is covered by a peer_down:
        // one sent during it, or one still open when it began (the peer was
        // already silent to the others, cut off before it died).
        let bound = DEAD_AFTER + PEER_TIMEOUT * self.watchers.len() as u64 + 4 * DEAD_AFTER;
        for &(w, from, until) in &self.silences {
            let until = until.unwrap_or(self.now);
            if until.saturating_sub(from) < bound {
                continue;
            }
            let peer = &self.watchers[w].id;
            let closed_before = |incident: &str, t: u64| {
                self.sent.iter().any(|s| {
                    s.at <= t && s.note.event.is_follow_up() && *s.note.incident == *incident
                })
            };
            // A return shorter than dead_after (seen by one watcher only,
            // from news relayed late) cannot be told from no return.
            // Under a name of its own: one no follow-up closed before the
            // silence began (a watcher that missed the peer's brief return
            // may send the earlier outage's name first, but must then name
            // this one anew).
            // (Sent by the end of the rejoin settle after another watcher
            // first reached it again at the latest: a watcher that took the
            // silence for its own isolation learns otherwise only when it
            // sees the peer back, restarted.)
            let back = self
                .reconnects
                .iter()
                .filter(|(a, b, t)| *b == w && *a != w && *t >= until)
                .map(|(_, _, t)| *t)
                .min()
                .unwrap_or(until);
            let covered = self.sent.iter().any(|s| {
                s.note.event == Event::PeerDown
                    && s.note.job == *peer
                    && s.at <= back + DEAD_AFTER + 4 * ROUND
                    && !closed_before(&s.note.incident, from.saturating_sub(DEAD_AFTER))
            });
            if !covered {
                self.fail(&format!(
                    "{peer}'s silence {from}..{until} got no peer_down"
                ));
            }
        }
    }
}

/// What the dispatcher's log knows a notification by.
fn dispatch_key(note: &Notification) -> (String, Event, Option<Event>, u32) {
    (
        note.incident.to_string(),
        note.event,
        note.resolves,
        note.round(),
    )
}

/// What one schedule sent.
struct Tally {
    sent: usize,
    outages: usize,
    downs: usize,
    labelled: usize,
    acks: usize,
    reminders: usize,
}

/// Whether a follow-up of `incident` was sent before `t`.
fn closed_before_any(sent: &[Sent], incident: &str, t: u64) -> bool {
    sent.iter()
        .any(|s| s.at < t && s.note.event.is_follow_up() && *s.note.incident == *incident)
}

#[test]
fn a_farm_keeps_its_promises_under_seeded_faults() {
    let started = std::time::Instant::now();
    let seeds = qcic_testkit::seeds("QCIC_SIM", REGRESSION_SEEDS, SCHEDULES);
    let (mut sends, mut outages) = (0, 0);
    // QCIC_SIM_SURVEY=1: run every seed and list the failures, instead of
    // stopping at the first.
    if std::env::var_os("QCIC_SIM_SURVEY").is_some() {
        let mut failed = Vec::new();
        for &seed in &seeds {
            if std::panic::catch_unwind(|| Sim::new(seed).run()).is_err() {
                failed.push(seed);
            }
        }
        panic!(
            "{} of {} schedules failed: {failed:?}",
            failed.len(),
            seeds.len()
        );
    }
    let (mut downs, mut labelled, mut acks, mut reminders) = (0, 0, 0, 0);
    for &seed in &seeds {
        let t = Sim::new(seed).run();
        sends += t.sent;
        outages += t.outages;
        downs += t.downs;
        labelled += t.labelled;
        acks += t.acks;
        reminders += t.reminders;
    }
    // Every unlabelled down passed the check that no watcher the sender
    // reached heard the job: false unlabelled alarms, 0.
    eprintln!(
        "farm simulation: {} schedules, {sends} notifications, {outages} job outages, {downs} downs ({labelled} labelled partition_suspected, 0 unlabelled false alarms), {acks} acknowledgements, {reminders} reminders and escalation steps raised, in {:?}",
        seeds.len(),
        started.elapsed()
    );
    assert!(
        acks > 0 && reminders > 0,
        "no acknowledgement or reminder to test: {acks} and {reminders}"
    );
    assert!(
        sends > seeds.len(),
        "the schedules raised too little to test anything"
    );
}
