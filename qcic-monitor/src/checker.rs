//! The deadline loop: one task owns the registry, applies messages as they
//! come and sleeps exactly until the next deadline.
//!
//! Messages and deadlines are handled by the same task, so a message that
//! moves a deadline earlier is seen before the loop sleeps again: no lock and
//! no separate wake-up signal are needed (mini-redis needs a `Notify` only
//! because its purge task is apart from the writers).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, sleep_until};

use crate::clock::{Now, wall_ms};
use crate::config::JobConfig;
use crate::notification::Notification;
use crate::registry::{HostView, JobView, PeerSeen, Reconfigured, Registry, WatchChange};
use crate::stats::Stats;
use crate::store::Store;
use crate::watched::WatchedJobs;

/// A decoded message and who sent it.
#[derive(Debug, Clone)]
pub struct Inbound {
    /// The message.
    pub message: qcic_sdk::Message,
    /// With CURVE: the sender's public key (Z85), as authenticated by the handshake.
    pub sender_key: Option<String>,
}

/// A question to the checker, which alone owns the registry.
#[derive(Debug)]
pub enum Query {
    /// Every job's current view.
    Jobs(oneshot::Sender<Vec<JobView>>),
    /// Answered at once: the loop is running.
    Ping(oneshot::Sender<()>),
    /// The ids of the incidents open now.
    OpenIncidents(oneshot::Sender<std::collections::BTreeSet<Arc<str>>>),
    /// Every sender host seen, with its clock offset.
    Hosts(oneshot::Sender<Vec<HostView>>),
    /// A new job list (SIGHUP), taken without losing state.
    Reload(Reload, oneshot::Sender<Reconfigured>),
    /// Stop watching a declared job.
    Forget {
        /// The job.
        job: String,
        /// The outcome.
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// Silence a job until a time (unix ms), or pause it (`None`).
    Silence {
        /// The job.
        job: String,
        /// The end, unix ms; `None`: until resumed.
        until_ms: Option<u64>,
        /// Why.
        reason: String,
        /// The outcome.
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// Acknowledge an open incident (here, or told by a farm peer).
    Ack {
        /// The incident id.
        incident: String,
        /// Who, when, why.
        ack: crate::notification::Ack,
        /// Said by a farm peer (not told to the farm again).
        from_peer: bool,
        /// The outcome.
        reply: oneshot::Sender<Result<crate::registry::Acked, String>>,
    },
    /// End a job's silence or pause now.
    Unsilence {
        /// The job.
        job: String,
        /// The outcome.
        reply: oneshot::Sender<Result<(), String>>,
    },
}

/// What a configuration reload changes in the registry.
#[derive(Debug)]
pub struct Reload {
    /// The jobs, as now configured.
    pub jobs: Vec<JobConfig>,
    /// `[monitor] max_unknown_jobs`.
    pub max_unknown: usize,
    /// `[monitor] max_clock_skew`.
    pub max_skew: std::time::Duration,
    /// `[monitor] unknown_jobs`.
    pub unknown_jobs: crate::config::UnknownJobs,
    /// `[declare]`.
    pub declare: Option<crate::config::DeclareConfig>,
    /// `[[maintenance]]`.
    pub maintenance: Vec<crate::config::MaintenanceWindow>,
}

/// How the rest of the watcher asks the checker something (the actor
/// handle): each method sends a [`Query`] and waits for the answer. Cheap
/// to clone. When the checker has stopped, the answers are empty.
#[derive(Debug, Clone)]
pub struct CheckerHandle {
    queries: mpsc::Sender<Query>,
    evidence: mpsc::Sender<Evidence>,
}

/// What a farm peer heard of some jobs: (peer id, (job, what it heard)).
pub type Evidence = (Arc<str>, Vec<(String, PeerSeen)>);

/// Where [`run`] takes what the handle sends: queries, and the farm's
/// evidence apart from them (evidence is taken like messages, before
/// deadlines; queries after them).
#[derive(Debug)]
pub struct CheckerInbox {
    /// Questions and commands.
    pub queries: mpsc::Receiver<Query>,
    /// What farm peers heard.
    pub evidence: mpsc::Receiver<Evidence>,
}

impl CheckerHandle {
    /// A handle and the queues [`run`] takes from.
    pub fn channel(capacity: usize) -> (CheckerHandle, CheckerInbox) {
        let (queries, queries_rx) = mpsc::channel(capacity);
        let (evidence, evidence_rx) = mpsc::channel(capacity);
        (
            CheckerHandle { queries, evidence },
            CheckerInbox {
                queries: queries_rx,
                evidence: evidence_rx,
            },
        )
    }

    async fn ask<T>(&self, query: impl FnOnce(oneshot::Sender<T>) -> Query) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        self.queries.send(query(tx)).await.ok()?;
        rx.await.ok()
    }

    /// Every job's current view.
    pub async fn jobs(&self) -> Vec<JobView> {
        self.ask(Query::Jobs).await.unwrap_or_default()
    }

    /// The ids of the incidents open now (`None`: the loop has stopped).
    pub async fn open_incidents(&self) -> Option<std::collections::BTreeSet<Arc<str>>> {
        self.ask(Query::OpenIncidents).await
    }

    /// The sender hosts with the largest clock offsets.
    pub async fn hosts(&self) -> Vec<HostView> {
        self.ask(Query::Hosts).await.unwrap_or_default()
    }

    /// Whether the checker's loop answers.
    pub async fn ping(&self) -> bool {
        self.ask(Query::Ping).await.is_some()
    }

    /// Silences `job` until `until_ms` (unix ms), or pauses it (`None`).
    pub async fn silence(
        &self,
        job: String,
        until_ms: Option<u64>,
        reason: String,
    ) -> Result<(), String> {
        self.ask(|reply| Query::Silence {
            job,
            until_ms,
            reason,
            reply,
        })
        .await
        .unwrap_or_else(|| Err("the monitor is stopping".into()))
    }

    /// Acknowledges the open incident `incident`; `from_peer`: a farm
    /// peer's acknowledgement, learnt from the gossip.
    pub async fn ack(
        &self,
        incident: String,
        ack: crate::notification::Ack,
        from_peer: bool,
    ) -> Result<crate::registry::Acked, String> {
        self.ask(|reply| Query::Ack {
            incident,
            ack,
            from_peer,
            reply,
        })
        .await
        .unwrap_or_else(|| Err("the monitor is stopping".into()))
    }

    /// Ends `job`'s silence or pause.
    pub async fn unsilence(&self, job: String) -> Result<(), String> {
        self.ask(|reply| Query::Unsilence { job, reply })
            .await
            .unwrap_or_else(|| Err("the monitor is stopping".into()))
    }

    /// A new job list, taken without losing state; `None` if the checker
    /// has stopped.
    pub async fn reload(&self, reload: Reload) -> Option<Reconfigured> {
        self.ask(|reply| Query::Reload(reload, reply)).await
    }

    /// Stops watching a declared job (it is watched again when it next
    /// declares itself).
    pub async fn forget(&self, job: String) -> Result<(), String> {
        self.ask(|reply| Query::Forget { job, reply })
            .await
            .unwrap_or_else(|| Err("the monitor is stopping".into()))
    }

    /// What a farm peer heard of some jobs.
    pub async fn peer_seen(&self, peer: Arc<str>, seen: Vec<(String, PeerSeen)>) {
        let _ = self.evidence.send((peer, seen)).await;
    }
}

/// Runs until `inbound` is closed (the receiver stopped) and drained.
pub async fn run(
    mut registry: Registry,
    mut inbound: mpsc::Receiver<Vec<Inbound>>,
    out: mpsc::Sender<Notification>,
    inbox: CheckerInbox,
    stats: Arc<Stats>,
    store: Option<Store>,
    links: Links,
) {
    let Links { farm, watched } = links;
    // What was heard here goes to the farm at most every gossip interval.
    let mut publish_at: Option<Instant> = None;
    // Job state is saved in batches: at most every SAVE_EVERY while
    // something changed (a timer armed only then: idle means asleep).
    // Armed now if the start left something to save (jobs never heard of,
    // whose watch began now): the loop may first wake only at the first
    // deadline, and a watcher restarted before its first save would begin
    // every such job's watch again, postponing its `down` each time.
    let mut save_at: Option<Instant> =
        (store.is_some() && registry.is_dirty()).then(|| Instant::now() + SAVE_EVERY);
    // The save under way, if any: the next waits for it, so a store slower
    // than the changes coalesces them (a job changed ten times is written
    // once) instead of queueing without bound.
    let mut saving: Option<oneshot::Receiver<()>> = None;
    let mut clock = ClockWatch::new(Instant::now(), wall_ms());
    // Fault injection for the tests: a message for this job makes the
    // checker panic, as a bug would (tests/trust.rs checks the process exits).
    let panic_on_job = std::env::var("QCIC_TEST_PANIC_ON_JOB").ok();
    let CheckerInbox {
        mut queries,
        mut evidence,
    } = inbox;
    // Batches of messages taken in a row while a deadline was due.
    let mut streak = 0usize;
    // What the start owes (follow-ups of declared jobs the policy refused).
    for note in registry.take_owed() {
        if out.send(note).await.is_err() {
            return;
        }
    }
    'serve: loop {
        let now = Now::current();
        if clock.stepped(now) {
            registry.on_clock_step(now);
        }
        let next = registry.next_deadline();
        // A deadline that is a wall time is an instant only as long as the
        // wall clock does not step: look at the clocks at least every
        // CLOCK_CHECK then (a step forward would otherwise delay it by the
        // step). With none, the loop sleeps until the next deadline.
        let wake = match (next, registry.follows_wall_clock()) {
            (Some(at), true) => Some(at.min(now.at + CLOCK_CHECK)),
            (None, true) => Some(now.at + CLOCK_CHECK),
            (next, false) => next,
        };
        // Messages come before due deadlines, but not for ever: after
        // MESSAGES_FIRST batches in a row with a deadline due, the
        // deadlines get a turn (a flood the checker cannot drain must not
        // hold every alarm back).
        let due = wake.is_some_and(|at| at <= now.at);
        streak = if due { streak + 1 } else { 0 };
        let messages_first = streak <= MESSAGES_FIRST;
        if !messages_first {
            streak = 0;
        }
        let mut notes = tokio::select! {
            // A fail is urgent: messages are always taken before deadlines
            // that fall due at the same time. Deadlines come before queries:
            // a flood of status or HTTP requests (each served here) must
            // never hold back an alarm.
            biased;
            batch = inbound.recv(), if messages_first => match batch {
                Some(batch) => {
                    // One clock reading per batch: they arrived together.
                    let now = Now::current();
                    let mut notes = Vec::new();
                    for inbound in batch {
                        if panic_on_job.as_deref() == Some(inbound.message.job.as_str()) {
                            panic!("QCIC_TEST_PANIC_ON_JOB: a message for {}", inbound.message.job);
                        }
                        notes.extend(registry.on_message_from(
                            &inbound.message,
                            inbound.sender_key.as_deref(), now));
                    }
                    notes
                },
                None => break,
            },
            // What a farm peer heard is evidence, like a message.
            Some((peer, seen)) = evidence.recv(), if messages_first => {
                let now = Now::current();
                let mut notes = Vec::new();
                for (job, seen) in seen {
                    notes.extend(registry.on_peer_seen(&peer, &job, &seen, now));
                }
                notes
            }
            () = sleep_until(wake.unwrap_or_else(Instant::now)), if wake.is_some() => {
                let now = Now::current();
                if clock.stepped(now) {
                    // Stepped while asleep: what fell due by the old reading
                    // is judged by the new one first.
                    registry.on_clock_step(now);
                    Vec::new()
                } else {
                    // In slices: when ten thousand jobs fall due at once, the
                    // first alerts leave while the rest are still worked out
                    // (the loop comes straight back: they are still due).
                    registry.on_deadlines_max(now, DEADLINE_SLICE)
                }
            }
            () = sleep_until(publish_at.unwrap_or_else(Instant::now)), if publish_at.is_some() => {
                publish_at = None;
                if let Some(link) = &farm {
                    // Taken only when the farm task has room: if it is
                    // behind, the jobs stay marked heard and go next time
                    // (a dropped batch would lose the evidence of a job
                    // heard once and then silent).
                    if let Ok(permit) = link.heard.try_reserve() {
                        permit.send(registry.take_heard());
                    }
                }
                Vec::new()
            }
            () = sleep_until(save_at.unwrap_or_else(Instant::now)), if save_at.is_some() => {
                save_at = None;
                let busy = saving
                    .as_mut()
                    .is_some_and(|ack| matches!(ack.try_recv(), Err(oneshot::error::TryRecvError::Empty)));
                if let (Some(store), false) = (&store, busy) {
                    saving = Some(store.save_jobs(registry.take_dirty(Now::current()), registry.take_runs()));
                }
                Vec::new()
            }
            Some(query) = queries.recv() => {
                match query {
                    Query::Jobs(reply) => {
                        // The ingest-lag gauge, read here rather than kept per
                        // message: a counter the receive thread and this task
                        // both wrote cost half the ingest rate (cache-line
                        // ping-pong).
                        stats.inbound_queued.store(u64::try_from(inbound.len()).unwrap_or(u64::MAX), Ordering::Relaxed);
                        let _ = reply.send(registry.views(Now::current()));
                        Vec::new()
                    }
                    Query::Ping(reply) => {
                        let _ = reply.send(());
                        Vec::new()
                    }
                    Query::OpenIncidents(reply) => {
                        let _ = reply.send(registry.open_incidents());
                        Vec::new()
                    }
                    Query::Hosts(reply) => {
                        let _ = reply.send(registry.hosts());
                        Vec::new()
                    }
                    Query::Reload(reload, reply) => {
                        registry.set_declare_policy(reload.declare);
                        registry.set_unknown_jobs(reload.unknown_jobs);
                        // The windows first: alarms judged again by the new
                        // job list are judged by the new windows.
                        let released = registry.set_maintenance(reload.maintenance, Now::current());
                        let mut summary = registry.reconfigure(&reload.jobs, reload.max_unknown, reload.max_skew, Now::current());
                        summary.closed.splice(0..0, released);
                        if let Some(store) = &store {
                            store.forget_jobs(summary.removed_names.clone());
                        }
                        let closed = std::mem::take(&mut summary.closed);
                        let _ = reply.send(summary);
                        closed
                    }
                    Query::Forget { job, reply } => match registry.forget(&job, Now::current()) {
                        Ok(closed) => {
                            let _ = reply.send(Ok(()));
                            closed
                        }
                        Err(e) => {
                            let _ = reply.send(Err(e));
                            Vec::new()
                        }
                    },
                    Query::Silence { job, until_ms, reason, reply } => {
                        let result = registry.silence(&job, until_ms, &reason, Now::current());
                        reply_when_saved(store.as_ref(), &mut registry, reply, result);
                        Vec::new()
                    }
                    Query::Ack { incident, ack, from_peer, reply } => {
                        let result = registry.ack(&incident, ack.clone(), Now::current());
                        if from_peer && result.is_err() {
                            registry.ack_when_opened(&incident, ack.clone());
                        }
                        if let Ok(crate::registry::Acked::Now(job) | crate::registry::Acked::Held(job)) = &result {
                            if let (Some(link), false) = (&farm, from_peer) {
                                // Told to every watcher of the farm (bounded:
                                // if the farm task is this far behind, the
                                // peers still learn nothing false).
                                let _ = link.acks.try_send((Arc::from(incident.as_str()), ack));
                            }
                            tracing::info!(%incident, %job, from_peer, "incident acknowledged");
                        }
                        reply_when_saved(store.as_ref(), &mut registry, reply, result);
                        Vec::new()
                    }
                    Query::Unsilence { job, reply } => match registry.unsilence(&job, Now::current()) {
                        Ok(held_back) => {
                            reply_when_saved(store.as_ref(), &mut registry, reply, Ok(()));
                            held_back
                        }
                        Err(e) => {
                            let _ = reply.send(Err(e));
                            Vec::new()
                        }
                    },
                }
            }
        };
        // Declared jobs come and go: the receive thread's watched set and
        // the state database follow.
        for change in registry.take_watch_changes() {
            if let Some(watched) = &watched {
                match change {
                    WatchChange::Add(job, senders) => watched.add(&job, senders.as_ref()),
                    WatchChange::Remove(job) => watched.remove(&job),
                }
            }
        }
        // Follow-ups the registry owes outside a message or deadline (a
        // declared job the policy refused at start, with incidents open).
        notes.extend(registry.take_owed());
        let removed = registry.take_removed();
        if let (Some(store), false) = (&store, removed.is_empty()) {
            store.forget_jobs(removed);
        }
        if let (Some(link), None, true) = (&farm, publish_at, registry.has_heard()) {
            publish_at = Some(Instant::now() + link.every);
        }
        if store.is_some() && save_at.is_none() && registry.is_dirty() {
            save_at = Some(Instant::now() + SAVE_EVERY);
        }
        // Bounded: if the dispatcher ever fell behind, the checker waits,
        // the receiver waits, and libzmq's high-water marks hold the rest,
        // instead of memory growing without bound.
        for note in notes {
            if out.send(note).await.is_err() {
                break 'serve;
            }
        }
    }
    if let Some(store) = &store {
        // The last save: `Watcher::shutdown` joins the store thread, which
        // commits it.
        drop(store.save_jobs(registry.take_dirty(Now::current()), registry.take_runs()));
    }
}

