//! Webhook and command channels, and routing, with real processes: the
//! monitor, a Python HTTP server that fails first, a shell command.

#![expect(clippy::unwrap_used, reason = "tests: a panic is the failure report")]

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use qcic_sdk::Client;
use qcic_testkit::{
    Monitor, ReservedPort, counter, json_lines, python, reserve_port, wait_until, workspace_root,
};

/// The server, and its port held for it until it listens.
struct Server {
    child: Child,
    _held: ReservedPort,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A test server from `qcic-monitor/tests/` (a stand-in for a service, each
/// citing the documentation it follows), on a port held for it, with its
/// arguments after the port; ready when it accepts connections.
fn service(script: &str, held: ReservedPort, args: &[&str]) -> Server {
    let port = held.port();
    let child = Command::new(python())
        .arg(workspace_root().join("qcic-monitor/tests").join(script))
        .arg(port.to_string())
        .args(args)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(20), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    }));
    Server { child, _held: held }
}

fn webhook_server(port: ReservedPort, out: &std::path::Path, fail_first: u32) -> Server {
    webhook_server_failing_with(port, out, fail_first, 500)
}

fn webhook_server_failing_with(
    held: ReservedPort,
    out: &std::path::Path,
    fail_first: u32,
    status: u16,
) -> Server {
    let port = held.port();
    let child = Command::new(python())
        .arg(workspace_root().join("qcic-monitor/tests/webhook_server.py"))
        .args([
            port.to_string(),
            out.display().to_string(),
            fail_first.to_string(),
            status.to_string(),
        ])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(20), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    }));
    Server { child, _held: held }
}

#[test]
fn a_webhook_answering_500_is_retried_until_200_with_its_secret_header() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("hook.jsonl");
    let held = reserve_port();
    let port = held.port();
    let _server = webhook_server(held, &out, 2);
    let monitor = Monitor::start_with(
        "watcher-a",
        "",
        &format!(
            "[[job]]\nname = \"etl\"\nevery = \"1h\"\n\n\
             [[notify]]\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{port}/hook\"\n\
             headers = {{ Authorization = \"env:QCIC_TEST_TOKEN\" }}\n"
        ),
        &[("QCIC_TEST_TOKEN", "Bearer s3cret")],
    );
    let sender = Client::new([monitor.listen.clone()]).unwrap();
    sender.fail("etl", Some(4), "disk full").unwrap();
    assert!(wait_until(Duration::from_secs(30), || json_lines(&out)
        .len()
        >= 3));
    let got = json_lines(&out);
    let statuses: Vec<u64> = got.iter().map(|l| l["status"].as_u64().unwrap()).collect();
    assert_eq!(statuses, [500, 500, 200], "retried after each 500");
    for l in &got {
        assert_eq!(l["auth"], "Bearer s3cret");
        assert_eq!(l["body"]["event"], "failed");
        assert_eq!(l["body"]["job"], "etl");
        assert_eq!(l["body"]["exit_code"], 4);
        assert_eq!(l["body"]["watcher"], "watcher-a");
    }
    let log = monitor.stop();
    assert_eq!(counter(&log, "delivery_retries"), Some(2), "{log}");
    assert_eq!(counter(&log, "delivered"), Some(1), "{log}");
    assert!(!log.contains("s3cret"), "the header secret is never logged");
}

/// A permanent refusal (4xx) is logged and shown, not retried, and not
/// sent again after a restart either.
#[test]
fn a_webhook_refusing_with_400_is_given_up_at_once_and_shown() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("hook.jsonl");
    let held = reserve_port();
    let port = held.port();
    let _server = webhook_server_failing_with(held, &out, 1, 400);
    let body = format!(
        "[[job]]\nname = \"etl\"\nevery = \"1h\"\n\n[http]\nlisten = \"{{http}}\"\n\n\
         [[notify]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{port}/hook\"\n"
    );
    let keys = format!("state = \"{}\"", dir.path().join("state.db").display());
    let monitor = Monitor::start_with("watcher-a", &keys, &body, &[]);
    let sender = Client::new([monitor.listen.clone()]).unwrap();
    sender.fail("etl", Some(4), "disk full").unwrap();
    assert!(wait_until(qcic_testkit::WAIT, || monitor
        .log()
        .contains("refused permanently")));
    let (_, metrics) = qcic_testkit::http_get(&monitor.http, "/metrics");
    assert!(
        metrics.contains("qcic_notifications_total{channel=\"hook\",result=\"failed\"} 1"),
        "{metrics}"
    );
    // Longer than the first retry backoff (1 s): nothing more is tried.
    std::thread::sleep(Duration::from_secs(2));
    let log = monitor.stop();
    assert_eq!(json_lines(&out).len(), 1, "not retried");
    assert_eq!(counter(&log, "delivery_failed"), Some(1), "{log}");
    assert_eq!(counter(&log, "delivery_retries"), Some(0), "{log}");
    let again = Monitor::start_with("watcher-a", &keys, &body, &[]);
    std::thread::sleep(Duration::from_secs(1));
    let log = again.stop();
    assert!(log.contains("pending_notifications=0"), "{log}");
    assert_eq!(json_lines(&out).len(), 1, "given up for good, not resent");
}

#[test]
fn a_command_gets_the_notification_on_stdin_and_routing_picks_channels() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cmd.jsonl");
    let hook_out = dir.path().join("hook.jsonl");
    let held = reserve_port();
    let port = held.port();
    let _server = webhook_server(held, &hook_out, 0);
    let monitor = Monitor::start(
        "watcher-a",
        &format!(
            "[[job]]\nname = \"routed\"\nevery = \"1h\"\nnotify = [\"pager\"]\n\
             [[job]]\nname = \"plain\"\nevery = \"1h\"\n\n\
             [[notify]]\nkind = \"webhook\"\nname = \"pager\"\ndefault = false\nurl = \"http://127.0.0.1:{port}/\"\n\n\
             [[notify]]\nkind = \"command\"\nname = \"sms\"\ncommand = [\"sh\", \"-c\", \"cat >> {}\"]\ntimeout = \"5s\"\n",
            out.display()
        ),
    );
    let sender = Client::new([monitor.listen.clone()]).unwrap();
    sender.fail("routed", None, "to the pager only").unwrap();
    sender
        .fail("plain", None, "to the default channel")
        .unwrap();
    assert!(wait_until(Duration::from_secs(20), || !json_lines(&out)
        .is_empty()
        && !json_lines(&hook_out).is_empty()));
    std::thread::sleep(Duration::from_millis(500));
    let cmd = json_lines(&out);
    let hook = json_lines(&hook_out);
    assert_eq!(cmd.len(), 1, "{cmd:?}");
    assert_eq!(cmd[0]["job"], "plain");
    assert_eq!(cmd[0]["text"], "to the default channel");
    assert_eq!(hook.len(), 1, "{hook:?}");
    assert_eq!(hook[0]["body"]["job"], "routed");
    monitor.stop();
}

