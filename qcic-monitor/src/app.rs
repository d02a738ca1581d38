//! The watcher's parts wired together. [`Watcher::start`] opens the state
//! database and binds every endpoint (the HTTP port first, the control
//! socket last, so a failure leaves no socket file behind), failing fast
//! (a port in use, a database it cannot open) before the checker, a
//! delivery or a server runs;
//! [`Watcher::serve`] waits for the shutdown signal, or for a part the
//! watcher cannot live without to stop; [`Watcher::shutdown`] drains the
//! parts in order, so that what was received is judged, what was judged
//! is notified, and what was notified is recorded.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::info;

use crate::clock::Now;
use crate::config::Config;
use crate::error::MonitorError;
use crate::notify::{Channels, NotificationLog};
use crate::receive::{ReceiveConfig, Receiver, WatchedJobs};
use crate::registry::Registry;
use crate::stats::Stats;
use crate::store::{Loaded, Store};
use crate::{accept, checker, control, demo, farm, http, ingest_guard, notify, reload};

/// How long shutdown waits for channels to deliver what they still hold.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// A running watcher.
pub struct Watcher {
    control_path: std::path::PathBuf,
    stats: Arc<Stats>,
    ctx: zmq::Context,
    receiver: Receiver,
    checker: JoinHandle<()>,
    dispatcher: JoinHandle<()>,
    farm: Option<farm::Farm>,
    channels: Channels,
    store: Option<Store>,
    store_thread: Option<std::thread::JoinHandle<()>>,
    /// Serve requests; aborted first at shutdown.
    servers: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher").finish_non_exhaustive()
    }
}