/// Replies once the change just made is in the state database (an
/// acknowledgement or a pause answered "ok" survives a `kill -9` right
/// after it), without holding the loop; at once without a database.
fn reply_when_saved<T: Send + 'static>(
    store: Option<&Store>,
    registry: &mut Registry,
    reply: oneshot::Sender<T>,
    value: T,
) {
    match store {
        Some(store) => {
            let saved = store.save_jobs(registry.take_dirty(Now::current()), registry.take_runs());
            tokio::spawn(async move {
                let _ = saved.await;
                let _ = reply.send(value);
            });
        }
        None => {
            let _ = reply.send(value);
        }
    }
}

/// What the checker keeps up to date besides the notifications it sends.
#[derive(Debug, Default)]
pub struct Links {
    /// In a farm: where what was heard here goes.
    pub farm: Option<FarmLink>,
    /// The receive thread's watched jobs, which declarations change.
    pub watched: Option<Arc<WatchedJobs>>,
}

/// The checker's side of the farm: where what was heard here goes, and how often.
#[derive(Debug, Clone)]
pub struct FarmLink {
    /// To the farm task, which gossips it.
    pub heard: mpsc::Sender<Vec<(Arc<str>, PeerSeen)>>,
    /// The gossip interval.
    pub every: std::time::Duration,
    /// Acknowledgements taken here, for the farm task to gossip.
    pub acks: mpsc::Sender<(Arc<str>, crate::notification::Ack)>,
}

