//! Delivery against real faults: a state database on a full disk (a small
//! tmpfs), SMTP and HTTP servers that stop answering or answer slowly
//! (`tests/bad_servers.py`), and a notification that keeps failing while
//! others wait behind it. The tmpfs needs root (CI runs as root); without
//! it that test fails and says so.

#![expect(clippy::unwrap_used, reason = "tests: a panic is the failure report")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use qcic_sdk::Client;
use qcic_testkit::{
    BadServer, Monitor, Smtp, counter, incidents_in, is_root, json_lines, reserve_port, wait_until,
};

/// A tmpfs of `size` mounted on a fresh directory, unmounted on drop.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> SmallDisk {
        assert!(
            is_root(),
            "tests/delivery.rs needs root to mount a small tmpfs (CI runs as root)"
        );
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .unwrap()
            .success();
        assert!(ok, "mount -t tmpfs failed");
        SmallDisk { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file until the disk refuses another byte.
    fn fill(&self) {
        use std::io::Write;
        let mut f = std::fs::File::create(self.filler()).unwrap();
        let block = vec![0u8; 4096];
        while f.write_all(&block).and_then(|()| f.flush()).is_ok() {}
        let _ = f.write_all(&[0u8; 1]);
    }

    fn free(&self) {
        std::fs::remove_file(self.filler()).unwrap();
    }

    fn filler(&self) -> PathBuf {
        self.dir.path().join("filler")
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

fn hook_count(out: &Path, job: &str) -> usize {
    json_lines(out).iter().filter(|l| l["job"] == job).count()
}

/// A transaction that fails on a full disk must not hand out its row ids:
/// before the fix the next notification's row got the same id, the first
/// one's delivery marked the second one's row done, and the second (an
/// email waiting for its server) was lost at `kill -9`. A delivery marked
/// done while the disk was full must not be sent again after the restart.
#[test]
fn a_full_disk_loses_no_notification_and_repeats_none() {
    let disk = SmallDisk::mount("400k");
    let state = disk.path().join("state.db");
    let work = tempfile::tempdir().unwrap();
    let hook_out = work.path().join("hook.jsonl");
    // Every webhook call takes 3 s, so deliveries end while the disk is full.
    let hook = BadServer::start(
        "webhook",
        &[hook_out.to_str().unwrap(), "job-a=3", "job-c=3"],
    );
    let smtp_held = reserve_port();
    let smtp_port = smtp_held.port();
    let body = format!(
        "[[job]]\nname = \"job-a\"\nevery = \"1h\"\nnotify = [\"hook\"]\n\
         [[job]]\nname = \"job-b\"\nevery = \"1h\"\nnotify = [\"mail\"]\n\
         [[job]]\nname = \"job-c\"\nevery = \"1h\"\nnotify = [\"hook\"]\n\n\
         [[notify]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{}/\"\ndefault = false\n\n\
         [[notify]]\nname = \"mail\"\nkind = \"email\"\ngroup_wait = \"off\"\nsmtp = \"smtp://127.0.0.1:{smtp_port}\"\n\
         from = \"qcic@example.com\"\nto = [\"ops@example.com\"]\ndefault = false\n",
        hook.port
    );
    let keys = format!("state = \"{}\"", state.display());
    let first = Monitor::start_with("watcher-a", &keys, &body, &[]);
    let sender = Client::new([first.listen.clone()]).unwrap();

    // C is written, then its delivery ends while the disk is full.
    sender.fail("job-c", Some(1), "c broke").unwrap();
    assert!(wait_until(qcic_testkit::WAIT, || hook_count(
        &hook_out, "job-c"
    ) == 1));
    disk.fill();
    // A's outbox write fails.
    sender.fail("job-a", Some(1), "a broke").unwrap();
    first.wait_log("state database write failed");
    // C's delivery ends (its done mark is refused too), then room again.
    first.wait_log("notification delivered");
    disk.free();
    // B (an email to a server not there yet) is written once there is room.
    sender.fail("job-b", Some(1), "b broke").unwrap();
    first.wait_log("will retry");
    assert!(
        wait_until(qcic_testkit::WAIT, || first
            .log()
            .matches("notification delivered")
            .count()
            >= 2),
        "{}",
        first.log()
    );
    // Time for the writes refused earlier to be tried again.
    std::thread::sleep(Duration::from_secs(3));
    drop(sender);
    drop(first); // kill -9

    let smtp = Smtp::start_on(smtp_held);
    let second = Monitor::start_with("watcher-a", &keys, &body, &[]);
    let mails = smtp.wait_for(1);
    assert!(mails[0].contains("b broke"), "{mails:?}");
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(hook_count(&hook_out, "job-c"), 1, "C delivered once");
    assert_eq!(hook_count(&hook_out, "job-a"), 1, "A delivered once");
    let log = second.stop();
    assert_eq!(smtp.emails().len(), 1, "{log}");
}

/// An SMTP server that stops answering (`mode`: no greeting at all, or no
/// reply to the end of DATA) costs each attempt its deadline, then a
/// retry; before the fix the lane waited on it for good and the alarm and
/// the `recovered` behind it never left, even once a working server was
/// back on the port.
fn a_hung_smtp_server_costs_one_attempt(mode: &str) {
    let hung = BadServer::start(mode, &[]);
    let port = hung.port;
    let body = format!(
        "[[job]]\nname = \"etl\"\nevery = \"1h\"\n\n[[notify]]\nkind = \"email\"\ngroup_wait = \"off\"\n\
         smtp = \"smtp://127.0.0.1:{port}\"\nfrom = \"qcic@example.com\"\nto = [\"ops@example.com\"]\n\
         timeout = \"2s\"\n"
    );
    let monitor = Monitor::start("watcher-a", &body);
    let sender = Client::new([monitor.listen.clone()]).unwrap();
    sender.fail("etl", Some(3), "broken").unwrap();
    monitor.wait_log("no answer within 2s");
    monitor.wait_log("will retry");
    let smtp = Smtp::start_on(hung.stop());
    let mails = smtp.wait_for(1);
    assert!(mails[0].contains("FAILED etl"), "{mails:?}");
    sender.start("etl").unwrap().success().unwrap();
    let mails = smtp.wait_for(2);
    assert!(mails[1].contains("RECOVERED etl"), "{mails:?}");
    let log = monitor.stop();
    assert!(
        qcic_testkit::counter(&log, "delivery_retries").unwrap() >= 1,
        "{log}"
    );
}

/// An attempt abandoned at its deadline must not leave its SMTP
/// connection open: with lettre's pool at size 0, each one stayed open
/// for good (a QUIT waiting on a server that never answers), one more per
/// retry, until the descriptor reserve was gone.
#[test]
fn abandoned_email_attempts_leave_no_connection_open() {
    let hung = BadServer::start("smtp-stall", &[]);
    let body = format!(
        "[[job]]\nname = \"a\"\nevery = \"1h\"\n[[job]]\nname = \"b\"\nevery = \"1h\"\n\n\
         [[notify]]\nkind = \"email\"\ngroup_wait = \"off\"\nsmtp = \"smtp://127.0.0.1:{}\"\nfrom = \"qcic@example.com\"\n\
         to = [\"ops@example.com\"]\ntimeout = \"1s\"\n",
        hung.port
    );
    let monitor = Monitor::start("watcher-a", &body);
    let sender = Client::new([monitor.listen.clone()]).unwrap();
    sender.fail("a", Some(1), "x").unwrap();
    sender.fail("b", Some(1), "x").unwrap();
    let open = || monitor.descriptors();
    monitor.wait_log("no answer within 1s");
    let early = open();
    // 1 + 2 + 5 s of backoff: three more abandoned attempts each.
    assert!(wait_until(Duration::from_secs(30), || monitor
        .log()
        .matches("no answer within 1s")
        .count()
        >= 8));
    let late = open();
    monitor.stop();
    assert!(
        late <= early + 2,
        "descriptors {early} -> {late}: connections left open"
    );
}

#[test]
fn an_smtp_server_that_never_greets_is_given_up_on_and_retried() {
    a_hung_smtp_server_costs_one_attempt("smtp-silent");
}

#[test]
fn an_smtp_server_that_never_answers_data_is_given_up_on_and_retried() {
    a_hung_smtp_server_costs_one_attempt("smtp-stall");
}

/// An attempt cut off at its deadline must not leave its SMTP connection
/// mid-exchange for the next email: with lettre's pool, the late "250" of
/// the first email was read as the answer to the next one, so an email the
/// server greylisted (451) counted as delivered and was never retried.
#[test]
fn an_email_cut_off_at_its_deadline_does_not_answer_for_the_next() {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("replies.jsonl");
    let server = BadServer::start("smtp-late", &[out.to_str().unwrap()]);
    let body = format!(
        "[[job]]\nname = \"slow\"\nevery = \"1h\"\n[[job]]\nname = \"grey\"\nevery = \"1h\"\n\n\
         [[notify]]\nkind = \"email\"\ngroup_wait = \"off\"\nsmtp = \"smtp://127.0.0.1:{}\"\nfrom = \"qcic@example.com\"\n\
         to = [\"ops@example.com\"]\ntimeout = \"2s\"\n",
        server.port
    );
    let monitor = Monitor::start("watcher-a", &body);
    let sender = Client::new([monitor.listen.clone()]).unwrap();
    sender.fail("slow", Some(1), "late reply").unwrap();
    monitor.wait_log("no answer within 2s");
    sender.fail("grey", Some(1), "greylisted").unwrap();
    let replies = |job: &str| -> Vec<String> {
        json_lines(&out)
            .iter()
            .filter(|l| l["job"] == job)
            .map(|l| l["reply"].as_str().unwrap().to_owned())
            .collect()
    };
    assert!(
        wait_until(qcic_testkit::WAIT, || replies("grey")
            .iter()
            .any(|r| r.starts_with("250"))),
        "the greylisted email was never accepted: {:?}\n{}",
        replies("grey"),
        monitor.log()
    );
    assert_eq!(replies("grey")[0], "451 greylisted, try again later");
    let log = monitor.stop();
    let grey_delivered: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("notification delivered") && l.contains("job=grey"))
        .collect();
    assert_eq!(grey_delivered.len(), 1, "{log}");
    assert!(grey_delivered[0].contains("attempt=2"), "{log}");
}

/// A notification that keeps failing (500 at once) and one whose server
/// never answers both retry for up to 15 minutes; a fresh alarm on the
/// same webhook goes out meanwhile, and the failing ones keep being tried.
#[test]
fn a_failing_webhook_notification_does_not_hold_up_another() {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("hook.jsonl");
    let hook = BadServer::start(
        "webhook",
        &[out.to_str().unwrap(), "poison=0:500", "hang=3600"],
    );
    let body = format!(
        "[[job]]\nname = \"poison\"\nevery = \"1h\"\n[[job]]\nname = \"hang\"\nevery = \"1h\"\n\
         [[job]]\nname = \"critical\"\nevery = \"1h\"\n\n\
         [[notify]]\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{}/\"\ntimeout = \"1s\"\n",
        hook.port
    );
    let monitor = Monitor::start("watcher-a", &body);
    let sender = Client::new([monitor.listen.clone()]).unwrap();
    sender.fail("poison", Some(1), "always refused").unwrap();
    sender.fail("hang", Some(1), "never answered").unwrap();
    assert!(wait_until(qcic_testkit::WAIT, || hook_count(
        &out, "poison"
    ) >= 1
        && hook_count(&out, "hang") >= 1));
    sender
        .fail("critical", Some(1), "must get through")
        .unwrap();
    assert!(
        wait_until(qcic_testkit::WAIT, || hook_count(&out, "critical") == 1),
        "{}",
        monitor.log()
    );
    assert!(wait_until(qcic_testkit::WAIT, || hook_count(
        &out, "poison"
    ) >= 3
        && hook_count(&out, "hang") >= 3));
    assert_eq!(hook_count(&out, "critical"), 1);
    monitor.stop();
}

/// The same on a command channel: a command that fails for one job
/// does not hold up another job's alarm.
#[test]
fn a_failing_command_notification_does_not_hold_up_another() {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("notes.jsonl");
    let script = format!(
        "l=$(cat); case \"$l\" in *'\"job\":\"poison\"'*) exit 1;; esac; printf '%s\\n' \"$l\" >> {}",
        out.display()
    );
    let body = format!(
        "[[job]]\nname = \"poison\"\nevery = \"1h\"\n[[job]]\nname = \"critical\"\nevery = \"1h\"\n\n\
         [[notify]]\nkind = \"command\"\ncommand = [\"sh\", \"-c\", {script:?}]\n"
    );
    let monitor = Monitor::start("watcher-a", &body);
    let sender = Client::new([monitor.listen.clone()]).unwrap();
    sender.fail("poison", Some(1), "always refused").unwrap();
    monitor.wait_log("will retry");
    sender
        .fail("critical", Some(1), "must get through")
        .unwrap();
    assert!(
        wait_until(qcic_testkit::WAIT, || hook_count(&out, "critical") == 1),
        "{}",
        monitor.log()
    );
    assert_eq!(hook_count(&out, "poison"), 0);
    monitor.stop();
}

/// A slowloris on the HTTP port: 1 100 connections that each send part of
/// a request header and then a header line now and then, reopened as soon
/// as the watcher closes them, against a watcher limited to 1 024
/// descriptors. A sender connecting meanwhile is heard, its `fail` reaches
/// the webhook, a real client still gets its page, and the watcher counts
/// and logs what it closed.
#[test]
fn a_slowloris_on_the_http_port_blinds_nothing() {
    use std::io::Write;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    const FLOOD: usize = 1100;
    // This test holds the flood's descriptors itself.
    let (_, hard) =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
    assert!(
        hard > 2 * FLOOD as u64,
        "the test needs {} descriptors",
        2 * FLOOD
    );
    nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, hard, hard).unwrap();

    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("hook.jsonl");
    let hook = BadServer::start("webhook", &[out.to_str().unwrap()]);
    let body = format!(
        "[http]\nlisten = \"{{http}}\"\n\n[[job]]\nname = \"etl\"\nevery = \"1h\"\n\n\
         [[notify]]\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{}/\"\n",
        hook.port
    );
    let monitor = Monitor::start_wrapped(
        &["prlimit", "--nofile=1024:1024", "--"],
        "watcher-a",
        "",
        &body,
        &[],
    );
    let stop = Arc::new(AtomicBool::new(false));
    let reopened = Arc::new(AtomicUsize::new(0));
    let flood = {
        let (http, stop, reopened) = (
            monitor.http.clone(),
            Arc::clone(&stop),
            Arc::clone(&reopened),
        );
        std::thread::spawn(move || {
            let open = || {
                let mut s = std::net::TcpStream::connect(&http).ok()?;
                s.set_write_timeout(Some(Duration::from_millis(200))).ok()?;
                s.write_all(b"GET /api/jobs HTTP/1.1\r\nHost: qcic\r\n")
                    .ok()?;
                Some(s)
            };
            let mut conns: Vec<Option<std::net::TcpStream>> = (0..FLOOD).map(|_| open()).collect();
            while !stop.load(Ordering::SeqCst) {
                for slot in &mut conns {
                    let alive = slot
                        .as_mut()
                        .is_some_and(|s| s.write_all(b"X-Slow: 1\r\n").is_ok());
                    if !alive {
                        *slot = open();
                        reopened.fetch_add(1, Ordering::Relaxed);
                    }
                }
                std::thread::sleep(Duration::from_millis(500));
            }
            conns.iter().filter(|c| c.is_some()).count()
        })
    };
    std::thread::sleep(Duration::from_secs(8));
    let descriptors = monitor.descriptors();
    // A sender that connects only now, with the flood in place.
    let sender = Client::new([monitor.listen.clone()]).unwrap();
    sender.fail("etl", Some(2), "during the flood").unwrap();
    assert!(
        wait_until(qcic_testkit::WAIT, || json_lines(&out)
            .iter()
            .any(|n| n["job"] == "etl" && n["event"] == "failed")),
        "the alarm did not reach the webhook during the flood: {}",
        monitor.log()
    );
    let (line, page) = qcic_testkit::http_get(&monitor.http, "/api/jobs");
    assert!(line.contains("200"), "{line}");
    assert!(page.contains("\"etl\""), "{page}");
    let (_, metrics) = qcic_testkit::http_get(&monitor.http, "/metrics");
    stop.store(true, Ordering::SeqCst);
    let held = flood.join().unwrap();
    let closed = qcic_testkit::metric_sum(&metrics, "qcic_local_connections_closed_total");
    eprintln!(
        "slowloris: {held} connections held at the end, {} reopened, the watcher had {descriptors} descriptors open, closed {closed}",
        reopened.load(Ordering::Relaxed)
    );
    assert!(closed > 0, "{metrics}");
    assert!(descriptors < 1024 / 2, "{descriptors} descriptors open");
    let log = monitor.stop();
    assert!(
        log.contains("connections closed before they were answered"),
        "{log}"
    );
    assert!(!log.contains("Too many open files"), "{log}");
}

