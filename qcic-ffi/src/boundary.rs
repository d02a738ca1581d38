//! The panic boundary and argument helpers every exported function uses.

use std::borrow::Cow;
use std::ffi::{CStr, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::status::{QCIC_STATUS_INVALID_UTF8, QCIC_STATUS_NULL_ARGUMENT, qcic_status};

/// Runs `f`, turning a panic into `on_panic`: unwinding into C is undefined
/// behaviour, so no panic may cross the boundary.
pub(crate) fn guard<T>(on_panic: T, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(on_panic)
}

/// Borrows a C string argument as UTF-8.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string that outlives `'a`.
pub(crate) unsafe fn str_arg<'a>(p: *const c_char) -> Result<&'a str, qcic_status> {
    if p.is_null() {
        return Err(QCIC_STATUS_NULL_ARGUMENT);
    }
    // SAFETY: non-NULL and NUL-terminated per this function's contract.
    unsafe { CStr::from_ptr(p) }
        .to_str()
        .map_err(|_| QCIC_STATUS_INVALID_UTF8)
}

/// Like [`str_arg`], with NULL meaning "none".
///
/// # Safety
/// As for [`str_arg`].
pub(crate) unsafe fn opt_str_arg<'a>(p: *const c_char) -> Result<Option<&'a str>, qcic_status> {
    if p.is_null() {
        Ok(None)
    } else {
        // SAFETY: forwarded contract.
        unsafe { str_arg(p) }.map(Some)
    }
}

/// Borrows a free-text C string argument (a progress note, a failure
/// reason): bytes that are not UTF-8 are replaced with U+FFFD. A failure is
/// never dropped over its reason (a C caller rarely checks the status, and
/// a file name in the local encoding is common); names stay strict.
///
/// # Safety
/// As for [`str_arg`].
pub(crate) unsafe fn text_arg<'a>(p: *const c_char) -> Result<Cow<'a, str>, qcic_status> {
    if p.is_null() {
        return Err(QCIC_STATUS_NULL_ARGUMENT);
    }
    // SAFETY: non-NULL and NUL-terminated per this function's contract.
    Ok(unsafe { CStr::from_ptr(p) }.to_string_lossy())
}

/// Like [`text_arg`], with NULL meaning "none".
///
/// # Safety
/// As for [`str_arg`].
pub(crate) unsafe fn opt_text_arg<'a>(
    p: *const c_char,
) -> Result<Option<Cow<'a, str>>, qcic_status> {
    if p.is_null() {
        Ok(None)
    } else {
        // SAFETY: forwarded contract.
        unsafe { text_arg(p) }.map(Some)
    }
}

/// Unwraps a `Result<T, qcic_status>` or returns the status.
macro_rules! try_status {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(status) => return status,
        }
    };
}
pub(crate) use try_status;
