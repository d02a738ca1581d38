//! Security and hostile input, with real processes over tcp loopback: CURVE
//! senders allowed and refused, job pinning, a flood of garbage, config and
//! secret handling.

#![expect(clippy::unwrap_used, reason = "tests: a panic is the failure report")]

use std::path::Path;
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use qcic_sdk::Client;
use qcic_testkit::{Alerts, Monitor, counter};

struct Pair {
    public: String,
    secret: String,
}

fn pair() -> Pair {
    let p = zmq::CurveKeyPair::new().unwrap();
    Pair {
        public: zmq::z85_encode(&p.public_key).unwrap(),
        secret: zmq::z85_encode(&p.secret_key).unwrap(),
    }
}

/// Writes a watcher key file the way `qcic-monitor keygen` does.
fn key_file(dir: &Path, pair: &Pair) -> String {
    let path = dir.join("watcher.key");
    std::fs::write(
        &path,
        format!(
            "public-key = \"{}\"\nsecret-key = \"{}\"\n",
            pair.public, pair.secret
        ),
    )
    .unwrap();
    path.display().to_string()
}

fn curve_client(endpoint: &str, server: &str, me: Option<&Pair>) -> Client {
    let mut b = Client::builder().endpoint(endpoint).server_key(server);
    if let Some(me) = me {
        b = b.client_keys(&me.public, &me.secret);
    }
    b.build().unwrap()
}

#[test]
fn keygen_writes_a_private_secret_and_a_public_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("w");
    let out = Command::new(env!("CARGO_BIN_EXE_qcic-monitor"))
        .args(["keygen", "--out"])
        .arg(&prefix)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = dir.path().join("w.key");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let text = std::fs::read_to_string(&key).unwrap();
    let table: toml::Table = toml::from_str(&text).unwrap();
    let secret = table["secret-key"].as_str().unwrap();
    let public = table["public-key"].as_str().unwrap();
    assert_eq!(zmq::z85_decode(secret).unwrap().len(), 32);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(public));
    assert!(!stdout.contains(secret), "keygen never prints the secret");
    // A second run refuses to overwrite.
    let again = Command::new(env!("CARGO_BIN_EXE_qcic-monitor"))
        .args(["keygen", "--out"])
        .arg(&prefix)
        .output()
        .unwrap();
    assert!(!again.status.success());
}

#[test]
fn only_allowed_curve_senders_count_and_the_rest_change_nothing() {
    let keys = tempfile::tempdir().unwrap();
    let watcher = pair();
    let allowed = pair();
    let stranger = pair();
    let monitor = Monitor::start(
        "watcher-a",
        &format!(
            "[curve]\nsecret_key_file = \"{}\"\nallowed_senders = [\"{}\"]\n\n\
             [[job]]\nname = \"guarded\"\nevery = \"2s\"\ngrace = \"1s\"\n\n\
             [[notify]]\nkind = \"zmq\"\npublish = \"{{publish}}\"\n",
            key_file(keys.path(), &watcher),
            allowed.public
        ),
    );
    let mut alerts = Alerts::subscribe(&monitor.publish);
    let good = curve_client(&monitor.listen, &watcher.public, Some(&allowed));
    good.heartbeat("guarded").unwrap();
    assert!(good.flush(Duration::from_secs(5)));
    let last_good = Instant::now();

    // Three impostors keep "reporting" the job; none of it may count.
    let unknown_key = curve_client(&monitor.listen, &watcher.public, Some(&stranger));
    let wrong_server = curve_client(&monitor.listen, &pair().public, None);
    let plaintext = Client::builder().endpoint(&monitor.listen).build().unwrap();
    for _ in 0..10 {
        for impostor in [&unknown_key, &wrong_server, &plaintext] {
            let _ = impostor.heartbeat("guarded");
            let _ = impostor.start("guarded").map(|r| r.success());
        }
        sleep(Duration::from_millis(200));
    }
    let down = alerts.expect("alert.down.guarded");
    let after = last_good.elapsed();
    assert!(
        after >= Duration::from_secs(3),
        "down only after every + grace: {after:?}"
    );
    assert_eq!(down["watcher"], "watcher-a");

    good.heartbeat("guarded").unwrap();
    let up = alerts.expect("alert.recovered.guarded");
    assert_eq!(up["incident"], down["incident"]);

    let log = monitor.stop();
    assert_eq!(
        counter(&log, "accepted"),
        Some(2),
        "only the allowed sender's messages: {log}"
    );
    assert!(counter(&log, "curve_refused").unwrap() >= 1, "{log}");
    assert!(
        counter(&log, "handshake_failed").unwrap() >= 3,
        "unknown key, wrong server key and plaintext all fail the handshake: {log}"
    );
    assert!(
        log.contains(&stranger.public),
        "the refused key is named in the log"
    );
}

