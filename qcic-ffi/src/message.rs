//! `qcic_message`: the wire format for C, to encode, decode and send exact frames.

use std::ffi::{CString, c_char};
use std::ptr;

use qcic_sdk::{JobSpec, Kind, Message};

use crate::boundary::{guard, opt_text_arg, str_arg, try_status};
use crate::status::{
    self, QCIC_STATUS_BUFFER_TOO_SMALL, QCIC_STATUS_DECODE_INVALID_FIELD,
    QCIC_STATUS_INVALID_MESSAGE, QCIC_STATUS_NULL_ARGUMENT, QCIC_STATUS_OK, QCIC_STATUS_PANIC,
    qcic_status,
};

/// A message kind: its wire code (`docs/PROTOCOL.md`), never renumbered.
pub type qcic_kind = u32;
/// A run began.
pub const QCIC_KIND_START: qcic_kind = 1;
/// A run is alive and moving.
pub const QCIC_KIND_PROGRESS: qcic_kind = 2;
/// A run ended well.
pub const QCIC_KIND_SUCCESS: qcic_kind = 3;
/// A run, or the job outside a run, failed.
pub const QCIC_KIND_FAIL: qcic_kind = 4;
/// The job is alive.
pub const QCIC_KIND_HEARTBEAT: qcic_kind = 5;
/// The job says what it expects of itself: a declaration (its spec is
/// given beside the message: `qcic_declaration_encode()`,
/// `qcic_client_send_declaration()`, `qcic_decoded_expect()`).
pub const QCIC_KIND_DECLARE: qcic_kind = 6;

/// The largest frame a watcher accepts; every valid message fits.
pub const QCIC_MAX_FRAME_LEN: usize = 2048;

/// One protocol message, field by field (`docs/PROTOCOL.md`). Strings are
/// NUL-terminated UTF-8 (in `text`, bytes that are not UTF-8 are replaced
/// with U+FFFD); `text` NULL means absent; `has_run_id` and `has_exit_code`
/// say whether those fields are present.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct qcic_message {
    /// A `QCIC_KIND_*` code.
    pub kind: qcic_kind,
    /// The job's name.
    pub job: *const c_char,
    /// Whether `run_id` is present.
    pub has_run_id: bool,
    /// The run id.
    pub run_id: u64,
    /// The sender's sequence number.
    pub seq: u64,
    /// The sender's clock, unix milliseconds.
    pub ts_ms: u64,
    /// The sending host.
    pub host: *const c_char,
    /// The sending process.
    pub pid: u32,
    /// Whether `exit_code` is present.
    pub has_exit_code: bool,
    /// The exit code.
    pub exit_code: i32,
    /// A short note, or NULL.
    pub text: *const c_char,
}

/// Reads a C message into an SDK message.
///
/// # Safety
/// `m` is NULL or points to a `qcic_message` whose strings are NULL or NUL-terminated.
pub(crate) unsafe fn message_from_c(m: *const qcic_message) -> Result<Message, qcic_status> {
    // SAFETY: per this function's contract.
    let m = unsafe { m.as_ref() }.ok_or(QCIC_STATUS_NULL_ARGUMENT)?;
    let kind = u8::try_from(m.kind)
        .ok()
        .and_then(Kind::from_code)
        .ok_or(QCIC_STATUS_INVALID_MESSAGE)?;
    let msg = Message {
        kind,
        // SAFETY: per this function's contract.
        job: unsafe { str_arg(m.job) }?.to_owned(),
        run_id: m.has_run_id.then_some(m.run_id),
        seq: m.seq,
        ts_ms: m.ts_ms,
        // SAFETY: per this function's contract.
        host: unsafe { str_arg(m.host) }?.to_owned(),
        pid: m.pid,
        exit_code: m.has_exit_code.then_some(m.exit_code),
        // SAFETY: per this function's contract.
        text: unsafe { opt_text_arg(m.text) }?.map(std::borrow::Cow::into_owned),
        expect: None,
    };
    msg.validate().map_err(|_| QCIC_STATUS_INVALID_MESSAGE)?;
    Ok(msg)
}

