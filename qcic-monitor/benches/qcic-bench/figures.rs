//! The figures of docs/BENCHMARKS.md, one function each.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, UNIX_EPOCH};

use qcic_sdk::Kind;
use serde_json::{Value, json};

use qcic_testkit::{
    dead_endpoint, idle_flood, json_lines, reserve_port, rss_kib, target_dir, workspace_root,
};

use crate::harness::{declaration, job_name, message, percentile, spread, wall_ns};
use crate::send::{Senders, sub};
use crate::serve::{Watcher, WatcherSpec};

pub(crate) struct Plan {
    pub(crate) quick: bool,
    pub(crate) runs: usize,
    pub(crate) messages: usize,
    pub(crate) big_jobs: usize,
    pub(crate) detect_jobs: usize,
    pub(crate) detect_rounds: usize,
    pub(crate) email_jobs: usize,
    pub(crate) calls: usize,
}

/// Messages per second through a bare PUSH -> PULL loop (the ceiling).
fn bare_rate(senders: usize, total: usize, curve: bool) -> f64 {
    let ctx = zmq::Context::new();
    let pull = ctx.socket(zmq::PULL).unwrap();
    let mut server_public = None;
    if curve {
        let (public, secret) = qcic_sdk::new_curve_pair().unwrap();
        pull.set_curve_server(true).unwrap();
        pull.set_curve_secretkey(&secret).unwrap();
        server_public = Some(z85::encode(public));
    }
    // libzmq picks the port and keeps it.
    pull.bind("tcp://127.0.0.1:*").unwrap();
    let ep = pull.get_last_endpoint().unwrap().unwrap();
    let expect = senders * (total / senders + 2);
    let s = Senders::spawn(senders, &ep, 1000, total, server_public.as_deref());
    let mut buf = [0u8; 512];
    for _ in 0..expect {
        pull.recv_into(&mut buf, 0).unwrap();
    }
    let end = wall_ns();
    let start = s.finish();
    (senders * (total / senders)) as f64 / ((end - start) as f64 / 1e9)
}

/// Messages per second the watcher decodes and applies.
fn monitor_rate(senders: usize, jobs: usize, total: usize, state: bool, curve: bool) -> f64 {
    monitor_rate_of(senders, jobs, total, state, curve, "heartbeat")
}

/// [`monitor_rate`] for messages of `kind` (`heartbeat`, or `runs`: a
/// start and its success, each run a row of history).
fn monitor_rate_of(
    senders: usize,
    jobs: usize,
    total: usize,
    state: bool,
    curve: bool,
    kind: &str,
) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let keys = curve.then(|| qcic_sdk::new_curve_pair().unwrap());
    let w = Watcher::start(&WatcherSpec {
        jobs,
        state: state.then(|| dir.path().join("state.db")),
        curve_secret: keys.map(|(_, secret)| z85::encode(secret)),
        ..WatcherSpec::default()
    });
    let (_ctx, alerts) = sub(&w.publish, "alert.failed.sentinel-");
    let server_public = keys.map(|(public, _)| z85::encode(public));
    let s = Senders::spawn_kind(
        senders,
        &w.listen,
        jobs,
        total,
        server_public.as_deref(),
        (kind, 0),
    );
    for _ in 0..senders {
        alerts.recv_multipart(0).expect("a sentinel alert");
    }
    let end = wall_ns();
    let start = s.finish();
    drop(w);
    (senders * (total / senders)) as f64 / ((end - start) as f64 / 1e9)
}

