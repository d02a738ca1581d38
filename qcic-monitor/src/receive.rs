//! The receiving thread: a blocking ZeroMQ PULL socket feeding the tokio side.
//!
//! The `zmq` crate is blocking, and a socket belongs to one thread, so the
//! PULL socket lives on a thread of its own. It sleeps in `zmq::poll` on the
//! PULL socket and an inproc control socket: it wakes for traffic or for the
//! stop signal, never on a timer.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use qcic_sdk::Message;
use qcic_sdk::message::MAX_FRAME_LEN;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::error::MonitorError;
use crate::stats::Stats;

/// A running receiver; [`Receiver::stop`] ends it.
pub struct Receiver {
    control: zmq::Socket,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver").finish_non_exhaustive()
    }
}

impl Receiver {
    /// Binds every `listen` endpoint and starts the thread. Bind errors (a
    /// port in use, a bad address) come back here, before anything runs.
    pub fn start(
        ctx: &zmq::Context,
        listen: &[String],
        tx: mpsc::Sender<Message>,
        stats: Arc<Stats>,
    ) -> Result<Receiver, MonitorError> {
        let pull = ctx.socket(zmq::PULL)?;
        pull.set_linger(0)?;
        // libzmq drops a connection that sends a larger frame before any of
        // it is buffered here.
        pull.set_maxmsgsize(i64::try_from(MAX_FRAME_LEN).unwrap_or(i64::MAX))?;
        for endpoint in listen {
            pull.bind(endpoint).map_err(|source| MonitorError::Bind {
                endpoint: endpoint.clone(),
                source,
            })?;
        }
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let address = format!(
            "inproc://qcic-receive-stop-{}",
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let stop_rx = ctx.socket(zmq::PAIR)?;
        stop_rx.set_linger(0)?;
        stop_rx.bind(&address)?;
        let control = ctx.socket(zmq::PAIR)?;
        control.set_linger(0)?;
        control.connect(&address)?;
        let thread = std::thread::Builder::new()
            .name("qcic-receive".into())
            .spawn(move || receive_loop(&pull, &stop_rx, &tx, &stats))?;
        Ok(Receiver {
            control,
            thread: Some(thread),
        })
    }

    /// Stops the thread and waits for it. Messages already handed over stay
    /// queued for the checker; the channel closes when the thread ends.
    pub fn stop(mut self) {
        if let Err(err) = self.control.send("stop", 0) {
            warn!(cause = %err, "cannot signal the receive thread to stop");
        }
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                warn!("the receive thread panicked");
            }
        }
    }
}

/// Logs a dropped frame at most once per interval per receiver.
struct DropLog {
    last: Option<Instant>,
    suppressed: u64,
}

impl DropLog {
    const INTERVAL: Duration = Duration::from_secs(10);

    fn note(&mut self, reason: &str, detail: &dyn std::fmt::Display) {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < Self::INTERVAL)
        {
            self.suppressed += 1;
            return;
        }
        warn!(reason, detail = %detail, suppressed_since_last_log = self.suppressed, "dropped a frame");
        self.last = Some(now);
        self.suppressed = 0;
    }
}

fn receive_loop(pull: &zmq::Socket, stop: &zmq::Socket, tx: &mpsc::Sender<Message>, stats: &Stats) {
    let mut drops = DropLog {
        last: None,
        suppressed: 0,
    };
    loop {
        let mut items = [
            pull.as_poll_item(zmq::POLLIN),
            stop.as_poll_item(zmq::POLLIN),
        ];
        if let Err(err) = zmq::poll(&mut items, -1) {
            if err == zmq::Error::EINTR {
                continue;
            }
            warn!(cause = %err, "zmq poll failed; receive thread stops");
            return;
        }
        if items[1].is_readable() {
            debug!("receive thread stopping");
            return;
        }
        if !items[0].is_readable() {
            continue;
        }
        // Take everything that is ready before polling again.
        loop {
            let frame = match pull.recv_bytes(zmq::DONTWAIT) {
                Ok(frame) => frame,
                Err(zmq::Error::EAGAIN) => break,
                Err(zmq::Error::EINTR) => continue,
                Err(err) => {
                    warn!(cause = %err, "zmq receive failed; receive thread stops");
                    return;
                }
            };
            stats.frames.fetch_add(1, Ordering::Relaxed);
            if pull.get_rcvmore().unwrap_or(false) {
                // v1 is one frame per message; discard the rest unread.
                while pull.get_rcvmore().unwrap_or(false) {
                    if pull.recv_bytes(zmq::DONTWAIT).is_err() {
                        break;
                    }
                }
                stats.drop_frame("multipart");
                drops.note("multipart", &"message with more than one frame");
                continue;
            }
            match Message::decode(&frame) {
                Ok(msg) => {
                    stats.accepted.fetch_add(1, Ordering::Relaxed);
                    if tx.blocking_send(msg).is_err() {
                        return;
                    }
                }
                Err(err) => {
                    stats.drop_decode(&err);
                    drops.note(err.reason(), &err);
                }
            }
        }
    }
}
