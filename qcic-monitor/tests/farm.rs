//! Watcher farms, end to end: real qcic-monitor processes gossiping over
//! UDP, a real sender (qcic-sdk, libzmq PUSH to every watcher), and links
//! cut by fault-injecting proxies between them (TCP for the job's messages,
//! UDP for the gossip). Watchers are killed with SIGKILL and frozen with
//! SIGSTOP. Every scenario counts the notifications each watcher's command
//! channel received.
//!
//! Timings (the farm example's defaults are slower; see README): gossip
//! every 100 ms, a peer dead after 1 s of silence, `peer_timeout` 2 s; job
//! `p` heartbeats every 300 ms and is down 2 s (every 1 s + grace 1 s)
//! after its last message.

#![expect(clippy::unwrap_used, reason = "tests: a panic is the failure report")]

use std::collections::HashMap;
use std::fs;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

// The scenarios share two cores: one at a time (`one_at_a_time`) keeps
// their timing honest.
use qcic_testkit::{ReservedPort, free_port, one_at_a_time, reserve_port, wait_until};
use serde_json::Value;

// ---- fault-injecting proxies ----

/// A TCP proxy; `cut` closes its connections and refuses new ones.
struct TcpProxy {
    port: u16,
    cut: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl TcpProxy {
    fn start(target: u16) -> TcpProxy {
        // Bound to a port the kernel picks, and kept: a port asked for
        // and bound later can be taken meanwhile by some connection's
        // ephemeral port (seen once: AddrInUse).
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (c, k) = (Arc::clone(&cut), Arc::clone(&conns));
        thread::spawn(move || {
            for inbound in listener.incoming() {
                let Ok(inbound) = inbound else { continue };
                if c.load(Ordering::SeqCst) {
                    let _ = inbound.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(outbound) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                let mut list = k.lock().unwrap();
                list.push(inbound.try_clone().unwrap());
                list.push(outbound.try_clone().unwrap());
                drop(list);
                pump(inbound.try_clone().unwrap(), outbound.try_clone().unwrap());
                pump(outbound, inbound);
            }
        });
        TcpProxy { port, cut, conns }
    }

    fn set_cut(&self, cut: bool) {
        self.cut.store(cut, Ordering::SeqCst);
        if cut {
            for s in self.conns.lock().unwrap().drain(..) {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream) {
    thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Both);
    });
}

/// A UDP proxy in front of one watcher's gossip port: each source gets
/// its own upstream socket, so replies find their way back. `cut` drops
/// every datagram both ways.
struct UdpProxy {
    port: u16,
    cut: Arc<AtomicBool>,
}

impl UdpProxy {
    fn start(target: u16) -> UdpProxy {
        let front = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = front.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let c = Arc::clone(&cut);
        thread::spawn(move || {
            let mut upstream: HashMap<SocketAddr, UdpSocket> = HashMap::new();
            let mut buf = [0u8; 65_536];
            loop {
                let Ok((n, src)) = front.recv_from(&mut buf) else {
                    continue;
                };
                if c.load(Ordering::SeqCst) {
                    continue;
                }
                let up = upstream.entry(src).or_insert_with(|| {
                    let up = UdpSocket::bind("127.0.0.1:0").unwrap();
                    up.connect(("127.0.0.1", target)).unwrap();
                    let (back, front, c) = (
                        up.try_clone().unwrap(),
                        front.try_clone().unwrap(),
                        Arc::clone(&c),
                    );
                    // Errors are skipped, not fatal: while the watcher
                    // behind is down, each datagram sent to it comes back
                    // as ECONNREFUSED on this connected socket, and the
                    // restarted watcher's replies must still get through.
                    thread::spawn(move || {
                        let mut buf = [0u8; 65_536];
                        loop {
                            if let Ok(n) = back.recv(&mut buf) {
                                if !c.load(Ordering::SeqCst) {
                                    let _ = front.send_to(&buf[..n], src);
                                }
                            }
                        }
                    });
                    up
                });
                let _ = up.send(&buf[..n]);
            }
        });
        UdpProxy { port, cut }
    }

    fn set_cut(&self, cut: bool) {
        self.cut.store(cut, Ordering::SeqCst);
    }
}

// ---- watchers ----

struct Watcher {
    id: String,
    dir: PathBuf,
    child: Option<Child>,
    /// Where the job's messages come in (through `job_link`).
    job_link: TcpProxy,
    /// In front of its gossip port.
    gossip_link: UdpProxy,
    listen: u16,
    gossip: u16,
    /// `[http] listen`: the farm's health is read there.
    http: String,
    /// The listen and HTTP ports, held across the watcher's restarts.
    _held: [ReservedPort; 2],
}

impl Watcher {
    fn new(id: &str, root: &std::path::Path) -> Watcher {
        let held = [reserve_port(), reserve_port()];
        let listen = held[0].port();
        // Bound by chitchat without `SO_REUSEADDR`: no reservation holds it.
        let gossip = free_port();
        let dir = root.join(id);
        fs::create_dir_all(&dir).unwrap();
        Watcher {
            id: id.into(),
            dir,
            child: None,
            job_link: TcpProxy::start(listen),
            gossip_link: UdpProxy::start(gossip),
            listen,
            gossip,
            http: held[1].addr(),
            _held: held,
        }
    }

    /// A metric from `/metrics`.
    fn metric(&self, name: &str) -> u64 {
        qcic_testkit::metric_sum(&qcic_testkit::http_get(&self.http, "/metrics").1, name)
    }

    /// `/api/peers`: (id, reachable).
    fn peers_seen(&self) -> Vec<(String, bool)> {
        let body = qcic_testkit::http_get(&self.http, "/api/peers").1;
        let peers: Vec<Value> = serde_json::from_str(&body).unwrap();
        peers
            .iter()
            .map(|p| {
                (
                    p["id"].as_str().unwrap().to_owned(),
                    p["live"].as_bool().unwrap(),
                )
            })
            .collect()
    }

    fn out(&self) -> PathBuf {
        self.dir.join("notifications.jsonl")
    }

    /// Writes the config and starts the binary. `channel_ok`: whether its
    /// notification command succeeds.
    fn start(&mut self, peers: &[(&str, u16)], jobs: &str, channel_ok: bool) {
        let peer_list: String = peers
            .iter()
            .map(|(id, port)| format!("[[peer]]\nid = \"{id}\"\ngossip = \"127.0.0.1:{port}\"\n"))
            .collect();
        let command = if channel_ok {
            format!("cat >> {}", self.out().display())
        } else {
            "cat > /dev/null; exit 1".to_owned()
        };
        let config = format!(
            "[monitor]\nid = \"{id}\"\nlisten = [\"tcp://127.0.0.1:{listen}\"]\ncontrol = \"{dir}/control.sock\"\nstate = \"{dir}/state.db\"\n\n\
             [farm]\ngossip = \"127.0.0.1:{gossip}\"\nadvertise = \"127.0.0.1:{adv}\"\ngossip_interval = \"100ms\"\ndead_after = \"1s\"\npeer_timeout = \"2s\"\nkey_file = \"{dir}/farm.key\"\n\n\
             [http]\nlisten = \"{http}\"\n\n{peer_list}\n{jobs}\n[[notify]]\nkind = \"command\"\ncommand = [\"sh\", \"-c\", \"{command}\"]\n",
            id = self.id,
            listen = self.listen,
            dir = self.dir.display(),
            gossip = self.gossip,
            adv = self.gossip_link.port,
            http = self.http,
        );
        let path = self.dir.join("monitor.toml");
        fs::write(&path, config).unwrap();
        // Sealed gossip, as a farm in production should run; the seal
        // itself is tested in farm_sealed.rs.
        qcic_testkit::write_farm_key(&self.dir.join("farm.key"));
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("stderr.log"))
            .unwrap();
        self.child = Some(
            Command::new(env!("CARGO_BIN_EXE_qcic-monitor"))
                .arg("--config")
                .arg(&path)
                .env(
                    "QCIC_LOG",
                    std::env::var("FARM_LOG").unwrap_or_else(|_| "info".into()),
                )
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap(),
        );
        assert!(
            wait_until(qcic_testkit::WAIT, || self
                .log()
                .contains("qcic-monitor started")),
            "{} did not start:\n{}",
            self.id,
            self.log()
        );
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default()
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().map(Child::id).unwrap();
        assert!(
            Command::new("kill")
                .args([sig, &pid.to_string()])
                .status()
                .unwrap()
                .success()
        );
    }

    fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `qcic-monitor ack INCIDENT --by BY` on its control socket.
    fn ack(&self, incident: &str, by: &str) {
        let out = Command::new(env!("CARGO_BIN_EXE_qcic-monitor"))
            .args(["ack", incident, "--by", by, "--control"])
            .arg(self.dir.join("control.sock"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Every notification this watcher's channel received.
    fn notes(&self) -> Vec<Value> {
        fs::read_to_string(self.out())
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Those of `job` with `event`.
    fn count(&self, job: &str, event: &str) -> usize {
        self.notes()
            .iter()
            .filter(|n| n["job"] == job && n["event"] == event)
            .count()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            let _ = Command::new("kill")
                .args(["-CONT", &child.id().to_string()])
                .status();
        }
        self.kill9();
    }
}

/// A farm of watchers `ids`, every one listing the others.
struct Farm {
    _root: tempfile::TempDir,
    w: Vec<Watcher>,
}

const JOB_P: &str = "[[job]]\nname = \"p\"\nevery = \"1s\"\ngrace = \"1s\"\n";

impl Farm {
    fn new(n: usize) -> Farm {
        let root = tempfile::tempdir().unwrap();
        let w = (0..n)
            .map(|i| Watcher::new(&format!("w{}", (b'a' + i as u8) as char), root.path()))
            .collect();
        Farm { _root: root, w }
    }

    fn peers(&self, i: usize) -> Vec<(String, u16)> {
        self.w
            .iter()
            .enumerate()
            .filter(|(k, _)| *k != i)
            .map(|(_, w)| (w.id.clone(), w.gossip_link.port))
            .collect()
    }

    fn start(&mut self, i: usize, jobs: &str, channel_ok: bool) {
        let peers = self.peers(i);
        let peers: Vec<(&str, u16)> = peers.iter().map(|(id, p)| (id.as_str(), *p)).collect();
        self.w[i].start(&peers, jobs, channel_ok);
    }

    fn start_all(&mut self, jobs: &str) {
        for i in 0..self.w.len() {
            self.start(i, jobs, true);
        }
        // Every watcher sees every other before the scenario begins.
        let n = self.w.len() - 1;
        for w in &self.w {
            assert!(
                wait_until(qcic_testkit::WAIT, || w
                    .log()
                    .matches("a farm peer is reachable")
                    .count()
                    >= n),
                "{} never saw its peers:\n{}",
                w.id,
                w.log()
            );
        }
    }

    /// Cuts (or heals) every gossip link.
    fn cut_gossip(&self, cut: bool) {
        for w in &self.w {
            w.gossip_link.set_cut(cut);
        }
    }

    fn total(&self, job: &str, event: &str) -> usize {
        self.w.iter().map(|w| w.count(job, event)).sum()
    }

    fn all_notes(&self) -> Vec<Value> {
        self.w.iter().flat_map(Watcher::notes).collect()
    }
}

/// A job sending heartbeats every 300 ms to every watcher of the farm
/// (through their proxies) until stopped.
struct Job {
    run: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Job {
    fn start(name: &str, farm: &Farm) -> Job {
        let endpoints: Vec<String> = farm
            .w
            .iter()
            .map(|w| format!("tcp://127.0.0.1:{}", w.job_link.port))
            .collect();
        let run = Arc::new(AtomicBool::new(true));
        let r = Arc::clone(&run);
        let name = name.to_owned();
        let thread = thread::spawn(move || {
            let client = qcic_sdk::Client::new(endpoints).unwrap();
            while r.load(Ordering::SeqCst) {
                let _ = client.heartbeat(&name);
                thread::sleep(Duration::from_millis(300));
            }
            client.close(Duration::from_millis(200));
        });
        Job {
            run,
            thread: Some(thread),
        }
    }

    fn stop(&mut self) {
        self.run.store(false, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The common start: two watchers that see each other, and job `p`
/// heartbeating to both for `warm_up`.
fn pair_with_p(warm_up: Duration) -> (std::sync::MutexGuard<'static, ()>, Farm, Job) {
    let serial = one_at_a_time();
    let mut farm = Farm::new(2);
    farm.start_all(JOB_P);
    let job = Job::start("p", &farm);
    thread::sleep(warm_up);
    (serial, farm, job)
}

/// Waits up to `within` for `cond`; returns how long it took.
fn within(within: Duration, cond: impl FnMut() -> bool) -> Option<Duration> {
    let t0 = Instant::now();
    wait_until(within, cond).then(|| t0.elapsed())
}

fn settle() {
    // Long enough for a rank-1 watcher's peer_timeout and a gossip round
    // or two: anything that was going to be sent has been.
    thread::sleep(Duration::from_secs(4));
}

fn downs(farm: &Farm) -> Vec<Value> {
    farm.all_notes()
        .into_iter()
        .filter(|n| n["job"] == "p" && n["event"] == "down")
        .collect()
}

// ---- the scenarios ----

/// 1. P stops: exactly one `down`, from the watcher ranked first for its
///    incident; one `recovered` when P resumes.
#[test]
fn one_down_one_recovered() {
    let (_serial, farm, mut job) = pair_with_p(Duration::from_secs(2));
    job.stop();
    assert!(within(Duration::from_secs(8), || farm.total("p", "down") >= 1).is_some());
    settle();
    let d = downs(&farm);
    assert_eq!(d.len(), 1, "exactly one down: {d:?}");
    assert_eq!(d[0]["farm"]["rank"], 0, "sent by rank 0: {d:?}");
    assert_eq!(d[0]["farm"]["took_over"], false);
    assert_eq!(d[0]["farm"]["reachable"], 2);
    assert_eq!(d[0]["farm"]["partition_suspected"], false);
    let _job = Job::start("p", &farm);
    assert!(within(Duration::from_secs(8), || farm.total("p", "recovered") >= 1).is_some());
    settle();
    assert_eq!(farm.total("p", "recovered"), 1);
    assert_eq!(farm.total("p", "down"), 1);
    assert_eq!(farm.total("p", "retracted"), 0);
    let up: Vec<Value> = farm
        .all_notes()
        .into_iter()
        .filter(|n| n["event"] == "recovered")
        .collect();
    assert_eq!(up[0]["incident"], d[0]["incident"]);
    assert_eq!(
        up[0]["watcher"], d[0]["watcher"],
        "the sender of the alarm closes it"
    );
    let quiet = farm
        .w
        .iter()
        .find(|w| d[0]["watcher"] != w.id.as_str())
        .unwrap();
    assert!(
        quiet.metric("qcic_farm_suppressed_total") >= 2,
        "the other watcher held down and recovered, then skipped both"
    );
    for w in &farm.w {
        assert_eq!(w.metric("qcic_peers_seen"), 1);
        assert_eq!(w.metric("qcic_peers_configured"), 1);
        assert_eq!(w.metric("qcic_farm_duplicate_sends_total"), 0);
    }
}

/// No reminder of p is raised more than a second after `since` (unix
/// ms), over the next 4 s.
fn no_reminders_after(farm: &Farm, since: u64) {
    thread::sleep(Duration::from_secs(4));
    let late: Vec<Value> = downs(farm)
        .into_iter()
        .filter(|n| n["detected_ms"].as_u64().unwrap() > since + 1000)
        .collect();
    assert!(
        late.is_empty(),
        "reminders after the acknowledgement: {late:?}"
    );
}

/// An acknowledgement taken by one watcher reaches the other through the
/// gossip: the watcher sending the reminders stops, and its follow-up says
/// who acknowledged.
#[test]
fn an_acknowledgement_reaches_every_watcher() {
    let serial = one_at_a_time();
    let mut farm = Farm::new(2);
    farm.start_all(&format!("{JOB_P}repeat = \"1s\"\n"));
    let mut job = Job::start("p", &farm);
    thread::sleep(Duration::from_secs(2));
    job.stop();
    assert!(
        within(Duration::from_secs(8), || farm.total("p", "down") >= 2).is_some(),
        "the alarm and a reminder"
    );
    let down = downs(&farm).remove(0);
    let sender = down["watcher"].as_str().unwrap().to_owned();
    let other = farm.w.iter().find(|w| w.id != sender).unwrap();
    other.ack(down["incident"].as_str().unwrap(), "ana");
    no_reminders_after(&farm, qcic_testkit::now_ms());
    let _job = Job::start("p", &farm);
    assert!(within(Duration::from_secs(8), || farm.total("p", "recovered") >= 1).is_some());
    settle();
    let up: Vec<Value> = farm
        .all_notes()
        .into_iter()
        .filter(|n| n["event"] == "recovered")
        .collect();
    assert_eq!(up.len(), 1, "{up:?}");
    assert_eq!(up[0]["watcher"], sender.as_str());
    assert_eq!(
        up[0]["acked"]["by"], "ana",
        "the sender learnt the acknowledgement: {up:?}"
    );
    drop(serial);
}

/// The watcher that took an acknowledgement is killed and its state wiped:
/// it learns the acknowledgement back from its peer's copy, and neither
/// watcher reminds.
#[test]
fn a_wiped_watcher_learns_an_acknowledgement_back() {
    let serial = one_at_a_time();
    let mut farm = Farm::new(2);
    let jobs = format!("{JOB_P}repeat = \"1s\"\n");
    farm.start_all(&jobs);
    let mut job = Job::start("p", &farm);
    thread::sleep(Duration::from_secs(2));
    job.stop();
    assert!(within(Duration::from_secs(8), || farm.total("p", "down") >= 1).is_some());
    let down = downs(&farm).remove(0);
    let incident = down["incident"].as_str().unwrap().to_owned();
    let acker = 0;
    farm.w[acker].ack(&incident, "ana");
    // The peer has it (and its copy is in the gossip) before the acker dies.
    let acked_at = |w: &Watcher| {
        // Restarted, its HTTP port may not be bound yet.
        if TcpStream::connect(&w.http).is_err() {
            return false;
        }
        let body = qcic_testkit::http_get(&w.http, "/api/jobs").1;
        let jobs: Vec<Value> = serde_json::from_str(&body).unwrap_or_default();
        jobs.iter()
            .flat_map(|j| j["incidents"].as_array().cloned().unwrap_or_default())
            .any(|i| i["id"] == incident.as_str() && i["acked"]["by"] == "ana")
    };
    assert!(within(Duration::from_secs(5), || acked_at(&farm.w[1])).is_some());
    farm.w[acker].kill9();
    let _ = fs::remove_file(farm.w[acker].dir.join("state.db"));
    thread::sleep(Duration::from_millis(500));
    farm.start(acker, &jobs, true);
    assert!(
        within(Duration::from_secs(15), || acked_at(&farm.w[acker])).is_some(),
        "the wiped watcher never learnt the acknowledgement back:\n{}",
        farm.w[acker].log()
    );
    no_reminders_after(&farm, qcic_testkit::now_ms());
    drop(serial);
}

/// 2. A killed, then P stops: B sends `peer_down`, then P's `down`.
#[test]
fn killed_peer_is_taken_over() {
    let (_serial, mut farm, mut job) = pair_with_p(Duration::from_secs(1));
    farm.w[0].kill9();
    let peer_down = within(Duration::from_secs(10), || {
        farm.w[1].count("wa", "peer_down") == 1
    });
    assert!(peer_down.is_some(), "{}", farm.w[1].log());
    job.stop();
    let took = within(Duration::from_secs(10), || {
        farm.w[1].count("p", "down") == 1
    });
    assert!(took.is_some(), "{}", farm.w[1].log());
    settle();
    assert_eq!(farm.w[1].count("p", "down"), 1);
    assert_eq!(farm.w[1].count("wa", "peer_down"), 1);
    let d = downs(&farm);
    assert_eq!(d[0]["farm"]["reachable"], 1);
    assert_eq!(d[0]["farm"]["partition_suspected"], true);
    assert_eq!(farm.w[1].peers_seen(), [("wa".to_owned(), false)]);
    let status = Command::new(env!("CARGO_BIN_EXE_qcic-monitor"))
        .args(["status", "--control"])
        .arg(farm.w[1].dir.join("control.sock"))
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&status.stdout);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("wa ") && l.trim_end().ends_with("unreachable")),
        "{table}"
    );
    assert_eq!(farm.w[1].metric("qcic_peers_seen"), 0);
    eprintln!("peer_down after {peer_down:?}, down {took:?} after P stopped");
}

/// 3. A frozen before P's deadline: B sends; A sends nothing once resumed.
#[test]
fn frozen_peer_sends_nothing_after_it_resumes() {
    let (_serial, farm, mut job) = pair_with_p(Duration::from_secs(1));
    farm.w[0].signal("-STOP");
    job.stop();
    assert!(
        within(Duration::from_secs(10), || farm.w[1].count("p", "down")
            == 1)
        .is_some(),
        "{}",
        farm.w[1].log()
    );
    farm.w[0].signal("-CONT");
    thread::sleep(Duration::from_secs(6));
    assert_eq!(farm.w[0].count("p", "down"), 0, "{}", farm.w[0].log());
    assert_eq!(farm.total("p", "down"), 1);
}

/// 4. A's channel fails, B's works: B delivers.
#[test]
fn failed_delivery_is_taken_over() {
    let _serial = one_at_a_time();
    let mut farm = Farm::new(2);
    farm.start(0, JOB_P, false);
    farm.start(1, JOB_P, true);
    for w in &farm.w {
        assert!(wait_until(qcic_testkit::WAIT, || w
            .log()
            .contains("a farm peer is reachable")));
    }
    let mut job = Job::start("p", &farm);
    thread::sleep(Duration::from_secs(1));
    job.stop();
    assert!(
        within(Duration::from_secs(10), || farm.w[1].count("p", "down")
            == 1)
        .is_some(),
        "{}\n{}",
        farm.w[0].log(),
        farm.w[1].log()
    );
    settle();
    assert_eq!(farm.w[1].count("p", "down"), 1);
}

/// 5. A↔B cut, then P dies: two `down`s, same incident, both
///    `partition_suspected`; after healing, only one `recovered` when P resumes.
#[test]
fn partition_duplicates_are_labelled() {
    let (_serial, farm, mut job) = pair_with_p(Duration::from_secs(1));
    farm.cut_gossip(true);
    thread::sleep(Duration::from_secs(2));
    job.stop();
    assert!(within(Duration::from_secs(10), || farm.total("p", "down") == 2).is_some());
    let d = downs(&farm);
    assert_eq!(d[0]["incident"], d[1]["incident"]);
    assert_ne!(d[0]["watcher"], d[1]["watcher"]);
    assert!(d.iter().all(|n| n["farm"]["partition_suspected"] == true));
    for w in &farm.w {
        assert_eq!(
            w.metric("qcic_peers_seen"),
            0,
            "{} sees no peer in the cut",
            w.id
        );
    }
    farm.cut_gossip(false);
    settle();
    assert_eq!(farm.total("p", "down"), 2);
    assert_eq!(farm.total("p", "recovered"), 0);
    for w in &farm.w {
        // After the heal each learns the other's copy: one duplicate, counted.
        assert_eq!(w.metric("qcic_farm_duplicate_sends_total"), 1, "{}", w.id);
    }
    let _job = Job::start("p", &farm);
    assert!(within(Duration::from_secs(8), || farm.total("p", "recovered") >= 1).is_some());
    settle();
    assert_eq!(farm.total("p", "recovered"), 1);
    assert_eq!(farm.total("p", "down"), 2);
}

/// 6. Only P→B cut: A still hears P, so nobody notifies.
#[test]
fn one_cut_link_is_no_alarm() {
    let (_serial, farm, _job) = pair_with_p(Duration::from_secs(1));
    farm.w[1].job_link.set_cut(true);
    thread::sleep(Duration::from_secs(8));
    assert_eq!(
        farm.all_notes().iter().filter(|n| n["job"] == "p").count(),
        0
    );
}

/// 7. P→B and A↔B cut: B notifies; after healing, exactly one `retracted`.
#[test]
fn false_alarm_is_retracted_after_the_heal() {
    let (_serial, farm, _job) = pair_with_p(Duration::from_secs(1));
    farm.w[1].job_link.set_cut(true);
    farm.cut_gossip(true);
    assert!(
        within(Duration::from_secs(10), || farm.w[1].count("p", "down")
            == 1)
        .is_some()
    );
    farm.cut_gossip(false);
    assert!(
        within(Duration::from_secs(10), || farm.total("p", "retracted")
            == 1)
        .is_some(),
        "{}",
        farm.w[1].log()
    );
    farm.w[1].job_link.set_cut(false);
    settle();
    assert_eq!(farm.total("p", "retracted"), 1);
    assert_eq!(farm.total("p", "recovered"), 0);
    assert_eq!(farm.total("p", "down"), 1);
    assert_eq!(farm.w[0].count("p", "down"), 0);
}

/// 8. B fully isolated (no peer, no job): at most one `watcher_isolated`,
///    no per-job alerts from B; A reports B as `peer_down`.
#[test]
fn isolated_watcher_says_so_once() {
    let _serial = one_at_a_time();
    let jobs: String = ["p", "q", "r", "s"]
        .iter()
        .map(|j| format!("[[job]]\nname = \"{j}\"\nevery = \"1s\"\ngrace = \"1s\"\n"))
        .collect();
    let mut farm = Farm::new(2);
    farm.start_all(&jobs);
    let _jobs: Vec<Job> = ["p", "q", "r", "s"]
        .iter()
        .map(|j| Job::start(j, &farm))
        .collect();
    thread::sleep(Duration::from_secs(1));
    farm.w[1].job_link.set_cut(true);
    farm.w[1].gossip_link.set_cut(true);
    farm.w[0].gossip_link.set_cut(true);
    thread::sleep(Duration::from_secs(8));
    let b = farm.w[1].notes();
    let isolated = b
        .iter()
        .filter(|n| n["event"] == "watcher_isolated")
        .count();
    assert!(isolated <= 1, "{b:?}");
    for n in b.iter().filter(|n| n["event"] == "watcher_isolated") {
        assert_eq!(
            n["farm"]["rank"], 0,
            "only the isolated watcher can send it: {n}"
        );
        assert_eq!(n["farm"]["took_over"], false, "{n}");
        assert_eq!(n["job"], "wb", "it names the isolated watcher: {n}");
    }
    assert_eq!(
        b.iter().filter(|n| n["event"] == "down").count(),
        0,
        "{b:?}"
    );
    assert_eq!(farm.w[0].count("wb", "peer_down"), 1);
    assert_eq!(
        farm.w[0]
            .notes()
            .iter()
            .filter(|n| n["event"] == "down")
            .count(),
        0
    );
}

/// 9. A restarted with its state after P was notified: no re-send.
#[test]
fn restarted_watcher_does_not_resend() {
    restart_after_notified(false);
}

/// 9b. The same with A's state wiped: it learns the ledger and P's last
/// message (so the same incident id) from B, and does not re-send.
#[test]
fn wiped_watcher_does_not_resend() {
    restart_after_notified(true);
}

fn restart_after_notified(wipe: bool) {
    let (_serial, mut farm, mut job) = pair_with_p(Duration::from_secs(1));
    job.stop();
    assert!(within(Duration::from_secs(10), || farm.total("p", "down") == 1).is_some());
    settle();
    farm.w[0].kill9();
    if wipe {
        let _ = fs::remove_file(farm.w[0].dir.join("state.db"));
    }
    thread::sleep(Duration::from_millis(500));
    farm.start(0, JOB_P, true);
    // A full period and more: a wiped watcher learns P's last message from
    // its peer and reaches the same incident, which the ledger shows sent.
    thread::sleep(Duration::from_secs(6));
    assert_eq!(
        farm.total("p", "down"),
        1,
        "wiped: {wipe}\n{:?}\n{}",
        farm.all_notes(),
        farm.w[0].log()
    );
}

/// 10. Three watchers under a seeded loop of random SIGKILLs and restarts
///     (state kept), while jobs stop and resume: every real outage is
///     notified at least once, and every notification sent more than once
///     came from different watchers, each copy labelled with its farm view.
#[test]
fn three_watchers_under_random_kills() {
    let _serial = one_at_a_time();
    let names = ["p", "q", "r"];
    let jobs_cfg: String = names
        .iter()
        .map(|j| format!("[[job]]\nname = \"{j}\"\nevery = \"1s\"\ngrace = \"1s\"\n"))
        .collect();
    let mut farm = Farm::new(3);
    farm.start_all(&jobs_cfg);
    let mut running: Vec<Option<Job>> = names.iter().map(|j| Some(Job::start(j, &farm))).collect();
    let mut up = [true; 3];
    // (job, stopped at, resumed at) in unix ms.
    let mut outages: Vec<(usize, u64, Option<u64>)> = Vec::new();
    let mut stopped_at: [Option<Instant>; 3] = [None; 3];
    let mut rng: u64 = 0x9E37_79B9_7F4A_7C15; // the seed: a failure replays
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let wall = qcic_testkit::now_ms;
    let mut log = Vec::new();
    for round in 0..10 {
        // A watcher dies or comes back every round (at least one stays up).
        let live = up.iter().filter(|u| **u).count();
        let kill = live == 3 || (live >= 2 && next() % 2 == 0);
        let candidates: Vec<usize> = (0..3).filter(|i| up[*i] == kill).collect();
        let i = candidates[(next() % candidates.len() as u64) as usize];
        if kill {
            farm.w[i].kill9();
        } else {
            farm.start(i, &jobs_cfg, true);
        }
        up[i] = !kill;
        log.push(format!(
            "round {round}: {} {}",
            if kill { "kill" } else { "restart" },
            farm.w[i].id
        ));
        // And a job stops (a real outage) or, stopped long enough to be
        // down in any case, resumes.
        let resumable =
            (0..3).find(|j| stopped_at[*j].is_some_and(|t| t.elapsed() >= Duration::from_secs(10)));
        if let (Some(j), true) = (resumable, next() % 2 == 0) {
            running[j] = Some(Job::start(names[j], &farm));
            stopped_at[j] = None;
            if let Some(o) = outages.iter_mut().rev().find(|o| o.0 == j) {
                o.2 = Some(wall());
            }
            log.push(format!("round {round}: resume job {}", names[j]));
        } else if next() % 2 == 0 {
            let on: Vec<usize> = (0..3).filter(|j| running[*j].is_some()).collect();
            if !on.is_empty() {
                let j = on[(next() % on.len() as u64) as usize];
                if let Some(mut job) = running[j].take() {
                    job.stop();
                }
                outages.push((j, wall(), None));
                stopped_at[j] = Some(Instant::now());
                log.push(format!("round {round}: stop job {}", names[j]));
            }
        }
        thread::sleep(Duration::from_secs(4));
    }
    // Every outage at least 10 s long by the end, then everything back.
    thread::sleep(Duration::from_secs(10));
    let notes = farm.all_notes();
    let log = log.join("\n");
    assert!(!outages.is_empty(), "the seed made no outage:\n{log}");
    for (j, from, to) in &outages {
        let notified = notes.iter().any(|n| {
            n["job"] == names[*j]
                && n["event"] == "down"
                && n["detected_ms"]
                    .as_u64()
                    .is_some_and(|t| t >= *from && to.is_none_or(|to| t <= to + 3000))
        });
        assert!(
            notified,
            "outage of {} from {from} to {to:?} not notified\n{log}\n{notes:?}",
            names[*j]
        );
    }
    let mut copies: HashMap<(String, String, u64), Vec<String>> = HashMap::new();
    for n in &notes {
        assert!(
            n["farm"].is_object(),
            "a farm notification without its farm view: {n}"
        );
        copies
            .entry((
                n["incident"].as_str().unwrap().to_owned(),
                n["event"].as_str().unwrap().to_owned(),
                n["repeat"].as_u64().unwrap_or(0),
            ))
            .or_default()
            .push(n["watcher"].as_str().unwrap().to_owned());
    }
    for (key, watchers) in &copies {
        let mut distinct = watchers.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(
            distinct.len(),
            watchers.len(),
            "{key:?} sent twice by one watcher: {watchers:?}\n{log}"
        );
    }
    let duplicates = copies.values().filter(|w| w.len() > 1).count();
    eprintln!(
        "{} outages, {} notifications, {duplicates} sent by more than one watcher\n{log}",
        outages.len(),
        notes.len()
    );
    drop(running);
}

/// The two- and three-watcher examples run: every watcher finds its peers.
#[test]
fn farm_examples_run() {
    let _serial = one_at_a_time();
    let dir = qcic_testkit::workspace_root().join("examples/farm");
    for set in [
        vec!["two-a", "two-b"],
        vec!["three-a", "three-b", "three-c"],
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let mut children: Vec<(Child, PathBuf)> = set
            .iter()
            .map(|name| {
                let log = tmp.path().join(format!("{name}.log"));
                let child = Command::new(env!("CARGO_BIN_EXE_qcic-monitor"))
                    .arg("--config")
                    .arg(dir.join(format!("{name}.toml")))
                    .env("QCIC_LOG", "info")
                    .stdout(Stdio::null())
                    .stderr(fs::File::create(&log).unwrap())
                    .spawn()
                    .unwrap();
                (child, log)
            })
            .collect();
        let peers = set.len() - 1;
        for (_, log) in &children {
            let found = wait_until(qcic_testkit::WAIT, || {
                fs::read_to_string(log)
                    .unwrap_or_default()
                    .matches("a farm peer is reachable")
                    .count()
                    >= peers
            });
            assert!(
                found,
                "{}:\n{}",
                log.display(),
                fs::read_to_string(log).unwrap_or_default()
            );
        }
        // The sender line the example's header gives, run as written
        // (`QCIC_ENDPOINTS=... qcic send --job demo heartbeat`): every
        // watcher hears the job.
        let header = fs::read_to_string(dir.join(format!("{}.toml", set[0]))).unwrap();
        let line = header
            .lines()
            .find_map(|l| l.strip_prefix("#   QCIC_ENDPOINTS="))
            .expect("the example says how to send to it");
        let (endpoints, command) = line.split_once(' ').unwrap();
        let words: Vec<&str> = command.split_whitespace().collect();
        assert_eq!(words[0], "qcic", "{line}");
        let out = Command::new(qcic_testkit::qcic_bin())
            .args(&words[1..])
            .env("QCIC_ENDPOINTS", endpoints)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{line}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for name in &set {
            let status = || {
                let out = Command::new(env!("CARGO_BIN_EXE_qcic-monitor"))
                    .arg("--config")
                    .arg(dir.join(format!("{name}.toml")))
                    .arg("status")
                    .output()
                    .unwrap();
                String::from_utf8_lossy(&out.stdout).into_owned()
            };
            let heard = wait_until(qcic_testkit::WAIT, || {
                status()
                    .lines()
                    .any(|l| l.starts_with("demo ") && l.contains("heartbeat"))
            });
            assert!(heard, "{line}: {name} never heard demo:\n{}", status());
        }
        for (child, _) in &mut children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The documented farm examples are valid configurations.
#[test]
fn farm_examples_check() {
    let dir = qcic_testkit::workspace_root().join("examples/farm");
    let mut checked = 0;
    for entry in fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let out = Command::new(env!("CARGO_BIN_EXE_qcic-monitor"))
            .arg("--config")
            .arg(&path)
            .arg("--check-config")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        checked += 1;
    }
    assert_eq!(checked, 5, "two-a, two-b, three-a, three-b, three-c");
}
