//! A SUB socket on a monitor's alert stream.

use std::thread::sleep;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::WAIT;

/// A SUB socket on a monitor's alert stream.
pub struct Alerts {
    _ctx: zmq::Context,
    socket: zmq::Socket,
    /// Every alert received, in order.
    pub seen: Vec<(String, Value)>,
    /// Received but not yet taken by `expect`.
    pending: Vec<(String, Value)>,
}

impl Alerts {
    pub fn subscribe(endpoint: &str) -> Alerts {
        let ctx = zmq::Context::new();
        let socket = ctx.socket(zmq::SUB).unwrap();
        socket.set_linger(0).unwrap();
        socket.set_rcvtimeo(200).unwrap();
        socket.set_subscribe(b"alert.").unwrap();
        socket.connect(endpoint).unwrap();
        // PUB drops what is published before the subscription reaches it
        // (the "slow joiner"); on loopback it takes well under this.
        sleep(Duration::from_millis(500));
        Alerts {
            _ctx: ctx,
            socket,
            seen: Vec::new(),
            pending: Vec::new(),
        }
    }

    /// True if no alert with this topic arrives within `wait` (others are kept).
    pub fn none_within(&mut self, topic: &str, wait: Duration) -> bool {
        if self.pending.iter().any(|(t, _)| t == topic) {
            return false;
        }
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            let Ok(frames) = self.socket.recv_multipart(0) else {
                continue;
            };
            let got = String::from_utf8(frames[0].clone()).unwrap();
            let body: Value = rmp_serde::from_slice(&frames[1]).unwrap();
            self.seen.push((got.clone(), body.clone()));
            if got == topic {
                self.pending.push((got, body));
                return false;
            }
            self.pending.push((got, body));
        }
        true
    }

    /// Takes the oldest alert with this topic, waiting for it if none came
    /// yet. Alerts of other topics stay for later calls: two channels or two
    /// jobs may publish in either order.
    pub fn expect(&mut self, topic: &str) -> Value {
        if let Some(i) = self.pending.iter().position(|(t, _)| t == topic) {
            return self.pending.remove(i).1;
        }
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            let Ok(frames) = self.socket.recv_multipart(0) else {
                continue;
            };
            assert_eq!(frames.len(), 2, "an alert is two frames");
            let got = String::from_utf8(frames[0].clone()).unwrap();
            let body: Value = rmp_serde::from_slice(&frames[1]).unwrap();
            self.seen.push((got.clone(), body.clone()));
            if got == topic {
                return body;
            }
            self.pending.push((got, body));
        }
        panic!("no alert {topic} within {WAIT:?}; saw {:#?}", self.seen);
    }
}
