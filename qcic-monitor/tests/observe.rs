//! Seeing into the watcher: `qcic-monitor status` over the control socket,
//! the HTTP API and metrics, and the status page in a real headless browser.

#![expect(clippy::unwrap_used, reason = "tests: a panic is the failure report")]

use std::process::Command;
use std::time::Duration;

use qcic_sdk::Client;
use qcic_testkit::{Alerts, Monitor, http_get as get, qcic_bin, wait_until};

const BODY: &str = "[http]\nlisten = \"{http}\"\n\n\
    [[job]]\nname = \"nightly-etl\"\nevery = \"1s\"\ngrace = \"500ms\"\n\
    [[job]]\nname = \"backup\"\nevery = \"1h\"\n\n\
    [[notify]]\nkind = \"zmq\"\npublish = \"{publish}\"\n";

/// A monitor where nightly-etl was heard once and then went down.
fn monitor_with_a_down_job() -> Monitor {
    let monitor = Monitor::start("watcher-a", BODY);
    let mut alerts = Alerts::subscribe(&monitor.publish);
    let sender = Client::new([monitor.listen.clone()]).unwrap();
    sender.heartbeat("nightly-etl").unwrap();
    alerts.expect("alert.down.nightly-etl");
    monitor
}

#[test]
fn status_shows_every_job_with_its_state() {
    let monitor = monitor_with_a_down_job();
    let out = Command::new(env!("CARGO_BIN_EXE_qcic-monitor"))
        .args(["status", "--control"])
        .arg(&monitor.control)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8(out.stdout).unwrap();
    let line = |job: &str| {
        table
            .lines()
            .find(|l| l.starts_with(job))
            .unwrap()
            .to_owned()
    };
    assert!(table.starts_with("watcher watcher-a"), "{table}");
    let etl = line("nightly-etl");
    assert!(
        etl.contains(" down ") && etl.contains("heartbeat") && etl.contains(" down "),
        "{etl}"
    );
    let backup = line("backup");
    assert!(
        backup.contains(" waiting ") && backup.contains("never"),
        "{backup}"
    );
    monitor.stop();
}

/// A monitor that is not running: `status` says which socket it tried,
/// not a bare "No such file or directory".
#[test]
fn status_without_a_monitor_names_the_socket() {
    let dir = tempfile::tempdir().unwrap();
    let control = dir.path().join("nobody-home.sock");
    let config = dir.path().join("monitor.toml");
    std::fs::write(
        &config,
        format!(
            "[monitor]\nid = \"w\"\nlisten = [\"tcp://127.0.0.1:9\"]\nstate = \"off\"\ncontrol = \"{}\"\n\n[[job]]\nname = \"etl\"\nevery = \"1h\"\n",
            control.display()
        ),
    )
    .unwrap();
    let out = Command::new(qcic_testkit::monitor_bin())
        .args(["status", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(&control.display().to_string()) && err.contains("cannot reach the monitor"),
        "{err}"
    );
}

#[test]
fn the_api_and_metrics_tell_the_same_story() {
    let monitor = monitor_with_a_down_job();
    let (status, body) = get(&monitor.http, "/api/jobs");
    assert!(status.contains("200"), "{status}");
    let jobs: serde_json::Value = serde_json::from_str(&body).unwrap();
    let etl = jobs
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["name"] == "nightly-etl")
        .unwrap();
    assert_eq!(etl["state"], "down");
    assert_eq!(etl["last_kind"], "heartbeat");
    assert_eq!(etl["incidents"][0]["event"], "down");
    assert!(
        etl["history"].as_array().unwrap().len() >= 2,
        "heartbeat, then the notification"
    );

    let (_, body) = get(&monitor.http, "/api/incidents");
    let incidents: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(incidents["open"][0]["job"], "nightly-etl");
    assert_eq!(incidents["recent_notifications"][0]["event"], "down");
    assert_eq!(
        incidents["open"][0]["incident"],
        incidents["recent_notifications"][0]["incident"]
    );

    let (status, metrics) = get(&monitor.http, "/metrics");
    assert!(status.contains("200"));
    for line in [
        "qcic_messages_received_total{kind=\"heartbeat\"} 1",
        "qcic_jobs{state=\"down\"} 1",
        "qcic_jobs{state=\"waiting\"} 1",
        "qcic_frames_dropped_total{reason=\"malformed\"} 0",
        "qcic_notifications_raised_total 1",
        "qcic_peers_seen 0",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "missing {line:?} in\n{metrics}"
        );
    }
    assert!(
        metrics.lines().any(
            |l| l.starts_with("qcic_notifications_total{channel=\"notify[0] zmq")
                && l.ends_with("result=\"sent\"} 1")
        ),
        "{metrics}"
    );
    monitor.stop();
}

