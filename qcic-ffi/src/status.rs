//! Status codes: the ABI's error channel.

use std::ffi::c_char;

use qcic_sdk::{DecodeError, Error, SpecError};

/// The result of a libqcic call. `QCIC_STATUS_OK` (0) is success; every other
/// value is an error, explained by `qcic_status_message()`. Values are
/// grouped by hundreds and never renumbered: new codes only get new numbers.
pub type qcic_status = u32;

/// Success.
pub const QCIC_STATUS_OK: qcic_status = 0;

/// A required pointer argument was NULL.
pub const QCIC_STATUS_NULL_ARGUMENT: qcic_status = 100;
/// A string argument is not valid UTF-8.
pub const QCIC_STATUS_INVALID_UTF8: qcic_status = 101;
/// A job name breaks the protocol's rules (1-128 bytes of A-Z a-z 0-9 . _ -).
pub const QCIC_STATUS_INVALID_JOB: qcic_status = 102;
/// The endpoint list is empty.
pub const QCIC_STATUS_NO_ENDPOINTS: qcic_status = 103;
/// libzmq refused an endpoint (bad syntax or transport).
pub const QCIC_STATUS_BAD_ENDPOINT: qcic_status = 104;
/// A `qcic_message` breaks the protocol's rules (kind, lengths).
pub const QCIC_STATUS_INVALID_MESSAGE: qcic_status = 105;
/// The output buffer is too small; the size needed was written.
pub const QCIC_STATUS_BUFFER_TOO_SMALL: qcic_status = 106;
/// A CURVE key is malformed, or the linked libzmq has no CURVE.
pub const QCIC_STATUS_BAD_KEY: qcic_status = 107;

/// A declaration spec cannot be read: not `key=value` pairs, an unknown
/// key, an unclosed quote, or no schedule (`every` or `cron`).
pub const QCIC_STATUS_SPEC: qcic_status = 110;
/// Declaration: bad `every` (a duration such as `10m`, at least 1ms, at most 100 years).
pub const QCIC_STATUS_SPEC_EVERY: qcic_status = 111;
/// Declaration: bad `cron` (1-128 printable ASCII characters; not with `every`).
pub const QCIC_STATUS_SPEC_CRON: qcic_status = 112;
/// Declaration: bad `timezone` (an IANA name; with `cron` only).
pub const QCIC_STATUS_SPEC_TIMEZONE: qcic_status = 113;
/// Declaration: bad `grace` (a duration, at most 100 years).
pub const QCIC_STATUS_SPEC_GRACE: qcic_status = 114;
/// Declaration: bad `start_within` (a duration, at most 100 years).
pub const QCIC_STATUS_SPEC_START_WITHIN: qcic_status = 115;
/// Declaration: bad `max_runtime` (a duration, at most 100 years).
pub const QCIC_STATUS_SPEC_MAX_RUNTIME: qcic_status = 116;
/// Declaration: bad `stall_after` (a duration, at most 100 years).
pub const QCIC_STATUS_SPEC_STALL_AFTER: qcic_status = 117;
/// Declaration: bad `min_runtime` (a duration, at most 100 years).
pub const QCIC_STATUS_SPEC_MIN_RUNTIME: qcic_status = 118;
/// Declaration: bad `alert_after_failures` (1 to 1000).
pub const QCIC_STATUS_SPEC_ALERT_AFTER_FAILURES: qcic_status = 119;
/// Declaration: bad `recover_after_successes` (1 to 1000).
pub const QCIC_STATUS_SPEC_RECOVER_AFTER_SUCCESSES: qcic_status = 120;
/// Declaration: bad `notify` (at most 8 comma-separated channel names of 1-64 bytes of A-Z a-z 0-9 . _ -).
pub const QCIC_STATUS_SPEC_NOTIFY: qcic_status = 121;
/// Declaration: bad `slow_after` (a factor above 1, at most 1000, such as 3 or 2.5).
pub const QCIC_STATUS_SPEC_SLOW_AFTER: qcic_status = 122;
/// Declaration: bad `depends_on` (at most 4 comma-separated job names, each once).
pub const QCIC_STATUS_SPEC_DEPENDS_ON: qcic_status = 123;
/// Declaration: bad `after` (a job name; needs `start_within`).
pub const QCIC_STATUS_SPEC_AFTER: qcic_status = 124;

/// The send queue is full: the message was dropped and counted.
pub const QCIC_STATUS_QUEUE_FULL: qcic_status = 200;
/// The client was closed: the message was dropped and counted.
pub const QCIC_STATUS_CLOSED: qcic_status = 201;