#[test]
fn a_job_pinned_to_a_key_ignores_other_allowed_keys() {
    let keys = tempfile::tempdir().unwrap();
    let watcher = pair();
    let owner = pair();
    let other = pair();
    let monitor = Monitor::start(
        "watcher-a",
        &format!(
            "[curve]\nsecret_key_file = \"{}\"\n\n\
             [[job]]\nname = \"client-a-backup\"\nevery = \"1h\"\nsenders = [\"{}\"]\n\n\
             [[job]]\nname = \"client-b-backup\"\nevery = \"1h\"\n\n\
             [[notify]]\nkind = \"zmq\"\npublish = \"{{publish}}\"\n",
            key_file(keys.path(), &watcher),
            owner.public
        ),
    );
    let mut alerts = Alerts::subscribe(&monitor.publish);
    let intruder = curve_client(&monitor.listen, &watcher.public, Some(&other));
    intruder.fail("client-a-backup", None, "forged").unwrap();
    // The other key may report its own (unpinned) job: this proves its
    // messages arrive, so the forged one was dropped, not lost.
    intruder.fail("client-b-backup", None, "real").unwrap();
    let real = alerts.expect("alert.failed.client-b-backup");
    assert_eq!(real["text"], "real");
    let owner_client = curve_client(&monitor.listen, &watcher.public, Some(&owner));
    owner_client
        .fail("client-a-backup", None, "genuine")
        .unwrap();
    let genuine = alerts.expect("alert.failed.client-a-backup");
    assert_eq!(
        genuine["text"], "genuine",
        "the forged fail was not notified"
    );
    let log = monitor.stop();
    assert_eq!(counter(&log, "dropped_wrong_sender"), Some(1), "{log}");
    assert!(alerts.seen.iter().all(|(_, body)| body["text"] != "forged"));
}

