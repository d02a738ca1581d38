//! `--demo`: a sender inside the monitor process, so a newcomer sees every
//! kind of notification within seconds on the embedded configuration.

use std::thread;
use std::time::Duration;

use qcic_sdk::Client;
use tracing::info;

/// The endpoint a local sender should connect to for a listen endpoint.
pub fn connect_endpoint(listen: &str) -> String {
    listen
        .replace("://0.0.0.0:", "://127.0.0.1:")
        .replace("://*:", "://127.0.0.1:")
}

/// Runs the demo script on a thread of its own.
pub fn spawn(endpoint: String) -> std::io::Result<thread::JoinHandle<()>> {
    thread::Builder::new()
        .name("qcic-demo".into())
        .spawn(move || {
            if let Err(err) = script(&endpoint) {
                tracing::error!(target: "demo", cause = %err, "demo sender failed");
            }
        })
}

fn step(what: &str) {
    info!(target: "demo", "demo sender: {what}");
}

fn script(endpoint: &str) -> Result<(), qcic_sdk::Error> {
    let s = Duration::from_secs(1);
    let client = Client::new([endpoint])?;
    step("heartbeat for backup (every 3s, grace 2s) and nightly-etl; backup then goes quiet");
    client.heartbeat("backup")?;
    client.heartbeat("nightly-etl")?;
    let run = client.start("nightly-etl")?;
    step("nightly-etl run started");
    thread::sleep(s);
    run.progress("extracted 1200 rows")?;
    thread::sleep(s);
    step("nightly-etl run fails: expect FAILED at once");
    run.fail_with_code(Some(3), "demo: database connection refused")?;
    thread::sleep(6 * s);
    step("backup speaks again: expect RECOVERED for its DOWN incident");
    client.heartbeat("backup")?;
    thread::sleep(s);
    step("nightly-etl reruns and succeeds: expect RECOVERED for its FAILED incident");
    client.start("nightly-etl")?.success()?;
    client.close(s);
    step(
        "done; both jobs now stay silent, so expect DOWN for backup in ~5s and for nightly-etl in ~15s. Ctrl-C stops the monitor.",
    );
    Ok(())
}