/// Decoding: the frame is longer than 2048 bytes.
pub const QCIC_STATUS_DECODE_TOO_LARGE: qcic_status = 300;
/// Decoding: not a MessagePack array of the v1 shape.
pub const QCIC_STATUS_DECODE_MALFORMED: qcic_status = 301;
/// Decoding: a protocol version this library does not know.
pub const QCIC_STATUS_DECODE_UNSUPPORTED_VERSION: qcic_status = 302;
/// Decoding: an unknown message kind code.
pub const QCIC_STATUS_DECODE_UNKNOWN_KIND: qcic_status = 303;
/// Decoding: a field breaks the protocol's rules, or holds a NUL byte C cannot represent.
pub const QCIC_STATUS_DECODE_INVALID_FIELD: qcic_status = 304;

/// libzmq failed to make a socket or set an option.
pub const QCIC_STATUS_ZMQ: qcic_status = 900;
/// The sender thread could not be started.
pub const QCIC_STATUS_THREAD: qcic_status = 901;
/// A bug in libqcic: a Rust panic was caught at the boundary.
pub const QCIC_STATUS_PANIC: qcic_status = 999;

/// Every status with its explanation, in code order.
pub(crate) const MESSAGES: &[(qcic_status, &str)] = &[
    (QCIC_STATUS_OK, "ok\0"),
    (
        QCIC_STATUS_NULL_ARGUMENT,
        "a required pointer argument was NULL\0",
    ),
    (
        QCIC_STATUS_INVALID_UTF8,
        "a string argument is not valid UTF-8\0",
    ),
    (
        QCIC_STATUS_INVALID_JOB,
        "invalid job name: use 1-128 bytes of A-Z a-z 0-9 . _ -\0",
    ),
    (QCIC_STATUS_NO_ENDPOINTS, "no watcher endpoint given\0"),
    (
        QCIC_STATUS_BAD_ENDPOINT,
        "libzmq refused a watcher endpoint\0",
    ),
    (
        QCIC_STATUS_INVALID_MESSAGE,
        "the message breaks the protocol's rules\0",
    ),
    (
        QCIC_STATUS_BUFFER_TOO_SMALL,
        "the output buffer is too small\0",
    ),
    (
        QCIC_STATUS_BAD_KEY,
        "a CURVE key is malformed, or the linked libzmq has no CURVE\0",
    ),
    (
        QCIC_STATUS_SPEC,
        "declaration: the spec cannot be read (key=value pairs; every or cron required)\0",
    ),
    (
        QCIC_STATUS_SPEC_EVERY,
        "declaration: bad every (a duration such as 10m, 1ms to 100 years)\0",
    ),
    (
        QCIC_STATUS_SPEC_CRON,
        "declaration: bad cron (1-128 printable ASCII characters, not with every)\0",
    ),
    (
        QCIC_STATUS_SPEC_TIMEZONE,
        "declaration: bad timezone (an IANA name, with cron only)\0",
    ),
    (
        QCIC_STATUS_SPEC_GRACE,
        "declaration: bad grace (a duration, at most 100 years)\0",
    ),
    (
        QCIC_STATUS_SPEC_START_WITHIN,
        "declaration: bad start_within (a duration, at most 100 years)\0",
    ),
    (
        QCIC_STATUS_SPEC_MAX_RUNTIME,
        "declaration: bad max_runtime (a duration, at most 100 years)\0",
    ),
    (
        QCIC_STATUS_SPEC_STALL_AFTER,
        "declaration: bad stall_after (a duration, at most 100 years)\0",
    ),
    (
        QCIC_STATUS_SPEC_MIN_RUNTIME,
        "declaration: bad min_runtime (a duration, at most 100 years)\0",
    ),
    (
        QCIC_STATUS_SPEC_ALERT_AFTER_FAILURES,
        "declaration: bad alert_after_failures (1 to 1000)\0",
    ),
    (
        QCIC_STATUS_SPEC_RECOVER_AFTER_SUCCESSES,
        "declaration: bad recover_after_successes (1 to 1000)\0",
    ),
    (
        QCIC_STATUS_SPEC_NOTIFY,
        "declaration: bad notify (at most 8 channel names of A-Z a-z 0-9 . _ -)\0",
    ),
    (
        QCIC_STATUS_SPEC_SLOW_AFTER,
        "declaration: bad slow_after (a factor above 1, at most 1000)\0",
    ),
    (
        QCIC_STATUS_SPEC_DEPENDS_ON,
        "declaration: bad depends_on (at most 4 job names, each once)\0",
    ),
    (
        QCIC_STATUS_SPEC_AFTER,
        "declaration: bad after (a job name; needs start_within)\0",
    ),
    (
        QCIC_STATUS_QUEUE_FULL,
        "send queue full: the message was dropped and counted\0",
    ),
    (
        QCIC_STATUS_CLOSED,
        "the client is closed: the message was dropped and counted\0",
    ),
    (
        QCIC_STATUS_DECODE_TOO_LARGE,
        "frame longer than 2048 bytes\0",
    ),
    (QCIC_STATUS_DECODE_MALFORMED, "malformed frame\0"),
    (
        QCIC_STATUS_DECODE_UNSUPPORTED_VERSION,
        "unsupported protocol version\0",
    ),
    (QCIC_STATUS_DECODE_UNKNOWN_KIND, "unknown message kind\0"),
    (
        QCIC_STATUS_DECODE_INVALID_FIELD,
        "a field breaks the protocol's rules\0",
    ),
    (QCIC_STATUS_ZMQ, "libzmq failed\0"),
    (QCIC_STATUS_THREAD, "cannot start the sender thread\0"),
    (
        QCIC_STATUS_PANIC,
        "internal error in libqcic (caught panic)\0",
    ),
];

