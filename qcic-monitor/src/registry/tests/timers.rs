//! Schedules, restarts, wall-clock steps, farm evidence, stalls, damping,
//! reminders and reloads, on a fake clock.

use super::*;
use crate::schedule::Schedule;

fn msg(kind: Kind, run_id: Option<u64>, seq: u64) -> Message {
    super::msg(kind, "etl", run_id, seq)
}

fn registry(cfg: JobConfig, t0: Instant, wall: u64) -> Registry {
    registry_of("w", &[cfg], t0, wall)
}

fn every(secs: u32, grace: u32) -> JobConfig {
    JobConfig::new("etl", Schedule::Every(S * secs), S * grace)
}

fn events(notes: &[Notification]) -> Vec<(Event, Option<Event>, u32)> {
    notes
        .iter()
        .map(|n| (n.event, n.resolves, n.repeat))
        .collect()
}

/// Runs every deadline up to `until`, one second at a time, collecting notifications.
fn run_until(
    r: &mut Registry,
    t0: Instant,
    wall0: u64,
    from: u64,
    until: u64,
) -> Vec<(u64, Notification)> {
    let mut out = Vec::new();
    for s in from..=until {
        for n in r.on_deadlines(Now::new(
            t0 + S * u32::try_from(s).unwrap(),
            wall0 + s * 1000,
        )) {
            out.push((s, n));
        }
    }
    out
}

const DAY: u64 = 86_400;

fn ms(rfc3339: &str) -> u64 {
    u64::try_from(
        chrono::DateTime::parse_from_rfc3339(rfc3339)
            .unwrap()
            .timestamp_millis(),
    )
    .unwrap()
}

#[test]
fn a_cron_job_is_down_after_its_fire_time_plus_grace_across_spring_forward() {
    // 01:30 London on 2026-03-29 falls in the gap: expected at 02:00 BST (01:00 UTC).
    let cfg = JobConfig::new(
        "etl",
        Schedule::cron("30 1 * * *", "Europe/London").unwrap(),
        S * 300,
    );
    let wall0 = ms("2026-03-28T12:00:00Z");
    let t0 = Instant::now();
    let mut r = registry(cfg, t0, wall0);
    // Never heard: down at the first fire + grace = 01:05 UTC on the 29th.
    let expected = (ms("2026-03-29T01:05:00Z") - wall0) / 1000;
    assert_eq!(
        r.next_deadline(),
        Some(t0 + S * u32::try_from(expected).unwrap())
    );
    let fired = run_until(&mut r, t0, wall0, expected - 1, expected);
    assert_eq!(fired.len(), 1);
    assert_eq!((fired[0].0, fired[0].1.event), (expected, Event::Down));
}

#[test]
fn a_cron_job_heard_on_time_each_day_never_goes_down_across_fall_back() {
    // 01:30 London happens twice on 2026-10-25; the job runs once and is fine.
    let cfg = JobConfig::new(
        "etl",
        Schedule::cron("30 1 * * *", "Europe/London").unwrap(),
        S * 600,
    );
    let wall0 = ms("2026-10-24T00:00:00Z");
    let t0 = Instant::now();
    let mut r = registry(cfg, t0, wall0);
    let mut notes = Vec::new();
    // The job reports at each real 01:30 London: 00:30 UTC (BST) on the
    // 24th and 25th, 01:30 UTC (GMT) on the 26th and 27th.
    let runs = [
        "2026-10-24T00:31:00Z",
        "2026-10-25T00:31:00Z",
        "2026-10-26T01:31:00Z",
        "2026-10-27T01:31:00Z",
    ];
    let mut from = 0;
    for (i, at) in runs.iter().enumerate() {
        let s = (ms(at) - wall0) / 1000;
        notes.extend(run_until(&mut r, t0, wall0, from, s));
        notes.extend(
            r.on_message(
                &msg(Kind::Success, None, i as u64),
                Now::new(t0 + S * u32::try_from(s).unwrap(), wall0 + s * 1000),
            )
            .into_iter()
            .map(|n| (s, n)),
        );
        from = s + 1;
    }
    assert!(
        notes.is_empty(),
        "no false alarm around the repeated hour: {notes:?}"
    );
    // And when it stops, it is down at the next fire + grace: 01:40 UTC on the 28th.
    let down_at = (ms("2026-10-28T01:40:00Z") - wall0) / 1000;
    assert_eq!(
        r.next_deadline(),
        Some(t0 + S * u32::try_from(down_at).unwrap())
    );
    let _ = DAY;
}

#[test]
fn late_when_a_scheduled_start_does_not_come_then_recovered_by_the_start() {
    let mut cfg = JobConfig::new("etl", Schedule::cron("0 2 * * *", "UTC").unwrap(), S * 3600);
    cfg.start_within = Some(S * 900);
    let wall0 = ms("2026-01-01T00:00:00Z");
    let t0 = Instant::now();
    let mut r = registry(cfg, t0, wall0);
    let due = (ms("2026-01-01T02:15:00Z") - wall0) / 1000;
    let late = run_until(&mut r, t0, wall0, 0, due);
    assert_eq!(late.len(), 1);
    assert_eq!((late[0].0, late[0].1.event), (due, Event::Late));
    let s = due + 60;
    let up = r.on_message(
        &msg(Kind::Start, Some(7), 1),
        Now::new(t0 + S * u32::try_from(s).unwrap(), wall0 + s * 1000),
    );
    assert_eq!(events(&up), [(Event::Recovered, Some(Event::Late), 0)]);
    assert_eq!(up[0].incident, late[0].1.incident);
}

