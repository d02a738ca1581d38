//! qcic-monitor: the watcher. It binds a ZeroMQ PULL endpoint, knows which
//! messages it expects from which jobs and by when, and notifies (log,
//! email, ZeroMQ PUB) when one does not arrive in time, when a job reports a
//! failure, when a run overruns, and again when the trouble is over.
//!
//! # Layout
//! Dependencies point one way: the leaves first, then the state machine,
//! the loop that drives it, and the parts around it; [`app`] wires them.
//! - `main.rs`: the command line; parses, starts tracing, calls [`run`].
//! - [`app`]: starts every part (failing fast), serves, shuts down in order.
//! - Leaves: [`clock`] (wall clock, `Now`, durations for people),
//!   [`error`], [`stats`] (counters), [`notification`] (events, incident
//!   ids, the notification record), [`schedule`] (`every` and cron),
//!   `deadlines` (the ordered deadline index), [`config`] (the TOML, with
//!   errors naming file, key and reason), [`keys`] (CURVE key files),
//!   `printable` (control characters escaped for people).
//! - [`registry`]: per-job state and the rules that turn messages and
//!   passed deadlines into notifications (pure: time comes in as [`clock::Now`]).
//! - [`checker`]: the loop that owns the registry, takes messages and
//!   queries, and sleeps until the next deadline.
//! - `receive`: the PULL socket on its own thread, decoding and counting;
//!   `rate_limit`: messages a second per job and sender; `ingest_guard`:
//!   the limits on its connections.
//! - [`notify`]: the dispatcher, the notification log, the outbox replay
//!   and the channels (email, ZeroMQ PUB, webhook, command); `store`: the
//!   state database (outbox, notification log, job state) on its own thread.
//! - [`farm`]: watcher farms: gossip membership, shared evidence, the
//!   ledger (who sent, delivered or failed each notification), and the gate that ranks who sends (pure).
//! - [`control`]: the local control socket (`status`, silences); `http`:
//!   the API, `/metrics` and the status page; `accept`: the connection caps
//!   both share; `reload`: SIGHUP, the configuration read again without
//!   losing state; `demo`: the built-in demo sender.
//!
//! # Words
//! - *log*: the process's own lines (tracing, on stderr), nothing else.
//! - *notification log*: this watcher's record of what it notified, in
//!   memory (exact repeats dropped) and in the state database.
//! - *ledger*: a farm's shared record of which watcher sent, delivered or
//!   failed to deliver which notification, gossiped ([`farm::ledger`]).
//!
//! # Quick start
//! ```no_run
//! # async fn example() -> Result<(), qcic_monitor::error::MonitorError> {
//! let config = qcic_monitor::config::Config::embedded()?;
//! qcic_monitor::run(config, async { let _ = tokio::signal::ctrl_c().await; }, false).await?;
//! # Ok(())
//! # }
//! ```

pub(crate) mod accept;
pub mod app;
pub mod checker;
pub mod clock;
pub mod config;
pub mod control;
pub(crate) mod deadlines;
pub(crate) mod demo;
pub mod error;
pub mod farm;
pub(crate) mod http;
pub(crate) mod ingest_guard;
pub mod keys;
pub mod notification;
pub mod notify;
pub(crate) mod printable;
pub(crate) mod rate_limit;
pub(crate) mod receive;
pub mod registry;
pub(crate) mod reload;
pub mod schedule;
pub mod stats;
pub(crate) mod store;

use std::future::Future;

use crate::config::Config;
use crate::error::MonitorError;

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

/// Runs the watcher until `shutdown` completes (see [`app::Watcher`]).
/// With `demo`, a demo sender runs against the first listen endpoint too.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()>,
    demo: bool,
) -> Result<(), MonitorError> {
    let mut watcher = app::Watcher::start(config, demo).await?;
    watcher.serve(shutdown).await?;
    watcher.shutdown().await;
    Ok(())
}
