//! Notifications survive a crash: written to the state database's outbox
//! before any channel sees them, sent again after a `kill -9` and restart.

use std::time::Duration;

use qcic_sdk::Client;
use qcic_testkit::{Monitor, Smtp, header, notes, reserve_port, wait_until};

#[test]
fn an_email_pending_at_kill_9_is_delivered_after_the_restart_once() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.db");
    let held = reserve_port();
    let port = held.port();
    let body = format!(
        "[[job]]\nname = \"etl\"\nevery = \"1h\"\n\n[[notify]]\nkind = \"email\"\ngroup_wait = \"off\"\n\
         smtp = \"smtp://127.0.0.1:{port}\"\nfrom = \"qcic@example.com\"\nto = [\"ops@example.com\"]\n"
    );
    let keys = format!("state = \"{}\"", state.display());
    let first = Monitor::start_with("watcher-a", &keys, &body, &[]);
    let sender = Client::new([first.listen.clone()]).unwrap();
    sender
        .fail("etl", Some(9), "the mail server is down")
        .unwrap();
    assert!(wait_until(qcic_testkit::WAIT, || first
        .log()
        .contains("will retry")));
    drop(first); // SIGKILL: no shutdown, no flush

    let smtp = Smtp::start_on(held);
    let second = Monitor::start_with("watcher-a", &keys, &body, &[]);
    let mails = smtp.wait_for(1);
    assert!(mails[0].contains("the mail server is down"));
    assert!(header(&mails[0], "Subject").unwrap().contains("FAILED etl"));
    // Once: nothing else arrives (the outbox row is gone after delivery).
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(smtp.emails().len(), 1);
    let log = second.stop();
    assert!(
        log.contains("redelivering a notification pending since before the restart"),
        "{log}"
    );

    // A third start has nothing left to send.
    let third = Monitor::start_with("watcher-a", &keys, &body, &[]);
    std::thread::sleep(Duration::from_secs(1));
    let log = third.stop();
    assert!(log.contains("pending_notifications=0"), "{log}");
    assert_eq!(smtp.emails().len(), 1);
}

fn wait_note(path: &std::path::Path, event: &str, job: &str) -> serde_json::Value {
    qcic_testkit::wait_notes(path, event, job, 1).remove(0)
}

/// Job state survives `kill -9`: a deadline that passed while the watcher
/// was down fires at start-up (with the last message it knew), and an open
/// incident is closed after the restart with the same incident id.
#[test]
fn job_state_carries_over_a_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("notes.jsonl");
    let keys = format!("state = \"{}\"", dir.path().join("state.db").display());
    let body = format!(
        "[[job]]\nname = \"beat\"\nevery = \"3s\"\n[[job]]\nname = \"etl\"\nevery = \"1h\"\n\n\
         [[notify]]\nkind = \"command\"\ncommand = [\"sh\", \"-c\", \"cat >> {}\"]\n",
        out.display()
    );
    let first = Monitor::start_with("watcher-a", &keys, &body, &[]);
    let sender = Client::new([first.listen.clone()]).unwrap();
    sender.heartbeat("beat").unwrap();
    sender.fail("etl", Some(2), "broken").unwrap();
    let failed = wait_note(&out, "failed", "etl");
    // Let the (batched, 200 ms) state write happen, then crash.
    std::thread::sleep(Duration::from_millis(800));
    drop(sender);
    drop(first);
    // beat's deadline (3 s after its heartbeat) passes while no watcher runs.
    std::thread::sleep(Duration::from_secs(3));

    let second = Monitor::start_with("watcher-a", &keys, &body, &[]);
    let down = wait_note(&out, "down", "beat");
    assert!(
        down["last_seen_ms"].as_u64().is_some(),
        "restored: it knows the heartbeat from before the crash: {down:?}"
    );
    assert!(
        down["text"].as_str().unwrap().starts_with("no message for"),
        "{down:?}"
    );
    let sender = Client::new([second.listen.clone()]).unwrap();
    sender.start("etl").unwrap().success().unwrap();
    let up = wait_note(&out, "recovered", "etl");
    assert_eq!(
        up["incident"], failed["incident"],
        "the incident opened before the crash"
    );
    assert_eq!(
        notes(&out)
            .iter()
            .filter(|n| n["event"] == "failed")
            .count(),
        1,
        "the failure was not notified again after the restart"
    );
    let log = second.stop();
    assert!(
        log.contains("job state restored from the state database"),
        "{log}"
    );
}

