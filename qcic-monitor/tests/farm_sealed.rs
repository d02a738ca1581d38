//! Farm gossip sealed with `[farm] key_file`, between real watchers on
//! loopback: watchers with the key make a farm; one without it, or with
//! another key, takes no part, and what it says it heard of a job is not
//! taken. The same outsider in an unsealed farm does hold back a `down`:
//! the attack the key stops.

#![expect(clippy::unwrap_used, reason = "tests: a panic is the failure report")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use qcic_testkit::{Monitor, free_port, http_get, metric_sum, monitor_bin, wait_until};
use serde_json::Value;

const JOB: &str = "[[job]]\nname = \"nightly\"\nevery = \"1s\"\ngrace = \"1s\"\n";

/// `qcic-monitor keygen --farm --out DIR/NAME`: the key file's path.
fn farm_key(dir: &Path, name: &str) -> PathBuf {
    let out = Command::new(monitor_bin())
        .args(["keygen", "--farm", "--out"])
        .arg(dir.join(name))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let path = dir.join(format!("{name}.key"));
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("farm-key = \""), "{text}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    path
}

struct Member {
    id: &'static str,
    gossip: u16,
    key: Option<PathBuf>,
}

impl Member {
    /// A member on a fresh gossip port, with this farm key (or none).
    fn new(id: &'static str, key: Option<&PathBuf>) -> Member {
        Member {
            id,
            gossip: free_port(),
            key: key.cloned(),
        }
    }
}

/// Starts `me` with every other member as a peer.
fn start(me: &Member, all: &[&Member], out: &Path) -> Monitor {
    let mut body = format!(
        "[farm]\ngossip = \"127.0.0.1:{}\"\ngossip_interval = \"100ms\"\ndead_after = \"1s\"\npeer_timeout = \"2s\"\n",
        me.gossip
    );
    if let Some(key) = &me.key {
        body.push_str(&format!("key_file = \"{}\"\n", key.display()));
    }
    body.push_str("\n[http]\nlisten = \"{http}\"\n\n");
    for peer in all.iter().filter(|p| p.id != me.id) {
        body.push_str(&format!(
            "[[peer]]\nid = \"{}\"\ngossip = \"127.0.0.1:{}\"\n\n",
            peer.id, peer.gossip
        ));
    }
    body.push_str(JOB);
    body.push_str(&qcic_testkit::note_channel(out));
    Monitor::start(me.id, &body)
}

/// The peers `/api/peers` says are live.
fn live(m: &Monitor) -> Vec<String> {
    let peers: Vec<Value> = serde_json::from_str(&http_get(&m.http, "/api/peers").1).unwrap();
    peers
        .iter()
        .filter(|p| p["live"] == true)
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect()
}

fn refused(m: &Monitor) -> u64 {
    metric_sum(
        &http_get(&m.http, "/metrics").1,
        "qcic_farm_gossip_refused_total",
    )
}

#[test]
fn watchers_with_the_key_make_a_farm_and_others_are_not_heard() {
    let dir = tempfile::tempdir().unwrap();
    let key = farm_key(dir.path(), "farm");
    let other = farm_key(dir.path(), "other");
    let a = Member::new("a", Some(&key));
    let b = Member::new("b", Some(&key));
    let c = Member::new("c", None);
    let d = Member::new("d", Some(&other));
    let all = [&a, &b, &c, &d];
    let out = dir.path().join("notes.jsonl");
    let ma = start(&a, &all, &out);
    let mb = start(&b, &all, &out);
    let mc = start(&c, &all, &out);
    let md = start(&d, &all, &out);
    assert!(
        wait_until(Duration::from_secs(20), || live(&ma) == ["b"]
            && live(&mb) == ["a"]),
        "a sees {:?}, b sees {:?}",
        live(&ma),
        live(&mb)
    );
    // Twenty gossip rounds more: the outsiders have had every chance.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(live(&ma), ["b"]);
    assert_eq!(live(&mb), ["a"]);
    assert!(live(&mc).is_empty(), "c sees {:?}", live(&mc));
    assert!(live(&md).is_empty(), "d sees {:?}", live(&md));
    // a and b refused both outsiders' gossip, and said why.
    assert!(refused(&ma) > 0 && refused(&mb) > 0);
    let log = ma.stop();
    assert!(log.contains("farm gossip refused"), "{log}");
    assert!(
        mc.stop().contains("farm gossip is not sealed"),
        "the unsealed watcher warns at start"
    );
    drop((mb, md));
}

/// Heartbeats for the job to `endpoint` until dropped.
struct Beats(Arc<AtomicBool>, Option<std::thread::JoinHandle<()>>);

