//! Fewer, truer alarms, end to end against the real monitor: a job's
//! dependencies, a recurring maintenance window, acknowledgement (CLI and
//! HTTP), escalation, and the HTTP API's tokens on every write route.
//! Notifications are read from the alert stream (a real SUB socket) and
//! from command channels' files; senders are the real qcic-sdk.

#![expect(clippy::unwrap_used, reason = "tests: a panic is the failure report")]

use std::process::Command;
use std::time::Duration;

use qcic_sdk::Client;
use qcic_testkit::{Alerts, Monitor, http_request, note_channel, notes, wait_notes, wait_until};
use serde_json::Value;

const ZMQ: &str = "\n[[notify]]\nkind = \"zmq\"\npublish = \"{publish}\"\n";

#[test]
fn a_parent_down_makes_one_alarm_and_its_children_are_judged_again_when_it_is_back() {
    // db is due every 1 s, its dependents later: db is down first.
    let body = format!(
        "[[job]]\nname = \"db\"\nevery = \"1s\"\n\
         [[job]]\nname = \"etl\"\nevery = \"2s\"\ndepends_on = [\"db\"]\n\
         [[job]]\nname = \"report\"\nevery = \"2s\"\ndepends_on = [\"db\"]\n{ZMQ}"
    );
    let monitor = Monitor::start("w", &body);
    let mut alerts = Alerts::subscribe(&monitor.publish);
    let sender = Client::new([monitor.listen.clone()]).unwrap();
    for job in ["db", "etl", "report"] {
        sender.heartbeat(job).unwrap();
    }
    alerts.expect("alert.down.db");
    // The children are down too, but held: their cause is notified.
    assert!(
        wait_until(Duration::from_secs(10), || {
            let status = monitor.ctl(&["status"]);
            status.contains("└ etl")
                && status.contains("└ report")
                && status.contains("blocked by db")
        }),
        "{}",
        monitor.ctl(&["status"])
    );
    assert!(alerts.none_within("alert.down.etl", Duration::from_secs(2)));
    assert!(alerts.none_within("alert.down.report", Duration::from_millis(100)));
    // report comes back on its own while held: nothing is owed for it.
    sender.heartbeat("report").unwrap();
    sender.heartbeat("db").unwrap();
    alerts.expect("alert.recovered.db");
    let etl = alerts.expect("alert.down.etl");
    assert_eq!(etl["blocked_by"], "db", "{etl}");
    assert!(etl["held_ms"].as_u64().unwrap() >= 1000, "{etl}");
    assert!(
        etl["text"].as_str().unwrap().contains("held back by db"),
        "{etl}"
    );
    // report recovered while held: neither its alarm nor a follow-up
    // ever went out.
    assert!(
        alerts.seen.iter().all(|(t, _)| !t.ends_with(".report")),
        "{:?}",
        alerts.seen
    );
    monitor.stop();
}

/// `S M H * * *` (UTC, with seconds) of `at_ms`.
fn cron_at(at_ms: u64) -> String {
    let secs = at_ms / 1000;
    format!(
        "{} {} {} * * *",
        secs % 60,
        (secs / 60) % 60,
        (secs / 3600) % 24
    )
}

#[test]
fn a_maintenance_window_holds_an_alarm_and_releases_it_at_its_end() {
    let opens = (qcic_testkit::now_ms() / 1000 + 5) * 1000;
    let body = format!(
        "[[job]]\nname = \"db-backup\"\nevery = \"5s\"\n\
         [[job]]\nname = \"web\"\nevery = \"5s\"\n\
         [[maintenance]]\nname = \"patching\"\ncron = \"{}\"\nduration = \"5s\"\njobs = [\"db-*\"]\n{ZMQ}",
        cron_at(opens)
    );
    let monitor = Monitor::start("w", &body);
    let mut alerts = Alerts::subscribe(&monitor.publish);
    let sender = Client::new([monitor.listen.clone()]).unwrap();
    sender.heartbeat("db-backup").unwrap();
    sender.heartbeat("web").unwrap();
    // Both are down about 5 s after the heartbeat, inside the window.
    alerts.expect("alert.down.web");
    let status = monitor.ctl(&["status"]);
    assert!(status.contains("maintenance patching"), "{status}");
    let down = alerts.expect("alert.down.db-backup");
    assert!(
        qcic_testkit::now_ms() >= opens + 5000,
        "released at the window's end"
    );
    assert_eq!(down["held_by"], "patching", "{down}");
    assert!(
        down["text"]
            .as_str()
            .unwrap()
            .contains("held back by maintenance patching")
    );
    assert!(
        down["detected_ms"].as_u64().unwrap() >= opens + 5000,
        "{down}"
    );
    monitor.stop();
}

