//! Jobs that declare themselves, against the real monitor: the `[declare]`
//! policy, refusals with their reasons, `forget`, `kill -9`, a watcher whose
//! state was wiped learning the job again from the sender's re-declaration,
//! and unknown jobs that alert instead of reporting into the void.

#![expect(clippy::unwrap_used, reason = "tests: a panic is the failure report")]

use std::process::Command;
use std::time::Duration;

use qcic_sdk::{Client, JobSpec};
use qcic_testkit::{
    Monitor, counter, note_channel, notes, notes_of, qcic_bin, reserve_port, wait_notes, wait_until,
};

fn policy(extra: &str) -> String {
    format!("[declare]\nallow = true\nmin_every = \"1s\"\n{extra}\n")
}

fn status(monitor: &Monitor) -> String {
    let out = Command::new(qcic_testkit::monitor_bin())
        .arg("status")
        .arg("--control")
        .arg(&monitor.control)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// How long after its last message a job was called down, ms.
fn silent_for(note: &serde_json::Value) -> u64 {
    note["detected_ms"].as_u64().unwrap() - note["last_seen_ms"].as_u64().unwrap()
}

#[test]
fn a_job_declared_from_rust_goes_down_at_its_deadline_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("notes.jsonl");
    let monitor = Monitor::start(
        "watcher-a",
        &format!("{}{}", policy(""), note_channel(&out)),
    );
    let client = Client::new([monitor.listen.clone()]).unwrap();
    client
        .declare(&JobSpec::every("rust-job", Duration::from_secs(2)).grace(Duration::from_secs(1)))
        .unwrap();
    client.heartbeat("rust-job").unwrap();
    let down = wait_notes(&out, "down", "rust-job", 1);
    // Down at every + grace (3 s) after the heartbeat, not before.
    assert!(silent_for(&down[0]) >= 3000, "{down:?}");
    assert!(status(&monitor).contains("every=2s grace=1s"));
    client.heartbeat("rust-job").unwrap();
    let up = wait_notes(&out, "recovered", "rust-job", 1);
    assert_eq!(up[0]["incident"], down[0]["incident"]);
    let log = monitor.stop();
    assert_eq!(counter(&log, "declarations_taken"), Some(1), "{log}");
}

#[test]
fn the_shell_declares_through_qcic_run_and_qcic_declare() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("notes.jsonl");
    let monitor = Monitor::start(
        "watcher-a",
        &format!("{}{}", policy(""), note_channel(&out)),
    );
    let run = Command::new(qcic_bin())
        .args(["--endpoints", &monitor.listen])
        .args([
            "run",
            "--job",
            "shell-job",
            "--every",
            "2s",
            "--grace",
            "1s",
            "--",
            "true",
        ])
        .output()
        .unwrap();
    assert!(run.status.success(), "{run:?}");
    let down = wait_notes(&out, "down", "shell-job", 1);
    assert!(silent_for(&down[0]) >= 3000, "{down:?}");
    // `qcic declare` alone: a new declaration of the same job, with a
    // cron schedule in a time zone.
    let declare = Command::new(qcic_bin())
        .args(["--endpoints", &monitor.listen])
        .args([
            "declare",
            "--job",
            "cron-job",
            "--cron",
            "30 2 * * 1-5",
            "--timezone",
            "Europe/London",
        ])
        .output()
        .unwrap();
    assert!(declare.status.success(), "{declare:?}");
    let send = Command::new(qcic_bin())
        .args(["--endpoints", &monitor.listen])
        .args(["send", "--job", "shell-job", "heartbeat"])
        .output()
        .unwrap();
    assert!(send.status.success());
    wait_notes(&out, "recovered", "shell-job", 1);
    assert!(wait_until(qcic_testkit::WAIT, || status(&monitor)
        .contains("cron='30 2 * * 1-5' timezone=Europe/London")));
    // A bad declaration on `qcic run`: the command still runs, undeclared.
    let bad = Command::new(qcic_bin())
        .args(["--endpoints", &monitor.listen])
        .args([
            "run", "--job", "bad-job", "--every", "often", "--", "sh", "-c", "exit 3",
        ])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("every"));
}