/// Saves every job's state and starts a new registry on it, as a
/// restart does (through the JSON the state database keeps).
fn restart(r: &mut Registry, cfg: JobConfig, now: Instant, wall: u64) -> Registry {
    restart_saved(r, &mut BTreeMap::new(), cfg, now, wall)
}

/// `restart`, with `saved` the state database's rows kept across restarts.
fn restart_saved(
    r: &mut Registry,
    saved: &mut BTreeMap<String, String>,
    cfg: JobConfig,
    now: Instant,
    wall: u64,
) -> Registry {
    for (name, rec) in r.take_dirty(Now::new(now, wall)) {
        saved.insert(name, serde_json::to_string(&rec).unwrap());
    }
    let records: Vec<(String, String)> = saved.clone().into_iter().collect();
    let mut fresh = registry(cfg, now, wall);
    assert_eq!(fresh.restore(&records, Now::new(now, wall)), records.len());
    fresh
}

fn daily_at_2() -> JobConfig {
    let mut cfg = JobConfig::new("etl", Schedule::cron("0 2 * * *", "UTC").unwrap(), S * 3600);
    cfg.start_within = Some(S * 900);
    cfg
}

#[test]
fn the_slot_late_awaits_survives_a_restart_after_its_time() {
    let wall0 = ms("2026-01-01T02:05:00Z");
    let t0 = Instant::now();
    let mut r = registry(daily_at_2(), t0, wall0);
    // Started on time today: tomorrow's 02:00 is awaited.
    r.on_message(&msg(Kind::Start, Some(1), 1), Now::new(t0, wall0));
    r.on_message(
        &msg(Kind::Success, Some(1), 2),
        Now::new(t0 + S, wall0 + 1000),
    );
    // Stopped until 02:05 tomorrow, within start_within of the slot.
    let back = ms("2026-01-02T02:05:00Z");
    let t1 = t0 + Duration::from_millis(back - wall0);
    let mut r = restart(&mut r, daily_at_2(), t1, back);
    let due = ms("2026-01-02T02:15:00Z");
    let late = r.on_deadlines(Now::new(t1 + Duration::from_millis(due - back), due));
    assert_eq!(events(&late), [(Event::Late, None, 0)]);
    assert!(
        late[0]
            .text
            .as_deref()
            .unwrap()
            .contains("2026-01-02T02:00:00Z")
    );
}

#[test]
fn a_slot_awaited_under_a_schedule_changed_while_stopped_is_not_kept() {
    let wall0 = ms("2026-06-01T01:00:00Z");
    let t0 = Instant::now();
    let mut r = registry(daily_at_2(), t0, wall0);
    r.on_message(&msg(Kind::Heartbeat, None, 1), Now::new(t0, wall0));
    let mut at_3 = daily_at_2();
    at_3.schedule = Schedule::cron("0 3 * * *", "UTC").unwrap();
    let mut r = restart(&mut r, at_3, t0, wall0);
    let quarter_past_2 = ms("2026-06-01T02:15:00Z");
    let at = t0 + Duration::from_millis(quarter_past_2 - wall0);
    assert!(
        r.on_deadlines(Now::new(at, quarter_past_2)).is_empty(),
        "no late for the old 02:00"
    );
    let quarter_past_3 = ms("2026-06-01T03:15:00Z");
    let late = r.on_deadlines(Now::new(
        t0 + Duration::from_millis(quarter_past_3 - wall0),
        quarter_past_3,
    ));
    assert_eq!(events(&late), [(Event::Late, None, 0)]);
}

#[test]
fn a_wall_step_moves_cron_deadlines_not_an_every_jobs_late() {
    let mut cfg = every(3600, 0);
    cfg.start_within = Some(S * 300);
    let t0 = Instant::now();
    let mut r = registry(cfg, t0, 0);
    r.on_message(&msg(Kind::Start, Some(1), 1), Now::new(t0, 0));
    // 10 min on, the wall clock jumps 40 min ahead.
    let t1 = t0 + S * 600;
    r.on_clock_step(Now::new(t1, 3_000_000));
    // `late` stays 1 h + 5 min after the start, on the monotonic clock
    // (the down at 1 h is this job's own, a duration too).
    let early = r.on_deadlines(Now::new(t0 + S * 3899, 5_000_000));
    assert_eq!(events(&early), [(Event::Down, None, 0)]);
    let late = r.on_deadlines(Now::new(t0 + S * 3900, 5_000_000));
    assert_eq!(events(&late), [(Event::Late, None, 0)]);
}

#[test]
fn a_sender_that_repeats_its_identity_still_gets_each_outage_notified() {
    // pid 1, seq 1, no clock (ts 0) every time: only the watcher can tell
    // the outages apart.
    let t0 = Instant::now();
    let mut r = registry(every(10, 0), t0, 0);
    let mut ids = Vec::new();
    for round in 0..3u32 {
        let t = t0 + S * (20 * round);
        let up = r.on_message(
            &msg(Kind::Heartbeat, None, 1),
            Now::new(t, u64::from(round) * 20_000),
        );
        if round > 0 {
            assert_eq!(events(&up), [(Event::Recovered, Some(Event::Down), 0)]);
        }
        let down = r.on_deadlines(Now::new(t + S * 10, u64::from(round) * 20_000 + 10_000));
        assert_eq!(events(&down), [(Event::Down, None, 0)]);
        ids.push(down[0].incident.clone());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3, "three outages, three incidents");
}

