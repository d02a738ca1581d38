//! qcic-monitor: the watcher. It binds a ZeroMQ PULL endpoint, knows which
//! messages it expects from which jobs and by when, and notifies (email,
//! ZeroMQ PUB, webhook, command) when one does not arrive in time, when a
//! job reports a failure, when a run overruns, and again when the trouble
//! is over.
//!
//! # Layout
//! One line per module. Dependencies point down this list: leaves first,
//! then the state machine, its store, the loop that drives it, and the
//! parts around it; [`app`] wires them.
//!
//! Leaves:
//! - [`clock`]: the wall clock, `Now` (an instant and its wall time), durations for people.
//! - [`error`]: `MonitorError`, every start-up and run-time failure, naming what failed.
//! - [`stats`]: the process-wide counters, drop reasons and the farm peers' liveness.
//! - `log_limit`: a warning a flood could repeat, logged at most once per interval.
//! - `printable`: control characters escaped wherever a sender's text reaches a person.
//! - [`notification`]: events, incident ids and the notification record.
//! - [`schedule`]: `every` and cron (with time zones): the next due time.
//! - `deadlines`: the ordered index of every job's next deadline.
//! - [`keys`]: CURVE key files (`keygen`, reading public and secret keys).
//! - [`config`]: the TOML, its defaults and checks, errors naming file, key and reason.
//! - `watched`: the watched jobs as the receive thread sees them (hashes), to tell proven connections.
//!
//! The state machine and what keeps it:
//! - [`registry`]: per-job state and the rules that turn messages and passed deadlines into notifications (pure).
//! - `store`: the state database (outbox, notification log, job state) on its own thread.
//!
//! The loop, and the parts around it:
//! - `checker`: owns the registry; takes messages, evidence and queries; sleeps until the next deadline.
//! - `receive`: the PULL socket on its own thread: decoding, counting, handing batches to the checker.
//! - `rate_limit`: messages a second per job and sender.
//! - `ingest_guard`: the limits on the PULL socket's connections.
//! - [`template`]: notification templates (minijinja), checked with a sample at configuration time.
//! - [`notify`]: the dispatcher, the notification log, the outbox replay and the channels.
//! - [`farm`]: watcher farms: gossip, shared evidence, the ledger, and the gate that ranks who sends.
//! - `accept`: the connection caps the control socket and HTTP share.
//! - [`control`]: the local control socket (`status`, silences) and its client.
//! - `http`: the API, `/metrics` and the status page.
//! - `reload`: SIGHUP: the configuration read again without losing state.
//! - `demo`: the built-in demo sender.
//! - [`app`]: starts every part (failing fast), serves, shuts down in order.
//! - `main.rs`: the command line; parses, starts tracing, calls [`run`].
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
pub(crate) mod api_guard;
pub(crate) mod api_write;
pub mod app;
pub(crate) mod checker;
pub mod clock;
pub mod config;
pub mod control;
pub(crate) mod deadlines;
pub(crate) mod demo;
pub mod error;
pub mod farm;
pub mod history;
pub(crate) mod http;
pub(crate) mod ingest_guard;
pub mod keys;
pub(crate) mod log_limit;
pub(crate) mod metrics;
pub mod notification;
pub mod notify;
pub mod pages;
pub(crate) mod printable;
pub(crate) mod rate_limit;
pub(crate) mod receive;
pub mod registry;
pub(crate) mod reload;
pub mod schedule;
pub mod stats;
pub(crate) mod store;
pub mod template;
pub(crate) mod watched;

use std::future::Future;

use crate::config::Config;
use crate::error::MonitorError;

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

pub use app::{EXIT_PANIC, exit_on_panic};
