//! The panic boundary and argument helpers every exported function uses.

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
