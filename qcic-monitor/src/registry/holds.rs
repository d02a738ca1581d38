//! Holding alarms back: a silence or pause, a maintenance window over the
//! job, or a job it depends on being down or failed. A held incident is
//! recorded as usual; its first notification goes out when nothing holds
//! it any more and it is still open ("judged again"), with how long it was
//! held and by what. Follow-ups are never held: an incident that closed
//! while held owes none.

use super::*;
use crate::config::MaintenanceWindow;

impl Registry {
    /// Sets the recurring maintenance windows (at start and on SIGHUP);
    /// alarms held by a window that no longer holds them are judged again.
    pub fn set_maintenance(
        &mut self,
        windows: Vec<MaintenanceWindow>,
        now: Now,
    ) -> Vec<Notification> {
        self.wall_timers |= !windows.is_empty();
        self.maintenance = Arc::from(windows);
        let mut out = Vec::new();
        self.release_all(now, &mut out);
        out
    }

    /// The maintenance window over job `j` at `wall_ms`, if any: its name
    /// and when it closes (of several, the one closing last).
    pub(super) fn window_over(&self, j: JobIdx, wall_ms: u64) -> Option<(String, u64)> {
        if self.maintenance.is_empty() {
            return None;
        }
        self.window_among(j, &self.open_windows(wall_ms))
    }

    /// The windows open at `wall_ms`: (index, when it closes). Worked out
    /// once for a view of every job (a cron search each).
    pub(super) fn open_windows(&self, wall_ms: u64) -> Vec<(usize, u64)> {
        self.maintenance
            .iter()
            .enumerate()
            .filter_map(|(i, w)| Some((i, w.open_until(wall_ms)?)))
            .collect()
    }

    /// [`Registry::window_over`] among windows known to be open.
    pub(super) fn window_among(&self, j: JobIdx, open: &[(usize, u64)]) -> Option<(String, u64)> {
        let name = &self.jobs[j].name;
        open.iter()
            .filter(|(i, _)| self.maintenance[*i].covers(name))
            .max_by_key(|(_, until)| *until)
            .map(|(i, until)| (self.maintenance[*i].name.clone(), *until))
    }

    /// Every job `j` depends on that is down or failed now, in
    /// `depends_on` order (the first is what holds its alarms).
    pub(super) fn blocked_all(&self, j: JobIdx) -> Vec<String> {
        self.jobs[j]
            .cfg
            .depends_on
            .iter()
            .filter(|parent| {
                self.index.get(parent.as_str()).is_some_and(|&p| {
                    let open = &self.jobs[p].open;
                    open.contains_key(&Slot::Down) || open.contains_key(&Slot::Failed)
                })
            })
            .cloned()
            .collect()
    }

    /// What would hold a new alarm of job `j` back now; `None`: nothing.
    /// A maintenance window's end is armed as the time to judge again.
    pub(super) fn hold(&mut self, j: JobIdx, now: Now) -> Option<Held> {
        let silence = self.jobs[j].silence.is_some();
        let window = self.window_over(j, now.wall_ms);
        let blocked = self.blocked_all(j).into_iter().next();
        if !silence && window.is_none() && blocked.is_none() {
            return None;
        }
        if let Some((_, until)) = &window {
            self.deadlines.set(Timer::HoldEnd(j), at_wall(now, *until));
        }
        Some(Held {
            since_ms: now.wall_ms,
            maintenance: window.map(|(name, _)| name),
            blocked_by: blocked,
            silence,
        })
    }

