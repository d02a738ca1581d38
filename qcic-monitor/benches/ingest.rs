//! Ingest rate: messages per second the real qcic-monitor binary decodes and
//! applies, with CURVE off and on, set against a bare libzmq PUSH -> PULL
//! loop moving the same frames (the ceiling).
//!
//! One sender thread pushes N pre-encoded heartbeats for 1000 jobs as fast
//! as libzmq takes them, then a `fail` for a sentinel job. Messages on one
//! connection are applied in order, so when the sentinel's alert arrives on
//! the PUB stream every heartbeat before it has been applied: the time from
//! the first send to that alert is the ingest time.
//!
//! Run: `cargo bench -p qcic-monitor --bench ingest`

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_precision_loss,
    reason = "a benchmark: a panic is the report"
)]

use std::fmt::Write as _;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use qcic_sdk::{Kind, Message};

const N: usize = 200_000;
const JOBS: usize = 1000;
const RUNS: usize = 3;

fn endpoint() -> String {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("tcp://127.0.0.1:{port}")
}

fn frames() -> Vec<Vec<u8>> {
    (0..JOBS)
        .map(|j| {
            Message {
                kind: Kind::Heartbeat,
                job: format!("job-{j:04}"),
                run_id: None,
                seq: 1,
                ts_ms: 1_764_072_000_000,
                host: "bench-host-01".into(),
                pid: 4242,
                exit_code: None,
                text: None,
            }
            .encode()
        })
        .collect()
}

struct Keys {
    server_public: [u8; 32],
    server_secret: [u8; 32],
    client_public: [u8; 32],
    client_secret: [u8; 32],
}

fn keys() -> Keys {
    let (server_public, server_secret) = qcic_sdk::new_curve_pair().unwrap();
    let (client_public, client_secret) = qcic_sdk::new_curve_pair().unwrap();
    Keys {
        server_public,
        server_secret,
        client_public,
        client_secret,
    }
}

fn push(ctx: &zmq::Context, ep: &str, keys: Option<&Keys>) -> zmq::Socket {
    let s = ctx.socket(zmq::PUSH).unwrap();
    s.set_sndhwm(100_000).unwrap();
    s.set_linger(1000).unwrap();
    if let Some(k) = keys {
        s.set_curve_serverkey(&k.server_public).unwrap();
        s.set_curve_publickey(&k.client_public).unwrap();
        s.set_curve_secretkey(&k.client_secret).unwrap();
    }
    s.connect(ep).unwrap();
    s
}

/// The ceiling: libzmq alone, same frames, same transport.
fn bare(frames: &[Vec<u8>], curve: bool) -> f64 {
    let ctx = zmq::Context::new();
    let ep = endpoint();
    let keys = keys();
    let pull = ctx.socket(zmq::PULL).unwrap();
    pull.set_rcvhwm(100_000).unwrap();
    if curve {
        pull.set_curve_server(true).unwrap();
        pull.set_curve_secretkey(&keys.server_secret).unwrap();
    }
    pull.bind(&ep).unwrap();
    let sender = push(&ctx, &ep, curve.then_some(&keys));
    // One message to get the connection (and handshake) out of the timing.
    sender.send(&frames[0][..], 0).unwrap();
    pull.recv_bytes(0).unwrap();
    let started = Instant::now();
    let frames = frames.to_vec();
    let feeder = std::thread::spawn(move || {
        for i in 0..N {
            sender.send(&frames[i % JOBS][..], 0).unwrap();
        }
        sender
    });
    let mut buf = [0u8; 256];
    for _ in 0..N {
        pull.recv_into(&mut buf, 0).unwrap();
    }
    let rate = N as f64 / started.elapsed().as_secs_f64();
    drop(feeder.join().unwrap());
    rate
}