/// Reads a C message of kind `QCIC_KIND_DECLARE` and its spec string.
///
/// # Safety
/// `m` as for [`message_from_c`]; `spec` is NULL or NUL-terminated.
pub(crate) unsafe fn declaration_from_c(
    m: *const qcic_message,
    spec: *const c_char,
) -> Result<Message, qcic_status> {
    // SAFETY: per this function's contract.
    let spec = unsafe { str_arg(spec) }?;
    // SAFETY: per this function's contract.
    let m = unsafe { m.as_ref() }.ok_or(QCIC_STATUS_NULL_ARGUMENT)?;
    if m.kind != QCIC_KIND_DECLARE {
        return Err(QCIC_STATUS_INVALID_MESSAGE);
    }
    let plain = qcic_message {
        kind: QCIC_KIND_HEARTBEAT,
        ..*m
    };
    // SAFETY: per this function's contract.
    let mut msg = unsafe { message_from_c(&raw const plain) }?;
    let parsed = JobSpec::parse(msg.job.clone(), spec).map_err(|e| status::of_spec_error(&e))?;
    msg.kind = Kind::Declare;
    msg.expect = Some(Box::new(parsed.expect));
    Ok(msg)
}

/// The frame of the message `read` gives, into `buf` (the two encode
/// functions' common part).
fn encode(
    buf: *mut u8,
    buf_len: usize,
    written_out: *mut usize,
    read: impl FnOnce() -> Result<Message, qcic_status>,
) -> qcic_status {
    guard(QCIC_STATUS_PANIC, || {
        if written_out.is_null() || (buf.is_null() && buf_len > 0) {
            return QCIC_STATUS_NULL_ARGUMENT;
        }
        let msg = try_status!(read());
        write_frame(&msg.encode(), buf, buf_len, written_out)
    })
}

fn write_frame(frame: &[u8], buf: *mut u8, buf_len: usize, written_out: *mut usize) -> qcic_status {
    // SAFETY: the callers checked `written_out` non-NULL; valid for writes per their contracts.
    unsafe { written_out.write(frame.len()) };
    if frame.len() > buf_len {
        return QCIC_STATUS_BUFFER_TOO_SMALL;
    }
    // SAFETY: buf holds buf_len >= frame.len() writable bytes per the callers' contracts.
    unsafe { ptr::copy_nonoverlapping(frame.as_ptr(), buf, frame.len()) };
    QCIC_STATUS_OK
}

/// Encodes a declaration: `message` (kind `QCIC_KIND_DECLARE`; its
/// `exit_code` and `text` absent) with the expectations in `spec` (as for
/// `qcic_client_declare()`). Otherwise as `qcic_message_encode()`; a bad
/// spec returns the `QCIC_STATUS_SPEC_*` code naming its key.
///
/// # Safety
/// As for `qcic_message_encode()`; `spec` is NULL or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn qcic_declaration_encode(
    message: *const qcic_message,
    spec: *const c_char,
    buf: *mut u8,
    buf_len: usize,
    written_out: *mut usize,
) -> qcic_status {
    // SAFETY: per this function's contract.
    encode(buf, buf_len, written_out, || unsafe {
        declaration_from_c(message, spec)
    })
}

/// Encodes `message` into `buf` (canonical v1 frame). Writes the frame's
/// length to `*written_out` on success, or the length needed with
/// `QCIC_STATUS_BUFFER_TOO_SMALL` (`buf` may be NULL when `buf_len` is 0, to
/// ask for the size; `QCIC_MAX_FRAME_LEN` always suffices).
/// NULL `message` or `written_out` returns `QCIC_STATUS_NULL_ARGUMENT`.
///
/// # Safety
/// `message` as for `qcic_client_send()`; `buf` is valid for writing
/// `buf_len` bytes (or NULL with `buf_len` 0); `written_out` is NULL or valid
/// for writing a `size_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn qcic_message_encode(
    message: *const qcic_message,
    buf: *mut u8,
    buf_len: usize,
    written_out: *mut usize,
) -> qcic_status {
    // SAFETY: per this function's contract.
    encode(buf, buf_len, written_out, || unsafe {
        message_from_c(message)
    })
}

/// A decoded message (opaque) and the strings its `qcic_message` view points to.
///
/// Made by `qcic_message_decode()`; the caller owns it and frees it with
/// `qcic_decoded_free()`. Immutable, so it may be read from any thread.
#[derive(Debug)]
pub struct qcic_decoded {
    view: qcic_message,
    _job: CString,
    _host: CString,
    _text: Option<CString>,
    /// A declaration's spec string.
    expect: Option<CString>,
}

