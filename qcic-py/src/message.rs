//! `Message`: the wire format for Python, to encode, decode and send exact frames.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use qcic_sdk::Kind;

use crate::errors::{decode_to_py, to_py};

/// One protocol message, field by field (`docs/PROTOCOL.md`).
#[pyclass(module = "qcic._qcic", eq, get_all, set_all)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    kind: String,
    job: String,
    run_id: Option<u64>,
    seq: u64,
    ts_ms: u64,
    host: String,
    pid: u32,
    exit_code: Option<i32>,
    text: Option<String>,
    /// A declaration's expectations as a spec string (`every=1d grace=1h`).
    expect: Option<String>,
}

impl Message {
    pub fn to_sdk(&self, py: Python<'_>) -> PyResult<qcic_sdk::Message> {
        let kind = Kind::from_name(&self.kind).ok_or_else(|| {
            PyValueError::new_err(format!(
                "kind must be one of start, progress, success, fail, heartbeat, declare; got {:?}",
                self.kind
            ))
        })?;
        let msg = qcic_sdk::Message {
            kind,
            job: self.job.clone(),
            run_id: self.run_id,
            seq: self.seq,
            ts_ms: self.ts_ms,
            host: self.host.clone(),
            pid: self.pid,
            exit_code: self.exit_code,
            text: self.text.clone(),
            expect: match &self.expect {
                Some(spec) => Some(Box::new(
                    qcic_sdk::JobSpec::parse(self.job.clone(), spec)
                        .map_err(|err| to_py(py, qcic_sdk::Error::InvalidSpec(err)))?
                        .expect,
                )),
                None => None,
            },
        };
        msg.validate()
            .map_err(|err| to_py(py, qcic_sdk::Error::InvalidMessage(err.to_string())))?;
        Ok(msg)
    }

    fn from_sdk(msg: qcic_sdk::Message) -> Message {
        Message {
            kind: msg.kind.name().to_owned(),
            job: msg.job,
            run_id: msg.run_id,
            seq: msg.seq,
            ts_ms: msg.ts_ms,
            host: msg.host,
            pid: msg.pid,
            exit_code: msg.exit_code,
            text: msg.text,
            expect: msg.expect.map(|e| e.to_string()),
        }
    }
}

#[pymethods]
impl Message {
    #[new]
    #[pyo3(
        signature = (kind, job, *, run_id = None, seq = 1, ts_ms = 0, host = String::new(), pid = 0, exit_code = None, text = None, expect = None),
        text_signature = "(kind, job, *, run_id=None, seq=1, ts_ms=0, host='', pid=0, exit_code=None, text=None, expect=None)"
    )]
    #[expect(
        clippy::too_many_arguments,
        reason = "one keyword argument per protocol field"
    )]
    fn new(
        kind: String,
        job: String,
        run_id: Option<u64>,
        seq: u64,
        ts_ms: u64,
        host: String,
        pid: u32,
        exit_code: Option<i32>,
        text: Option<String>,
        expect: Option<String>,
    ) -> Message {
        Message {
            kind,
            job,
            run_id,
            seq,
            ts_ms,
            host,
            pid,
            exit_code,
            text,
            expect,
        }
    }

    /// The canonical v1 frame.
    fn encode<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let msg = self.to_sdk(py)?;
        Ok(PyBytes::new(py, &msg.encode()))
    }

    /// Decodes and validates one frame; raises `qcic.DecodeError` (with a `reason`).
    #[staticmethod]
    fn decode(py: Python<'_>, frame: &[u8]) -> PyResult<Message> {
        qcic_sdk::Message::decode(frame)
            .map(Message::from_sdk)
            .map_err(|err| decode_to_py(py, &err))
    }

    fn __repr__(&self) -> String {
        format!(
            "Message(kind={:?}, job={:?}, run_id={:?}, seq={}, ts_ms={}, host={:?}, pid={}, exit_code={:?}, text={:?}, expect={:?})",
            self.kind,
            self.job,
            self.run_id,
            self.seq,
            self.ts_ms,
            self.host,
            self.pid,
            self.exit_code,
            self.text,
            self.expect
        )
    }
}