pub(crate) fn ingest(plan: &Plan, out: &mut Vec<Value>) {
    let total = plan.messages;
    println!(
        "\n1. Ingest: heartbeats decoded and applied per second ({total} per run, median of {} (min..max))",
        plan.runs
    );
    let repeat = |f: &dyn Fn() -> f64| spread((0..plan.runs).map(|_| f()).collect());
    let bare1 = repeat(&|| bare_rate(1, total, false));
    let bare4 = repeat(&|| bare_rate(4, total, false));
    let bare_curve = repeat(&|| bare_rate(1, total, true));
    let row = |out: &mut Vec<Value>,
               name: &str,
               senders: usize,
               jobs: usize,
               state: bool,
               curve: bool,
               bare: (f64, f64, f64),
               target: Option<f64>| {
        let (m, lo, hi) = repeat(&|| monitor_rate(senders, jobs, total, state, curve));
        let ratio = m / bare.0;
        let verdict = target.map_or(String::new(), |t| {
            format!(
                "target >= {t:.2}: {}",
                if ratio >= t { "met" } else { "MISSED" }
            )
        });
        println!(
            "   {name:<44} {m:>10.0}/s ({lo:.0}..{hi:.0})  bare {:>10.0}/s  ratio {ratio:.2}  {verdict}",
            bare.0
        );
        out.push(json!({"figure": "ingest", "case": name, "senders": senders, "jobs": jobs,
            "state_db": state, "curve": curve, "per_s": m, "min": lo, "max": hi,
            "bare_per_s": bare.0, "bare_min": bare.1, "bare_max": bare.2, "ratio": ratio, "target_ratio": target}));
    };
    println!(
        "   bare PUSH->PULL: 1 sender {:.0}/s ({:.0}..{:.0}), 4 senders {:.0}/s ({:.0}..{:.0}), 1 sender CURVE {:.0}/s ({:.0}..{:.0})",
        bare1.0,
        bare1.1,
        bare1.2,
        bare4.0,
        bare4.1,
        bare4.2,
        bare_curve.0,
        bare_curve.1,
        bare_curve.2
    );
    let big = plan.big_jobs;
    // (case, senders, jobs, state DB, CURVE, the bare loop it is set against, target ratio)
    let cases = [
        (
            "1 sender, 1 000 jobs".to_owned(),
            1,
            1000,
            false,
            false,
            bare1,
            Some(0.5),
        ),
        (
            "4 senders, 1 000 jobs".to_owned(),
            4,
            1000,
            false,
            false,
            bare4,
            Some(0.5),
        ),
        (
            format!("1 sender, {big} jobs"),
            1,
            big,
            false,
            false,
            bare1,
            Some(0.3),
        ),
        (
            format!("4 senders, {big} jobs"),
            4,
            big,
            false,
            false,
            bare4,
            Some(0.3),
        ),
        (
            "1 sender, 1 000 jobs, state DB on".to_owned(),
            1,
            1000,
            true,
            false,
            bare1,
            Some(0.3),
        ),
        (
            format!("1 sender, {big} jobs, state DB on"),
            1,
            big,
            true,
            false,
            bare1,
            Some(0.3),
        ),
        (
            "1 sender, 1 000 jobs, CURVE (vs bare CURVE)".to_owned(),
            1,
            1000,
            false,
            true,
            bare_curve,
            None,
        ),
    ];
    for (name, senders, jobs, state, curve, bare, target) in cases {
        row(out, &name, senders, jobs, state, curve, bare, target);
    }
    // Runs instead of heartbeats, with the state database: every start
    // and success pair is a row of run history, written in the store
    // thread's batches.
    let (m, lo, hi) = repeat(&|| monitor_rate_of(1, 1000, total, true, false, "runs"));
    println!(
        "   {:<44} {m:>10.0}/s ({lo:.0}..{hi:.0})  (messages; half as many runs recorded)",
        "1 sender, 1 000 jobs, runs, state DB on"
    );
    out.push(json!({"figure": "ingest", "case": "1 sender, 1 000 jobs, runs (start+success), state DB on",
        "senders": 1, "jobs": 1000, "state_db": true, "curve": false, "per_s": m, "min": lo, "max": hi}));
}

/// Per-call cost of `heartbeat` from Rust, in this process: the same
/// protocol as the C and Python programs.
fn rust_sender(up: &str, down: &str, calls: usize) -> Value {
    fn summary(v: &mut [f64]) -> Value {
        v.sort_by(f64::total_cmp);
        json!({"median_ns": percentile(v, 0.5), "p99_ns": percentile(v, 0.99), "calls": v.len()})
    }
    let calls = calls.max(4000);
    let mut t = vec![0f64; calls];
    let mut empty = vec![0f64; calls];
    for e in &mut empty {
        let t0 = Instant::now();
        *e = t0.elapsed().as_nanos() as f64;
    }
    let client = qcic_sdk::Client::new([up]).unwrap();
    for (i, slot) in t.iter_mut().enumerate() {
        if i % 1000 == 0 {
            client.flush(Duration::from_secs(5));
        }
        let t0 = Instant::now();
        let _ = client.heartbeat("nightly-etl1");
        *slot = t0.elapsed().as_nanos() as f64;
    }
    let up_summary = summary(&mut t);
    let dead = qcic_sdk::Client::new([down]).unwrap();
    let before = rss_kib(std::process::id());
    for slot in &mut t {
        let t0 = Instant::now();
        let _ = dead.heartbeat("nightly-etl1");
        *slot = t0.elapsed().as_nanos() as f64;
    }
    let after = rss_kib(std::process::id());
    let half = calls / 2;
    let full = summary(&mut t[half..]);
    let filling = summary(&mut t[..2000]);
    dead.close(Duration::from_millis(100));
    json!({"lang": "Rust", "clock": summary(&mut empty), "up": up_summary,
        "down_filling": filling, "down_full": full,
        "rss_kib_before": before, "rss_kib_after": after})
}

fn c_sender(up: &str, down: &str, calls: usize) -> Result<Value, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let built = Command::new(cargo)
        .args(["build", "--release", "-p", "qcic-ffi", "--lib"])
        .current_dir(workspace_root())
        .status()
        .map_err(|e| e.to_string())?;
    if !built.success() {
        return Err("cargo build -p qcic-ffi failed".into());
    }
    // Installed as a C user installs it: the program loads libqcic by its
    // SONAME, which only the install's links provide.
    let prefix = target_dir().join("qcic-bench-libqcic");
    qcic_testkit::install_libqcic(&prefix, &workspace_root().join("target/release"))?;
    let lib = prefix.join("lib");
    let exe = target_dir().join("qcic-heartbeat-bench");
    let cc = Command::new("gcc")
        .args(["-std=c11", "-O2", "-Wall", "-Wextra", "-Werror"])
        .arg("-I")
        .arg(workspace_root().join("include"))
        .arg(workspace_root().join("qcic-ffi/benches/heartbeat.c"))
        .arg("-L")
        .arg(&lib)
        .arg("-lqcic")
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .arg("-o")
        .arg(&exe)
        .status()
        .map_err(|e| format!("gcc: {e}"))?;
    if !cc.success() {
        return Err("gcc failed".into());
    }
    let out = Command::new(&exe)
        .args([up, down, &calls.to_string()])
        .output()
        .map_err(|e| e.to_string())?;
    serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("{e}: {}", String::from_utf8_lossy(&out.stderr)))
}

