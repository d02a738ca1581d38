//! Cost of one heartbeat call: the C API (a real C program, -O2, against
//! libqcic.so) and, for reference, the Rust SDK directly. A PULL socket on a
//! thread drains everything over tcp loopback. Each call is timed in batches
//! of 1000; between batches (untimed) the client is flushed so every timed
//! call is a real enqueue.
//!
//! Run: `cargo bench -p qcic-ffi --bench heartbeat`

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark: a panic is the report"
)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

fn drain() -> String {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("tcp://127.0.0.1:{port}");
    let ep = endpoint.clone();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let ctx = zmq::Context::new();
        let pull = ctx.socket(zmq::PULL).unwrap();
        pull.bind(&ep).unwrap();
        ready_tx.send(()).unwrap();
        while pull.recv_bytes(0).is_ok() {}
    });
    ready_rx.recv().unwrap();
    endpoint
}

fn rust_sdk(endpoint: &str) {
    let client = qcic_sdk::Client::new([endpoint]).unwrap();
    let mut per_call: Vec<f64> = Vec::new();
    for _ in 0..300 {
        let t0 = Instant::now();
        for _ in 0..1000 {
            let _ = client.heartbeat("nightly-etl1");
        }
        per_call.push(t0.elapsed().as_nanos() as f64 / 1000.0);
        client.flush(Duration::from_secs(5));
    }
    per_call.sort_by(f64::total_cmp);
    println!(
        "Rust   heartbeat: median {:6.0} ns  p10 {:6.0} ns  p90 {:6.0} ns  (300 batches of 1000, {} dropped)",
        per_call[150],
        per_call[30],
        per_call[270],
        client.stats().dropped()
    );
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    // cargo puts the cdylib it built for this bench in deps/, beside it.
    let target = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let exe = target.join("qcic-heartbeat-bench");
    let status = Command::new("gcc")
        .args(["-std=c11", "-O2", "-Wall", "-Wextra", "-Werror"])
        .arg("-I")
        .arg(root.join("include"))
        .arg(root.join("qcic-ffi/benches/heartbeat.c"))
        .arg("-L")
        .arg(&target)
        .arg("-lqcic")
        .arg(format!("-Wl,-rpath,{}", target.display()))
        .arg("-o")
        .arg(&exe)
        .status()
        .unwrap();
    assert!(status.success(), "gcc failed");
    let endpoint = drain();
    let status = Command::new(&exe).arg(&endpoint).status().unwrap();
    assert!(status.success());
    rust_sdk(&endpoint);
}
