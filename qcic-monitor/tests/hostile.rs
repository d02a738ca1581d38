//! A watcher on a hostile network: what a peer that can reach the ingest
//! port can do to it, tried with real libzmq connections against the real
//! binary.

#![expect(clippy::unwrap_used, reason = "tests: a panic is the failure report")]

use std::time::Duration;

// The floods here take both cores of a small machine: one at a time
// (`one_at_a_time`), so one test's flood is not another's false alarm.
use qcic_sdk::Client;
use qcic_testkit::{Flood, Monitor, Smtp, idle_flood, now_ms, one_at_a_time};

/// Raises this test process's descriptor limit: the flood's sockets are
/// held here.
fn raise_own_nofile(need: u64) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    assert!(hard >= need, "the test needs {need} descriptors");
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).unwrap();
}

/// 1 100 idle ZMTP connections from five addresses against a watcher
/// limited to 1 024 descriptors: before the guard they took every
/// descriptor, a job went `down` and no email left (`Too many open
/// files`). Now the watcher keeps its reserve, a sender that connects
/// during the flood is heard, and both alarms reach a real SMTP server.
#[test]
fn an_idle_connection_flood_on_the_ingest_port_blinds_nothing() {
    let _turn = one_at_a_time();
    raise_own_nofile(4096);
    let smtp = Smtp::start();
    let body = format!(
        "[[job]]\nname = \"etl\"\nevery = \"1h\"\n[[job]]\nname = \"beat\"\nevery = \"6s\"\ngrace = \"0s\"\n\n\
         [[notify]]\nkind = \"email\"\ngroup_wait = \"off\"\nsmtp = \"{}\"\nfrom = \"qcic@example.com\"\nto = [\"ops@example.com\"]\n",
        smtp.url()
    );
    let monitor = Monitor::start_wrapped(
        &["prlimit", "--nofile=1024:1024", "--"],
        "watcher-a",
        "",
        &body,
        &[],
    );
    let sources = [
        "127.0.0.2",
        "127.0.0.3",
        "127.0.0.4",
        "127.0.0.5",
        "127.0.0.6",
    ];
    let flood = idle_flood(&monitor.listen, &sources, 1100, None);
    std::thread::sleep(Duration::from_secs(3));
    let during = monitor.descriptors();
    // A sender that connects only now, with the flood in place.
    let sender = Client::new([monitor.listen.clone()]).unwrap();
    sender.fail("etl", Some(2), "during the flood").unwrap();
    let mails = smtp.wait_for(1);
    assert!(mails[0].contains("FAILED etl"), "{mails:?}");
    // `beat` was never heard: `down` at its deadline, 6 s after the start.
    let mails = smtp.wait_for(2);
    assert!(mails.iter().any(|m| m.contains("DOWN beat")), "{mails:?}");
    let log = monitor.stop();
    drop(flood);
    let closed = qcic_testkit::counter(&log, "ingest_connections_closed").unwrap();
    eprintln!(
        "idle flood: the watcher held {during} descriptors; the guard closed {closed} connections"
    );
    assert!(during < 1024 - 96, "{during} descriptors open");
    assert!(closed > 0, "{log}");
    assert!(log.contains("closed by the connection guard"), "{log}");
    assert!(!log.contains("Too many open files"), "{log}");
}

/// One job sending far over the rate limit from a host must not use up
/// another job's budget on the same host: before, the bucket was per peer
/// address, the quiet job's heartbeats were dropped as `rate_limited` and
/// it went `down` though it never stopped.
#[test]
fn a_chatty_job_does_not_silence_its_neighbour() {
    let _turn = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("notes.jsonl");
    let monitor = Monitor::start_with(
        "watcher-a",
        "max_rate_per_sender = 50",
        &format!(
            "[[job]]\nname = \"chatty\"\nevery = \"1h\"\n[[job]]\nname = \"quiet\"\nevery = \"2s\"\ngrace = \"1s\"\n{}",
            qcic_testkit::note_channel(&out)
        ),
        &[],
    );
    let listen = monitor.listen.clone();
    let flood = Flood::start(move |going| {
        let client = Client::builder()
            .endpoints([listen])
            .queue_capacity(100_000)
            .build()
            .unwrap();
        let mut sent = 0u64;
        while going() {
            if client.heartbeat("chatty").is_ok() {
                sent += 1;
            }
        }
        sent
    });
    let quiet = Client::new([monitor.listen.clone()]).unwrap();
    for _ in 0..16 {
        quiet.heartbeat("quiet").unwrap();
        std::thread::sleep(Duration::from_millis(500));
    }
    let sent = flood.stop();
    let log = monitor.stop();
    let limited = qcic_testkit::counter(&log, "dropped_rate_limited").unwrap();
    eprintln!("chatty neighbour: {sent} chatty heartbeats sent, {limited} rate-limited");
    assert!(limited > 1000, "the flood was not over the limit: {log}");
    assert!(
        qcic_testkit::notes_of(&out, "down", "quiet").is_empty(),
        "quiet went down: {:#?}",
        qcic_testkit::notes(&out)
    );
}

