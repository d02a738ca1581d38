//! A lone watcher you can trust: the cases nobody designed it for, each
//! with the real binaries (qcic-monitor, the `qcic` command, a sender in its
//! own PID namespace, libfaketime, idle socket clients under a small
//! descriptor limit).
//!
//! Every distinct trouble is notified (a restarted process that repeats its
//! pid and sequence numbers, a run that stalls twice, a job removed and
//! added back), streaks count what they say, a cron slot due just after a
//! restart is still watched, wall-clock steps move the deadlines that are
//! wall times, and neither idle local clients nor one odd request nor a
//! panic can leave a watcher that looks alive and alarms no more.

#![expect(clippy::unwrap_used, reason = "tests: a panic is the failure report")]

use std::collections::HashSet;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

use qcic_sdk::Client;
use qcic_testkit::{
    Monitor, WAIT, http_get, note_channel, notes, notes_of, now_ms, qcic_bin, wait_notes,
    wait_until,
};
use serde_json::Value;

/// A watcher whose every notification is written to a file: (the temp
/// dir that holds it, the file, the watcher).
fn watching(jobs: &str) -> (tempfile::TempDir, std::path::PathBuf, Monitor) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("notes.jsonl");
    let monitor = Monitor::start("watcher-a", &format!("{jobs}{}", note_channel(&out)));
    (dir, out, monitor)
}

fn incidents(notes: &[Value]) -> Vec<String> {
    notes
        .iter()
        .map(|n| n["incident"].as_str().unwrap().to_owned())
        .collect()
}

fn distinct(ids: &[String]) -> usize {
    ids.iter().collect::<HashSet<_>>().len()
}

fn status(monitor: &Monitor) -> Result<Value, String> {
    let req = qcic_monitor::control::Request::Status;
    let line = qcic_monitor::control::request(&monitor.control, &req)?;
    serde_json::from_str(&line).map_err(|e| format!("{e}: {line:?}"))
}

/// Sleeps until the wall clock reads `at_ms`.
fn sleep_until_ms(at_ms: u64) {
    let now = now_ms();
    if at_ms > now {
        sleep(Duration::from_millis(at_ms - now));
    }
}

/// Defect 1: a job that runs as PID 1 in a container (here: a real second
/// PID namespace) sends the same host/pid/seq every time it runs. Each of
/// its outages is a new incident and is notified, with its follow-up.
#[test]
fn a_process_restarted_as_pid_1_gets_every_outage_notified() {
    let qcic = qcic_bin();
    let (_dir, out, monitor) = watching("[[job]]\nname = \"crashy\"\nevery = \"3s\"\n");
    for round in 1..=3 {
        let sent = Command::new("unshare")
            .args(["--pid", "--fork", "--mount-proc"])
            .arg(&qcic)
            .args(["send", "--job", "crashy", "heartbeat"])
            .env("QCIC_ENDPOINTS", &monitor.listen)
            .output()
            .unwrap();
        assert!(
            sent.status.success(),
            "unshare qcic send: {}",
            String::from_utf8_lossy(&sent.stderr)
        );
        // Each heartbeat is followed by silence: one more down.
        let downs: Vec<Value> = wait_until_heard_downs(&out, round);
        assert_eq!(downs.len(), round, "{:#?}", notes(&out));
    }
    let downs = heard_downs(&out);
    let ids = incidents(&downs);
    assert_eq!(distinct(&ids), 3, "three outages, three incidents: {ids:?}");
    // Rounds 2 and 3 ended the outage before them, each with its own id.
    let recovered = wait_notes(&out, "recovered", "crashy", 2);
    assert_eq!(incidents(&recovered), ids[..2].to_vec());
}

/// The downs of jobs that had been heard (not "never heard from").
fn heard_downs(out: &Path) -> Vec<Value> {
    notes_of(out, "down", "crashy")
        .into_iter()
        .filter(|n| n["last_seen_ms"].is_u64())
        .collect()
}

fn wait_until_heard_downs(out: &Path, n: usize) -> Vec<Value> {
    let mut downs = Vec::new();
    assert!(
        wait_until(WAIT, || {
            downs = heard_downs(out);
            downs.len() >= n
        }),
        "expected {n} downs: {:#?}",
        notes(out)
    );
    downs
}

