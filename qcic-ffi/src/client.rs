//! `qcic_client`: the sender handle.

use std::ffi::c_char;
use std::time::Duration;

use qcic_sdk::{Client, DEFAULT_CLOSE_TIMEOUT, parse_endpoints};

use crate::boundary::{guard, opt_str_arg, opt_text_arg, str_arg, try_status};
use crate::message::{message_from_c, qcic_message};
use crate::run::qcic_run;
use crate::status::{
    self, QCIC_STATUS_NULL_ARGUMENT, QCIC_STATUS_OK, QCIC_STATUS_PANIC, qcic_status,
};

/// A sender to one or more qcic watchers (opaque).
///
/// Made by `qcic_client_new()`; the caller owns it and frees it with
/// `qcic_client_free()`. Thread-safe: any number of threads may use one
/// client at once. No call on it blocks on the network.
#[derive(Debug)]
pub struct qcic_client {
    pub(crate) client: Client,
}

/// Counters of what a client queued, sent and dropped (this process only: a
/// forked child starts from zero).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct qcic_stats {
    /// Messages accepted into the queue.
    pub queued: u64,
    /// Message copies handed to libzmq (one per watcher per message).
    pub sent: u64,
    /// Messages dropped because the queue was full.
    pub dropped_queue_full: u64,
    /// Message copies dropped because a watcher was unreachable too long.
    pub dropped_hwm: u64,
    /// Messages dropped because the client was closed.
    pub dropped_closed: u64,
    /// Message copies libzmq refused for another reason.
    pub send_errors: u64,
}

/// Makes a client for a comma-separated list of watcher endpoints, e.g.
/// `"tcp://watcher-a:7700,tcp://watcher-b:7700"`: one socket per watcher,
/// so every watcher gets every message. Connecting happens in the background
/// and never waits for a watcher.
///
/// On success writes a new client to `*client_out`; the caller owns it and
/// frees it with `qcic_client_free()`. On error `*client_out` is not written.
/// NULL `endpoints` or `client_out` returns `QCIC_STATUS_NULL_ARGUMENT`.
///
/// # Safety
/// `endpoints` is NULL or a NUL-terminated string; `client_out` is NULL or
/// valid for writing a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn qcic_client_new(
    endpoints: *const c_char,
    client_out: *mut *mut qcic_client,
) -> qcic_status {
    guard(QCIC_STATUS_PANIC, || {
        if client_out.is_null() {
            return QCIC_STATUS_NULL_ARGUMENT;
        }
        // SAFETY: per this function's contract.
        let endpoints = try_status!(unsafe { str_arg(endpoints) });
        // SAFETY: client_out checked non-NULL above; valid for writes per contract.
        unsafe { hand_out(Client::new(parse_endpoints(endpoints)), client_out) }
    })
}

/// Like `qcic_client_new()`, with the endpoints from the environment
/// variable `QCIC_ENDPOINTS`. Returns `QCIC_STATUS_NO_ENDPOINTS` if it is
/// unset or empty.
///
/// # Safety
/// `client_out` is NULL or valid for writing a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn qcic_client_new_from_env(
    client_out: *mut *mut qcic_client,
) -> qcic_status {
    guard(QCIC_STATUS_PANIC, || {
        if client_out.is_null() {
            return QCIC_STATUS_NULL_ARGUMENT;
        }
        let endpoints = std::env::var("QCIC_ENDPOINTS").unwrap_or_default();
        // SAFETY: client_out checked non-NULL above; valid for writes per contract.
        unsafe { hand_out(Client::new(parse_endpoints(&endpoints)), client_out) }
    })
}