fn chromium() -> &'static str {
    for path in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] {
        if std::path::Path::new(path).exists() {
            return path;
        }
    }
    panic!("chromium is not installed: scripts/setup.sh installs Debian's chromium");
}

/// Loads the page in headless Chromium and returns the DOM after its
/// script ran.
fn rendered_dom(url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(["--virtual-time-budget=2000", "--dump-dom", url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn row<'a>(dom: &'a str, job: &str) -> &'a str {
    let start = dom.find(&format!("data-job=\"{job}\"")).unwrap();
    let tag_start = dom[..start].rfind("<tr").unwrap();
    let end = dom[start..].find("</tr>").unwrap() + start;
    &dom[tag_start..end]
}

#[test]
fn the_status_page_shows_a_down_job_as_down_in_a_real_browser() {
    let monitor = monitor_with_a_down_job();
    let dom = rendered_dom(&format!("http://{}/", monitor.http));
    let etl = row(&dom, "nightly-etl");
    assert!(etl.contains("data-state=\"down\""), "{etl}");
    assert!(etl.contains("class=\"state state-down\""), "{etl}");
    assert!(etl.contains(">down<"), "{etl}");
    assert!(row(&dom, "backup").contains("data-state=\"waiting\""));

    // The filter is the page's script at work: ?filter=etl hides the rest.
    let filtered = rendered_dom(&format!("http://{}/?filter=etl", monitor.http));
    let backup = row(&filtered, "backup");
    assert!(
        backup.starts_with("<tr") && backup.contains("hidden"),
        "{backup}"
    );
    assert!(!row(&filtered, "nightly-etl").contains("hidden"));

    // And it changes with the watcher's view: nightly-etl comes back up.
    let sender = Client::new([monitor.listen.clone()]).unwrap();
    sender.heartbeat("nightly-etl").unwrap();
    assert!(wait_until(Duration::from_secs(10), || {
        let (_, body) = get(&monitor.http, "/api/jobs");
        body.contains("\"state\":\"up\"")
    }));
    let dom = rendered_dom(&format!("http://{}/", monitor.http));
    assert!(row(&dom, "nightly-etl").contains("data-state=\"up\""));
    monitor.stop();
}

/// The newcomer's story from the README: wrap a crontab line with `qcic
/// run`, see the job go green on the status page, then red when the command
/// fails, and read it in /metrics.
#[test]
fn a_job_wrapped_with_qcic_run_goes_green_then_red() {
    let monitor = Monitor::start(
        "watcher-a",
        "[http]\nlisten = \"{http}\"\n\n[[job]]\nname = \"cron-line\"\nevery = \"1h\"\n\n\
         [[notify]]\nkind = \"zmq\"\npublish = \"{publish}\"\n",
    );
    let mut alerts = Alerts::subscribe(&monitor.publish);
    let run = |script: &str| {
        Command::new(qcic_bin())
            .args(["run", "--job", "cron-line", "--", "sh", "-c", script])
            .env("QCIC_ENDPOINTS", &monitor.listen)
            .output()
            .unwrap()
    };
    assert!(run("echo all good").status.success());
    assert!(wait_until(Duration::from_secs(10), || {
        get(&monitor.http, "/api/jobs")
            .1
            .contains("\"state\":\"up\"")
    }));
    let dom = rendered_dom(&format!("http://{}/", monitor.http));
    assert!(row(&dom, "cron-line").contains("state-up"), "green");

    assert_eq!(run("echo disk full >&2; exit 7").status.code(), Some(7));
    let failed = alerts.expect("alert.failed.cron-line");
    assert_eq!(failed["exit_code"], 7);
    assert!(failed["text"].as_str().unwrap().contains("disk full"));
    let dom = rendered_dom(&format!("http://{}/", monitor.http));
    let row = row(&dom, "cron-line");
    assert!(row.contains("state-failed"), "red: {row}");
    assert!(
        row.contains("disk full"),
        "the history shows the failure text"
    );

    let (_, metrics) = get(&monitor.http, "/metrics");
    for line in [
        "qcic_messages_received_total{kind=\"start\"} 2",
        "qcic_messages_received_total{kind=\"success\"} 1",
        "qcic_messages_received_total{kind=\"fail\"} 1",
        "qcic_jobs{state=\"failed\"} 1",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "missing {line:?} in\n{metrics}"
        );
    }
    monitor.stop();
}

