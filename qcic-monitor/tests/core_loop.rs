//! The core loop end to end: the real qcic-monitor binary, the real SDK over
//! tcp loopback, a real SMTP server (aiosmtpd) and a real SUB socket.

#![expect(clippy::unwrap_used, reason = "tests: a panic is the failure report")]

use std::time::{Duration, Instant};

use qcic_sdk::Client;
use qcic_testkit::{Alerts, Monitor, Smtp, counter, header};

fn client(endpoints: &[&str]) -> Client {
    Client::new(endpoints.iter().map(|e| e.to_string())).unwrap()
}

fn channels(smtp: &Smtp) -> String {
    format!(
        r#"
[[notify]]
kind = "email"
group_wait = "off"
smtp = "{}"
from = "qcic@example.com"
to = ["ops@example.com"]

[[notify]]
kind = "zmq"
publish = "{{publish}}"
"#,
        smtp.url()
    )
}

#[test]
fn a_silent_job_is_reported_down_by_email_and_pub_then_recovered_with_the_same_incident() {
    let smtp = Smtp::start();
    let monitor = Monitor::start(
        "watcher-a",
        &format!(
            "[[job]]\nname = \"nightly-etl\"\nevery = \"1s\"\ngrace = \"1s\"\n{}",
            channels(&smtp)
        ),
    );
    let mut alerts = Alerts::subscribe(&monitor.publish);
    let sender = client(&[&monitor.listen]);
    sender.heartbeat("nightly-etl").unwrap();
    assert!(sender.flush(Duration::from_secs(5)));
    let sent_at = Instant::now();

    let down = alerts.expect("alert.down.nightly-etl");
    let quiet = sent_at.elapsed();
    assert!(
        quiet >= Duration::from_secs(2),
        "down only after every + grace, got {quiet:?}"
    );
    assert_eq!(down["event"], "down");
    assert_eq!(down["job"], "nightly-etl");
    assert_eq!(down["watcher"], "watcher-a");
    let incident = down["incident"].as_str().unwrap().to_owned();
    assert_eq!(incident.len(), 16);
    assert!(down["last_seen_ms"].as_u64().unwrap() <= down["detected_ms"].as_u64().unwrap());

    let mails = smtp.wait_for(1);
    let subject = header(&mails[0], "Subject").unwrap();
    assert!(subject.contains("DOWN nightly-etl"), "{subject}");
    assert!(subject.contains(&incident), "{subject}");
    assert!(subject.contains("watcher-a"), "{subject}");
    assert_eq!(
        header(&mails[0], "X-Qcic-Incident"),
        Some(incident.as_str())
    );
    assert_eq!(header(&mails[0], "X-Qcic-Watcher"), Some("watcher-a"));

    sender.heartbeat("nightly-etl").unwrap();
    let up = alerts.expect("alert.recovered.nightly-etl");
    assert_eq!(up["incident"], incident.as_str());
    assert_eq!(up["resolves"], "down");
    assert!(up["duration_ms"].as_u64().unwrap() >= 2000);

    let mails = smtp.wait_for(2);
    let subject = header(&mails[1], "Subject").unwrap();
    assert!(
        subject.contains("RECOVERED nightly-etl (was down)"),
        "{subject}"
    );
    assert_eq!(
        header(&mails[1], "X-Qcic-Incident"),
        Some(incident.as_str())
    );
    let thread = format!("<{incident}@qcic>");
    assert_eq!(header(&mails[0], "References"), Some(thread.as_str()));
    assert_eq!(header(&mails[1], "References"), Some(thread.as_str()));
    assert!(mails[1].contains("lasted:"), "{}", mails[1]);
    monitor.stop();
}

#[test]
fn a_failure_is_notified_at_once() {
    let smtp = Smtp::start();
    // The only deadline is an hour away: an alert within the test's wait can
    // only come from the fail path.
    let monitor = Monitor::start(
        "watcher-a",
        &format!(
            "[[job]]\nname = \"etl\"\nevery = \"1h\"\n{}",
            channels(&smtp)
        ),
    );
    let mut alerts = Alerts::subscribe(&monitor.publish);
    let sender = client(&[&monitor.listen]);
    let run = sender.start("etl").unwrap();
    run.fail_with_code(Some(3), "database connection refused")
        .unwrap();
    let sent_at = Instant::now();
    let failed = alerts.expect("alert.failed.etl");
    eprintln!("fail -> alert on the PUB stream: {:?}", sent_at.elapsed());
    assert_eq!(failed["exit_code"], 3);
    assert_eq!(failed["text"], "database connection refused");
    assert!(failed["run_id"].as_u64().is_some());
    let mails = smtp.wait_for(1);
    assert!(header(&mails[0], "Subject").unwrap().contains("FAILED etl"));
    assert!(mails[0].contains("database connection refused"));

    // A later success closes the incident.
    sender.start("etl").unwrap().success().unwrap();
    let up = alerts.expect("alert.recovered.etl");
    assert_eq!(up["incident"], failed["incident"]);
    assert_eq!(up["resolves"], "failed");
    monitor.stop();
}

