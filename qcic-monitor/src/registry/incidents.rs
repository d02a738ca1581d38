//! Incidents: opened once per slot (no storm), named by a stable id,
//! closed with one follow-up carrying the same id.

use super::*;

impl Registry {
    /// Opens the incident in `slot` unless one is open there, and notifies.
    #[expect(clippy::too_many_arguments, reason = "the parts of one notification")]
    pub(super) fn open(
        &mut self,
        j: JobIdx,
        slot: Slot,
        id: String,
        now: Now,
        text: Option<String>,
        msg: &Message,
        out: &mut Vec<Notification>,
    ) {
        if self.jobs[j].open.contains_key(&slot) {
            return;
        }
        let mut note = self.note(j, slot.event(), &id, now.wall_ms);
        note.run_id = msg.run_id.or(slot.run());
        note.host = Some(Arc::from(msg.host.as_str()));
        note.exit_code = msg.exit_code;
        note.text = text;
        self.insert_open(j, slot, id, now.at, now.at, note, out);
    }

    /// Opens an incident and notifies, unless the job is silenced: then the
    /// incident is recorded and notified when the silence ends (if still open).
    #[expect(clippy::too_many_arguments, reason = "the parts of one incident")]
    pub(super) fn insert_open(
        &mut self,
        j: JobIdx,
        slot: Slot,
        mut id: String,
        since: Instant,
        now: Instant,
        mut first: Notification,
        out: &mut Vec<Notification>,
    ) {
        // An id is never given to a second occurrence: derived again from
        // itself until it is new (every watcher that saw the same history
        // derives the same).
        if let Some(closed) = &self.jobs[j].closed {
            while closed.iter().any(|c| **c == *id) {
                id = incident_id(&self.jobs[j].name, slot.event(), &format!("again:{id}"));
            }
            first.incident = Arc::from(id.as_str());
        }
        let run_id = first.run_id;
        let at = Now::new(now, first.detected_ms);
        // A farm peer acknowledged it before this watcher raised it.
        let early = self
            .early_acks
            .iter()
            .position(|(incident, _)| **incident == *id)
            .and_then(|i| self.early_acks.remove(i))
            .map(|(_, ack)| Box::new(ack));
        let held = self.hold(j, at);
        let notified = held.is_none();
        if notified {
            out.push(first.clone());
        }
        self.jobs[j].open.insert(
            slot,
            Open {
                id,
                since,
                run_id,
                repeats: 0,
                notified,
                first,
                ack: early.clone(),
                escalated: 0,
                held: held.map(Box::new),
            },
        );
        if let (Some(every), None) = (self.jobs[j].cfg.repeat, &early) {
            self.deadlines.set(Timer::Repeat(j, slot), now + every);
        }
        if notified {
            self.arm_escalation(j, slot, at);
        }
    }

    /// Closes the incident in `slot`, if open, with one `recovered`.
    pub(super) fn close(
        &mut self,
        j: JobIdx,
        slot: Slot,
        now: Now,
        text: impl FnOnce() -> String,
        out: &mut Vec<Notification>,
    ) {
        self.close_as(j, slot, Event::Recovered, now, text, out);
    }

    /// Closes the incident in `slot`, if open, with one follow-up `event`.
    pub(super) fn close_as(
        &mut self,
        j: JobIdx,
        slot: Slot,
        event: Event,
        now: Now,
        text: impl FnOnce() -> String,
        out: &mut Vec<Notification>,
    ) {
        // `text` is a closure: most messages close nothing, and should not
        // pay for formatting what no one reads.
        let Some(open) = self.jobs[j].open.remove(&slot) else {
            return;
        };
        self.deadlines.clear(&Timer::Repeat(j, slot));
        self.deadlines.clear(&Timer::Escalate(j, slot));
        let closed = self.jobs[j].closed.get_or_insert_with(Box::default);
        if closed.len() == CLOSED_KEPT {
            closed.pop_front();
        }
        closed.push_back(Arc::from(open.id.as_str()));
        if !open.notified {
            // Never alarmed (it opened and closed while held): no
            // follow-up is owed.
            self.remember(
                j,
                now.wall_ms,
                format!("{} incident closed while held back", slot.event()),
            );
        } else {
            let mut note = self.note(j, event, &open.id, now.wall_ms);
            note.resolves = Some(slot.event());
            note.duration_ms = Some(millis(now.at.saturating_duration_since(open.since)));
            note.run_id = open.run_id;
            note.text = Some(text());
            note.acked = open.ack.map(|a| *a);
            note.escalation = open.escalated;
            out.push(note);
        }
        // Jobs that depend on this one may hold alarms they no longer
        // must (after the follow-up: the cause is over first).
        if matches!(slot, Slot::Down | Slot::Failed) {
            self.release_dependents(j, now, out);
        }
    }

    /// The follow-up of an incident whose job is going away (removed,
    /// forgotten, retired), made from its alarm as sent: it reaches every
    /// channel the alarm and its escalation steps did, says who
    /// acknowledged it, and carries nothing only an alarm has.
    pub(super) fn follow_up_of(
        first: &Notification,
        slot: Slot,
        escalated: u32,
        ack: Option<crate::notification::Ack>,
        wall_ms: u64,
    ) -> Notification {
        let mut note = first.clone();
        note.event = Event::Recovered;
        note.resolves = Some(slot.event());
        note.detected_ms = wall_ms;
        note.exit_code = None;
        note.repeat = 0;
        note.escalation = escalated;
        note.acked = ack;
        note.blocked_by = None;
        note.held_by = None;
        note.held_ms = None;
        note
    }

    pub(super) fn note(
        &self,
        j: JobIdx,
        event: Event,
        incident: &str,
        wall_ms: u64,
    ) -> Notification {
        let job = &self.jobs[j];
        let mut note = Notification::new(
            event,
            Arc::clone(&job.name),
            Arc::from(incident),
            Arc::clone(&self.watcher),
            wall_ms,
        );
        note.last_seen_ms = job.last.as_ref().map(|s| s.wall_ms);
        note.host = job.last.as_ref().map(|s| Arc::clone(&s.host));
        note
    }
}