#[test]
fn declarations_outside_the_policy_are_refused_with_their_reason() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("notes.jsonl");
    let body = format!(
        "[declare]\nallow = true\njobs = [\"etl-*\"]\nmin_every = \"2m\"\n{}",
        note_channel(&out)
    );
    let monitor = Monitor::start_with("watcher-a", "unknown_jobs = \"count\"", &body, &[]);
    let client = Client::new([monitor.listen.clone()]).unwrap();
    let hour = Duration::from_secs(3600);
    for (spec, reason) in [
        (JobSpec::every("other", hour), "reason=name"),
        (
            JobSpec::every("etl-fast", Duration::from_secs(10)),
            "reason=schedule",
        ),
        (
            JobSpec::cron("etl-mars", "0 2 * * *", "Mars/Olympus"),
            "reason=invalid",
        ),
        (
            JobSpec::cron("etl-every-minute", "* * * * *", ""),
            "reason=schedule",
        ),
        (
            JobSpec::every("etl-nope", hour).notify(["nope"]),
            "reason=channel",
        ),
        // Valid cron, but never due: nothing to watch.
        (
            JobSpec::cron("etl-feb30", "0 0 30 2 *", ""),
            "never or no longer comes",
        ),
    ] {
        client.declare(&spec).unwrap();
        monitor.wait_log(reason);
    }
    client
        .declare(&JobSpec::every("etl-good", hour).max_runtime(hour))
        .unwrap();
    monitor.wait_log("a job declared itself");
    let table = status(&monitor);
    assert!(table.contains("etl-good"), "{table}");
    for refused in [
        "other",
        "etl-fast",
        "etl-mars",
        "etl-every-minute",
        "etl-nope",
        "etl-feb30",
    ] {
        assert!(!table.contains(refused), "{refused} is watched:\n{table}");
    }
    let metrics_log = monitor.stop();
    assert_eq!(
        counter(&metrics_log, "declarations_refused"),
        Some(6),
        "{metrics_log}"
    );
    assert!(notes(&out).is_empty(), "{:?}", notes(&out));

    // No [declare] table: refused, counted, logged.
    let plain = Monitor::start("watcher-b", "[[job]]\nname = \"etl\"\nevery = \"1h\"\n");
    let client = Client::new([plain.listen.clone()]).unwrap();
    client.declare(&JobSpec::every("etl-x", hour)).unwrap();
    plain.wait_log("reason=disabled");
    // A configured job declaring itself: the configuration wins.
    client
        .declare(&JobSpec::every("etl", Duration::from_secs(60)))
        .unwrap();
    let log = plain.stop();
    assert_eq!(counter(&log, "declarations_refused"), Some(2), "{log}");
}