#[test]
fn a_silence_hides_an_incident_then_releases_it() {
    let monitor = Monitor::start(
        "watcher-a",
        "[[job]]\nname = \"etl\"\nevery = \"1s\"\n\n[[notify]]\nkind = \"zmq\"\npublish = \"{publish}\"\n",
    );
    let mut alerts = Alerts::subscribe(&monitor.publish);
    monitor.ctl(&[
        "silence",
        "add",
        "--job",
        "etl",
        "--for",
        "4s",
        "--reason",
        "DB upgrade",
    ]);
    let list = monitor.ctl(&["silence", "list"]);
    assert!(
        list.contains("etl") && list.contains("DB upgrade"),
        "{list}"
    );
    let status = monitor.ctl(&["status"]);
    assert!(status.contains("DB upgrade"), "{status}");
    // The job is down after 1 s, but nothing may go out while silenced.
    assert!(wait_until(Duration::from_secs(10), || monitor
        .ctl(&["status"])
        .contains(" down ")));
    let down = alerts.expect("alert.down.etl");
    let status = monitor.ctl(&["status"]);
    assert!(
        !status.contains("DB upgrade"),
        "the silence is over when the alert comes: {status}"
    );
    assert!(
        down["text"]
            .as_str()
            .unwrap()
            .contains("held back by a silence")
    );

    // pause / resume: the held-back incident is notified on resume.
    let sender = Client::new([monitor.listen.clone()]).unwrap();
    sender.heartbeat("etl").unwrap();
    alerts.expect("alert.recovered.etl");
    monitor.ctl(&["pause", "--job", "etl", "--reason", "moving racks"]);
    assert!(wait_until(Duration::from_secs(10), || monitor
        .ctl(&["status"])
        .contains(" down ")));
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !alerts
            .seen
            .iter()
            .filter(|(t, _)| t == "alert.down.etl")
            .skip(1)
            .any(|_| true),
        "nothing while paused"
    );
    monitor.ctl(&["resume", "--job", "etl"]);
    let again = alerts.expect("alert.down.etl");
    assert_ne!(again["incident"], down["incident"]);
    monitor.stop();
}

