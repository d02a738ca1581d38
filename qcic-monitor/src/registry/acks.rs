//! Acknowledgement and escalation. An acknowledged incident ("I'm on it")
//! gets no reminders and no escalation; its follow-up still goes out, to
//! every channel its alarm and its escalation steps reached. An incident
//! that stays open and unacknowledged is sent, step by step, to each
//! escalation step's channels, once.

use super::*;
use crate::notification::Ack;

/// What an acknowledgement did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acked {
    /// The incident (of this job) is acknowledged now.
    Now(String),
    /// The same, of an incident held back (not notified yet): if it is
    /// still open when the hold ends, it goes out marked acknowledged,
    /// without reminders or escalation; if it closes first, nothing does.
    Held(String),
    /// It was already, by this acknowledgement (kept: the first one stands).
    Already(Ack),
}

impl Registry {
    /// Acknowledges the open incident `incident`. An error text if no
    /// incident of that id is open.
    pub fn ack(&mut self, incident: &str, ack: Ack, now: Now) -> Result<Acked, String> {
        let found = self.jobs.iter().enumerate().find_map(|(j, job)| {
            job.open
                .iter()
                .find(|(_, o)| o.id == incident)
                .map(|(slot, _)| (j, *slot))
        });
        let Some((j, slot)) = found else {
            return Err(format!(
                "no open incident has the id {incident:?} (see `qcic-monitor status` or /api/jobs)"
            ));
        };
        let Some(open) = self.jobs[j].open.get_mut(&slot) else {
            return Err(format!("no open incident has the id {incident:?}"));
        };
        if let Some(first) = &open.ack {
            return Ok(Acked::Already((**first).clone()));
        }
        let text = format!(
            "{} incident {incident} acknowledged by {}{}",
            slot.event(),
            ack.by,
            ack.comment
                .as_deref()
                .map(|c| format!(": {}", c.chars().take(80).collect::<String>()))
                .unwrap_or_default()
        );
        let held = !open.notified;
        open.ack = Some(Box::new(ack));
        self.deadlines.clear(&Timer::Repeat(j, slot));
        self.deadlines.clear(&Timer::Escalate(j, slot));
        self.touch(j);
        self.remember(j, now.wall_ms, text);
        let job = self.jobs[j].name.to_string();
        Ok(if held {
            Acked::Held(job)
        } else {
            Acked::Now(job)
        })
    }

    /// Arms the next escalation step of the incident in `slot`, if it has
    /// one and is notified and unacknowledged: due its step's `after`
    /// from when it was (first) notified.
    pub(super) fn arm_escalation(&mut self, j: JobIdx, slot: Slot, now: Now) {
        let job = &self.jobs[j];
        let next = job.open.get(&slot).and_then(|open| {
            if !open.notified || open.ack.is_some() {
                return None;
            }
            let step = job
                .cfg
                .escalate
                .get(usize::try_from(open.escalated).ok()?)?;
            Some(open.first.detected_ms.saturating_add(millis(step.after)))
        });
        match next {
            Some(at_ms) => self
                .deadlines
                .set(Timer::Escalate(j, slot), at_wall(now, at_ms)),
            None => self.deadlines.clear(&Timer::Escalate(j, slot)),
        }
    }

    /// An escalation step fell due: the incident goes to the step's
    /// channels (the dispatcher routes by `escalation`), unless it closed,
    /// was acknowledged, or is held (a silence, a maintenance window: it
    /// waits for their end).
    pub(super) fn fire_escalate(
        &mut self,
        j: JobIdx,
        slot: Slot,
        now: Now,
        out: &mut Vec<Notification>,
    ) {
        let silence_until = self.jobs[j].silence.as_ref().map(|s| s.until_ms);
        let window = self.window_over(j, now.wall_ms).map(|(_, until)| until);
        let Some(open) = self.jobs[j].open.get_mut(&slot) else {
            return;
        };
        if !open.notified || open.ack.is_some() {
            return;
        }
        match (silence_until, window) {
            (Some(None), _) => return, // paused: armed again when resumed
            (Some(Some(until)), _) | (None, Some(until)) => {
                self.deadlines
                    .set(Timer::Escalate(j, slot), at_wall(now, until));
                return;
            }
            (None, None) => {}
        }
        open.escalated += 1;
        let mut note = open.first.clone();
        note.escalation = open.escalated;
        note.repeat = 0;
        let open_for = now.wall_ms.saturating_sub(open.first.detected_ms);
        note.detected_ms = now.wall_ms;
        note.text = Some(format!(
            "{} (escalated: open {} and not acknowledged)",
            note.text.as_deref().unwrap_or(""),
            human(Duration::from_millis(open_for))
        ));
        note.last_seen_ms = self.jobs[j].last.as_ref().map(|s| s.wall_ms);
        out.push(note);
        self.touch(j);
        self.arm_escalation(j, slot, now);
    }
}
