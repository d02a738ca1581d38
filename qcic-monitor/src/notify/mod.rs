//! Notification channels and the dispatcher that feeds them.
//!
//! The checker hands every notification to the dispatcher, which records it
//! in the notification log (suppressing exact repeats), writes it to the log,
//! and queues it for every channel its job routes to. Each channel works
//! through its own queue, so a slow SMTP server never delays the alert
//! stream. The channels: `email` (lettre, SMTP), `zmq_pub` (the alert
//! stream), `webhook` and `command`; `lanes` runs the attempts of email,
//! webhook and command channels (a lane per job) and `retry` their
//! back-off; `outbox` replays what was
//! pending at start-up.

pub mod alertmanager;
pub mod command;
pub mod digest;
pub mod discord;
pub mod email;
pub mod http;
pub mod lanes;
pub mod matrix;
pub mod ntfy;
pub mod opsgenie;
pub mod outbox;
pub mod pagerduty;
pub mod pushover;
pub mod retry;
pub mod slack;
pub mod smtp;
pub mod teams;
pub mod telegram;
pub mod webhook;
pub mod zmq_pub;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, error, warn};

use crate::config::NotifyConfig;
use crate::error::MonitorError;
use crate::notification::{Event, Notification};
use crate::stats::Stats;
use crate::store::Store;

/// Notifications a channel may have waiting before new ones are refused.
pub const CHANNEL_QUEUE: usize = 10_000;
/// Batches up to this size log a line per notification; larger ones one
/// summary line (when other channels carry each notification).
pub const LINES_EACH_UP_TO: usize = 32;
/// Notifications the dispatcher takes in one turn (and commits together).
pub const DISPATCH_BATCH: usize = 256;
/// Notifications the in-memory notification log remembers.
pub const NOTIFICATION_LOG_CAPACITY: usize = 10_000;

/// Where a channel says how each delivery went, and asks whether another
/// watcher delivered it already: in a farm, the ledger (`farm::Reporter`).
/// A trait here, so the channels know nothing of the farm.
pub trait DeliveryReports: std::fmt::Debug + Send + Sync {
    /// A channel delivered `note`.
    fn delivered(&self, note: &Notification);
    /// A channel's attempt to deliver `note` failed (it may retry).
    fn failed(&self, note: &Notification);
    /// Whether another watcher has delivered `note`.
    fn delivered_elsewhere(&self, note: &Notification) -> bool;
}

/// A shared [`DeliveryReports`].
pub type Reports = Arc<dyn DeliveryReports>;

/// One notification waiting for one channel.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Its outbox row, if the state database is on.
    pub id: Option<i64>,
    /// What to deliver (shared by every channel it goes to).
    pub note: Arc<Notification>,
    /// In a farm: where the channel reports how delivery went.
    pub farm: Option<Reports>,
}

/// What a channel that keeps state at its service (Alertmanager's firing
/// alerts) needs to take it back after a restart and keep it true: what
/// it delivered before, and the watcher's open incidents.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Restart<'a> {
    /// Notifications delivered before the restart, by channel name.
    pub(crate) sent_by: &'a [(String, Notification)],
    /// Asks the checker which incidents are open.
    pub(crate) checker: &'a crate::checker::CheckerHandle,
}

/// The queue of each running channel, by name (`Config` order).
pub type Queues = Vec<(String, mpsc::Sender<Delivery>)>;