/// `kill -9` in the middle of a burst of 300 notifications, then a restart:
/// every incident is delivered, and only a notification whose delivery was
/// under way at the kill (a channel runs up to 4 at once) or whose done
/// mark was not committed yet may come twice (at-least-once; same incident
/// id).
/// The burst is of `down`s, which the restarted watcher raises again if its
/// batched job state missed the crash: the notification log in the state
/// database is what keeps them from going out a second time.
#[test]
fn kill_9_during_a_burst_loses_nothing_and_repeats_nothing_delivered() {
    const JOBS: usize = 300;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("notes.jsonl");
    let keys = format!("state = \"{}\"", dir.path().join("state.db").display());
    let mut body = String::new();
    for i in 0..JOBS {
        body.push_str(&format!(
            "[[job]]\nname = \"job-{i:03}\"\nevery = \"2s\"\ngrace = \"0s\"\n"
        ));
    }
    body.push_str(&format!(
        "\n[[notify]]\nkind = \"command\"\ncommand = [\"sh\", \"-c\", \"cat >> {}\"]\n",
        out.display()
    ));
    let first = Monitor::start_with("watcher-a", &keys, &body, &[]);
    // Every job falls due at once, 2 s after the start; kill mid-delivery.
    assert!(wait_until(qcic_testkit::WAIT, || notes(&out).len() >= 30));
    drop(first);
    let at_kill = notes(&out).len();
    assert!(
        at_kill < JOBS,
        "the burst ended before the kill ({at_kill}): nothing was tested"
    );
    let second = Monitor::start_with("watcher-a", &keys, &body, &[]);
    let downs = |notes: &[serde_json::Value]| {
        notes
            .iter()
            .filter(|n| n["event"] == "down")
            .map(|n| n["incident"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert!(
        wait_until(Duration::from_secs(60), || {
            let ids = downs(&notes(&out));
            ids.iter().collect::<std::collections::HashSet<_>>().len() == JOBS
        }),
        "not every incident was delivered: {} distinct; {} lines written, {} of them not JSON",
        downs(&notes(&out))
            .iter()
            .collect::<std::collections::HashSet<_>>()
            .len(),
        std::fs::read_to_string(&out)
            .unwrap_or_default()
            .lines()
            .count(),
        std::fs::read_to_string(&out)
            .unwrap_or_default()
            .lines()
            .filter(|l| serde_json::from_str::<serde_json::Value>(l).is_err())
            .count()
    );
    // Past the jobs' next period (2 s): a `down` raised again after the
    // restart would have come by now.
    std::thread::sleep(Duration::from_secs(4));
    let ids = downs(&notes(&out));
    let distinct: std::collections::HashSet<_> = ids.iter().collect();
    let repeats = ids.len() - distinct.len();
    assert!(
        repeats <= 2 * qcic_monitor::notify::lanes::CONCURRENCY,
        "{repeats} repeats; only deliveries under way at the kill may repeat"
    );
    let log = second.stop();
    assert!(log.contains("notification_log="), "{log}");
    eprintln!(
        "kill -9 burst: {at_kill} of {JOBS} delivered before the kill, {repeats} delivered twice"
    );
}

/// A job never heard of is watched from the watcher's start, and that
/// start is saved: a watcher killed a second after starting and restarted
/// keeps the job's deadline. Before, the first save waited for the loop's
/// first wake-up (the first deadline, here an hour away), so each restart
/// began the watch again and the job's `down` could be put off for ever.
#[test]
fn a_never_heard_jobs_deadline_survives_a_kill_9_soon_after_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let keys = format!("state = \"{}\"", dir.path().join("state.db").display());
    let body = "[[job]]\nname = \"nightly\"\nevery = \"1h\"\n";
    let deadline = |monitor: &Monitor| {
        let status = qcic_monitor::control::request(
            &monitor.control,
            &qcic_monitor::control::Request::Status,
        )
        .unwrap();
        let status: serde_json::Value = serde_json::from_str(&status).unwrap();
        status["jobs"][0]["next_deadline_ms"].as_u64().unwrap()
    };
    // Nothing asks the first watcher anything: a question would wake its
    // loop, and so arm the save, which is what is tested.
    let first = Monitor::start_with("watcher-a", &keys, body, &[]);
    std::thread::sleep(Duration::from_secs(1));
    drop(first);
    let restarted_ms = qcic_testkit::now_ms();
    let second = Monitor::start_with("watcher-a", &keys, body, &[]);
    let after = deadline(&second);
    second.stop();
    assert!(
        after < restarted_ms + 3_600_000,
        "the watch began again at the restart: the deadline is {} ms after restart + 1h",
        i128::from(after) - i128::from(restarted_ms + 3_600_000)
    );
}
