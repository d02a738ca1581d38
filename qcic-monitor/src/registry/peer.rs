//! The registry's farm part: what this watcher tells its peers of each job
//! (the last message it heard, since when it has heard the job, its last
//! start) and what it makes of theirs. A peer's evidence moves deadlines
//! (the job is down only if no reachable watcher heard it), closes alarms
//! the farm's evidence disproves, dates a backlog a peer heard late, and
//! names each outage by the latest message any watcher heard, so that
//! every watcher gives one outage one incident id.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use qcic_sdk::Kind;

use super::{
    JobIdx, Now, Registry, STALE_AFTER_MS, Seen, Slot, at_wall, human, millis, past_at_wall,
};
use crate::notification::{Event, Notification, incident_id};

/// What a farm peer heard of a job: its last message, and since when it has
/// heard the job without a break, and its last start. Gossiped as
/// `wall;up_since;start;pid;seq;ts;kind;host`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerSeen {
    /// When the peer heard the last message (unix ms, the peer's clock).
    pub wall_ms: u64,
    /// Since when the peer has heard the job without a break.
    pub up_since_ms: u64,
    /// When the peer last heard a `start` (0: never).
    pub start_ms: u64,
    /// The last message's pid, seq and host: the basis of incident ids, so
    /// that every watcher names the same incident alike.
    pub pid: u32,
    /// See `pid`.
    pub seq: u64,
    /// The last message's sender timestamp; see `pid`.
    pub ts_ms: u64,
    /// The last message's kind.
    pub kind: Kind,
    /// See `pid`.
    pub host: Arc<str>,
}

impl PeerSeen {
    /// The gossip form.
    pub fn encode(&self) -> String {
        format!(
            "{};{};{};{};{};{};{};{}",
            self.wall_ms,
            self.up_since_ms,
            self.start_ms,
            self.pid,
            self.seq,
            self.ts_ms,
            self.kind.code(),
            self.host
        )
    }

    /// From the gossip form; `None` if it is not one.
    pub fn decode(text: &str) -> Option<PeerSeen> {
        let mut parts = text.splitn(8, ';');
        let mut next = || parts.next();
        Some(PeerSeen {
            wall_ms: next()?.parse().ok()?,
            up_since_ms: next()?.parse().ok()?,
            start_ms: next()?.parse().ok()?,
            pid: next()?.parse().ok()?,
            seq: next()?.parse().ok()?,
            ts_ms: next()?.parse().ok()?,
            kind: Kind::from_code(next()?.parse().ok()?)?,
            host: Arc::from(next()?),
        })
    }
}

impl Seen {
    /// What a farm peer is told of it.
    pub(super) fn as_peer_seen(&self) -> PeerSeen {
        PeerSeen {
            wall_ms: self.wall_ms,
            up_since_ms: self.up_since_ms,
            start_ms: self.start_ms,
            pid: self.pid,
            seq: self.seq,
            ts_ms: self.ts_ms,
            kind: self.kind,
            host: Arc::clone(&self.host),
        }
    }
}

impl Registry {
    /// Keeps the set of jobs heard here, for the farm's gossip.
    pub fn with_heard_tracking(mut self) -> Registry {
        self.heard = Some(HashSet::new());
        self
    }

    /// Whether something was heard since the last [`Registry::take_heard`].
    pub fn has_heard(&self) -> bool {
        self.heard.as_ref().is_some_and(|h| !h.is_empty())
    }

    /// What this watcher heard since the last call, for its peers: the
    /// messages heard here, and after a restart what it knew of every job,
    /// peers' evidence included (the peer that told it may have lost its
    /// state since, and a watcher that restarted wiped learns the farm's
    /// last message of each job from whoever still holds it).
    pub fn take_heard(&mut self) -> Vec<(Arc<str>, PeerSeen)> {
        let Some(heard) = &mut self.heard else {
            return Vec::new();
        };
        let mut out = Vec::with_capacity(heard.len());
        for j in heard.drain() {
            let job = &self.jobs[j];
            if let Some(last) = job.last.as_ref() {
                out.push((Arc::clone(&job.name), last.as_peer_seen()));
            }
        }
        out
    }