/// Every state a job can be in is counted by `qcic_jobs`: before, the
/// gauge named six states, so `late`, `stalled` and `too_fast` jobs
/// vanished from it.
#[test]
fn the_jobs_gauge_counts_every_job_in_every_state() {
    let jobs = [
        ("waiting", "every = \"1h\""),
        ("up", "every = \"1h\""),
        ("running", "every = \"1h\""),
        ("down", "every = \"2s\"\ngrace = \"0s\""),
        ("failed", "every = \"1h\""),
        (
            "late",
            "every = \"2s\"\ngrace = \"1h\"\nstart_within = \"1s\"",
        ),
        ("overrun", "every = \"1h\"\nmax_runtime = \"1s\""),
        ("stalled", "every = \"1h\"\nstall_after = \"1s\""),
        ("too_fast", "every = \"1h\"\nmin_runtime = \"1h\""),
    ];
    let body: String = jobs
        .iter()
        .map(|(name, keys)| format!("[[job]]\nname = \"{name}\"\n{keys}\n\n"))
        .collect();
    let monitor = Monitor::start(
        "watcher-a",
        &format!("[http]\nlisten = \"{{http}}\"\n\n{body}"),
    );
    let client = Client::new([monitor.listen.clone()]).unwrap();
    client.heartbeat("up").unwrap();
    let _running = client.start("running").unwrap();
    client.fail("failed", Some(1), "broken").unwrap();
    let _overrun = client.start("overrun").unwrap();
    let _stalled = client.start("stalled").unwrap();
    client.start("too_fast").unwrap().success().unwrap();
    let state_of = |jobs: &serde_json::Value, name: &str| {
        jobs.as_array()
            .unwrap()
            .iter()
            .find(|j| j["name"] == name)
            .map(|j| j["state"].as_str().unwrap_or("").to_owned())
    };
    let settled = wait_until(Duration::from_secs(30), || {
        let (_, body) = get(&monitor.http, "/api/jobs");
        let now: serde_json::Value = serde_json::from_str(&body).unwrap();
        jobs.iter()
            .all(|(name, _)| state_of(&now, name).as_deref() == Some(*name))
    });
    let (_, body) = get(&monitor.http, "/api/jobs");
    let (_, metrics) = get(&monitor.http, "/metrics");
    monitor.stop();
    assert!(settled, "not every job reached its state: {body}");
    let total: u64 = metrics
        .lines()
        .filter(|l| l.starts_with("qcic_jobs{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(total, jobs.len() as u64, "{metrics}");
    for (name, _) in jobs {
        let line = format!("qcic_jobs{{state=\"{name}\"}} 1");
        assert!(
            metrics.lines().any(|l| l == line),
            "missing {line:?} in\n{metrics}"
        );
    }
}

/// A job run a few dozen times (by the SDK, and through `qcic run`, with
/// varied durations and failures) has a page, linked from the status page,
/// that a real browser renders: a bar per run in the SVG chart, failed
/// runs marked, the 7- and 30-day figures and the last outputs.
#[test]
fn a_jobs_page_charts_its_runs_in_a_real_browser() {
    let dir = tempfile::tempdir().unwrap();
    let keys = format!("state = \"{}\"", dir.path().join("state.db").display());
    let monitor = Monitor::start_with(
        "watcher-a",
        &keys,
        "[http]\nlisten = \"{http}\"\n\n[[job]]\nname = \"etl\"\nevery = \"1h\"\n",
        &[],
    );
    let sender = Client::new([monitor.listen.clone()]).unwrap();
    for i in 0..24u64 {
        let run = sender.start("etl").unwrap();
        std::thread::sleep(Duration::from_millis(20 + (i * 37) % 150));
        if i % 9 == 4 {
            run.fail_with_code(Some(2), &format!("run {i}: upstream gone"))
                .unwrap();
        } else {
            run.success_with_text(&format!("run {i}: loaded {} rows", i * 100))
                .unwrap();
        }
    }
    let qcic_run = |script: &str| {
        Command::new(qcic_bin())
            .args(["run", "--job", "etl", "--", "sh", "-c", script])
            .env("QCIC_ENDPOINTS", &monitor.listen)
            .output()
            .unwrap()
    };
    assert!(qcic_run("sleep 0.3; echo all good").status.success());
    assert_eq!(
        qcic_run("echo '<b>disk</b> full' >&2; exit 7")
            .status
            .code(),
        Some(7)
    );
    assert!(wait_until(Duration::from_secs(20), || {
        let (_, runs) = get(&monitor.http, "/api/jobs/etl/runs?limit=1000");
        serde_json::from_str::<serde_json::Value>(&runs)
            .is_ok_and(|r| r.as_array().is_some_and(|a| a.len() == 26))
    }));
    let status = rendered_dom(&format!("http://{}/", monitor.http));
    assert!(
        row(&status, "etl").contains("href=\"/job/etl\""),
        "linked from the status page"
    );
    let dom = rendered_dom(&format!("http://{}/job/etl", monitor.http));
    assert_eq!(dom.matches("<rect class=").count(), 26, "a bar per run");
    assert_eq!(
        dom.matches("<rect class=\"fail\"").count(),
        4,
        "three failed SDK runs and one qcic run"
    );
    assert!(dom.contains("last 7 days"), "{dom}");
    assert!(dom.contains("85 %"), "22 of 26 runs succeeded: {dom}");
    // The last output, escaped: qcic run's stderr tail.
    assert!(dom.contains("&lt;b&gt;disk&lt;/b&gt; full"), "{dom}");
    assert!(!dom.contains("<b>disk"), "{dom}");
    let (status, _) = get(&monitor.http, "/job/nope");
    assert!(status.contains(" 404"), "{status}");
    // For a person to look at: the page as a browser draws it.
    if let Some(path) = std::env::var_os("QCIC_SCREENSHOT") {
        let profile = tempfile::tempdir().unwrap();
        let shot = Command::new(chromium())
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(format!(
                "--screenshot={}",
                std::path::Path::new(&path).display()
            ))
            .args([
                "--window-size=1100,1000",
                &format!("http://{}/job/etl", monitor.http),
            ])
            .output()
            .unwrap();
        assert!(shot.status.success());
    }
    monitor.stop();
}

/// `/metrics` passes Prometheus's own linter (`promtool check metrics`,
/// Debian's `prometheus`), and has the per-job series batch-job alerts
/// are written against, bounded by `[http] metrics_jobs`.
#[test]
fn metrics_pass_promtool_and_carry_the_batch_job_series() {
    let monitor = Monitor::start(
        "watcher-a",
        "[http]\nlisten = \"{http}\"\nmetrics_jobs = 2\nrun_duration_buckets = [0.05, 1, 60]\n\n\
         [[job]]\nname = \"etl\"\nevery = \"1h\"\n\n[[job]]\nname = \"load\"\nevery = \"1h\"\n\n\
         [[job]]\nname = \"third\"\nevery = \"1h\"\n",
    );
    let sender = Client::new([monitor.listen.clone()]).unwrap();
    let run = sender.start("etl").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    run.success().unwrap();
    sender.start("etl").unwrap().fail("boom").unwrap();
    sender.start("load").unwrap().success().unwrap();
    // A sender whose host name holds a quote and a backslash: a label
    // value the format must escape, or every scrape is lost.
    let odd = Client::builder()
        .endpoint(monitor.listen.clone())
        .host("db\"1\\x")
        .build()
        .unwrap();
    odd.heartbeat("load").unwrap();
    assert!(wait_until(Duration::from_secs(10), || {
        get(&monitor.http, "/metrics")
            .1
            .contains("host=\"db\\\"1\\\\x\"")
    }));
    assert!(wait_until(Duration::from_secs(10), || {
        get(&monitor.http, "/metrics")
            .1
            .contains("qcic_job_last_run_success{job=\"etl\"} 0")
    }));
    let (_, metrics) = get(&monitor.http, "/metrics");
    let fed = |program: &std::path::Path, args: &[&str]| {
        let mut child = Command::new(program)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("{} (scripts/setup.sh installs it): {e}", program.display())
            });
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), metrics.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    };
    // The OpenMetrics parser of the Prometheus project's Python client:
    // strict, and no code of ours.
    let parsed = fed(
        &qcic_testkit::python(),
        &[
            "-c",
            "import sys\nfrom prometheus_client.openmetrics.parser import text_string_to_metric_families as parse\nprint(len(list(parse(sys.stdin.read()))))",
        ],
    );
    assert!(
        parsed.status.success(),
        "not OpenMetrics: {}\n{metrics}",
        String::from_utf8_lossy(&parsed.stderr)
    );
    // promtool parses the older text format, where a counter's HELP names
    // its `_total` series: on OpenMetrics (whose counter family drops
    // `_total`) it says "no help text" for each counter, and nothing else
    // is allowed. A parse error (exit 1) or any other lint fails.
    let linted = fed(std::path::Path::new("promtool"), &["check", "metrics"]);
    let said = String::from_utf8_lossy(&linted.stdout).into_owned()
        + &String::from_utf8_lossy(&linted.stderr);
    assert_ne!(
        linted.status.code(),
        Some(1),
        "promtool could not parse it: {said}\n{metrics}"
    );
    let other: Vec<&str> = said
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter(|l| {
            !(l.ends_with("_total no help text")
                && metrics.contains(&format!(
                    "# TYPE {} counter",
                    l.split("_total").next().unwrap_or("")
                )))
        })
        .collect();
    assert!(other.is_empty(), "promtool: {other:?}\n{metrics}");
    for line in [
        "qcic_job_last_run_success{job=\"load\"} 1",
        "qcic_job_up{job=\"etl\"} 0",
        "qcic_job_up{job=\"load\"} 1",
        "qcic_run_duration_seconds_count{job=\"etl\"} 2",
        "qcic_run_duration_seconds_bucket{le=\"+Inf\",job=\"etl\"} 2",
        // Past metrics_jobs = 2: the third job's series are left out.
        "qcic_metrics_jobs_left_out 1",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "missing {line:?} in\n{metrics}"
        );
    }
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("qcic_job_last_success_timestamp_seconds{job=\"etl\"} ")),
        "{metrics}"
    );
    assert!(!metrics.contains("job=\"third\""), "{metrics}");
    assert!(metrics.trim_end().ends_with("# EOF"), "OpenMetrics ends so");
    monitor.stop();
}