#[test]
fn a_command_that_hangs_is_killed_at_its_timeout_and_retried() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("attempts");
    let monitor = Monitor::start(
        "watcher-a",
        &format!(
            "[[job]]\nname = \"etl\"\nevery = \"1h\"\n\n\
             [[notify]]\nkind = \"command\"\ncommand = [\"sh\", \"-c\", \"echo x >> {}; sleep 30\"]\ntimeout = \"300ms\"\n",
            marker.display()
        ),
    );
    let sender = Client::new([monitor.listen.clone()]).unwrap();
    sender.fail("etl", None, "x").unwrap();
    assert!(wait_until(Duration::from_secs(20), || {
        std::fs::read_to_string(&marker)
            .unwrap_or_default()
            .lines()
            .count()
            >= 2
    }));
    let log = monitor.stop();
    assert!(log.contains("did not finish within 300ms"), "{log}");
}

/// `qcic-monitor check --config PATH`, run.
fn check(path: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_qcic-monitor"))
        .args(["check", "--config"])
        .arg(path)
        .output()
        .unwrap()
}

#[test]
fn check_validates_and_prints_the_next_cron_fires() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.toml");
    std::fs::write(
        &path,
        "[[job]]\nname = \"nightly\"\ncron = \"30 2 * * 1-5\"\ntimezone = \"Europe/London\"\ngrace = \"15m\"\nstart_within = \"10m\"\n",
    )
    .unwrap();
    let out = check(&path);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("cron \"30 2 * * 1-5\" Europe/London"),
        "{text}"
    );
    assert_eq!(
        text.lines()
            .filter(|l| l.trim_start().starts_with("next "))
            .count(),
        5,
        "{text}"
    );
    assert!(
        text.contains("02:30:00 GMT") || text.contains("02:30:00 BST"),
        "{text}"
    );
    std::fs::write(
        &path,
        "[[job]]\nname = \"x\"\ncron = \"30 2 * * *\"\ntimezone = \"Europe/Londn\"\n",
    )
    .unwrap();
    let out = check(&path);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("job[0].timezone"));
}

/// A stand-in for PagerDuty's Events API v2 that checks every request
/// against the documented schema (`tests/pagerduty_server.py`, with the
/// documentation it follows); the first `throttle` requests get 429 with
/// `Retry-After: 1`.
fn pagerduty_server(held: ReservedPort, out: &std::path::Path, key: &str, throttle: u32) -> Server {
    let throttle = throttle.to_string();
    service(
        "pagerduty_server.py",
        held,
        &[out.to_str().unwrap(), key, &throttle],
    )
}

/// An alarm is a PagerDuty `trigger` keyed by the incident id, its
/// follow-up a `resolve` of the same key; a 429 with `Retry-After` is
/// waited out and retried; the routing key comes from the environment and
/// never reaches the log; a refused event (400) is not retried.
#[test]
fn pagerduty_gets_a_trigger_and_a_resolve_keyed_by_the_incident() {
    const KEY: &str = "R0UTINGKEYTHATMUSTNOTLEAK0000000";
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pd.jsonl");
    let held = reserve_port();
    let port = held.port();
    let _server = pagerduty_server(held, &out, KEY, 1);
    let body = format!(
        "[[job]]\nname = \"etl\"\nevery = \"1h\"\n\n\
         [[notify]]\nkind = \"pagerduty\"\nrouting_key = \"env:QCIC_TEST_PD_KEY\"\n\
         url = \"http://127.0.0.1:{port}/v2/enqueue\"\nseverity = {{ failed = \"error\" }}\n"
    );
    let monitor = Monitor::start_with("watcher-a", "", &body, &[("QCIC_TEST_PD_KEY", KEY)]);
    let sender = Client::new([monitor.listen.clone()]).unwrap();
    sender.fail("etl", Some(2), "disk full").unwrap();
    assert!(wait_until(qcic_testkit::WAIT, || !json_lines(&out).is_empty()));
    let trigger = json_lines(&out)[0].clone();
    assert_eq!(trigger["event_action"], "trigger");
    assert_eq!(trigger["payload"]["severity"], "error");
    assert_eq!(trigger["payload"]["component"], "etl");
    assert_eq!(trigger["payload"]["class"], "failed");
    assert_eq!(trigger["payload"]["group"], "watcher-a");
    assert_eq!(trigger["payload"]["custom_details"]["text"], "disk full");
    let incident = trigger["payload"]["custom_details"]["incident"].clone();
    assert_eq!(trigger["dedup_key"], incident);
    sender.start("etl").unwrap().success().unwrap();
    assert!(wait_until(qcic_testkit::WAIT, || json_lines(&out).len() >= 2));
    let resolve = json_lines(&out)[1].clone();
    assert_eq!(resolve["event_action"], "resolve");
    assert_eq!(resolve["dedup_key"], incident);
    let log = monitor.stop();
    assert!(log.contains("HTTP 429"), "{log}");
    assert!(counter(&log, "delivery_retries").unwrap() >= 1, "{log}");
    assert!(!log.contains(KEY), "the routing key was logged");

    // A routing key the service does not know: 400, given up at once.
    let held = reserve_port();
    let port = held.port();
    let _other = pagerduty_server(held, &dir.path().join("other.jsonl"), KEY, 0);
    let body = format!(
        "[[job]]\nname = \"etl\"\nevery = \"1h\"\n\n\
         [[notify]]\nkind = \"pagerduty\"\nrouting_key = \"wrongkey\"\nurl = \"http://127.0.0.1:{port}/v2/enqueue\"\n"
    );
    let monitor = Monitor::start("watcher-a", &body);
    let sender = Client::new([monitor.listen.clone()]).unwrap();
    sender.fail("etl", Some(2), "disk full").unwrap();
    monitor.wait_log("refused permanently");
    let log = monitor.stop();
    assert!(
        log.contains("routing_key"),
        "PagerDuty's reason is shown: {log}"
    );
    assert_eq!(counter(&log, "delivery_retries"), Some(0), "{log}");
}