/// Decodes and validates one frame of `len` bytes. On success writes a new
/// `qcic_decoded` to `*decoded_out` (free it with `qcic_decoded_free()`); on
/// error returns a `QCIC_STATUS_DECODE_*` code and writes nothing. A string
/// holding a NUL byte (valid on the wire, not representable in C) gives
/// `QCIC_STATUS_DECODE_INVALID_FIELD`. NULL `buf` (with `len` > 0) or
/// `decoded_out` returns `QCIC_STATUS_NULL_ARGUMENT`.
///
/// # Safety
/// `buf` is valid for reading `len` bytes; `decoded_out` is NULL or valid for writing a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn qcic_message_decode(
    buf: *const u8,
    len: usize,
    decoded_out: *mut *mut qcic_decoded,
) -> qcic_status {
    guard(QCIC_STATUS_PANIC, || {
        if decoded_out.is_null() || (buf.is_null() && len > 0) {
            return QCIC_STATUS_NULL_ARGUMENT;
        }
        let frame = if len == 0 {
            &[][..]
        } else {
            // SAFETY: buf is valid for len bytes per contract.
            unsafe { std::slice::from_raw_parts(buf, len) }
        };
        let msg = match Message::decode(frame) {
            Ok(msg) => msg,
            Err(err) => return status::of_decode_error(&err),
        };
        let c = |s: String| CString::new(s).map_err(|_| QCIC_STATUS_DECODE_INVALID_FIELD);
        let job = try_status!(c(msg.job));
        let host = try_status!(c(msg.host));
        let text = try_status!(msg.text.map(c).transpose());
        let expect = try_status!(msg.expect.map(|e| c(e.to_string())).transpose());
        let view = qcic_message {
            kind: u32::from(msg.kind.code()),
            job: job.as_ptr(),
            has_run_id: msg.run_id.is_some(),
            run_id: msg.run_id.unwrap_or(0),
            seq: msg.seq,
            ts_ms: msg.ts_ms,
            host: host.as_ptr(),
            pid: msg.pid,
            has_exit_code: msg.exit_code.is_some(),
            exit_code: msg.exit_code.unwrap_or(0),
            text: text.as_ref().map_or(ptr::null(), |t| t.as_ptr()),
        };
        let decoded = Box::new(qcic_decoded {
            view,
            _job: job,
            _host: host,
            _text: text,
            expect,
        });
        // SAFETY: checked non-NULL; valid for writes per contract.
        unsafe { decoded_out.write(Box::into_raw(decoded)) };
        QCIC_STATUS_OK
    })
}

/// The message inside a `qcic_decoded`, valid until it is freed; NULL for NULL.
///
/// # Safety
/// `decoded` is NULL or a live `qcic_decoded`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn qcic_decoded_message(decoded: *const qcic_decoded) -> *const qcic_message {
    guard(ptr::null(), || {
        // SAFETY: per this function's contract.
        unsafe { decoded.as_ref() }.map_or(ptr::null(), |d| &raw const d.view)
    })
}

/// A decoded declaration's expectations as a spec string in its canonical
/// form (`every=1d grace=1h`, see `qcic_client_declare()`), valid until
/// `decoded` is freed; NULL for any other kind, and for NULL.
///
/// # Safety
/// `decoded` is NULL or a live `qcic_decoded`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn qcic_decoded_expect(decoded: *const qcic_decoded) -> *const c_char {
    guard(ptr::null(), || {
        // SAFETY: per this function's contract.
        unsafe { decoded.as_ref() }
            .and_then(|d| d.expect.as_ref())
            .map_or(ptr::null(), |e| e.as_ptr())
    })
}

/// Frees a `qcic_decoded`. NULL is a no-op.
///
/// # Safety
/// `decoded` is NULL or a live `qcic_decoded`, not used again after this call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn qcic_decoded_free(decoded: *mut qcic_decoded) {
    guard((), || {
        if !decoded.is_null() {
            // SAFETY: from Box::into_raw, given back exactly once per contract.
            drop(unsafe { Box::from_raw(decoded) });
        }
    });
}
