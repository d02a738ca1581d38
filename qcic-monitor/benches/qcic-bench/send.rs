//! The `send` child mode: a sender process, and [`Senders`], the
//! orchestrator's handle on a few; `sub`, a subscriber on the alert stream.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use qcic_sdk::{Kind, Message};

use crate::harness::{Opts, declaration, job_name, message, wall_ns};

/// A sender process: pre-encoded heartbeats for `jobs` jobs from `offset`,
/// `count` of them as fast as libzmq takes them, then a `fail` for its
/// sentinel. Prints `start <wall ns>` just before the first heartbeat.
pub(crate) fn send(o: &Opts) {
    let (jobs, offset, count, k) = (o.num("jobs"), o.num("offset"), o.num("count"), o.num("k"));
    // `kind=declare`: declarations instead of heartbeats; `kind=runs`:
    // runs (a start, then its success), each one a row of run history.
    let kind = o.get("kind").unwrap_or("heartbeat");
    let frames: Vec<Vec<u8>> = (0..jobs.min(count).max(1))
        .flat_map(|i| {
            let job = job_name(offset + i);
            match kind {
                "declare" => vec![declaration(&job, 1).encode()],
                "runs" => {
                    let start = message(Kind::Start, &job, 1, None);
                    let success = Message {
                        kind: Kind::Success,
                        seq: 2,
                        ..start.clone()
                    };
                    vec![start.encode(), success.encode()]
                }
                _ => vec![message(Kind::Heartbeat, &job, 1, None).encode()],
            }
        })
        .collect();
    let sentinel = format!("sentinel-{k}");
    let ctx = zmq::Context::new();
    let push = ctx.socket(zmq::PUSH).unwrap();
    push.set_linger(120_000).unwrap();
    if let Some(server) = o.get("curve_server") {
        let (public, secret) = qcic_sdk::new_curve_pair().unwrap();
        push.set_curve_serverkey(&z85::decode(server).unwrap())
            .unwrap();
        push.set_curve_publickey(&public).unwrap();
        push.set_curve_secretkey(&secret).unwrap();
    }
    push.connect(o.get("endpoint").unwrap()).unwrap();
    // Connection (and CURVE handshake) out of the timing.
    push.send(message(Kind::Heartbeat, &sentinel, 1, None).encode(), 0)
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    println!("start {}", wall_ns());
    for i in 0..count {
        push.send(&frames[i % frames.len()][..], 0).unwrap();
    }
    push.send(message(Kind::Fail, &sentinel, 2, None).encode(), 0)
        .unwrap();
}

pub(crate) struct Senders(Vec<Child>);

impl Senders {
    /// `n` sender processes sharing `total` messages over `jobs` jobs (each
    /// its own slice).
    pub(crate) fn spawn(
        n: usize,
        endpoint: &str,
        jobs: usize,
        total: usize,
        curve_server: Option<&str>,
    ) -> Senders {
        Senders::spawn_kind(n, endpoint, jobs, total, curve_server, ("heartbeat", 0))
    }

    /// Like [`Senders::spawn`], sending `kind` (`heartbeat` or `declare`),
    /// the first sender's sentinel `sentinel-{first}` (rounds against one
    /// watcher each need their own: a sentinel's second `fail` in a row
    /// would raise nothing).
    pub(crate) fn spawn_kind(
        n: usize,
        endpoint: &str,
        jobs: usize,
        total: usize,
        curve_server: Option<&str>,
        (kind, first): (&str, usize),
    ) -> Senders {
        Senders(
            (0..n)
                .map(|k| {
                    let mut cmd = Command::new(std::env::current_exe().unwrap());
                    cmd.args([
                        "send".to_owned(),
                        format!("endpoint={endpoint}"),
                        format!("jobs={}", jobs / n),
                        format!("offset={}", k * (jobs / n)),
                        format!("count={}", total / n),
                        format!("k={}", first + k),
                        format!("kind={kind}"),
                    ]);
                    if let Some(s) = curve_server {
                        cmd.arg(format!("curve_server={s}"));
                    }
                    cmd.stdout(Stdio::piped()).spawn().unwrap()
                })
                .collect(),
        )
    }

    /// Waits for every sender; the earliest `start` stamp.
    pub(crate) fn finish(self) -> u128 {
        let mut start = u128::MAX;
        for mut child in self.0 {
            let mut line = String::new();
            BufReader::new(child.stdout.take().unwrap())
                .read_line(&mut line)
                .unwrap();
            start = start.min(line.trim().strip_prefix("start ").unwrap().parse().unwrap());
            assert!(child.wait().unwrap().success());
        }
        start
    }
}

pub(crate) fn sub(publish: &str, prefix: &str) -> (zmq::Context, zmq::Socket) {
    let ctx = zmq::Context::new();
    let s = ctx.socket(zmq::SUB).unwrap();
    s.set_rcvhwm(1_000_000).unwrap();
    s.set_subscribe(prefix.as_bytes()).unwrap();
    s.set_rcvtimeo(300_000).unwrap();
    s.connect(publish).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    (ctx, s)
}