impl Watcher {
    /// Starts every part. With `demo`, a demo sender runs against the
    /// first listen endpoint too.
    pub async fn start(mut config: Config, demo: bool) -> Result<Watcher, MonitorError> {
        let stats = Arc::new(Stats::default());
        stats.runs.configure(
            config.monitor.metrics_jobs,
            &config.monitor.run_duration_buckets,
        );
        let nofile = accept::raise_nofile();
        let ctx = zmq::Context::new();
        let (store, loaded, store_thread) = match &config.monitor.state {
            Some(path) => {
                let retention = crate::store::Retention {
                    max_age: config.monitor.history,
                    per_job: config.monitor.history_runs,
                };
                let (store, loaded, thread) = Store::open(path, &stats, retention)?;
                (Some(store), loaded, Some(thread))
            }
            None => (
                None,
                Loaded {
                    pending: Vec::new(),
                    sent: Vec::new(),
                    jobs: Vec::new(),
                    sent_by: Vec::new(),
                },
                None,
            ),
        };
        let http_listener =
            match config.monitor.http {
                Some(addr) => Some(tokio::net::TcpListener::bind(addr).await.map_err(|e| {
                    MonitorError::Http {
                        addr,
                        reason: e.to_string(),
                    }
                })?),
                None => None,
            };
        let (checker_handle, query_rx) = checker::CheckerHandle::channel(64);
        let mut channels = Channels::start(
            &config.notify,
            &ctx,
            &stats,
            store.as_ref(),
            notify::Restart {
                sent_by: &loaded.sent_by,
                checker: &checker_handle,
            },
        )?;
        // Batches of up to receive::INBOUND_BATCH messages.
        let (in_tx, in_rx) = mpsc::channel(64);
        let receive_config = ReceiveConfig {
            listen: config.monitor.listen.clone(),
            curve: config.monitor.curve.clone(),
            max_rate_per_sender: config.monitor.max_rate_per_sender,
            connections: ingest_guard::Limits::configured(
                nofile,
                config.monitor.max_connections,
                config.monitor.max_connections_per_address,
            ),
            ping: config.monitor.sender_ping,
            watched: WatchedJobs::new(&config.jobs),
        };
        let receiver = Receiver::start(&ctx, &receive_config, in_tx, Arc::clone(&stats))?;

        let mut routing = notify::Routing::new(&config);
        log_jobs(&config.jobs);
        let registry = restored_registry(&mut config, &loaded, store.is_some(), &stats);
        routing.declared = Some(registry.routes());
        let (out_tx, out_rx) = mpsc::channel(1024);
        // In a farm the checker's notifications pass the farm's gate, which
        // decides which watcher sends each one.
        let registry_len = registry.len();
        let (farm, checker_out, farm_link, reporter) = match &config.monitor.farm {
            Some(cfg) => {
                let open = registry.open_incidents();
                let started = farm::start(
                    cfg,
                    &config.monitor.id,
                    registry.len(),
                    &loaded.sent,
                    &open,
                    out_tx,
                    checker_handle.clone(),
                    Arc::clone(&stats),
                    store.clone(),
                )
                .await?;
                let link = checker::FarmLink {
                    heard: started.heard,
                    every: cfg.gossip_interval,
                    acks: started.acks,
                };
                (
                    Some(started.farm),
                    started.gate,
                    Some(link),
                    Some(started.reporter),
                )
            }
            None => (None, out_tx, None, None),
        };
        let control_listener = control::bind(&config.monitor.control)?;
        let hup = reload::listen();
        log_start(&config, registry_len, &loaded);
        let checker = tokio::spawn(checker::run(
            registry,
            in_rx,
            checker_out,
            query_rx,
            Arc::clone(&stats),
            store.clone(),
            checker::Links {
                farm: farm_link,
                watched: Some(Arc::clone(&receive_config.watched)),
            },
        ));
        let notes = Arc::new(Mutex::new(NotificationLog::new(
            notify::NOTIFICATION_LOG_CAPACITY,
        )));
        notify::outbox::remember_sent(&notes, &loaded.sent);
        let queues = channels.take_queues();
        notify::outbox::replay(loaded.pending, &queues, &notes, store.as_ref());
        let (routing_tx, routing_rx) = tokio::sync::watch::channel(routing);
        let dispatcher = tokio::spawn(notify::dispatch(
            out_rx,
            queues,
            routing_rx,
            Arc::clone(&stats),
            Arc::clone(&notes),
            store.clone(),
            reporter.map(|r| Arc::new(r) as notify::Reports),
        ));
        let mut servers = vec![tokio::spawn(control::serve(
            control_listener,
            config.monitor.id.clone(),
            checker_handle.clone(),
            Arc::clone(&stats),
            accept::Limits::control(nofile),
        ))];
        if let Some(listener) = http_listener {
            let app = http::router(http::AppState {
                watcher: config.monitor.id.clone(),
                checker: checker_handle.clone(),
                stats: Arc::clone(&stats),
                notes: Arc::clone(&notes),
                state: config.monitor.state.clone(),
                guard: crate::api_guard::Guard::new(
                    &config.monitor.tokens,
                    config.monitor.metrics_public,
                    Arc::clone(&stats),
                ),
            });
            let stats = Arc::clone(&stats);
            servers.push(tokio::spawn(async move {
                http::serve(listener, app, accept::Limits::http(nofile), &stats).await;
            }));
        }
        if let Some(hup) = hup {
            let reloader = reload::Reloader::new(
                config.clone(),
                checker_handle.clone(),
                routing_tx,
                Arc::clone(&stats),
                Arc::clone(&receive_config.watched),
            );
            servers.push(tokio::spawn(reload::on_sighup(hup, reloader)));
        }
        drop(checker_handle);
        if demo {
            if let Some(listen) = config.monitor.listen.first() {
                demo::spawn(demo::connect_endpoint(listen))?;
            }
        }
        Ok(Watcher {
            control_path: config.monitor.control,
            stats,
            ctx,
            receiver,
            checker,
            dispatcher,
            farm,
            channels,
            store,
            store_thread,
            servers,
        })
    }

    /// Runs until `shutdown` completes. The checker and the dispatcher run
    /// until then; one that ends before it (a panic ends the process first:
    /// see `exit_on_panic`) would leave a watcher that looks alive and
    /// alarms no more, so that is an error.
    pub async fn serve(&mut self, shutdown: impl Future<Output = ()>) -> Result<(), MonitorError> {
        let ended = tokio::select! {
            () = shutdown => None,
            _ = &mut self.checker => Some("deadline checker"),
            _ = &mut self.dispatcher => Some("notification dispatcher"),
        };
        match ended {
            Some(task) => {
                tracing::error!(task, "a task the watcher needs stopped; exiting");
                Err(MonitorError::TaskEnded { task })
            }
            None => Ok(()),
        }
    }