const UNKNOWN: &str = "unknown qcic status\0";

pub(crate) fn message(status: qcic_status) -> *const c_char {
    MESSAGES
        .iter()
        .find(|(code, _)| *code == status)
        .map_or(UNKNOWN, |(_, text)| text)
        .as_ptr()
        .cast()
}

/// The status for an SDK error; exhaustive, so a new SDK error must be mapped here.
pub(crate) fn of_error(err: &Error) -> qcic_status {
    match err {
        Error::NoEndpoints => QCIC_STATUS_NO_ENDPOINTS,
        Error::Endpoint { .. } => QCIC_STATUS_BAD_ENDPOINT,
        Error::Zmq(_) => QCIC_STATUS_ZMQ,
        Error::Thread(_) => QCIC_STATUS_THREAD,
        Error::Key(_) => QCIC_STATUS_BAD_KEY,
        Error::InvalidJob { .. } => QCIC_STATUS_INVALID_JOB,
        Error::InvalidMessage(_) => QCIC_STATUS_INVALID_MESSAGE,
        Error::InvalidSpec(spec) => of_spec_error(spec),
        Error::QueueFull => QCIC_STATUS_QUEUE_FULL,
        Error::Closed => QCIC_STATUS_CLOSED,
    }
}

/// The status for a decoding error; exhaustive.
pub(crate) fn of_decode_error(err: &DecodeError) -> qcic_status {
    match err {
        DecodeError::TooLarge { .. } => QCIC_STATUS_DECODE_TOO_LARGE,
        DecodeError::Malformed(_) => QCIC_STATUS_DECODE_MALFORMED,
        DecodeError::UnsupportedVersion(_) => QCIC_STATUS_DECODE_UNSUPPORTED_VERSION,
        DecodeError::UnknownKind(_) => QCIC_STATUS_DECODE_UNKNOWN_KIND,
        DecodeError::InvalidField { .. } | DecodeError::InvalidExpect(_) => {
            QCIC_STATUS_DECODE_INVALID_FIELD
        }
    }
}

/// The status naming the key of a bad declaration.
pub(crate) fn of_spec_error(err: &SpecError) -> qcic_status {
    match err.key {
        "every" => QCIC_STATUS_SPEC_EVERY,
        "cron" => QCIC_STATUS_SPEC_CRON,
        "timezone" => QCIC_STATUS_SPEC_TIMEZONE,
        "grace" => QCIC_STATUS_SPEC_GRACE,
        "start_within" => QCIC_STATUS_SPEC_START_WITHIN,
        "max_runtime" => QCIC_STATUS_SPEC_MAX_RUNTIME,
        "stall_after" => QCIC_STATUS_SPEC_STALL_AFTER,
        "min_runtime" => QCIC_STATUS_SPEC_MIN_RUNTIME,
        "alert_after_failures" => QCIC_STATUS_SPEC_ALERT_AFTER_FAILURES,
        "recover_after_successes" => QCIC_STATUS_SPEC_RECOVER_AFTER_SUCCESSES,
        "notify" => QCIC_STATUS_SPEC_NOTIFY,
        "slow_after" => QCIC_STATUS_SPEC_SLOW_AFTER,
        "depends_on" => QCIC_STATUS_SPEC_DEPENDS_ON,
        "after" => QCIC_STATUS_SPEC_AFTER,
        _ => QCIC_STATUS_SPEC,
    }
}

pub(crate) fn result(r: Result<(), Error>) -> qcic_status {
    match r {
        Ok(()) => QCIC_STATUS_OK,
        Err(err) => of_error(&err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_is_nul_terminated_and_codes_are_unique() {
        let mut codes: Vec<qcic_status> = MESSAGES.iter().map(|(c, _)| *c).collect();
        assert!(
            MESSAGES
                .iter()
                .all(|(_, m)| m.ends_with('\0') && m.matches('\0').count() == 1)
        );
        codes.dedup();
        assert_eq!(codes.len(), MESSAGES.len());
        assert!(codes.windows(2).all(|w| w[0] < w[1]), "kept in code order");
    }

    #[test]
    fn every_declaration_key_has_its_own_status() {
        let mut seen = std::collections::BTreeSet::new();
        for key in qcic_sdk::declare::KEYS {
            let status = of_spec_error(&SpecError {
                key,
                reason: String::new(),
            });
            assert!((111..=124).contains(&status), "{key}");
            assert!(seen.insert(status), "{key} shares a status");
        }
    }
}