struct Monitor {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_monitor(listen: &str, publish: &str, curve: Option<&Keys>, state: bool) -> Monitor {
    let dir = tempfile::tempdir().unwrap();
    let mut config = format!(
        "[monitor]\nid = \"bench\"\nlisten = [\"{listen}\"]\nmax_rate_per_sender = 0\nstate = \"{}\"\ncontrol = \"{}\"\n\n",
        if state {
            dir.path().join("state.db").display().to_string()
        } else {
            "off".to_owned()
        },
        dir.path().join("control.sock").display()
    );
    if let Some(k) = curve {
        let key = dir.path().join("w.key");
        std::fs::write(
            &key,
            format!(
                "public-key = \"{}\"\nsecret-key = \"{}\"\n",
                z85::encode(k.server_public),
                z85::encode(k.server_secret)
            ),
        )
        .unwrap();
        writeln!(config, "[curve]\nsecret_key_file = \"{}\"\n", key.display()).unwrap();
    }
    for j in 0..JOBS {
        writeln!(config, "[[job]]\nname = \"job-{j:04}\"\nevery = \"1h\"").unwrap();
    }
    write!(
        config,
        "[[job]]\nname = \"sentinel\"\nevery = \"1h\"\n\n[[notify]]\nkind = \"zmq\"\npublish = \"{publish}\"\n"
    )
    .unwrap();
    let path = dir.path().join("monitor.toml");
    std::fs::write(&path, config).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_qcic-monitor"))
        .arg("--config")
        .arg(&path)
        .env("QCIC_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Monitor { child, _dir: dir }
}

fn monitor(frames: &[Vec<u8>], curve: bool, state: bool) -> f64 {
    let keys = keys();
    let listen = endpoint();
    let publish = endpoint();
    let _monitor = start_monitor(&listen, &publish, curve.then_some(&keys), state);
    let ctx = zmq::Context::new();
    let sub = ctx.socket(zmq::SUB).unwrap();
    sub.set_subscribe(b"alert.failed.sentinel").unwrap();
    sub.set_rcvtimeo(60_000).unwrap();
    let sender = push(&ctx, &listen, curve.then_some(&keys));
    let fail = |seq: u64| {
        Message {
            kind: Kind::Fail,
            job: "sentinel".into(),
            run_id: Some(seq),
            seq,
            ts_ms: 1_764_072_000_000,
            host: "bench-host-01".into(),
            pid: 4242,
            exit_code: None,
            text: None,
        }
        .encode()
    };
    let clear = |seq: u64| {
        let mut success = Message::decode(&fail(seq)).unwrap();
        success.kind = Kind::Success;
        success.encode()
    };
    // Warm up the connection, the handshake and the subscription: until an
    // alert comes through, fail and clear again (PUB drops what it sends
    // before the subscription arrives).
    sub.connect(&publish).unwrap();
    sub.set_rcvtimeo(500).unwrap();
    let mut seq = 0;
    loop {
        seq += 1;
        sender.send(&fail(seq)[..], 0).unwrap();
        let got = sub.recv_multipart(0).is_ok();
        sender.send(&clear(seq)[..], 0).unwrap();
        if got {
            break;
        }
        assert!(seq < 100, "the monitor never answered");
    }
    sub.set_rcvtimeo(120_000).unwrap();
    let started = Instant::now();
    for i in 0..N {
        sender.send(&frames[i % JOBS][..], 0).unwrap();
    }
    sender.send(&fail(seq + 1)[..], 0).unwrap();
    sub.recv_multipart(0).expect("the sentinel alert");
    N as f64 / started.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn main() {
    let frames = frames();
    println!(
        "{N} heartbeats for {JOBS} jobs, {} bytes each, tcp loopback, median of {RUNS} (min..max)",
        frames[0].len()
    );
    let mut json = Vec::new();
    // The state database's effect, CURVE off.
    let mut off = Vec::new();
    let mut on = Vec::new();
    for _ in 0..RUNS {
        off.push(monitor(&frames, false, false));
        on.push(monitor(&frames, false, true));
    }
    let (off, offmin, offmax) = median(off);
    let (on, onmin, onmax) = median(on);
    println!(
        "state DB off      qcic-monitor {off:>9.0}/s ({offmin:.0}..{offmax:.0})   state DB on {on:>9.0}/s ({onmin:.0}..{onmax:.0})   ratio {:.2}",
        on / off
    );
    json.push(format!(
        "{{\"state_off_per_s\": {off:.0}, \"state_on_per_s\": {on:.0}, \"ratio\": {:.3}}}",
        on / off
    ));
    for curve in [false, true] {
        let mut bare_rates = Vec::new();
        let mut mon_rates = Vec::new();
        for _ in 0..RUNS {
            bare_rates.push(bare(&frames, curve));
            mon_rates.push(monitor(&frames, curve, true));
        }
        let (b, bmin, bmax) = median(bare_rates);
        let (m, mmin, mmax) = median(mon_rates);
        let label = if curve { "CURVE on " } else { "CURVE off" };
        println!(
            "{label}  bare PUSH->PULL {:>9.0}/s ({:.0}..{:.0})   qcic-monitor {:>9.0}/s ({:.0}..{:.0})   ratio {:.2}",
            b,
            bmin,
            bmax,
            m,
            mmin,
            mmax,
            m / b
        );
        json.push(format!(
            "{{\"curve\": {curve}, \"bare_per_s\": {b:.0}, \"monitor_per_s\": {m:.0}, \"ratio\": {:.3}}}",
            m / b
        ));
    }
    println!("JSON [{}]", json.join(", "));
}