/// A stand-in for an ntfy server (`tests/ntfy_server.py`, with the
/// documentation it follows).
fn ntfy_server(
    held: ReservedPort,
    out: &std::path::Path,
    topic: &str,
    token: &str,
    throttle: u32,
) -> Server {
    let throttle = throttle.to_string();
    service(
        "ntfy_server.py",
        held,
        &[out.to_str().unwrap(), topic, token, &throttle],
    )
}

/// ntfy: the alarm and its follow-up published to the topic with a title,
/// a priority and tags per event (the configured ones over the defaults),
/// the token as a bearer token and never logged, a 429 waited out; a topic
/// the server forbids is given up at once.
#[test]
fn ntfy_gets_the_alarm_and_its_follow_up_with_priority_and_tags() {
    const TOKEN: &str = "tk_thistokenmustnotleak000000";
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ntfy.jsonl");
    let held = reserve_port();
    let port = held.port();
    let _server = ntfy_server(held, &out, "qcic-alerts", TOKEN, 1);
    let body = format!(
        "[[job]]\nname = \"etl\"\nevery = \"1h\"\n\n\
         [[notify]]\nkind = \"ntfy\"\ngroup_wait = \"off\"\nurl = \"http://127.0.0.1:{port}/qcic-alerts\"\n\
         token = \"env:QCIC_TEST_NTFY_TOKEN\"\ntags = {{ failed = [\"fire\", \"etl\"] }}\n"
    );
    let monitor = Monitor::start_with("watcher-a", "", &body, &[("QCIC_TEST_NTFY_TOKEN", TOKEN)]);
    let sender = Client::new([monitor.listen.clone()]).unwrap();
    sender.fail("etl", Some(2), "disk full").unwrap();
    assert!(wait_until(qcic_testkit::WAIT, || !json_lines(&out).is_empty()));
    let alarm = json_lines(&out)[0].clone();
    assert_eq!(alarm["priority"], "urgent");
    assert_eq!(alarm["tags"], serde_json::json!(["fire", "etl"]));
    assert!(alarm["title"].as_str().unwrap().contains("etl"), "{alarm}");
    assert!(
        alarm["message"].as_str().unwrap().contains("disk full"),
        "{alarm}"
    );
    sender.start("etl").unwrap().success().unwrap();
    assert!(wait_until(qcic_testkit::WAIT, || json_lines(&out).len() >= 2));
    let follow_up = json_lines(&out)[1].clone();
    assert_eq!(follow_up["priority"], "low");
    assert_eq!(follow_up["tags"], serde_json::json!(["white_check_mark"]));
    assert!(
        follow_up["message"]
            .as_str()
            .unwrap()
            .starts_with("recovered etl")
    );
    let log = monitor.stop();
    assert!(log.contains("HTTP 429"), "{log}");
    assert!(!log.contains(TOKEN), "the token was logged");

    // A topic the server forbids: 403, given up at once with ntfy's reason.
    let held = reserve_port();
    let port = held.port();
    let _other = ntfy_server(held, &dir.path().join("other.jsonl"), "qcic-alerts", "-", 0);
    let monitor = Monitor::start(
        "watcher-a",
        &format!(
            "[[job]]\nname = \"etl\"\nevery = \"1h\"\n\n[[notify]]\nkind = \"ntfy\"\ngroup_wait = \"off\"\nurl = \"http://127.0.0.1:{port}/not-mine\"\n"
        ),
    );
    let sender = Client::new([monitor.listen.clone()]).unwrap();
    sender.fail("etl", Some(2), "disk full").unwrap();
    monitor.wait_log("refused permanently");
    let log = monitor.stop();
    assert!(log.contains("forbidden"), "{log}");
}

/// Slack: Block Kit messages to an incoming webhook whose URL (its path is
/// the credential) comes from the environment and is never logged, checked
/// against Slack's documented limits (`tests/slack_server.py`); a 429 is
/// waited out; a webhook Slack does not know (404 `no_service`) is given up.
#[test]
fn slack_gets_block_kit_messages_and_its_url_stays_secret() {
    const SECRET_PATH: &str = "/services/T000/B000/SECRETPATHTHATMUSTNOTLEAK";
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("slack.jsonl");
    let held = reserve_port();
    let port = held.port();
    let _server = service(
        "slack_server.py",
        held,
        &[out.to_str().unwrap(), SECRET_PATH, "1"],
    );
    let url = format!("http://127.0.0.1:{port}{SECRET_PATH}");
    let body = "[[job]]\nname = \"etl\"\nevery = \"1h\"\n\n[[notify]]\nkind = \"slack\"\ngroup_wait = \"off\"\nurl = \"env:QCIC_TEST_SLACK_URL\"\n\n\
                [http]\nlisten = \"{http}\"\npublic_url = \"https://qcic.example.com/\"\n";
    let monitor = Monitor::start_with("watcher-a", "", body, &[("QCIC_TEST_SLACK_URL", &url)]);
    let sender = Client::new([monitor.listen.clone()]).unwrap();
    // Markup in the reason must not become markup in Slack.
    sender
        .fail("etl", Some(2), "<!channel> disk & tape full")
        .unwrap();
    assert!(wait_until(qcic_testkit::WAIT, || !json_lines(&out).is_empty()));
    let alarm = json_lines(&out)[0].clone();
    assert_eq!(alarm["blocks"][0]["type"], "header");
    assert!(alarm["text"].as_str().unwrap().contains("etl"), "{alarm}");
    let fields = alarm["blocks"][1]["fields"].to_string();
    assert!(fields.contains("*Incident*"), "{fields}");
    let reason = alarm["blocks"][2]["text"]["text"].as_str().unwrap();
    assert_eq!(reason, "&lt;!channel&gt; disk &amp; tape full");
    assert_eq!(alarm["blocks"][3]["type"], "context");
    assert_eq!(
        alarm["blocks"][3]["elements"][0]["text"],
        "<https://qcic.example.com/|Status page>"
    );
    sender.start("etl").unwrap().success().unwrap();
    assert!(wait_until(qcic_testkit::WAIT, || json_lines(&out).len() >= 2));
    assert!(
        json_lines(&out)[1]["text"]
            .as_str()
            .unwrap()
            .starts_with(":white_check_mark:")
    );
    let log = monitor.stop();
    assert!(log.contains("HTTP 429"), "{log}");
    assert!(!log.contains("SECRETPATH"), "the webhook URL was logged");

    let monitor = Monitor::start_with(
        "watcher-a",
        "",
        body,
        &[(
            "QCIC_TEST_SLACK_URL",
            &format!("http://127.0.0.1:{port}/services/unknown"),
        )],
    );
    let sender = Client::new([monitor.listen.clone()]).unwrap();
    sender.fail("etl", Some(2), "disk full").unwrap();
    monitor.wait_log("refused permanently");
    assert!(monitor.stop().contains("no_service"));
}