/// The running channels' workers.
#[derive(Debug, Default)]
pub struct Channels {
    queues: Queues,
    tasks: Vec<JoinHandle<()>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Channels {
    /// Sets up every configured channel; any error stops the start.
    pub(crate) fn start(
        configs: &[NotifyConfig],
        ctx: &zmq::Context,
        stats: &Arc<Stats>,
        store: Option<&Store>,
        restart: Restart<'_>,
    ) -> Result<Channels, MonitorError> {
        let mut channels = Channels::default();
        for (index, cfg) in configs.iter().enumerate() {
            let (tx, rx) = mpsc::channel(CHANNEL_QUEUE);
            let refused = |kind: &'static str| {
                move |reason| MonitorError::Channel {
                    index,
                    kind,
                    reason,
                }
            };
            let (stats, store) = (Arc::clone(stats), store.cloned());
            let grouping = cfg.grouping();
            // The three async channels differ only in how they are built.
            let task: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> = match cfg {
                NotifyConfig::Email(email) => {
                    // Its `name` in logs and metric labels, if it has one.
                    let name =
                        email.route.name.clone().unwrap_or_else(|| {
                            format!("notify[{index}] email {}", email.to.join(","))
                        });
                    let channel =
                        email::EmailChannel::new(name, email).map_err(refused("email"))?;
                    Box::pin(lanes::start(channel, rx, stats, store, grouping))
                }
                NotifyConfig::Webhook(hook) => {
                    let channel = webhook::WebhookChannel::new(cfg.name(index), hook)
                        .map_err(refused("webhook"))?;
                    Box::pin(lanes::start(channel, rx, stats, store, grouping))
                }
                NotifyConfig::Opsgenie(og) => {
                    let channel = opsgenie::OpsgenieChannel::new(cfg.name(index), og)
                        .map_err(refused("opsgenie"))?;
                    Box::pin(lanes::start(channel, rx, stats, store, grouping))
                }
                NotifyConfig::Pushover(pushover) => {
                    let channel = pushover::PushoverChannel::new(cfg.name(index), pushover)
                        .map_err(refused("pushover"))?;
                    Box::pin(lanes::start(channel, rx, stats, store, grouping))
                }
                NotifyConfig::Telegram(telegram) => {
                    let channel = telegram::TelegramChannel::new(cfg.name(index), telegram)
                        .map_err(refused("telegram"))?;
                    Box::pin(lanes::start(channel, rx, stats, store, grouping))
                }
                NotifyConfig::Matrix(matrix) => {
                    let channel = matrix::MatrixChannel::new(cfg.name(index), matrix)
                        .map_err(refused("matrix"))?;
                    Box::pin(lanes::start(channel, rx, stats, store, grouping))
                }
                NotifyConfig::Teams(teams) => {
                    let channel = teams::TeamsChannel::new(cfg.name(index), teams)
                        .map_err(refused("teams"))?;
                    Box::pin(lanes::start(channel, rx, stats, store, grouping))
                }
                NotifyConfig::Discord(discord) => {
                    let channel = discord::DiscordChannel::new(cfg.name(index), discord)
                        .map_err(refused("discord"))?;
                    Box::pin(lanes::start(channel, rx, stats, store, grouping))
                }
                NotifyConfig::Slack(slack) => {
                    let channel = slack::SlackChannel::new(cfg.name(index), slack)
                        .map_err(refused("slack"))?;
                    Box::pin(lanes::start(channel, rx, stats, store, grouping))
                }
                NotifyConfig::Ntfy(ntfy) => {
                    let channel =
                        ntfy::NtfyChannel::new(cfg.name(index), ntfy).map_err(refused("ntfy"))?;
                    Box::pin(lanes::start(channel, rx, stats, store, grouping))
                }
                NotifyConfig::Alertmanager(am) => {
                    let name = cfg.name(index);
                    let delivered = restart
                        .sent_by
                        .iter()
                        .filter(|(channel, _)| *channel == name)
                        .map(|(_, note)| note);
                    let channel = alertmanager::AlertmanagerChannel::new(
                        name.clone(),
                        am,
                        delivered,
                        restart.checker.clone(),
                    )
                    .map_err(refused("alertmanager"))?;
                    Box::pin(lanes::start(channel, rx, stats, store, grouping))
                }
                NotifyConfig::PagerDuty(pd) => {
                    let channel = pagerduty::PagerDutyChannel::new(cfg.name(index), pd)
                        .map_err(refused("pagerduty"))?;
                    Box::pin(lanes::start(channel, rx, stats, store, grouping))
                }
                NotifyConfig::Command(cmd) => {
                    let channel = command::CommandChannel::new(cfg.name(index), cmd)
                        .map_err(refused("command"))?;
                    Box::pin(lanes::start(channel, rx, stats, store, grouping))
                }
                NotifyConfig::Zmq(zmq) => {
                    channels
                        .threads
                        .push(zmq_pub::start(ctx, index, zmq, rx, stats, store)?);
                    channels.queues.push((cfg.name(index), tx));
                    continue;
                }
            };
            channels.tasks.push(tokio::spawn(task));
            channels.queues.push((cfg.name(index), tx));
        }
        Ok(channels)
    }

