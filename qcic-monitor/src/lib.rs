//! qcic-monitor: the watcher. It binds a ZeroMQ PULL endpoint, knows which
//! messages it expects from which jobs and by when, and notifies (log,
//! email, ZeroMQ PUB) when one does not arrive in time, when a job reports a
//! failure, when a run overruns, and again when the trouble is over.
//!
//! # Layout
//! - `main.rs`: the command line; parses, starts tracing, calls [`run`].
//! - [`config`]: the TOML configuration, with errors naming file, key and reason.
//! - [`receive`]: the PULL socket on its own thread, decoding and counting;
//!   [`ingest_guard`]: the limits on its connections.
//! - [`registry`]: per-job state and the rules that turn messages and passed
//!   deadlines into notifications.
//! - [`deadlines`]: the ordered deadline index.
//! - [`checker`]: the loop that owns the registry and sleeps until the next deadline.
//! - [`notification`]: events, incident ids and the notification record.
//! - [`notify`]: the dispatcher, the notification log, and the email and ZeroMQ channels.
//! - [`farm`]: watcher farms: gossip membership, shared evidence and
//!   notification log, and the gate that ranks who sends (pure).
//! - [`reload`]: SIGHUP, the configuration read again without losing state.
//! - [`stats`]: counters. [`demo`]: the built-in demo sender.
//!
//! # Quick start
//! ```no_run
//! # async fn example() -> Result<(), qcic_monitor::error::MonitorError> {
//! let config = qcic_monitor::config::Config::embedded()?;
//! qcic_monitor::run(config, async { let _ = tokio::signal::ctrl_c().await; }, false).await?;
//! # Ok(())
//! # }
//! ```

pub mod accept;
pub mod checker;
pub mod clock;
pub mod config;
pub mod control;
pub mod deadlines;
pub mod demo;
pub mod error;
pub mod farm;
pub mod http;
pub mod ingest_guard;
pub mod keys;
pub mod notification;
pub mod notify;
pub mod printable;
pub mod receive;
pub mod registry;
pub mod reload;
pub mod schedule;
pub mod stats;
pub mod store;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tracing::info;

use crate::clock::Now;
use crate::config::Config;
use crate::error::MonitorError;
use crate::notify::Channels;
use crate::receive::{ReceiveConfig, Receiver};
use crate::registry::Registry;
use crate::stats::Stats;

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

