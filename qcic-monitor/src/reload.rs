//! SIGHUP: read the configuration file again and apply, without losing any
//! state, what can change while running: the jobs, their routing, and the
//! registry's bounds. Sockets, the state database, CURVE keys and the
//! channels themselves are owned by threads started once; a change to them
//! is named in a warning and waits for a restart.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::checker::CheckerHandle;
use crate::config::Config;
use crate::notify::Routing;
use crate::registry::Reconfigured;
use crate::stats::Stats;

/// Holds the configuration in force and applies new ones.
#[derive(Debug)]
pub struct Reloader {
    current: Config,
    checker: CheckerHandle,
    routing: watch::Sender<Routing>,
    stats: Arc<Stats>,
    /// What the receive thread knows of the jobs.
    watched: Arc<crate::receive::WatchedJobs>,
}

impl Reloader {
    /// Starts from the configuration the monitor started with.
    pub fn new(
        current: Config,
        checker: CheckerHandle,
        routing: watch::Sender<Routing>,
        stats: Arc<Stats>,
        watched: Arc<crate::receive::WatchedJobs>,
    ) -> Reloader {
        Reloader {
            current,
            checker,
            routing,
            stats,
            watched,
        }
    }

    /// Reads the file again and applies it; on any error the running
    /// configuration stays as it was, whole.
    pub async fn reload(&mut self) -> Result<Reconfigured, String> {
        let result = self.try_reload().await;
        match &result {
            Ok(summary) => {
                self.stats.config_reloads.fetch_add(1, Ordering::Relaxed);
                info!(
                    config = %self.current.source,
                    added = summary.added,
                    removed = summary.removed,
                    changed = summary.changed,
                    unchanged = summary.unchanged,
                    "configuration reloaded"
                );
            }
            Err(reason) => {
                self.stats
                    .config_reload_failures
                    .fetch_add(1, Ordering::Relaxed);
                error!("configuration not reloaded, the running one stays: {reason}");
            }
        }
        result
    }

    async fn try_reload(&mut self) -> Result<Reconfigured, String> {
        let Some(path) = self.current.path.clone() else {
            return Err(
                "the embedded configuration has no file to read again; start with --config FILE"
                    .into(),
            );
        };
        let new = Config::load(&path).map_err(|e| e.to_string())?;
        let restart = self.current.restart_needed(&new);
        // The channels keep running as started, so jobs may only name those.
        let running: Vec<String> = self
            .current
            .notify
            .iter()
            .enumerate()
            .map(|(i, n)| n.name(i))
            .collect();
        for (i, job) in new.jobs.iter().enumerate() {
            for channel in job.notify.iter().flatten() {
                if !running.contains(channel) {
                    return Err(format!(
                        "{}: job[{i}].notify: channel {channel:?} is not running (channels change only on a restart)",
                        new.source
                    ));
                }
            }
        }
        let mut applied = self.current.clone();
        applied.jobs = new.jobs;
        applied.monitor.max_unknown_jobs = new.monitor.max_unknown_jobs;
        applied.monitor.max_clock_skew = new.monitor.max_clock_skew;
        applied.monitor.unknown_jobs = new.monitor.unknown_jobs;
        applied.declare = new.declare.map(|mut policy| {
            // Declared jobs may name only the channels running.
            policy.channels.clone_from(&running);
            policy
        });
        let mut routing = Routing::new(&applied);
        routing.declared = self.routing.borrow().declared.clone();
        self.watched.replace(&applied.jobs);
        // The registry keeps the jobs; the reloader does not need them again.
        let jobs = std::mem::take(&mut applied.jobs);
        let summary = self
            .checker
            .reload(crate::checker::Reload {
                jobs,
                max_unknown: applied.monitor.max_unknown_jobs,
                max_skew: applied.monitor.max_clock_skew,
                unknown_jobs: applied.monitor.unknown_jobs,
                declare: applied.declare.clone(),
                maintenance: new.maintenance.clone(),
            })
            .await
            .ok_or_else(|| "the checker has stopped".to_owned())?;
        // After the registry: a notification already on its way for a
        // removed job still goes where it was routed.
        self.routing.send_replace(routing);
        if !restart.is_empty() {
            warn!(keys = ?restart, "these settings changed in the file and take effect only after a restart");
        }
        if restart.contains(&"curve") {
            // Said on its own: a revoked key is the change an operator most
            // needs to know is not in force yet.
            warn!(
                "the CURVE settings changed (a sender key added to or revoked from allowed_senders or allowed_senders_file, or the watcher's key): they apply only after a restart, and until then a revoked key can still connect and send"
            );
        }
        self.current = applied;
        Ok(summary)
    }
}

/// Listens for SIGHUP. Called before the monitor says it started, so a
/// SIGHUP from then on never meets the default action (terminate).
pub fn listen() -> Option<tokio::signal::unix::Signal> {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(hup) => Some(hup),
        Err(err) => {
            warn!(cause = %err, "cannot listen for SIGHUP; configuration reloads are off");
            None
        }
    }
}

/// Reloads on every SIGHUP until the task is dropped.
pub async fn on_sighup(mut hup: tokio::signal::unix::Signal, mut reloader: Reloader) {
    while hup.recv().await.is_some() {
        info!("SIGHUP: reloading the configuration");
        let _ = reloader.reload().await;
    }
}