/// Kept in the state database: a watcher killed with `kill -9` watches the
/// declared job after its restart without any message; a watcher whose
/// state was wiped learns it again from the sender's next message (the
/// sender re-declares after each new connection).
#[test]
fn declared_jobs_survive_kill_9_and_come_back_to_a_wiped_watcher() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("notes.jsonl");
    let port = reserve_port();
    let state = dir.path().join("state.db");
    let keys = |state: &std::path::Path| {
        format!(
            "listen = [\"{}\"]\nstate = \"{}\"",
            port.endpoint(),
            state.display()
        )
    };
    let body = format!("{}{}", policy(""), note_channel(&out));
    let first = Monitor::start_with("watcher-a", &keys(&state), &body, &[]);
    let client = Client::new([port.endpoint()]).unwrap();
    client
        .declare(&JobSpec::every("kept-job", Duration::from_secs(4)).grace(Duration::from_secs(1)))
        .unwrap();
    client.heartbeat("kept-job").unwrap();
    first.wait_log("a job declared itself");
    std::thread::sleep(Duration::from_secs(1)); // saved within 200 ms
    drop(first); // SIGKILL

    let second = Monitor::start_with("watcher-a", &keys(&state), &body, &[]);
    assert!(status(&second).contains("kept-job"), "{}", second.log());
    // Nobody sent anything since: the restored declaration alone brings
    // the down.
    let down = wait_notes(&out, "down", "kept-job", 1);
    assert_eq!(down[0]["watcher"], "watcher-a");
    drop(second);

    // Wiped: a new state database on the same endpoint.
    let wiped = dir.path().join("wiped.db");
    let third = Monitor::start_with("watcher-a", &keys(&wiped), &body, &[]);
    assert!(!status(&third).contains("kept-job"));
    // The sender's socket reconnects to the new watcher; its next message
    // brings the declaration first.
    assert!(wait_until(qcic_testkit::WAIT, || {
        client.heartbeat("kept-job").unwrap();
        std::thread::sleep(Duration::from_millis(300));
        status(&third).contains("kept-job")
    }));
    let log = third.stop();
    assert_eq!(counter(&log, "declarations_taken"), Some(1), "{log}");
}

#[test]
fn forget_removes_a_declared_job_and_not_a_configured_one() {
    let monitor = Monitor::start(
        "watcher-a",
        &format!(
            "{}[http]\nlisten = \"{{http}}\"\n\n[[job]]\nname = \"etl\"\nevery = \"1h\"\n",
            policy("")
        ),
    );
    let client = Client::new([monitor.listen.clone()]).unwrap();
    client
        .declare(&JobSpec::every("temp-job", Duration::from_secs(3600)))
        .unwrap();
    monitor.wait_log("a job declared itself");
    // Where each job comes from, in the API and on the page.
    let (_, api) = qcic_testkit::http_get(&monitor.http, "/api/jobs");
    let api: serde_json::Value = serde_json::from_str(&api).unwrap();
    let origin = |job: &str| {
        api.as_array()
            .unwrap()
            .iter()
            .find(|j| j["name"] == job)
            .map(|j| j["origin"].clone())
    };
    assert_eq!(origin("temp-job"), Some("declared".into()));
    assert_eq!(origin("etl"), Some("config".into()));
    let (_, page) = qcic_testkit::http_get(&monitor.http, "/");
    assert!(
        page.contains("data-job=\"temp-job\" data-state=\"waiting\" data-origin=\"declared\""),
        "{page}"
    );
    assert!(page.contains("<code>every=1h</code>"), "{page}");
    let forget = |job: &str| {
        Command::new(qcic_testkit::monitor_bin())
            .args(["forget", "--job", job, "--control"])
            .arg(&monitor.control)
            .output()
            .unwrap()
    };
    let ok = forget("temp-job");
    assert!(ok.status.success(), "{ok:?}");
    assert!(!status(&monitor).contains("temp-job"));
    let refused = forget("etl");
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("is in the configuration"));
    assert!(status(&monitor).contains("etl"));
}