/// How often the loop looks at the clocks while a deadline is a wall time.
pub const CLOCK_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// A change of the wall clock against the monotonic one larger than this
/// is a step (NTP slews far slower: at most 0.5 ms a second).
const STEP_TOLERANCE_MS: i128 = 500;

/// Sees the wall clock step: the offset between the wall clock and the
/// monotonic one changes only when the wall clock is set.
#[derive(Debug)]
struct ClockWatch {
    base: Instant,
    offset_ms: i128,
}

impl ClockWatch {
    fn new(now: Instant, wall_ms: u64) -> ClockWatch {
        ClockWatch {
            base: now,
            offset_ms: 0,
        }
        .with_offset(now, wall_ms)
    }

    fn with_offset(mut self, now: Instant, wall_ms: u64) -> ClockWatch {
        self.offset_ms = Self::offset(self.base, now, wall_ms);
        self
    }

    fn offset(base: Instant, now: Instant, wall_ms: u64) -> i128 {
        i128::from(wall_ms)
            - i128::try_from(now.saturating_duration_since(base).as_millis()).unwrap_or(i128::MAX)
    }

    /// Whether the wall clock stepped since the last step seen; logs it.
    fn stepped(&mut self, now: Now) -> bool {
        let offset = Self::offset(self.base, now.at, now.wall_ms);
        let step = offset - self.offset_ms;
        if step.abs() <= STEP_TOLERANCE_MS {
            return false;
        }
        self.offset_ms = offset;
        tracing::warn!(step_ms = %step, "the wall clock stepped; cron, scheduled-start and silence deadlines follow it");
        true
    }
}