    /// Stops every part in order: the servers; the receiver, which closes
    /// the checker's inbound channel; the checker, then the farm (what its
    /// gate still holds is left to the peers), the dispatcher and each
    /// channel in turn; last the state database, so the last job-state
    /// save and done marks are committed before exit.
    pub async fn shutdown(self) {
        info!("shutting down");
        for server in &self.servers {
            server.abort();
        }
        let _ = std::fs::remove_file(&self.control_path);
        let receiver = self.receiver;
        let _ = tokio::task::spawn_blocking(move || receiver.stop()).await;
        let _ = self.checker.await;
        if let Some(farm) = self.farm {
            farm.stop().await;
        }
        let _ = self.dispatcher.await;
        self.channels.finish(SHUTDOWN_GRACE).await;
        // The store thread ends once every handle is gone (a channel still
        // retrying past the grace keeps one; its rows stay pending on disk).
        drop(self.store);
        if let Some(thread) = self.store_thread {
            let joined = tokio::task::spawn_blocking(move || thread.join());
            if tokio::time::timeout(SHUTDOWN_GRACE, joined).await.is_err() {
                tracing::warn!("the state database was still busy at shutdown");
            }
        }
        let ctx = self.ctx;
        let _ = tokio::task::spawn_blocking(move || drop(ctx)).await;
        self.stats.log_summary("final counters");
    }
}

/// The start-up line, and one line per job for a handful of jobs (a farm
/// of a million jobs would spend seconds logging at start).
fn log_start(config: &Config, jobs: usize, loaded: &Loaded) {
    info!(
        watcher = %config.monitor.id,
        config = %config.source,
        listen = ?config.monitor.listen,
        jobs,
        channels = config.notify.len(),
        curve = config.monitor.curve.is_some(),
        state = ?config.monitor.state,
        pending_notifications = loaded.pending.len(),
        notification_log = loaded.sent.len(),
        control = %config.monitor.control.display(),
        http = ?config.monitor.http,
        allowed_senders = config
            .monitor
            .curve
            .as_ref()
            .and_then(|c| c.allowed_senders.as_ref())
            .map(std::collections::HashSet::len),
        "qcic-monitor started"
    );
}

/// One line per job for a handful of jobs.
fn log_jobs(jobs: &[crate::config::JobConfig]) {
    if jobs.len() <= 100 {
        for job in jobs {
            info!(job = %job, "watching");
        }
    }
}

/// The registry for the configured jobs, with the state database's job
/// state restored. It keeps what it needs of each job (settings shared
/// among alike jobs), so the parsed list is taken out of `config`.
fn restored_registry(
    config: &mut Config,
    loaded: &Loaded,
    tracked: bool,
    stats: &Arc<Stats>,
) -> Registry {
    let jobs = std::mem::take(&mut config.jobs);
    let mut registry = Registry::new(
        &config.monitor.id,
        &jobs,
        config.monitor.max_unknown_jobs,
        config.monitor.max_clock_skew,
        Arc::clone(stats),
        Now::current(),
    )
    .with_declare_policy(config.declare.clone());
    registry.set_unknown_jobs(config.monitor.unknown_jobs);
    drop(jobs);
    if !tracked {
        registry = registry.without_dirty_tracking();
    }
    if config.monitor.farm.is_some() {
        registry = registry.with_heard_tracking();
    }
    // Before the restore: held alarms are judged against the windows.
    let released = registry.set_maintenance(config.maintenance.clone(), Now::current());
    debug_assert!(released.is_empty(), "nothing is open before the restore");
    let restored = registry.restore(&loaded.jobs, Now::current());
    if restored > 0 {
        info!(
            jobs = restored,
            "job state restored from the state database"
        );
    }
    registry
}

/// The exit status after a panic (EX_SOFTWARE, "internal software error").
pub const EXIT_PANIC: i32 = 70;

/// Makes a panic anywhere in the watcher end the process with status
/// [`EXIT_PANIC`], after the usual panic message.
///
/// A task that panics inside tokio is only reported to whoever awaits it:
/// the checker once panicked on an out-of-range date and the process went
/// on, answering HTTP and `status`, with no job ever alarming again, where
/// no supervisor could see it. A watcher that dies is restarted by systemd
/// (`Restart=always`) with nothing lost: every notification is committed to
/// the state database before any channel sees it, and job state is saved.
pub fn exit_on_panic() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report(info);
        tracing::error!(panic = %info, "a part of the watcher panicked; exiting (status {EXIT_PANIC}) so that its supervisor restarts it");
        // _exit, not exit: no atexit handlers or C++ destructors run while
        // other threads still use libzmq and SQLite (a crash-stop, like
        // kill -9, which the state database is built to survive).
        #[expect(
            unsafe_code,
            reason = "_exit has no preconditions; std has no safe immediate exit"
        )]
        // SAFETY: _exit only ends the process.
        unsafe {
            libc::_exit(EXIT_PANIC)
        }
    }));
}