/// Discord: one embed per notification to a webhook whose URL comes from
/// the environment and is never logged, checked against Discord's
/// documented embed limits (`tests/discord_server.py`), no mentions
/// allowed; a 429 is waited out; an unknown webhook (404) is given up.
#[test]
fn discord_gets_an_embed_and_its_url_stays_secret() {
    const SECRET_PATH: &str = "/api/webhooks/1234/SECRETTOKENTHATMUSTNOTLEAK";
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("discord.jsonl");
    let held = reserve_port();
    let port = held.port();
    let _server = service(
        "discord_server.py",
        held,
        &[out.to_str().unwrap(), SECRET_PATH, "1"],
    );
    let url = format!("http://127.0.0.1:{port}{SECRET_PATH}");
    let body = "[[job]]\nname = \"etl\"\nevery = \"1h\"\n\n[[notify]]\nkind = \"discord\"\ngroup_wait = \"off\"\nurl = \"env:QCIC_TEST_DISCORD_URL\"\n";
    let monitor = Monitor::start_with("watcher-a", "", body, &[("QCIC_TEST_DISCORD_URL", &url)]);
    let sender = Client::new([monitor.listen.clone()]).unwrap();
    sender.fail("etl", Some(2), "@everyone disk full").unwrap();
    assert!(wait_until(qcic_testkit::WAIT, || !json_lines(&out).is_empty()));
    let alarm = json_lines(&out)[0].clone();
    assert_eq!(alarm["allowed_mentions"]["parse"], serde_json::json!([]));
    let embed = &alarm["embeds"][0];
    assert!(embed["title"].as_str().unwrap().contains("etl"), "{alarm}");
    assert_eq!(embed["description"], "@everyone disk full");
    assert_eq!(embed["color"], 0xc62828);
    sender.start("etl").unwrap().success().unwrap();
    assert!(wait_until(qcic_testkit::WAIT, || json_lines(&out).len() >= 2));
    assert_eq!(json_lines(&out)[1]["embeds"][0]["color"], 0x2e7d32);
    let log = monitor.stop();
    assert!(log.contains("HTTP 429"), "{log}");
    assert!(!log.contains("SECRETTOKEN"), "the webhook URL was logged");

    let monitor = Monitor::start_with(
        "watcher-a",
        "",
        body,
        &[(
            "QCIC_TEST_DISCORD_URL",
            &format!("http://127.0.0.1:{port}/api/webhooks/9/none"),
        )],
    );
    let sender = Client::new([monitor.listen.clone()]).unwrap();
    sender.fail("etl", Some(2), "disk full").unwrap();
    monitor.wait_log("refused permanently");
    assert!(monitor.stop().contains("Unknown Webhook"));
}

/// Telegram: the Bot API's `sendMessage` to the chat, plain text, the
/// token (in the request path) from the environment and never logged,
/// checked against the documented Bot API (`tests/telegram_server.py`); a
/// 429's `retry_after` waited out; a chat the bot cannot reach is given up.
#[test]
fn telegram_gets_the_message_and_its_token_stays_secret() {
    const TOKEN: &str = "123456:SECRETBOTTOKENTHATMUSTNOTLEAK";
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("telegram.jsonl");
    let held = reserve_port();
    let port = held.port();
    let child = Command::new(python())
        .arg(workspace_root().join("qcic-monitor/tests/telegram_server.py"))
        .args([
            &port.to_string(),
            out.to_str().unwrap(),
            TOKEN,
            "-1001234567890",
            "1",
        ])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(20), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    }));
    let _server = Server { child, _held: held };
    let channel = |chat: &str| {
        format!(
            "[[job]]\nname = \"etl\"\nevery = \"1h\"\n\n[[notify]]\nkind = \"telegram\"\ngroup_wait = \"off\"\n\
             token = \"env:QCIC_TEST_TG_TOKEN\"\nchat_id = \"{chat}\"\nurl = \"http://127.0.0.1:{port}\"\n"
        )
    };
    let monitor = Monitor::start_with(
        "watcher-a",
        "",
        &channel("-1001234567890"),
        &[("QCIC_TEST_TG_TOKEN", TOKEN)],
    );
    let sender = Client::new([monitor.listen.clone()]).unwrap();
    sender.fail("etl", Some(2), "<b>disk full</b>").unwrap();
    assert!(wait_until(qcic_testkit::WAIT, || !json_lines(&out).is_empty()));
    let alarm = json_lines(&out)[0].clone();
    assert_eq!(alarm["chat_id"], "-1001234567890");
    let text = alarm["text"].as_str().unwrap();
    assert!(
        text.contains("etl") && text.contains("<b>disk full</b>"),
        "{text}"
    );
    assert!(
        alarm.get("parse_mode").is_none(),
        "plain text: no markup taken"
    );
    sender.start("etl").unwrap().success().unwrap();
    assert!(wait_until(qcic_testkit::WAIT, || json_lines(&out).len() >= 2));
    let log = monitor.stop();
    assert!(log.contains("retry after"), "{log}");
    assert!(!log.contains("SECRETBOTTOKEN"), "the token was logged");

    let monitor = Monitor::start_with(
        "watcher-a",
        "",
        &channel("@nobody"),
        &[("QCIC_TEST_TG_TOKEN", TOKEN)],
    );
    let sender = Client::new([monitor.listen.clone()]).unwrap();
    sender.fail("etl", Some(2), "disk full").unwrap();
    monitor.wait_log("refused permanently");
    assert!(monitor.stop().contains("chat not found"));
}

