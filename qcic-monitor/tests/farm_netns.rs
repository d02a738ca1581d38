//! A farm under real network faults: each watcher and the sender in a
//! Linux network namespace of its own, on a bridge in another, and links cut
//! with blackhole routes (no proxy in the path). Needs root (CI runs as
//! root); without it the tests fail and say so.
//!
//! The sender is this test binary itself, started inside its namespace
//! with `QCIC_NETNS_SENDER` set (the `sender_in_a_namespace` "test" then
//! runs the sender loop): a long-lived libzmq PUSH per watcher, so that
//! messages sent while a link is cut are queued and delivered when it heals.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is the failure report"
)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::Duration;

// One scenario at a time (`one_at_a_time`): they share two cores and the
// namespaces' names.
use qcic_testkit::{
    WAIT, is_root, monitor_bin, note_channel, notes, notes_of, one_at_a_time, wait_until,
};
use serde_json::Value;

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("ip (iproute2) is needed");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Namespaces named `qcic<pid>-<name>`, each with one veth onto a bridge
/// in `qcic<pid>-hub`, addresses 10.231.0.x/24 inside them only.
struct Net {
    prefix: String,
    names: Vec<String>,
}

impl Net {
    fn new(names: &[&str]) -> Net {
        assert!(
            is_root(),
            "tests/farm_netns.rs needs root: it makes network namespaces (CI runs as root)"
        );
        sweep_stale();
        let prefix = format!("qcic{}", std::process::id());
        let hub = format!("{prefix}-hub");
        ip(&["netns", "add", &hub]);
        ip(&["-n", &hub, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &hub, "link", "set", "br0", "up"]);
        let net = Net {
            prefix: prefix.clone(),
            names: names.iter().map(|n| (*n).to_owned()).collect(),
        };
        for (i, name) in names.iter().enumerate() {
            let ns = net.ns(name);
            ip(&["netns", "add", &ns]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
            let (a, b) = (
                format!("q{}a{i}", std::process::id() % 100_000),
                format!("q{}b{i}", std::process::id() % 100_000),
            );
            ip(&["link", "add", &a, "type", "veth", "peer", "name", &b]);
            ip(&["link", "set", &a, "netns", &ns]);
            ip(&["link", "set", &b, "netns", &hub]);
            ip(&["-n", &ns, "link", "set", &a, "name", "eth0"]);
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{}/24", net.addr(name)),
                "dev",
                "eth0",
            ]);
            ip(&["-n", &ns, "link", "set", "eth0", "up"]);
            ip(&["-n", &hub, "link", "set", &b, "master", "br0"]);
            ip(&["-n", &hub, "link", "set", &b, "up"]);
        }
        net
    }

    fn ns(&self, name: &str) -> String {
        format!("{}-{name}", self.prefix)
    }

    fn addr(&self, name: &str) -> String {
        let i = self.names.iter().position(|n| n == name).unwrap();
        format!("10.231.0.{}", 10 + i)
    }

    /// Packets from `from` to `to` are dropped (`cut`), or pass again.
    fn route(&self, from: &str, to: &str, cut: bool) {
        let op = if cut { "add" } else { "del" };
        let target = format!("{}/32", self.addr(to));
        ip(&["-n", &self.ns(from), "route", op, "blackhole", &target]);
    }

    /// Both ways between `a` and `b`.
    fn both(&self, a: &str, b: &str, cut: bool) {
        self.route(a, b, cut);
        self.route(b, a, cut);
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for name in &self.names {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.ns(name)])
                .status();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &format!("{}-hub", self.prefix)])
            .status();
    }
}

