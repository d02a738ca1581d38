//! Fewer, truer alarms: dependencies, chains, maintenance windows,
//! acknowledgement and escalation, on a fake clock.

use super::*;
use crate::config::{EscalationStep, MaintenanceWindow};
use crate::notification::Ack;
use crate::schedule::Schedule;

/// A wall time on an hour boundary (ten days after the epoch): windows
/// opening on the hour open at `s = 0`.
const W0: u64 = 864_000_000;

fn at(t0: Instant, s: u64) -> Now {
    Now::new(t0 + Duration::from_secs(s), W0 + s * 1000)
}

fn every(name: &str, secs: u64) -> JobConfig {
    JobConfig::new(
        name,
        Schedule::Every(Duration::from_secs(secs)),
        Duration::ZERO,
    )
}

fn events(notes: &[Notification]) -> Vec<(String, Event)> {
    notes.iter().map(|n| (n.job.to_string(), n.event)).collect()
}

fn hb(job: &str, seq: u64) -> Message {
    msg(Kind::Heartbeat, job, None, seq)
}

#[test]
fn a_parent_down_makes_one_alarm_and_its_dependents_are_judged_again_when_it_recovers() {
    let t0 = Instant::now();
    let mut child = every("etl", 12);
    child.depends_on = vec!["db".into()];
    let mut grandchild = every("report", 13);
    grandchild.depends_on = vec!["etl".into()];
    let jobs = [every("db", 10), child, grandchild, every("other", 12)];
    let mut r = registry_of("w", &jobs, t0, W0);
    assert_eq!(
        events(&r.on_deadlines(at(t0, 10))),
        [("db".into(), Event::Down)]
    );
    assert_eq!(
        events(&r.on_deadlines(at(t0, 13))),
        [("other".into(), Event::Down)],
        "etl and report are held: one alarm for the root cause"
    );
    let views = r.views(at(t0, 13));
    let etl = views.iter().find(|v| v.name == "etl").unwrap();
    assert_eq!(etl.blocked_by, ["db"]);
    assert_eq!(etl.state, JobStatus::Down, "recorded as usual");
    assert!(etl.incidents[0].held.is_some());
    let order: Vec<(&str, usize)> = under_causes(&views)
        .into_iter()
        .map(|(i, d)| (views[i].name.as_str(), d))
        .collect();
    assert_eq!(order, [("db", 0), ("etl", 1), ("report", 2), ("other", 0)]);

    // db is back: its follow-up first, then etl, still down, is sent with
    // how long it was held; report stays held (etl is down now).
    let out = r.on_message(&hb("db", 1), at(t0, 20));
    assert_eq!(
        events(&out),
        [("db".into(), Event::Recovered), ("etl".into(), Event::Down)]
    );
    assert_eq!(out[1].blocked_by.as_deref(), Some("db"));
    assert_eq!(out[1].held_ms, Some(7_000), "held from 13 s to 20 s");
    assert!(
        out[1]
            .text
            .as_deref()
            .unwrap()
            .contains("held back by db being down")
    );
    // etl is back: report is judged again, and is still silent.
    let out = r.on_message(&hb("etl", 2), at(t0, 25));
    assert_eq!(
        events(&out),
        [
            ("etl".into(), Event::Recovered),
            ("report".into(), Event::Down)
        ]
    );
    assert_eq!(out[1].blocked_by.as_deref(), Some("etl"));
}

#[test]
fn a_dependent_that_recovered_while_held_is_never_notified() {
    let t0 = Instant::now();
    let mut child = every("etl", 12);
    child.depends_on = vec!["db".into()];
    let mut r = registry_of("w", &[every("db", 10), child], t0, W0);
    r.on_deadlines(at(t0, 10));
    assert!(r.on_deadlines(at(t0, 12)).is_empty());
    assert!(
        r.on_message(&hb("etl", 1), at(t0, 15)).is_empty(),
        "no follow-up owed"
    );
    assert_eq!(
        events(&r.on_message(&hb("db", 2), at(t0, 20))),
        [("db".into(), Event::Recovered)]
    );
}

#[test]
fn a_failed_parent_holds_too_and_follow_ups_are_never_held() {
    let t0 = Instant::now();
    let mut child = every("etl", 100);
    child.depends_on = vec!["db".into()];
    let mut r = registry_of("w", &[every("db", 100), child], t0, W0);
    let out = r.on_message(&msg(Kind::Fail, "etl", None, 1), at(t0, 1));
    assert_eq!(events(&out), [("etl".into(), Event::Failed)]);
    assert_eq!(
        events(&r.on_message(&msg(Kind::Fail, "db", None, 2), at(t0, 2))),
        [("db".into(), Event::Failed)]
    );
    // etl's follow-up goes out though db is failed.
    assert_eq!(
        events(&r.on_message(&msg(Kind::Success, "etl", None, 3), at(t0, 3))),
        [("etl".into(), Event::Recovered)]
    );
    // A new failure of etl now is held.
    assert!(
        r.on_message(&msg(Kind::Fail, "etl", None, 4), at(t0, 4))
            .is_empty()
    );
}