    /// Judges job `j`'s held incidents again: those nothing holds any more
    /// are notified now; the others note what holds them.
    pub(super) fn release(&mut self, j: JobIdx, now: Now, out: &mut Vec<Notification>) {
        if self.jobs[j].open.values().all(|o| o.notified) {
            return;
        }
        self.touch(j);
        if let Some(still) = self.hold(j, now) {
            for open in self.jobs[j].open.values_mut().filter(|o| !o.notified) {
                let held = open.held.get_or_insert_with(|| {
                    Box::new(Held {
                        since_ms: still.since_ms,
                        ..Held::default()
                    })
                });
                if still.maintenance.is_some() {
                    held.maintenance.clone_from(&still.maintenance);
                }
                if still.blocked_by.is_some() {
                    held.blocked_by.clone_from(&still.blocked_by);
                }
                held.silence |= still.silence;
            }
            return;
        }
        self.deadlines.clear(&Timer::HoldEnd(j));
        let slots: Vec<Slot> = self.jobs[j]
            .open
            .iter()
            .filter(|(_, o)| !o.notified)
            .map(|(slot, _)| *slot)
            .collect();
        for slot in slots {
            let Some(open) = self.jobs[j].open.get_mut(&slot) else {
                continue;
            };
            open.notified = true;
            let held = open.held.take().map(|h| *h).unwrap_or(Held {
                // A record from before holds were kept: a silence held it.
                silence: true,
                since_ms: now.wall_ms,
                ..Held::default()
            });
            let mut note = open.first.clone();
            note.detected_ms = now.wall_ms;
            let held_ms = now.wall_ms.saturating_sub(held.since_ms);
            let what = held_by(&held);
            let why = format!(
                "held back by {what} for {}",
                human(Duration::from_millis(held_ms))
            );
            note.text = Some(match note.text.as_deref() {
                Some(text) if !text.is_empty() => format!("{text} ({why})"),
                _ => why,
            });
            note.held_ms = Some(held_ms);
            note.held_by = held.maintenance;
            note.blocked_by = held.blocked_by.map(Arc::from);
            // Reminders and escalation repeat it as it went out, the
            // first one `repeat` after it went out.
            open.first = note.clone();
            out.push(note);
            if let Some(every) = self.jobs[j].cfg.repeat {
                self.deadlines.set(Timer::Repeat(j, slot), now.at + every);
            }
            self.arm_escalation(j, slot, now);
        }
    }

    /// Judges again the held alarms of every job that depends on job `p`
    /// (its `down` or `failed` just closed).
    pub(super) fn release_dependents(&mut self, p: JobIdx, now: Now, out: &mut Vec<Notification>) {
        if self.dependents.is_empty() {
            return;
        }
        let Some(children) = self.dependents.get(&self.jobs[p].name).cloned() else {
            return;
        };
        for child in children {
            if let Some(&c) = self.index.get(&child) {
                self.release(c, now, out);
            }
        }
    }

    /// An acknowledgement a farm peer took for an incident not open here
    /// (yet: this watcher may raise it a moment later): applied when it
    /// opens. Bounded: the oldest go.
    pub fn ack_when_opened(&mut self, incident: &str, ack: crate::notification::Ack) {
        if self.early_acks.len() >= EARLY_ACKS_KEPT {
            self.early_acks.pop_front();
        }
        self.early_acks.push_back((Box::from(incident), ack));
    }

    /// Judges every held alarm again (windows changed, the clock stepped,
    /// the job list changed).
    pub(super) fn release_all(&mut self, now: Now, out: &mut Vec<Notification>) {
        for j in 0..self.jobs.len() {
            self.release(j, now, out);
        }
    }

    /// Who depends on whom, from the jobs' settings (at start and after
    /// the job list changed).
    pub(super) fn relink(&mut self) {
        self.dependents.clear();
        self.followers.clear();
        for j in 0..self.jobs.len() {
            self.link(j);
        }
    }

    /// Adds job `j`'s `depends_on` and `after` to the links. A stale link
    /// (a job since changed or gone) costs only a needless judging again:
    /// what holds an alarm is always read from the settings.
    pub(super) fn link(&mut self, j: JobIdx) {
        let job = &self.jobs[j];
        for parent in &job.cfg.depends_on {
            let children = self
                .dependents
                .entry(Arc::from(parent.as_str()))
                .or_default();
            if !children.contains(&job.name) {
                children.push(Arc::clone(&job.name));
            }
        }
        if let Some(after) = &job.cfg.after {
            let next = self.followers.entry(Arc::from(after.as_str())).or_default();
            if !next.contains(&job.name) {
                next.push(Arc::clone(&job.name));
            }
        }
    }
}

/// What held an alarm, for people: "maintenance sunday-patching",
/// "db-host-alive being down or failed", "a silence".
fn held_by(held: &Held) -> String {
    let mut parts = Vec::new();
    if let Some(window) = &held.maintenance {
        parts.push(format!("maintenance {window}"));
    }
    if let Some(parent) = &held.blocked_by {
        parts.push(format!("{parent} being down or failed"));
    }
    if held.silence {
        parts.push("a silence".to_owned());
    }
    parts.join(" and ")
}