/// Without `[declare]` a message for a job nobody configured raises one
/// `unknown_job` (not one per message); declared, it gets its follow-up.
#[test]
fn an_unknown_job_alerts_once_and_recovers_once_declared() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("notes.jsonl");
    let monitor = Monitor::start(
        "watcher-a",
        &format!(
            "[[job]]\nname = \"etl\"\nevery = \"1h\"\n{}",
            note_channel(&out)
        ),
    );
    let client = Client::new([monitor.listen.clone()]).unwrap();
    for _ in 0..5 {
        client.heartbeat("ghost").unwrap();
    }
    let alert = wait_notes(&out, "unknown_job", "ghost", 1);
    assert!(
        alert[0]["text"]
            .as_str()
            .unwrap()
            .contains("nobody watches it")
    );
    drop(monitor);

    let monitor = Monitor::start_with(
        "watcher-b",
        "unknown_jobs = \"alert\"",
        &format!("{}{}", policy(""), note_channel(&out)),
        &[],
    );
    let client = Client::new([monitor.listen.clone()]).unwrap();
    client.heartbeat("ghost-2").unwrap();
    let alert = wait_notes(&out, "unknown_job", "ghost-2", 1);
    client
        .declare(&JobSpec::every("ghost-2", Duration::from_secs(3600)))
        .unwrap();
    let up = wait_notes(&out, "recovered", "ghost-2", 1);
    assert_eq!(up[0]["incident"], alert[0]["incident"]);
    assert_eq!(up[0]["resolves"], "unknown_job");
    let log = monitor.stop();
    assert_eq!(notes_of(&out, "unknown_job", "ghost").len(), 1, "{log}");
}

/// A reload keeps declared jobs (the configuration changed around them),
/// and judges them again by the new `[declare]`: one it no longer takes
/// is removed, and the alarm it had open gets its follow-up.
#[test]
fn a_reload_keeps_declared_jobs_and_judges_them_again() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("notes.jsonl");
    let body = |patterns: &str, extra_job: &str| {
        format!(
            "[declare]\nallow = true\nmin_every = \"1s\"\njobs = [{patterns}]\n\n\
             [[job]]\nname = \"plain\"\nevery = \"1h\"\n{extra_job}{}",
            note_channel(&out)
        )
    };
    let monitor = Monitor::start("watcher-a", &body("\"etl-*\"", ""));
    let client = Client::new([monitor.listen.clone()]).unwrap();
    client
        .declare(&JobSpec::every("etl-a", Duration::from_secs(2)).grace(Duration::from_secs(1)))
        .unwrap();
    client.heartbeat("etl-a").unwrap();
    let down = wait_notes(&out, "down", "etl-a", 1);

    monitor.rewrite(&body(
        "\"etl-*\"",
        "[[job]]\nname = \"plain-2\"\nevery = \"1h\"\n",
    ));
    monitor.hup();
    assert!(wait_until(qcic_testkit::WAIT, || status(&monitor).contains("plain-2")));
    assert!(status(&monitor).contains("etl-a"), "{}", status(&monitor));
    assert!(notes_of(&out, "recovered", "etl-a").is_empty());

    monitor.rewrite(&body("\"backup-*\"", ""));
    monitor.hup();
    let up = wait_notes(&out, "recovered", "etl-a", 1);
    assert_eq!(up[0]["incident"], down[0]["incident"]);
    assert!(!status(&monitor).contains("etl-a"), "{}", status(&monitor));
    monitor.wait_log("no longer taken by the [declare] policy");
}

/// A sender declares to every watcher it sends to: two watchers (a farm's
/// pair) end up with the same declared job.
#[test]
fn every_watcher_a_sender_reaches_gets_its_declarations() {
    let a = Monitor::start("watcher-a", &policy(""));
    let b = Monitor::start("watcher-b", &policy(""));
    let client = Client::new([a.listen.clone(), b.listen.clone()]).unwrap();
    client
        .declare(&JobSpec::cron("shared-job", "0 3 * * *", "Asia/Tokyo"))
        .unwrap();
    for w in [&a, &b] {
        assert!(wait_until(qcic_testkit::WAIT, || status(w)
            .contains("cron='0 3 * * *' timezone=Asia/Tokyo")));
    }
}