/// Defect 2: a run that stalls, moves on and stalls again is notified
/// twice, each stall with its own incident and its own follow-up.
#[test]
fn a_run_that_stalls_twice_is_notified_twice() {
    let (_dir, out, monitor) =
        watching("[[job]]\nname = \"st\"\nevery = \"1h\"\nstall_after = \"2s\"\n");
    let client = Client::new([monitor.listen.clone()]).unwrap();
    let run = client.start("st").unwrap();
    let first = wait_notes(&out, "stalled", "st", 1);
    run.progress("moving again").unwrap();
    wait_notes(&out, "recovered", "st", 1);
    let stalls = wait_notes(&out, "stalled", "st", 2);
    run.success().unwrap();
    let recovered = wait_notes(&out, "recovered", "st", 2);
    let ids = incidents(&stalls);
    assert_eq!(distinct(&ids), 2, "{ids:?}");
    assert_eq!(ids[0], first[0]["incident"].as_str().unwrap());
    assert_eq!(incidents(&recovered), ids);
}

/// Defect 3: a job removed by a reload and added back alarms again.
#[test]
fn a_job_removed_and_added_back_alarms_again() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("notes.jsonl");
    let stay = "[[job]]\nname = \"stay\"\nevery = \"1h\"\n";
    let back = "[[job]]\nname = \"back\"\nevery = \"2s\"\n";
    let channel = note_channel(&out);
    let monitor = Monitor::start("watcher-a", &format!("{stay}{back}{channel}"));
    wait_notes(&out, "down", "back", 1);
    monitor.rewrite(&format!("{stay}{channel}"));
    monitor.hup();
    wait_notes(&out, "recovered", "back", 1);
    monitor.rewrite(&format!("{stay}{back}{channel}"));
    monitor.hup();
    let downs = wait_notes(&out, "down", "back", 2);
    assert_eq!(distinct(&incidents(&downs)), 2, "{downs:#?}");
}

/// Defect 4: a watcher killed just before a cron slot and back just after
/// it still raises `late` for that slot, `start_within` after it: the slot
/// it awaited is kept in its state (a fresh look from the restart would
/// await the next slot only).
#[test]
fn late_is_raised_for_a_slot_that_passed_during_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("notes.jsonl");
    let keys = format!("state = \"{}\"", dir.path().join("state.db").display());
    let body = format!(
        "[[job]]\nname = \"daily\"\ncron = \"*/20 * * * * *\"\nstart_within = \"8s\"\n{}",
        note_channel(&out)
    );
    // Started just after a slot, whose run starts and succeeds at once;
    // the next slot is 20 s away.
    let boundary = (now_ms() / 20_000 + 1) * 20_000;
    sleep_until_ms(boundary + 300);
    let slot = boundary + 20_000;
    let first = Monitor::start_with("watcher-a", &keys, &body, &[]);
    let client = Client::new([first.listen.clone()]).unwrap();
    client.start("daily").unwrap().success().unwrap();
    assert!(client.flush(Duration::from_secs(5)));
    drop(client);
    sleep_until_ms(slot - 2_000);
    drop(first); // kill -9
    sleep_until_ms(slot + 2_000);
    let _second = Monitor::start_with("watcher-a", &keys, &body, &[]);
    let late = wait_notes(&out, "late", "daily", 1);
    let text = late[0]["text"].as_str().unwrap();
    let due = qcic_monitor::notification::rfc3339(slot);
    assert!(
        text.contains(&due),
        "late for the slot at {due}, not a later one: {text}"
    );
}

