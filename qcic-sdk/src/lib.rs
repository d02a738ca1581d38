//! qcic-sdk: the Rust sender for [qcic](https://example.invalid/qcic), a monitor
//! for batch jobs that must not fail silently.
//!
//! A job tells one or more qcic watchers that it started, progressed,
//! succeeded or failed, or simply that it is alive. Messages go out over
//! outbound-only ZeroMQ PUSH sockets, one per watcher, from a background
//! thread: no call ever blocks the job, and dropping the client at exit waits
//! at most a short, bounded time even if every watcher is unreachable.
//!
//! # Layout
//! - [`message`]: wire protocol v1 (`docs/PROTOCOL.md`): [`Message`], [`Kind`], encode and decode.
//! - [`declare`]: what a job expects of itself ([`JobSpec`], [`Expectations`]):
//!   the builder, the spec string and the wire map of `declare` messages.
//! - `client`: [`Client`] and [`ClientBuilder`]: validate, enqueue, flush, close.
//! - `run`: the [`Run`] guard; a run dropped unfinished reports `fail`.
//! - `curve`: CURVE keys ([`decode_curve_key`], [`new_curve_pair`], the `QCIC_*` key variables).
//! - `process`: fork safety: the cached pid and each process's own sender slot.
//! - `worker`: the background thread that owns the sockets, and its [`Stats`].
//! - `error`: [`Error`], the one error type.
//!
//! # Quick start
//! ```
//! use std::time::Duration;
//!
//! let client = qcic_sdk::Client::new(["tcp://127.0.0.1:7700"])?;
//! client.heartbeat("nightly-etl")?;
//!
//! let run = client.start("nightly-etl")?;
//! run.progress("extracted 1200 rows")?;
//! run.success()?; // or run.fail("disk full"); dropping it unfinished sends fail
//!
//! // Optional: bounded wait for delivery. Dropping the client does the same
//! // with a 1 s default, so a job never hangs at exit.
//! client.close(Duration::from_millis(200));
//! # Ok::<(), qcic_sdk::Error>(())
//! ```

mod client;
mod curve;
pub mod declare;
mod error;
pub mod message;
mod process;
mod run;
mod worker;

pub use client::{
    Client, ClientBuilder, DEFAULT_CLOSE_TIMEOUT, DEFAULT_QUEUE_CAPACITY, DEFAULT_SEND_HWM,
    new_run_id, parse_endpoints,
};
pub use curve::{
    ENV_CLIENT_PUBLIC_KEY, ENV_CLIENT_SECRET_KEY, ENV_SERVER_KEY, decode_curve_key, new_curve_pair,
};
pub use declare::{Expectations, JobSpec, Schedule, SpecError};
pub use error::Error;
pub use message::{DecodeError, Kind, Message, PROTOCOL_VERSION};
pub use run::Run;
pub use worker::Stats;

/// This crate's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
