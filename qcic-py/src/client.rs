//! `Client` and `Run` for Python.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use crate::errors::{queued, to_py};
use crate::message::Message;

fn duration(what: &str, seconds: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(seconds).map_err(|_| {
        PyValueError::new_err(format!(
            "{what} must be a finite number of seconds >= 0, got {seconds}"
        ))
    })
}

/// The spec of pairs of (key, value) for `job`: a declaration's canonical
/// spec string (`every=1d grace=1h`); raises `qcic.InvalidSpecError`
/// (naming the key) for a bad one.
#[pyfunction]
pub fn spec_string(py: Python<'_>, job: &str, pairs: Vec<(String, String)>) -> PyResult<String> {
    job_spec(py, job, &pairs).map(|spec| spec.expect.to_string())
}

fn job_spec(py: Python<'_>, job: &str, pairs: &[(String, String)]) -> PyResult<qcic_sdk::JobSpec> {
    let pairs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    qcic_sdk::JobSpec::from_pairs(job, &pairs)
        .map_err(|err| to_py(py, qcic_sdk::Error::InvalidSpec(err)))
}

/// A sender to one or more qcic watchers (native; use `qcic.Client`).
#[pyclass(frozen, module = "qcic._qcic")]
#[derive(Debug)]
pub struct Client {
    inner: qcic_sdk::Client,
}

/// A text argument as UTF-8, whatever it holds: a string decoded with
/// `surrogateescape` (a file name from `os.listdir`) gets its original bytes
/// back, each byte that is not UTF-8 replaced with U+FFFD, as the C sender
/// and `qcic send` do; any other lone surrogate is replaced too.
fn lossy(text: &Bound<'_, PyString>) -> String {
    if let Ok(s) = text.extract::<String>() {
        return s;
    }
    text.call_method1("encode", ("utf-8", "surrogateescape"))
        .and_then(|b| b.extract::<Vec<u8>>())
        .map_or_else(
            |_| text.to_string_lossy().into_owned(),
            |bytes| String::from_utf8_lossy(&bytes).into_owned(),
        )
}

#[pymethods]
impl Client {
    #[new]
    #[pyo3(signature = (endpoints, *, queue_capacity = 1024, close_timeout = 1.0, host = None, server_key = None, client_public_key = None, client_secret_key = None))]
    #[expect(
        clippy::too_many_arguments,
        reason = "keyword arguments of the Python constructor"
    )]
    fn new(
        py: Python<'_>,
        endpoints: Vec<String>,
        queue_capacity: usize,
        close_timeout: f64,
        host: Option<String>,
        server_key: Option<String>,
        client_public_key: Option<String>,
        client_secret_key: Option<String>,
    ) -> PyResult<Client> {
        let close_timeout = duration("close_timeout", close_timeout)?;
        if queue_capacity == 0 {
            return Err(PyValueError::new_err("queue_capacity must be at least 1"));
        }
        let mut builder = qcic_sdk::Client::builder()
            .endpoints(endpoints)
            .queue_capacity(queue_capacity)
            .close_timeout(close_timeout);
        if let Some(host) = host {
            builder = builder.host(host);
        }
        if let Some(server_key) = server_key {
            builder = builder.server_key(server_key);
        }
        match (client_public_key, client_secret_key) {
            (Some(public), Some(secret)) => builder = builder.client_keys(public, secret),
            (None, None) => {}
            _ => {
                return Err(PyValueError::new_err(
                    "give both client_public_key and client_secret_key, or neither",
                ));
            }
        }
        builder
            .keys_from_env()
            .build()
            .map(|inner| Client { inner })
            .map_err(|err| to_py(py, err))
    }

    /// Says the job is alive. True if queued; False if the queue was full
    /// (the message was dropped and counted).
    fn heartbeat(&self, py: Python<'_>, job: &str) -> PyResult<bool> {
        queued(py, self.inner.heartbeat(job))
    }

    /// Reports a failure of the job outside any run. A reason that cannot
    /// be encoded (a file name decoded with `surrogateescape`) has those
    /// characters replaced: a failure is never dropped over its text.
    #[pyo3(signature = (job, text = None, exit_code = None))]
    fn fail(
        &self,
        py: Python<'_>,
        job: &str,
        text: Option<Bound<'_, PyString>>,
        exit_code: Option<i32>,
    ) -> PyResult<bool> {
        let text = text.as_ref().map(lossy);
        queued(
            py,
            self.inner
                .fail(job, exit_code, text.as_deref().unwrap_or("")),
        )
    }

    /// Begins a run and sends `start`.
    fn start(&self, py: Python<'_>, job: &str) -> PyResult<Run> {
        let run = self.inner.start(job).map_err(|err| to_py(py, err))?;
        Ok(Run {
            id: run.id(),
            job: run.job().to_owned(),
            run: Mutex::new(Some(run)),
        })
    }

    /// Declares what `job` expects of itself from `pairs` of (key, value)
    /// as in a spec string (`("every", "1d")`, `("grace", "1h")`). True if
    /// queued; raises `qcic.InvalidSpecError` (naming the key) for a bad one.
    fn declare(&self, py: Python<'_>, job: &str, pairs: Vec<(String, String)>) -> PyResult<bool> {
        let spec = job_spec(py, job, &pairs)?;
        queued(py, self.inner.declare(&spec))
    }

    /// Sends a message exactly as given (every field is the caller's).
    fn send_message(&self, py: Python<'_>, message: &Message) -> PyResult<bool> {
        let msg = message.to_sdk(py)?;
        queued(py, self.inner.send_message(msg))
    }

    /// Waits (without holding the GIL) until everything queued so far was
    /// handed to libzmq, at most `timeout` seconds. Returns whether it was.
    #[pyo3(signature = (timeout = 2.0))]
    fn flush(&self, py: Python<'_>, timeout: f64) -> PyResult<bool> {
        let timeout = duration("timeout", timeout)?;
        Ok(py.detach(|| self.inner.flush(timeout)))
    }

    /// Stops sending; waits (without holding the GIL) at most `timeout`
    /// seconds for delivery. True only if everything was delivered.
    #[pyo3(signature = (timeout = 2.0))]
    fn close(&self, py: Python<'_>, timeout: f64) -> PyResult<bool> {
        let timeout = duration("timeout", timeout)?;
        Ok(py.detach(|| self.inner.close(timeout)))
    }

    /// Counters of this process's messages: queued, sent, dropped_*.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.inner.stats();
        let dict = PyDict::new(py);
        dict.set_item("queued", s.queued)?;
        dict.set_item("sent", s.sent)?;
        dict.set_item("dropped_queue_full", s.dropped_queue_full)?;
        dict.set_item("dropped_hwm", s.dropped_hwm)?;
        dict.set_item("dropped_closed", s.dropped_closed)?;
        dict.set_item("send_errors", s.send_errors)?;
        Ok(dict)
    }

    /// The host name sent with every message.
    #[getter]
    fn host(&self) -> &str {
        self.inner.host()
    }
}