#[test]
fn a_run_past_max_runtime_is_an_overrun_until_it_ends() {
    let monitor = Monitor::start(
        "watcher-a",
        "[[job]]\nname = \"etl\"\nevery = \"1h\"\nmax_runtime = \"1s\"\n\n[[notify]]\nkind = \"zmq\"\npublish = \"{publish}\"\n",
    );
    let mut alerts = Alerts::subscribe(&monitor.publish);
    let sender = client(&[&monitor.listen]);
    let run = sender.start("etl").unwrap();
    run.progress("still going").unwrap();
    let over = alerts.expect("alert.overrun.etl");
    assert_eq!(over["run_id"].as_u64(), Some(run.id()));
    run.success().unwrap();
    let up = alerts.expect("alert.recovered.etl");
    assert_eq!(up["incident"], over["incident"]);
    assert_eq!(up["resolves"], "overrun");
    monitor.stop();
}

#[test]
fn unknown_jobs_and_garbage_are_counted_and_valid_traffic_goes_on() {
    let monitor = Monitor::start(
        "watcher-a",
        "[[job]]\nname = \"etl\"\nevery = \"1h\"\n\n[[notify]]\nkind = \"zmq\"\npublish = \"{publish}\"\n",
    );
    let mut alerts = Alerts::subscribe(&monitor.publish);
    let ctx = zmq::Context::new();
    let raw = ctx.socket(zmq::PUSH).unwrap();
    raw.set_linger(1000).unwrap();
    raw.connect(&monitor.listen).unwrap();
    raw.send(&b"not messagepack"[..], 0).unwrap();
    raw.send(&[0x92u8, 0x02, 0xa1, b'x'][..], 0).unwrap(); // protocol version 2
    raw.send_multipart([&b"a"[..], &b"b"[..]], 0).unwrap();

    let sender = client(&[&monitor.listen]);
    for _ in 0..3 {
        sender.heartbeat("ghost-job").unwrap();
    }
    sender.fail("etl", None, "after the garbage").unwrap();
    let failed = alerts.expect("alert.failed.etl");
    assert_eq!(failed["text"], "after the garbage");

    let log = monitor.stop();
    assert_eq!(counter(&log, "unknown_job_messages"), Some(3), "{log}");
    assert_eq!(counter(&log, "unknown_job_names"), Some(1), "{log}");
    assert_eq!(counter(&log, "dropped_malformed"), Some(1), "{log}");
    assert_eq!(
        counter(&log, "dropped_unsupported_version"),
        Some(1),
        "{log}"
    );
    assert_eq!(counter(&log, "dropped_multipart"), Some(1), "{log}");
    assert_eq!(counter(&log, "accepted"), Some(4), "{log}");
    assert!(
        log.contains("ghost-job"),
        "the unknown job is named in the log"
    );
    drop(raw);
}

#[test]
fn two_senders_reach_both_watchers_and_watchers_agree_on_incident_ids() {
    let body = "[[job]]\nname = \"job-a\"\nevery = \"1h\"\n[[job]]\nname = \"job-b\"\nevery = \"1h\"\n\n[[notify]]\nkind = \"zmq\"\npublish = \"{publish}\"\n";
    let a = Monitor::start("watcher-a", body);
    let b = Monitor::start("watcher-b", body);
    let mut alerts_a = Alerts::subscribe(&a.publish);
    let mut alerts_b = Alerts::subscribe(&b.publish);
    let sender_1 = client(&[&a.listen, &b.listen]);
    let sender_2 = client(&[&a.listen, &b.listen]);
    sender_1.fail("job-a", Some(1), "from sender 1").unwrap();
    sender_2.fail("job-b", Some(2), "from sender 2").unwrap();
    for job in ["job-a", "job-b"] {
        let topic = format!("alert.failed.{job}");
        let at_a = alerts_a.expect(&topic);
        let at_b = alerts_b.expect(&topic);
        assert_eq!(at_a["watcher"], "watcher-a");
        assert_eq!(at_b["watcher"], "watcher-b");
        assert_eq!(
            at_a["incident"], at_b["incident"],
            "same trouble, same incident id"
        );
        assert_eq!(at_a["text"], at_b["text"]);
    }
    let log_a = a.stop();
    let log_b = b.stop();
    assert_eq!(counter(&log_a, "accepted"), Some(2), "{log_a}");
    assert_eq!(counter(&log_b, "accepted"), Some(2), "{log_b}");
}