#[test]
fn check_prints_the_next_openings_of_a_window() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.toml");
    std::fs::write(
        &path,
        "[monitor]\nid = \"w\"\nstate = \"off\"\n[[job]]\nname = \"db\"\nevery = \"1h\"\n\
         [[maintenance]]\nname = \"sunday-patching\"\ncron = \"0 3 * * 0\"\ntimezone = \"Europe/London\"\nduration = \"2h\"\njobs = [\"db-*\"]\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_qcic-monitor"))
        .arg("--config")
        .arg(&path)
        .arg("check")
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(
            "maintenance sunday-patching (cron \"0 3 * * 0\" Europe/London, for 2h): db-*"
        ),
        "{text}"
    );
    let openings: Vec<&str> = text
        .lines()
        .filter(|l| l.trim_start().starts_with("opens "))
        .collect();
    assert_eq!(openings.len(), 3, "{text}");
    assert!(openings.iter().all(|l| l.contains(" 03:00:00 ")), "{text}");
}

#[test]
fn an_acknowledgement_stops_reminders_and_escalation_and_the_follow_up_still_goes() {
    let dir = tempfile::tempdir().unwrap();
    let pager = dir.path().join("pager.jsonl");
    let body = format!(
        "[[job]]\nname = \"etl\"\nevery = \"1s\"\nrepeat = \"1s\"\n\
         escalate = [{{ after = \"3s\", notify = [\"pager\"] }}]\n\
         [[job]]\nname = \"acked\"\nevery = \"1s\"\nrepeat = \"1s\"\n\
         escalate = [{{ after = \"3s\", notify = [\"pager\"] }}]\n\
         {ZMQ}{}name = \"pager\"\ndefault = false\n",
        note_channel(&pager)
    );
    let monitor = Monitor::start("w", &body);
    let mut alerts = Alerts::subscribe(&monitor.publish);
    let sender = Client::new([monitor.listen.clone()]).unwrap();
    sender.heartbeat("etl").unwrap();
    sender.heartbeat("acked").unwrap();
    let down = alerts.expect("alert.down.etl");
    let acked = alerts.expect("alert.down.acked");
    let incident = acked["incident"].as_str().unwrap();
    let said = monitor.ctl(&["ack", incident, "--comment", "on it", "--by", "ana"]);
    assert!(said.contains("acknowledged"), "{said}");
    let acked_at = qcic_testkit::now_ms();
    let status = monitor.ctl(&["status"]);
    assert!(status.contains("(acked by ana)"), "{status}");
    // The second channel gets etl's escalation after the step, not before,
    // and never the acknowledged one's.
    let escalated = wait_notes(&pager, "down", "etl", 1);
    assert_eq!(escalated[0]["escalation"], 1);
    assert_eq!(escalated[0]["incident"], down["incident"]);
    let after =
        escalated[0]["detected_ms"].as_u64().unwrap() - down["detected_ms"].as_u64().unwrap();
    assert!(after >= 3000, "escalated {after} ms after the alarm");
    // Reminders of etl keep coming; of the acknowledged one, none.
    alerts.expect("alert.down.etl");
    std::thread::sleep(Duration::from_secs(2));
    assert!(alerts.none_within("alert.recovered.acked", Duration::from_millis(100)));
    let late_reminders: Vec<&Value> = alerts
        .seen
        .iter()
        .filter(|(t, n)| {
            t == "alert.down.acked" && n["detected_ms"].as_u64().unwrap() > acked_at + 200
        })
        .map(|(_, n)| n)
        .collect();
    assert!(late_reminders.is_empty(), "{late_reminders:?}");
    assert!(
        notes(&pager).iter().all(|n| n["job"] != "acked"),
        "{:?}",
        notes(&pager)
    );
    // The follow-up still goes out, and says who acknowledged it.
    sender.heartbeat("acked").unwrap();
    let up = alerts.expect("alert.recovered.acked");
    assert_eq!(up["acked"]["by"], "ana", "{up}");
    assert_eq!(up["acked"]["comment"], "on it", "{up}");
    // etl's follow-up reaches the pager too: it was paged.
    sender.heartbeat("etl").unwrap();
    wait_notes(&pager, "recovered", "etl", 1);
    // An unknown incident is refused, with a reason.
    let out = Command::new(env!("CARGO_BIN_EXE_qcic-monitor"))
        .args(["ack", "0000000000000000", "--control"])
        .arg(&monitor.control)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no open incident"));
    monitor.stop();
}