/// Pushover: the Message API with the token and user key from the
/// environment (never logged), a priority per event (the configured one
/// over the defaults), checked against Pushover's documented API
/// (`tests/pushover_server.py`); a 429 waited out; a user key Pushover
/// does not know is given up with its reason.
#[test]
fn pushover_gets_the_message_with_its_priority_and_keys_stay_secret() {
    const TOKEN: &str = "azGDORePK8gMaC0QOYAMyEEuzJnyUi";
    const USER: &str = "uQiRzpo4DXghDmr9QzzfQu27cmVRsG";
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pushover.jsonl");
    let held = reserve_port();
    let port = held.port();
    let _server = service(
        "pushover_server.py",
        held,
        &[out.to_str().unwrap(), TOKEN, USER, "1"],
    );
    let channel = |user: &str| {
        format!(
            "[[job]]\nname = \"etl\"\nevery = \"1h\"\n\n[[notify]]\nkind = \"pushover\"\ngroup_wait = \"off\"\n\
             token = \"env:QCIC_TEST_PO_TOKEN\"\nuser = \"{user}\"\npriority = {{ recovered = 0 }}\n\
             url = \"http://127.0.0.1:{port}/1/messages.json\"\n"
        )
    };
    let monitor = Monitor::start_with(
        "watcher-a",
        "",
        &channel("env:QCIC_TEST_PO_USER"),
        &[("QCIC_TEST_PO_TOKEN", TOKEN), ("QCIC_TEST_PO_USER", USER)],
    );
    let sender = Client::new([monitor.listen.clone()]).unwrap();
    sender.fail("etl", Some(2), "disk full").unwrap();
    assert!(wait_until(qcic_testkit::WAIT, || !json_lines(&out).is_empty()));
    let alarm = json_lines(&out)[0].clone();
    assert_eq!(alarm["priority"], 1);
    assert!(alarm["message"].as_str().unwrap().contains("disk full"));
    sender.start("etl").unwrap().success().unwrap();
    assert!(wait_until(qcic_testkit::WAIT, || json_lines(&out).len() >= 2));
    assert_eq!(json_lines(&out)[1]["priority"], 0);
    let log = monitor.stop();
    assert!(log.contains("HTTP 429"), "{log}");
    assert!(
        !log.contains(TOKEN) && !log.contains(USER),
        "a key was logged"
    );

    let monitor = Monitor::start_with(
        "watcher-a",
        "",
        &channel("uNOTAUSERKEY000000000000000000"),
        &[("QCIC_TEST_PO_TOKEN", TOKEN)],
    );
    let sender = Client::new([monitor.listen.clone()]).unwrap();
    sender.fail("etl", Some(2), "disk full").unwrap();
    monitor.wait_log("refused permanently");
    assert!(monitor.stop().contains("user identifier is invalid"));
}

/// Opsgenie: an alert created with the incident id as alias, closed by that
/// alias on the follow-up, the API key from the environment (never
/// logged), checked against Opsgenie's documented Alert API
/// (`tests/opsgenie_server.py`); a 429 waited out; a key Opsgenie does
/// not know is given up with its reason.
#[test]
fn opsgenie_creates_an_alert_by_incident_and_closes_it() {
    const KEY: &str = "eb243592-faa2-4ba2-a551q-1afdf565c889";
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("opsgenie.jsonl");
    let held = reserve_port();
    let port = held.port();
    let _server = service(
        "opsgenie_server.py",
        held,
        &[out.to_str().unwrap(), KEY, "1"],
    );
    let channel = |key: &str| {
        format!(
            "[[job]]\nname = \"etl\"\nevery = \"1h\"\n\n[[notify]]\nkind = \"opsgenie\"\n\
             api_key = \"{key}\"\nurl = \"http://127.0.0.1:{port}\"\npriority = {{ failed = \"P2\" }}\n"
        )
    };
    let monitor = Monitor::start_with(
        "watcher-a",
        "",
        &channel("env:QCIC_TEST_OG_KEY"),
        &[("QCIC_TEST_OG_KEY", KEY)],
    );
    let sender = Client::new([monitor.listen.clone()]).unwrap();
    sender.fail("etl", Some(2), "disk full").unwrap();
    assert!(wait_until(qcic_testkit::WAIT, || !json_lines(&out).is_empty()));
    let create = json_lines(&out)[0].clone();
    assert_eq!(create["action"], "create");
    assert_eq!(create["body"]["priority"], "P2");
    assert_eq!(create["body"]["entity"], "etl");
    let alias = create["alias"].clone();
    assert_eq!(create["body"]["details"]["incident"], alias);
    sender.start("etl").unwrap().success().unwrap();
    assert!(wait_until(qcic_testkit::WAIT, || json_lines(&out).len() >= 2));
    let close = json_lines(&out)[1].clone();
    assert_eq!(close["action"], "close");
    assert_eq!(close["alias"], alias);
    let log = monitor.stop();
    assert!(log.contains("HTTP 429"), "{log}");
    assert!(!log.contains(KEY), "the API key was logged");

    let monitor = Monitor::start("watcher-a", &channel("not-the-key"));
    let sender = Client::new([monitor.listen.clone()]).unwrap();
    sender.fail("etl", Some(2), "disk full").unwrap();
    monitor.wait_log("refused permanently");
    assert!(monitor.stop().contains("Could not authenticate"));
}

