//! How a channel works through its queue: one lane per job, so a
//! notification that keeps failing delays only the later notifications of
//! its own job (its `recovered` must not overtake its alarm, nor a new
//! incident the old one's follow-up), never another job's; and a bound on
//! the attempts in flight at once, so a burst or a storm of retries does
//! not open a thousand connections.
//!
//! Only an attempt holds a place, and first attempts and retries have
//! places of their own: a notification waiting out its backoff holds
//! none, and retries that hang until their deadline never hold up a fresh
//! notification's first try.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, mpsc};
use tokio::task::JoinSet;
use tracing::error;

use super::retry::{self, Failure};
use crate::notification::Notification;
use crate::notify::Delivery;
use crate::stats::Stats;
use crate::store::Store;

/// First attempts one channel makes at once (SMTP connections, HTTP
/// requests, commands running); retries have as many places again.
pub const CONCURRENCY: usize = 4;

/// A channel that can try to deliver one notification.
pub trait Attempt: Send + Sync + 'static {
    /// Its name in logs and metrics.
    fn name(&self) -> &str;
    /// The longest one attempt may take; past it the attempt is abandoned
    /// and counted as a temporary failure (a server that stops answering).
    fn deadline(&self) -> Duration;
    /// One try.
    fn attempt(&self, note: &Notification) -> impl Future<Output = Result<(), Failure>> + Send;
    /// One try at a digest: several notifications as one message. Only
    /// channels the configuration lets group are asked.
    fn attempt_digest(
        &self,
        _digest: super::digest::Digest<'_>,
    ) -> impl Future<Output = Result<(), Failure>> + Send {
        async { Err(Failure::Permanent("this channel sends no digests".into())) }
    }
}

/// What every attempt of a channel shares.
struct Attempts<C> {
    channel: Arc<C>,
    first: Semaphore,
    retries: Semaphore,
}

impl<C: Attempt> Attempts<C> {
    /// One attempt: waits for a place, then tries within the deadline.
    async fn once(&self, note: &Notification, first: bool) -> Result<(), Failure> {
        let places = if first { &self.first } else { &self.retries };
        let Ok(_place) = places.acquire().await else {
            return Err(Failure::Temporary("channel closed".into()));
        };
        within(self.channel.deadline(), self.channel.attempt(note)).await
    }
}

/// Runs `channel`: one message per notification, or digests when it
/// groups them.
pub async fn start<C: Attempt>(
    channel: C,
    rx: mpsc::Receiver<Delivery>,
    stats: Arc<Stats>,
    store: Option<Store>,
    grouping: Option<crate::config::Grouping>,
) {
    match grouping {
        Some(grouping) => run_grouped(channel, rx, stats, store, grouping).await,
        None => run(channel, rx, stats, store).await,
    }
}

