//! `qcic_run`: one run of a job.

use std::ffi::c_char;

use qcic_sdk::Run;

use crate::boundary::{guard, opt_text_arg, text_arg, try_status};
use crate::status::{self, QCIC_STATUS_NULL_ARGUMENT, QCIC_STATUS_PANIC, qcic_status};

/// One run of a job (opaque), from `qcic_client_start()`.
///
/// The caller owns it. `qcic_run_success()` and `qcic_run_fail()` end it and
/// free it; `qcic_run_free()` frees it and, if it was not ended, sends
/// `fail`. Thread-safe for `qcic_run_progress()`; ending or freeing it must
/// not race with other calls on the same run.
#[derive(Debug)]
pub struct qcic_run {
    pub(crate) run: Option<Run>,
}

/// Reports that the run is alive, with a short note (cut to 1024 bytes;
/// bytes that are not UTF-8 are replaced with U+FFFD). NULL `run` or `text`
/// returns `QCIC_STATUS_NULL_ARGUMENT`.
///
/// # Safety
/// `run` is NULL or a live run; `text` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn qcic_run_progress(run: *mut qcic_run, text: *const c_char) -> qcic_status {
    guard(QCIC_STATUS_PANIC, || {
        // SAFETY: per this function's contract.
        let Some(handle) = (unsafe { run.as_ref() }) else {
            return QCIC_STATUS_NULL_ARGUMENT;
        };
        // SAFETY: per this function's contract.
        let text = try_status!(unsafe { text_arg(text) });
        match &handle.run {
            Some(r) => status::result(r.progress(&text)),
            None => QCIC_STATUS_NULL_ARGUMENT,
        }
    })
}

/// The run id carried by this run's messages; 0 for NULL.
///
/// # Safety
/// `run` is NULL or a live run.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn qcic_run_id(run: *const qcic_run) -> u64 {
    guard(0, || {
        // SAFETY: per this function's contract.
        unsafe { run.as_ref() }
            .and_then(|h| h.run.as_ref())
            .map_or(0, Run::id)
    })
}

/// Takes the run out of its handle and frees the handle.
///
/// # Safety
/// `run` is NULL or a live run, not used again.
unsafe fn take(run: *mut qcic_run) -> Option<Run> {
    if run.is_null() {
        return None;
    }
    // SAFETY: a live handle from Box::into_raw, given back exactly once per contract.
    unsafe { Box::from_raw(run) }.run.take()
}

/// Ends the run well, sends `success` and frees the run. NULL `run` returns
/// `QCIC_STATUS_NULL_ARGUMENT`. The run is freed whatever the status.
///
/// # Safety
/// `run` is NULL or a live run, not used again after this call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn qcic_run_success(run: *mut qcic_run) -> qcic_status {
    guard(QCIC_STATUS_PANIC, || {
        // SAFETY: per this function's contract.
        match unsafe { take(run) } {
            Some(r) => status::result(r.success()),
            None => QCIC_STATUS_NULL_ARGUMENT,
        }
    })
}

/// Ends the run as failed with a reason (NULL: none; cut to 1024 bytes;
/// bytes that are not UTF-8 are replaced with U+FFFD, the failure is still
/// sent), sends `fail` and frees the run. NULL `run` returns
/// `QCIC_STATUS_NULL_ARGUMENT`. The run is freed whatever the status.
///
/// # Safety
/// `run` is NULL or a live run, not used again after this call; `text` is
/// NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn qcic_run_fail(run: *mut qcic_run, text: *const c_char) -> qcic_status {
    // SAFETY: forwarded contract.
    guard(QCIC_STATUS_PANIC, || unsafe { fail(run, None, text) })
}

/// Like `qcic_run_fail()`, with a process exit code.
///
/// # Safety
/// As for `qcic_run_fail()`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn qcic_run_fail_with_code(
    run: *mut qcic_run,
    exit_code: i32,
    text: *const c_char,
) -> qcic_status {
    // SAFETY: forwarded contract.
    guard(QCIC_STATUS_PANIC, || unsafe {
        fail(run, Some(exit_code), text)
    })
}

/// # Safety
/// As for `qcic_run_fail()`.
unsafe fn fail(run: *mut qcic_run, exit_code: Option<i32>, text: *const c_char) -> qcic_status {
    // Read the text before taking the run, so a bad text still frees it
    // (the run's drop then sends fail without a reason).
    // SAFETY: per the caller's contract.
    let text = unsafe { opt_text_arg(text) };
    // SAFETY: per the caller's contract.
    let Some(r) = (unsafe { take(run) }) else {
        return QCIC_STATUS_NULL_ARGUMENT;
    };
    let text = try_status!(text);
    status::result(r.fail_with_code(exit_code, text.as_deref().unwrap_or("")))
}

/// Frees the run; if it was not ended, sends `fail` ("run dropped without
/// success or fail") first. NULL is a no-op.
///
/// # Safety
/// `run` is NULL or a live run, not used again after this call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn qcic_run_free(run: *mut qcic_run) {
    guard((), || {
        // SAFETY: per this function's contract.
        drop(unsafe { take(run) });
    });
}