#[test]
fn a_never_heard_jobs_start_is_saved_so_restarts_cannot_postpone_its_down() {
    let t0 = Instant::now();
    let mut r = registry(every(6, 0), t0, 0);
    assert_eq!(r.restore(&[], Now::new(t0, 0)), 0);
    // Restarted every 4 s: the down still comes 6 s after watching began.
    let mut saved = BTreeMap::new();
    let mut r = restart_saved(&mut r, &mut saved, every(6, 0), t0 + S * 4, 4000);
    let mut r = restart_saved(&mut r, &mut saved, every(6, 0), t0 + S * 8, 8000);
    let down = r.on_deadlines(Now::new(t0 + S * 8, 8000));
    assert_eq!(events(&down), [(Event::Down, None, 0)]);
}

#[test]
fn records_read_both_ways_across_the_upgrade() {
    // As the previous version wrote it: one streak that counted a
    // heartbeat after a failed run, runs as (id, started, host).
    let old = r#"{"last":{"wall_ms":5000,"kind":"heartbeat","basis":"h/1/3","host":"h"},
        "runs":[[9,4000,"h"]],"open":[],"bad_streak":0,"good_streak":1,"silence":null}"#;
    let mut cfg = every(3600, 0);
    cfg.recover_after_successes = 2;
    let t0 = Instant::now();
    let mut r = registry(cfg.clone(), t0, 6000);
    assert_eq!(
        r.restore(&[("etl".into(), old.into())], Now::new(t0, 6000)),
        1
    );
    assert_eq!((r.jobs[0].success_streak, r.jobs[0].alive_streak), (0, 1));
    assert_eq!(r.jobs[0].runs.len(), 1);
    // The previous version's reader: what it knew, and nothing more.
    #[derive(serde::Deserialize)]
    #[expect(dead_code, reason = "only whether it parses matters")]
    struct PreviousRecord {
        last: Option<serde_json::Value>,
        runs: Vec<(u64, u64, String)>,
        open: Vec<serde_json::Value>,
        bad_streak: u32,
        good_streak: u32,
        silence: Option<Silence>,
    }
    for (_, record) in r.take_dirty(Now::new(t0, 6000)) {
        let text = serde_json::to_string(&record).unwrap();
        let back: PreviousRecord = serde_json::from_str(&text).unwrap();
        assert_eq!(back.runs.len(), 1);
    }
}

fn from(pid: u32, seq: u64, ts_ms: u64) -> Message {
    let mut m = msg(Kind::Heartbeat, None, seq);
    m.pid = pid;
    m.ts_ms = ts_ms;
    m
}

fn evidence(r: &Registry) -> PeerSeen {
    r.jobs[0].last.as_ref().unwrap().as_peer_seen()
}

#[test]
fn two_watchers_that_heard_different_last_messages_name_the_outage_alike() {
    // Two processes report one job; a heard process 1's last message
    // (sent at 1000), b only process 2's (sent at 900, arriving later).
    let t0 = Instant::now();
    let (mut a, mut b) = (registry(every(10, 0), t0, 0), registry(every(10, 0), t0, 0));
    a.on_message(&from(1, 5, 1000), Now::new(t0 + S, 1000));
    b.on_message(&from(2, 9, 900), Now::new(t0 + S * 2, 2000));
    // Each tells the other what it heard (gossip).
    let (ea, eb) = (evidence(&a), evidence(&b));
    a.on_peer_seen("b", "etl", &eb, Now::new(t0 + S * 3, 3000));
    b.on_peer_seen("a", "etl", &ea, Now::new(t0 + S * 3, 3000));
    let da = a.on_deadlines(Now::new(t0 + S * 20, 20_000));
    let db = b.on_deadlines(Now::new(t0 + S * 20, 20_000));
    assert_eq!(
        (events(&da), events(&db)),
        (vec![(Event::Down, None, 0)], vec![(Event::Down, None, 0)])
    );
    assert_eq!(da[0].incident, db[0].incident, "one outage, one name");
    assert_eq!(
        *da[0].incident,
        *incident_id("etl", Event::Down, "h/1/5/1000"),
        "the later message by the sender's clock"
    );
}

