//! SDK errors as `qcic` exceptions.
//!
//! The exception classes are defined in Python (`qcic/_errors.py`) so that
//! argument errors can be both a `QcicError` and a `ValueError`; here every
//! SDK error is mapped to one of them with an exhaustive match.

use pyo3::prelude::*;
use qcic_sdk::{DecodeError, Error};

/// The `qcic._errors` class `name`, raised with `message`.
fn raise(py: Python<'_>, name: &str, message: String) -> PyErr {
    raise_with(py, name, (message,))
}

/// The `qcic._errors` class `name`, raised with these arguments.
fn raise_with<'py>(py: Python<'py>, name: &str, args: impl pyo3::call::PyCallArgs<'py>) -> PyErr {
    let class = py
        .import("qcic._errors")
        .and_then(|module| module.getattr(name));
    match class {
        Ok(class) => match class.call1(args) {
            Ok(instance) => PyErr::from_value(instance),
            Err(err) => err,
        },
        Err(err) => err,
    }
}

/// The exception for an SDK error.
pub fn to_py(py: Python<'_>, err: Error) -> PyErr {
    let message = err.to_string();
    if let Error::InvalidSpec(spec) = &err {
        return raise_with(py, "InvalidSpecError", (message, spec.key));
    }
    let class = match err {
        Error::NoEndpoints | Error::Endpoint { .. } | Error::Key(_) => "ConfigurationError",
        Error::InvalidJob { .. } => "InvalidJobError",
        Error::InvalidMessage(_) => "InvalidMessageError",
        Error::InvalidSpec(_) => "InvalidSpecError",
        Error::Zmq(_) | Error::Thread(_) => "TransportError",
        Error::QueueFull => "QueueFullError",
        Error::Closed => "ClientClosedError",
    };
    raise(py, class, message)
}

/// The exception for a frame that does not decode.
pub fn decode_to_py(py: Python<'_>, err: &DecodeError) -> PyErr {
    let reason = err.reason();
    let class = py
        .import("qcic._errors")
        .and_then(|module| module.getattr("DecodeError"));
    match class {
        Ok(class) => match class.call1((err.to_string(), reason)) {
            Ok(instance) => PyErr::from_value(instance),
            Err(e) => e,
        },
        Err(e) => e,
    }
}

/// A sending result as Python sees it: `True` if queued, `False` if the
/// queue was full (dropped and counted: a job is never stopped for that);
/// every other error raises.
pub fn queued(py: Python<'_>, result: Result<(), Error>) -> PyResult<bool> {
    match result {
        Ok(()) => Ok(true),
        Err(Error::QueueFull) => Ok(false),
        Err(err) => Err(to_py(py, err)),
    }
}