/// Defect 5: with `recover_after_successes = 2`, a heartbeat between two
/// runs does not stand in for a successful run.
#[test]
fn a_heartbeat_does_not_count_as_a_success() {
    let (_dir, out, monitor) =
        watching("[[job]]\nname = \"etl\"\nevery = \"1h\"\nrecover_after_successes = 2\n");
    let client = Client::new([monitor.listen.clone()]).unwrap();
    client.start("etl").unwrap().fail("broken").unwrap();
    wait_notes(&out, "failed", "etl", 1);
    client.heartbeat("etl").unwrap();
    client.start("etl").unwrap().success().unwrap();
    assert!(client.flush(Duration::from_secs(5)));
    // One successful run and a heartbeat: the failure stays open.
    sleep(Duration::from_secs(1));
    assert!(
        notes_of(&out, "recovered", "etl").is_empty(),
        "one success and a heartbeat ended the failure: {:#?}",
        notes(&out)
    );
    client.start("etl").unwrap().success().unwrap();
    let recovered = wait_notes(&out, "recovered", "etl", 1);
    assert_eq!(recovered[0]["resolves"], "failed");
}

const FAKETIME_LIB: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

/// Defect 6: the watcher's wall clock steps (libfaketime, its offset
/// changed while it runs). A step back does not give a false `down` for a
/// cron job that keeps to its schedule by the watcher's clock; a step
/// forward past a cron deadline makes it fall due at once, not when the
/// monotonic instant it was armed at comes.
#[test]
fn cron_deadlines_follow_a_wall_clock_step() {
    assert!(
        Path::new(FAKETIME_LIB).exists(),
        "{FAKETIME_LIB} is missing: scripts/setup.sh installs Debian's faketime"
    );
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("notes.jsonl");
    let offset = dir.path().join("faketime");
    std::fs::write(&offset, "+0\n").unwrap();
    let offset_str = offset.display().to_string();
    let env = [
        ("LD_PRELOAD", FAKETIME_LIB),
        ("FAKETIME_TIMESTAMP_FILE", offset_str.as_str()),
        ("FAKETIME_NO_CACHE", "1"),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
    ];
    let body = format!(
        "[[job]]\nname = \"tick\"\ncron = \"*/10 * * * * *\"\ngrace = \"3s\"\n\n\
         [[job]]\nname = \"hourly\"\ncron = \"0 0 * * * *\"\ngrace = \"1s\"\n{}",
        note_channel(&out)
    );
    // Start just after a 10 s boundary, with room before the next.
    let boundary = (now_ms() / 10_000 + 1) * 10_000;
    sleep_until_ms(boundary + 300);
    let monitor = Monitor::start_with("watcher-a", "", &body, &env);
    let client = Client::new([monitor.listen.clone()]).unwrap();
    // By its clock: slot :00 heard; down at :10 + 3 s unless :10 is heard.
    client.heartbeat("tick").unwrap();
    client.heartbeat("hourly").unwrap();
    assert!(client.flush(Duration::from_secs(2)));
    sleep_until_ms(boundary + 1_500);
    std::fs::write(&offset, "-15s\n").unwrap();
    // Its :10 is our :25: the job sends then, on time by the watcher's clock.
    sleep_until_ms(boundary + 25_300);
    client.heartbeat("tick").unwrap();
    assert!(client.flush(Duration::from_secs(2)));
    sleep_until_ms(boundary + 27_000);
    assert!(
        notes_of(&out, "down", "tick").is_empty(),
        "a false down after the clock stepped back: {:#?}",
        notes(&out)
    );
    assert!(
        monitor.log().contains(
            "the wall clock stepped; cron, scheduled-start and silence deadlines follow it"
        ),
        "{}",
        monitor.log()
    );
    // Two hours forward: `hourly`'s deadline (the next full hour) has passed
    // by the watcher's clock, up to an hour before its armed instant.
    let stepped_at = Instant::now();
    std::fs::write(&offset, "+7200s\n").unwrap();
    let down = wait_notes(&out, "down", "hourly", 1);
    assert!(down[0]["last_seen_ms"].is_u64());
    eprintln!(
        "clock step forward: hourly down {:?} after the step",
        stepped_at.elapsed()
    );
}