#[test]
fn email_survives_an_smtp_server_that_comes_up_late() {
    let held = qcic_testkit::reserve_port();
    let port = held.port();
    let monitor = Monitor::start(
        "watcher-a",
        &format!(
            "[[job]]\nname = \"etl\"\nevery = \"1h\"\n\n[[notify]]\nkind = \"email\"\ngroup_wait = \"off\"\nsmtp = \"smtp://127.0.0.1:{port}\"\nfrom = \"qcic@example.com\"\nto = [\"ops@example.com\"]\n"
        ),
    );
    let sender = client(&[&monitor.listen]);
    sender
        .fail("etl", None, "while the mail server was down")
        .unwrap();
    assert!(qcic_testkit::wait_until(qcic_testkit::WAIT, || monitor
        .log()
        .contains("will retry")));
    let smtp = Smtp::start_on(held);
    let mails = smtp.wait_for(1);
    assert!(mails[0].contains("while the mail server was down"));
    let log = monitor.stop();
    assert!(counter(&log, "delivery_retries").unwrap() >= 1, "{log}");
    assert_eq!(counter(&log, "delivered"), Some(1), "{log}");
}

#[test]
fn a_bad_config_is_refused_with_file_key_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[[job]]\nname = \"etl\"\nevery = \"soon\"\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_qcic-monitor"))
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(err.contains("job[0].every"), "{err}");
    assert!(err.contains("invalid duration \"soon\""), "{err}");
}

#[test]
fn the_embedded_default_config_is_valid() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_qcic-monitor"))
        .arg("--check-config")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok"));
}

/// An email shaped by templates: the subject from `subject_template`
/// (after the prefix), the body from `body_template_file`, with fields and
/// the `duration` and `time` filters; the sample rendering is what
/// `check` shows.
#[test]
fn an_email_is_written_by_its_templates() {
    let smtp = Smtp::start();
    let dir = tempfile::tempdir().unwrap();
    let body_file = dir.path().join("body.txt");
    std::fs::write(
        &body_file,
        "Job {{ job }}: {{ event }} on {{ host }}\n\
         Reason: {{ text }}\n\
         Seen at {{ detected_ms | time(\"Europe/London\", \"%Y-%m-%d %Z\") }}\n\
         {% if exit_code is not none %}Exit code {{ exit_code }}{% endif %}\n",
    )
    .unwrap();
    let body = format!(
        "[[job]]\nname = \"nightly-etl\"\nevery = \"1h\"\n\n[[notify]]\nkind = \"email\"\ngroup_wait = \"0s\"\n\
         smtp = \"{}\"\nfrom = \"qcic@example.com\"\nto = [\"ops@example.com\"]\n\
         subject_template = \"{{{{ severity | upper }}}}: {{{{ job }}}} {{{{ event }}}}\"\n\
         body_template_file = \"{}\"\n",
        smtp.url(),
        body_file.display()
    );
    let monitor = Monitor::start("watcher-a", &body);
    let sender = client(&[&monitor.listen]);
    sender.fail("nightly-etl", Some(3), "disk full").unwrap();
    let mails = smtp.wait_for(1);
    let mail = mails[0].replace("\r\n", "\n");
    assert_eq!(
        header(&mail, "Subject"),
        Some("[qcic] CRITICAL: nightly-etl failed"),
        "{mail}"
    );
    assert!(mail.contains("Job nightly-etl: failed on "), "{mail}");
    assert!(mail.contains("Reason: disk full"), "{mail}");
    assert!(mail.contains("Exit code 3"), "{mail}");
    assert!(mail.contains(" GMT\n") || mail.contains(" BST\n"), "{mail}");
    let log = monitor.stop();
    assert!(!log.contains("the template failed"), "{log}");
}