/// Hostile sender fields: a host name with a line break, a terminal escape
/// or a bidi override is refused at decode (counted); a failure text with
/// the same reaches the log, the email, `status` and the page only escaped,
/// and cannot add a field line to the email.
#[test]
fn hostile_sender_fields_forge_nothing() {
    let smtp = Smtp::start();
    let body = format!(
        "[http]\nlisten = \"{{http}}\"\n\n[[job]]\nname = \"etl\"\nevery = \"1h\"\n\n\
         [[notify]]\nkind = \"email\"\ngroup_wait = \"off\"\nsmtp = \"{}\"\nfrom = \"qcic@example.com\"\nto = [\"ops@example.com\"]\n",
        smtp.url()
    );
    let monitor = Monitor::start("watcher-a", &body);
    let ctx = zmq::Context::new();
    let push = ctx.socket(zmq::PUSH).unwrap();
    push.set_linger(2000).unwrap();
    push.connect(&monitor.listen).unwrap();
    let forged = "FORGED WARN qcic_monitor: job recovered";
    for host in [
        format!("h\r\n{forged}"),
        "h\u{1b}]0;pwned\u{7}\u{1b}[2J".to_owned(),
        "h\u{202e}gnp.exe".to_owned(),
    ] {
        let msg = qcic_sdk::Message {
            ts_ms: 1,
            host,
            pid: 1,
            ..qcic_sdk::Message::new(qcic_sdk::Kind::Heartbeat, "etl")
        };
        // Encoded by hand: the sender API refuses such a host itself.
        push.send(msg.encode(), 0).unwrap();
    }
    let sender = Client::new([monitor.listen.clone()]).unwrap();
    let text = format!("line one\r\nevent:     recovered\n{forged}\u{1b}]0;pwned\u{7}\u{1b}[2J");
    sender.fail("etl", Some(1), &text).unwrap();
    let mails = smtp.wait_for(1);
    let mail = &mails[0];
    assert!(!mail.contains('\u{1b}'), "{mail:?}");
    assert!(
        !mail.lines().any(|l| l.starts_with("event:     recovered")),
        "a forged field line: {mail}"
    );
    assert!(mail.contains("text:      line one\\r"), "{mail}");
    let status = std::process::Command::new(qcic_testkit::monitor_bin())
        .args(["status", "--control"])
        .arg(&monitor.control)
        .output()
        .unwrap();
    assert!(status.status.success());
    assert!(!status.stdout.contains(&0x1b), "escape in status output");
    let (_, page) = qcic_testkit::http_get(&monitor.http, "/");
    assert!(!page.contains('\u{1b}'), "escape in the page");
    let log = monitor.stop();
    assert_eq!(
        qcic_testkit::counter(&log, "dropped_invalid_field"),
        Some(3),
        "{log}"
    );
    assert!(!log.contains('\u{1b}'), "escape in the log");
    assert!(!log.contains('\r'), "carriage return in the log");
    assert!(
        !log.lines().any(|l| l.starts_with("FORGED")),
        "a forged log line:\n{log}"
    );
}

