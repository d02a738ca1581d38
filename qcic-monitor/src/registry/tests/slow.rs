//! `slow`: a run still going at `slow_after` × the median of the job's
//! last successful runs, on a fake clock.

use super::*;
use crate::schedule::Schedule;

fn slow_job(factor: f64) -> JobConfig {
    let mut cfg = JobConfig::new("etl", Schedule::Every(S * 3600), S * 60);
    cfg.slow_after = Some(factor);
    cfg
}

/// `count` runs of `secs` each, one after another from second `from`;
/// returns the second after the last.
fn runs(r: &mut Registry, t0: Instant, from: u32, count: u32, secs: u32, seq: &mut u64) -> u32 {
    let mut at = from;
    for i in 0..count {
        let run = u64::from(1000 + at + i);
        *seq += 1;
        r.on_message(
            &msg(Kind::Start, "etl", Some(run), *seq),
            Now::new(t0 + S * at, u64::from(at) * 1000),
        );
        at += secs;
        *seq += 1;
        let out = r.on_message(
            &msg(Kind::Success, "etl", Some(run), *seq),
            Now::new(t0 + S * at, u64::from(at) * 1000),
        );
        assert!(out.is_empty(), "{out:?}");
        at += 1;
    }
    at
}

fn slow_notes(r: &mut Registry, t0: Instant, from: u32, until: u32) -> Vec<(u32, Notification)> {
    let mut out = Vec::new();
    for s in from..=until {
        for n in r.on_deadlines(Now::new(t0 + S * s, u64::from(s) * 1000)) {
            out.push((s, n));
        }
    }
    out
}

#[test]
fn a_run_past_three_times_its_median_is_slow_while_it_runs_and_its_end_follows_up() {
    let t0 = Instant::now();
    let mut r = registry_of("w", &[slow_job(3.0)], t0, 0);
    let mut seq = 0;
    // Five runs of 10 s: the median is 10 s.
    let at = runs(&mut r, t0, 0, 5, 10, &mut seq);
    seq += 1;
    r.on_message(
        &msg(Kind::Start, "etl", Some(77), seq),
        Now::new(t0 + S * at, u64::from(at) * 1000),
    );
    // Not before 3 x 10 s.
    assert!(slow_notes(&mut r, t0, at, at + 29).is_empty());
    let fired = slow_notes(&mut r, t0, at + 30, at + 31);
    assert_eq!(fired.len(), 1, "{fired:?}");
    let (when, slow) = &fired[0];
    assert_eq!(*when, at + 30);
    assert_eq!(slow.event, Event::Slow);
    assert_eq!(slow.run_id, Some(77));
    let text = slow.text.as_deref().unwrap();
    assert!(
        text.contains("median 10s of the last 5 successful runs"),
        "{text}"
    );
    // Only once.
    assert!(slow_notes(&mut r, t0, at + 32, at + 60).is_empty());
    seq += 1;
    let end = r.on_message(
        &msg(Kind::Success, "etl", Some(77), seq),
        Now::new(t0 + S * (at + 61), u64::from(at + 61) * 1000),
    );
    let recovered: Vec<&Notification> =
        end.iter().filter(|n| n.event == Event::Recovered).collect();
    assert_eq!(recovered.len(), 1, "{end:?}");
    assert_eq!(recovered[0].resolves, Some(Event::Slow));
    assert_eq!(recovered[0].incident, slow.incident);
    let text = recovered[0].text.as_deref().unwrap();
    assert!(text.ends_with("after 1m 1s"), "{text}");
}

#[test]
fn nothing_is_slow_before_five_successful_runs() {
    let t0 = Instant::now();
    let mut r = registry_of("w", &[slow_job(2.0)], t0, 0);
    let mut seq = 0;
    let at = runs(&mut r, t0, 0, 4, 10, &mut seq);
    seq += 1;
    r.on_message(
        &msg(Kind::Start, "etl", Some(77), seq),
        Now::new(t0 + S * at, u64::from(at) * 1000),
    );
    assert!(slow_notes(&mut r, t0, at, at + 600).is_empty());
}