/// Batches of messages taken in a row, at most, while a deadline is due.
const MESSAGES_FIRST: usize = 16;

/// Deadlines handled per turn of the loop.
pub const DEADLINE_SLICE: usize = 64;

/// How often changed job state is written to the state database, at most.
pub const SAVE_EVERY: std::time::Duration = std::time::Duration::from_millis(200);

#[cfg(test)]
mod tests {
    use qcic_sdk::{Kind, Message};

    use super::*;
    use crate::config::JobConfig;
    use crate::notification::Event;
    use crate::registry::tests::{S, msg, registry_of};
    use crate::stats::Stats;

    struct Harness {
        t0: Instant,
        tx: Sender,
        out: mpsc::Receiver<Notification>,
    }

    /// Sends plain messages as if from a sender without CURVE.
    struct Sender(mpsc::Sender<Vec<Inbound>>);

    impl Sender {
        async fn send(&self, message: Message) -> Result<(), mpsc::error::SendError<Vec<Inbound>>> {
            self.0
                .send(vec![Inbound {
                    message,
                    sender_key: None,
                }])
                .await
        }
    }

    /// Runs the checker on `registry`, taking queries from `queries`.
    fn spawn(
        registry: Registry,
        queries: mpsc::Receiver<Query>,
    ) -> (Sender, mpsc::Receiver<Notification>) {
        let (tx, rx) = mpsc::channel(16);
        let (out_tx, out) = mpsc::channel(16);
        let (_handle, mut inbox) = CheckerHandle::channel(1);
        inbox.queries = queries;
        spawn_with(registry, rx, out_tx, inbox);
        (Sender(tx), out)
    }

