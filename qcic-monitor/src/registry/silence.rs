//! Silences and pauses: notifications held back while one is set.

use super::*;

/// A silence (or, without an end, a pause) on a job.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Silence {
    /// When it ends (unix ms); `None`: paused until resumed.
    pub until_ms: Option<u64>,
    /// Why.
    pub reason: String,
}

impl Registry {
    /// Silences a job until `until_ms` (unix ms), or pauses it (`None`)
    /// until [`Registry::unsilence`]. Returns an error text for an unknown job.
    pub fn silence(
        &mut self,
        job: &str,
        until_ms: Option<u64>,
        reason: &str,
        now: Now,
    ) -> Result<(), String> {
        let &j = self
            .index
            .get(job)
            .ok_or_else(|| format!("no job named {job:?}"))?;
        self.jobs[j].silence = Some(Box::new(Silence {
            until_ms,
            reason: reason.to_owned(),
        }));
        self.wall_timers |= until_ms.is_some();
        // Saved like any change: a pause must survive a restart.
        self.touch(j);
        match until_ms {
            Some(until) => self
                .deadlines
                .set(Timer::SilenceEnd(j), at_wall(now, until)),
            None => self.deadlines.clear(&Timer::SilenceEnd(j)),
        }
        let what = match until_ms {
            Some(until) => format!(
                "silenced until {}: {reason}",
                crate::notification::rfc3339(until)
            ),
            None => format!("paused: {reason}"),
        };
        self.remember(j, now.wall_ms, what);
        Ok(())
    }

    /// Ends a job's silence or pause now; returns the notifications held
    /// back for incidents still open.
    pub fn unsilence(&mut self, job: &str, now: Now) -> Result<Vec<Notification>, String> {
        let &j = self
            .index
            .get(job)
            .ok_or_else(|| format!("no job named {job:?}"))?;
        self.deadlines.clear(&Timer::SilenceEnd(j));
        let mut out = Vec::new();
        self.end_silence(j, now, &mut out);
        Ok(out)
    }

    /// Every silence: (job, silence).
    pub fn silences(&self) -> Vec<(String, Silence)> {
        self.jobs
            .iter()
            .filter_map(|job| Some((job.name.to_string(), job.silence.as_deref()?.clone())))
            .collect()
    }

    pub(super) fn end_silence(&mut self, j: JobIdx, now: Now, out: &mut Vec<Notification>) {
        if self.jobs[j].silence.take().is_none() {
            return;
        }
        self.touch(j);
        self.remember(j, now.wall_ms, HistoryEntry::Text("silence ended".into()));
        // Incidents still open and held are judged again; escalation
        // resumes for those notified before.
        self.release(j, now, out);
        let slots: Vec<Slot> = self.jobs[j].open.keys().copied().collect();
        for slot in slots {
            self.arm_escalation(j, slot, now);
        }
    }
}