#[test]
fn a_failed_run_does_not_count_toward_the_median() {
    let t0 = Instant::now();
    let mut r = registry_of("w", &[slow_job(3.0)], t0, 0);
    let mut seq = 0;
    let at = runs(&mut r, t0, 0, 5, 10, &mut seq);
    // A long failed run: not a success, not in the median.
    seq += 1;
    r.on_message(
        &msg(Kind::Start, "etl", Some(50), seq),
        Now::new(t0 + S * at, u64::from(at) * 1000),
    );
    let slow = slow_notes(&mut r, t0, at, at + 100);
    assert_eq!(slow.len(), 1, "the failed run was slow too: {slow:?}");
    seq += 1;
    r.on_message(
        &msg(Kind::Fail, "etl", Some(50), seq),
        Now::new(t0 + S * (at + 101), u64::from(at + 101) * 1000),
    );
    let at = at + 102;
    seq += 1;
    r.on_message(
        &msg(Kind::Start, "etl", Some(51), seq),
        Now::new(t0 + S * at, u64::from(at) * 1000),
    );
    let fired = slow_notes(&mut r, t0, at, at + 31);
    assert_eq!(fired.first().map(|(s, _)| *s), Some(at + 30), "{fired:?}");
}

#[test]
fn the_median_survives_a_restart() {
    let t0 = Instant::now();
    let mut r = registry_of("w", &[slow_job(3.0)], t0, 0);
    let mut seq = 0;
    let at = runs(&mut r, t0, 0, 5, 10, &mut seq);
    let saved = r.take_dirty(Now::new(t0 + S * at, u64::from(at) * 1000));
    let mut again = registry_of("w", &[slow_job(3.0)], t0 + S * at, u64::from(at) * 1000);
    let records: Vec<(String, String)> = saved
        .into_iter()
        .map(|(name, record)| (name, serde_json::to_string(&record).unwrap()))
        .collect();
    again.restore(&records, Now::new(t0 + S * at, u64::from(at) * 1000));
    seq += 1;
    again.on_message(
        &msg(Kind::Start, "etl", Some(9), seq),
        Now::new(t0 + S * at, u64::from(at) * 1000),
    );
    let fired = slow_notes(&mut again, t0, at, at + 31);
    assert_eq!(fired.first().map(|(s, _)| *s), Some(at + 30), "{fired:?}");
}

/// A run started again under the same id ends the one before it: its
/// `slow` is closed with how long it went on, not the new run's length.
#[test]
fn a_run_started_again_under_its_id_ends_the_slow_one_before_it() {
    let t0 = Instant::now();
    let mut r = registry_of("w", &[slow_job(2.0)], t0, 0);
    let mut seq = 0;
    let at = runs(&mut r, t0, 0, 5, 10, &mut seq);
    seq += 1;
    r.on_message(
        &msg(Kind::Start, "etl", Some(77), seq),
        Now::new(t0 + S * at, u64::from(at) * 1000),
    );
    let slow = slow_notes(&mut r, t0, at, at + 25);
    assert_eq!(slow.len(), 1, "{slow:?}");
    // The same start message again changes nothing.
    let same = r.on_message(
        &msg(Kind::Start, "etl", Some(77), seq),
        Now::new(t0 + S * (at + 26), u64::from(at + 26) * 1000),
    );
    assert!(same.is_empty(), "{same:?}");
    seq += 1;
    let again = r.on_message(
        &msg(Kind::Start, "etl", Some(77), seq),
        Now::new(t0 + S * (at + 30), u64::from(at + 30) * 1000),
    );
    let closed: Vec<&Notification> = again
        .iter()
        .filter(|n| n.resolves == Some(Event::Slow))
        .collect();
    assert_eq!(closed.len(), 1, "{again:?}");
    assert!(
        closed[0].text.as_deref().unwrap().ends_with("after 30s"),
        "{closed:?}"
    );
}