/// 10 100 heartbeats with distinct made-up host names fill the clock-skew
/// table; a real host an hour off that reports after them must still be
/// warned about and shown first, and the page, `/metrics` and `status`
/// stay small. Before, the table kept its first 10 000 names for good.
#[test]
fn a_flood_of_host_names_hides_no_real_skew() {
    let _turn = one_at_a_time();
    let monitor = Monitor::start_with(
        "watcher-a",
        "max_rate_per_sender = 0",
        "[http]\nlisten = \"{http}\"\n\n[[job]]\nname = \"etl\"\nevery = \"1h\"\n",
        &[],
    );
    let ctx = zmq::Context::new();
    let push = ctx.socket(zmq::PUSH).unwrap();
    push.set_linger(5000).unwrap();
    push.set_sndhwm(100_000).unwrap();
    push.connect(&monitor.listen).unwrap();
    let beat = |host: &str, ts_ms: u64, seq: u64| {
        qcic_sdk::Message {
            seq,
            ts_ms,
            host: host.into(),
            pid: 1,
            ..qcic_sdk::Message::new(qcic_sdk::Kind::Heartbeat, "etl")
        }
        .encode()
    };
    for i in 0..10_100u64 {
        push.send(beat(&format!("made-up-{i}"), now_ms(), i + 1), 0)
            .unwrap();
    }
    std::thread::sleep(Duration::from_secs(2));
    push.send(beat("real-db", now_ms() - 3_600_000, 1), 0)
        .unwrap();
    monitor.wait_log("real-db");
    let (_, page) = qcic_testkit::http_get(&monitor.http, "/");
    let (_, metrics) = qcic_testkit::http_get(&monitor.http, "/metrics");
    let (_, api) = qcic_testkit::http_get(&monitor.http, "/api/hosts");
    let status = std::process::Command::new(qcic_testkit::monitor_bin())
        .args(["status", "--control"])
        .arg(&monitor.control)
        .output()
        .unwrap();
    let status = String::from_utf8(status.stdout).unwrap();
    let log = monitor.stop();
    assert!(
        log.lines()
            .any(|l| l.contains("sender clock is off") && l.contains("real-db")),
        "{log}"
    );
    let hosts: serde_json::Value = serde_json::from_str(&api).unwrap();
    assert_eq!(hosts[0]["host"], "real-db", "largest skew first");
    assert!(hosts.as_array().unwrap().len() <= 100);
    let series = metrics
        .lines()
        .filter(|l| l.starts_with("qcic_host_clock_skew_seconds{"))
        .count();
    assert!(series <= 100, "{series} host series");
    let known = qcic_testkit::metric_sum(&metrics, "qcic_hosts_known");
    assert!((8_000..=10_000).contains(&known), "{known} hosts known");
    assert!(page.len() < 100_000, "the page is {} bytes", page.len());
    assert!(page.contains("more hosts"), "the page counts the rest");
    assert!(status.contains("real-db"), "{status}");
    assert!(status.contains("more hosts"), "{status}");
}