/// Whether an email's subject speaks of `event` (a digest's counts, or a
/// lone notification's headline).
fn about(mail: &str, event: &str) -> bool {
    qcic_testkit::header(mail, "Subject").is_some_and(|s| {
        s.contains(&format!(" {event}")) || s.contains(&format!(" {} ", event.to_uppercase()))
    })
}

/// A burst: 1,000 jobs go down at once (a network cut at 02:00). With
/// digests on the email channel they reach a real SMTP server as a few
/// emails that together list every incident once, not 1,000 emails; each
/// incident's `recovered` still arrives (as digests too).
#[test]
fn a_thousand_alarms_reach_email_as_a_few_digests_and_each_recovery_follows() {
    const JOBS: usize = 1000;
    let smtp = Smtp::start();
    let mut body = String::new();
    for i in 0..JOBS {
        body.push_str(&format!(
            "[[job]]\nname = \"job-{i:04}\"\nevery = \"4s\"\ngrace = \"0s\"\n"
        ));
    }
    body.push_str(&format!(
        "\n[[notify]]\nkind = \"email\"\nsmtp = \"{}\"\nfrom = \"qcic@example.com\"\n\
         to = [\"ops@example.com\"]\ngroup_wait = \"2s\"\n",
        smtp.url()
    ));
    let monitor = Monitor::start("watcher-a", &body);
    let downs = |mails: &[String]| -> Vec<String> {
        mails
            .iter()
            .filter(|m| about(m, "down"))
            .flat_map(|m| incidents_in(m))
            .collect()
    };
    let mut mails = Vec::new();
    assert!(
        wait_until(Duration::from_secs(60), || {
            mails = smtp.emails();
            downs(&mails).len() >= JOBS
        }),
        "{} incidents listed in {} emails",
        downs(&mails).len(),
        mails.len()
    );
    let listed = downs(&mails);
    let distinct: std::collections::HashSet<&String> = listed.iter().collect();
    assert_eq!(distinct.len(), JOBS, "each incident listed once");
    assert_eq!(listed.len(), JOBS, "no incident listed twice");
    assert!(mails.len() <= 5, "{} emails for one burst", mails.len());
    // The maildir's order is not the arrival order.
    let digest = mails
        .iter()
        .find(|m| qcic_testkit::header(m, "X-Qcic-Digest").is_some())
        .cloned()
        .expect("a digest");
    assert!(
        qcic_testkit::header(&digest, "Subject")
            .is_some_and(|s| s.starts_with("[qcic] ") && s.contains(" notifications: ")),
        "{digest}"
    );
    // Every job reports again: each incident is followed up.
    let sender = Client::new([monitor.listen.clone()]).unwrap();
    for i in 0..JOBS {
        sender.heartbeat(&format!("job-{i:04}")).unwrap();
    }
    let recovered = |mails: &[String]| -> std::collections::HashSet<String> {
        mails
            .iter()
            .filter(|m| about(m, "recovered"))
            .flat_map(|m| incidents_in(m))
            .collect()
    };
    assert!(
        wait_until(Duration::from_secs(60), || {
            mails = smtp.emails();
            recovered(&mails).len() >= JOBS
        }),
        "{} of {JOBS} recoveries listed",
        recovered(&mails).len()
    );
    assert_eq!(
        recovered(&mails),
        distinct.into_iter().cloned().collect(),
        "each incident's recovery names it"
    );
    let log = monitor.stop();
    eprintln!(
        "{} emails for {JOBS} alarms and their recoveries; a digest begins:\n{}",
        mails.len(),
        digest.lines().take(24).collect::<Vec<_>>().join("\n")
    );
    assert!(counter(&log, "digests").unwrap() >= 2, "{log}");
    assert_eq!(counter(&log, "delivered"), Some(2 * JOBS as u64), "{log}");
}