/// Delivers everything `rx` brings through `channel` as digests: a group
/// opens with its first notification and goes out `grouping.wait` later,
/// or as soon as it holds `grouping.max`; a group of one goes as the
/// notification alone.
///
/// A group on its first attempt holds the next one back, so what arrives
/// meanwhile gathers: with `group_wait = "0s"` the first of a quiet
/// period leaves at once and the burst behind it goes together. A group
/// that failed and is retrying holds back only its own jobs (up to
/// [`CONCURRENCY`] such groups): another job's alarm never waits for it,
/// and a job's later notifications never overtake its earlier ones (a
/// `recovered` never passes its alarm).
pub async fn run_grouped<C: Attempt>(
    channel: C,
    mut rx: mpsc::Receiver<Delivery>,
    stats: Arc<Stats>,
    store: Option<Store>,
    grouping: crate::config::Grouping,
) {
    let channel = Arc::new(channel);
    let mut waiting: VecDeque<Delivery> = VecDeque::new();
    let mut due: Option<tokio::time::Instant> = None;
    let mut sending = JoinSet::new();
    // Jobs with a message under way (how many groups hold each), and each
    // group's jobs and whether it is retrying.
    let mut busy: HashMap<Arc<str>, usize> = HashMap::new();
    let mut groups: HashMap<tokio::task::Id, (Vec<Arc<str>>, Arc<AtomicBool>)> = HashMap::new();
    let retried = Arc::new(Notify::new());
    let mut open = true;
    loop {
        let now = tokio::time::Instant::now();
        let fresh_under_way = groups.values().any(|(_, r)| !r.load(Ordering::SeqCst));
        let room = !fresh_under_way && groups.len() <= CONCURRENCY;
        let free = waiting
            .iter()
            .filter(|d| !busy.contains_key(&d.note.job))
            .count();
        let ready =
            room && free > 0 && (!open || free >= grouping.max || due.is_some_and(|d| d <= now));
        if ready {
            let mut group = Vec::new();
            let mut rest = VecDeque::with_capacity(waiting.len());
            for delivery in waiting.drain(..) {
                if group.len() < grouping.max && !busy.contains_key(&delivery.note.job) {
                    group.push(delivery);
                } else {
                    rest.push_back(delivery);
                }
            }
            waiting = rest;
            // What is left has waited enough: it goes when it can.
            due = (!waiting.is_empty()).then_some(now);
            let mut jobs: Vec<Arc<str>> = group.iter().map(|d| Arc::clone(&d.note.job)).collect();
            jobs.sort_unstable();
            jobs.dedup();
            for job in &jobs {
                *busy.entry(Arc::clone(job)).or_default() += 1;
            }
            let retrying = Arc::new(AtomicBool::new(false));
            let task = sending.spawn(send_group(
                Arc::clone(&channel),
                group,
                Arc::clone(&stats),
                store.clone(),
                Failed {
                    flag: Arc::clone(&retrying),
                    woken: Arc::clone(&retried),
                },
            ));
            groups.insert(task.id(), (jobs, retrying));
            continue;
        }
        if !open && waiting.is_empty() && sending.is_empty() {
            break;
        }
        // Asleep only while something could go once the wait is over.
        let wake = due.filter(|_| room && free > 0);
        tokio::select! {
            next = rx.recv(), if open && waiting.len() < super::CHANNEL_QUEUE => {
                match next {
                    Some(delivery) => {
                        // Now, not the loop's `now`: the wait for this
                        // message may have been long.
                        due.get_or_insert_with(|| tokio::time::Instant::now() + grouping.wait);
                        waiting.push_back(delivery);
                    }
                    None => open = false,
                }
            }
            () = sleep_until_some(wake) => {}
            () = retried.notified(), if !groups.is_empty() => {}
            Some(finished) = sending.join_next_with_id() => {
                let task = match finished {
                    Ok((task, ())) => task,
                    Err(e) => {
                        if !e.is_cancelled() {
                            error!(channel = channel.name(), cause = %e, "a digest task failed");
                        }
                        e.id()
                    }
                };
                if let Some((jobs, _)) = groups.remove(&task) {
                    for job in jobs {
                        if let Some(n) = busy.get_mut(&job) {
                            *n -= 1;
                            if *n == 0 {
                                busy.remove(&job);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Sleeps until `at`; for ever when there is nothing to wait for.
async fn sleep_until_some(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// How a group says it failed once (so the next group need not wait).
struct Failed {
    flag: Arc<AtomicBool>,
    woken: Arc<Notify>,
}

impl Failed {
    fn note(&self, result: &Result<(), Failure>) {
        if result.is_err() && !self.flag.swap(true, Ordering::SeqCst) {
            self.woken.notify_one();
        }
    }
}

/// `attempt`, abandoned (a temporary failure) past `deadline`.
async fn within(
    deadline: Duration,
    attempt: impl Future<Output = Result<(), Failure>>,
) -> Result<(), Failure> {
    tokio::time::timeout(deadline, attempt)
        .await
        .unwrap_or_else(|_| {
            Err(Failure::Temporary(format!(
                "no answer within {} (the attempt was abandoned)",
                humantime::format_duration(deadline)
            )))
        })
}

/// One group: alone, or as a digest; its outbox rows done either way. A
/// digest the channel refuses for good (one member a service will not
/// take, a message too large) is not lost with it: each member is then
/// sent alone.
async fn send_group<C: Attempt>(
    channel: Arc<C>,
    group: Vec<Delivery>,
    stats: Arc<Stats>,
    store: Option<Store>,
    failed: Failed,
) {
    let farm = group.iter().find_map(|d| d.farm.clone());
    let notes: Vec<Arc<Notification>> = group.iter().map(|d| Arc::clone(&d.note)).collect();
    let deadline = channel.deadline();
    let name = channel.name();
    let alone = |note: Arc<Notification>| {
        let (channel, failed) = (Arc::clone(&channel), &failed);
        let (stats, farm) = (&stats, farm.clone());
        async move {
            retry::deliver(name, &note, stats, farm.as_deref(), |_| {
                let (channel, note) = (Arc::clone(&channel), Arc::clone(&note));
                async move {
                    let result = within(deadline, channel.attempt(&note)).await;
                    failed.note(&result);
                    result
                }
            })
            .await;
        }
    };
    let refused = if let [note] = notes.as_slice() {
        alone(Arc::clone(note)).await;
        Vec::new()
    } else {
        retry::deliver_digest(name, notes, &stats, farm.as_deref(), |left| {
            let channel = Arc::clone(&channel);
            let failed = &failed;
            async move {
                // What a peer delivered meanwhile may leave one: it goes alone.
                let result = match left.as_slice() {
                    [note] => within(deadline, channel.attempt(note)).await,
                    _ => {
                        let digest = super::digest::Digest { notes: &left };
                        within(deadline, channel.attempt_digest(digest)).await
                    }
                };
                failed.note(&result);
                result
            }
        })
        .await
    };
    for note in refused {
        alone(note).await;
    }
    if let Some(store) = &store {
        for delivery in &group {
            store.done(delivery.id);
        }
    }
}

/// Delivers everything `rx` brings through `channel` until it closes and
/// every lane is empty.
pub async fn run<C: Attempt>(
    channel: C,
    mut rx: mpsc::Receiver<Delivery>,
    stats: Arc<Stats>,
    store: Option<Store>,
) {
    let attempts = Arc::new(Attempts {
        channel: Arc::new(channel),
        first: Semaphore::new(CONCURRENCY),
        retries: Semaphore::new(CONCURRENCY),
    });
    // Jobs with a delivery under way, and what waits behind it.
    let mut lanes: HashMap<Arc<str>, VecDeque<Delivery>> = HashMap::new();
    let mut by_task = HashMap::new();
    // A JoinSet: if this task is aborted (shutdown past its grace), the
    // deliveries go with it, and with them their handles on the store.
    let mut running = JoinSet::new();
    let mut held = 0usize;
    let mut open = true;
    let start = |running: &mut JoinSet<()>, delivery: Delivery| {
        let (attempts, stats, store) = (Arc::clone(&attempts), Arc::clone(&stats), store.clone());
        running.spawn(async move {
            let Delivery { id, note, farm } = delivery;
            let name = attempts.channel.name();
            retry::deliver(name, &note, &stats, farm.as_deref(), |first| {
                attempts.once(&note, first)
            })
            .await;
            if let Some(store) = &store {
                store.done(id);
            }
        })
    };
    loop {
        tokio::select! {
            next = rx.recv(), if open && held < super::CHANNEL_QUEUE => {
                let Some(delivery) = next else {
                    open = false;
                    continue;
                };
                held += 1;
                let job = Arc::clone(&delivery.note.job);
                if let Some(lane) = lanes.get_mut(&job) {
                    lane.push_back(delivery);
                } else {
                    lanes.insert(Arc::clone(&job), VecDeque::new());
                    by_task.insert(start(&mut running, delivery).id(), job);
                }
            }
            Some(finished) = running.join_next_with_id() => {
                held = held.saturating_sub(1);
                let task = match finished {
                    Ok((task, ())) => task,
                    Err(e) => {
                        if !e.is_cancelled() {
                            error!(channel = attempts.channel.name(), cause = %e, "a delivery task failed");
                        }
                        e.id()
                    }
                };
                let Some(job) = by_task.remove(&task) else { continue };
                match lanes.get_mut(&job).and_then(VecDeque::pop_front) {
                    Some(delivery) => {
                        by_task.insert(start(&mut running, delivery).id(), job);
                    }
                    None => {
                        lanes.remove(&job);
                    }
                }
            }
            else => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notification::Event;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Fails the first `fail` attempts of incident "a", hangs incident
    /// "hang" forever, delivers everything else; records what it saw.
    #[derive(Default)]
    struct Fake {
        fail: AtomicUsize,
        in_flight: AtomicUsize,
        most_in_flight: AtomicUsize,
        delivered: Mutex<Vec<(String, Event)>>,
    }

    impl Attempt for Arc<Fake> {
        fn name(&self) -> &str {
            "fake"
        }
        fn deadline(&self) -> Duration {
            Duration::from_secs(5)
        }
        async fn attempt(&self, note: &Notification) -> Result<(), Failure> {
            // Counted down on drop: the deadline drops a hung attempt.
            struct Flying<'a>(&'a AtomicUsize);
            impl Drop for Flying<'_> {
                fn drop(&mut self) {
                    self.0.fetch_sub(1, Ordering::SeqCst);
                }
            }
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            let _flying = Flying(&self.in_flight);
            self.most_in_flight.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(10)).await;
            if &*note.incident == "hang" {
                std::future::pending::<()>().await;
                Ok(())
            } else if &*note.incident == "a"
                && self
                    .fail
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok()
            {
                Err(Failure::Temporary("refused".into()))
            } else {
                let mut seen = self.delivered.lock().unwrap();
                seen.push((note.incident.to_string(), note.event));
                Ok(())
            }
        }
    }

    /// Records each message it sends: the incidents it carried. A message
    /// carrying incident "stuck" fails for now, one carrying "poison" is
    /// refused for good.
    #[derive(Default)]
    struct Grouped {
        sent: Mutex<Vec<Vec<String>>>,
    }

    impl Grouped {
        fn take(&self, ids: Vec<String>) -> Result<(), Failure> {
            if ids.iter().any(|i| i == "stuck") {
                return Err(Failure::Temporary("not now".into()));
            }
            if ids.iter().any(|i| i == "poison") {
                return Err(Failure::Permanent("never".into()));
            }
            self.sent.lock().unwrap().push(ids);
            Ok(())
        }
    }

    impl Attempt for Arc<Grouped> {
        fn name(&self) -> &str {
            "grouped"
        }
        fn deadline(&self) -> Duration {
            Duration::from_secs(5)
        }
        async fn attempt(&self, note: &Notification) -> Result<(), Failure> {
            tokio::time::sleep(Duration::from_millis(100)).await;
            self.take(vec![note.incident.to_string()])
        }
        async fn attempt_digest(
            &self,
            digest: crate::notify::digest::Digest<'_>,
        ) -> Result<(), Failure> {
            tokio::time::sleep(Duration::from_millis(100)).await;
            self.take(
                digest
                    .notes
                    .iter()
                    .map(|n| n.incident.to_string())
                    .collect(),
            )
        }
    }

    /// A grouped channel running on a fake that records what it sends.
    fn grouped(
        wait: Duration,
        max: usize,
    ) -> (
        Arc<Grouped>,
        mpsc::Sender<Delivery>,
        tokio::task::JoinHandle<()>,
        Arc<Stats>,
    ) {
        let grouped = Arc::new(Grouped::default());
        let stats = Arc::new(Stats::default());
        let (tx, rx) = mpsc::channel(100);
        let grouping = crate::config::Grouping { wait, max };
        let worker = tokio::spawn(run_grouped(
            Arc::clone(&grouped),
            rx,
            Arc::clone(&stats),
            None,
            grouping,
        ));
        (grouped, tx, worker, stats)
    }

    fn sizes(grouped: &Grouped) -> Vec<usize> {
        grouped.sent.lock().unwrap().iter().map(Vec::len).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_group_waits_then_goes_as_one_message_in_order() {
        let (grouped, tx, worker, _) = grouped(Duration::from_secs(30), 100);
        for i in 0..5 {
            tx.send(delivery(&format!("j{i}"), Event::Down))
                .await
                .unwrap();
        }
        tokio::time::sleep(Duration::from_secs(29)).await;
        assert!(
            sizes(&grouped).is_empty(),
            "sent before the group's wait was over"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(sizes(&grouped), [5]);
        assert_eq!(
            grouped.sent.lock().unwrap()[0],
            ["j0", "j1", "j2", "j3", "j4"]
        );
        drop(tx);
        worker.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_group_leaves_at_once_and_what_is_left_follows() {
        let (grouped, tx, worker, _) = grouped(Duration::from_secs(30), 3);
        for i in 0..7 {
            tx.send(delivery(&format!("j{i}"), Event::Down))
                .await
                .unwrap();
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(sizes(&grouped), [3, 3, 1]);
        drop(tx);
        worker.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn with_no_wait_the_first_leaves_alone_and_the_burst_behind_it_together() {
        let (grouped, tx, worker, _) = grouped(Duration::ZERO, 100);
        tx.send(delivery("first", Event::Down)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        for i in 0..4 {
            tx.send(delivery(&format!("j{i}"), Event::Down))
                .await
                .unwrap();
        }
        // The channel closing sends what is left at once.
        drop(tx);
        worker.await.unwrap();
        assert_eq!(sizes(&grouped), [1, 4]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_retrying_group_holds_back_only_its_own_jobs() {
        let (grouped, tx, worker, _) = grouped(Duration::ZERO, 100);
        tx.send(delivery("stuck", Event::Down)).await.unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        tx.send(delivery("other", Event::Down)).await.unwrap();
        // The stuck job's own recovery (a message that would go through)
        // must wait behind its alarm.
        let mut recovery = delivery("stuck", Event::Recovered);
        let mut note = (*recovery.note).clone();
        note.incident = "stuck-recovery".into();
        recovery.note = Arc::new(note);
        tx.send(recovery).await.unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(*grouped.sent.lock().unwrap(), [vec!["other".to_owned()]]);
        drop(tx);
        worker.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_digest_is_sent_again_one_by_one() {
        let (grouped, tx, worker, stats) = grouped(Duration::from_secs(5), 100);
        for name in ["a", "poison", "b"] {
            tx.send(delivery(name, Event::Down)).await.unwrap();
        }
        drop(tx);
        worker.await.unwrap();
        assert_eq!(
            *grouped.sent.lock().unwrap(),
            [vec!["a".to_owned()], vec!["b".to_owned()]]
        );
        assert_eq!(stats.delivered.load(std::sync::atomic::Ordering::SeqCst), 2);
        assert_eq!(
            stats
                .delivery_failed
                .load(std::sync::atomic::Ordering::SeqCst),
            1
        );
    }

    /// A notification of job `name`, whose incident has the same name.
    fn delivery(name: &str, event: Event) -> Delivery {
        Delivery {
            id: None,
            note: Arc::new(Notification::new(
                event,
                name.into(),
                name.into(),
                "w".into(),
                0,
            )),
            farm: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_retrying_job_keeps_its_order_and_holds_up_no_other() {
        let fake = Arc::new(Fake::default());
        fake.fail.store(3, Ordering::SeqCst);
        let (tx, rx) = mpsc::channel(100);
        let worker = tokio::spawn(run(Arc::clone(&fake), rx, Arc::new(Stats::default()), None));
        // Eight attempts that never end: the deadline frees their places.
        for i in 0..8 {
            tx.send(delivery(if i == 0 { "hang" } else { "h" }, Event::Down))
                .await
                .unwrap();
        }
        tx.send(delivery("a", Event::Failed)).await.unwrap();
        tx.send(delivery("a", Event::Recovered)).await.unwrap();
        for i in 0..20 {
            tx.send(delivery(&format!("b{i}"), Event::Down))
                .await
                .unwrap();
        }
        tokio::time::sleep(Duration::from_secs(60)).await;
        let seen = fake.delivered.lock().unwrap().clone();
        let position =
            |incident: &str, event| seen.iter().position(|s| *s == (incident.into(), event));
        let failed = position("a", Event::Failed).expect("a's alarm delivered after its retries");
        let recovered = position("a", Event::Recovered).expect("a's follow-up delivered");
        assert!(failed < recovered, "{seen:?}");
        // Every b went out while a waited for its retries (1 + 2 + 5 s).
        let last_b = (0..20)
            .map(|i| position(&format!("b{i}"), Event::Down).unwrap())
            .max()
            .unwrap();
        assert!(last_b < failed, "{seen:?}");
        assert!(fake.most_in_flight.load(Ordering::SeqCst) <= 2 * CONCURRENCY);
        drop(tx);
        worker.abort();
    }
}
