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

use crate::message::{Kind, Message};

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

/// Hands `frame` to one watcher's socket without waiting (but for one
/// short wait the first time its queue is full); true if it went.
fn send(socket: &zmq::Socket, frame: &[u8], stalled: &mut bool, counters: &Counters) -> bool {
    let mut result = socket.send(frame, zmq::DONTWAIT);
    if result == Err(zmq::Error::EAGAIN)
        && !*stalled
        && socket.poll(zmq::POLLOUT, STALL_WAIT_MS).unwrap_or(0) > 0
    {
        result = socket.send(frame, zmq::DONTWAIT);
    }
    match result {
        Ok(()) => {
            *stalled = false;
            counters.sent.fetch_add(1, Ordering::Relaxed);
            true
        }
        Err(zmq::Error::EAGAIN) => {
            *stalled = true;
            counters.dropped_hwm.fetch_add(1, Ordering::Relaxed);
            false
        }
        Err(_) => {
            counters.send_errors.fetch_add(1, Ordering::Relaxed);
            false
        }
    }
}

/// How often a declaration goes out again, with the job's next message,
/// to a watcher that has not reconnected meanwhile.
pub(crate) const REDECLARE_EVERY: Duration = Duration::from_secs(300);
/// Declarations a sender remembers; past it, new ones are sent once.
const MAX_DECLARATIONS: usize = 1024;

/// The declarations this sender made, sent again before the job's next
/// message after each new connection to a watcher (it may have restarted
/// with its state wiped) and at most every [`REDECLARE_EVERY`], so a
/// watcher learns them again without a restart of the job.
#[derive(Default)]
struct Declarations {
    by_job: std::collections::HashMap<String, Declared>,
    /// Per watcher socket: a PAIR socket told of each completed handshake
    /// (libzmq's socket monitor), made with the first declaration.
    handshakes: Vec<zmq::Socket>,
    /// Per watcher socket: handshakes seen so far.
    generation: Vec<u64>,
}

struct Declared {
    frame: Vec<u8>,
    /// Per watcher socket: the connection generation and time it last went.
    sent: Vec<Option<(u64, Instant)>>,
}

impl Declarations {
    fn remember(&mut self, ctx: &zmq::Context, sockets: &[zmq::Socket], job: &str, frame: &[u8]) {
        if self.generation.is_empty() {
            self.generation = vec![0; sockets.len()];
            for (i, socket) in sockets.iter().enumerate() {
                let endpoint = format!("inproc://qcic-handshakes-{i}");
                let watch = || -> Result<zmq::Socket, zmq::Error> {
                    socket.monitor(&endpoint, zmq::SocketEvent::HANDSHAKE_SUCCEEDED as i32)?;
                    let pair = ctx.socket(zmq::PAIR)?;
                    pair.set_linger(0)?;
                    pair.connect(&endpoint)?;
                    Ok(pair)
                };
                // Without it, a declaration still goes out every
                // REDECLARE_EVERY.
                if let Ok(pair) = watch() {
                    self.handshakes.push(pair);
                }
            }
        }
        if self.by_job.len() >= MAX_DECLARATIONS && !self.by_job.contains_key(job) {
            return;
        }
        self.by_job.insert(
            job.to_owned(),
            Declared {
                frame: frame.to_vec(),
                sent: vec![None; sockets.len()],
            },
        );
    }

    /// Sends `job`'s declaration to each watcher that is due it.
    fn send_due(
        &mut self,
        job: &str,
        sockets: &[zmq::Socket],
        stalled: &mut [bool],
        counters: &Counters,
    ) {
        if self.by_job.is_empty() {
            return;
        }
        self.count_handshakes();
        let Some(declared) = self.by_job.get_mut(job) else {
            return;
        };
        let now = Instant::now();
        for (i, socket) in sockets.iter().enumerate() {
            let generation = self.generation.get(i).copied().unwrap_or(0);
            let due = declared.sent[i]
                .is_none_or(|(g, at)| g != generation || now.duration_since(at) >= REDECLARE_EVERY);
            if due && send(socket, &declared.frame, &mut stalled[i], counters) {
                declared.sent[i] = Some((generation, now));
            }
        }
    }

    /// Takes the handshake events waiting, without blocking.
    fn count_handshakes(&mut self) {
        for (pair, generation) in self.handshakes.iter().zip(self.generation.iter_mut()) {
            while let Ok(event) = pair.recv_multipart(zmq::DONTWAIT) {
                let code = event
                    .first()
                    .and_then(|f| f.get(..2))
                    .map(|b| u16::from_le_bytes([b[0], b[1]]));
                if code == Some(zmq::SocketEvent::HANDSHAKE_SUCCEEDED as u16) {
                    *generation += 1;
                }
            }
        }
    }
}

fn run(
    ctx: zmq::Context,
    sockets: Vec<zmq::Socket>,
    rx: &Receiver<Message>,
    shared: &Shared,
) -> bool {
    let counters = &shared.counters;
    let mut frame = Vec::with_capacity(256);
    let mut stalled = vec![false; sockets.len()];
    let mut declarations = Declarations::default();
    // recv() fails only once every sender is gone and the queue is empty:
    // that is the close signal, and it drains the queue first.
    while let Ok(msg) = rx.recv() {
        frame.clear();
        msg.encode_into(&mut frame);
        if msg.kind == Kind::Declare {
            declarations.remember(&ctx, &sockets, &msg.job, &frame);
            declarations.send_due(&msg.job, &sockets, &mut stalled, counters);
        } else {
            declarations.send_due(&msg.job, &sockets, &mut stalled, counters);
            for (socket, stalled) in sockets.iter().zip(stalled.iter_mut()) {
                send(socket, &frame, stalled, counters);
            }
        }
        shared.mark_processed();
    }
    // Its sockets belong to the context, which waits for them at the end.
    drop(declarations);

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