/// One run of a job (native; `qcic.Run` wraps it). Dropped unfinished, it sends `fail`.
#[pyclass(frozen, module = "qcic._qcic")]
#[derive(Debug)]
pub struct Run {
    id: u64,
    job: String,
    run: Mutex<Option<qcic_sdk::Run>>,
}

impl Run {
    fn take(&self, py: Python<'_>) -> PyResult<qcic_sdk::Run> {
        self.run
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .ok_or_else(|| ended(py, &self.job))
    }
}

fn ended(py: Python<'_>, job: &str) -> PyErr {
    match py
        .import("qcic._errors")
        .and_then(|m| m.getattr("RunEndedError"))
        .and_then(|c| c.call1((format!("this run of {job:?} has already ended"),)))
    {
        Ok(instance) => PyErr::from_value(instance),
        Err(err) => err,
    }
}

#[pymethods]
impl Run {
    /// The run id carried by every message of this run.
    #[getter]
    fn id(&self) -> u64 {
        self.id
    }

    /// The job's name.
    #[getter]
    fn job(&self) -> &str {
        &self.job
    }

    /// Whether success or fail was sent.
    #[getter]
    fn ended(&self) -> bool {
        self.run
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_none()
    }

    /// Reports that the run is alive, with a short note (cut to 1024 bytes;
    /// characters that cannot be encoded are replaced).
    fn progress(&self, py: Python<'_>, text: Bound<'_, PyString>) -> PyResult<bool> {
        let text = lossy(&text);
        let guard = self.run.lock().unwrap_or_else(PoisonError::into_inner);
        match guard.as_ref() {
            Some(run) => queued(py, run.progress(&text)),
            None => Err(ended(py, &self.job)),
        }
    }

    /// Ends the run well.
    fn success(&self, py: Python<'_>) -> PyResult<bool> {
        let run = self.take(py)?;
        queued(py, run.success())
    }

    /// Ends the run as failed (characters of the reason that cannot be
    /// encoded are replaced).
    #[pyo3(signature = (text = None, exit_code = None))]
    fn fail(
        &self,
        py: Python<'_>,
        text: Option<Bound<'_, PyString>>,
        exit_code: Option<i32>,
    ) -> PyResult<bool> {
        let text = text.as_ref().map(lossy);
        let run = self.take(py)?;
        queued(
            py,
            run.fail_with_code(exit_code, text.as_deref().unwrap_or("")),
        )
    }
}
