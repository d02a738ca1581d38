//! Down, failed, overrun and recovery; bounded tables.

use super::*;

fn registry(jobs: &[JobConfig], t0: Instant) -> Registry {
    registry_of("w1", jobs, t0, 0)
}

fn job(name: &str, every: u64, grace: u64, max_runtime: Option<u64>) -> JobConfig {
    let mut cfg = JobConfig::new(
        name,
        crate::schedule::Schedule::Every(S * every as u32),
        S * grace as u32,
    );
    cfg.max_runtime = max_runtime.map(|m| S * m as u32);
    cfg
}

#[test]
fn silent_job_goes_down_then_recovers_with_the_same_incident() {
    let t0 = Instant::now();
    let mut r = registry(&[job("etl", 10, 5, None)], t0);
    assert_eq!(r.next_deadline(), Some(t0 + 15 * S));
    assert!(
        r.on_message(&msg(Kind::Heartbeat, "etl", None, 1), Now::new(t0 + S, 1))
            .is_empty()
    );
    assert_eq!(r.next_deadline(), Some(t0 + 16 * S));
    assert!(r.on_deadlines(Now::new(t0 + 15 * S, 2)).is_empty());
    let down = r.on_deadlines(Now::new(t0 + 16 * S, 3));
    assert_eq!(down.len(), 1);
    assert_eq!(down[0].event, Event::Down);
    assert_eq!(&*down[0].watcher, "w1");
    assert_eq!(down[0].last_seen_ms, Some(1));
    assert_eq!(r.next_deadline(), None, "no repeat without a message");
    assert!(r.on_deadlines(Now::new(t0 + 100 * S, 4)).is_empty());
    let up = r.on_message(
        &msg(Kind::Heartbeat, "etl", None, 2),
        Now::new(t0 + 20 * S, 5),
    );
    assert_eq!(up.len(), 1);
    assert_eq!(up[0].event, Event::Recovered);
    assert_eq!(up[0].resolves, Some(Event::Down));
    assert_eq!(up[0].incident, down[0].incident);
    assert_eq!(
        up[0].duration_ms,
        Some(19_000),
        "from the last message to this one"
    );
}

#[test]
fn a_job_never_heard_from_gets_one_full_period() {
    let t0 = Instant::now();
    let mut r = registry(&[job("etl", 10, 5, None)], t0);
    assert!(
        r.on_deadlines(Now::new(t0 + 15 * S - Duration::from_millis(1), 0))
            .is_empty()
    );
    let down = r.on_deadlines(Now::new(t0 + 15 * S, 0));
    assert_eq!(down.len(), 1);
    assert_eq!(down[0].last_seen_ms, None);
    assert_eq!(
        *down[0].incident,
        *incident_id("etl", Event::Down, "never:0"),
        "named by when watching began"
    );
}

#[test]
fn fail_is_notified_at_once_and_success_resolves_it() {
    let t0 = Instant::now();
    let mut r = registry(&[job("etl", 3600, 0, None)], t0);
    let mut fail = msg(Kind::Fail, "etl", Some(7), 2);
    fail.exit_code = Some(3);
    fail.text = Some("disk full".into());
    let out = r.on_message(&fail, Now::new(t0, 0));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].event, Event::Failed);
    assert_eq!(out[0].exit_code, Some(3));
    assert_eq!(out[0].text.as_deref(), Some("disk full"));
    assert_eq!(out[0].run_id, Some(7));
    // A further fail while the incident is open is not a new incident.
    assert!(
        r.on_message(&msg(Kind::Fail, "etl", Some(8), 3), Now::new(t0, 0))
            .is_empty()
    );
    // A heartbeat does not undo a failed run; a success does.
    assert!(
        r.on_message(&msg(Kind::Heartbeat, "etl", None, 4), Now::new(t0, 0))
            .is_empty()
    );
    assert!(
        r.on_message(&msg(Kind::Start, "etl", Some(9), 5), Now::new(t0, 0))
            .is_empty()
    );
    let ok = r.on_message(
        &msg(Kind::Success, "etl", Some(9), 6),
        Now::new(t0 + 2 * S, 0),
    );
    assert_eq!(ok.len(), 1);
    assert_eq!(ok[0].resolves, Some(Event::Failed));
    assert_eq!(ok[0].incident, out[0].incident);
    assert_eq!(ok[0].duration_ms, Some(2000));
}

#[test]
fn runless_fail_is_resolved_by_a_heartbeat() {
    let t0 = Instant::now();
    let mut r = registry(&[job("etl", 3600, 0, None)], t0);
    assert_eq!(
        r.on_message(&msg(Kind::Fail, "etl", None, 1), Now::new(t0, 0))
            .len(),
        1
    );
    let up = r.on_message(&msg(Kind::Heartbeat, "etl", None, 2), Now::new(t0, 0));
    assert_eq!(up.len(), 1);
    assert_eq!(up[0].resolves, Some(Event::Failed));
}

