//! Notifications survive a crash: written to the state database's outbox
//! before any channel sees them, sent again after a `kill -9` and restart.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is the failure report"
)]

mod common;

use std::time::Duration;

use common::{Monitor, Smtp, free_port, header, wait_until};
use qcic_sdk::Client;

#[test]
fn an_email_pending_at_kill_9_is_delivered_after_the_restart_once() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.db");
    let port = free_port();
    let body = format!(
        "[[job]]\nname = \"etl\"\nevery = \"1h\"\n\n[[notify]]\nkind = \"email\"\n\
         smtp = \"smtp://127.0.0.1:{port}\"\nfrom = \"qcic@example.com\"\nto = [\"ops@example.com\"]\n"
    );
    let keys = format!("state = \"{}\"", state.display());
    let first = Monitor::start_with("watcher-a", &keys, &body, &[]);
    let sender = Client::new([first.listen.clone()]).unwrap();
    sender
        .fail("etl", Some(9), "the mail server is down")
        .unwrap();
    assert!(wait_until(common::WAIT, || first
        .log()
        .contains("will retry")));
    drop(first); // SIGKILL: no shutdown, no flush

    let smtp = Smtp::start_on(port);
    let second = Monitor::start_with("watcher-a", &keys, &body, &[]);
    let mails = smtp.wait_for(1);
    assert!(mails[0].contains("the mail server is down"));
    assert!(header(&mails[0], "Subject").unwrap().contains("FAILED etl"));
    // Once: nothing else arrives (the outbox row is gone after delivery).
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(smtp.emails().len(), 1);
    let log = second.stop();
    assert!(
        log.contains("redelivering a notification pending since before the restart"),
        "{log}"
    );

    // A third start has nothing left to send.
    let third = Monitor::start_with("watcher-a", &keys, &body, &[]);
    std::thread::sleep(Duration::from_secs(1));
    let log = third.stop();
    assert!(log.contains("pending_notifications=0"), "{log}");
    assert_eq!(smtp.emails().len(), 1);
}