#[test]
fn a_flood_of_garbage_leaves_every_valid_heartbeat_applied_and_memory_flat() {
    const GARBAGE: usize = 1_000_000;
    let monitor = Monitor::start_with(
        "watcher-a",
        "max_rate_per_sender = 0",
        "[http]\nlisten = \"{http}\"\n\n\
         [[job]]\nname = \"etl\"\nevery = \"1h\"\n[[job]]\nname = \"steady\"\nevery = \"3s\"\n\n\
         [[notify]]\nkind = \"zmq\"\npublish = \"{publish}\"\n",
        &[],
    );
    let mut alerts = Alerts::subscribe(&monitor.publish);
    let rss_before = monitor.rss_kib();
    let listen = monitor.listen.clone();
    let flood = std::thread::spawn(move || {
        let ctx = zmq::Context::new();
        let garbage = ctx.socket(zmq::PUSH).unwrap();
        // Long enough that every frame reaches the monitor before this ends.
        garbage.set_linger(60_000).unwrap();
        garbage.connect(&listen).unwrap();
        let oversized = ctx.socket(zmq::PUSH).unwrap();
        oversized.set_linger(0).unwrap();
        oversized.connect(&listen).unwrap();
        let big = vec![0x42u8; 64 * 1024];
        for i in 0..GARBAGE {
            let frame: &[u8] = match i % 4 {
                0 => b"definitely not messagepack",
                1 => &[0x92, 0x02, 0xa1, b'x'], // protocol version 2
                2 => &[
                    0x98, 0x01, 0x09, 0xa1, b'j', 0xc0, 0x01, 0x01, 0xa1, b'h', 0x01,
                ], // kind 9
                _ => &[0xdb, 0xff, 0xff, 0xff, 0xff], // str32 claiming 4 GiB
            };
            garbage.send(frame, 0).unwrap();
            if i % 10_000 == 0 {
                // libzmq drops a connection that sends an oversized frame.
                let _ = oversized.send(&big[..], zmq::DONTWAIT);
            }
        }
    });
    let sender = Client::new([monitor.listen.clone()]).unwrap();
    let mut valid = 0u64;
    while !flood.is_finished() {
        sender.heartbeat("steady").unwrap();
        valid += 1;
        sleep(Duration::from_millis(20));
    }
    flood.join().unwrap();
    // Wait until the monitor has taken in every garbage frame.
    let http = monitor.http.clone();
    assert!(qcic_testkit::wait_until(Duration::from_secs(60), || {
        let (_, metrics) = qcic_testkit::http_get(&http, "/metrics");
        qcic_testkit::metric_sum(&metrics, "qcic_frames_dropped_total") >= GARBAGE as u64
    }));
    sender.heartbeat("steady").unwrap();
    valid += 1;
    // Still responsive: a failure goes through at once.
    sender.fail("etl", None, "after the flood").unwrap();
    valid += 1;
    let failed = alerts.expect("alert.failed.etl");
    assert_eq!(failed["text"], "after the flood");
    let rss_after = monitor.rss_kib();
    let log = monitor.stop();
    eprintln!(
        "flood: {GARBAGE} garbage frames, {valid} valid; RSS {rss_before} KiB -> {rss_after} KiB"
    );
    assert_eq!(
        counter(&log, "accepted"),
        Some(valid),
        "every valid message applied: {log}"
    );
    let dropped = counter(&log, "dropped").unwrap();
    assert!(
        dropped >= GARBAGE as u64 * 9 / 10,
        "garbage dropped and counted: {log}"
    );
    assert!(
        !alerts.seen.iter().any(|(t, _)| t == "alert.down.steady"),
        "the steady job never looked down during the flood"
    );
    assert!(
        rss_after < rss_before + 64 * 1024,
        "memory grew from {rss_before} KiB to {rss_after} KiB"
    );
}

#[test]
fn a_sender_over_its_rate_limit_is_dropped_and_counted() {
    let monitor = Monitor::start_with(
        "watcher-a",
        "max_rate_per_sender = 50",
        "[[job]]\nname = \"chatty\"\nevery = \"1h\"\n",
        &[],
    );
    let sender = Client::new([monitor.listen.clone()]).unwrap();
    for _ in 0..500 {
        let _ = sender.heartbeat("chatty");
    }
    assert!(sender.close(Duration::from_secs(5)));
    sleep(Duration::from_millis(300));
    let log = monitor.stop();
    let accepted = counter(&log, "accepted").unwrap();
    let limited = counter(&log, "dropped_rate_limited").unwrap();
    assert_eq!(accepted + limited, 500, "{log}");
    assert!(limited >= 300, "a burst of 500 against 50/s: {log}");
}