#[test]
fn messages_queued_during_a_cut_are_not_taken_as_life() {
    let t0 = Instant::now();
    let mut r = registry(every(10, 0), t0, 0);
    // On time: the host's clock offset is learnt (0).
    for s in 0..3u32 {
        let at = u64::from(s) * 1000;
        assert!(
            r.on_message(&from(1, u64::from(s) + 1, at), Now::new(t0 + S * s, at))
                .is_empty()
        );
    }
    // Cut at 2 s; the job sends at 4 s and 6 s, then stops; down at 12 s.
    let down = r.on_deadlines(Now::new(t0 + S * 12, 12_000));
    assert_eq!(events(&down), [(Event::Down, None, 0)]);
    // Healed at 30 s: the queued messages arrive, long overdue by themselves.
    for (seq, sent) in [(4, 4000), (5, 6000)] {
        let out = r.on_message(&from(1, seq, sent), Now::new(t0 + S * 30, 30_000));
        assert!(
            out.is_empty(),
            "a queued message recovered the job: {out:?}"
        );
    }
    assert_eq!(r.stats.stale_messages.load(Ordering::Relaxed), 2);
    assert!(r.jobs[0].open.contains_key(&Slot::Down), "still down");
    // A fresh one is life.
    let up = r.on_message(&from(1, 6, 31_000), Now::new(t0 + S * 31, 31_000));
    assert_eq!(events(&up), [(Event::Recovered, Some(Event::Down), 0)]);
    // A sender whose clock steps back, heard on time, is not stale.
    let ok = r.on_message(&from(1, 7, 1_000), Now::new(t0 + S * 32, 32_000));
    assert!(ok.is_empty());
    assert_eq!(r.stats.stale_messages.load(Ordering::Relaxed), 2);
}

/// A backlog longer than the offset window, delivered at once after a
/// two-minute cut, and the same backlog delivered to a watcher that
/// restarted meanwhile (its offsets come back with its saved state):
/// no message of it is life.
#[test]
fn a_long_backlog_is_no_life_even_after_a_restart() {
    let t0 = Instant::now();
    for restarted in [false, true] {
        let mut r = registry(every(10, 0), t0, 0);
        for s in 0..3u32 {
            let at = u64::from(s) * 1000;
            r.on_message(&from(1, u64::from(s) + 1, at), Now::new(t0 + S * s, at));
        }
        // Cut at 2 s: the job beats every second until 100 s, then stops.
        let down = r.on_deadlines(Now::new(t0 + S * 12, 12_000));
        assert_eq!(events(&down), [(Event::Down, None, 0)]);
        if restarted {
            r = restart(&mut r, every(10, 0), t0 + S * 60, 60_000);
        }
        for seq in 4..=100u64 {
            let out = r.on_message(
                &from(1, seq, (seq - 1) * 1000),
                Now::new(t0 + S * 130, 130_000),
            );
            assert!(
                out.is_empty(),
                "restarted {restarted}: queued message {seq} taken as life: {out:?}"
            );
        }
        assert_eq!(
            r.stats.stale_messages.load(Ordering::Relaxed),
            97,
            "restarted {restarted}"
        );
        assert!(r.jobs[0].open.contains_key(&Slot::Down), "still down");
    }
}

fn peer(wall_ms: u64, up_since_ms: u64, start_ms: u64, kind: Kind) -> PeerSeen {
    PeerSeen {
        wall_ms,
        up_since_ms,
        start_ms,
        pid: 1,
        seq: 9,
        ts_ms: wall_ms,
        kind,
        host: Arc::from("h"),
    }
}

#[test]
fn peer_evidence_round_trips_its_gossip_form() {
    let seen = peer(1_700_000_000_123, 1_700_000_000_000, 5, Kind::Progress);
    let mut with_semicolon = seen.clone();
    with_semicolon.host = Arc::from("odd;host");
    for s in [seen, with_semicolon] {
        assert_eq!(PeerSeen::decode(&s.encode()), Some(s));
    }
    assert_eq!(PeerSeen::decode("1;2;3"), None);
}

#[test]
fn what_a_peer_heard_moves_down_and_tells_a_false_alarm_from_a_recovery() {
    let t0 = Instant::now();
    let mut r = registry(every(10, 5), t0, 0);
    r.on_message(&msg(Kind::Heartbeat, None, 1), Now::new(t0, 0));
    // A peer heard the job at 12 s: not down at 15 s any more, at 27 s.
    assert!(
        r.on_peer_seen(
            "b",
            "etl",
            &peer(12_000, 0, 0, Kind::Heartbeat),
            Now::new(t0 + S * 13, 13_000)
        )
        .is_empty()
    );
    assert!(r.on_deadlines(Now::new(t0 + S * 26, 26_000)).is_empty());
    let down = r.on_deadlines(Now::new(t0 + S * 27, 27_000));
    assert_eq!(events(&down), [(Event::Down, None, 0)]);
    // Its basis is the peer's last message: every watcher names it alike.
    assert_eq!(
        *down[0].incident,
        *incident_id("etl", Event::Down, "h/1/9/12000")
    );
    // The peer has heard it without a break since 0 s: a false alarm.
    let back = r.on_peer_seen(
        "b",
        "etl",
        &peer(28_000, 0, 0, Kind::Heartbeat),
        Now::new(t0 + S * 28, 28_000),
    );
    assert_eq!(events(&back), [(Event::Retracted, Some(Event::Down), 0)]);
    assert_eq!(back[0].incident, down[0].incident);
    // Down again; this time the peer heard it come back after the alarm.
    let down = r.on_deadlines(Now::new(t0 + S * 43, 43_000));
    assert_eq!(events(&down), [(Event::Down, None, 0)]);
    let back = r.on_peer_seen(
        "b",
        "etl",
        &peer(50_000, 50_000, 0, Kind::Heartbeat),
        Now::new(t0 + S * 50, 50_000),
    );
    assert_eq!(events(&back), [(Event::Recovered, Some(Event::Down), 0)]);
    // Older news than what was heard here changes nothing.
    assert!(
        r.on_peer_seen(
            "b",
            "etl",
            &peer(49_000, 0, 0, Kind::Heartbeat),
            Now::new(t0 + S * 51, 51_000)
        )
        .is_empty()
    );
}