/// Without `$XDG_RUNTIME_DIR` the default control socket lives in a 0700
/// directory of this user's under the temporary directory, not straight
/// in `/tmp`; a directory of that name someone else could enter is refused
/// by the monitor and by `status`, naming it.
#[test]
fn the_default_control_socket_cannot_be_squatted() {
    use std::os::unix::fs::PermissionsExt;
    let uid = nix::unistd::geteuid();
    let run = |tmp: &std::path::Path, args: &[&str]| {
        std::process::Command::new(qcic_testkit::monitor_bin())
            .args(args)
            .env_remove("XDG_RUNTIME_DIR")
            .env("TMPDIR", tmp)
            .output()
            .unwrap()
    };
    let port = qcic_testkit::reserve_port();
    let config = |tmp: &std::path::Path| {
        let path = tmp.join("monitor.toml");
        std::fs::write(
            &path,
            format!(
                "[monitor]\nid = \"w\"\nlisten = [\"tcp://127.0.0.1:{}\"]\nstate = \"off\"\n\n[[job]]\nname = \"etl\"\nevery = \"1h\"\n",
                port.port()
            ),
        )
        .unwrap();
        path
    };

    // Private: made 0700, and `status` reaches the monitor through it.
    let tmp = tempfile::tempdir().unwrap();
    let path = config(tmp.path());
    let mut child = std::process::Command::new(qcic_testkit::monitor_bin())
        .arg("--config")
        .arg(&path)
        .env_remove("XDG_RUNTIME_DIR")
        .env("TMPDIR", tmp.path())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let dir = tmp.path().join(format!("qcic-{uid}"));
    let socket = dir.join("qcic-monitor-w.sock");
    assert!(qcic_testkit::wait_until(qcic_testkit::WAIT, || socket.exists()));
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    let status = run(tmp.path(), &["status", "--config", path.to_str().unwrap()]);
    let _ = child.kill();
    let _ = child.wait();
    assert!(status.status.success(), "{status:?}");
    assert!(String::from_utf8_lossy(&status.stdout).contains("watcher w"));

    // Squatted: the directory was there first, open to everyone.
    let tmp = tempfile::tempdir().unwrap();
    let path = config(tmp.path());
    let dir = tmp.path().join(format!("qcic-{uid}"));
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = run(tmp.path(), &["--config", path.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("is not private to this user"), "{err}");
    assert!(err.contains(&format!("qcic-{uid}")), "{err}");
    let out = run(tmp.path(), &["status", "--config", path.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is not private to this user"),
        "{out:?}"
    );
}

/// libzmq sends socket events blocking, from its I/O thread: while the
/// thread that reads them is held up (here: the receive thread stopped
/// with ptrace, as a checker far behind would hold it), a churn of 3 000
/// connections must not stall libzmq's I/O. The guard reads them on a
/// thread of its own; before, the alert stream stopped answering.
#[test]
fn a_held_up_receive_thread_does_not_stall_the_alert_stream() {
    use nix::sys::ptrace;
    use nix::unistd::Pid;
    use std::io::Read;
    let _turn = one_at_a_time();
    let monitor = Monitor::start(
        "watcher-a",
        "[[job]]\nname = \"etl\"\nevery = \"1h\"\n\n[[notify]]\nkind = \"zmq\"\npublish = \"{publish}\"\n",
    );
    let task = std::fs::read_dir(format!("/proc/{}/task", monitor.pid()))
        .unwrap()
        .filter_map(Result::ok)
        .find(|t| {
            std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == "qcic-receive")
        })
        .expect("the receive thread");
    let tid = Pid::from_raw(task.file_name().to_str().unwrap().parse().unwrap());
    ptrace::seize(tid, ptrace::Options::empty()).unwrap();
    ptrace::interrupt(tid).unwrap();
    let _ = nix::sys::wait::waitpid(tid, Some(nix::sys::wait::WaitPidFlag::__WALL));
    // 3 000 connections made and dropped (6 000 events), each given 1 s
    // to connect: a stalled libzmq accepts none, and the kernel's backlog
    // fills.
    let ingest: std::net::SocketAddr = monitor.listen.trim_start_matches("tcp://").parse().unwrap();
    for _ in 0..3000 {
        if std::net::TcpStream::connect_timeout(&ingest, Duration::from_secs(1)).is_err() {
            break;
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    // A new subscriber to the alert stream still gets the ZMTP greeting.
    let publish: std::net::SocketAddr = monitor
        .publish
        .trim_start_matches("tcp://")
        .parse()
        .unwrap();
    let stream = std::net::TcpStream::connect_timeout(&publish, Duration::from_secs(5));
    let Ok(mut stream) = stream else {
        ptrace::detach(tid, None).unwrap();
        panic!("cannot connect to the alert stream: {stream:?}");
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut greeting = [0u8; 10];
    let got = stream.read_exact(&mut greeting);
    ptrace::detach(tid, None).unwrap();
    assert!(got.is_ok(), "no ZMTP greeting on the alert stream: {got:?}");
    assert_eq!(greeting[0], 0xff, "{greeting:?}");
    monitor.stop();
}

/// The value of an unlabelled metric on the watcher's /metrics.
fn metric(monitor: &Monitor, name: &str) -> u64 {
    let (_, metrics) = qcic_testkit::http_get(&monitor.http, "/metrics");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {metrics}"))
}

/// 20 TCP connections to a CURVE watcher capped at 8 that never begin the
/// handshake: the guard ends 12 of them, libzmq's 5 s handshake timer the
/// other 8. Before, the guard's 12 were counted as failed handshakes too
/// (20), so an operator could not tell a flood the guard held off from
/// senders with a wrong key.
#[test]
fn connections_the_guard_ends_are_not_failed_handshakes() {
    let _turn = one_at_a_time();
    let server = zmq::CurveKeyPair::new().unwrap();
    let secret = zmq::z85_encode(&server.secret_key).unwrap();
    let monitor = Monitor::start_with(
        "watcher-a",
        "max_connections = 8",
        "[http]\nlisten = \"{http}\"\n\n[curve]\nsecret_key_env = \"QCIC_TEST_SECRET\"\n\n\
         [[job]]\nname = \"etl\"\nevery = \"1h\"\n",
        &[("QCIC_TEST_SECRET", &secret)],
    );
    let ingest: std::net::SocketAddr = monitor.listen.trim_start_matches("tcp://").parse().unwrap();
    let held: Vec<_> = (0..20)
        .map(|_| std::net::TcpStream::connect(ingest).unwrap())
        .collect();
    let ended = qcic_testkit::wait_until(Duration::from_secs(30), || {
        metric(&monitor, "qcic_ingest_connections") == 0
            && metric(&monitor, "qcic_handshake_failed_total") >= 8
    });
    let closed = metric(&monitor, "qcic_ingest_connections_closed_total");
    let failed = metric(&monitor, "qcic_handshake_failed_total");
    drop(held);
    let log = monitor.stop();
    assert!(ended, "connections still open or unreported:\n{log}");
    assert_eq!((closed, failed), (12, 8), "{log}");
}

/// A sender's host that stops answering (here its process is stopped, as
/// a host that lost power or its link would be) must not hold its
/// connection for good: a PULL socket never writes, so nothing ever found
/// out, and the dead connection kept a place under the guard's caps. The
/// watcher now pings every connection; the stopped one goes.
#[test]
fn a_sender_that_stops_answering_loses_its_connection() {
    use nix::sys::signal::{Signal, killpg};
    use nix::unistd::Pid;
    use std::os::unix::process::CommandExt;
    let _turn = one_at_a_time();
    let monitor = Monitor::start_with(
        "watcher-a",
        "sender_ping = \"1s\"",
        "[http]\nlisten = \"{http}\"\n\n[[job]]\nname = \"etl\"\nevery = \"1h\"\n",
        &[],
    );
    let mut run = std::process::Command::new(qcic_testkit::qcic_bin())
        .args(["run", "--job", "etl", "--endpoints", &monitor.listen, "--"])
        .args(["sleep", "60"])
        .process_group(0)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let group = Pid::from_raw(i32::try_from(run.id()).unwrap());
    let connected = qcic_testkit::wait_until(Duration::from_secs(20), || {
        metric(&monitor, "qcic_ingest_connections") == 1
    });
    // Only the sender stops; its `sleep` runs on.
    nix::sys::signal::kill(group, Signal::SIGSTOP).unwrap();
    let gone = qcic_testkit::wait_until(Duration::from_secs(20), || {
        metric(&monitor, "qcic_ingest_connections") == 0
    });
    killpg(group, Signal::SIGKILL).unwrap();
    let _ = run.wait();
    let log = monitor.stop();
    assert!(connected, "the sender never connected:\n{log}");
    assert!(gone, "the stopped sender's connection stayed:\n{log}");
}

/// An IPv6 listen address could not be bound at all (libzmq's IPv6 was
/// off), and the guard must count a wildcard listen's connections too.
#[test]
fn the_guard_holds_on_ipv6_and_wildcard_listens() {
    let _turn = one_at_a_time();
    let (v6, any) = (
        qcic_testkit::reserve_port_v6(),
        qcic_testkit::reserve_port(),
    );
    let (v6, any) = (v6.port(), any.port());
    let monitor = Monitor::start_with(
        "watcher-a",
        &format!(
            "listen = [\"tcp://[::1]:{v6}\", \"tcp://*:{any}\"]\nmax_connections_per_address = 2"
        ),
        "[http]\nlisten = \"{http}\"\n\n[[job]]\nname = \"etl\"\nevery = \"1h\"\n",
        &[],
    );
    let mut held = Vec::new();
    for address in [format!("[::1]:{v6}"), format!("127.0.0.1:{any}")] {
        for _ in 0..4 {
            held.push(std::net::TcpStream::connect(&address).unwrap());
        }
    }
    let capped = qcic_testkit::wait_until(Duration::from_secs(20), || {
        metric(&monitor, "qcic_ingest_connections_closed_total") >= 4
    });
    drop(held);
    let sender = Client::new([format!("tcp://[::1]:{v6}")]).unwrap();
    sender.fail("etl", Some(3), "over IPv6").unwrap();
    monitor.wait_log("over IPv6");
    let closed = metric(&monitor, "qcic_ingest_connections_closed_total");
    let log = monitor.stop();
    assert!(capped, "{log}");
    assert_eq!(closed, 4, "{log}");
}

/// An outside attack: one connection from each of many addresses, each
/// made "proven" by one valid heartbeat for a made-up job, held every
/// place under the cap, and the guard then refused real senders (a false
/// `down` for a job that kept sending). Only a message for a watched job
/// proves a connection now, so the attacker's connections are the ones
/// that make room.
#[test]
fn made_up_jobs_prove_no_connection() {
    let _turn = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("notes.jsonl");
    let monitor = Monitor::start_with(
        "watcher-a",
        "max_connections = 60",
        &format!(
            "[[job]]\nname = \"real\"\nevery = \"3s\"\ngrace = \"1s\"\n{}",
            qcic_testkit::note_channel(&out)
        ),
        &[],
    );
    let port = monitor.listen.rsplit(':').next().unwrap().to_owned();
    let ctx = zmq::Context::new();
    let mut attackers = Vec::new();
    for i in 0..120u32 {
        let socket = ctx.socket(zmq::PUSH).unwrap();
        socket.set_linger(0).unwrap();
        socket
            .connect(&format!(
                "tcp://127.9.{}.{}:0;127.0.0.1:{port}",
                i / 200,
                i % 200 + 1
            ))
            .unwrap();
        let mut beat = qcic_sdk::Message::new(qcic_sdk::Kind::Heartbeat, format!("made-up-{i}"));
        beat.host = format!("attacker-{i}");
        socket.send(beat.encode(), 0).unwrap();
        attackers.push(socket);
    }
    std::thread::sleep(Duration::from_secs(2));
    // The real sender connects with the cap held, and keeps sending.
    let real = Client::new([monitor.listen.clone()]).unwrap();
    for _ in 0..12 {
        real.heartbeat("real").unwrap();
        std::thread::sleep(Duration::from_secs(1));
    }
    let log = monitor.stop();
    drop(attackers);
    let closed = qcic_testkit::counter(&log, "ingest_connections_closed").unwrap();
    assert!(closed >= 60, "the attackers were not over the cap: {log}");
    assert!(
        qcic_testkit::notes_of(&out, "down", "real").is_empty(),
        "the real sender was locked out: {:#?}\n{log}",
        qcic_testkit::notes(&out)
    );
}

/// An outside attack from another address: 100 000 made-up job names
/// kept fresh, and new ones coming all the time, filled the rate limit's
/// table; a real job whose bucket had gone idle then shared one overflow
/// bucket with the flood and its messages were dropped (a false `down`; a
/// `fail` would be lost). A pair with no room now spends its own sender's
/// budget, and the limit still holds for a runaway job (a second attack
/// had found it off for every pair the full table had no room for).
#[test]
fn a_full_rate_limit_table_drops_no_real_message() {
    let _turn = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("notes.jsonl");
    let monitor = Monitor::start_with(
        "watcher-a",
        "max_unknown_jobs = 10\nmax_rate_per_sender = 50",
        &format!(
            "[[job]]\nname = \"real\"\nevery = \"14s\"\ngrace = \"1s\"\n{}",
            qcic_testkit::note_channel(&out)
        ),
        &[],
    );
    let real = Client::new([monitor.listen.clone()]).unwrap();
    real.heartbeat("real").unwrap();
    let listen = monitor.listen.clone();
    let flood = Flood::start(move |going| {
        let ctx = zmq::Context::new();
        let socket = ctx.socket(zmq::PUSH).unwrap();
        socket.set_linger(0).unwrap();
        socket.set_sndhwm(0).unwrap();
        let port = listen.rsplit(':').next().unwrap();
        socket
            .connect(&format!("tcp://127.0.0.9:0;127.0.0.1:{port}"))
            .unwrap();
        let send = |name: String| {
            let beat = qcic_sdk::Message::new(qcic_sdk::Kind::Heartbeat, name);
            socket.send(beat.encode(), 0).unwrap();
        };
        // 100 000 names, each sent again within every 10 s, and 2 000
        // new ones a second besides.
        let mut fresh = 0u64;
        while going() {
            let round = std::time::Instant::now();
            for i in 0..100_000 {
                send(format!("made-up-{i}"));
                if i % 50 == 0 {
                    fresh += 1;
                    send(format!("fresh-{fresh}"));
                }
            }
            let spent = round.elapsed();
            if spent < Duration::from_secs(1) {
                std::thread::sleep(Duration::from_secs(1) - spent);
            }
        }
        fresh
    });
    // The real job's bucket goes idle past 10 s; its next heartbeat comes
    // with the table full.
    std::thread::sleep(Duration::from_secs(12));
    real.heartbeat("real").unwrap();
    std::thread::sleep(Duration::from_secs(4));
    // A runaway job on the real job's host, with the table still full.
    let runaway = Client::builder()
        .endpoints([monitor.listen.clone()])
        .queue_capacity(100_000)
        .build()
        .unwrap();
    for _ in 0..20_000 {
        let _ = runaway.heartbeat("runaway");
    }
    runaway.flush(Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(2));
    flood.stop();
    let log = monitor.stop();
    assert!(
        qcic_testkit::notes_of(&out, "down", "real").is_empty(),
        "the real heartbeat was dropped: {:#?}\n{log}",
        qcic_testkit::notes(&out)
    );
    let limited = qcic_testkit::counter(&log, "dropped_rate_limited").unwrap();
    assert!(
        limited >= 15_000,
        "the limit was off: {limited} dropped\n{log}"
    );
}

/// The same lockout with CURVE on and the job pinned to its sender's key
/// (a second attack on the first fix): throwaway keys sent a heartbeat for
/// the pinned job, which the registry drops as `wrong_sender` but which
/// had already proven the connection. Only a message the registry takes
/// proves one now, so the real key gets in.
#[test]
fn a_key_the_job_is_not_pinned_to_proves_no_connection() {
    let _turn = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("notes.jsonl");
    let server = zmq::CurveKeyPair::new().unwrap();
    let real_pair = zmq::CurveKeyPair::new().unwrap();
    let z85 = |k: &[u8]| zmq::z85_encode(k).unwrap();
    let monitor = Monitor::start_with(
        "watcher-a",
        "max_connections = 60",
        &format!(
            "[curve]\nsecret_key_env = \"QCIC_TEST_SECRET\"\n\n\
             [[job]]\nname = \"real\"\nevery = \"4s\"\ngrace = \"1s\"\nsenders = [\"{}\"]\n{}",
            z85(&real_pair.public_key),
            qcic_testkit::note_channel(&out)
        ),
        &[("QCIC_TEST_SECRET", &z85(&server.secret_key))],
    );
    let port = monitor.listen.rsplit(':').next().unwrap().to_owned();
    let ctx = zmq::Context::new();
    let mut attackers = Vec::new();
    for i in 0..120u32 {
        let socket = ctx.socket(zmq::PUSH).unwrap();
        socket.set_linger(0).unwrap();
        let throwaway = zmq::CurveKeyPair::new().unwrap();
        socket.set_curve_serverkey(&server.public_key).unwrap();
        socket.set_curve_publickey(&throwaway.public_key).unwrap();
        socket.set_curve_secretkey(&throwaway.secret_key).unwrap();
        socket
            .connect(&format!(
                "tcp://127.9.{}.{}:0;127.0.0.1:{port}",
                i / 200,
                i % 200 + 1
            ))
            .unwrap();
        let beat = qcic_sdk::Message::new(qcic_sdk::Kind::Heartbeat, "real");
        socket.send(beat.encode(), 0).unwrap();
        attackers.push(socket);
    }
    std::thread::sleep(Duration::from_secs(2));
    let real = Client::builder()
        .endpoint(monitor.listen.clone())
        .server_key(z85(&server.public_key))
        .client_keys(z85(&real_pair.public_key), z85(&real_pair.secret_key))
        .build()
        .unwrap();
    for _ in 0..12 {
        real.heartbeat("real").unwrap();
        std::thread::sleep(Duration::from_secs(1));
    }
    let log = monitor.stop();
    drop(attackers);
    let wrong = qcic_testkit::counter(&log, "dropped_wrong_sender").unwrap();
    assert!(
        wrong >= 60,
        "the attackers' heartbeats did not arrive: {log}"
    );
    assert!(
        qcic_testkit::notes_of(&out, "down", "real").is_empty(),
        "the real sender was locked out: {:#?}\n{log}",
        qcic_testkit::notes(&out)
    );
}
