//! Silences and pauses.

use super::*;
use crate::schedule::Schedule;

fn hb(seq: u64) -> Message {
    msg(Kind::Heartbeat, "etl", None, seq)
}

#[test]
fn a_silence_holds_back_and_then_releases_an_open_incident() {
    let t0 = Instant::now();
    let cfg = JobConfig::new("etl", Schedule::Every(S * 10), Duration::ZERO);
    let mut r = registry_of("w", &[cfg], t0, 0);
    r.silence("etl", Some(60_000), "db upgrade", Now::new(t0, 0))
        .unwrap();
    assert!(
        r.on_deadlines(Now::new(t0 + S * 10, 10_000)).is_empty(),
        "down, but silenced"
    );
    assert_eq!(
        r.views(Now::new(t0 + S * 10, 10_000))[0].state,
        JobStatus::Down,
        "still recorded"
    );
    let released = r.on_deadlines(Now::new(t0 + S * 60, 60_000));
    assert_eq!(released.len(), 1);
    assert_eq!(released[0].event, Event::Down);
    assert!(
        released[0]
            .text
            .as_ref()
            .unwrap()
            .contains("held back by a silence")
    );
    let up = r.on_message(&hb(1), Now::new(t0 + S * 61, 61_000));
    assert_eq!(up[0].resolves, Some(Event::Down));
    assert_eq!(up[0].incident, released[0].incident);
}

#[test]
fn an_incident_that_opens_and_closes_during_a_pause_is_never_notified() {
    let t0 = Instant::now();
    let cfg = JobConfig::new("etl", Schedule::Every(S * 10), Duration::ZERO);
    let mut r = registry_of("w", &[cfg], t0, 0);
    r.silence("etl", None, "maintenance", Now::new(t0, 0))
        .unwrap();
    assert!(r.on_deadlines(Now::new(t0 + S * 10, 10_000)).is_empty());
    assert!(
        r.on_message(&hb(1), Now::new(t0 + S * 12, 12_000))
            .is_empty(),
        "no follow-up owed"
    );
    assert!(
        r.unsilence("etl", Now::new(t0 + S * 13, 13_000))
            .unwrap()
            .is_empty()
    );
    assert!(r.silence("nope", None, "", Now::new(t0, 0)).is_err());
}
