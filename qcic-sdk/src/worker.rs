//! The background thread that owns the ZeroMQ sockets.
//!
//! A libzmq socket belongs to one thread (zguide ch. 2), so the caller never
//! touches one: it enqueues, this thread encodes and hands each message to
//! every watcher's socket without waiting (`DONTWAIT`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use crate::message::Message;

/// What the sender has done so far. Every counter only grows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Messages accepted into the queue.
    pub queued: u64,
    /// Message copies handed to libzmq (one per watcher per message).
    pub sent: u64,
    /// Messages dropped because the queue was full.
    pub dropped_queue_full: u64,
    /// Message copies dropped because a watcher's libzmq queue was full
    /// (that watcher was unreachable for a long time).
    pub dropped_hwm: u64,
    /// Messages dropped because the client was closed.
    pub dropped_closed: u64,
    /// Message copies libzmq refused for another reason.
    pub send_errors: u64,
}

impl Stats {
    /// Every message or copy that did not make it to libzmq.
    pub fn dropped(&self) -> u64 {
        self.dropped_queue_full + self.dropped_hwm + self.dropped_closed + self.send_errors
    }
}

/// A duration in whole milliseconds for a libzmq option, saturating.
pub(crate) fn duration_ms_i32(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) queued: AtomicU64,
    pub(crate) sent: AtomicU64,
    pub(crate) dropped_queue_full: AtomicU64,
    pub(crate) dropped_hwm: AtomicU64,
    pub(crate) dropped_closed: AtomicU64,
    pub(crate) send_errors: AtomicU64,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> Stats {
        Stats {
            queued: self.queued.load(Ordering::SeqCst),
            sent: self.sent.load(Ordering::Relaxed),
            dropped_queue_full: self.dropped_queue_full.load(Ordering::Relaxed),
            dropped_hwm: self.dropped_hwm.load(Ordering::Relaxed),
            dropped_closed: self.dropped_closed.load(Ordering::Relaxed),
            send_errors: self.send_errors.load(Ordering::Relaxed),
        }
    }
}

/// State shared between the callers and the sender thread.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) counters: Counters,
    /// Messages taken off the queue and handed to the sockets.
    processed: Mutex<u64>,
    progress: Condvar,
    close_deadline: Mutex<Option<Instant>>,
}

impl Shared {
    pub(crate) fn new() -> Shared {
        Shared {
            counters: Counters::default(),
            processed: Mutex::new(0),
            progress: Condvar::new(),
            close_deadline: Mutex::new(None),
        }
    }

    /// Waits until `target` messages were processed or `timeout` passed.
    pub(crate) fn wait_processed(&self, target: u64, timeout: Duration) -> bool {
        let guard = self
            .processed
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (guard, _) = self
            .progress
            .wait_timeout_while(guard, timeout, |done| *done < target)
            .unwrap_or_else(PoisonError::into_inner);
        *guard >= target
    }

    /// The first close sets the deadline; later calls cannot extend it.
    pub(crate) fn set_close_deadline(&self, deadline: Instant) {
        let mut slot = self
            .close_deadline
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if slot.is_none() {
            *slot = Some(deadline);
        }
    }

    fn mark_processed(&self) {
        let mut done = self
            .processed
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *done += 1;
        self.progress.notify_all();
    }
}

pub(crate) fn spawn(
    ctx: zmq::Context,
    sockets: Vec<zmq::Socket>,
    rx: Receiver<Message>,
    shared: Arc<Shared>,
    done: Sender<bool>,
) -> std::io::Result<()> {
    thread::Builder::new()
        .name("qcic-sender".into())
        .spawn(move || {
            let delivered = run(ctx, sockets, &rx, &shared);
            // The client may have stopped waiting; nobody to tell then.
            let _ = done.send(delivered);
        })
        .map(drop)
}

/// How long the sender thread waits for a watcher's full libzmq queue to
/// drain before it drops for that watcher. A burst (or the first messages
/// before the TCP connection is up) waits briefly and goes through; a
/// watcher that stays full costs this once, then drops at once until it
/// takes a message again, so a dead watcher never slows the others.
const STALL_WAIT_MS: i64 = 200;

fn run(
    ctx: zmq::Context,
    sockets: Vec<zmq::Socket>,
    rx: &Receiver<Message>,
    shared: &Shared,
) -> bool {
    let counters = &shared.counters;
    let mut frame = Vec::with_capacity(256);
    let mut stalled = vec![false; sockets.len()];
    // recv() fails only once every sender is gone and the queue is empty:
    // that is the close signal, and it drains the queue first.
    while let Ok(msg) = rx.recv() {
        frame.clear();
        msg.encode_into(&mut frame);
        for (socket, stalled) in sockets.iter().zip(stalled.iter_mut()) {
            let mut result = socket.send(&frame[..], zmq::DONTWAIT);
            if result == Err(zmq::Error::EAGAIN)
                && !*stalled
                && socket.poll(zmq::POLLOUT, STALL_WAIT_MS).unwrap_or(0) > 0
            {
                result = socket.send(&frame[..], zmq::DONTWAIT);
            }
            match result {
                Ok(()) => {
                    *stalled = false;
                    counters.sent.fetch_add(1, Ordering::Relaxed);
                }
                Err(zmq::Error::EAGAIN) => {
                    *stalled = true;
                    counters.dropped_hwm.fetch_add(1, Ordering::Relaxed);
                }
                Err(_) => {
                    counters.send_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        shared.mark_processed();
    }

    let deadline = shared
        .close_deadline
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .unwrap_or_else(Instant::now);
    let linger = deadline.saturating_duration_since(Instant::now());
    for socket in &sockets {
        // Never infinite: libzmq's default (-1) would make terminating the
        // context hang forever while a watcher is unreachable.
        let _ = socket.set_linger(duration_ms_i32(linger));
    }
    drop(sockets);
    let started = Instant::now();
    drop(ctx);
    // Context termination returns early only once every pending message has
    // gone out; running into the linger means something was left behind.
    let took = started.elapsed();
    linger > Duration::from_millis(10) && took + Duration::from_millis(5) < linger
}
