//! The `qcic` command, run as a real process against a real PULL receiver.

#![expect(clippy::unwrap_used, reason = "tests: a panic is the failure report")]

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use qcic_sdk::Kind;
use qcic_testkit::{Receiver, dead_endpoint};

fn qcic(endpoint: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_qcic"))
        .args(args)
        .env("QCIC_ENDPOINTS", endpoint)
        .output()
        .unwrap()
}

#[test]
fn run_reports_a_failing_command_and_passes_its_output_and_exit_code_through() {
    let w = Receiver::bind();
    let out = qcic(
        &w.endpoint,
        &[
            "run",
            "--job",
            "shell-job",
            "--",
            "sh",
            "-c",
            "echo to-stdout; echo to-stderr >&2; exit 3",
        ],
    );
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "to-stdout\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("to-stderr"));
    let start = w.recv();
    let fail = w.recv();
    assert_eq!((start.kind, fail.kind), (Kind::Start, Kind::Fail));
    assert_eq!(start.run_id, fail.run_id);
    assert_eq!(fail.exit_code, Some(3));
    let text = fail.text.unwrap();
    assert!(text.starts_with("exit 3 after"), "{text}");
    assert!(
        text.contains("to-stdout") && text.contains("to-stderr"),
        "{text}"
    );
}

#[test]
fn run_reports_success_with_duration() {
    let w = Receiver::bind();
    let out = qcic(&w.endpoint, &["run", "--job", "shell-job", "--", "true"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(w.recv().kind, Kind::Start);
    let done = w.recv();
    assert_eq!(done.kind, Kind::Success);
    assert!(done.text.unwrap().starts_with("exit 0 after"));
}

#[test]
fn run_kills_a_command_past_its_timeout_and_reports_it_failed() {
    let w = Receiver::bind();
    let started = Instant::now();
    let out = qcic(
        &w.endpoint,
        &[
            "run",
            "--job",
            "slow",
            "--timeout",
            "500ms",
            "--",
            "sleep",
            "30",
        ],
    );
    assert_eq!(out.status.code(), Some(124));
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(w.recv().kind, Kind::Start);
    let fail = w.recv();
    assert_eq!((fail.kind, fail.exit_code), (Kind::Fail, Some(124)));
    assert!(fail.text.unwrap().contains("timed out after 500ms"));
}

#[test]
fn run_forwards_sigterm_to_the_command() {
    let w = Receiver::bind();
    let mut child = Command::new(env!("CARGO_BIN_EXE_qcic"))
        .args(["run", "--job", "stoppable", "--", "sleep", "30"])
        .env("QCIC_ENDPOINTS", &w.endpoint)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert_eq!(w.recv().kind, Kind::Start); // the command is running now
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert_eq!(exit.code(), Some(128 + 15));
    let fail = w.recv();
    assert_eq!((fail.kind, fail.exit_code), (Kind::Fail, Some(143)));
    assert!(fail.text.unwrap().contains("killed by signal 15"));
}

#[test]
fn send_start_prints_the_run_id_for_the_later_end() {
    let w = Receiver::bind();
    let out = qcic(&w.endpoint, &["send", "--job", "backup", "start"]);
    assert!(out.status.success());
    let run_id = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let out = qcic(
        &w.endpoint,
        &[
            "send",
            "--job",
            "backup",
            "--run-id",
            &run_id,
            "fail",
            "--text",
            "tape full",
            "--exit-code",
            "-2",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = qcic(&w.endpoint, &["send", "--job", "backup", "heartbeat"]);
    assert!(out.status.success());
    let start = w.recv();
    let fail = w.recv();
    // One spelling: 16 hex digits.
    assert_eq!(format!("{:016x}", start.run_id.unwrap()), run_id);
    assert_eq!(fail.run_id, start.run_id);
    assert_eq!(
        (fail.exit_code, fail.text.as_deref()),
        (Some(-2), Some("tape full"))
    );
    assert_eq!(w.recv().kind, Kind::Heartbeat);
    let bad = qcic(&w.endpoint, &["send", "--job", "has space", "heartbeat"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn with_every_watcher_down_the_job_is_delayed_only_by_the_bound() {
    let dead = dead_endpoint();
    let started = Instant::now();
    let out = qcic(
        &dead.endpoint,
        &[
            "run",
            "--job",
            "j",
            "--close-timeout",
            "500ms",
            "--",
            "true",
        ],
    );
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("could not confirm delivery"));
    eprintln!("qcic run with watchers down took {took:?}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    // No endpoints at all: the command still runs.
    let out = Command::new(env!("CARGO_BIN_EXE_qcic"))
        .args(["run", "--job", "j", "--", "sh", "-c", "exit 5"])
        .env_remove("QCIC_ENDPOINTS")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5));
}

/// A failure reason that is not UTF-8 (a file name in Latin-1) is sent, its
/// bad bytes replaced; the job name stays strict.
#[test]
fn send_replaces_a_reason_that_is_not_utf8_and_still_sends_the_failure() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let w = Receiver::bind();
    let out = Command::new(env!("CARGO_BIN_EXE_qcic"))
        .args(["send", "--job", "latin", "fail", "--text"])
        .arg(OsStr::from_bytes(b"caf\xe9.csv missing"))
        .env("QCIC_ENDPOINTS", &w.endpoint)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fail = w.recv();
    assert_eq!(
        (fail.kind, fail.text.as_deref()),
        (Kind::Fail, Some("caf\u{fffd}.csv missing"))
    );
}

/// A command that exists but cannot be run (a directory) exits 126, one that
/// does not exist 127, as a shell does; both report the failed run.
#[test]
fn run_of_a_directory_exits_126_and_of_nothing_127() {
    for (program, code) in [("/tmp", 126), ("/no/such/program", 127)] {
        let w = Receiver::bind();
        let out = qcic(&w.endpoint, &["run", "--job", "exec-job", "--", program]);
        assert_eq!(out.status.code(), Some(code), "{program}");
        let (start, fail) = (w.recv(), w.recv());
        assert_eq!((start.kind, fail.kind), (Kind::Start, Kind::Fail));
        assert_eq!(fail.exit_code, Some(code), "{program}");
    }
}