/// Teams: an Adaptive Card to a Workflows webhook whose URL (it holds its
/// signature) comes from the environment and is never logged, checked
/// against Microsoft's documented message and card shapes
/// (`tests/teams_server.py`); a 429 waited out; an unknown flow (404)
/// given up.
#[test]
fn teams_gets_an_adaptive_card_and_its_url_stays_secret() {
    const SECRET_PATH: &str =
        "/workflows/abc/triggers/manual/paths/invoke?sig=SECRETSIGNATURETHATMUSTNOTLEAK";
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("teams.jsonl");
    let held = reserve_port();
    let port = held.port();
    let path = SECRET_PATH.split('?').next().unwrap();
    let _server = service("teams_server.py", held, &[out.to_str().unwrap(), path, "1"]);
    let url = format!("http://127.0.0.1:{port}{SECRET_PATH}");
    let body = "[[job]]\nname = \"etl\"\nevery = \"1h\"\n\n[[notify]]\nkind = \"teams\"\ngroup_wait = \"off\"\nurl = \"env:QCIC_TEST_TEAMS_URL\"\n";
    let monitor = Monitor::start_with("watcher-a", "", body, &[("QCIC_TEST_TEAMS_URL", &url)]);
    let sender = Client::new([monitor.listen.clone()]).unwrap();
    sender.fail("etl", Some(2), "disk full").unwrap();
    assert!(wait_until(qcic_testkit::WAIT, || !json_lines(&out).is_empty()));
    let card = json_lines(&out)[0]["attachments"][0]["content"].clone();
    assert_eq!(card["body"][0]["color"], "Attention");
    assert_eq!(card["body"][1]["text"], "disk full");
    assert!(card["body"][2]["facts"].to_string().contains("Incident"));
    sender.start("etl").unwrap().success().unwrap();
    assert!(wait_until(qcic_testkit::WAIT, || json_lines(&out).len() >= 2));
    assert_eq!(
        json_lines(&out)[1]["attachments"][0]["content"]["body"][0]["color"],
        "Good"
    );
    let log = monitor.stop();
    assert!(log.contains("HTTP 429"), "{log}");
    assert!(
        !log.contains("SECRETSIGNATURE"),
        "the webhook URL was logged"
    );

    let monitor = Monitor::start_with(
        "watcher-a",
        "",
        body,
        &[(
            "QCIC_TEST_TEAMS_URL",
            &format!("http://127.0.0.1:{port}/workflows/none"),
        )],
    );
    let sender = Client::new([monitor.listen.clone()]).unwrap();
    sender.fail("etl", Some(2), "disk full").unwrap();
    monitor.wait_log("refused permanently");
    assert!(monitor.stop().contains("WorkflowNotFound"));
}

/// Matrix: an `m.notice` in the room through the client-server API, the
/// access token from the environment (never logged), checked against the
/// Matrix specification (`tests/matrix_server.py`); a 429's
/// `retry_after_ms` waited out; a room the bot is not in is given up.
#[test]
fn matrix_gets_a_notice_in_the_room_and_its_token_stays_secret() {
    const TOKEN: &str = "syt_SECRETACCESSTOKENTHATMUSTNOTLEAK";
    const ROOM: &str = "!qcicroom:example.org";
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("matrix.jsonl");
    let held = reserve_port();
    let port = held.port();
    let _server = service(
        "matrix_server.py",
        held,
        &[out.to_str().unwrap(), TOKEN, ROOM, "1"],
    );
    let channel = |room: &str| {
        format!(
            "[[job]]\nname = \"etl\"\nevery = \"1h\"\n\n[[notify]]\nkind = \"matrix\"\ngroup_wait = \"off\"\n\
             homeserver = \"http://127.0.0.1:{port}\"\nroom = \"{room}\"\naccess_token = \"env:QCIC_TEST_MX_TOKEN\"\n"
        )
    };
    let monitor = Monitor::start_with(
        "watcher-a",
        "",
        &channel(ROOM),
        &[("QCIC_TEST_MX_TOKEN", TOKEN)],
    );
    let sender = Client::new([monitor.listen.clone()]).unwrap();
    sender.fail("etl", Some(2), "disk full").unwrap();
    assert!(wait_until(qcic_testkit::WAIT, || !json_lines(&out).is_empty()));
    let alarm = json_lines(&out)[0].clone();
    assert_eq!(alarm["content"]["msgtype"], "m.notice");
    assert!(
        alarm["content"]["body"]
            .as_str()
            .unwrap()
            .contains("disk full")
    );
    sender.start("etl").unwrap().success().unwrap();
    assert!(wait_until(qcic_testkit::WAIT, || json_lines(&out).len() >= 2));
    assert_ne!(json_lines(&out)[1]["txn"], alarm["txn"]);
    let log = monitor.stop();
    assert!(log.contains("M_LIMIT_EXCEEDED"), "{log}");
    assert!(!log.contains("SECRETACCESSTOKEN"), "the token was logged");

    let monitor = Monitor::start_with(
        "watcher-a",
        "",
        &channel("!otherroom:example.org"),
        &[("QCIC_TEST_MX_TOKEN", TOKEN)],
    );
    let sender = Client::new([monitor.listen.clone()]).unwrap();
    sender.fail("etl", Some(2), "disk full").unwrap();
    monitor.wait_log("refused permanently");
    assert!(monitor.stop().contains("M_FORBIDDEN"));
}