/// Like `qcic_client_new()`, with CURVE: `server_key` is the watchers'
/// public key (40 Z85 characters, from `qcic-monitor keygen`); the sender's
/// own key pair is `client_public_key` and `client_secret_key`, or, if both
/// are NULL, a fresh pair. (`qcic_client_new()` does the same from the
/// environment variables `QCIC_SERVER_KEY`, `QCIC_CLIENT_PUBLIC_KEY` and
/// `QCIC_CLIENT_SECRET_KEY`.) A malformed key returns `QCIC_STATUS_BAD_KEY`.
/// NULL `endpoints`, `server_key` or `client_out`, or only one of the client
/// keys, returns `QCIC_STATUS_NULL_ARGUMENT`. Ownership as for `qcic_client_new()`.
///
/// # Safety
/// The strings are NULL or NUL-terminated; `client_out` is NULL or valid for writing a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn qcic_client_new_with_keys(
    endpoints: *const c_char,
    server_key: *const c_char,
    client_public_key: *const c_char,
    client_secret_key: *const c_char,
    client_out: *mut *mut qcic_client,
) -> qcic_status {
    guard(QCIC_STATUS_PANIC, || {
        if client_out.is_null() {
            return QCIC_STATUS_NULL_ARGUMENT;
        }
        // SAFETY: per this function's contract.
        let endpoints = try_status!(unsafe { str_arg(endpoints) });
        // SAFETY: per this function's contract.
        let server_key = try_status!(unsafe { str_arg(server_key) });
        // SAFETY: per this function's contract.
        let public = try_status!(unsafe { opt_str_arg(client_public_key) });
        // SAFETY: per this function's contract.
        let secret = try_status!(unsafe { opt_str_arg(client_secret_key) });
        let mut builder = Client::builder()
            .endpoints(parse_endpoints(endpoints))
            .server_key(server_key);
        match (public, secret) {
            (Some(public), Some(secret)) => builder = builder.client_keys(public, secret),
            (None, None) => {}
            _ => return QCIC_STATUS_NULL_ARGUMENT,
        }
        // SAFETY: client_out checked non-NULL above; valid for writes per contract.
        unsafe { hand_out(builder.build(), client_out) }
    })
}

/// Gives a new client to the caller through `client_out`, or the error's status.
///
/// # Safety
/// `client_out` is non-NULL and valid for writing a pointer.
unsafe fn hand_out(
    result: Result<Client, qcic_sdk::Error>,
    client_out: *mut *mut qcic_client,
) -> qcic_status {
    match result {
        Ok(client) => {
            let handle = Box::into_raw(Box::new(qcic_client { client }));
            // SAFETY: per this function's contract.
            unsafe { client_out.write(handle) };
            QCIC_STATUS_OK
        }
        Err(err) => status::of_error(&err),
    }
}

/// Borrows the client behind a handle.
///
/// # Safety
/// `client` is NULL or a live handle from `qcic_client_new()`.
unsafe fn client_ref<'a>(client: *const qcic_client) -> Result<&'a Client, qcic_status> {
    // SAFETY: per this function's contract.
    unsafe { client.as_ref() }
        .map(|c| &c.client)
        .ok_or(QCIC_STATUS_NULL_ARGUMENT)
}

/// Says the job is alive. Never blocks: if the queue is full the message is
/// dropped, counted, and `QCIC_STATUS_QUEUE_FULL` returned.
/// NULL `client` or `job` returns `QCIC_STATUS_NULL_ARGUMENT`.
///
/// # Safety
/// `client` is NULL or a live client; `job` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn qcic_client_heartbeat(
    client: *mut qcic_client,
    job: *const c_char,
) -> qcic_status {
    guard(QCIC_STATUS_PANIC, || {
        // SAFETY: per this function's contract.
        let client = try_status!(unsafe { client_ref(client) });
        // SAFETY: per this function's contract.
        let job = try_status!(unsafe { str_arg(job) });
        status::result(client.heartbeat(job))
    })
}

/// Reports a failure of the job outside any run, with an optional reason
/// (NULL: none; cut to 1024 bytes; bytes that are not UTF-8 are replaced
/// with U+FFFD, the failure is still sent). NULL `client` or `job` returns
/// `QCIC_STATUS_NULL_ARGUMENT`.
///
/// # Safety
/// `client` is NULL or a live client; `job` and `text` are NULL or NUL-terminated strings.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn qcic_client_fail(
    client: *mut qcic_client,
    job: *const c_char,
    text: *const c_char,
) -> qcic_status {
    guard(QCIC_STATUS_PANIC, || {
        // SAFETY: per this function's contract.
        let client = try_status!(unsafe { client_ref(client) });
        // SAFETY: per this function's contract.
        let job = try_status!(unsafe { str_arg(job) });
        // SAFETY: per this function's contract.
        let text = try_status!(unsafe { opt_text_arg(text) });
        status::result(client.fail(job, None, text.as_deref().unwrap_or("")))
    })
}

