//! How late does an alert come? Runs the real watcher (`qcic_monitor::run`,
//! the code path of the binary) in-process with a ZeroMQ PUB channel, and a
//! real SDK sender, over tcp loopback.
//!
//! - deadline -> alert: a job with `every = 200ms`, `grace = 100ms` gets one
//!   heartbeat; the delay is from (send time + 300 ms) to the `down` alert's
//!   arrival at a SUB socket.
//! - fail -> alert: from `fail` handed to the SDK to the `failed` alert's arrival.
//!
//! Run: `cargo bench -p qcic-monitor --bench alert_latency`

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark: a panic is the report"
)]

use std::time::{Duration, Instant};

use qcic_monitor::config::Config;
use qcic_sdk::Client;
use qcic_testkit::reserve_port;

const RUNS: usize = 20;

fn wait_topic(sub: &zmq::Socket, topic: &str) -> Instant {
    loop {
        let frames = sub
            .recv_multipart(0)
            .expect("alert within the receive timeout");
        if frames[0] == topic.as_bytes() {
            return Instant::now();
        }
    }
}

fn summary(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "{name:<18} runs {:>3}  min {:>8.0} us  median {:>8.0} us  p90 {:>8.0} us  max {:>8.0} us",
        samples.len(),
        us(samples[0]),
        us(samples[samples.len() / 2]),
        us(samples[samples.len() * 9 / 10]),
        us(samples[samples.len() - 1]),
    );
}

fn main() {
    // Held until the watcher binds them (libzmq sets SO_REUSEADDR).
    let ports = [reserve_port(), reserve_port()];
    let listen = ports[0].endpoint();
    let control_dir = tempfile::tempdir().unwrap();
    let control = control_dir
        .path()
        .join("control.sock")
        .display()
        .to_string();
    let publish = ports[1].endpoint();
    let text = format!(
        r#"
[monitor]
id = "bench"
listen = ["{listen}"]
state = "off"
control = "{control}"
[[job]]
name = "quick"
every = "200ms"
grace = "100ms"
[[job]]
name = "failing"
every = "1h"
[[notify]]
kind = "zmq"
publish = "{publish}"
"#
    );
    let config = Config::parse(&text, "bench.toml").unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let monitor = std::thread::spawn(move || {
        runtime
            .block_on(qcic_monitor::run(
                config,
                async {
                    let _ = stop_rx.await;
                },
                false,
            ))
            .unwrap();
    });

    let ctx = zmq::Context::new();
    let sub = ctx.socket(zmq::SUB).unwrap();
    sub.set_rcvtimeo(10_000).unwrap();
    sub.set_subscribe(b"alert.").unwrap();
    sub.connect(&publish).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let client = Client::new([listen.clone()]).unwrap();

    let mut deadline = Vec::new();
    for i in 0..=RUNS {
        let sent = Instant::now();
        client.heartbeat("quick").unwrap();
        let at = wait_topic(&sub, "alert.down.quick");
        if i > 0 {
            // The first run also pays for the TCP connection.
            deadline.push(
                at.duration_since(sent)
                    .saturating_sub(Duration::from_millis(300)),
            );
        }
    }

    let mut fail = Vec::new();
    for i in 0..=RUNS {
        let sent = Instant::now();
        client.fail("failing", Some(1), "bench").unwrap();
        let at = wait_topic(&sub, "alert.failed.failing");
        if i > 0 {
            fail.push(at.duration_since(sent));
        }
        client.heartbeat("failing").unwrap();
        wait_topic(&sub, "alert.recovered.failing");
    }

    summary("deadline -> alert", deadline);
    summary("fail -> alert", fail);
    client.close(Duration::from_secs(1));
    let _ = stop_tx.send(());
    monitor.join().unwrap();
}