/// Namespaces left by a run that was killed midway.
fn sweep_stale() {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(rest) = name.strip_prefix("qcic") else {
            continue;
        };
        let pid: u32 = rest
            .split('-')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        if pid != 0 && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

/// A watcher in its namespace.
struct Watcher {
    child: Option<Child>,
    dir: tempfile::TempDir,
    config: PathBuf,
    ns: String,
}

impl Watcher {
    fn start(net: &Net, id: &str, peers: &[&str], body: &str) -> Watcher {
        let dir = tempfile::tempdir().unwrap();
        let mut config = format!(
            "[monitor]\nid = \"{id}\"\nlisten = [\"tcp://0.0.0.0:7700\"]\ncontrol = \"{}\"\nstate = \"{}\"\n\n\
             [farm]\ngossip = \"{}:7790\"\ngossip_interval = \"100ms\"\ndead_after = \"1s\"\npeer_timeout = \"2s\"\nisolation_jobs = 2\nkey_file = \"{}\"\n\n",
            dir.path().join("control.sock").display(),
            dir.path().join("state.db").display(),
            net.addr(id),
            dir.path().join("farm.key").display(),
        );
        // Sealed gossip, as in production: the seal under real link cuts.
        qcic_testkit::write_farm_key(&dir.path().join("farm.key"));
        for p in peers {
            config.push_str(&format!(
                "[[peer]]\nid = \"{p}\"\ngossip = \"{}:7790\"\n\n",
                net.addr(p)
            ));
        }
        config.push_str(body);
        let path = dir.path().join("monitor.toml");
        fs::write(&path, config).unwrap();
        let mut w = Watcher {
            child: None,
            dir,
            config: path,
            ns: net.ns(id),
        };
        w.spawn();
        w
    }

    fn spawn(&mut self) {
        let log = fs::File::create(self.dir.path().join("stderr.log")).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns])
            .arg(monitor_bin())
            .arg("--config")
            .arg(&self.config)
            .env("QCIC_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        assert!(
            wait_until(WAIT, || self.log().contains("joined the watcher farm")),
            "watcher did not start:\n{}",
            self.log()
        );
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    /// kill -9.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The sender process (this binary, in the sender's namespace).
struct Sender(Child);

impl Sender {
    fn start(net: &Net, watchers: &[&str], job: &str) -> Sender {
        let endpoints: Vec<String> = watchers
            .iter()
            .map(|w| format!("tcp://{}:7700", net.addr(w)))
            .collect();
        let child = Command::new("ip")
            .args(["netns", "exec", &net.ns("sender")])
            .arg(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "sender_in_a_namespace",
                "--nocapture",
                "--include-ignored",
            ])
            .env(
                "QCIC_NETNS_SENDER",
                format!("{job};{}", endpoints.join(",")),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Sender(child)
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Not a test: the sender loop, run when this binary is started by
/// [`Sender::start`] (heartbeats every 300 ms; stops when the file
/// `<tmp>/qcic-netns-stop-<job>` exists, and keeps its sockets open).
#[test]
#[ignore = "run only as the sender of tests/farm_netns.rs"]
fn sender_in_a_namespace() {
    let Ok(spec) = std::env::var("QCIC_NETNS_SENDER") else {
        return;
    };
    let (job, endpoints) = spec.split_once(';').unwrap();
    let client = qcic_sdk::Client::new(endpoints.split(',').map(str::to_owned)).unwrap();
    let stop = stop_file(job);
    loop {
        if !stop.exists() {
            let _ = client.heartbeat(job);
        }
        sleep(Duration::from_millis(300));
    }
}

/// Watchers `a` and `b` in their namespaces, watching one job heartbeating
/// every 1 s (grace 1 s), with every notification written to `out`.
struct Pair {
    // Dropped in this order: the watchers, then their namespaces.
    a: Watcher,
    _b: Watcher,
    net: Net,
    _dir: tempfile::TempDir,
    out: PathBuf,
    job: String,
}

impl Pair {
    /// `tag` tells the scenario's job (and its sender's stop file) apart.
    fn start(tag: char) -> Pair {
        let net = Net::new(&["a", "b", "sender"]);
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("notes.jsonl");
        let job = format!("{tag}{}", std::process::id());
        let _ = fs::remove_file(stop_file(&job));
        let body = format!(
            "[[job]]\nname = \"{job}\"\nevery = \"1s\"\ngrace = \"1s\"\n{}",
            note_channel(&out)
        );
        let a = Watcher::start(&net, "a", &["b"], &body);
        let b = Watcher::start(&net, "b", &["a"], &body);
        Pair {
            a,
            _b: b,
            net,
            _dir: dir,
            out,
            job,
        }
    }

    /// The job's sender, reaching both watchers, heard by both (3 s).
    fn sender(&self) -> Sender {
        let s = Sender::start(&self.net, &["a", "b"], &self.job);
        sleep(Duration::from_secs(3));
        s
    }
}

fn stop_file(job: &str) -> PathBuf {
    std::env::temp_dir().join(format!("qcic-netns-stop-{job}"))
}

fn downs(out: &Path, event: &str, job: &str) -> Vec<Value> {
    notes_of(out, event, job)
}

/// Defect 1 of issue 14, with real cuts: a watcher partitioned from its
/// peer twice is reported twice, each outage its own incident, each closed.
#[test]
fn a_peer_partitioned_twice_is_reported_twice() {
    let _one = one_at_a_time();
    let net = Net::new(&["a", "b", "sender"]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("notes.jsonl");
    let body = format!(
        "[[job]]\nname = \"p\"\nevery = \"1s\"\ngrace = \"1s\"\n{}",
        note_channel(&out)
    );
    let _a = Watcher::start(&net, "a", &["b"], &body);
    let _b = Watcher::start(&net, "b", &["a"], &body);
    let _s = Sender::start(&net, &["a", "b"], "p");
    sleep(Duration::from_secs(3));
    for round in 1..=2 {
        net.both("a", "b", true);
        let mut got = Vec::new();
        assert!(
            wait_until(WAIT, || {
                got = downs(&out, "peer_down", "b");
                got.len() >= round
            }),
            "round {round}: no peer_down for b: {:#?}",
            notes(&out)
        );
        net.both("a", "b", false);
        assert!(
            wait_until(WAIT, || notes_of(&out, "recovered", "b").len() >= round),
            "round {round}: no recovered for b: {:#?}",
            notes(&out)
        );
        sleep(Duration::from_secs(2));
    }
    let ids: std::collections::HashSet<String> = downs(&out, "peer_down", "b")
        .iter()
        .map(|n| n["incident"].as_str().unwrap().to_owned())
        .collect();
    assert!(ids.len() >= 2, "two partitions, two incidents: {ids:?}");
    // The job was heard by both all along: no alarm for it.
    assert!(notes_of(&out, "down", "p").is_empty(), "{:#?}", notes(&out));
}

/// Defect 4 of issue 14, with real cuts: while the sender's links are cut
/// it queues heartbeats, then stops; when the links heal the queued ones
/// arrive: no false `recovered`, no second `down`.
#[test]
fn messages_queued_during_a_cut_are_not_new_life() {
    let _one = one_at_a_time();
    let farm = Pair::start('q');
    let (net, out, job) = (&farm.net, farm.out.clone(), farm.job.clone());
    let _s = farm.sender();
    // Cut the sender off from both watchers; it keeps sending (queued) for 2 s, then stops.
    for w in ["a", "b"] {
        net.both("sender", w, true);
    }
    sleep(Duration::from_secs(2));
    fs::write(stop_file(&job), "").unwrap();
    assert!(
        wait_until(WAIT, || !downs(&out, "down", &job).is_empty()),
        "no down: {:#?}",
        notes(&out)
    );
    sleep(Duration::from_secs(3));
    for w in ["a", "b"] {
        net.both("sender", w, false);
    }
    // The queued heartbeats arrive (libzmq reconnects within a second or so).
    sleep(Duration::from_secs(8));
    let all = notes(&out);
    let _ = fs::remove_file(stop_file(&job));
    assert!(
        notes_of(&out, "recovered", &job).is_empty(),
        "queued messages taken as life: {all:#?}"
    );
    assert_eq!(downs(&out, "down", &job).len(), 1, "{all:#?}");
}

/// The notifications `watcher` sent of `event` for `job`.
fn sent_by(out: &Path, event: &str, job: &str, watcher: &str) -> Vec<Value> {
    notes_of(out, event, job)
        .into_iter()
        .filter(|n| n["watcher"] == watcher)
        .collect()
}

fn farm_view(n: &Value, key: &str) -> Value {
    n["farm"][key].clone()
}

/// A job whose link to one watcher is cut is still heard by the other:
/// nothing is raised.
#[test]
fn a_job_link_cut_to_one_watcher_raises_nothing() {
    let _one = one_at_a_time();
    let farm = Pair::start('l');
    let (net, out, job) = (&farm.net, farm.out.clone(), farm.job.clone());
    let _s = farm.sender();
    net.both("sender", "b", true);
    sleep(Duration::from_secs(8));
    net.both("sender", "b", false);
    sleep(Duration::from_secs(2));
    assert!(
        notes(&out).iter().all(|n| n["job"] != job.as_str()),
        "{:#?}",
        notes(&out)
    );
}

/// kill -9 of one watcher: the other reports it, then takes over the
/// job's alarm, labelled as sent with a peer unreachable.
#[test]
fn a_killed_watchers_duty_is_taken_over() {
    let _one = one_at_a_time();
    let mut farm = Pair::start('k');
    let (out, job) = (farm.out.clone(), farm.job.clone());
    let _s = farm.sender();
    farm.a.kill();
    assert!(
        wait_until(WAIT, || !sent_by(&out, "peer_down", "a", "b").is_empty()),
        "{:#?}",
        notes(&out)
    );
    fs::write(stop_file(&job), "").unwrap();
    assert!(
        wait_until(WAIT, || !sent_by(&out, "down", &job, "b").is_empty()),
        "{:#?}",
        notes(&out)
    );
    let _ = fs::remove_file(stop_file(&job));
    let down = &sent_by(&out, "down", &job, "b")[0];
    assert_eq!(farm_view(down, "reachable"), 1);
    assert_eq!(farm_view(down, "partition_suspected"), true);
}

/// Defect 2: a watcher cut from every sender and from its peer says so
/// once, holds its per-job alarms, and when the network heals sends none of
/// them: its peer heard every job all along.
#[test]
fn an_isolated_watcher_that_rejoins_sends_no_false_down() {
    let _one = one_at_a_time();
    let net = Net::new(&["a", "b", "sender"]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("notes.jsonl");
    let jobs: Vec<String> = (0..3)
        .map(|i| format!("i{}x{i}", std::process::id()))
        .collect();
    let mut body = String::new();
    for j in &jobs {
        let _ = fs::remove_file(stop_file(j));
        body.push_str(&format!(
            "[[job]]\nname = \"{j}\"\nevery = \"1s\"\ngrace = \"1s\"\n\n"
        ));
    }
    body.push_str(&note_channel(&out));
    let _a = Watcher::start(&net, "a", &["b"], &body);
    let _b = Watcher::start(&net, "b", &["a"], &body);
    let _senders: Vec<Sender> = jobs
        .iter()
        .map(|j| Sender::start(&net, &["a", "b"], j))
        .collect();
    sleep(Duration::from_secs(3));
    for other in ["a", "sender"] {
        net.both("b", other, true);
    }
    assert!(
        wait_until(WAIT, || !sent_by(&out, "watcher_isolated", "b", "b")
            .is_empty()),
        "{:#?}",
        notes(&out)
    );
    sleep(Duration::from_secs(2));
    for other in ["a", "sender"] {
        net.both("b", other, false);
    }
    sleep(Duration::from_secs(10));
    let all = notes(&out);
    for j in &jobs {
        assert!(
            notes_of(&out, "down", j).is_empty(),
            "a false down for {j}: {all:#?}"
        );
    }
    assert_eq!(
        sent_by(&out, "watcher_isolated", "b", "b").len(),
        1,
        "{all:#?}"
    );
    assert_eq!(sent_by(&out, "recovered", "b", "b").len(), 1, "{all:#?}");
}

/// Defect 3: two processes report one job; one reaches both watchers, the
/// other only b. When both stop, the watchers name the outage alike: one
/// down goes out, not one per watcher.
#[test]
fn watchers_that_heard_different_last_messages_send_one_down() {
    let _one = one_at_a_time();
    let farm = Pair::start('d');
    let (net, out, job) = (&farm.net, farm.out.clone(), farm.job.clone());
    let _both = Sender::start(net, &["a", "b"], &job);
    let _only_b = Sender::start(net, &["b"], &job);
    sleep(Duration::from_secs(4));
    fs::write(stop_file(&job), "").unwrap();
    assert!(
        wait_until(WAIT, || !notes_of(&out, "down", &job).is_empty()),
        "{:#?}",
        notes(&out)
    );
    sleep(Duration::from_secs(8));
    let _ = fs::remove_file(stop_file(&job));
    let downs = notes_of(&out, "down", &job);
    assert_eq!(downs.len(), 1, "one outage, one down: {downs:#?}");
}

/// A full partition between the watchers, the job heard by both, then
/// stopped: each side can only speak for itself, so each copy of the
/// `down` says `partition_suspected`. When the partition heals and the job
/// is back, every alarm gets exactly one follow-up (the two sides' senders
/// of it do not both close it), and nothing else is raised for the job.
#[test]
fn a_full_partition_and_heal_labels_every_copy_and_closes_each_alarm_once() {
    let _one = one_at_a_time();
    let farm = Pair::start('f');
    let (net, out, job) = (&farm.net, farm.out.clone(), farm.job.clone());
    let _s = farm.sender();
    net.both("a", "b", true);
    assert!(
        wait_until(WAIT, || !sent_by(&out, "peer_down", "b", "a").is_empty()
            && !sent_by(&out, "peer_down", "a", "b").is_empty()),
        "both sides report the other: {:#?}",
        notes(&out)
    );
    fs::write(stop_file(&job), "").unwrap();
    assert!(
        wait_until(WAIT, || notes_of(&out, "down", &job).len() >= 2),
        "both sides raise the job's down: {:#?}",
        notes(&out)
    );
    net.both("a", "b", false);
    let _ = fs::remove_file(stop_file(&job));
    let closed = |event: &str, subject: &str| {
        notes_of(&out, event, subject)
            .iter()
            .map(|n| n["incident"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert!(
        wait_until(WAIT, || !closed("recovered", &job).is_empty()
            && closed("recovered", "a").len() + closed("recovered", "b").len()
                >= 2),
        "the job's and the peers' alarms are closed: {:#?}",
        notes(&out)
    );
    // Time for a second copy of any follow-up to show.
    sleep(Duration::from_secs(6));
    let all = notes(&out);
    for n in notes_of(&out, "down", &job) {
        assert_eq!(
            farm_view(&n, "partition_suspected"),
            true,
            "a copy sent during the partition is labelled: {all:#?}"
        );
    }
    for (event, subject) in [
        ("down", job.as_str()),
        ("peer_down", "a"),
        ("peer_down", "b"),
    ] {
        for n in notes_of(&out, event, subject) {
            let id = n["incident"].as_str().unwrap();
            let follow_ups = all
                .iter()
                .filter(|f| {
                    f["incident"] == id && (f["event"] == "recovered" || f["event"] == "retracted")
                })
                .count();
            assert_eq!(follow_ups, 1, "{event} {id}: one follow-up: {all:#?}");
        }
    }
    assert_eq!(
        notes_of(&out, "down", &job)
            .iter()
            .map(|n| n["incident"].clone())
            .collect::<std::collections::HashSet<_>>()
            .len(),
        1,
        "one outage, one name on both sides: {all:#?}"
    );
}
