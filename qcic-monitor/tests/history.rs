//! Run history end to end: the real monitor with its state database, runs
//! sent by the SDK over loopback, read back by `qcic-monitor history` and
//! `GET /api/jobs/{job}/runs`, across a `kill -9`, and pruned to
//! `history_runs`.

#![expect(clippy::unwrap_used, reason = "tests: a panic is the failure report")]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use qcic_sdk::Client;
use qcic_testkit::{Monitor, wait_until};

/// `qcic-monitor history --job JOB --state PATH`: its table.
fn history(state: &Path, job: &str, limit: usize) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_qcic-monitor"))
        .args([
            "history",
            "--job",
            job,
            "--limit",
            &limit.to_string(),
            "--state",
        ])
        .arg(state)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The table's rows (its header left out).
fn rows(table: &str) -> Vec<String> {
    table
        .lines()
        .skip(1)
        .filter(|l| !l.starts_with('('))
        .map(str::to_owned)
        .collect()
}

#[test]
fn runs_are_kept_read_back_and_survive_a_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.db");
    let keys = format!("state = \"{}\"", state.display());
    let body = "[[job]]\nname = \"etl\"\nevery = \"1h\"\nmax_runtime = \"1s\"\n\n\
                [http]\nlisten = \"{http}\"\n";
    let monitor = Monitor::start_with("watcher-a", &keys, body, &[]);
    let sender = Client::new([monitor.listen.clone()]).unwrap();
    let run = sender.start("etl").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    run.success_with_text("42 rows loaded").unwrap();
    let run = sender.start("etl").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    run.fail_with_code(Some(3), "disk full").unwrap();
    // A run that overruns (max_runtime 1s), then ends: one row, replaced.
    let long = sender.start("etl").unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(wait_until(qcic_testkit::WAIT, || history(
        &state, "etl", 10
    )
    .contains("overrun")));
    long.success().unwrap();
    // A lone failure: no start.
    sender
        .fail("etl", Some(1), "cron could not start it")
        .unwrap();
    let mut table = String::new();
    assert!(
        wait_until(qcic_testkit::WAIT, || {
            table = history(&state, "etl", 10);
            rows(&table).len() == 4 && !table.contains("overrun")
        }),
        "{table}"
    );
    let lines = rows(&table);
    // Newest first: the lone fail, the long run, the failed run, the first.
    assert!(
        lines[0].contains("fail") && lines[0].contains("cron could not start it"),
        "{table}"
    );
    assert!(lines[1].contains("success"), "{table}");
    assert!(
        lines[2].contains("fail") && lines[2].contains("disk full") && lines[2].contains("   3  "),
        "{table}"
    );
    assert!(
        lines[3].contains("success") && lines[3].contains("42 rows loaded"),
        "{table}"
    );

    let (status, answer) = qcic_testkit::http_get(&monitor.http, "/api/jobs/etl/runs?limit=2");
    assert!(status.contains(" 200"), "{status}");
    let runs: serde_json::Value = serde_json::from_str(&answer).unwrap();
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["outcome"], "fail");
    assert!(runs[0]["started_ms"].is_null(), "a lone fail has no start");
    assert_eq!(runs[1]["outcome"], "success");
    let long_ms = runs[1]["duration_ms"].as_u64().unwrap();
    assert!(long_ms >= 1500, "the long run lasted {long_ms} ms");
    // Run ids as 16 hex digits (JSON cannot hold a u64 as a number).
    let id = runs[1]["run_id"].as_str().unwrap();
    assert_eq!(id.len(), 16, "{id}");
    let before = runs[1]["started_ms"].as_u64().unwrap();
    let (_, older) = qcic_testkit::http_get(
        &monitor.http,
        &format!("/api/jobs/etl/runs?before={before}"),
    );
    let older: serde_json::Value = serde_json::from_str(&older).unwrap();
    assert_eq!(older.as_array().unwrap().len(), 2, "{older}");

    // kill -9, and a new watcher on the same database: the history is there.
    drop(monitor);
    let again = Monitor::start_with("watcher-a", &keys, body, &[]);
    assert_eq!(rows(&history(&state, "etl", 10)), lines);
    again.stop();
}

#[test]
fn the_history_keeps_the_newest_history_runs_of_a_job() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.db");
    let keys = format!("state = \"{}\"\nhistory_runs = 3", state.display());
    let monitor = Monitor::start_with(
        "watcher-a",
        &keys,
        "[[job]]\nname = \"etl\"\nevery = \"1h\"\n",
        &[],
    );
    let sender = Client::new([monitor.listen.clone()]).unwrap();
    for i in 0..6 {
        let run = sender.start("etl").unwrap();
        run.success_with_text(&format!("run number {i}")).unwrap();
        // Distinct start times, and a save between some of them.
        std::thread::sleep(Duration::from_millis(400));
    }
    let mut table = String::new();
    assert!(
        wait_until(qcic_testkit::WAIT, || {
            table = history(&state, "etl", 100);
            table.contains("run number 5")
        }),
        "{table}"
    );
    let lines = rows(&table);
    assert_eq!(lines.len(), 3, "{table}");
    assert!(
        lines[0].contains("run number 5") && lines[2].contains("run number 3"),
        "{table}"
    );
    monitor.stop();
}

/// `slow` end to end: five quick runs make the job's usual length; the
/// sixth, still going well past `slow_after` times it, is notified while
/// it runs (a run before the fifth never is), and its end follows up with
/// how long it took.
#[test]
fn a_run_far_longer_than_usual_is_notified_while_it_runs() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("notes.jsonl");
    let keys = format!("state = \"{}\"", dir.path().join("state.db").display());
    let body = format!(
        "[[job]]\nname = \"etl\"\nevery = \"1h\"\nslow_after = 3.0\n{}",
        qcic_testkit::note_channel(&out)
    );
    let monitor = Monitor::start_with("watcher-a", &keys, &body, &[]);
    let sender = Client::new([monitor.listen.clone()]).unwrap();
    // Four quick runs, then a long one: too few before it to judge.
    for _ in 0..4 {
        let run = sender.start("etl").unwrap();
        std::thread::sleep(Duration::from_millis(100));
        run.success().unwrap();
    }
    let long = sender.start("etl").unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        qcic_testkit::notes_of(&out, "slow", "etl").is_empty(),
        "slow with four runs behind it"
    );
    long.success().unwrap();
    // The fifth run (3 s) is in the median now: 100, 100, 100, 100, 3000 ms
    // make 100 ms; 3 x that is under the 1 s floor.
    let slow = sender.start("etl").unwrap();
    let notes = qcic_testkit::wait_notes(&out, "slow", "etl", 1);
    let text = notes[0]["text"].as_str().unwrap();
    assert!(text.contains("of the last 5 successful runs"), "{text}");
    slow.success().unwrap();
    let done = qcic_testkit::wait_notes(&out, "recovered", "etl", 1);
    assert_eq!(done[0]["incident"], notes[0]["incident"]);
    assert_eq!(done[0]["resolves"], "slow");
    monitor.stop();
}