/// A token file in `dir`.
fn token(dir: &std::path::Path, name: &str, secret: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, format!("{secret}\n")).unwrap();
    path.display().to_string()
}

const WRITE: &str = "w-0123456789abcdef0123456789abcdef";
const READ: &str = "r-0123456789abcdef0123456789abcdef";

#[test]
fn every_write_route_refuses_without_a_write_token() {
    let dir = tempfile::tempdir().unwrap();
    let body = format!(
        "[http]\nlisten = \"{{http}}\"\n\
         tokens = [{{ name = \"ops\", token_file = \"{}\", scope = \"write\" }}, {{ name = \"grafana\", token_file = \"{}\", scope = \"read\" }}]\n\
         metrics_public = true\n\
         [[job]]\nname = \"etl\"\nevery = \"1s\"\nrepeat = \"1s\"\n{ZMQ}",
        token(dir.path(), "ops", WRITE),
        token(dir.path(), "ro", READ)
    );
    let monitor = Monitor::start("w", &body);
    let mut alerts = Alerts::subscribe(&monitor.publish);
    let sender = Client::new([monitor.listen.clone()]).unwrap();
    sender.heartbeat("etl").unwrap();
    let down = alerts.expect("alert.down.etl");
    let incident = down["incident"].as_str().unwrap();
    let ack_path = format!("/api/incidents/{incident}/ack");
    let routes: [(&str, &str, &str); 6] = [
        ("POST", ack_path.as_str(), "{\"comment\": \"on it\"}"),
        (
            "POST",
            "/api/jobs/etl/silence",
            "{\"for\": \"1h\", \"reason\": \"x\"}",
        ),
        ("DELETE", "/api/jobs/etl/silence", ""),
        ("POST", "/api/jobs/etl/pause", "{\"reason\": \"x\"}"),
        ("POST", "/api/jobs/etl/resume", ""),
        ("DELETE", "/api/jobs/etl", ""),
    ];
    let http = |method: &str, path: &str, token: Option<&str>, body: &str| {
        http_request(&monitor.http, method, path, token, body)
    };
    for (method, path, body) in routes {
        for (token, status) in [
            (None, "401"),
            (Some("not-a-token-at-all-0123456789"), "401"),
            (Some(READ), "403"),
        ] {
            let (line, answer) = http(method, path, token, body);
            assert!(
                line.contains(status),
                "{method} {path} with {token:?}: {line} {answer}"
            );
        }
    }
    // Nothing changed: etl is neither silenced nor acknowledged.
    let (_, jobs) = http("GET", "/api/jobs", Some(READ), "");
    let jobs: Value = serde_json::from_str(&jobs).unwrap();
    assert!(jobs[0]["silence"].is_null(), "{jobs}");
    assert!(jobs[0]["incidents"][0].get("acked").is_none(), "{jobs}");
    // Reads need a token now; /metrics is public on request.
    assert!(http("GET", "/api/jobs", None, "").0.contains("401"));
    assert!(http("GET", "/", None, "").0.contains("401"));
    let (line, metrics) = http("GET", "/metrics", None, "");
    assert!(line.contains("200"), "{line}");
    assert_eq!(
        qcic_testkit::metric_sum(&metrics, "qcic_http_refused_total"),
        20,
        "{metrics}"
    );
    // With the write token every route works.
    let (line, answer) = http("POST", &ack_path, Some(WRITE), "{\"comment\": \"on it\"}");
    assert!(line.contains("200"), "{line} {answer}");
    let (_, jobs) = http("GET", "/api/jobs", Some(READ), "");
    let jobs: Value = serde_json::from_str(&jobs).unwrap();
    assert_eq!(
        jobs[0]["incidents"][0]["acked"]["by"], "ops",
        "the token's name: {jobs}"
    );
    assert_eq!(jobs[0]["incidents"][0]["acked"]["comment"], "on it");
    for (method, path, body) in &routes[1..5] {
        let (line, answer) = http(method, path, Some(WRITE), body);
        assert!(line.contains("200"), "{method} {path}: {line} {answer}");
    }
    // etl is configured, not declared: forgetting it is refused (404 with a reason).
    let (line, answer) = http("DELETE", "/api/jobs/etl", Some(WRITE), "");
    assert!(line.starts_with("HTTP/1.1 4"), "{line} {answer}");
    let (line, answer) = http("POST", "/api/jobs/nope/pause", Some(WRITE), "");
    assert!(line.contains("404"), "{line} {answer}");
    let (line, _) = http("POST", &ack_path, Some(WRITE), "{not json");
    assert!(line.contains("400"), "{line}");
    let log = monitor.stop();
    for secret in [WRITE, READ, "not-a-token-at-all"] {
        assert!(!log.contains(secret), "a token is in the log");
    }
    assert!(log.contains("HTTP request refused"), "{log}");
}