#[test]
fn overrun_is_per_run_and_resolved_when_that_run_ends() {
    let t0 = Instant::now();
    let mut r = registry(&[job("etl", 3600, 0, Some(60))], t0);
    r.on_message(&msg(Kind::Start, "etl", Some(1), 1), Now::new(t0, 0));
    r.on_message(
        &msg(Kind::Start, "etl", Some(2), 2),
        Now::new(t0 + 30 * S, 0),
    );
    assert_eq!(r.next_deadline(), Some(t0 + 60 * S));
    let over = r.on_deadlines(Now::new(t0 + 60 * S, 0));
    assert_eq!(over.len(), 1);
    assert_eq!(over[0].event, Event::Overrun);
    assert_eq!(over[0].run_id, Some(1));
    // Run 2 ends in time: no notification, its deadline is gone.
    assert!(
        r.on_message(
            &msg(Kind::Success, "etl", Some(2), 3),
            Now::new(t0 + 61 * S, 0)
        )
        .is_empty()
    );
    assert!(r.on_deadlines(Now::new(t0 + 95 * S, 0)).is_empty());
    let done = r.on_message(
        &msg(Kind::Success, "etl", Some(1), 4),
        Now::new(t0 + 100 * S, 0),
    );
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].resolves, Some(Event::Overrun));
    assert_eq!(done[0].incident, over[0].incident);
}

#[test]
fn unknown_jobs_are_counted_with_bounded_memory() {
    let t0 = Instant::now();
    let stats = Arc::new(Stats::default());
    let mut r = Registry::new(
        "w1",
        &[job("etl", 10, 0, None)],
        4,
        S * 300,
        Arc::clone(&stats),
        Now::new(t0, 0),
    );
    for i in 0..100 {
        assert!(
            r.on_message(
                &msg(Kind::Heartbeat, &format!("x{i}"), None, i),
                Now::new(t0, 0)
            )
            .is_empty()
        );
    }
    assert_eq!(stats.unknown_job_messages.load(Ordering::Relaxed), 100);
    assert_eq!(stats.unknown_job_names.load(Ordering::Relaxed), 4);
    assert_eq!(r.unknown.names.len(), 4);
}

#[test]
fn runs_per_job_are_bounded() {
    let t0 = Instant::now();
    let mut r = registry(&[job("etl", 10, 0, Some(5))], t0);
    for i in 0..(MAX_RUNS_PER_JOB as u64 + 10) {
        r.on_message(&msg(Kind::Start, "etl", Some(i), i), Now::new(t0, 0));
    }
    assert_eq!(r.jobs[0].runs.len(), MAX_RUNS_PER_JOB);
    // One down deadline plus one overrun deadline per remembered run.
    assert_eq!(r.deadlines.len(), MAX_RUNS_PER_JOB + 1);
}

/// With `unknown_jobs = "alert"`: ten alerts a minute at most, and a name
/// the budget held back alerts once there is room (a flood of made-up
/// names must not hide a real job for good); the same name unknown again
/// after it was watched is a new incident.
#[test]
fn unknown_jobs_alert_within_a_budget_that_hides_no_name_for_good() {
    let t0 = Instant::now();
    let mut r = Registry::new(
        "w1",
        &[job("etl", 10, 0, None)],
        1000,
        S * 300,
        Arc::new(Stats::default()),
        Now::new(t0, 0),
    );
    r.set_unknown_jobs(crate::config::UnknownJobs::Alert);
    let at = |s: u64| Now::new(t0 + Duration::from_secs(s), s * 1000);
    let mut alerts = 0;
    for i in 0..10 {
        alerts += r
            .on_message(&msg(Kind::Heartbeat, &format!("junk{i}"), None, i), at(0))
            .len();
    }
    assert_eq!(alerts, 10);
    assert!(
        r.on_message(&msg(Kind::Heartbeat, "real", None, 1), at(1))
            .is_empty()
    );
    let later = r.on_message(&msg(Kind::Heartbeat, "real", None, 2), at(61));
    assert_eq!(later.len(), 1);
    assert_eq!(later[0].event, Event::UnknownJob);
    // Known for a while (its follow-up), then unknown again: a new incident.
    let mut owed = Vec::new();
    r.became_known("real", at(62), &mut owed);
    assert_eq!(owed[0].event, Event::Recovered);
    assert_eq!(owed[0].incident, later[0].incident);
    let again = r.on_message(&msg(Kind::Heartbeat, "real", None, 3), at(130));
    assert_eq!(again.len(), 1);
    assert_ne!(again[0].incident, later[0].incident);
}

/// `[declare] retire_after` counts from when a declared job was due, not
/// from its last message: a job whose period is longer than it keeps its
/// watch; one that stops is retired once, with one notice.
#[test]
fn a_declared_job_is_retired_when_overdue_not_for_a_long_period() {
    let t0 = Instant::now();
    let policy = crate::config::DeclareConfig {
        allow: true,
        jobs: None,
        senders: None,
        max_jobs: 100,
        min_every: Duration::ZERO,
        notify: None,
        retire_after: Duration::from_secs(5),
        curve: false,
        channels: Vec::new(),
        escalate: Vec::new(),
    };
    let mut r = registry(&[], t0).with_declare_policy(Some(policy));
    let at = |s: u64| Now::new(t0 + Duration::from_secs(s), s * 1000);
    for job in ["slow", "gone"] {
        let spec = qcic_sdk::JobSpec::every(job, Duration::from_secs(8));
        r.on_message(&Message::declare(&spec), at(0));
        r.on_message(&msg(Kind::Heartbeat, job, None, 1), at(0));
    }
    let mut retired = Vec::new();
    for s in 1..=70 {
        if s % 7 == 0 {
            r.on_message(&msg(Kind::Heartbeat, "slow", None, s), at(s));
        }
        retired.extend(
            r.on_deadlines(at(s))
                .into_iter()
                .filter(|n| n.event == Event::Retired),
        );
    }
    let names: Vec<&str> = retired.iter().map(|n| &*n.job).collect();
    assert_eq!(names, ["gone"]);
    assert!(r.index.contains_key("slow"));
    assert!(!r.index.contains_key("gone"));
}
