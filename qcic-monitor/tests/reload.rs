//! SIGHUP reloads the configuration without losing state, refuses a broken
//! file whole, and the clock skew of each sender host is shown.

#![expect(clippy::unwrap_used, reason = "tests: a panic is the failure report")]

use std::time::Duration;

use qcic_sdk::{Client, Kind, Message};
use qcic_testkit::{Alerts, Monitor, WAIT, counter, http_get, now_ms, wait_until};

const PUB: &str = "\n[[notify]]\nkind = \"zmq\"\npublish = \"{publish}\"\n";

fn status(monitor: &Monitor) -> serde_json::Value {
    let req = qcic_monitor::control::Request::Status;
    serde_json::from_str(&qcic_monitor::control::request(&monitor.control, &req).unwrap()).unwrap()
}

fn job_names(status: &serde_json::Value) -> Vec<String> {
    status["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["name"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn sighup_takes_new_jobs_and_keeps_open_incidents() {
    let monitor = Monitor::start(
        "watcher-a",
        &format!(
            "[[job]]\nname = \"etl\"\nevery = \"1h\"\n\n[[job]]\nname = \"gone\"\nevery = \"1h\"\n{PUB}"
        ),
    );
    let mut alerts = Alerts::subscribe(&monitor.publish);
    let sender = Client::new([monitor.listen.clone()]).unwrap();
    sender.fail("etl", Some(2), "before the reload").unwrap();
    let failed = alerts.expect("alert.failed.etl");
    sender.fail("gone", Some(1), "about to be removed").unwrap();
    let gone_failed = alerts.expect("alert.failed.gone");

    // etl changes (a grace), gone goes, fresh comes with a short period.
    monitor.rewrite(&format!(
        "[[job]]\nname = \"fresh\"\nevery = \"2s\"\ngrace = \"1s\"\n\n\
         [[job]]\nname = \"etl\"\nevery = \"1h\"\ngrace = \"5m\"\n{PUB}"
    ));
    monitor.hup();
    assert!(
        wait_until(WAIT, || monitor.log().contains("configuration reloaded")),
        "{}",
        monitor.log()
    );
    let log = monitor.log();
    assert!(
        log.contains("added=1 removed=1 changed=1 unchanged=0"),
        "{log}"
    );
    assert_eq!(job_names(&status(&monitor)), ["fresh", "etl"]);
    // Every alarm gets its follow-up, even when its job goes away.
    let gone_closed = alerts.expect("alert.recovered.gone");
    assert_eq!(gone_closed["incident"], gone_failed["incident"]);
    assert_eq!(gone_closed["resolves"], "failed");
    assert_eq!(
        gone_closed["text"],
        "the job was removed from the configuration"
    );

    // The new job is watched: one full period, then down.
    let down = alerts.expect("alert.down.fresh");
    assert_eq!(down["watcher"], "watcher-a");
    // The incident opened before the reload closes with its own id.
    sender.heartbeat("etl").unwrap();
    let up = alerts.expect("alert.recovered.etl");
    assert_eq!(up["incident"], failed["incident"]);
    assert_eq!(up["resolves"], "failed");
    // The removed job's messages are now unknown.
    sender.heartbeat("gone").unwrap();
    sender.heartbeat("fresh").unwrap();
    alerts.expect("alert.recovered.fresh");

    let log = monitor.stop();
    assert_eq!(counter(&log, "config_reloads"), Some(1), "{log}");
    assert_eq!(counter(&log, "unknown_job_messages"), Some(1), "{log}");
}

#[test]
fn a_broken_file_on_sighup_leaves_the_running_configuration_whole() {
    let monitor = Monitor::start(
        "watcher-a",
        &format!("[[job]]\nname = \"etl\"\nevery = \"1h\"\n{PUB}"),
    );
    let mut alerts = Alerts::subscribe(&monitor.publish);
    monitor.rewrite(&format!(
        "[[job]]\nname = \"etl\"\nevery = \"1h\"\ngrase = \"5m\"\n{PUB}"
    ));
    monitor.hup();
    assert!(wait_until(WAIT, || monitor
        .log()
        .contains("configuration not reloaded")));
    let log = monitor.log();
    let line = log
        .lines()
        .find(|l| l.contains("configuration not reloaded"))
        .unwrap();
    assert!(line.contains("monitor.toml"), "names the file: {line}");
    assert!(line.contains("grase"), "names the key: {line}");

    // A job that names a channel the monitor does not run is refused too:
    // channels start only with the process.
    monitor.rewrite(&format!(
        "[[job]]\nname = \"etl\"\nevery = \"1h\"\nnotify = [\"pager\"]\n{PUB}\n\
         [[notify]]\nname = \"pager\"\nkind = \"command\"\ncommand = [\"true\"]\n"
    ));
    monitor.hup();
    assert!(wait_until(WAIT, || monitor
        .log()
        .contains("is not running (channels change only on a restart)")));

    // Still running the first configuration: etl is watched and alerts.
    let sender = Client::new([monitor.listen.clone()]).unwrap();
    sender.fail("etl", None, "after two bad reloads").unwrap();
    assert_eq!(
        alerts.expect("alert.failed.etl")["text"],
        "after two bad reloads"
    );
    let log = monitor.stop();
    assert_eq!(counter(&log, "config_reload_failures"), Some(2), "{log}");
    assert_eq!(counter(&log, "config_reloads"), Some(0), "{log}");
}

#[test]
fn changes_that_need_a_restart_are_named_and_jobs_still_reload() {
    let monitor = Monitor::start(
        "watcher-a",
        &format!("[[job]]\nname = \"etl\"\nevery = \"1h\"\n{PUB}"),
    );
    // A second channel (needs a restart) and a new job routed to the
    // running one.
    monitor.rewrite(&format!(
        "[[job]]\nname = \"etl\"\nevery = \"1h\"\n\n[[job]]\nname = \"new\"\nevery = \"1h\"\n{PUB}\n\
         [[notify]]\nkind = \"command\"\ncommand = [\"true\"]\n"
    ));
    monitor.hup();
    assert!(wait_until(WAIT, || monitor
        .log()
        .contains("configuration reloaded")));
    assert!(wait_until(WAIT, || monitor
        .log()
        .contains("take effect only after a restart")));
    let log = monitor.log();
    let line = log
        .lines()
        .find(|l| l.contains("take effect only after a restart"))
        .unwrap();
    assert!(line.contains("notify"), "{line}");
    assert_eq!(job_names(&status(&monitor)), ["etl", "new"]);
    monitor.stop();
}

/// Revoking a sender key needs a restart (the CURVE socket is set up
/// once); a SIGHUP says so in a line of its own, so nobody believes the
/// key is locked out when it is not.
#[test]
fn a_revoked_sender_key_is_said_to_wait_for_a_restart() {
    let key = |p: &zmq::CurveKeyPair| {
        (
            zmq::z85_encode(&p.public_key).unwrap(),
            zmq::z85_encode(&p.secret_key).unwrap(),
        )
    };
    let (_, watcher_secret) = key(&zmq::CurveKeyPair::new().unwrap());
    let (sender_public, _) = key(&zmq::CurveKeyPair::new().unwrap());
    let body = |allowed: &str| {
        format!(
            "[curve]\nsecret_key_env = \"QCIC_TEST_SECRET\"\nallowed_senders = [{allowed}]\n\n\
             [[job]]\nname = \"etl\"\nevery = \"1h\"\n{PUB}"
        )
    };
    let monitor = Monitor::start_with(
        "watcher-a",
        "",
        &body(&format!("\"{sender_public}\"")),
        &[("QCIC_TEST_SECRET", &watcher_secret)],
    );
    monitor.rewrite(&body(""));
    monitor.hup();
    assert!(wait_until(WAIT, || monitor
        .log()
        .contains("a revoked key can still connect and send")));
    monitor.stop();
}

/// A message stamped by a host whose clock is ten minutes behind.
fn stamped(job: &str, host: &str, behind: Duration) -> Vec<u8> {
    let now = now_ms();
    Message {
        ts_ms: now - u64::try_from(behind.as_millis()).unwrap(),
        host: host.into(),
        pid: 1,
        ..Message::new(Kind::Heartbeat, job)
    }
    .encode()
}

#[test]
fn each_hosts_clock_skew_is_shown() {
    let monitor = Monitor::start(
        "watcher-a",
        "[[job]]\nname = \"etl\"\nevery = \"1h\"\n\n[http]\nlisten = \"{http}\"\n",
    );
    let ctx = zmq::Context::new();
    let push = ctx.socket(zmq::PUSH).unwrap();
    push.set_linger(1000).unwrap();
    push.connect(&monitor.listen).unwrap();
    push.send(stamped("etl", "slow-box", Duration::from_secs(600)), 0)
        .unwrap();
    push.send(stamped("etl", "good-box", Duration::ZERO), 0)
        .unwrap();
    assert!(wait_until(WAIT, || {
        status(&monitor)["hosts"].as_array().map_or(0, Vec::len) == 2
    }));
    // The largest skew first.
    let hosts = status(&monitor)["hosts"].clone();
    let slow = &hosts[0];
    assert_eq!(slow["host"], "slow-box");
    let skew = slow["skew_ms"].as_i64().unwrap();
    assert!((600_000..610_000).contains(&skew), "{hosts}");
    assert_eq!(slow["skewed"], true, "beyond the default max_clock_skew");
    assert_eq!(hosts[1]["host"], "good-box");
    assert!(hosts[1]["skew_ms"].as_i64().unwrap().abs() < 10_000);
    assert_eq!(hosts[1]["skewed"], false);

    // The same on the HTTP API, in the metrics, on the page and in `status`.
    let (_, api) = http_get(&monitor.http, "/api/hosts");
    let api: serde_json::Value = serde_json::from_str(&api).unwrap();
    assert_eq!(api[0]["host"], "slow-box");
    let (_, metrics) = http_get(&monitor.http, "/metrics");
    assert!(
        metrics.contains("qcic_host_clock_skew_seconds{host=\"slow-box\"} 60"),
        "{metrics}"
    );
    let (_, page) = http_get(&monitor.http, "/");
    assert!(page.contains("slow-box"), "{page}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_qcic-monitor"))
        .args(["status", "--control"])
        .arg(&monitor.control)
        .output()
        .unwrap();
    let table = String::from_utf8(out.stdout).unwrap();
    let row = table.lines().find(|l| l.starts_with("slow-box")).unwrap();
    assert!(row.contains("+60") && row.contains(" !"), "{table}");
    let log = monitor.stop();
    assert!(log.contains("sender clock is off"), "{log}");
}