    /// Runs the checker on these queues, without a store or a farm.
    fn spawn_with(
        registry: Registry,
        inbound: mpsc::Receiver<Vec<Inbound>>,
        out: mpsc::Sender<Notification>,
        inbox: CheckerInbox,
    ) {
        tokio::spawn(run(
            registry,
            inbound,
            out,
            inbox,
            Arc::new(Stats::default()),
            None,
            Links::default(),
        ));
    }

    fn start(jobs: Vec<JobConfig>) -> Harness {
        let t0 = Instant::now();
        let (_queries, queries) = mpsc::channel(1);
        let (tx, out) = spawn(registry_of("w", &jobs, t0, 0), queries);
        Harness { t0, tx, out }
    }

    fn job(name: &str, every: u32, grace: u32, max_runtime: Option<u32>) -> JobConfig {
        let mut cfg = JobConfig::new(name, crate::schedule::Schedule::Every(S * every), S * grace);
        cfg.max_runtime = max_runtime.map(|m| S * m);
        cfg
    }

    // On a paused clock tokio jumps straight to the next timer, so the
    // instant a notification comes out is exactly when the loop woke up.
    #[tokio::test(start_paused = true)]
    async fn wakes_exactly_at_the_deadline() {
        let mut h = start(vec![job("etl", 10, 5, None)]);
        h.tx.send(msg(Kind::Heartbeat, "etl", None, 1))
            .await
            .unwrap();
        let down = h.out.recv().await.unwrap();
        assert_eq!(down.event, Event::Down);
        assert_eq!(Instant::now() - h.t0, 15 * S);
    }

