/* SPDX-License-Identifier: MPL-2.0 */

#ifndef QCIC_H
#define QCIC_H

/* Generated from qcic-ffi by cbindgen 0.29.4. Do not edit: run
 *   QCIC_BLESS=1 cargo test -p qcic-ffi --test header
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QCIC_VERSION "0.1.0"
#define QCIC_VERSION_MAJOR 0
#define QCIC_VERSION_MINOR 1
#define QCIC_VERSION_PATCH 0


/**
 * The largest frame a watcher accepts; every valid message fits.
 */
#define QCIC_MAX_FRAME_LEN 2048

/**
 * A sender to one or more qcic watchers (opaque).
 *
 * Made by `qcic_client_new()`; the caller owns it and frees it with
 * `qcic_client_free()`. Thread-safe: any number of threads may use one
 * client at once. No call on it blocks on the network.
 */
typedef struct qcic_client qcic_client;

/**
 * A decoded message (opaque) and the strings its `qcic_message` view points to.
 *
 * Made by `qcic_message_decode()`; the caller owns it and frees it with
 * `qcic_decoded_free()`. Immutable, so it may be read from any thread.
 */
typedef struct qcic_decoded qcic_decoded;

/**
 * One run of a job (opaque), from `qcic_client_start()`.
 *
 * The caller owns it. `qcic_run_success()` and `qcic_run_fail()` end it and
 * free it; `qcic_run_free()` frees it and, if it was not ended, sends
 * `fail`. Thread-safe for `qcic_run_progress()`; ending or freeing it must
 * not race with other calls on the same run.
 */
typedef struct qcic_run qcic_run;

/**
 * The result of a libqcic call. `QCIC_STATUS_OK` (0) is success; every other
 * value is an error, explained by `qcic_status_message()`. Values are
 * grouped by hundreds and never renumbered: new codes only get new numbers.
 */
typedef uint32_t qcic_status;

/**
 * A message kind: its wire code (`docs/PROTOCOL.md`), never renumbered.
 */
typedef uint32_t qcic_kind;

/**
 * One protocol message, field by field (`docs/PROTOCOL.md`). Strings are
 * NUL-terminated UTF-8 (in `text`, bytes that are not UTF-8 are replaced
 * with U+FFFD); `text` NULL means absent; `has_run_id` and `has_exit_code`
 * say whether those fields are present.
 */
typedef struct {
  /**
   * A `QCIC_KIND_*` code.
   */
  qcic_kind kind;
  /**
   * The job's name.
   */
  const char *job;
  /**
   * Whether `run_id` is present.
   */
  bool has_run_id;
  /**
   * The run id.
   */
  uint64_t run_id;
  /**
   * The sender's sequence number.
   */
  uint64_t seq;
  /**
   * The sender's clock, unix milliseconds.
   */
  uint64_t ts_ms;
  /**
   * The sending host.
   */
  const char *host;
  /**
   * The sending process.
   */
  uint32_t pid;
  /**
   * Whether `exit_code` is present.
   */
  bool has_exit_code;
  /**
   * The exit code.
   */
  int32_t exit_code;
  /**
   * A short note, or NULL.
   */
  const char *text;
} qcic_message;

/**
 * Counters of what a client queued, sent and dropped (this process only: a
 * forked child starts from zero).
 */
typedef struct {
  /**
   * Messages accepted into the queue.
   */
  uint64_t queued;
  /**
   * Message copies handed to libzmq (one per watcher per message).
   */
  uint64_t sent;
  /**
   * Messages dropped because the queue was full.
   */
  uint64_t dropped_queue_full;
  /**
   * Message copies dropped because a watcher was unreachable too long.
   */
  uint64_t dropped_hwm;
  /**
   * Messages dropped because the client was closed.
   */
  uint64_t dropped_closed;
  /**
   * Message copies libzmq refused for another reason.
   */
  uint64_t send_errors;
} qcic_stats;

/**
 * A run began.
 */