#[test]
fn a_start_a_peer_heard_counts_for_late() {
    let mut cfg = JobConfig::new("etl", Schedule::cron("0 2 * * *", "UTC").unwrap(), S * 3600);
    cfg.start_within = Some(S * 900);
    let wall0 = ms("2026-01-01T00:00:00Z");
    let t0 = Instant::now();
    let at = |iso: &str| {
        let w = ms(iso);
        (t0 + Duration::from_millis(w - wall0), w)
    };
    // Only the peer heard the 02:00 start: no `late` here at 02:15.
    let mut r = registry(cfg.clone(), t0, wall0);
    let (now, wall) = at("2026-01-01T02:00:30Z");
    let start = ms("2026-01-01T02:00:10Z");
    assert!(
        r.on_peer_seen(
            "b",
            "etl",
            &peer(start, start, start, Kind::Start),
            Now::new(now, wall)
        )
        .is_empty()
    );
    let (now, wall) = at("2026-01-01T02:16:00Z");
    assert!(
        r.on_deadlines(Now::new(now, wall)).is_empty(),
        "the start was heard in the farm"
    );
    // Cut off from both, this watcher raised `late`; the peer's news of
    // the on-time start makes it a false alarm.
    let mut r = registry(cfg, t0, wall0);
    let (now, wall) = at("2026-01-01T02:15:00Z");
    let late = r.on_deadlines(Now::new(now, wall));
    assert_eq!(events(&late), [(Event::Late, None, 0)]);
    let (now, wall) = at("2026-01-01T02:20:00Z");
    let back = r.on_peer_seen(
        "b",
        "etl",
        &peer(start, start, start, Kind::Start),
        Now::new(now, wall),
    );
    assert_eq!(events(&back), [(Event::Retracted, Some(Event::Late), 0)]);
    assert_eq!(back[0].incident, late[0].incident);
}

#[test]
fn stalled_when_a_run_goes_quiet_reset_by_progress() {
    let mut cfg = every(3600, 0);
    cfg.stall_after = Some(S * 60);
    let t0 = Instant::now();
    let mut r = registry(cfg, t0, 0);
    r.on_message(&msg(Kind::Start, Some(1), 1), Now::new(t0, 0));
    r.on_message(
        &msg(Kind::Progress, Some(1), 2),
        Now::new(t0 + S * 50, 50_000),
    );
    assert!(
        r.on_deadlines(Now::new(t0 + S * 100, 100_000)).is_empty(),
        "progress at 50 s moved it to 110 s"
    );
    let stalled = r.on_deadlines(Now::new(t0 + S * 110, 110_000));
    assert_eq!(events(&stalled), [(Event::Stalled, None, 0)]);
    assert_eq!(stalled[0].run_id, Some(1));
    let back = r.on_message(
        &msg(Kind::Progress, Some(1), 3),
        Now::new(t0 + S * 120, 120_000),
    );
    assert_eq!(events(&back), [(Event::Recovered, Some(Event::Stalled), 0)]);
    // It can stall again, as a new incident of the same run.
    assert_eq!(
        events(&r.on_deadlines(Now::new(t0 + S * 180, 180_000))),
        [(Event::Stalled, None, 0)]
    );
    let done = r.on_message(
        &msg(Kind::Success, Some(1), 4),
        Now::new(t0 + S * 200, 200_000),
    );
    assert_eq!(events(&done), [(Event::Recovered, Some(Event::Stalled), 0)]);
}

#[test]
fn a_success_sooner_than_min_runtime_is_too_fast() {
    let mut cfg = every(3600, 0);
    cfg.min_runtime = Some(S * 60);
    let t0 = Instant::now();
    let mut r = registry(cfg, t0, 0);
    r.on_message(&msg(Kind::Start, Some(1), 1), Now::new(t0, 0));
    let fast = r.on_message(&msg(Kind::Success, Some(1), 2), Now::new(t0 + S * 2, 2000));
    assert_eq!(events(&fast), [(Event::TooFast, None, 0)]);
    assert!(
        fast[0]
            .text
            .as_ref()
            .unwrap()
            .contains("sooner than min_runtime")
    );
    r.on_message(
        &msg(Kind::Start, Some(2), 3),
        Now::new(t0 + S * 100, 100_000),
    );
    let ok = r.on_message(
        &msg(Kind::Success, Some(2), 4),
        Now::new(t0 + S * 200, 200_000),
    );
    assert_eq!(events(&ok), [(Event::Recovered, Some(Event::TooFast), 0)]);
}