/// Defect 7: 300 idle clients on the control socket and 300 on the HTTP
/// port, under a 256-descriptor limit, neither blind the watcher (a job
/// heartbeating on time from a sender that connects afterwards stays up),
/// nor make it spin, nor lock out `status`.
#[test]
fn idle_local_clients_cannot_blind_the_watcher() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("notes.jsonl");
    let mut monitor = Monitor::start_wrapped(
        &["prlimit", "--nofile=256:256", "--"],
        "watcher-a",
        "",
        &format!(
            "[http]\nlisten = \"{{http}}\"\n\n[[job]]\nname = \"beat\"\nevery = \"2s\"\ngrace = \"1s\"\n{}",
            note_channel(&out)
        ),
        &[],
    );
    let (control, http) = (monitor.control.clone(), monitor.http.clone());
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        let mut held = (Vec::new(), Vec::new());
        for _ in 0..300 {
            if let Ok(s) = std::os::unix::net::UnixStream::connect(&control) {
                held.0.push(s);
            }
            if let Ok(s) = std::net::TcpStream::connect(&http) {
                held.1.push(s);
            }
        }
        let _ = stop_rx.recv();
        (held.0.len(), held.1.len())
    });
    sleep(Duration::from_secs(1));
    let cpu_before = cpu_ticks(monitor.pid());
    let window = Instant::now();
    // A sender that connects only now, with the idle clients in place, and
    // heartbeats every 500 ms until the checks are done.
    let beating = Arc::new(AtomicBool::new(true));
    let beats = {
        let (listen, beating) = (monitor.listen.clone(), Arc::clone(&beating));
        std::thread::spawn(move || {
            let client = Client::new([listen]).unwrap();
            while beating.load(Ordering::SeqCst) {
                client.heartbeat("beat").unwrap();
                sleep(Duration::from_millis(500));
            }
        })
    };
    sleep(Duration::from_secs(10));
    let cpu = cpu_ticks(monitor.pid()) - cpu_before;
    let secs = window.elapsed().as_secs_f64();
    let asked = Instant::now();
    let status = status(&monitor).expect("status answers with the idle clients connected");
    eprintln!("idle clients: status answered in {:?}", asked.elapsed());
    let beat = status["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["name"] == "beat")
        .unwrap()
        .clone();
    assert_eq!(beat["state"], "up", "{beat:#}");
    let (line, _) = http_get(&monitor.http, "/api/jobs");
    assert!(line.contains("200"), "{line}");
    beating.store(false, Ordering::SeqCst);
    beats.join().unwrap();
    assert!(
        notes_of(&out, "down", "beat").is_empty(),
        "a false down: {:#?}",
        notes(&out)
    );
    // 100 ticks a second is a whole core; a busy accept loop took that.
    let ticks_per_sec = cpu as f64 / secs;
    eprintln!("idle clients: monitor used {ticks_per_sec:.1} CPU ticks/s");
    assert!(
        ticks_per_sec < 50.0,
        "the monitor spins: {ticks_per_sec:.1} ticks/s"
    );
    stop_tx.send(()).unwrap();
    let (unix, tcp) = holder.join().unwrap();
    eprintln!("idle clients: {unix} control and {tcp} HTTP connections made");
    assert!(
        unix >= 250 && tcp >= 250,
        "{unix} {tcp}: the clients were not all there"
    );
    assert!(
        monitor.wait_exit(Duration::from_millis(10)).is_none(),
        "{}",
        monitor.log()
    );
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name, which is in parentheses.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// Defect 8: a silence far past the year 9999 is refused with a clear
/// error (by the command and by the socket) and the watcher goes on
/// alarming; and a panic in the checker ends the process with status 70
/// instead of leaving it alive and blind.
#[test]
fn an_odd_request_is_refused_and_a_panic_ends_the_process() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("notes.jsonl");
    let body = format!(
        "[[job]]\nname = \"j\"\nevery = \"3s\"\n{}",
        note_channel(&out)
    );
    let monitor = Monitor::start("watcher-a", &body);
    let cli = Command::new(qcic_testkit::monitor_bin())
        .args([
            "silence",
            "add",
            "--job",
            "j",
            "--for",
            "9000y",
            "--control",
        ])
        .arg(&monitor.control)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&cli.stderr);
    assert!(!cli.status.success());
    assert!(stderr.contains("100 years"), "{stderr}");
    let raw = qcic_monitor::control::request(
        &monitor.control,
        &qcic_monitor::control::Request::SilenceAdd {
            job: "j".into(),
            for_ms: Some(9000 * 365 * 86_400_000),
            reason: None,
        },
    )
    .unwrap();
    assert!(raw.contains("at most 100 years"), "{raw}");
    // The longest allowed one works and is shown.
    let ok = qcic_monitor::control::request(
        &monitor.control,
        &qcic_monitor::control::Request::SilenceAdd {
            job: "j".into(),
            for_ms: Some(99 * 365 * 86_400_000),
            reason: Some("long".into()),
        },
    )
    .unwrap();
    assert!(ok.contains("\"ok\":true"), "{ok}");
    let resumed = Command::new(qcic_testkit::monitor_bin())
        .args(["resume", "--job", "j", "--control"])
        .arg(&monitor.control)
        .output()
        .unwrap();
    assert!(resumed.status.success());
    // Still watching: the job, never heard from, goes down.
    wait_notes(&out, "down", "j", 1);
    assert!(status(&monitor).unwrap()["jobs"][0]["name"] == "j");

    // A panic in the checker (injected): the process ends, status 70.
    let mut faulty =
        Monitor::start_with("watcher-b", "", &body, &[("QCIC_TEST_PANIC_ON_JOB", "j")]);
    let client = Client::new([faulty.listen.clone()]).unwrap();
    client.heartbeat("j").unwrap();
    let exit = faulty.wait_exit(WAIT);
    assert_eq!(
        exit.and_then(|s| s.code()),
        Some(qcic_monitor::EXIT_PANIC),
        "{}",
        faulty.log()
    );
    assert!(
        faulty.log().contains("QCIC_TEST_PANIC_ON_JOB"),
        "{}",
        faulty.log()
    );
}