/// How long shutdown waits for channels to deliver what they still hold.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Runs the watcher until `shutdown` completes. With `demo`, a demo sender
/// runs against the first listen endpoint too.
pub async fn run(
    mut config: Config,
    shutdown: impl Future<Output = ()>,
    demo: bool,
) -> Result<(), MonitorError> {
    let stats = Arc::new(Stats::default());
    let nofile = accept::raise_nofile();
    let ctx = zmq::Context::new();
    let (store, loaded, store_thread) = match &config.monitor.state {
        Some(path) => {
            let (store, loaded, thread) = store::Store::open(path, &stats)?;
            (Some(store), loaded, Some(thread))
        }
        None => (
            None,
            store::Loaded {
                pending: Vec::new(),
                sent: Vec::new(),
                jobs: Vec::new(),
            },
            None,
        ),
    };
    let pending = loaded.pending;
    let mut channels = Channels::start(&config.notify, &ctx, &stats, store.as_ref())?;
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
    };
    let receiver = Receiver::start(&ctx, &receive_config, in_tx, Arc::clone(&stats))?;
    let control_listener = control::bind(&config.monitor.control)?;
    let hup = reload::listen();
    let http_listener = match config.monitor.http {
        Some(addr) => {
            Some(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|e| MonitorError::Http {
                        addr,
                        reason: e.to_string(),
                    })?,
            )
        }
        None => None,
    };
    info!(
        watcher = %config.monitor.id,
        config = %config.source,
        listen = ?config.monitor.listen,
        jobs = config.jobs.len(),
        channels = config.notify.len(),
        curve = config.monitor.curve.is_some(),
        state = ?config.monitor.state,
        pending_notifications = pending.len(),
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
    // One line per job reads well for a handful; a farm of a million jobs
    // would spend seconds logging at start.
    if config.jobs.len() <= 100 {
        for job in &config.jobs {
            info!(job = %job, "watching");
        }
    }

    let routing = notify::Routing::new(&config);
    // The registry keeps what it needs of each job (settings shared among
    // alike jobs); the parsed list is not kept beside it.
    let jobs = std::mem::take(&mut config.jobs);
    let mut registry = Registry::new(
        &config.monitor.id,
        &jobs,
        config.monitor.max_unknown_jobs,
        config.monitor.max_clock_skew,
        Arc::clone(&stats),
        Now::current(),
    );
    drop(jobs);
    if store.is_none() {
        registry = registry.without_dirty_tracking();
    }
    if config.monitor.farm.is_some() {
        registry = registry.with_heard_tracking();
    }
    let job_count = registry.len();
    let restored = registry.restore(&loaded.jobs, Now::current());
    if restored > 0 {
        info!(
            jobs = restored,
            "job state restored from the state database"
        );
    }
    let (out_tx, out_rx) = mpsc::channel(1024);
    let (query_tx, query_rx) = mpsc::channel(64);
    // In a farm the checker's notifications pass the farm's gate, which
    // decides which watcher sends each one.
    let (farm, checker_out, farm_link, reporter) = match &config.monitor.farm {
        Some(cfg) => {
            let open = registry.open_incidents();
            let started = farm::start(
                cfg,
                &config.monitor.id,
                job_count,
                &loaded.sent,
                &open,
                out_tx,
                query_tx.clone(),
                Arc::clone(&stats),
                store.clone(),
            )
            .await?;
            let link = checker::FarmLink {
                heard: started.heard,
                every: cfg.gossip_interval,
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
    let checker = tokio::spawn(checker::run(
        registry,
        in_rx,
        checker_out,
        query_rx,
        Arc::clone(&stats),
        store.clone(),
        farm_link,
    ));
    let log = Arc::new(std::sync::Mutex::new(notify::NotificationLog::new(
        notify::LOG_CAPACITY,
    )));
    {
        // The log as it was: a notification raised again after a crash
        // (job state is saved in batches) is known as already sent.
        let mut log = log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for note in &loaded.sent {
            log.record(note);
        }
    }
    let queues = channels.take_queues();
    // Deliveries still pending from before a crash or restart go out first;
    // the log learns them, so this run does not notify them again.
    for (id, channel, note) in pending {
        log.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .record(&note);
        match queues.iter().find(|(name, _)| *name == channel) {
            Some((_, queue)) => {
                info!(%channel, incident = %note.incident, event = %note.event, "redelivering a notification pending since before the restart");
                let _ = queue.try_send(store::Delivery {
                    id: Some(id),
                    note: Arc::new(note),
                    farm: None,
                });
            }
            None => {
                tracing::warn!(%channel, incident = %note.incident, "a pending notification's channel is no longer configured; dropped");
                if let Some(store) = &store {
                    store.done(Some(id));
                }
            }
        }
    }
    let (routing_tx, routing_rx) = tokio::sync::watch::channel(routing);
    let dispatcher = tokio::spawn(notify::dispatch(
        out_rx,
        queues,
        routing_rx,
        Arc::clone(&stats),
        Arc::clone(&log),
        store.clone(),
        reporter,
    ));
    let control_task = tokio::spawn(control::serve(
        control_listener,
        config.monitor.id.clone(),
        query_tx.clone(),
        Arc::clone(&stats),
        accept::Limits::control(nofile),
    ));
    let http_task = http_listener.map(|listener| {
        let app = http::router(http::AppState {
            watcher: config.monitor.id.clone(),
            queries: query_tx.clone(),
            stats: Arc::clone(&stats),
            log: Arc::clone(&log),
        });
        let stats = Arc::clone(&stats);
        tokio::spawn(async move {
            http::serve(listener, app, accept::Limits::http(nofile), &stats).await;
        })
    });
    let reload_task = hup.map(|hup| {
        let reloader = reload::Reloader::new(
            config.clone(),
            query_tx.clone(),
            routing_tx,
            Arc::clone(&stats),
        );
        tokio::spawn(reload::on_sighup(hup, reloader))
    });
    drop(query_tx);

    if demo {
        if let Some(listen) = config.monitor.listen.first() {
            demo::spawn(demo::connect_endpoint(listen))?;
        }
    }

    // The checker and the dispatcher run until shutdown; one that ends
    // before it (a panic ends the process first: see exit_on_panic) leaves
    // a watcher that looks alive and alarms no more.
    let (mut checker, mut dispatcher) = (checker, dispatcher);
    let ended = tokio::select! {
        () = shutdown => None,
        _ = &mut checker => Some("deadline checker"),
        _ = &mut dispatcher => Some("notification dispatcher"),
    };
    if let Some(task) = ended {
        tracing::error!(task, "a task the watcher needs stopped; exiting");
        return Err(MonitorError::TaskEnded { task });
    }
    info!("shutting down");
    control_task.abort();
    if let Some(task) = reload_task {
        task.abort();
    }
    if let Some(task) = http_task {
        task.abort();
    }
    let _ = std::fs::remove_file(&config.monitor.control);
    // Stopping the receiver closes the checker's inbound channel; the
    // checker, then the dispatcher, then each channel finish in turn.
    let _ = tokio::task::spawn_blocking(move || receiver.stop()).await;
    let _ = checker.await;
    // Notifications the gate still holds are left to the peers.
    if let Some(farm) = farm {
        farm.stop().await;
    }
    let _ = dispatcher.await;
    channels.finish(SHUTDOWN_GRACE).await;
    // The last job-state save and done marks are committed before exit:
    // the store thread ends once every handle is gone (a channel still
    // retrying past the grace keeps one; its rows stay pending on disk).
    drop(store);
    if let Some(thread) = store_thread {
        let joined = tokio::task::spawn_blocking(move || thread.join());
        if tokio::time::timeout(SHUTDOWN_GRACE, joined).await.is_err() {
            tracing::warn!("the state database was still busy at shutdown");
        }
    }
    let _ = tokio::task::spawn_blocking(move || drop(ctx)).await;
    stats.log_summary("final counters");
    Ok(())
}