    #[tokio::test(start_paused = true)]
    async fn a_message_moves_the_deadline_and_the_loop_follows() {
        let mut h = start(vec![job("etl", 10, 0, None), job("other", 100, 0, None)]);
        for _ in 0..3 {
            tokio::time::sleep(8 * S).await;
            h.tx.send(msg(Kind::Heartbeat, "etl", None, 1))
                .await
                .unwrap();
        }
        let down = h.out.recv().await.unwrap();
        assert_eq!((&*down.job, down.event), ("etl", Event::Down));
        assert_eq!(
            Instant::now() - h.t0,
            34 * S,
            "24 s of heartbeats, then every"
        );
        h.tx.send(msg(Kind::Heartbeat, "etl", None, 2))
            .await
            .unwrap();
        let up = h.out.recv().await.unwrap();
        assert_eq!(up.event, Event::Recovered);
        assert_eq!(up.incident, down.incident);
        assert_eq!(Instant::now() - h.t0, 34 * S, "recovery is immediate");
    }

    #[tokio::test(start_paused = true)]
    async fn fail_is_handled_at_once_and_overrun_at_max_runtime() {
        let mut h = start(vec![job("etl", 3600, 0, Some(60))]);
        h.tx.send(msg(Kind::Start, "etl", Some(1), 1))
            .await
            .unwrap();
        h.tx.send(msg(Kind::Start, "etl", Some(2), 2))
            .await
            .unwrap();
        h.tx.send(msg(Kind::Fail, "etl", Some(2), 3)).await.unwrap();
        let failed = h.out.recv().await.unwrap();
        assert_eq!(failed.event, Event::Failed);
        assert_eq!(Instant::now(), h.t0);
        let over = h.out.recv().await.unwrap();
        assert_eq!((over.event, over.run_id), (Event::Overrun, Some(1)));
        assert_eq!(Instant::now() - h.t0, 60 * S);
    }

