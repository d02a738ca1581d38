//! The `Run` guard: one execution of a job, from start to success or fail.

use crate::client::Client;
use crate::error::Error;
use crate::message::Kind;

/// One run of a job, begun by [`Client::start`].
///
/// End it with [`Run::success`] or [`Run::fail`]. A `Run` dropped without
/// either (an early return, a `?`, a panic) sends `fail`, so a run that went
/// wrong is never mistaken for one still going; but not in a forked child
/// that inherited it: the run goes on in the parent, which ends it.
#[derive(Debug)]
pub struct Run {
    client: Client,
    job: String,
    id: u64,
    ended: bool,
    /// The process that started it.
    pid: u32,
}

impl Run {
    pub(crate) fn new(client: Client, job: String, id: u64) -> Run {
        Run {
            client,
            job,
            id,
            ended: false,
            pid: crate::process::pid(),
        }
    }

    /// The run id carried by every message of this run.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The job's name.
    pub fn job(&self) -> &str {
        &self.job
    }

    /// Reports that the run is alive, with a short note (cut to 1024 bytes).
    pub fn progress(&self, text: &str) -> Result<(), Error> {
        self.client
            .report(Kind::Progress, &self.job, Some(self.id), None, Some(text))
    }

    /// Ends the run well.
    pub fn success(mut self) -> Result<(), Error> {
        self.ended = true;
        self.client
            .report(Kind::Success, &self.job, Some(self.id), None, None)
    }

    /// Ends the run well, with a short note (cut to 1024 bytes).
    pub fn success_with_text(mut self, text: &str) -> Result<(), Error> {
        self.ended = true;
        self.client
            .report(Kind::Success, &self.job, Some(self.id), None, Some(text))
    }

    /// Ends the run as failed, with a reason (cut to 1024 bytes).
    pub fn fail(self, text: &str) -> Result<(), Error> {
        self.fail_with_code(None, text)
    }

    /// Ends the run as failed, with an exit code and a reason.
    pub fn fail_with_code(mut self, exit_code: Option<i32>, text: &str) -> Result<(), Error> {
        self.ended = true;
        self.client
            .report(Kind::Fail, &self.job, Some(self.id), exit_code, Some(text))
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if self.ended || self.pid != crate::process::pid() {
            return;
        }
        let text = if std::thread::panicking() {
            "run dropped during a panic"
        } else {
            "run dropped without success or fail"
        };
        // Nothing useful can be done with an error inside drop; the drop
        // counter already records a message that could not be queued.
        let _ = self
            .client
            .report(Kind::Fail, &self.job, Some(self.id), None, Some(text));
    }
}