/// Defect 9: `qcic run` of a command that leaves a process running reports
/// and exits when the command exits, with and without `--timeout`; the
/// watcher sees a short run, not an overrun.
#[test]
fn qcic_run_does_not_wait_for_what_the_command_left_running() {
    let qcic = qcic_bin();
    let (_dir, out, monitor) =
        watching("[[job]]\nname = \"r\"\nevery = \"1h\"\nmax_runtime = \"5s\"\n");
    for timeout in [None, Some("2s")] {
        let started = Instant::now();
        let mut cmd = Command::new(&qcic);
        cmd.args(["run", "--job", "r"]);
        if let Some(t) = timeout {
            cmd.args(["--timeout", t]);
        }
        let run = cmd
            .args(["--", "sh", "-c", "sleep 12 & echo started; exit 0"])
            .env("QCIC_ENDPOINTS", &monitor.listen)
            .output()
            .unwrap();
        let took = started.elapsed();
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(run.status.success(), "{stderr}");
        assert_eq!(String::from_utf8_lossy(&run.stdout), "started\n");
        assert!(stderr.contains("still holds its output open"), "{stderr}");
        eprintln!("qcic run (timeout {timeout:?}) returned after {took:?}");
        assert!(
            took < Duration::from_secs(8),
            "qcic run waited for the background sleep: {took:?}"
        );
    }
    // Past max_runtime after the last run began: it ended, no overrun.
    sleep(Duration::from_secs(6));
    assert!(
        notes_of(&out, "overrun", "r").is_empty(),
        "{:#?}",
        notes(&out)
    );
    assert!(status(&monitor).unwrap()["jobs"][0]["runs_in_progress"] == 0);
}

/// `qcic-monitor status` against a monitor that does not answer (stopped
/// here with SIGSTOP) says which socket and what happened, not
/// "Resource temporarily unavailable (os error 11)".
#[test]
fn status_against_a_stopped_monitor_names_its_socket() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let monitor = Monitor::start("watcher-a", "[[job]]\nname = \"j\"\nevery = \"1h\"\n");
    let pid = Pid::from_raw(i32::try_from(monitor.pid()).unwrap());
    kill(pid, Signal::SIGSTOP).unwrap();
    let out = Command::new(qcic_testkit::monitor_bin())
        .arg("status")
        .arg("--control")
        .arg(&monitor.control)
        .output()
        .unwrap();
    kill(pid, Signal::SIGCONT).unwrap();
    let socket = monitor.control.display().to_string();
    monitor.stop();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&socket) && stderr.contains("did not answer"),
        "{stderr}"
    );
}