#define QCIC_KIND_START 1

/**
 * A run is alive and moving.
 */
#define QCIC_KIND_PROGRESS 2

/**
 * A run ended well.
 */
#define QCIC_KIND_SUCCESS 3

/**
 * A run, or the job outside a run, failed.
 */
#define QCIC_KIND_FAIL 4

/**
 * The job is alive.
 */
#define QCIC_KIND_HEARTBEAT 5

/**
 * The job says what it expects of itself: a declaration (its spec is
 * given beside the message: `qcic_declaration_encode()`,
 * `qcic_client_send_declaration()`, `qcic_decoded_expect()`).
 */
#define QCIC_KIND_DECLARE 6

/**
 * Success.
 */
#define QCIC_STATUS_OK 0

/**
 * A required pointer argument was NULL.
 */
#define QCIC_STATUS_NULL_ARGUMENT 100

/**
 * A string argument is not valid UTF-8.
 */
#define QCIC_STATUS_INVALID_UTF8 101

/**
 * A job name breaks the protocol's rules (1-128 bytes of A-Z a-z 0-9 . _ -).
 */
#define QCIC_STATUS_INVALID_JOB 102

/**
 * The endpoint list is empty.
 */
#define QCIC_STATUS_NO_ENDPOINTS 103

/**
 * libzmq refused an endpoint (bad syntax or transport).
 */
#define QCIC_STATUS_BAD_ENDPOINT 104

/**
 * A `qcic_message` breaks the protocol's rules (kind, lengths).
 */
#define QCIC_STATUS_INVALID_MESSAGE 105

/**
 * The output buffer is too small; the size needed was written.
 */
#define QCIC_STATUS_BUFFER_TOO_SMALL 106

/**
 * A CURVE key is malformed, or the linked libzmq has no CURVE.
 */
#define QCIC_STATUS_BAD_KEY 107

/**
 * A declaration spec cannot be read: not `key=value` pairs, an unknown
 * key, an unclosed quote, or no schedule (`every` or `cron`).
 */
#define QCIC_STATUS_SPEC 110

/**
 * Declaration: bad `every` (a duration such as `10m`, at least 1ms, at most 100 years).
 */
#define QCIC_STATUS_SPEC_EVERY 111

/**
 * Declaration: bad `cron` (1-128 printable ASCII characters; not with `every`).
 */
#define QCIC_STATUS_SPEC_CRON 112

/**
 * Declaration: bad `timezone` (an IANA name; with `cron` only).
 */
#define QCIC_STATUS_SPEC_TIMEZONE 113

/**
 * Declaration: bad `grace` (a duration, at most 100 years).
 */
#define QCIC_STATUS_SPEC_GRACE 114

/**
 * Declaration: bad `start_within` (a duration, at most 100 years).
 */
#define QCIC_STATUS_SPEC_START_WITHIN 115

/**
 * Declaration: bad `max_runtime` (a duration, at most 100 years).
 */
#define QCIC_STATUS_SPEC_MAX_RUNTIME 116

/**
 * Declaration: bad `stall_after` (a duration, at most 100 years).
 */
#define QCIC_STATUS_SPEC_STALL_AFTER 117

/**
 * Declaration: bad `min_runtime` (a duration, at most 100 years).
 */
#define QCIC_STATUS_SPEC_MIN_RUNTIME 118

/**
 * Declaration: bad `alert_after_failures` (1 to 1000).
 */
#define QCIC_STATUS_SPEC_ALERT_AFTER_FAILURES 119

/**
 * Declaration: bad `recover_after_successes` (1 to 1000).
 */
#define QCIC_STATUS_SPEC_RECOVER_AFTER_SUCCESSES 120

/**
 * Declaration: bad `notify` (at most 8 comma-separated channel names of 1-64 bytes of A-Z a-z 0-9 . _ -).
 */
#define QCIC_STATUS_SPEC_NOTIFY 121