    #[test]
    fn a_clock_step_is_seen_and_slewing_is_not() {
        let t0 = Instant::now();
        let mut clock = ClockWatch::new(t0, 1_000_000);
        assert!(!clock.stepped(Now::new(t0 + 10 * S, 1_010_000)));
        assert!(
            !clock.stepped(Now::new(t0 + 20 * S, 1_020_400)),
            "0.4 s in 20 s"
        );
        assert!(clock.stepped(Now::new(t0 + 21 * S, 1_006_000)), "15 s back");
        assert!(
            !clock.stepped(Now::new(t0 + 22 * S, 1_007_000)),
            "the step is taken once"
        );
        assert!(
            clock.stepped(Now::new(t0 + 23 * S, 1_068_000)),
            "60 s forward"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn stops_when_the_inbound_side_closes() {
        let h = start(vec![job("etl", 10, 0, None)]);
        let Harness { tx, mut out, .. } = h;
        drop(tx);
        assert!(out.recv().await.is_none());
    }

    /// Queries (`status`, every HTTP request) are served by this loop; a
    /// flood of them kept the query channel never empty, and since it was
    /// polled before the deadlines, a `down` waited until the flood ended
    /// (46 s in an outside attack). 64 queries wait when the deadline is
    /// already due: the first answered must see the job down.
    #[tokio::test(start_paused = true)]
    async fn a_query_flood_does_not_hold_back_a_due_deadline() {
        let t0 = Instant::now().checked_sub(20 * S).unwrap();
        let registry = registry_of("w", &[job("etl", 10, 5, None)], t0, 0);
        let (queries_tx, queries) = mpsc::channel(64);
        let mut replies = Vec::new();
        for _ in 0..64 {
            let (reply, answer) = oneshot::channel();
            queries_tx.try_send(Query::Jobs(reply)).unwrap();
            replies.push(answer);
        }
        let (_tx, mut out) = spawn(registry, queries);
        let first = replies.remove(0).await.unwrap();
        assert_eq!(first[0].state, crate::registry::JobStatus::Down);
        assert_eq!(out.recv().await.unwrap().event, Event::Down);
    }

    /// Messages come before due deadlines, but a flood the checker cannot
    /// drain must not hold an alarm back for ever: 64 batches wait when
    /// the deadline is due, and the alarm comes after at most
    /// MESSAGES_FIRST of them. (The loop is held at its send of the alarm
    /// by a full output queue, so the batches still waiting can be counted.)
    #[tokio::test(start_paused = true)]
    async fn a_message_flood_does_not_hold_back_a_due_deadline_for_ever() {
        let t0 = Instant::now().checked_sub(20 * S).unwrap();
        let jobs = [job("etl", 10, 5, None), job("other", 3600, 0, None)];
        let mut full = registry_of("w", &[job("x", 10, 5, None)], t0, 0);
        let filler = full
            .on_deadlines(Now::new(Instant::now(), 20_000))
            .remove(0);
        let (tx, rx) = mpsc::channel(64);
        for seq in 0..64 {
            tx.try_send(vec![Inbound {
                message: msg(Kind::Heartbeat, "other", None, seq),
                sender_key: None,
            }])
            .unwrap();
        }
        let (out_tx, mut out) = mpsc::channel(1);
        out_tx.try_send(filler).unwrap();
        let (_handle, inbox) = CheckerHandle::channel(1);
        spawn_with(registry_of("w", &jobs, t0, 0), rx, out_tx, inbox);
        tokio::time::sleep(S).await;
        let waiting = 64 - tx.capacity();
        out.recv().await.unwrap();
        let down = out.recv().await.unwrap();
        assert_eq!((&*down.job, down.event), ("etl", Event::Down));
        assert!(
            waiting >= 64 - MESSAGES_FIRST - 1,
            "the alarm waited for {} of 64 batches",
            64 - waiting
        );
    }
}