fn chain() -> [JobConfig; 2] {
    let mut load = JobConfig::new(
        "load",
        Schedule::Every(crate::config::MAX_DURATION),
        Duration::ZERO,
    );
    load.after = Some("extract".into());
    load.start_within = Some(Duration::from_secs(60));
    [every("extract", 86_400), load]
}

#[test]
fn a_chain_expects_a_start_after_each_success_and_names_it_alike_on_every_watcher() {
    let t0 = Instant::now();
    let mut a = registry_of("a", &chain(), t0, W0);
    let mut b = registry_of("b", &chain(), t0, W0);
    assert!(
        a.on_deadlines(at(t0, 500)).is_empty(),
        "nothing awaited before a success"
    );
    let success = msg(Kind::Success, "extract", None, 1);
    a.on_message(&success, at(t0, 1000));
    b.on_message(&success, at(t0, 1001));
    assert!(a.on_deadlines(at(t0, 1059)).is_empty());
    let late = a.on_deadlines(at(t0, 1060));
    assert_eq!(events(&late), [("load".into(), Event::Late)]);
    assert!(
        late[0]
            .text
            .as_deref()
            .unwrap()
            .contains("extract's success"),
        "{late:?}"
    );
    let other = b.on_deadlines(at(t0, 1061));
    assert_eq!(
        late[0].incident, other[0].incident,
        "one incident for the farm"
    );
    assert!(
        a.on_deadlines(at(t0, 5000)).is_empty(),
        "one late per success"
    );
    let up = a.on_message(&msg(Kind::Start, "load", Some(1), 2), at(t0, 5001));
    assert_eq!(events(&up), [("load".into(), Event::Recovered)]);
    assert_eq!(a.views(at(t0, 5001))[1].schedule, "after extract");
    assert_eq!(a.views(at(t0, 5001))[1].next_deadline_ms, None);
}

#[test]
fn a_step_started_before_its_predecessors_success_is_heard_is_not_late() {
    let t0 = Instant::now();
    let mut r = registry_of("a", &chain(), t0, W0);
    r.on_message(&msg(Kind::Start, "extract", Some(1), 1), at(t0, 900));
    // Started by extract's run 95 s before its success: it counts.
    r.on_message(&msg(Kind::Start, "load", Some(2), 2), at(t0, 905));
    r.on_message(&msg(Kind::Success, "extract", Some(1), 3), at(t0, 1000));
    assert!(r.on_deadlines(at(t0, 2000)).is_empty());
    // The next success, with no start after it, is late.
    r.on_message(&msg(Kind::Success, "extract", None, 4), at(t0, 3000));
    assert_eq!(
        events(&r.on_deadlines(at(t0, 3060))),
        [("load".into(), Event::Late)]
    );
}

fn window(jobs: Option<&[&str]>) -> MaintenanceWindow {
    MaintenanceWindow {
        name: "patch".into(),
        opens: Schedule::cron("0 * * * *", "UTC").unwrap(),
        duration: Duration::from_secs(60),
        jobs: jobs.map(|j| j.iter().map(|p| glob::Pattern::new(p).unwrap()).collect()),
    }
}

#[test]
fn a_maintenance_window_holds_alarms_and_sends_those_still_open_at_its_end() {
    let t0 = Instant::now();
    let jobs = [
        every("db-backup", 10),
        every("db-vacuum", 10),
        every("web", 10),
    ];
    let mut r = registry_of("w", &jobs, t0, W0);
    assert!(
        r.set_maintenance(vec![window(Some(&["db-*"]))], at(t0, 0))
            .is_empty()
    );
    for (seq, job) in ["db-backup", "db-vacuum", "web"].into_iter().enumerate() {
        r.on_message(&hb(job, seq as u64), at(t0, 1));
    }
    assert_eq!(
        events(&r.on_deadlines(at(t0, 11))),
        [("web".into(), Event::Down)],
        "the db jobs are in the window"
    );
    assert_eq!(r.views(at(t0, 11))[0].maintenance.as_deref(), Some("patch"));
    assert!(
        r.on_message(&hb("db-vacuum", 9), at(t0, 30)).is_empty(),
        "closed in the window: nothing owed"
    );
    for (seq, s) in [38, 46, 54].into_iter().enumerate() {
        assert!(
            r.on_message(&hb("db-vacuum", 10 + seq as u64), at(t0, s))
                .is_empty()
        );
    }
    assert!(r.on_deadlines(at(t0, 59)).is_empty());
    let out = r.on_deadlines(at(t0, 60));
    assert_eq!(events(&out), [("db-backup".into(), Event::Down)]);
    assert_eq!(out[0].held_by.as_deref(), Some("patch"));
    assert_eq!(out[0].held_ms, Some(49_000));
    assert!(
        out[0]
            .text
            .as_deref()
            .unwrap()
            .contains("held back by maintenance patch")
    );
}