#[test]
fn bad_keys_are_refused_clearly_and_secrets_never_reach_the_log() {
    let keys = tempfile::tempdir().unwrap();
    let watcher = pair();
    let secret_value = "not_a_key,but_still_a_secret_to_hide_000";
    let bin = env!("CARGO_BIN_EXE_qcic-monitor");
    let check = |config: &str, env: &[(&str, &str)]| {
        let path = keys.path().join("bad.toml");
        std::fs::write(&path, config).unwrap();
        let out = Command::new(bin)
            .arg("--config")
            .arg(&path)
            .arg("--check-config")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = check(
        "[curve]\nsecret_key_env = \"QCIC_TEST_SECRET\"\n",
        &[("QCIC_TEST_SECRET", secret_value)],
    );
    assert_eq!(code, Some(2));
    assert!(err.contains("curve.secret_key_env"), "{err}");
    assert!(
        !err.contains(secret_value),
        "the secret is never echoed: {err}"
    );

    let (code, err) = check("[curve]\nsecret_key = \"inline\"\n", &[]);
    assert_eq!(code, Some(2));
    assert!(err.contains("secret_key"), "{err}");

    let (code, err) = check(
        &format!(
            "[curve]\nsecret_key_file = \"{}\"\nallowed_senders = [\"short\"]\n",
            key_file(keys.path(), &watcher)
        ),
        &[],
    );
    assert_eq!(code, Some(2));
    assert!(err.contains("curve.allowed_senders[0]"), "{err}");

    let (code, err) = check(
        "[[job]]\nname = \"j\"\nevery = \"1h\"\nsenders = [\"x\"]\n",
        &[],
    );
    assert_eq!(code, Some(2));
    assert!(err.contains("job[0].senders"), "{err}");

    // A webhook URL that is not http(s): the error names the key and shows
    // no path or query (where Slack and SMS gateways keep the credential).
    let (code, err) = check(
        "[[notify]]\nkind = \"webhook\"\nurl = \"htps://hooks.example.com/T0/B0/URLSECRET?sig=QUERYSECRET\"\n",
        &[],
    );
    assert_eq!(code, Some(2));
    assert!(err.contains("notify[0].url"), "{err}");
    assert!(err.contains("htps://hooks.example.com/…"), "{err}");
    assert!(
        !err.contains("URLSECRET") && !err.contains("QUERYSECRET"),
        "{err}"
    );

    // A running monitor with a CURVE secret, an SMTP password and a webhook
    // URL with its credential in the path and query (read from the
    // environment) logs none of them, even at trace.
    let smtp_password = "smtp-pass-that-must-not-leak";
    let dead = qcic_testkit::dead_endpoint();
    let dead = dead.endpoint.trim_start_matches("tcp://");
    let hook_url = format!("http://{dead}/services/URLSECRET/x?sig=QUERYSECRET");
    let monitor = Monitor::start_with(
        "watcher-a",
        "",
        "[curve]\nsecret_key_env = \"QCIC_TEST_SECRET\"\n\n\
         [[job]]\nname = \"etl\"\nevery = \"1h\"\n\n\
         [[notify]]\nkind = \"email\"\ngroup_wait = \"off\"\nsmtp = \"smtp://127.0.0.1:9\"\nfrom = \"q@example.com\"\n\
         to = [\"ops@example.com\"]\nusername = \"qcic\"\npassword_env = \"QCIC_TEST_SMTP\"\n\n\
         [[notify]]\nkind = \"webhook\"\nurl = \"env:QCIC_TEST_HOOK\"\n",
        &[
            ("QCIC_TEST_SECRET", &watcher.secret),
            ("QCIC_TEST_SMTP", smtp_password),
            ("QCIC_TEST_HOOK", &hook_url),
            ("QCIC_LOG", "trace"),
        ],
    );
    let sender = curve_client(&monitor.listen, &watcher.public, None);
    sender
        .fail("etl", None, "trigger an email attempt")
        .unwrap();
    assert!(qcic_testkit::wait_until(qcic_testkit::WAIT, || monitor
        .log()
        .matches("will retry")
        .count()
        >= 2));
    let log = monitor.stop();
    assert!(!log.contains(&watcher.secret), "CURVE secret in the log");
    assert!(!log.contains(smtp_password), "SMTP password in the log");
    assert!(
        !log.contains("URLSECRET") && !log.contains("QUERYSECRET"),
        "webhook URL secret in the log:\n{log}"
    );
}

/// The README's "Securing qcic" steps, as written: keygen for the watcher
/// and a client, the config, a sender using the key files' keys.
#[test]
fn the_readme_securing_steps_work() {
    let dir = tempfile::tempdir().unwrap();
    let keygen = |name: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_qcic-monitor"))
            .args(["keygen", "--out"])
            .arg(dir.path().join(name))
            .output()
            .unwrap();
        assert!(out.status.success());
        let table: toml::Table = toml::from_str(
            &std::fs::read_to_string(dir.path().join(format!("{name}.key"))).unwrap(),
        )
        .unwrap();
        Pair {
            public: table["public-key"].as_str().unwrap().to_owned(),
            secret: table["secret-key"].as_str().unwrap().to_owned(),
        }
    };
    let watcher = keygen("watcher");
    let client_a = keygen("client-a");
    let monitor = Monitor::start(
        "watcher-a",
        &format!(
            "[curve]\nsecret_key_file = \"{}\"\nallowed_senders = [\"{}\"]\n\n\
             [[job]]\nname = \"client-a-backup\"\nevery = \"1d\"\nsenders = [\"{}\"]\n\n\
             [[notify]]\nkind = \"zmq\"\npublish = \"{{publish}}\"\n",
            dir.path().join("watcher.key").display(),
            client_a.public,
            client_a.public
        ),
    );
    let mut alerts = Alerts::subscribe(&monitor.publish);
    let sender = curve_client(&monitor.listen, &watcher.public, Some(&client_a));
    sender
        .fail("client-a-backup", Some(1), "tape full")
        .unwrap();
    let failed = alerts.expect("alert.failed.client-a-backup");
    assert_eq!(failed["text"], "tape full");
    let log = monitor.stop();
    assert!(log.contains("curve=true"), "{log}");
}