#[test]
fn without_tokens_the_api_reads_and_refuses_every_write() {
    let monitor = Monitor::start(
        "w",
        "[http]\nlisten = \"{http}\"\n[[job]]\nname = \"etl\"\nevery = \"1h\"\n",
    );
    let (line, _) = http_request(&monitor.http, "GET", "/api/jobs", None, "");
    assert!(line.contains("200"), "{line}");
    for (method, path) in [
        ("POST", "/api/incidents/0123456789abcdef/ack"),
        ("POST", "/api/jobs/etl/pause"),
        ("DELETE", "/api/jobs/etl/silence"),
        ("DELETE", "/api/jobs/etl"),
    ] {
        let (line, answer) = http_request(&monitor.http, method, path, Some(WRITE), "");
        assert!(
            line.contains("403") && answer.contains("read-only"),
            "{method} {path}: {line} {answer}"
        );
    }
    monitor.stop();
}

#[test]
fn a_declared_job_may_depend_on_and_follow_jobs_watched_here_and_make_no_cycle() {
    use qcic_sdk::JobSpec;
    let body = format!(
        "[declare]\nallow = true\nmin_every = \"1s\"\n[[job]]\nname = \"db\"\nevery = \"1s\"\n{ZMQ}"
    );
    let monitor = Monitor::start("w", &body);
    let mut alerts = Alerts::subscribe(&monitor.publish);
    let client = Client::new([monitor.listen.clone()]).unwrap();
    let s = Duration::from_secs;
    client
        .declare(&JobSpec::every("etl", s(2)).depends_on(["nope"]))
        .unwrap();
    monitor.wait_log("depends_on: no job named \"nope\" is watched here");
    client
        .declare(&JobSpec::every("etl", s(2)).depends_on(["db"]))
        .unwrap();
    client
        .declare(
            &JobSpec::every("load", s(3600))
                .start_within(s(1))
                .after("etl"),
        )
        .unwrap();
    monitor.wait_log("a job declared itself");
    // db depends on nothing, but a declared job cannot close a cycle
    // through declared ones: etl -> db is fine, report -> etl -> report not.
    client
        .declare(&JobSpec::every("report", s(60)).depends_on(["etl"]))
        .unwrap();
    client
        .declare(&JobSpec::every("etl", s(2)).depends_on(["db", "report"]))
        .unwrap();
    monitor.wait_log("makes a cycle: etl -> report -> etl");
    // The first etl declaration stands: its alarm is held by db.
    client.heartbeat("db").unwrap();
    client.heartbeat("etl").unwrap();
    alerts.expect("alert.down.db");
    assert!(alerts.none_within("alert.down.etl", Duration::from_secs(3)));
    // The chain: etl succeeds, load does not start within 1 s.
    client.heartbeat("db").unwrap();
    alerts.expect("alert.recovered.db");
    let etl_down = alerts.expect("alert.down.etl");
    assert_eq!(etl_down["blocked_by"], "db");
    client.start("etl").unwrap().success().unwrap();
    let late = alerts.expect("alert.late.load");
    assert!(
        late["text"].as_str().unwrap().contains("etl's success"),
        "{late}"
    );
    monitor.stop();
}
