//! The sender against real libzmq PULL sockets.

use std::process::Command;
use std::time::{Duration, Instant};

use qcic_sdk::{Client, Error, Kind, Message};
use qcic_testkit::{Receiver, dead_endpoint};

#[test]
fn every_kind_arrives_with_its_fields() {
    let w = Receiver::bind();
    let client = Client::builder()
        .endpoint(&w.endpoint)
        .host("test-host")
        .build()
        .unwrap();
    client.heartbeat("etl").unwrap();
    let run = client.start("etl").unwrap();
    run.progress("half way").unwrap();
    let run_id = run.id();
    run.success().unwrap();
    let run2 = client.start("etl").unwrap();
    let run2_id = run2.id();
    run2.fail_with_code(Some(7), &"x".repeat(5000)).unwrap();
    client.fail("etl", None, "outside a run").unwrap();

    let got: Vec<Message> = (0..7).map(|_| w.recv()).collect();
    let kinds: Vec<Kind> = got.iter().map(|m| m.kind).collect();
    use Kind::*;
    assert_eq!(
        kinds,
        [Heartbeat, Start, Progress, Success, Start, Fail, Fail]
    );
    assert_eq!(got[0].run_id, None);
    assert!(got[1..4].iter().all(|m| m.run_id == Some(run_id)));
    assert_ne!(run_id, run2_id, "each run has its own id");
    assert_eq!(got[2].text.as_deref(), Some("half way"));
    assert_eq!(got[5].exit_code, Some(7));
    assert_eq!(
        got[5].text.as_ref().map(String::len),
        Some(1024),
        "long text is cut, not refused"
    );
    assert_eq!(got[6].run_id, None);
    let seqs: Vec<u64> = got.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, (1..=7).collect::<Vec<_>>());
    assert!(
        got.iter()
            .all(|m| m.host == "test-host" && m.pid == std::process::id())
    );
    assert!(got.iter().all(|m| m.ts_ms > 1_700_000_000_000));
    assert!(
        client.close(Duration::from_secs(5)),
        "delivered to a live watcher"
    );
}

#[test]
fn each_watcher_gets_every_message() {
    let a = Receiver::bind();
    let b = Receiver::bind();
    let client = Client::new([a.endpoint.clone(), b.endpoint.clone()]).unwrap();
    for _ in 0..10 {
        client.heartbeat("etl").unwrap();
    }
    for w in [&a, &b] {
        let seqs: Vec<u64> = (0..10).map(|_| w.recv().seq).collect();
        assert_eq!(seqs, (1..=10).collect::<Vec<_>>());
    }
    assert_eq!(client.stats().sent, 20);
}

#[test]
fn a_run_dropped_unfinished_reports_fail() {
    let w = Receiver::bind();
    let client = Client::new([w.endpoint.clone()]).unwrap();
    {
        let _run = client.start("etl").unwrap();
        // early return, `?`, ...: the guard goes out of scope unfinished
    }
    let panicking = client.clone();
    let result = std::thread::spawn(move || {
        let _run = panicking.start("etl").unwrap();
        panic!("job crashed");
    })
    .join();
    assert!(result.is_err());
    let got: Vec<Message> = (0..4).map(|_| w.recv()).collect();
    assert_eq!(got[1].kind, Kind::Fail);
    assert_eq!(got[1].run_id, got[0].run_id);
    assert_eq!(
        got[1].text.as_deref(),
        Some("run dropped without success or fail")
    );
    assert_eq!(got[3].kind, Kind::Fail);
    assert_eq!(got[3].text.as_deref(), Some("run dropped during a panic"));
}

#[test]
fn bad_input_is_an_error_not_a_crash() {
    assert!(matches!(
        Client::new(Vec::<String>::new()),
        Err(Error::NoEndpoints)
    ));
    assert!(matches!(
        Client::new(["nonsense"]),
        Err(Error::Endpoint { .. })
    ));
    let dead = dead_endpoint();
    let client = Client::new([dead.endpoint.clone()]).unwrap();
    assert!(matches!(
        client.heartbeat(""),
        Err(Error::InvalidJob { .. })
    ));
    assert!(matches!(
        client.start("two words"),
        Err(Error::InvalidJob { .. })
    ));
    assert!(!client.close(Duration::from_millis(50)) || client.stats().queued == 0);
    assert!(matches!(client.heartbeat("etl"), Err(Error::Closed)));
    assert_eq!(client.stats().dropped_closed, 1);
}

#[test]
fn a_full_queue_drops_and_counts_instead_of_blocking() {
    // Nobody listens: libzmq holds at most `send_hwm` per watcher, the queue
    // holds at most 1; everything else must be dropped and counted.
    let dead = dead_endpoint();
    let client = Client::builder()
        .endpoint(&dead.endpoint)
        .queue_capacity(1)
        .send_hwm(10)
        .build()
        .unwrap();
    let mut refused = 0u64;
    for _ in 0..5000 {
        if let Err(Error::QueueFull) = client.heartbeat("etl") {
            refused += 1;
        }
    }
    assert!(client.flush(Duration::from_secs(10)));
    let stats = client.stats();
    assert_eq!(stats.queued + stats.dropped_queue_full, 5000);
    assert_eq!(stats.dropped_queue_full, refused);
    assert_eq!(
        stats.sent + stats.dropped_hwm + stats.send_errors,
        stats.queued
    );
    assert!(
        stats.sent <= 20,
        "libzmq held more than its high-water mark: {stats:?}"
    );
    assert!(stats.dropped() > 0);
}

#[test]
fn close_is_bounded_when_no_watcher_is_reachable() {
    let (a, b) = (dead_endpoint(), dead_endpoint());
    let client = Client::new([a.endpoint.clone(), b.endpoint.clone()]).unwrap();
    for _ in 0..100 {
        client.heartbeat("etl").unwrap();
    }
    let started = Instant::now();
    assert!(
        !client.close(Duration::from_millis(300)),
        "nothing could be delivered"
    );
    // A generous bound: it only has to prove close does not wait for a peer.
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// Runs as a child process (see below): sends to unreachable watchers and
/// returns, so the process exits through the client's Drop.
#[test]
fn child_process_sender() {
    let Ok(endpoints) = std::env::var("QCIC_CHILD_ENDPOINTS") else {
        return; // only meaningful as the child of the test below
    };
    let client = Client::new(qcic_sdk::parse_endpoints(&endpoints)).unwrap();
    let run = client.start("etl").unwrap();
    for i in 0..500 {
        run.progress(&format!("step {i}")).unwrap_or(());
    }
    // No close: the process must exit on Drop's bounded default.
}

#[test]
fn a_process_whose_watchers_are_unreachable_still_exits_promptly() {
    let (a, b) = (dead_endpoint(), dead_endpoint());
    let endpoints = format!("{},{}", a.endpoint, b.endpoint);
    let started = Instant::now();
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_process_sender", "--test-threads=1"])
        .env("QCIC_CHILD_ENDPOINTS", endpoints)
        .output()
        .unwrap();
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 passed"),
        "the child really ran the sender"
    );
    eprintln!("child with unreachable watchers exited after {took:?}");
    // The default close timeout is 1 s; an infinite LINGER would hang here forever.
    assert!(took < Duration::from_secs(15), "took {took:?}");
}