/// With CURVE a declared job is pinned to the key that declared it: another
/// key (even one the watcher lets in) can neither declare it again nor
/// report for it; `[declare] senders` limits who may declare at all.
#[test]
fn a_declared_job_is_pinned_to_the_key_that_declared_it() {
    let keys = tempfile::tempdir().unwrap();
    let watcher = pair();
    let owner = pair();
    let other = pair();
    let outsider = pair();
    let monitor = Monitor::start(
        "watcher-a",
        &format!(
            "[curve]\nsecret_key_file = \"{}\"\n\n\
             [declare]\nallow = true\nsenders = [\"{}\", \"{}\"]\n\n\
             [[notify]]\nkind = \"zmq\"\npublish = \"{{publish}}\"\n",
            key_file(keys.path(), &watcher),
            owner.public,
            other.public
        ),
    );
    let mut alerts = Alerts::subscribe(&monitor.publish);
    let hour = std::time::Duration::from_secs(3600);
    let owner_client = curve_client(&monitor.listen, &watcher.public, Some(&owner));
    owner_client
        .declare(&qcic_sdk::JobSpec::every("client-a-backup", hour))
        .unwrap();
    monitor.wait_log("a job declared itself");
    let other_client = curve_client(&monitor.listen, &watcher.public, Some(&other));
    other_client
        .declare(&qcic_sdk::JobSpec::every("client-a-backup", hour * 24))
        .unwrap();
    monitor.wait_log("reason=pinned");
    other_client
        .fail("client-a-backup", None, "forged")
        .unwrap();
    let outsider_client = curve_client(&monitor.listen, &watcher.public, Some(&outsider));
    outsider_client
        .declare(&qcic_sdk::JobSpec::every("outsider-job", hour))
        .unwrap();
    monitor.wait_log("reason=sender");
    owner_client
        .fail("client-a-backup", None, "genuine")
        .unwrap();
    let genuine = alerts.expect("alert.failed.client-a-backup");
    assert_eq!(genuine["text"], "genuine", "the forged fail was notified");
    let log = monitor.stop();
    assert_eq!(counter(&log, "dropped_wrong_sender"), Some(1), "{log}");
    // The other key's declaration goes again with its `fail` when its
    // first went out before the connection was up: two refusals, or three.
    assert!(counter(&log, "declarations_refused").unwrap() >= 2, "{log}");
    assert_eq!(counter(&log, "declarations_taken"), Some(1), "{log}");
}