/// Begins a run of `job` and sends `start`.
///
/// On success writes a new run to `*run_out`; the caller owns it and ends it
/// with `qcic_run_success()` or `qcic_run_fail()` (which free it), or frees
/// it with `qcic_run_free()` (which sends `fail`). A full queue still gives a
/// run (the `start` is dropped and counted) so the job's end is reported.
/// NULL `client`, `job` or `run_out` returns `QCIC_STATUS_NULL_ARGUMENT`, and
/// on any error `*run_out` is not written.
///
/// # Safety
/// `client` is NULL or a live client; `job` is NULL or a NUL-terminated
/// string; `run_out` is NULL or valid for writing a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn qcic_client_start(
    client: *mut qcic_client,
    job: *const c_char,
    run_out: *mut *mut qcic_run,
) -> qcic_status {
    guard(QCIC_STATUS_PANIC, || {
        if run_out.is_null() {
            return QCIC_STATUS_NULL_ARGUMENT;
        }
        // SAFETY: per this function's contract.
        let client = try_status!(unsafe { client_ref(client) });
        // SAFETY: per this function's contract.
        let job = try_status!(unsafe { str_arg(job) });
        match client.start(job) {
            Ok(run) => {
                let handle = Box::into_raw(Box::new(qcic_run { run: Some(run) }));
                // SAFETY: checked non-NULL above; valid for writes per contract.
                unsafe { run_out.write(handle) };
                QCIC_STATUS_OK
            }
            Err(err) => status::of_error(&err),
        }
    })
}

/// Sends a message exactly as given: every field, including `seq`, `ts_ms`,
/// `host` and `pid`, is the caller's. For bridges relaying other programs'
/// messages and for checking the wire format. Returns
/// `QCIC_STATUS_INVALID_MESSAGE` if it breaks the protocol's rules.
/// NULL `client` or `message` returns `QCIC_STATUS_NULL_ARGUMENT`.
///
/// # Safety
/// `client` is NULL or a live client; `message` is NULL or points to a
/// `qcic_message` whose strings are NULL or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn qcic_client_send(
    client: *mut qcic_client,
    message: *const qcic_message,
) -> qcic_status {
    guard(QCIC_STATUS_PANIC, || {
        // SAFETY: per this function's contract.
        let client = try_status!(unsafe { client_ref(client) });
        // SAFETY: per this function's contract.
        let message = try_status!(unsafe { message_from_c(message) });
        status::result(client.send_message(message))
    })
}

/// Declares what `job` expects of itself, so that a watcher whose
/// `[declare]` policy allows it watches the job without a `[[job]]` in its
/// configuration. `spec` holds `key=value` pairs split as a POSIX shell
/// would: `"every=1d grace=1h max_runtime=2h"`, or
/// `"cron='30 2 * * 1-5' timezone=Europe/London"`. Keys: `every` or `cron`
/// (exactly one), `timezone` (with `cron`), the durations `grace`,
/// `start_within`, `max_runtime`, `stall_after`, `min_runtime` (`90s`,
/// `1h30m`, `1d`), the counts `alert_after_failures` and
/// `recover_after_successes`, `notify` (channel names joined by
/// commas), `slow_after` (a factor such as `3` or `2.5`), `depends_on`
/// (at most 4 job names joined by commas: their `down` or `failed` holds
/// this job's alarms back) and `after` (a job name: a start is due
/// `start_within` after each of its successes). A bad spec sends nothing and returns the `QCIC_STATUS_SPEC_*`
/// code naming its key (`QCIC_STATUS_SPEC` when it cannot be read at all).
/// The declaration is sent again before the job's next message after each
/// reconnection to a watcher, and at most every 5 minutes. Never blocks.
/// NULL `client`, `job` or `spec` returns `QCIC_STATUS_NULL_ARGUMENT`.
///
/// # Safety
/// `client` is NULL or a live client; `job` and `spec` are NULL or NUL-terminated strings.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn qcic_client_declare(
    client: *mut qcic_client,
    job: *const c_char,
    spec: *const c_char,
) -> qcic_status {
    guard(QCIC_STATUS_PANIC, || {
        // SAFETY: per this function's contract.
        let client = try_status!(unsafe { client_ref(client) });
        // SAFETY: per this function's contract.
        let job = try_status!(unsafe { str_arg(job) });
        // SAFETY: per this function's contract.
        let spec = try_status!(unsafe { str_arg(spec) });
        match qcic_sdk::JobSpec::parse(job, spec) {
            Ok(spec) => status::result(client.declare(&spec)),
            Err(err) => status::of_spec_error(&err),
        }
    })
}