#[test]
fn damping_waits_for_n_failures_and_n_successes() {
    let mut cfg = every(3600, 0);
    cfg.alert_after_failures = 3;
    cfg.recover_after_successes = 2;
    let t0 = Instant::now();
    let mut r = registry(cfg, t0, 0);
    assert!(
        r.on_message(&msg(Kind::Fail, None, 1), Now::new(t0, 0))
            .is_empty()
    );
    assert!(
        r.on_message(&msg(Kind::Fail, None, 2), Now::new(t0, 0))
            .is_empty()
    );
    assert_eq!(
        events(&r.on_message(&msg(Kind::Fail, None, 3), Now::new(t0, 0))),
        [(Event::Failed, None, 0)]
    );
    assert!(
        r.on_message(&msg(Kind::Success, None, 4), Now::new(t0, 0))
            .is_empty(),
        "one success is not enough"
    );
    assert_eq!(
        events(&r.on_message(&msg(Kind::Success, None, 5), Now::new(t0, 0))),
        [(Event::Recovered, Some(Event::Failed), 0)]
    );
    // A success between failures resets the count.
    assert!(
        r.on_message(&msg(Kind::Fail, None, 6), Now::new(t0, 0))
            .is_empty()
    );
    r.on_message(&msg(Kind::Success, None, 7), Now::new(t0, 0));
    assert!(
        r.on_message(&msg(Kind::Fail, None, 8), Now::new(t0, 0))
            .is_empty()
    );
    assert!(
        r.on_message(&msg(Kind::Fail, None, 9), Now::new(t0, 0))
            .is_empty()
    );
}

#[test]
fn damping_counts_missed_periods_before_down() {
    let mut cfg = every(10, 0);
    cfg.alert_after_failures = 3;
    let t0 = Instant::now();
    let mut r = registry(cfg, t0, 0);
    let fired = run_until(&mut r, t0, 0, 0, 40);
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert_eq!(
        (fired[0].0, fired[0].1.event),
        (30, Event::Down),
        "the third missed period"
    );
}

#[test]
fn repeat_reminds_while_open_and_stops_on_recovery() {
    let mut cfg = every(10, 0);
    cfg.repeat = Some(S * 60);
    let t0 = Instant::now();
    let mut r = registry(cfg, t0, 0);
    let fired = run_until(&mut r, t0, 0, 0, 135);
    let got: Vec<(u64, u32)> = fired.iter().map(|(s, n)| (*s, n.repeat)).collect();
    assert_eq!(got, [(10, 0), (70, 1), (130, 2)]);
    assert!(
        fired
            .iter()
            .all(|(_, n)| n.incident == fired[0].1.incident && n.event == Event::Down)
    );
    assert!(fired[1].1.headline().contains("reminder 1"));
    let up = r.on_message(
        &msg(Kind::Heartbeat, None, 1),
        Now::new(t0 + S * 140, 140_000),
    );
    assert_eq!(events(&up), [(Event::Recovered, Some(Event::Down), 0)]);
    let later = run_until(&mut r, t0, 0, 141, 300);
    assert!(
        later.iter().all(|(_, n)| n.incident != fired[0].1.incident),
        "no reminder of the closed incident: {later:?}"
    );
    assert_eq!(
        later[0].0, 150,
        "silent again after the heartbeat: a new incident"
    );
}

fn named(name: &str, secs: u32, grace: u32) -> JobConfig {
    JobConfig::new(name, Schedule::Every(S * secs), S * grace)
}

fn at(t0: Instant, wall0: u64, s: u64) -> (Instant, u64) {
    (t0 + S * u32::try_from(s).unwrap(), wall0 + s * 1000)
}

#[test]
fn a_reload_keeps_state_timers_and_open_incidents() {
    let (t0, wall0) = (Instant::now(), 1_700_000_000_000);
    let mut r = Registry::new(
        "w",
        &[
            named("etl", 10, 5),
            named("gone", 10, 5),
            named("steady", 100, 0),
        ],
        4,
        S * 300,
        Arc::new(Stats::default()),
        Now::new(t0, wall0),
    );
    let (now, wall) = at(t0, wall0, 1);
    r.on_message(&msg(Kind::Heartbeat, None, 1), Now::new(now, wall));
    let mut fail = msg(Kind::Fail, None, 2);
    fail.exit_code = Some(3);
    let opened = r.on_message(&fail, Now::new(now, wall));
    assert_eq!(events(&opened), vec![(Event::Failed, None, 0)]);
    let steady_down = r.jobs[2].down_at.unwrap();

    // etl's grace changes, "gone" goes, "new" comes; steady is untouched.
    let (now, wall) = at(t0, wall0, 5);
    let summary = r.reconfigure(
        &[
            named("new", 20, 0),
            named("steady", 100, 0),
            named("etl", 10, 30),
        ],
        4,
        S * 300,
        Now::new(now, wall),
    );
    assert_eq!(
        (
            summary.added,
            summary.removed,
            summary.changed,
            summary.unchanged
        ),
        (1, 1, 1, 1)
    );
    assert_eq!(summary.removed_names, vec!["gone".to_owned()]);
    assert_eq!(
        r.jobs[1].down_at,
        Some(steady_down),
        "steady's timer is exactly kept"
    );
    assert_eq!(
        r.jobs[2].down_at,
        Some(t0 + S * 41),
        "etl: down 10 s + the new 30 s grace after its last message at 1 s"
    );
    assert_eq!(
        r.jobs[0].down_at,
        Some(now + S * 20),
        "new: one full period"
    );
    let views = r.views(Now::new(now, wall));
    let etl = views.iter().find(|v| v.name == "etl").unwrap();
    assert_eq!(etl.incidents.len(), 1, "the open failed incident survives");
    assert!(views.iter().all(|v| v.name != "gone"));
    assert!(r.is_dirty());

    // The same incident closes with one follow-up after the reload.
    let (now, wall) = at(t0, wall0, 6);
    let up = r.on_message(&msg(Kind::Success, None, 3), Now::new(now, wall));
    assert_eq!(
        events(&up),
        vec![(Event::Recovered, Some(Event::Failed), 0)]
    );
    assert_eq!(up[0].incident, opened[0].incident);
    // Nothing fires for the removed job, and the new one waits its period.
    let fired = run_until(&mut r, t0, wall0, 7, 24);
    assert!(fired.is_empty(), "{fired:?}");
    let fired = run_until(&mut r, t0, wall0, 25, 25);
    assert_eq!(fired.len(), 1);
    assert_eq!((&*fired[0].1.job, fired[0].1.event), ("new", Event::Down));
}