#[test]
fn no_reminders_in_a_maintenance_window() {
    let t0 = Instant::now();
    let mut job = every("db", 10);
    job.repeat = Some(Duration::from_secs(20));
    let mut r = registry_of("w", &[job], t0, W0 + 3_000_000);
    let later = |s: u64| Now::new(t0 + Duration::from_secs(s), W0 + 3_000_000 + s * 1000);
    r.set_maintenance(vec![window(None)], later(0));
    assert_eq!(
        events(&r.on_deadlines(later(10))),
        [("db".into(), Event::Down)]
    );
    // The window opens at W0 + 3600 s (s = 600) for 60 s.
    let mut reminders = Vec::new();
    for s in (30..700).step_by(10) {
        reminders.extend(r.on_deadlines(later(s)).into_iter().map(|n| (s, n.repeat)));
    }
    assert!(
        reminders.iter().all(|(s, _)| !(600..660).contains(s)),
        "{reminders:?}"
    );
    assert!(reminders.iter().any(|(s, _)| *s >= 660), "{reminders:?}");
}

fn escalating() -> JobConfig {
    let mut job = every("etl", 10);
    job.repeat = Some(Duration::from_secs(20));
    job.escalate = vec![
        EscalationStep {
            after: Duration::from_secs(30),
            notify: vec!["pager".into()],
        },
        EscalationStep {
            after: Duration::from_secs(90),
            notify: vec!["cto".into()],
        },
    ];
    job
}

fn ack(by: &str) -> Ack {
    Ack {
        by: by.into(),
        at_ms: 0,
        comment: Some("on it".into()),
    }
}

#[test]
fn escalation_steps_go_out_once_each_at_their_time() {
    let t0 = Instant::now();
    let mut r = registry_of("w", &[escalating()], t0, W0);
    let mut sent = Vec::new();
    for s in 10..=120 {
        for n in r.on_deadlines(at(t0, s)) {
            sent.push((s, n.repeat, n.escalation));
        }
    }
    assert_eq!(
        sent,
        [
            (10, 0, 0),
            (30, 1, 0),
            (40, 0, 1),
            (50, 2, 0),
            (70, 3, 0),
            (90, 4, 0),
            (100, 0, 2),
            (110, 5, 0)
        ]
    );
    let up = r.on_message(&hb("etl", 1), at(t0, 121));
    assert_eq!(
        up[0].escalation, 2,
        "the follow-up reaches both steps' channels"
    );
}

#[test]
fn an_acknowledgement_stops_reminders_and_escalation_but_not_the_follow_up() {
    let t0 = Instant::now();
    let mut r = registry_of("w", &[escalating()], t0, W0);
    let down = r.on_deadlines(at(t0, 10)).remove(0);
    assert!(r.ack("nope", ack("ana"), at(t0, 11)).is_err());
    let mut sent = Vec::new();
    for s in 11..=45 {
        sent.extend(
            r.on_deadlines(at(t0, s))
                .into_iter()
                .map(|n| (s, n.escalation)),
        );
    }
    assert_eq!(sent, [(30, 0), (40, 1)]);
    assert_eq!(
        r.ack(&down.incident, ack("ana"), at(t0, 46)),
        Ok(Acked::Now("etl".into()))
    );
    assert!(
        matches!(r.ack(&down.incident, ack("bob"), at(t0, 47)), Ok(Acked::Already(a)) if a.by == "ana")
    );
    let view = &r.views(at(t0, 47))[0];
    assert_eq!(view.incidents[0].acked.as_ref().unwrap().by, "ana");
    for s in 47..=300 {
        assert!(r.on_deadlines(at(t0, s)).is_empty(), "at {s}");
    }
    let up = r.on_message(&hb("etl", 1), at(t0, 301));
    assert_eq!(events(&up), [("etl".into(), Event::Recovered)]);
    assert_eq!(up[0].acked.as_ref().unwrap().by, "ana");
    assert_eq!(up[0].escalation, 1);
}