/// A declared job's follow-ups go where its alarms went (its channels),
/// also once it is forgotten and its route is gone.
#[test]
fn a_forgotten_jobs_follow_up_goes_to_its_own_channel() {
    let dir = tempfile::tempdir().unwrap();
    let (ops, all) = (dir.path().join("ops.jsonl"), dir.path().join("all.jsonl"));
    let channel = |name: &str, path: &std::path::Path, default: bool| {
        format!(
            "\n[[notify]]\nname = \"{name}\"\ndefault = {default}\nkind = \"command\"\ncommand = [\"sh\", \"-c\", \"cat >> {}\"]\n",
            path.display()
        )
    };
    let monitor = Monitor::start(
        "watcher-a",
        &format!(
            "{}{}{}",
            policy(""),
            channel("ops", &ops, false),
            channel("all", &all, true)
        ),
    );
    let client = Client::new([monitor.listen.clone()]).unwrap();
    client
        .declare(
            &JobSpec::every("routed-job", Duration::from_secs(2))
                .grace(Duration::from_secs(1))
                .notify(["ops"]),
        )
        .unwrap();
    client.heartbeat("routed-job").unwrap();
    let down = wait_notes(&ops, "down", "routed-job", 1);
    let forget = Command::new(qcic_testkit::monitor_bin())
        .args(["forget", "--job", "routed-job", "--control"])
        .arg(&monitor.control)
        .output()
        .unwrap();
    assert!(forget.status.success(), "{forget:?}");
    let up = wait_notes(&ops, "recovered", "routed-job", 1);
    assert_eq!(up[0]["incident"], down[0]["incident"]);
    assert!(
        up[0]["text"]
            .as_str()
            .unwrap()
            .contains("no longer watched")
    );
    monitor.stop();
    assert!(notes(&all).is_empty(), "{:?}", notes(&all));
}

/// A restart under a policy that no longer takes a declared job: its open
/// alarm gets its follow-up, as on a reload.
#[test]
fn a_restart_under_a_stricter_policy_closes_what_the_job_left_open() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("notes.jsonl");
    let keys = format!("state = \"{}\"", dir.path().join("state.db").display());
    let body = |patterns: &str| {
        format!(
            "[declare]\nallow = true\nmin_every = \"1s\"\njobs = [{patterns}]\n{}",
            note_channel(&out)
        )
    };
    let first = Monitor::start_with("watcher-a", &keys, &body("\"etl-*\""), &[]);
    let client = Client::new([first.listen.clone()]).unwrap();
    client
        .declare(&JobSpec::every("etl-b", Duration::from_secs(2)).grace(Duration::from_secs(1)))
        .unwrap();
    client.heartbeat("etl-b").unwrap();
    let down = wait_notes(&out, "down", "etl-b", 1);
    std::thread::sleep(Duration::from_secs(1)); // saved
    first.stop();
    let second = Monitor::start_with("watcher-a", &keys, &body("\"backup-*\""), &[]);
    let up = wait_notes(&out, "recovered", "etl-b", 1);
    assert_eq!(up[0]["incident"], down[0]["incident"]);
    assert!(!status(&second).contains("etl-b"));
}

/// `slow_after` declared by the job itself (protocol key 12): after five
/// quick runs, a sixth still going at three times their median is
/// notified while it runs.
#[test]
fn a_declared_slow_after_raises_slow_while_the_run_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("notes.jsonl");
    let monitor = Monitor::start(
        "watcher-a",
        &format!("{}{}", policy(""), note_channel(&out)),
    );
    let client = Client::new([monitor.listen.clone()]).unwrap();
    client
        .declare(&JobSpec::every("slow-job", Duration::from_secs(3600)).slow_after(3.0))
        .unwrap();
    for _ in 0..5 {
        let run = client.start("slow-job").unwrap();
        std::thread::sleep(Duration::from_millis(50));
        run.success().unwrap();
    }
    let run = client.start("slow-job").unwrap();
    let slow = wait_notes(&out, "slow", "slow-job", 1);
    assert!(
        slow[0]["text"].as_str().unwrap().contains("3 x the median"),
        "{slow:?}"
    );
    assert!(status(&monitor).contains("slow_after=3"));
    run.success().unwrap();
    wait_notes(&out, "recovered", "slow-job", 1);
    monitor.stop();
}