impl Beats {
    fn to(endpoint: &str) -> Beats {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let endpoint = endpoint.to_owned();
        let thread = std::thread::spawn(move || {
            let client = qcic_sdk::Client::builder()
                .endpoints([endpoint.as_str()])
                .build()
                .unwrap();
            while !flag.load(Ordering::SeqCst) {
                let _ = client.heartbeat("nightly");
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        Beats(stop, Some(thread))
    }
}

impl Drop for Beats {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
        if let Some(t) = self.1.take() {
            let _ = t.join();
        }
    }
}

/// A watcher that hears the job only through the farm: with `sealed`,
/// `a` has the key and the outsider `c` does not.
fn a_hears_only_c(sealed: bool) -> (Monitor, Monitor, PathBuf, tempfile::TempDir, Beats) {
    let dir = tempfile::tempdir().unwrap();
    let key = sealed.then(|| farm_key(dir.path(), "farm"));
    let a = Member::new("a", key.as_ref());
    let c = Member::new("c", None);
    let all = [&a, &c];
    let out = dir.path().join("a.jsonl");
    let ma = start(&a, &all, &out);
    let mc = start(&c, &all, &dir.path().join("c.jsonl"));
    let beats = Beats::to(&mc.listen);
    (ma, mc, out, dir, beats)
}

#[test]
fn unsealed_an_outsider_that_says_it_heard_a_job_holds_back_its_down() {
    let (ma, mc, out, _dir, beats) = a_hears_only_c(false);
    assert!(
        wait_until(Duration::from_secs(20), || live(&ma) == ["c"]),
        "a never saw c"
    );
    // Six deadlines of the job (every 1s + grace 1s) with nothing sent to a.
    std::thread::sleep(Duration::from_secs(6));
    assert!(
        qcic_testkit::notes_of(&out, "down", "nightly").is_empty(),
        "c's word kept the job up on a: {:?}",
        qcic_testkit::notes(&out)
    );
    drop(beats);
    drop((ma, mc));
}

#[test]
fn sealed_an_outsider_that_says_it_heard_a_job_is_not_taken() {
    let (ma, mc, out, _dir, beats) = a_hears_only_c(true);
    let down = qcic_testkit::wait_notes(&out, "down", "nightly", 1);
    assert_eq!(down[0]["watcher"], "a");
    assert!(live(&ma).is_empty());
    assert!(refused(&ma) > 0);
    drop(beats);
    drop((ma, mc));
}

/// The loopback UDP ports a process has bound, from /proc.
fn loopback_udp_ports(pid: u32) -> Vec<u16> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|target| {
            let t = target.to_string_lossy().into_owned();
            Some(t.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
        })
        .collect();
    std::fs::read_to_string("/proc/net/udp")
        .unwrap()
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let (ip, port) = cols.get(1)?.split_once(':')?;
            (ip == "0100007F" && inodes.iter().any(|i| Some(&i.as_str()) == cols.get(9)))
                .then(|| u16::from_str_radix(port, 16).ok())?
        })
        .collect()
}

/// A local process writing to every loopback port of a sealed watcher (the
/// gossip codec and its sink among them) neither stalls its gossip nor
/// fills its log: the sink takes datagrams from the codec alone, and
/// chitchat's warning per bad datagram is silenced.
#[test]
fn a_local_flood_of_the_loopback_ports_neither_stalls_gossip_nor_fills_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let key = farm_key(dir.path(), "farm");
    let a = Member::new("a", Some(&key));
    let b = Member::new("b", Some(&key));
    let all = [&a, &b];
    let out = dir.path().join("notes.jsonl");
    let ma = start(&a, &all, &out);
    let mb = start(&b, &all, &out);
    assert!(wait_until(Duration::from_secs(20), || live(&mb) == ["a"]));
    let ports: Vec<u16> = loopback_udp_ports(ma.pid())
        .into_iter()
        .filter(|p| *p != a.gossip)
        .collect();
    assert!(ports.len() >= 2, "codec and sink: {ports:?}");
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let flood = std::thread::spawn(move || {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut sent = 0u64;
        while !flag.load(Ordering::SeqCst) {
            // Bursts of 400 to each port, every 300 ms: each burst fills a
            // loopback socket's receive buffer, without starving 2 cores.
            for port in &ports {
                for _ in 0..400 {
                    let _ = socket.send_to(b"x", ("127.0.0.1", *port));
                    sent += 1;
                }
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        sent
    });
    // b keeps seeing a throughout (a stalled a is dead to b within ~1 s).
    let mut always_live = true;
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(200));
        always_live &= live(&mb) == ["a"];
    }
    stop.store(true, Ordering::SeqCst);
    let sent = flood.join().unwrap();
    assert!(sent > 2000, "{sent}");
    assert!(always_live, "a stopped gossiping under the flood");
    let log = ma.stop();
    assert!(log.len() < 100_000, "the log grew to {} bytes", log.len());
    drop(mb);
}