#[test]
fn holds_acknowledgements_and_escalation_survive_a_restart() {
    let t0 = Instant::now();
    let mut child = escalating();
    child.depends_on = vec!["db".into()];
    let mut other = every("x", 10);
    other.escalate = escalating().escalate;
    let jobs = [every("db", 5), child, other];
    let mut r = registry_of("w", &jobs, t0, W0);
    r.on_deadlines(at(t0, 5));
    let x_down = r.on_deadlines(at(t0, 10));
    assert_eq!(events(&x_down), [("x".into(), Event::Down)], "etl held");
    let x_down = x_down.into_iter().find(|n| &*n.job == "x").unwrap();
    r.ack(&x_down.incident, ack("ana"), at(t0, 12)).unwrap();
    let saved: Vec<(String, String)> = r
        .take_dirty(at(t0, 15))
        .into_iter()
        .map(|(name, rec)| (name, serde_json::to_string(&rec).unwrap()))
        .collect();
    let mut again = registry_of("w", &jobs, t0 + S * 15, W0 + 15_000);
    again.restore(&saved, at(t0, 15));
    let views = again.views(at(t0, 15));
    assert!(views[1].incidents[0].held.is_some());
    assert_eq!(views[2].incidents[0].acked.as_ref().unwrap().by, "ana");
    let mut sent = Vec::new();
    for s in 15..=60 {
        sent.extend(
            again
                .on_deadlines(at(t0, s))
                .into_iter()
                .map(|n| (s, n.job.to_string(), n.escalation)),
        );
    }
    assert!(
        sent.iter().all(|(_, job, _)| job != "x"),
        "x is acknowledged: {sent:?}"
    );
    let out = again.on_message(&hb("db", 1), at(t0, 61));
    assert_eq!(
        events(&out),
        [("db".into(), Event::Recovered), ("etl".into(), Event::Down)]
    );
    assert_eq!(out[1].held_ms, Some(51_000));
}

#[test]
fn a_peers_acknowledgement_learnt_before_the_incident_opens_here_applies_when_it_does() {
    let t0 = Instant::now();
    let mut a = registry_of("a", &[escalating()], t0, W0);
    let mut b = registry_of("b", &[escalating()], t0, W0);
    let down = a.on_deadlines(at(t0, 10)).remove(0);
    assert!(
        b.ack(&down.incident, ack("ana"), at(t0, 10)).is_err(),
        "not open at b yet"
    );
    b.ack_when_opened(&down.incident, ack("ana"));
    assert_eq!(
        b.on_deadlines(at(t0, 11)).len(),
        1,
        "b raises it too (the gate picks one sender)"
    );
    assert_eq!(
        b.views(at(t0, 11))[0].incidents[0]
            .acked
            .as_ref()
            .unwrap()
            .by,
        "ana"
    );
    for s in 12..=200 {
        assert!(b.on_deadlines(at(t0, s)).is_empty(), "at {s}");
    }
}

#[test]
fn removing_a_job_depended_on_releases_its_dependents_and_follow_ups_reach_every_step() {
    let t0 = Instant::now();
    let mut child = escalating();
    child.depends_on = vec!["db".into()];
    let mut r = registry_of("w", &[every("db", 5), child.clone()], t0, W0);
    assert_eq!(
        events(&r.on_deadlines(at(t0, 5))),
        [("db".into(), Event::Down)]
    );
    assert!(r.on_deadlines(at(t0, 10)).is_empty(), "etl held");
    let summary = r.reconfigure(&[child.clone()], 4, S * 300, at(t0, 20));
    assert_eq!(
        events(&summary.closed),
        [("db".into(), Event::Recovered), ("etl".into(), Event::Down)],
        "db's follow-up, then etl judged again with nothing holding it"
    );
    let released = &summary.closed[1];
    assert_eq!(released.held_ms, Some(10_000));
    // Its first reminder comes one `repeat` (20 s) after it went out.
    assert!(r.on_deadlines(at(t0, 39)).is_empty());
    assert_eq!(r.on_deadlines(at(t0, 40))[0].repeat, 1);
    // Escalated and acknowledged, then removed: the follow-up reaches the
    // step's channels and says who acknowledged it.
    let steps: Vec<u32> = (41..=50)
        .flat_map(|s| r.on_deadlines(at(t0, s)))
        .map(|n| n.escalation)
        .collect();
    assert_eq!(steps, [1], "30 s after it went out");
    r.ack(&released.incident, ack("ana"), at(t0, 51)).unwrap();
    let summary = r.reconfigure(&[every("other", 5)], 4, S * 300, at(t0, 60));
    let up = summary.closed.iter().find(|n| &*n.job == "etl").unwrap();
    assert_eq!((up.event, up.escalation), (Event::Recovered, 1));
    assert_eq!(up.acked.as_ref().unwrap().by, "ana");
    assert_eq!(
        (up.blocked_by.as_deref(), up.held_ms),
        (None, None),
        "an alarm's fields only"
    );
}