    /// Takes what farm peer `peer` heard of `job`. The job is down only if
    /// no reachable watcher has heard from it: a newer message heard there
    /// moves this watcher's `down` deadline, and ends a `down` incident
    /// open here: `retracted` if the peer heard the job without a break
    /// since before the alarm (it was never down), `recovered` otherwise.
    /// A newer `start` heard there counts for `late` alike.
    pub fn on_peer_seen(
        &mut self,
        peer: &str,
        job: &str,
        seen: &PeerSeen,
        now: Now,
    ) -> Vec<Notification> {
        let mut out = Vec::new();
        let Some(&j) = self.index.get(job) else {
            return out;
        };
        // What the peer heard late (a backlog it was sent after a cut, or
        // after it restarted without this host's clock offset) was alive
        // when it was sent, not when it arrived there. Only evidence of a
        // burst is judged so: a peer that has heard the job without a
        // break for a while heard it live (and judged its clock itself, with
        // offsets fresher than this watcher's if the sender's clock stepped
        // while only the peer heard it).
        let burst = seen.wall_ms.saturating_sub(seen.up_since_ms) < STALE_AFTER_MS;
        let late = self
            .sent_late(j, &seen.host, seen.ts_ms, seen.wall_ms, now)
            .filter(|_| burst);
        let corrected;
        let seen = match late {
            Some(late) => {
                self.stats.stale_messages.fetch_add(1, Ordering::Relaxed);
                let text = format!(
                    "watcher {peer} heard a message sent {} before it arrived there: not taken as life",
                    human(Duration::from_millis(late))
                );
                self.remember(j, now.wall_ms, text);
                corrected = PeerSeen {
                    wall_ms: seen.wall_ms - late,
                    up_since_ms: seen.up_since_ms.min(seen.wall_ms - late),
                    host: Arc::clone(&seen.host),
                    ..*seen
                };
                &corrected
            }
            None => seen,
        };
        let cfg = &self.jobs[j].cfg;
        let down_ms = cfg.schedule.down_at_ms(seen.wall_ms, cfg.grace);
        let overdue = down_ms <= now.wall_ms;
        if let Some(last) = self.jobs[j]
            .last
            .as_mut()
            .filter(|l| l.wall_ms >= seen.wall_ms)
        {
            // The very message this watcher heard last reached the peer
            // long before: it was queued on the way here (a watcher that
            // restarted without its state cannot tell by the clock). The
            // job was alive when the peer heard it, not since.
            // Only if the peer's time makes the job overdue already: the
            // watchers' clocks may differ by a few seconds, never by a
            // whole period.
            let same = last.seq == seen.seq && last.pid == seen.pid && *last.host == *seen.host;
            if same
                && overdue
                && !last.by_peer
                && !last.renamed
                && last.wall_ms >= seen.wall_ms + STALE_AFTER_MS
            {
                last.at = past_at_wall(now, seen.wall_ms);
                last.wall_ms = seen.wall_ms;
                last.up_since_ms = last.up_since_ms.min(seen.wall_ms);
                self.stats.stale_messages.fetch_add(1, Ordering::Relaxed);
                self.jobs[j].down_from_ms = seen.wall_ms;
                self.set_down(j, at_wall(now, down_ms));
                self.touch(j);
                let text = format!(
                    "watcher {peer} heard the last message long before it arrived here: delivered late, not taken as life"
                );
                self.remember(j, now.wall_ms, text);
                return out;
            }
            // Nothing new for the deadline; it may still be the later
            // message by the sender's clock (one this watcher missed).
            if last.name_by_latest(seen.pid, seen.seq, seen.ts_ms, &seen.host) {
                self.touch(j);
                self.rename_down(j, peer, now, &mut out);
            }
            return out;
        }
        let known = self.jobs[j].last.take();
        let known_start = known.as_ref().map_or(0, |l| l.start_ms);
        let at = at_wall(now, down_ms);
        self.touch(j);
        self.jobs[j].last = Some(Seen {
            at: past_at_wall(now, seen.wall_ms),
            wall_ms: seen.wall_ms,
            kind: seen.kind,
            pid: seen.pid,
            seq: seen.seq,
            ts_ms: seen.ts_ms,
            host: Arc::clone(&seen.host),
            up_since_ms: seen.up_since_ms,
            start_ms: seen.start_ms.max(known_start),
            by_peer: true,
            renamed: false,
        });
        if let (Some(known), Some(last)) = (&known, self.jobs[j].last.as_mut()) {
            // The later message by the sender's clock names the outage.
            last.name_by_latest(known.pid, known.seq, known.ts_ms, &known.host);
        }
        if seen.start_ms > known_start {
            self.peer_started(j, peer, seen.start_ms, now, &mut out);
        }
        if self.jobs[j].down_at.is_none_or(|old| at > old) {
            self.jobs[j].down_from_ms = seen.wall_ms;
            self.set_down(j, at);
        }
        // Still down in the farm's view too (down_ms passed): the incident
        // stays, unless the peer heard the job after it was raised: then
        // it named a silence the farm did not see (this watcher was cut
        // off), and the outage the farm sees began later. It is closed,
        // and the deadline (passed) raises that outage under the name every
        // watcher gives it, from the last message the farm heard.
        let open = self.jobs[j].open.get(&Slot::Down);
        let superseded = open.is_some_and(|o| seen.wall_ms > o.first.detected_ms);
        if let (Some(open), true) = (open, down_ms > now.wall_ms || superseded) {
            let (event, text) = if seen.up_since_ms <= open.first.detected_ms {
                (
                    Event::Retracted,
                    format!("false alarm: watcher {peer} heard the job all along"),
                )
            } else {
                (Event::Recovered, format!("heard again by watcher {peer}"))
            };
            self.close_as(j, Slot::Down, event, now, || text, &mut out);
        } else {
            self.rename_down(j, peer, now, &mut out);
        }
        for n in &out {
            self.remember(j, now.wall_ms, format!("notified {}", n.headline()));
        }
        out
    }