/**
 * Declaration: bad `slow_after` (a factor above 1, at most 1000, such as 3 or 2.5).
 */
#define QCIC_STATUS_SPEC_SLOW_AFTER 122

/**
 * Declaration: bad `depends_on` (at most 4 comma-separated job names, each once).
 */
#define QCIC_STATUS_SPEC_DEPENDS_ON 123

/**
 * Declaration: bad `after` (a job name; needs `start_within`).
 */
#define QCIC_STATUS_SPEC_AFTER 124

/**
 * The send queue is full: the message was dropped and counted.
 */
#define QCIC_STATUS_QUEUE_FULL 200

/**
 * The client was closed: the message was dropped and counted.
 */
#define QCIC_STATUS_CLOSED 201

/**
 * Decoding: the frame is longer than 2048 bytes.
 */
#define QCIC_STATUS_DECODE_TOO_LARGE 300

/**
 * Decoding: not a MessagePack array of the v1 shape.
 */
#define QCIC_STATUS_DECODE_MALFORMED 301

/**
 * Decoding: a protocol version this library does not know.
 */
#define QCIC_STATUS_DECODE_UNSUPPORTED_VERSION 302

/**
 * Decoding: an unknown message kind code.
 */
#define QCIC_STATUS_DECODE_UNKNOWN_KIND 303

/**
 * Decoding: a field breaks the protocol's rules, or holds a NUL byte C cannot represent.
 */
#define QCIC_STATUS_DECODE_INVALID_FIELD 304

/**
 * libzmq failed to make a socket or set an option.
 */
#define QCIC_STATUS_ZMQ 900

/**
 * The sender thread could not be started.
 */
#define QCIC_STATUS_THREAD 901

/**
 * A bug in libqcic: a Rust panic was caught at the boundary.
 */
#define QCIC_STATUS_PANIC 999