    /// Hands out the queues (to the dispatcher); the channels finish once
    /// every queue is dropped.
    pub fn take_queues(&mut self) -> Queues {
        std::mem::take(&mut self.queues)
    }

    /// Closes the queues and waits for the channels to finish what they hold.
    pub async fn finish(self, within: std::time::Duration) {
        drop(self.queues);
        let aborts: Vec<_> = self.tasks.iter().map(JoinHandle::abort_handle).collect();
        let tasks = async {
            for task in self.tasks {
                let _ = task.await;
            }
        };
        if tokio::time::timeout(within, tasks).await.is_err() {
            warn!(
                "notification channels still busy at shutdown; with the state database on, what they hold is sent after the restart (unless the database refused to write it: see its own lines)"
            );
            // Stopped, not left running detached: their handles on the
            // state database must go for its last writes to finish.
            for abort in aborts {
                abort.abort();
            }
        }
        for thread in self.threads {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

/// What the watcher has notified: the record that makes duplicates visible
/// and, in a farm, the state watchers share. Bounded: the oldest entries go.
#[derive(Debug)]
pub struct NotificationLog {
    entries: VecDeque<Notification>,
    keys: HashSet<(Arc<str>, Event, Option<Event>, u32)>,
    capacity: usize,
}

impl NotificationLog {
    /// An empty log keeping at most `capacity` entries.
    pub fn new(capacity: usize) -> NotificationLog {
        NotificationLog {
            entries: VecDeque::new(),
            keys: HashSet::new(),
            capacity: capacity.max(1),
        }
    }

    fn key(note: &Notification) -> (Arc<str>, Event, Option<Event>, u32) {
        (
            note.incident.clone(),
            note.event,
            note.resolves,
            note.round(),
        )
    }

    /// Records `note`; false if this incident already had this notification.
    pub fn record(&mut self, note: &Notification) -> bool {
        if !self.keys.insert(Self::key(note)) {
            return false;
        }
        if self.entries.len() == self.capacity {
            if let Some(old) = self.entries.pop_front() {
                self.keys.remove(&Self::key(&old));
            }
        }
        self.entries.push_back(note.clone());
        true
    }

    /// Entries, oldest first.
    pub fn entries(&self) -> impl Iterator<Item = &Notification> {
        self.entries.iter()
    }
}

/// Which channels each job's notifications go to.
#[derive(Debug, Clone, Default)]
pub struct Routing {
    /// Jobs with a `notify` list: channel indexes.
    pub by_job: HashMap<String, Vec<usize>>,
    /// Channels for every other job.
    pub default: Vec<usize>,
    /// Declared jobs with a `notify` list (theirs, or `[declare] notify`),
    /// kept by the registry as declarations come and go.
    pub declared: Option<crate::registry::DeclaredRoutes>,
    /// Jobs with escalation steps: each step's channel indexes.
    pub escalations: HashMap<String, Vec<Vec<usize>>>,
    /// Declared jobs' escalation steps (`[monitor] escalate`).
    pub default_escalation: Vec<Vec<usize>>,
}

impl Routing {
    /// From the configuration.
    pub fn new(config: &crate::config::Config) -> Routing {
        let names: Vec<String> = config
            .notify
            .iter()
            .enumerate()
            .map(|(i, n)| n.name(i))
            .collect();
        let default = config
            .notify
            .iter()
            .enumerate()
            .filter(|(_, n)| n.route().default)
            .map(|(i, _)| i)
            .collect();
        let by_job = config
            .jobs
            .iter()
            .filter_map(|job| {
                let list = job.notify.as_ref()?;
                Some((
                    job.name.clone(),
                    list.iter()
                        .filter_map(|n| names.iter().position(|m| m == n))
                        .collect(),
                ))
            })
            .collect();
        let indexes = |steps: &[crate::config::EscalationStep]| -> Vec<Vec<usize>> {
            steps
                .iter()
                .map(|step| {
                    step.notify
                        .iter()
                        .filter_map(|n| names.iter().position(|m| m == n))
                        .collect()
                })
                .collect()
        };
        let escalations = config
            .jobs
            .iter()
            .filter(|job| !job.escalate.is_empty())
            .map(|job| (job.name.clone(), indexes(&job.escalate)))
            .collect();
        let default_escalation = config
            .declare
            .as_ref()
            .map(|d| indexes(&d.escalate))
            .unwrap_or_default();
        Routing {
            by_job,
            default,
            declared: None,
            escalations,
            default_escalation,
        }
    }

    /// The channels a notification goes to: its job's, or for an
    /// escalation step the step's; a follow-up goes to its job's and every
    /// escalation step's that its alarm reached.
    fn targets(&self, note: &Notification) -> Vec<usize> {
        let mut base = match &note.route {
            Some(route) => route.to_vec(),
            None => self.channels(&note.job),
        };
        if note.escalation == 0 {
            return base;
        }
        let steps = self
            .escalations
            .get(&*note.job)
            .unwrap_or(&self.default_escalation);
        let reached = usize::try_from(note.escalation).unwrap_or(usize::MAX);
        if !note.event.is_follow_up() {
            return steps.get(reached - 1).cloned().unwrap_or_default();
        }
        for channel in steps.iter().take(reached).flatten() {
            if !base.contains(channel) {
                base.push(*channel);
            }
        }
        base
    }

    fn channels(&self, job: &str) -> Vec<usize> {
        if let Some(list) = self.by_job.get(job) {
            return list.clone();
        }
        if let Some(routes) = &self.declared {
            let routes = routes
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(list) = routes.get(job) {
                return list.clone();
            }
        }
        self.default.clone()
    }
}

/// Logs and fans out every notification until the checker stops.
pub async fn dispatch(
    mut rx: mpsc::Receiver<Notification>,
    queues: Queues,
    routing: tokio::sync::watch::Receiver<Routing>,
    stats: Arc<Stats>,
    notes: Arc<std::sync::Mutex<NotificationLog>>,
    store: Option<Store>,
    farm: Option<Reports>,
) {
    while let Some(first) = rx.recv().await {
        // A burst (many jobs due at once) is taken as one batch: one
        // outbox commit for all of it instead of one per notification.
        let mut batch = vec![first];
        while batch.len() < DISPATCH_BATCH {
            match rx.try_recv() {
                Ok(note) => batch.push(note),
                Err(_) => break,
            }
        }
        let mut fresh: Vec<(Arc<Notification>, Vec<usize>)> = Vec::with_capacity(batch.len());
        // A burst going to other channels too is logged as one summary
        // line (each notification at debug): ten thousand alert lines cost
        // a quarter of the time to the alert stream, and a storm in the log
        // helps nobody. With no channel but the log, every line is kept: it
        // is the alert.
        let summarize = batch.len() > LINES_EACH_UP_TO && !queues.is_empty();
        let mut summary: BTreeMap<&'static str, usize> = BTreeMap::new();
        {
            let mut notes = notes
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for note in batch {
                if !notes.record(&note) {
                    stats.duplicates_suppressed.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                stats.notifications.fetch_add(1, Ordering::Relaxed);
                if summarize {
                    *summary.entry(note.event.name()).or_default() += 1;
                    debug!(event = %note.event, job = %note.job, incident = %note.incident, watcher = %note.watcher, "{}", note.headline());
                } else {
                    warn!(
                        event = %note.event,
                        job = %note.job,
                        incident = %note.incident,
                        watcher = %note.watcher,
                        resolves = note.resolves.map(Event::name),
                        text = note.text.as_deref(),
                        "{}",
                        note.headline()
                    );
                }
                // Read afresh for each notification: SIGHUP may have changed it.
                let targets = routing.borrow().targets(&note);
                fresh.push((Arc::new(note), targets));
            }
        }
        if !summary.is_empty() {
            let counts: Vec<String> = summary.iter().map(|(e, n)| format!("{e}={n}")).collect();
            let first = fresh.first().map(|(n, _)| n.headline()).unwrap_or_default();
            warn!(notifications = fresh.len(), by_event = %counts.join(" "), first = %first, "a burst of notifications (each one is in the channels, /api/incidents and the debug log)");
        }
        // On disk before any channel sees it: a crash from here on does
        // not lose it.
        let ids: Vec<Vec<i64>> = match &store {
            Some(store) => {
                let items = fresh
                    .iter()
                    .map(|(note, targets)| {
                        let names = targets
                            .iter()
                            .filter_map(|&i| queues.get(i).map(|(n, _)| n.clone()))
                            .collect();
                        (names, Arc::clone(note))
                    })
                    .collect();
                let stored = store.enqueue(items).await;
                if !stored.durable && !stored.ids.is_empty() {
                    warn!(
                        notifications = fresh.len(),
                        "notifications going out before the state database has them (it refused the write; it is tried again)"
                    );
                }
                stored.ids
            }
            None => Vec::new(),
        };
        for (k, (note, targets)) in fresh.into_iter().enumerate() {
            let queued = targets.iter().filter_map(|&i| queues.get(i));
            for (c, (name, queue)) in queued.enumerate() {
                let id = ids.get(k).and_then(|row| row.get(c)).copied();
                let delivery = Delivery {
                    id,
                    note: Arc::clone(&note),
                    farm: farm.clone(),
                };
                if let Err(err) = queue.try_send(delivery) {
                    // Still in the outbox (if on): it goes out after a restart.
                    stats.delivery_failed.fetch_add(1, Ordering::Relaxed);
                    error!(channel = %name, incident = %note.incident, cause = %err, "channel queue refused a notification");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(incident: &str, event: Event) -> Notification {
        Notification::new(event, "j".into(), incident.into(), "w".into(), 0)
    }

    #[test]
    fn escalation_steps_go_to_their_channels_and_follow_ups_to_every_channel_reached() {
        let routing = Routing {
            default: vec![0],
            escalations: [("j".to_owned(), vec![vec![1], vec![2, 0]])].into(),
            default_escalation: vec![vec![3]],
            ..Routing::default()
        };
        let mut alarm = note("a", Event::Down);
        assert_eq!(routing.targets(&alarm), [0]);
        alarm.escalation = 1;
        assert_eq!(routing.targets(&alarm), [1]);
        alarm.escalation = 2;
        assert_eq!(routing.targets(&alarm), [2, 0]);
        let mut up = note("a", Event::Recovered);
        up.resolves = Some(Event::Down);
        up.escalation = 2;
        assert_eq!(routing.targets(&up), [0, 1, 2]);
        up.escalation = 1;
        assert_eq!(routing.targets(&up), [0, 1]);
        // A declared job (no entry of its own) takes [monitor] escalate.
        let mut declared = Notification::new(Event::Down, "d".into(), "b".into(), "w".into(), 0);
        declared.escalation = 1;
        assert_eq!(routing.targets(&declared), [3]);
        // Each step is a notification of its own in the log.
        let mut notes = NotificationLog::new(8);
        assert!(notes.record(&note("a", Event::Down)));
        assert!(notes.record(&alarm));
        assert!(!notes.record(&alarm));
    }

    #[test]
    fn log_suppresses_repeats_and_stays_bounded() {
        let mut notes = NotificationLog::new(2);
        assert!(notes.record(&note("a", Event::Down)));
        assert!(!notes.record(&note("a", Event::Down)));
        let mut up = note("a", Event::Recovered);
        up.resolves = Some(Event::Down);
        assert!(notes.record(&up));
        assert!(notes.record(&note("b", Event::Failed)));
        assert_eq!(notes.entries().count(), 2);
        // "a down" fell out of the bounded log, so it is new again.
        assert!(notes.record(&note("a", Event::Down)));
    }
}