/// A real Prometheus Alertmanager (Debian's `prometheus-alertmanager`),
/// configured by the test, routing every alert to a webhook receiver the
/// test runs.
struct Alertmanager {
    child: Child,
    addr: String,
    _held: ReservedPort,
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn alertmanager(dir: &std::path::Path, receiver: &str) -> Alertmanager {
    let config = dir.join("alertmanager.yml");
    std::fs::write(
        &config,
        format!(
            "route:\n  receiver: hook\n  group_by: ['incident']\n  group_wait: 1s\n  \
             group_interval: 1s\n  repeat_interval: 1h\n\
             receivers:\n  - name: hook\n    webhook_configs:\n      - url: {receiver}\n        \
             send_resolved: true\n"
        ),
    )
    .unwrap();
    let held = reserve_port();
    let port = held.port();
    let child = Command::new("prometheus-alertmanager")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.path={}", dir.join("am-data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        // Alone: no gossip port.
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("alertmanager.log")).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("prometheus-alertmanager (scripts/setup.sh installs it): {e}"));
    let addr = format!("127.0.0.1:{port}");
    assert!(
        wait_until(Duration::from_secs(30), || {
            std::net::TcpStream::connect(&addr).is_ok()
                && qcic_testkit::http_get(&addr, "/-/ready").0.contains(" 200")
        }),
        "Alertmanager did not become ready: {}",
        std::fs::read_to_string(dir.join("alertmanager.log")).unwrap_or_default()
    );
    Alertmanager {
        child,
        addr,
        _held: held,
    }
}

/// qcic posts a `down` to a real Alertmanager (and to a second URL where
/// nothing listens: one Alertmanager of a cluster taking it is enough);
/// Alertmanager routes it to its webhook receiver with qcic's labels and
/// the user's; re-posted every `resend`, the alert is still firing well
/// past the `endsAt` of its first post; the `recovered` resolves it.
#[test]
fn alertmanager_routes_the_alarm_and_the_follow_up_resolves_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("received.jsonl");
    let held = reserve_port();
    let hook_port = held.port();
    let _receiver = webhook_server(held, &out, 0);
    let am = alertmanager(dir.path(), &format!("http://127.0.0.1:{hook_port}/hook"));
    let nobody = reserve_port();
    let body = format!(
        "[[job]]\nname = \"etl\"\nevery = \"2s\"\ngrace = \"0s\"\n\n\
         [[notify]]\nkind = \"alertmanager\"\n\
         url = [\"http://127.0.0.1:{}\", \"http://{}\"]\n\
         resend = \"1s\"\nlabels = {{ team = \"ops\" }}\n\n\
         [http]\nlisten = \"{{http}}\"\npublic_url = \"https://qcic.example.com\"\n",
        nobody.port(),
        am.addr
    );
    let monitor = Monitor::start("watcher-a", &body);
    let alerts = |status: &str| {
        json_lines(&out)
            .into_iter()
            .filter(|l| l["body"]["status"] == status)
            .flat_map(|l| l["body"]["alerts"].as_array().cloned().unwrap_or_default())
            .collect::<Vec<_>>()
    };
    assert!(
        wait_until(Duration::from_secs(30), || !alerts("firing").is_empty()),
        "the receiver got nothing: {}",
        monitor.stop()
    );
    let firing = alerts("firing")[0].clone();
    let labels = &firing["labels"];
    assert_eq!(labels["alertname"], "qcic_down");
    assert_eq!(labels["job"], "etl");
    assert_eq!(labels["event"], "down");
    // The watcher is no label (a farm's watchers make one alert).
    assert!(labels.get("watcher").is_none(), "{labels}");
    assert_eq!(firing["annotations"]["watcher"], "watcher-a");
    assert_eq!(labels["team"], "ops");
    assert_eq!(firing["generatorURL"], "https://qcic.example.com/");
    let incident = labels["incident"].as_str().unwrap().to_owned();
    assert!(!incident.is_empty());
    assert!(
        firing["annotations"]["summary"]
            .as_str()
            .unwrap()
            .contains("etl"),
        "{firing}"
    );
    // Its first endsAt was 4 s ahead; 6 s on it must still be firing.
    std::thread::sleep(Duration::from_secs(6));
    let (status, open) = qcic_testkit::http_get(&am.addr, "/api/v2/alerts?active=true");
    assert!(status.contains(" 200"), "{status}");
    let open: serde_json::Value = serde_json::from_str(&open).unwrap();
    assert!(
        open.as_array()
            .unwrap()
            .iter()
            .any(|a| a["labels"]["incident"] == incident.as_str()
                && a["status"]["state"] == "active"),
        "the alert ended though its incident is open: {open}"
    );
    assert!(alerts("resolved").is_empty(), "resolved too early");
    let sender = Client::new([monitor.listen.clone()]).unwrap();
    sender.start("etl").unwrap().success().unwrap();
    assert!(
        wait_until(Duration::from_secs(30), || !alerts("resolved").is_empty()),
        "the recovery did not resolve the alert"
    );
    let resolved = alerts("resolved")[0].clone();
    assert_eq!(resolved["labels"]["incident"], incident.as_str());
    assert_eq!(resolved["labels"]["event"], "down");
    let log = monitor.stop();
    assert!(
        log.contains("an Alertmanager did not take the alert"),
        "{log}"
    );
    assert_eq!(counter(&log, "delivery_failed"), Some(0), "{log}");
}

/// `qcic-monitor check` shows each channel's grouping and each template
/// as the sample notification renders it; a broken template file stops
/// it with the configuration file, the channel, the template file and
/// the line.
#[test]
fn check_shows_each_template_rendered_and_refuses_a_broken_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.toml");
    let template = dir.path().join("sms.json");
    std::fs::write(
        &template,
        "{\"to\": \"+440000000000\",\n \"message\": {{ headline }}}\n",
    )
    .unwrap();
    let config = format!(
        "[[job]]\nname = \"nightly\"\nevery = \"1d\"\n\n\
         [[notify]]\nname = \"chat\"\nkind = \"slack\"\nurl = \"https://hooks.slack.com/services/T/B/X\"\n\
         template = \"{{{{ headline }}}} on {{{{ host }}}}: {{{{ text }}}} after {{{{ duration_ms | duration }}}}\"\n\n\
         [[notify]]\nname = \"sms\"\nkind = \"webhook\"\nurl = \"https://sms.example.com/send\"\n\
         template_file = \"{}\"\n",
        template.display()
    );
    std::fs::write(&path, &config).unwrap();
    let check = || check(&path);
    let out = check();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("notify chat: digests: a group goes out 30s after its first notification"),
        "{text}"
    );
    assert!(
        text.contains("notify sms: one message per notification"),
        "{text}"
    );
    assert!(
        text.contains("  | FAILED nightly-etl on db-1: disk full after 10m"),
        "{text}"
    );
    assert!(
        text.contains(r#"  | {"message":"FAILED nightly-etl","to":"+440000000000"}"#),
        "{text}"
    );

    std::fs::write(
        &template,
        "{\"to\": \"+440000000000\",\n \"message\": {{ headlin }}}\n",
    )
    .unwrap();
    let out = check();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains(&format!("{}: notify[1].template_file", path.display())),
        "{err}"
    );
    assert!(err.contains("channel \"sms\""), "{err}");
    assert!(
        err.contains(&format!("{} line 2", template.display())),
        "{err}"
    );
}