#ifdef __cplusplus
extern "C" {
#endif // __cplusplus

/**
 * The explanation of a status, as a static NUL-terminated string (never
 * NULL, never to be freed). Unknown codes give "unknown qcic status".
 */
const char *qcic_status_message(qcic_status status);

/**
 * The library's version, a static NUL-terminated string such as "0.1.0"
 * (never NULL, never to be freed).
 */
const char *qcic_version(void);

/**
 * Makes a client for a comma-separated list of watcher endpoints, e.g.
 * `"tcp://watcher-a:7700,tcp://watcher-b:7700"`: one socket per watcher,
 * so every watcher gets every message. Connecting happens in the background
 * and never waits for a watcher.
 *
 * On success writes a new client to `*client_out`; the caller owns it and
 * frees it with `qcic_client_free()`. On error `*client_out` is not written.
 * NULL `endpoints` or `client_out` returns `QCIC_STATUS_NULL_ARGUMENT`.
 *
 * # Safety
 * `endpoints` is NULL or a NUL-terminated string; `client_out` is NULL or
 * valid for writing a pointer.
 */
qcic_status qcic_client_new(const char *endpoints, qcic_client **client_out);

/**
 * Like `qcic_client_new()`, with the endpoints from the environment
 * variable `QCIC_ENDPOINTS`. Returns `QCIC_STATUS_NO_ENDPOINTS` if it is
 * unset or empty.
 *
 * # Safety
 * `client_out` is NULL or valid for writing a pointer.
 */
qcic_status qcic_client_new_from_env(qcic_client **client_out);

/**
 * Like `qcic_client_new()`, with CURVE: `server_key` is the watchers'
 * public key (40 Z85 characters, from `qcic-monitor keygen`); the sender's
 * own key pair is `client_public_key` and `client_secret_key`, or, if both
 * are NULL, a fresh pair. (`qcic_client_new()` does the same from the
 * environment variables `QCIC_SERVER_KEY`, `QCIC_CLIENT_PUBLIC_KEY` and
 * `QCIC_CLIENT_SECRET_KEY`.) A malformed key returns `QCIC_STATUS_BAD_KEY`.
 * NULL `endpoints`, `server_key` or `client_out`, or only one of the client
 * keys, returns `QCIC_STATUS_NULL_ARGUMENT`. Ownership as for `qcic_client_new()`.
 *
 * # Safety
 * The strings are NULL or NUL-terminated; `client_out` is NULL or valid for writing a pointer.
 */
qcic_status qcic_client_new_with_keys(const char *endpoints,
                                      const char *server_key,
                                      const char *client_public_key,
                                      const char *client_secret_key,
                                      qcic_client **client_out);

/**
 * Says the job is alive. Never blocks: if the queue is full the message is
 * dropped, counted, and `QCIC_STATUS_QUEUE_FULL` returned.
 * NULL `client` or `job` returns `QCIC_STATUS_NULL_ARGUMENT`.
 *
 * # Safety
 * `client` is NULL or a live client; `job` is NULL or a NUL-terminated string.
 */
qcic_status qcic_client_heartbeat(qcic_client *client, const char *job);

/**
 * Reports a failure of the job outside any run, with an optional reason
 * (NULL: none; cut to 1024 bytes; bytes that are not UTF-8 are replaced
 * with U+FFFD, the failure is still sent). NULL `client` or `job` returns
 * `QCIC_STATUS_NULL_ARGUMENT`.
 *
 * # Safety
 * `client` is NULL or a live client; `job` and `text` are NULL or NUL-terminated strings.
 */
qcic_status qcic_client_fail(qcic_client *client, const char *job, const char *text);

/**
 * Begins a run of `job` and sends `start`.
 *
 * On success writes a new run to `*run_out`; the caller owns it and ends it
 * with `qcic_run_success()` or `qcic_run_fail()` (which free it), or frees
 * it with `qcic_run_free()` (which sends `fail`). A full queue still gives a
 * run (the `start` is dropped and counted) so the job's end is reported.
 * NULL `client`, `job` or `run_out` returns `QCIC_STATUS_NULL_ARGUMENT`, and
 * on any error `*run_out` is not written.
 *
 * # Safety
 * `client` is NULL or a live client; `job` is NULL or a NUL-terminated
 * string; `run_out` is NULL or valid for writing a pointer.
 */
qcic_status qcic_client_start(qcic_client *client, const char *job, qcic_run **run_out);

/**
 * Sends a message exactly as given: every field, including `seq`, `ts_ms`,
 * `host` and `pid`, is the caller's. For bridges relaying other programs'
 * messages and for checking the wire format. Returns
 * `QCIC_STATUS_INVALID_MESSAGE` if it breaks the protocol's rules.
 * NULL `client` or `message` returns `QCIC_STATUS_NULL_ARGUMENT`.
 *
 * # Safety
 * `client` is NULL or a live client; `message` is NULL or points to a
 * `qcic_message` whose strings are NULL or NUL-terminated.
 */
qcic_status qcic_client_send(qcic_client *client, const qcic_message *message);

/**
 * Declares what `job` expects of itself, so that a watcher whose
 * `[declare]` policy allows it watches the job without a `[[job]]` in its
 * configuration. `spec` holds `key=value` pairs split as a POSIX shell
 * would: `"every=1d grace=1h max_runtime=2h"`, or
 * `"cron='30 2 * * 1-5' timezone=Europe/London"`. Keys: `every` or `cron`
 * (exactly one), `timezone` (with `cron`), the durations `grace`,
 * `start_within`, `max_runtime`, `stall_after`, `min_runtime` (`90s`,
 * `1h30m`, `1d`), the counts `alert_after_failures` and
 * `recover_after_successes`, `notify` (channel names joined by
 * commas), `slow_after` (a factor such as `3` or `2.5`), `depends_on`
 * (at most 4 job names joined by commas: their `down` or `failed` holds
 * this job's alarms back) and `after` (a job name: a start is due
 * `start_within` after each of its successes). A bad spec sends nothing and returns the `QCIC_STATUS_SPEC_*`
 * code naming its key (`QCIC_STATUS_SPEC` when it cannot be read at all).
 * The declaration is sent again before the job's next message after each
 * reconnection to a watcher, and at most every 5 minutes. Never blocks.
 * NULL `client`, `job` or `spec` returns `QCIC_STATUS_NULL_ARGUMENT`.
 *
 * # Safety
 * `client` is NULL or a live client; `job` and `spec` are NULL or NUL-terminated strings.
 */
qcic_status qcic_client_declare(qcic_client *client,
                                const char *job,
                                const char *spec);

/**
 * Sends a declaration exactly as given (as `qcic_client_send()` does a
 * message): `message` of kind `QCIC_KIND_DECLARE` with its expectations in
 * `spec` (as for `qcic_client_declare()`). For bridges and for checking
 * the wire format.
 *
 * # Safety
 * As for `qcic_client_send()`; `spec` is NULL or NUL-terminated.
 */
qcic_status qcic_client_send_declaration(qcic_client *client,
                                         const qcic_message *message,
                                         const char *spec);

/**
 * Waits up to `timeout_ms` until every message queued before the call has
 * been handed to libzmq for every watcher. Returns whether it was; false
 * for a NULL `client`.
 *
 * # Safety
 * `client` is NULL or a live client.
 */
bool qcic_client_flush(qcic_client *client, uint32_t timeout_ms);

/**
 * Stops sending: what is queued is handed over and libzmq gets what is left
 * of `timeout_ms` to deliver it. Returns true only if everything was
 * delivered. Later sends return `QCIC_STATUS_CLOSED`. The handle stays
 * valid and must still be freed. False for a NULL `client`.
 *
 * # Safety
 * `client` is NULL or a live client.
 */
bool qcic_client_close(qcic_client *client, uint32_t timeout_ms);

/**
 * Writes the client's counters to `*stats_out`.
 * NULL `client` or `stats_out` returns `QCIC_STATUS_NULL_ARGUMENT`.
 *
 * # Safety
 * `client` is NULL or a live client; `stats_out` is NULL or valid for writing a `qcic_stats`.
 */
qcic_status qcic_client_stats(const qcic_client *client, qcic_stats *stats_out);

/**
 * Closes the client, waiting at most the default bound (1 s) for delivery,
 * and frees it. Runs still alive keep their own handles (their later sends
 * return `QCIC_STATUS_CLOSED`) and must still be freed. NULL is a no-op.
 *
 * # Safety
 * `client` is NULL or a live client, not used again after this call.
 */
void qcic_client_free(qcic_client *client);

/**
 * Encodes a declaration: `message` (kind `QCIC_KIND_DECLARE`; its
 * `exit_code` and `text` absent) with the expectations in `spec` (as for
 * `qcic_client_declare()`). Otherwise as `qcic_message_encode()`; a bad
 * spec returns the `QCIC_STATUS_SPEC_*` code naming its key.
 *
 * # Safety
 * As for `qcic_message_encode()`; `spec` is NULL or NUL-terminated.
 */
qcic_status qcic_declaration_encode(const qcic_message *message,
                                    const char *spec,
                                    uint8_t *buf,
                                    size_t buf_len,
                                    size_t *written_out);

/**
 * Encodes `message` into `buf` (canonical v1 frame). Writes the frame's
 * length to `*written_out` on success, or the length needed with
 * `QCIC_STATUS_BUFFER_TOO_SMALL` (`buf` may be NULL when `buf_len` is 0, to
 * ask for the size; `QCIC_MAX_FRAME_LEN` always suffices).
 * NULL `message` or `written_out` returns `QCIC_STATUS_NULL_ARGUMENT`.
 *
 * # Safety
 * `message` as for `qcic_client_send()`; `buf` is valid for writing
 * `buf_len` bytes (or NULL with `buf_len` 0); `written_out` is NULL or valid
 * for writing a `size_t`.
 */
qcic_status qcic_message_encode(const qcic_message *message,
                                uint8_t *buf,
                                size_t buf_len,
                                size_t *written_out);

/**
 * Decodes and validates one frame of `len` bytes. On success writes a new
 * `qcic_decoded` to `*decoded_out` (free it with `qcic_decoded_free()`); on
 * error returns a `QCIC_STATUS_DECODE_*` code and writes nothing. A string
 * holding a NUL byte (valid on the wire, not representable in C) gives
 * `QCIC_STATUS_DECODE_INVALID_FIELD`. NULL `buf` (with `len` > 0) or
 * `decoded_out` returns `QCIC_STATUS_NULL_ARGUMENT`.
 *
 * # Safety
 * `buf` is valid for reading `len` bytes; `decoded_out` is NULL or valid for writing a pointer.
 */
qcic_status qcic_message_decode(const uint8_t *buf, size_t len, qcic_decoded **decoded_out);

/**
 * The message inside a `qcic_decoded`, valid until it is freed; NULL for NULL.
 *
 * # Safety
 * `decoded` is NULL or a live `qcic_decoded`.
 */
const qcic_message *qcic_decoded_message(const qcic_decoded *decoded);

/**
 * A decoded declaration's expectations as a spec string in its canonical
 * form (`every=1d grace=1h`, see `qcic_client_declare()`), valid until
 * `decoded` is freed; NULL for any other kind, and for NULL.
 *
 * # Safety
 * `decoded` is NULL or a live `qcic_decoded`.
 */
const char *qcic_decoded_expect(const qcic_decoded *decoded);

/**
 * Frees a `qcic_decoded`. NULL is a no-op.
 *
 * # Safety
 * `decoded` is NULL or a live `qcic_decoded`, not used again after this call.
 */
void qcic_decoded_free(qcic_decoded *decoded);

/**
 * Reports that the run is alive, with a short note (cut to 1024 bytes;
 * bytes that are not UTF-8 are replaced with U+FFFD). NULL `run` or `text`
 * returns `QCIC_STATUS_NULL_ARGUMENT`.
 *
 * # Safety
 * `run` is NULL or a live run; `text` is NULL or a NUL-terminated string.
 */
qcic_status qcic_run_progress(qcic_run *run, const char *text);

/**
 * The run id carried by this run's messages; 0 for NULL.
 *
 * # Safety
 * `run` is NULL or a live run.
 */
uint64_t qcic_run_id(const qcic_run *run);

/**
 * Ends the run well, sends `success` and frees the run. NULL `run` returns
 * `QCIC_STATUS_NULL_ARGUMENT`. The run is freed whatever the status.
 *
 * # Safety
 * `run` is NULL or a live run, not used again after this call.
 */
qcic_status qcic_run_success(qcic_run *run);

/**
 * Ends the run as failed with a reason (NULL: none; cut to 1024 bytes;
 * bytes that are not UTF-8 are replaced with U+FFFD, the failure is still
 * sent), sends `fail` and frees the run. NULL `run` returns
 * `QCIC_STATUS_NULL_ARGUMENT`. The run is freed whatever the status.
 *
 * # Safety
 * `run` is NULL or a live run, not used again after this call; `text` is
 * NULL or a NUL-terminated string.
 */
qcic_status qcic_run_fail(qcic_run *run, const char *text);

/**
 * Like `qcic_run_fail()`, with a process exit code.
 *
 * # Safety
 * As for `qcic_run_fail()`.
 */
qcic_status qcic_run_fail_with_code(qcic_run *run, int32_t exit_code, const char *text);

/**
 * Frees the run; if it was not ended, sends `fail` ("run dropped without
 * success or fail") first. NULL is a no-op.
 *
 * # Safety
 * `run` is NULL or a live run, not used again after this call.
 */
void qcic_run_free(qcic_run *run);

#ifdef __cplusplus
}  // extern "C"
#endif  // __cplusplus

#endif  /* QCIC_H */