#[test]
fn host_skew_is_the_smallest_recent_offset() {
    let (t0, wall0) = (Instant::now(), 1_700_000_000_000);
    let mut r = registry(every(10, 5), t0, wall0);
    // Three messages queued at the sender while the watcher was down
    // (old timestamps), then one that came straight through from a
    // host 2 s behind.
    for (i, late_ms) in [(1, 60_000), (2, 40_000), (3, 20_000), (4, 2_000)] {
        let mut m = msg(Kind::Heartbeat, None, i);
        m.ts_ms = wall0 - late_ms;
        r.on_message(&m, Now::new(t0, wall0));
    }
    let hosts = r.hosts();
    assert_eq!(hosts.len(), 1);
    assert_eq!(
        (hosts[0].host.as_str(), hosts[0].skew_ms, hosts[0].messages),
        ("h", 2_000, 4)
    );
    assert!(!hosts[0].skewed, "2 s is within the 300 s allowed");
}

/// A timestamp of u64::MAX is a host as far ahead as can be told
/// (before, the overflow flipped it to the most behind).
#[test]
fn an_absurd_timestamp_saturates_with_its_sign() {
    let (t0, wall0) = (Instant::now(), 1_700_000_000_000);
    let mut r = registry(every(10, 5), t0, wall0);
    let mut m = msg(Kind::Heartbeat, None, 1);
    m.ts_ms = u64::MAX;
    r.on_message(&m, Now::new(t0, wall0));
    assert_eq!(r.hosts()[0].skew_ms, i64::MIN);
}

/// With CURVE, a host name first claimed by one key and then by
/// another is measured apart: the second cannot move the first's
/// estimate, and the job still records the name it was sent with.
#[test]
fn a_host_name_claimed_by_another_key_is_measured_apart() {
    let (t0, wall0) = (Instant::now(), 1_700_000_000_000);
    let mut r = registry(every(10, 5), t0, wall0);
    let mut honest = msg(Kind::Heartbeat, None, 1);
    honest.ts_ms = wall0 - 1_000;
    r.on_message_from(&honest, Some("KEYAAAAAAAAAAAAA"), Now::new(t0, wall0));
    let mut liar = msg(Kind::Heartbeat, None, 2);
    liar.ts_ms = wall0 - 3_600_000;
    r.on_message_from(&liar, Some("KEYBBBBBBBBBBBBB"), Now::new(t0, wall0));
    let hosts = r.hosts();
    let skews: Vec<(&str, i64)> = hosts.iter().map(|h| (h.host.as_str(), h.skew_ms)).collect();
    assert_eq!(skews, [("h [key KEYBBBBB]", 3_600_000), ("h", 1_000)]);
}

// Found by an outside review of the farm's trust fixes (issue 14).
const MS: Duration = Duration::from_millis(1);

/// Beats every second from `from` to `to` s, `mk(s)` the message, collecting notes.
fn beat(
    r: &mut Registry,
    t0: Instant,
    wall: impl Fn(u64) -> u64,
    range: std::ops::RangeInclusive<u64>,
    mk: impl Fn(u64) -> Message,
) -> Vec<(u64, Event)> {
    let mut got = Vec::new();
    for s in range {
        let now = t0 + S * u32::try_from(s).unwrap();
        got.extend(
            r.on_deadlines(Now::new(now, wall(s)))
                .iter()
                .map(|n| (s, n.event)),
        );
        got.extend(
            r.on_message(&mk(s), Now::new(now, wall(s)))
                .iter()
                .map(|n| (s, n.event)),
        );
    }
    got
}

/// A container job (pid 1) restarted with its clock set back, or a
/// sender with no clock, counts from seq 1 again: still life.
#[test]
fn a_process_restarted_under_its_pid_with_an_earlier_clock_is_life() {
    let t0 = Instant::now();
    let w = |s: u64| 100_000 + s * 1000;
    // (a) sender clock stepped back 60 s across a container restart (pid 1 again);
    // (b) a sender without a clock (ts 0) whose container restarts.
    let mut all = Vec::new();
    for clockless in [false, true] {
        let mut r = registry(every(10, 2), t0, w(0));
        let ts = |s: u64, back: u64| if clockless { 0 } else { w(s) - back };
        let mut got = beat(&mut r, t0, w, 1..=50, |s| from(1, s, ts(s, 0)));
        got.extend(beat(&mut r, t0, w, 51..=200, |s| {
            from(1, s - 50, ts(s, 60_000))
        }));
        all.push((clockless, got));
    }
    assert_eq!(
        all,
        [(false, vec![]), (true, vec![])],
        "a job beating every second"
    );
}