    /// An open `down` named by an earlier message than the latest one the
    /// farm heard is named again: retracted as "the same outage as" the
    /// name every watcher gives it, and raised again (under that name) by
    /// the deadline loop. (Held at the gate and never sent, both go; sent,
    /// the retraction tells people the two are one outage.)
    fn rename_down(&mut self, j: JobIdx, peer: &str, now: Now, out: &mut Vec<Notification>) {
        let job = &self.jobs[j];
        let (Some(open), Some(last)) = (job.open.get(&Slot::Down), &job.last) else {
            return;
        };
        let id = incident_id(&job.name, Event::Down, &last.basis());
        if open.id == *id {
            return;
        }
        let text = format!(
            "the same outage as incident {id}, named by the later message watcher {peer} heard"
        );
        self.close_as(j, Slot::Down, Event::Retracted, now, || text, out);
        // Raised by the deadline loop, due now.at, not here: other peers'
        // evidence learnt in the same round may still show the job heard
        // later (raised and retracted at once, the name would count as
        // closed here, and this watcher alone would name the outage anew).
        self.set_down(j, now.at);
    }

    /// A start heard by a farm peer counts as heard here for the `late`
    /// timer: a start for the awaited slot arms the next slot, as a start
    /// heard here would, and a start for the slot of an open `late` closes
    /// it — `retracted` if it came before the alarm (the alarm was false),
    /// `recovered` if after.
    fn peer_started(
        &mut self,
        j: JobIdx,
        peer: &str,
        start_ms: u64,
        now: Now,
        out: &mut Vec<Notification>,
    ) {
        let Some(within) = self.jobs[j].cfg.start_within else {
            return;
        };
        let within_ms = millis(within);
        if let Some(open) = self.jobs[j].open.get(&Slot::Late) {
            // The alarm was raised `start_within` after its slot; a start
            // from `start_within` before that slot on belongs to it.
            let detected = open.first.detected_ms;
            if start_ms.saturating_add(within_ms.saturating_mul(2)) < detected {
                return;
            }
            let (event, text) = if start_ms <= detected {
                (
                    Event::Retracted,
                    format!("false alarm: watcher {peer} heard the start in time"),
                )
            } else {
                (Event::Recovered, format!("start heard by watcher {peer}"))
            };
            self.close_as(j, Slot::Late, event, now, || text, out);
        } else if self.jobs[j]
            .expected_start_ms
            .is_none_or(|expected| start_ms.saturating_add(within_ms) < expected)
        {
            return;
        }
        self.arm_late(j, now, start_ms);
    }
}