/// Three jobs failing together reach Slack (its documented stand-in) as
/// one digest: the counts, then a line per incident, escaped; and a
/// webhook with `group_wait` set gets them as one JSON document with each
/// notification whole.
#[test]
fn a_burst_reaches_slack_and_a_webhook_as_one_digest_each() {
    const SECRET_PATH: &str = "/services/T000/B000/DIGESTPATH";
    let dir = tempfile::tempdir().unwrap();
    let slack_out = dir.path().join("slack.jsonl");
    let held = reserve_port();
    let slack_port = held.port();
    let _slack = service(
        "slack_server.py",
        held,
        &[slack_out.to_str().unwrap(), SECRET_PATH, "0"],
    );
    let hook_out = dir.path().join("hook.jsonl");
    let held = reserve_port();
    let hook_port = held.port();
    let _hook = webhook_server(held, &hook_out, 0);
    let mut body = String::new();
    for job in ["extract", "load", "report"] {
        body.push_str(&format!("[[job]]\nname = \"{job}\"\nevery = \"1h\"\n"));
    }
    body.push_str(&format!(
        "\n[[notify]]\nkind = \"slack\"\ngroup_wait = \"2s\"\nurl = \"http://127.0.0.1:{slack_port}{SECRET_PATH}\"\n\
         \n[[notify]]\nkind = \"webhook\"\ngroup_wait = \"2s\"\nurl = \"http://127.0.0.1:{hook_port}/hook\"\n"
    ));
    let monitor = Monitor::start("watcher-a", &body);
    let sender = Client::new([monitor.listen.clone()]).unwrap();
    for job in ["extract", "load", "report"] {
        sender.fail(job, Some(1), "upstream <gone>").unwrap();
    }
    assert!(wait_until(qcic_testkit::WAIT, || !json_lines(&slack_out)
        .is_empty()
        && !json_lines(&hook_out).is_empty()));
    // Anything split off would have come by now.
    std::thread::sleep(Duration::from_secs(3));
    let slack = json_lines(&slack_out);
    assert_eq!(slack.len(), 1, "{slack:?}");
    let text = slack[0]["text"].as_str().unwrap();
    assert!(
        text.starts_with("qcic: 3 notifications: 3 failed\n"),
        "{text}"
    );
    for job in ["extract", "load", "report"] {
        assert!(
            text.contains(&format!("FAILED {job} - incident ")),
            "{text}"
        );
    }
    assert!(text.contains("upstream &lt;gone&gt;"), "{text}");
    let hook = json_lines(&hook_out);
    assert_eq!(hook.len(), 1, "{hook:?}");
    let digest = &hook[0]["body"];
    assert_eq!(digest["digest"], true);
    assert_eq!(digest["count"], 3);
    assert_eq!(digest["by_event"]["failed"], 3);
    let jobs: Vec<&str> = digest["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["job"].as_str().unwrap())
        .collect();
    assert_eq!(jobs, ["extract", "load", "report"]);
    let log = monitor.stop();
    assert_eq!(counter(&log, "digests"), Some(2), "{log}");
    assert_eq!(counter(&log, "delivered"), Some(6), "{log}");
}

/// A watcher restarted (`kill -9`) while an incident is open: it takes
/// the alert back from the state database and posts it again at once, so
/// Alertmanager never closes an incident the watcher still has open.
#[test]
fn alertmanager_keeps_an_open_alert_firing_across_a_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("received.jsonl");
    let held = reserve_port();
    let hook_port = held.port();
    let _receiver = webhook_server(held, &out, 0);
    let am = alertmanager(dir.path(), &format!("http://127.0.0.1:{hook_port}/hook"));
    let keys = format!("state = \"{}\"", dir.path().join("state.db").display());
    let body = format!(
        "[[job]]\nname = \"etl\"\nevery = \"1h\"\n\n\
         [[notify]]\nkind = \"alertmanager\"\nurl = \"http://{}\"\nresend = \"1s\"\n",
        am.addr
    );
    let first = Monitor::start_with("watcher-a", &keys, &body, &[]);
    let sender = Client::new([first.listen.clone()]).unwrap();
    sender.fail("etl", Some(2), "disk full").unwrap();
    let active = || {
        let (_, open) = qcic_testkit::http_get(&am.addr, "/api/v2/alerts?active=true");
        let open: serde_json::Value = serde_json::from_str(&open).unwrap_or_default();
        open.as_array()
            .map(|alerts| {
                alerts
                    .iter()
                    .filter(|a| a["labels"]["alertname"] == "qcic_failed")
                    .count()
            })
            .unwrap_or(0)
    };
    assert!(wait_until(qcic_testkit::WAIT, || active() == 1));
    std::thread::sleep(Duration::from_secs(1));
    drop(first);
    let second = Monitor::start_with("watcher-a", &keys, &body, &[]);
    // Past the endsAt of every post before the kill (4 s ahead).
    std::thread::sleep(Duration::from_secs(7));
    assert_eq!(active(), 1, "Alertmanager closed an incident still open");
    let resolved = json_lines(&out)
        .iter()
        .any(|l| l["body"]["status"] == "resolved");
    assert!(!resolved, "a false recovery reached the receiver");
    let sender = Client::new([second.listen.clone()]).unwrap();
    sender.start("etl").unwrap().success().unwrap();
    assert!(wait_until(qcic_testkit::WAIT, || active() == 0));
    second.stop();
}