/// Two watchers 6 s apart by their clocks, both hearing every beat of a
/// 60 s job: no watcher dates the other's evidence as a late delivery.
#[test]
fn watchers_whose_clocks_differ_by_seconds_raise_no_false_down() {
    // a's wall clock is 6 s ahead of b's; the sender's agrees with b.
    let t0 = Instant::now();
    let (wa, wb) = (|r: u64| 106_000 + r, |r: u64| 100_000 + r);
    let mut a = registry(every(60, 5), t0, wa(0));
    let mut b = registry(every(60, 5), t0, wb(0));
    let mut got = Vec::new();
    for r in (0..=300_000u64).step_by(100) {
        let now = t0 + MS * u32::try_from(r).unwrap();
        for n in a.on_deadlines(Now::new(now, wa(r))) {
            got.push((r, "a", n.event));
        }
        for n in b.on_deadlines(Now::new(now, wb(r))) {
            got.push((r, "b", n.event));
        }
        if r % 60_000 == 0 {
            let m = from(1, r / 1000 + 1, wb(r));
            for n in a.on_message(&m, Now::new(now, wa(r))) {
                got.push((r, "a", n.event));
            }
            for n in b.on_message(&m, Now::new(now, wb(r))) {
                got.push((r, "b", n.event));
            }
        }
        if r % 60_000 == 100 {
            // gossip, 100 ms after the beat, both ways
            let (ea, eb) = (evidence(&a), evidence(&b));
            for n in a.on_peer_seen("b", "etl", &eb, Now::new(now, wa(r))) {
                got.push((r, "a", n.event));
            }
            for n in b.on_peer_seen("a", "etl", &ea, Now::new(now, wb(r))) {
                got.push((r, "b", n.event));
            }
        }
    }
    assert_eq!(got, [], "a job heard on time by both watchers");
}

/// A host back from an outage with its clock a minute behind: its live
/// messages are life again from the second one, not after the offset
/// window rolls over.
#[test]
fn a_sender_clock_stepped_back_during_an_outage_recovers_at_its_second_message() {
    let t0 = Instant::now();
    let w = |s: u64| 100_000 + s * 1000;
    let mut r = registry(every(10, 2), t0, w(0));
    // Host reboots at 20 s (job down); back at 100 s with its clock 60 s behind.
    let mut got = beat(&mut r, t0, w, 1..=20, |s| from(1, s, w(s)));
    for s in 21..=99u64 {
        let n = r.on_deadlines(Now::new(t0 + S * u32::try_from(s).unwrap(), w(s)));
        got.extend(n.iter().map(|n| (s, n.event)));
    }
    got.extend(beat(&mut r, t0, w, 100..=600, |s| {
        from(2, s - 99, w(s) - 60_000)
    }));
    // The first message after the step cannot be told from a backlog;
    // the second, a second later and late alike, shows the step.
    assert_eq!(got, [(32, Event::Down), (101, Event::Recovered)]);
}

/// A record written before offsets were saved still dates a backlog
/// (by the last message heard).
#[test]
fn a_backlog_after_a_restore_from_an_older_record_is_no_life() {
    let t0 = Instant::now();
    let mut r = registry(every(10, 0), t0, 0);
    for s in 0..3u32 {
        let at = u64::from(s) * 1000;
        r.on_message(&from(1, u64::from(s) + 1, at), Now::new(t0 + S * s, at));
    }
    assert_eq!(
        events(&r.on_deadlines(Now::new(t0 + S * 12, 12_000))),
        [(Event::Down, None, 0)]
    );
    // Saved by the previous version: no host_offset_ms.
    let saved: Vec<(String, String)> = r
        .take_dirty(Now::new(t0 + S * 50, 50_000))
        .into_iter()
        .map(|(n, rec)| {
            let mut v = serde_json::to_value(&rec).unwrap();
            v["last"].as_object_mut().unwrap().remove("host_offset_ms");
            (n, v.to_string())
        })
        .collect();
    let mut r = registry(every(10, 0), t0 + S * 60, 60_000);
    r.restore(&saved, Now::new(t0 + S * 60, 60_000));
    let mut got = Vec::new();
    for seq in 4..=100u64 {
        got.extend(events(&r.on_message(
            &from(1, seq, (seq - 1) * 1000),
            Now::new(t0 + S * 130, 130_000),
        )));
    }
    assert_eq!(got, [], "queued messages taken as life");
}

/// A message stamped seq = ts = u64::MAX (broken or hostile) does not
/// make every later message look old.
#[test]
fn one_message_stamped_u64_max_does_not_kill_the_job() {
    let t0 = Instant::now();
    let w = |s: u64| 100_000 + s * 1000;
    let mut r = registry(every(10, 2), t0, w(0));
    let mut got = beat(&mut r, t0, w, 1..=5, |s| from(1, s, w(s)));
    got.extend(beat(&mut r, t0, w, 6..=6, |_| from(1, u64::MAX, u64::MAX)));
    got.extend(beat(&mut r, t0, w, 7..=100, |s| from(1, s, w(s))));
    assert_eq!(got, [], "a job beating every second");
}
