//! `qcic._qcic`: the native half of the `qcic` Python package, a thin layer
//! over `qcic-sdk` (the same sender thread, queue and guarantees). The
//! Pythonic parts — context managers, the decorator, the default client,
//! the exception classes — live in `python/qcic/`, which re-exports this.
//!
//! # Layout
//! - `errors`: the exhaustive mapping from SDK errors to `qcic` exceptions.
//! - `client`: `Client` and `Run`.
//! - `message`: `Message`, encode and decode.

mod client;
mod errors;
mod message;

use pyo3::prelude::*;

/// The native module. Private: use `import qcic`.
#[pymodule]
#[pyo3(name = "_qcic")]
fn qcic_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<client::Client>()?;
    m.add_class::<client::Run>()?;
    m.add_class::<message::Message>()?;
    m.add_function(wrap_pyfunction!(client::spec_string, m)?)?;
    m.add("__version__", qcic_sdk::VERSION)?;
    m.add("PROTOCOL_VERSION", qcic_sdk::PROTOCOL_VERSION)?;
    m.add("MAX_FRAME_LEN", qcic_sdk::message::MAX_FRAME_LEN)?;
    m.add(
        "__all__",
        [
            "Client",
            "MAX_FRAME_LEN",
            "Message",
            "PROTOCOL_VERSION",
            "Run",
            "__version__",
            "spec_string",
        ],
    )?;
    Ok(())
}