fn python_sender(up: &str, down: &str, calls: usize) -> Result<Value, String> {
    let python = std::env::var("QCIC_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| workspace_root().join(".venv/bin/python"));
    let out = Command::new(&python)
        .arg(workspace_root().join("qcic-py/benches/bench_heartbeat.py"))
        .args([up, down, &calls.to_string()])
        .output()
        .map_err(|e| format!("{}: {e}", python.display()))?;
    serde_json::from_slice(&out.stdout).map_err(|_| {
        format!(
            "no result (is qcic installed? pip install ./qcic-py): {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        )
    })
}

pub(crate) fn sender_cost(plan: &Plan, out: &mut Vec<Value>) {
    println!(
        "\n2. Sender cost: one heartbeat call, each call timed alone (ns; the clock's own cost shown apart)"
    );
    // A PULL draining everything, and an endpoint nobody listens on.
    let ctx = zmq::Context::new();
    let pull = ctx.socket(zmq::PULL).unwrap();
    pull.bind("tcp://127.0.0.1:*").unwrap();
    let up = pull.get_last_endpoint().unwrap().unwrap();
    std::thread::spawn(move || while pull.recv_bytes(0).is_ok() {});
    let dead = dead_endpoint();
    let down = &dead.endpoint;
    let results = [
        ("Rust", Ok(rust_sender(&up, down, plan.calls)), 500.0),
        ("C", c_sender(&up, down, plan.calls), 500.0),
        ("Python", python_sender(&up, down, plan.calls), 2000.0),
    ];
    println!(
        "   {:<7} {:>8} {:>8} | {:>8} {:>8} | {:>8} {:>8} | {:>8} {:>8} | {:>14} | target",
        "",
        "up med",
        "up p99",
        "fill med",
        "fill p99",
        "full med",
        "full p99",
        "clock",
        "",
        "RSS KiB"
    );
    for (lang, result, target) in results {
        match result {
            Ok(v) => {
                let g = |a: &str, b: &str| v[a][b].as_f64().unwrap_or(f64::NAN);
                let med = g("up", "median_ns");
                let flat = g("down_full", "median_ns") <= med * 1.5 + 50.0;
                println!(
                    "   {lang:<7} {:>8.0} {:>8.0} | {:>8.0} {:>8.0} | {:>8.0} {:>8.0} | {:>8.0} {:>8} | {:>6}->{:<6} | median <= {target:.0} ns: {}, flat when down: {}",
                    med,
                    g("up", "p99_ns"),
                    g("down_filling", "median_ns"),
                    g("down_filling", "p99_ns"),
                    g("down_full", "median_ns"),
                    g("down_full", "p99_ns"),
                    g("clock", "median_ns"),
                    "",
                    v["rss_kib_before"],
                    v["rss_kib_after"],
                    if med <= target { "met" } else { "MISSED" },
                    if flat { "yes" } else { "NO" },
                );
                let mut v = v;
                v["figure"] = json!("sender_cost");
                v["target_median_ns"] = json!(target);
                out.push(v);
            }
            Err(e) => {
                println!("   {lang:<7} not measured: {e}");
                out.push(json!({"figure": "sender_cost", "lang": lang, "error": e}));
            }
        }
    }
}

/// Latency from a deadline to each alert: `jobs` cron jobs (every 5 s, no
/// grace) are all heard, so all fall due at the same 5-second boundary;
/// each alert's arrival at a subscriber (or each email's arrival in the
/// SMTP server's Maildir) minus that boundary.
pub(crate) fn detection(plan: &Plan, out: &mut Vec<Value>) {
    println!("\n3. Detection: deadline -> alert, all jobs due in the same instant (ms)");
    let w = Watcher::start(&WatcherSpec {
        jobs: plan.detect_jobs,
        cron: Some("*/5 * * * * *".into()),
        ..WatcherSpec::default()
    });
    let (_c, alerts) = sub(&w.publish, "alert.down.job-");
    let ctx = zmq::Context::new();
    let push = ctx.socket(zmq::PUSH).unwrap();
    push.set_sndhwm(0).unwrap();
    push.connect(&w.listen).unwrap();
    let mut lat = Vec::new();
    for _ in 0..plan.detect_rounds {
        let boundary = heartbeat_all(&push, plan.detect_jobs);
        // Stamp each alert as it comes off the socket and decode after the
        // round: a subscriber slower than the watcher would measure itself.
        let mut arrived: Vec<(u128, Vec<u8>)> = Vec::with_capacity(plan.detect_jobs);
        while arrived.len() < plan.detect_jobs {
            let mut frames = alerts.recv_multipart(0).expect("a down alert");
            let at = wall_ns();
            let body = frames.pop().unwrap();
            // A job not yet heard at start-up (last_seen_ms nil, 0xc0) is
            // not this round's.
            let unheard = body
                .windows(13)
                .position(|w| w == b"last_seen_ms\xc0")
                .is_some();
            if !unheard {
                arrived.push((at, body));
            }
        }
        for (at, body) in arrived {
            let body: Value = rmp_serde::from_slice(&body).unwrap();
            assert!(!body["last_seen_ms"].is_null());
            lat.push((at as f64 - boundary as f64) / 1e6);
        }
    }
    drop(w);
    report_latency(
        out,
        "deadline -> PUB alert",
        plan.detect_jobs,
        plan.detect_rounds,
        lat,
        Some((2.0, 20.0)),
    );

    // Email: a real SMTP server (aiosmtpd) on loopback.
    let python = workspace_root().join(".venv/bin/python");
    let maildir = tempfile::tempdir().unwrap();
    for d in ["cur", "new", "tmp"] {
        std::fs::create_dir(maildir.path().join(d)).unwrap();
    }
    // Held until aiosmtpd binds it (with SO_REUSEADDR, as asyncio does).
    let reserved = reserve_port();
    let port = reserved.port();
    let smtp = Command::new(&python)
        .args([
            "-m",
            "aiosmtpd",
            "-n",
            "-l",
            &format!("127.0.0.1:{port}"),
            "-c",
            "aiosmtpd.handlers.Mailbox",
        ])
        .arg(maildir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let Ok(mut smtp) = smtp else {
        println!(
            "   email: not measured (no {}; run scripts/setup.sh)",
            python.display()
        );
        return;
    };
    let up = (0..500).any(|_| {
        std::thread::sleep(Duration::from_millis(20));
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    if !up {
        println!("   email: not measured (aiosmtpd did not start)");
        let _ = smtp.kill();
        return;
    }
    let w = Watcher::start(&WatcherSpec {
        jobs: plan.email_jobs,
        cron: Some("*/5 * * * * *".into()),
        smtp: Some(format!("smtp://127.0.0.1:{port}")),
        ..WatcherSpec::default()
    });
    let push = ctx.socket(zmq::PUSH).unwrap();
    push.connect(&w.listen).unwrap();
    let boundary = heartbeat_all(&push, plan.email_jobs);
    // Emails of this round: the ones written after the boundary (a job
    // not yet heard at start-up may have mailed before it).
    let mut lat: Vec<f64> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(600);
    while lat.len() < plan.email_jobs && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        lat = std::fs::read_dir(maildir.path().join("new"))
            .unwrap()
            .filter_map(|e| e.ok()?.metadata().ok()?.modified().ok())
            .map(|m| m.duration_since(UNIX_EPOCH).unwrap().as_nanos())
            .filter(|&m| m >= boundary)
            .map(|m| (m - boundary) as f64 / 1e6)
            .collect();
    }
    drop(w);
    report_latency(
        out,
        "deadline -> email accepted by SMTP",
        plan.email_jobs,
        1,
        lat,
        None,
    );
    email_digests(port, maildir.path(), out);
    let _ = smtp.kill();
    let _ = smtp.wait();
}

/// Alarms in a burst to email as digests: `DIGEST_JOBS` jobs fall due at
/// once, their channel groups with `group_wait = "0s"` (the first alarm
/// leaves alone at once, the burst behind it goes together). The time
/// from the deadline to the email that completes the list of incidents,
/// and how many emails carried them.
fn email_digests(port: u16, maildir: &std::path::Path, out: &mut Vec<Value>) {
    const DIGEST_JOBS: usize = 1000;
    let w = Watcher::start(&WatcherSpec {
        jobs: DIGEST_JOBS,
        cron: Some("*/5 * * * * *".into()),
        smtp: Some(format!("smtp://127.0.0.1:{port}")),
        extra: vec!["group_wait=0s".into()],
        ..WatcherSpec::default()
    });
    let ctx = zmq::Context::new();
    let push = ctx.socket(zmq::PUSH).unwrap();
    push.set_sndhwm(0).unwrap();
    push.connect(&w.listen).unwrap();
    let boundary = heartbeat_all(&push, DIGEST_JOBS);
    // Each email of this round (written after the boundary): when, and
    // the incidents it names.
    let read = || -> Vec<(u128, std::collections::HashSet<String>)> {
        let mut mails: Vec<(u128, std::collections::HashSet<String>)> =
            std::fs::read_dir(maildir.join("new"))
                .unwrap()
                .filter_map(|e| {
                    let e = e.ok()?;
                    let at = e.metadata().ok()?.modified().ok()?;
                    let at = at.duration_since(UNIX_EPOCH).ok()?.as_nanos();
                    let text = std::fs::read_to_string(e.path()).ok()?;
                    Some((at, text))
                })
                .filter(|(at, _)| *at >= boundary)
                .map(|(at, text)| (at, qcic_testkit::incidents_in(&text).into_iter().collect()))
                .collect();
        mails.sort_by_key(|(at, _)| *at);
        mails
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut mails = read();
    while mails.iter().map(|(_, ids)| ids.len()).sum::<usize>() < DIGEST_JOBS
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(200));
        mails = read();
    }
    drop(w);
    let mut seen = std::collections::HashSet::new();
    let mut last = None;
    for (at, ids) in &mails {
        seen.extend(ids.iter().cloned());
        if seen.len() >= DIGEST_JOBS {
            last = Some(*at);
            break;
        }
    }
    let Some(last) = last else {
        println!(
            "   email digests: {} of {DIGEST_JOBS} incidents arrived",
            seen.len()
        );
        out.push(json!({"figure": "email_digests", "error": "not every incident arrived"}));
        return;
    };
    let ms = (last - boundary) as f64 / 1e6;
    println!(
        "   {:<36} {DIGEST_JOBS} jobs: last incident delivered after {ms:.0} ms, in {} emails",
        "deadline -> email digests",
        mails.len()
    );
    out.push(
        json!({"figure": "email_digests", "jobs_due_at_once": DIGEST_JOBS,
        "last_incident_ms": ms, "emails": mails.len(), "group_wait": "0s"}),
    );
}

/// Heartbeats for every job, sent at least 1.5 s before a 5-second
/// boundary; returns that boundary (unix ns), when all of them fall due.
fn heartbeat_all(push: &zmq::Socket, jobs: usize) -> u128 {
    const PERIOD_MS: u128 = 5000;
    let now_ms = wall_ns() / 1_000_000;
    if PERIOD_MS - now_ms % PERIOD_MS < 1500 {
        std::thread::sleep(Duration::from_millis(
            u64::try_from(PERIOD_MS - now_ms % PERIOD_MS + 100).unwrap(),
        ));
    }
    let boundary_ms = (wall_ns() / 1_000_000 / PERIOD_MS + 1) * PERIOD_MS;
    for i in 0..jobs {
        push.send(message(Kind::Heartbeat, &job_name(i), 1, None).encode(), 0)
            .unwrap();
    }
    assert!(
        wall_ns() / 1_000_000 < boundary_ms - 200,
        "sending took too long"
    );
    boundary_ms * 1_000_000
}

fn report_latency(
    out: &mut Vec<Value>,
    name: &str,
    jobs: usize,
    rounds: usize,
    mut lat: Vec<f64>,
    target: Option<(f64, f64)>,
) {
    if lat.is_empty() {
        println!("   {name}: nothing arrived");
        return;
    }
    lat.sort_by(f64::total_cmp);
    let (med, p99, max) = (
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat[lat.len() - 1],
    );
    let verdict = target.map_or(String::new(), |(m, p)| {
        format!(
            "target median <= {m} ms: {}, p99 <= {p} ms: {}",
            if med <= m { "met" } else { "MISSED" },
            if p99 <= p { "met" } else { "MISSED" }
        )
    });
    println!(
        "   {name:<36} {jobs} jobs x {rounds}: min {:.2}  median {med:.2}  p99 {p99:.2}  max {max:.2}  ({} alerts)  {verdict}",
        lat[0],
        lat.len()
    );
    out.push(
        json!({"figure": "detection", "case": name, "jobs_due_at_once": jobs, "rounds": rounds,
        "min_ms": lat[0], "median_ms": med, "p99_ms": p99, "max_ms": max, "alerts": lat.len(),
        "target_median_ms": target.map(|t| t.0), "target_p99_ms": target.map(|t| t.1)}),
    );
}

/// Every job heard once, then the sentinel; returns when it was applied.
fn heartbeat_every_job(w: &Watcher, jobs: usize) {
    let (_ctx, alerts) = sub(&w.publish, "alert.failed.sentinel-");
    let s = Senders::spawn(1, &w.listen, jobs, jobs, None);
    alerts.recv_multipart(0).expect("the sentinel alert");
    s.finish();
}

pub(crate) fn memory(plan: &Plan, out: &mut Vec<Value>) {
    let n = plan.big_jobs;
    println!(
        "\n4. Memory per job: watcher RSS with {n} jobs, each heard once, minus RSS with none"
    );
    let rss = |jobs: usize| {
        let w = Watcher::start(&WatcherSpec {
            jobs,
            ..WatcherSpec::default()
        });
        heartbeat_every_job(&w, jobs);
        std::thread::sleep(Duration::from_millis(500));
        w.rss_kib()
    };
    let (empty, full) = (rss(0), rss(n));
    let per_job = (full.saturating_sub(empty) * 1024) as f64 / n as f64;
    println!(
        "   {empty} KiB with 0 jobs, {full} KiB with {n}: {per_job:.0} bytes per job  target <= 200: {}",
        if per_job <= 200.0 { "met" } else { "MISSED" }
    );
    out.push(
        json!({"figure": "memory", "jobs": n, "rss_kib_empty": empty, "rss_kib_full": full,
        "bytes_per_job": per_job, "target_bytes_per_job": 200}),
    );
}

/// Memory per idle connection on the ingest port: watcher RSS with `n`
/// connections that completed the ZMTP handshake and send nothing, minus
/// RSS with none; NULL and CURVE (no allow-list: any key gets in).
pub(crate) fn idle_connections(plan: &Plan, out: &mut Vec<Value>) {
    let n: usize = if plan.quick { 100 } else { 2000 };
    // This process holds the connections' descriptors (two per socket).
    if let Ok((_, hard)) =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
    {
        let _ =
            nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, hard, hard);
    }
    println!(
        "\n9. Memory per idle ingest connection: watcher RSS with {n} idle connections minus RSS with none"
    );
    for curve in [false, true] {
        let keys = curve.then(|| qcic_sdk::new_curve_pair().unwrap());
        let w = Watcher::start(&WatcherSpec {
            jobs: 10,
            curve_secret: keys.map(|(_, secret)| z85::encode(secret)),
            ..WatcherSpec::default()
        });
        std::thread::sleep(Duration::from_millis(500));
        let empty = w.rss_kib();
        let fds = |w: &Watcher| {
            std::fs::read_dir(format!("/proc/{}/fd", w.child.id())).map_or(0, Iterator::count)
        };
        let before = fds(&w);
        // From ten loopback addresses: one address may hold only 256.
        let sources: Vec<String> = (2..12).map(|k| format!("127.0.0.{k}")).collect();
        let sources: Vec<&str> = sources.iter().map(String::as_str).collect();
        let held = idle_flood(&w.listen, &sources, n, keys.map(|(public, _)| public));
        // Handshakes done (well within the 5 s handshake limit), nothing sent.
        std::thread::sleep(Duration::from_secs(3));
        let full = w.rss_kib();
        // Each connection is one descriptor in the watcher.
        let open = fds(&w).saturating_sub(before);
        drop(held);
        w.stop();
        let per = (full.saturating_sub(empty)) as f64 * 1024.0 / open.max(1) as f64;
        let mechanism = if curve { "CURVE" } else { "NULL" };
        println!(
            "   {mechanism:<6} {per:>8.0} bytes per connection  ({open} of {n} held; RSS {empty} -> {full} KiB)"
        );
        out.push(json!({"figure": "idle_connections", "mechanism": mechanism, "connections": n,
            "held": open, "bytes_per_connection": per, "rss_kib_empty": empty, "rss_kib_full": full}));
    }
}

pub(crate) fn wire(out: &mut Vec<Value>) {
    println!("\n5. Wire size (12-character job, 13-character host, current timestamps)");
    let text: String = "x".repeat(200);
    let cases = [
        (
            "heartbeat",
            message(Kind::Heartbeat, "nightly-etl1", 1, None),
            Some(60),
        ),
        ("start", message(Kind::Start, "nightly-etl1", 1, None), None),
        (
            "declare (every 1d, grace, max_runtime)",
            declaration("nightly-etl1", 1),
            None,
        ),
        (
            "fail, 200-character text",
            message(Kind::Fail, "nightly-etl1", 1, Some(&text)),
            None,
        ),
    ];
    for (name, m, target) in cases {
        let bytes = m.encode().len();
        let verdict = target.map_or(String::new(), |t| {
            format!(
                "target <= {t}: {}",
                if bytes <= t { "met" } else { "MISSED" }
            )
        });
        println!("   {name:<28} {bytes:>4} bytes  {verdict}");
        out.push(
            json!({"figure": "wire", "message": name, "bytes": bytes, "target_bytes": target}),
        );
    }
}

/// Declarations at the watcher: `n` jobs declare themselves to a watcher
/// configured with none (each a new job), then declare themselves again
/// (the periodic re-declaration: nothing changes), then send a heartbeat
/// each; the time from the first message to the sentinel's alert, per
/// message. One sender process: the watcher's cost, not the senders'.
pub(crate) fn declarations(plan: &Plan, out: &mut Vec<Value>) {
    let n = plan.big_jobs.min(100_000);
    println!("\n10. Declarations: {n} jobs declare themselves to a watcher configured with none");
    let w = Watcher::start(&WatcherSpec {
        jobs: 0,
        extra: vec!["declare=1".into()],
        ..WatcherSpec::default()
    });
    let mut per = Vec::new();
    for (round, (what, kind)) in [
        ("new job", "declare"),
        ("unchanged", "declare"),
        ("heartbeat of a declared job", "heartbeat"),
    ]
    .into_iter()
    .enumerate()
    {
        let (_ctx, alerts) = sub(&w.publish, "alert.failed.sentinel-");
        let s = Senders::spawn_kind(1, &w.listen, n, n, None, (kind, round));
        if alerts.recv_multipart(0).is_err() {
            panic!(
                "no sentinel alert ({what}); the watcher's log:\n{}",
                w.log()
            );
        }
        let end = wall_ns();
        let start = s.finish();
        let us = (end - start) as f64 / 1000.0 / n as f64;
        println!("   {what:<28} {us:>7.2} µs each ({:.0} /s)", 1e6 / us);
        per.push((what, us));
        out.push(
            json!({"figure": "declarations", "message": what, "jobs": n, "us_per_message": us}),
        );
    }
    let rss = w.rss_kib();
    println!("   watcher RSS with {n} declared jobs: {rss} KiB");
    out.push(json!({"figure": "declarations", "message": "rss", "jobs": n, "rss_kib": rss}));
}

pub(crate) fn startup(plan: &Plan, out: &mut Vec<Value>) {
    let n = plan.big_jobs;
    println!("\n6. Start-up: {n} jobs with state in the database, from exec to answering");
    let dir = tempfile::tempdir().unwrap();
    let spec = WatcherSpec {
        jobs: n,
        state: Some(dir.path().join("state.db")),
        ..WatcherSpec::default()
    };
    let cold = Watcher::start(&spec);
    let cold_after = cold.ready_after;
    heartbeat_every_job(&cold, n);
    cold.stop(); // saves every job, then exits
    let size = std::fs::metadata(dir.path().join("state.db")).map_or(0, |m| m.len())
        + std::fs::metadata(dir.path().join("state.db-wal")).map_or(0, |m| m.len());
    let warm = Watcher::start(&spec);
    let restored = warm
        .log()
        .lines()
        .find(|l| l.contains("job state restored"))
        .and_then(|l| {
            l.split("jobs=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse::<usize>()
                .ok()
        })
        .unwrap_or(0);
    println!(
        "   empty database {:.2} s; with {restored} job records ({:.0} MB) {:.2} s",
        cold_after.as_secs_f64(),
        size as f64 / 1e6,
        warm.ready_after.as_secs_f64()
    );
    out.push(
        json!({"figure": "startup", "jobs": n, "restored": restored, "db_bytes": size,
        "empty_db_s": cold_after.as_secs_f64(), "full_db_s": warm.ready_after.as_secs_f64()}),
    );
}

/// Farm takeover: two watchers A and B gossiping; A is SIGKILLed, then the
/// job (heartbeats every 200 ms to both) stops. Measured on B's alert
/// stream: kill -> `peer_down`, and the job's deadline -> `down`; both
/// against what the configuration makes them wait (dead_after + the
/// no-peer hold of peer_timeout; the hold alone). Twice: the stopped job
/// alone, and with another job still heard. The survivor holds an absence
/// alarm only when it has heard no sender for `dead_after` (then it may be
/// the one cut off); here it heard the job until it stopped, so it sends
/// at the deadline either way.
pub(crate) fn takeover(plan: &Plan, out: &mut Vec<Value>) {
    // (gossip, dead_after, peer_timeout, every) in ms.
    let (gossip, dead, timeout, every): (u32, u32, u32, u32) = if plan.quick {
        (100, 1000, 1000, 1000)
    } else {
        (500, 4000, 5000, 2000)
    };
    println!(
        "\n7. Farm takeover (gossip {gossip} ms, dead_after {dead} ms, peer_timeout {timeout} ms, job every {every} ms)"
    );
    // Bound by chitchat, without SO_REUSEADDR: no reservation can hold
    // these, so they come from outside the kernel's ephemeral range.
    let udp = qcic_testkit::free_port;
    let mut peer_down_ms = Vec::new();
    let mut down_ms = Vec::new();
    let mut down_hearing_ms = Vec::new();
    for run in 0..plan.runs * 2 {
        let hears_others = run % 2 == 1;
        let (ga, gb) = (udp(), udp());
        let spec = |id: &str, me: u16, peer: &str, other: u16| WatcherSpec {
            jobs: 2,
            extra: vec![
                format!("id={id}"),
                format!("every_ms={every}"),
                format!("gossip=127.0.0.1:{me}"),
                format!("peer_id={peer}"),
                format!("peer_gossip=127.0.0.1:{other}"),
                format!("gossip_ms={gossip}"),
                format!("dead_after_ms={dead}"),
                format!("peer_timeout_ms={timeout}"),
            ],
            ..WatcherSpec::default()
        };
        let a = Watcher::start(&spec("a", ga, "b", gb));
        let b = Watcher::start(&spec("b", gb, "a", ga));
        for w in [&a, &b] {
            let t = Instant::now();
            while !w.log().contains("a farm peer is reachable") {
                assert!(
                    t.elapsed() < Duration::from_secs(60),
                    "no peer: {}",
                    w.log()
                );
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let (_ctx, alerts) = sub(&b.publish, "alert.");
        // The job: heartbeats to both watchers until told to stop.
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let end = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let endpoints = [a.listen.clone(), b.listen.clone()];
        let (flag, ended) = (std::sync::Arc::clone(&stop), std::sync::Arc::clone(&end));
        let job = std::thread::spawn(move || {
            let ctx = zmq::Context::new();
            let pushes: Vec<zmq::Socket> = endpoints
                .iter()
                .map(|e| {
                    let s = ctx.socket(zmq::PUSH).unwrap();
                    s.set_linger(0).unwrap();
                    s.connect(e).unwrap();
                    s
                })
                .collect();
            let mut last = 0u128;
            let mut seq = 0;
            while !ended.load(std::sync::atomic::Ordering::SeqCst) {
                let stopped = flag.load(std::sync::atomic::Ordering::SeqCst);
                let mut jobs = Vec::new();
                if !stopped {
                    jobs.push(job_name(0));
                }
                if hears_others {
                    jobs.push(job_name(1));
                }
                for name in jobs {
                    seq += 1;
                    let frame = message(Kind::Heartbeat, &name, seq, None).encode();
                    for p in &pushes {
                        let _ = p.send(&frame, zmq::DONTWAIT);
                    }
                }
                if !stopped {
                    last = wall_ns();
                }
                if stopped && !hears_others {
                    break;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            last
        });
        std::thread::sleep(Duration::from_millis(u64::from(every) * 2));
        let killed = wall_ns();
        drop(a); // SIGKILL
        let wait_for = |prefix: &str| loop {
            let topic = alerts.recv_bytes(0).unwrap();
            let _body = alerts.recv_bytes(0).unwrap();
            if topic.starts_with(prefix.as_bytes()) {
                return wall_ns();
            }
        };
        let peer_down = wait_for("alert.peer_down.");
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let down = wait_for(&format!("alert.down.{}", job_name(0)));
        end.store(true, std::sync::atomic::Ordering::SeqCst);
        let last = job.join().unwrap();
        let deadline = last + u128::from(every) * 1_000_000;
        peer_down_ms.push((peer_down - killed) as f64 / 1e6);
        let waited = (down.saturating_sub(deadline)) as f64 / 1e6;
        if hears_others {
            down_hearing_ms.push(waited);
        } else {
            down_ms.push(waited);
        }
        drop(b);
    }
    let (pd, pd_lo, pd_hi) = spread(peer_down_ms);
    let (dn, dn_lo, dn_hi) = spread(down_ms);
    let (dh, dh_lo, dh_hi) = spread(down_hearing_ms);
    println!(
        "   kill -> peer_down on the survivor   median {pd:.0} ms ({pd_lo:.0}..{pd_hi:.0}); configured waits {} ms",
        dead + timeout
    );
    println!(
        "   deadline -> down from the survivor  median {dn:.0} ms ({dn_lo:.0}..{dn_hi:.0}); no-sender hold {timeout} ms (its only job)"
    );
    println!(
        "   ... with another job heard too       median {dh:.0} ms ({dh_lo:.0}..{dh_hi:.0}); target <= one gossip round, {gossip} ms"
    );
    out.push(json!({"figure": "takeover", "gossip_ms": gossip, "dead_after_ms": dead,
        "peer_timeout_ms": timeout, "every_ms": every,
        "kill_to_peer_down_ms": pd, "kill_to_peer_down_min_ms": pd_lo, "kill_to_peer_down_max_ms": pd_hi,
        "deadline_to_down_ms": dn, "deadline_to_down_min_ms": dn_lo, "deadline_to_down_max_ms": dn_hi,
        "deadline_to_down_hearing_others_ms": dh, "deadline_to_down_hearing_others_min_ms": dh_lo,
        "deadline_to_down_hearing_others_max_ms": dh_hi}));
}

/// A webhook notification that keeps failing (HTTP 500 at once) and one
/// whose server never answers are retried for 15 minutes; meanwhile other
/// jobs' alarms on the same channel must go out as fast as with no
/// poisoned notification at all. Latency: `fail` sent -> the webhook server
/// has the request (tests/bad_servers.py stamps its arrival).
pub(crate) fn poisoned(plan: &Plan, out: &mut Vec<Value>) {
    println!(
        "\n8. A poisoned notification on a webhook channel: another job's alarm, sent -> received (ms)"
    );
    let python = std::env::var("QCIC_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| workspace_root().join(".venv/bin/python"));
    let dir = tempfile::tempdir().unwrap();
    let seen = dir.path().join("hook.jsonl");
    // Held until bad_servers.py binds it (with SO_REUSEADDR, as asyncio does).
    let reserved = reserve_port();
    let port = reserved.port();
    let mut server = Command::new(&python)
        .arg(workspace_root().join("qcic-monitor/tests/bad_servers.py"))
        .args(["webhook", &port.to_string()])
        .arg(&seen)
        .args([
            format!("{}=0:500", job_name(0)),
            format!("{}=3600", job_name(1)),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    let rounds = if plan.quick { 3 } else { 30 };
    let w = Watcher::start(&WatcherSpec {
        jobs: 2 + 2 * rounds,
        webhook: Some(format!("http://127.0.0.1:{port}/")),
        ..Default::default()
    });
    let ctx = zmq::Context::new();
    let push = ctx.socket(zmq::PUSH).unwrap();
    push.set_linger(1000).unwrap();
    push.connect(&w.listen).unwrap();
    let arrivals = |job: &str| -> Vec<f64> {
        json_lines(&seen)
            .into_iter()
            .filter(|v| v["job"] == job)
            .filter_map(|v| v["t"].as_f64())
            .collect()
    };
    let measure = |first_job: usize| -> Vec<f64> {
        let mut ms = Vec::new();
        for r in 0..rounds {
            let job = job_name(first_job + r);
            let sent = wall_ns() as f64 / 1e9;
            push.send(message(Kind::Fail, &job, 1, Some("bench")).encode(), 0)
                .unwrap();
            let until = Instant::now() + Duration::from_secs(60);
            let got = loop {
                if let Some(t) = arrivals(&job).first() {
                    break *t;
                }
                assert!(Instant::now() < until, "{job} never arrived: {}", w.log());
                std::thread::sleep(Duration::from_millis(2));
            };
            ms.push((got - sent) * 1000.0);
        }
        ms
    };
    let fresh = measure(2);
    for poison in [0, 1] {
        push.send(
            message(Kind::Fail, &job_name(poison), 1, Some("poison")).encode(),
            0,
        )
        .unwrap();
    }
    // Both in their retries: the failing one refused twice, the hung one
    // abandoned at its deadline once.
    let until = Instant::now() + Duration::from_secs(60);
    while arrivals(&job_name(0)).len() < 2 || arrivals(&job_name(1)).len() < 2 {
        assert!(
            Instant::now() < until,
            "the poison was not retried: {}",
            w.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let poisoned = measure(2 + rounds);
    let tries = (arrivals(&job_name(0)).len(), arrivals(&job_name(1)).len());
    w.stop();
    let _ = server.kill();
    let _ = server.wait();
    for (case, v) in [("fresh", fresh), ("poisoned", poisoned)] {
        let (median, lo, hi) = spread(v);
        println!("   {case:<9} median {median:>6.1}  ({lo:.1}..{hi:.1}) over {rounds} alarms");
        out.push(json!({"figure": "poisoned", "case": case, "rounds": rounds,
            "median_ms": median, "min_ms": lo, "max_ms": hi}));
    }
    println!(
        "   the poisoned notifications were tried {} and {} times meanwhile (500 at once; no answer, 2 s deadline)",
        tries.0, tries.1
    );
}