/// Sends a declaration exactly as given (as `qcic_client_send()` does a
/// message): `message` of kind `QCIC_KIND_DECLARE` with its expectations in
/// `spec` (as for `qcic_client_declare()`). For bridges and for checking
/// the wire format.
///
/// # Safety
/// As for `qcic_client_send()`; `spec` is NULL or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn qcic_client_send_declaration(
    client: *mut qcic_client,
    message: *const qcic_message,
    spec: *const c_char,
) -> qcic_status {
    guard(QCIC_STATUS_PANIC, || {
        // SAFETY: per this function's contract.
        let client = try_status!(unsafe { client_ref(client) });
        // SAFETY: per this function's contract.
        let message = try_status!(unsafe { crate::message::declaration_from_c(message, spec) });
        status::result(client.send_message(message))
    })
}

/// Waits up to `timeout_ms` until every message queued before the call has
/// been handed to libzmq for every watcher. Returns whether it was; false
/// for a NULL `client`.
///
/// # Safety
/// `client` is NULL or a live client.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn qcic_client_flush(client: *mut qcic_client, timeout_ms: u32) -> bool {
    guard(false, || {
        // SAFETY: per this function's contract.
        let Ok(client) = (unsafe { client_ref(client) }) else {
            return false;
        };
        client.flush(Duration::from_millis(u64::from(timeout_ms)))
    })
}

/// Stops sending: what is queued is handed over and libzmq gets what is left
/// of `timeout_ms` to deliver it. Returns true only if everything was
/// delivered. Later sends return `QCIC_STATUS_CLOSED`. The handle stays
/// valid and must still be freed. False for a NULL `client`.
///
/// # Safety
/// `client` is NULL or a live client.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn qcic_client_close(client: *mut qcic_client, timeout_ms: u32) -> bool {
    guard(false, || {
        // SAFETY: per this function's contract.
        let Ok(client) = (unsafe { client_ref(client) }) else {
            return false;
        };
        client.close(Duration::from_millis(u64::from(timeout_ms)))
    })
}

/// Writes the client's counters to `*stats_out`.
/// NULL `client` or `stats_out` returns `QCIC_STATUS_NULL_ARGUMENT`.
///
/// # Safety
/// `client` is NULL or a live client; `stats_out` is NULL or valid for writing a `qcic_stats`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn qcic_client_stats(
    client: *const qcic_client,
    stats_out: *mut qcic_stats,
) -> qcic_status {
    guard(QCIC_STATUS_PANIC, || {
        if stats_out.is_null() {
            return QCIC_STATUS_NULL_ARGUMENT;
        }
        // SAFETY: per this function's contract.
        let client = try_status!(unsafe { client_ref(client) });
        let s = client.stats();
        let out = qcic_stats {
            queued: s.queued,
            sent: s.sent,
            dropped_queue_full: s.dropped_queue_full,
            dropped_hwm: s.dropped_hwm,
            dropped_closed: s.dropped_closed,
            send_errors: s.send_errors,
        };
        // SAFETY: checked non-NULL above; valid for writes per contract.
        unsafe { stats_out.write(out) };
        QCIC_STATUS_OK
    })
}

/// Closes the client, waiting at most the default bound (1 s) for delivery,
/// and frees it. Runs still alive keep their own handles (their later sends
/// return `QCIC_STATUS_CLOSED`) and must still be freed. NULL is a no-op.
///
/// # Safety
/// `client` is NULL or a live client, not used again after this call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn qcic_client_free(client: *mut qcic_client) {
    guard((), || {
        if client.is_null() {
            return;
        }
        // SAFETY: a live handle from Box::into_raw, given back exactly once per contract.
        let handle = unsafe { Box::from_raw(client) };
        handle.client.close(DEFAULT_CLOSE_TIMEOUT);
    });
}
