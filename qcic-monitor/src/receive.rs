//! The receiving thread: a blocking ZeroMQ PULL socket feeding the tokio side.
//!
//! The `zmq` crate is blocking, and a socket belongs to one thread, so the
//! PULL socket lives on a thread of its own. It sleeps in `zmq::poll` on the
//! PULL socket and an inproc control socket: it wakes for traffic or for the
//! stop signal, never on a timer.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use qcic_sdk::Message;
use qcic_sdk::message::MAX_FRAME_LEN;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::checker::Inbound;
use crate::config::CurveConfig;
use crate::error::MonitorError;
use crate::ingest_guard::Guard;
use crate::log_limit::LogLimit;
use crate::rate_limit::RateLimits;
use crate::stats::{DropReason, Stats};
pub use crate::watched::WatchedJobs;

/// Receiving settings.
#[derive(Debug, Clone)]
pub struct ReceiveConfig {
    /// PULL endpoints to bind.
    pub listen: Vec<String>,
    /// CURVE, if on.
    pub curve: Option<CurveConfig>,
    /// Messages per second per sender; 0: unlimited.
    pub max_rate_per_sender: u32,
    /// Connection limits on the PULL socket.
    pub connections: crate::ingest_guard::Limits,
    /// How often each connection is pinged; zero: never.
    pub ping: Duration,
    /// The jobs watched: only a message for one of them proves a connection.
    pub watched: Arc<WatchedJobs>,
}

/// A running receiver; [`Receiver::stop`] ends it.
pub struct Receiver {
    control: zmq::Socket,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver").finish_non_exhaustive()
    }
}

static NEXT: AtomicU64 = AtomicU64::new(0);

/// A fresh pair of inproc PAIR sockets: (bound end, connected end).
fn pair(ctx: &zmq::Context, what: &str) -> Result<(zmq::Socket, zmq::Socket), MonitorError> {
    let address = format!(
        "inproc://qcic-{what}-{}",
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let bound = ctx.socket(zmq::PAIR)?;
    bound.set_linger(0)?;
    bound.bind(&address)?;
    let connected = ctx.socket(zmq::PAIR)?;
    connected.set_linger(0)?;
    connected.connect(&address)?;
    Ok((bound, connected))
}

impl Receiver {
    /// Binds every `listen` endpoint and starts the thread(s). Bind errors (a
    /// port in use, a bad address) come back here, before anything runs.
    pub fn start(
        ctx: &zmq::Context,
        config: &ReceiveConfig,
        tx: mpsc::Sender<Vec<Inbound>>,
        stats: Arc<Stats>,
    ) -> Result<Receiver, MonitorError> {
        let (stop_rx, control) = pair(ctx, "receive-stop")?;
        let mut threads = Vec::new();
        let pull = ctx.socket(zmq::PULL)?;
        pull.set_linger(0)?;
        // libzmq drops a connection that sends a larger frame before any of
        // it is buffered here.
        pull.set_maxmsgsize(i64::try_from(MAX_FRAME_LEN).unwrap_or(i64::MAX))?;
        pull.set_handshake_ivl(crate::ingest_guard::HANDSHAKE_IVL_MS)?;
        // A PULL socket never writes, so without pings a connection whose
        // host vanished (powered off, cut off, its process stopped) would
        // hold its place under the guard's caps for good. libzmq 4.2 and
        // later answer a PING by themselves, whatever their own settings.
        let ping = i32::try_from(config.ping.as_millis()).unwrap_or(i32::MAX);
        if ping > 0 {
            pull.set_heartbeat_ivl(ping)?;
            pull.set_heartbeat_timeout(ping)?;
        }
        // An IPv6 address in `listen` needs this to bind (`[::]` then
        // takes IPv4 too); without one, `*` stays IPv4 only, as before.
        if config.listen.iter().any(|e| e.contains('[')) {
            pull.set_ipv6(true)?;
        }
        // With CURVE: the ZAP thread, and the stop signal to forward to it.
        let mut zap_stop = None;
        if let Some(curve) = &config.curve {
            // The ZAP handler must be bound before the CURVE socket binds, or
            // libzmq would accept connections without asking it.
            let (zap_stop_rx, zap_stop_tx) = pair(ctx, "zap-stop")?;
            let zap = ctx.socket(zmq::REP)?;
            zap.set_linger(0)?;
            zap.bind("inproc://zeromq.zap.01")?;
            let allowed = curve.allowed_senders.clone();
            let zap_stats = Arc::clone(&stats);
            threads.push(
                std::thread::Builder::new()
                    .name("qcic-zap".into())
                    .spawn(move || zap_loop(&zap, &zap_stop_rx, allowed.as_ref(), &zap_stats))?,
            );
            pull.set_curve_server(true)?;
            pull.set_curve_secretkey(&curve.secret_key)?;
            pull.set_zap_domain("qcic")?;
            zap_stop = Some(zap_stop_tx);
        }
        // The guard knows its connections by their local port: the port
        // each bind got (a wildcard `*` or 0 in the config gets one only
        // now), never the config's text.
        let mut ports = Vec::new();
        for endpoint in &config.listen {
            pull.bind(endpoint).map_err(|source| MonitorError::Bind {
                endpoint: endpoint.clone(),
                source,
            })?;
            if let Ok(Ok(bound)) = pull.get_last_endpoint() {
                if let Some(port) = bound.rsplit(':').next().and_then(|p| p.parse().ok()) {
                    ports.push(port);
                }
            }
        }
        let events = watch_connections(ctx, &pull, config.curve.is_some())?;
        let guard = Guard::new(config.connections, ports);
        let curve = config.curve.is_some();
        let rate = config.max_rate_per_sender;
        let watched = Arc::clone(&config.watched);
        // The guard has a thread of its own that never blocks but in
        // `poll`: libzmq sends socket events blocking, from its I/O
        // thread, so events left unread while the receive thread waits on
        // a checker that is behind would stall all of libzmq's I/O.
        let (guard_stop_rx, guard_stop_tx) = pair(ctx, "guard-stop")?;
        // Proofs are sent without waiting: dropped when the guard is
        // behind, they come again with the address's next valid message.
        let (proofs_rx, proofs_tx) = pair(ctx, "guard-proofs")?;
        let wants_proof = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let guard_stats = Arc::clone(&stats);
        let wants = Arc::clone(&wants_proof);
        threads.push(
            std::thread::Builder::new()
                .name("qcic-guard".into())
                .spawn(move || {
                    let mut ingest = Ingest {
                        events: &events,
                        guard,
                        stats: &guard_stats,
                        handshakes: LogLimit::new(),
                        shut: HashSet::new(),
                        failed: None,
                    };
                    guard_loop(&mut ingest, &guard_stop_rx, &proofs_rx, &wants);
                })?,
        );
        threads.push(
            std::thread::Builder::new()
                .name("qcic-receive".into())
                .spawn(move || {
                    let proofs = Proofs {
                        socket: proofs_tx,
                        wanted: wants_proof,
                        watched,
                    };
                    receive_loop(&pull, &stop_rx, &proofs, curve, rate, &tx, &stats);
                    // The receive thread forwards its stop signal to the
                    // guard and ZAP threads.
                    let _ = guard_stop_tx.send("stop", 0);
                    if let Some(zap_stop) = zap_stop {
                        let _ = zap_stop.send("stop", 0);
                    }
                })?,
        );
        Ok(Receiver { control, threads })
    }

    /// Stops the threads and waits for them. Messages already handed over
    /// stay queued for the checker; the channel closes when the thread ends.
    pub fn stop(mut self) {
        if let Err(err) = self.control.send("stop", 0) {
            warn!(cause = %err, "cannot signal the receive thread to stop");
        }
        for thread in self.threads.drain(..) {
            if thread.join().is_err() {
                warn!("a receive thread panicked");
            }
        }
    }
}

/// Subscribes to the PULL socket's connections (for the guard) and, with
/// CURVE, its failed handshakes (a plaintext sender, a sender with the
/// wrong server key, a refused key).
fn watch_connections(
    ctx: &zmq::Context,
    pull: &zmq::Socket,
    curve: bool,
) -> Result<zmq::Socket, MonitorError> {
    let address = format!(
        "inproc://qcic-connections-{}",
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let mut events = zmq::SocketEvent::ACCEPTED as i32 | zmq::SocketEvent::DISCONNECTED as i32;
    if curve {
        events |= zmq::SocketEvent::HANDSHAKE_FAILED_NO_DETAIL as i32
            | zmq::SocketEvent::HANDSHAKE_FAILED_PROTOCOL as i32
            | zmq::SocketEvent::HANDSHAKE_FAILED_AUTH as i32;
    }
    pull.monitor(&address, events)?;
    let sub = ctx.socket(zmq::PAIR)?;
    sub.set_linger(0)?;
    sub.connect(&address)?;
    Ok(sub)
}

/// The guard thread's view of the ingest connections.
struct Ingest<'a> {
    events: &'a zmq::Socket,
    guard: Guard,
    stats: &'a Stats,
    handshakes: LogLimit,
    /// Connections the guard shut down whose end libzmq has not reported.
    shut: HashSet<i32>,
    /// A failed handshake waiting for its connection's end: libzmq reports
    /// the failure and then, at once, the connection's end with its
    /// descriptor, and only that tells whether the guard ended it.
    failed: Option<(zmq::SocketEvent, Option<String>)>,
}

/// The guard thread: socket events, proofs from the receive thread, and
/// idle connections to close, until the stop signal.
fn guard_loop(
    ingest: &mut Ingest<'_>,
    stop: &zmq::Socket,
    proofs: &zmq::Socket,
    wanted: &std::sync::atomic::AtomicBool,
) {
    loop {
        wanted.store(ingest.guard.wants_proof(), Ordering::Relaxed);
        let sleep = ingest.sweep();
        let mut items = [
            ingest.events.as_poll_item(zmq::POLLIN),
            stop.as_poll_item(zmq::POLLIN),
            proofs.as_poll_item(zmq::POLLIN),
        ];
        if let Err(err) = zmq::poll(&mut items, sleep) {
            if err == zmq::Error::EINTR {
                continue;
            }
            warn!(cause = %err, "zmq poll failed; connection guard stops");
            return;
        }
        if items[1].is_readable() {
            return;
        }
        if items[0].is_readable() {
            ingest.on_events();
        }
        while let Ok(address) = proofs.recv_bytes(zmq::DONTWAIT) {
            if let Some(ip) = std::str::from_utf8(&address)
                .ok()
                .and_then(|a| a.parse().ok())
            {
                ingest.guard.valid_from(ip);
            }
        }
    }
}

/// How the receive thread tells the guard a valid message came from an
/// address, when the guard wants to know.
struct Proofs {
    socket: zmq::Socket,
    wanted: Arc<std::sync::atomic::AtomicBool>,
    watched: Arc<WatchedJobs>,
}

impl Proofs {
    /// A valid message for `job` from `sender_key` arrived in `frame`: if
    /// the registry takes it, its address's connections are proven. Never
    /// waits: dropped if the guard is behind.
    fn send(&self, frame: &mut zmq::Message, job: &str, sender_key: Option<&str>) {
        if self.wanted.load(Ordering::Relaxed) && self.watched.takes(job, sender_key) {
            if let Some(address) = frame.gets("Peer-Address") {
                let _ = self.socket.send(address.as_bytes(), zmq::DONTWAIT);
            }
        }
    }
}

impl Ingest<'_> {
    /// Takes every pending socket event.
    fn on_events(&mut self) {
        let now = Instant::now();
        while let Ok(frames) = self.events.recv_multipart(zmq::DONTWAIT) {
            let Some(head) = frames.first().filter(|f| f.len() >= 6) else {
                continue;
            };
            let event = zmq::SocketEvent::from_raw(u16::from_le_bytes([head[0], head[1]]));
            let value = u32::from_le_bytes([head[2], head[3], head[4], head[5]]);
            let fd = i32::try_from(value).unwrap_or(-1);
            match event {
                zmq::SocketEvent::ACCEPTED => {
                    self.handshake_failed(None);
                    self.shut.remove(&fd);
                    let closing = self.guard.accepted(fd, now);
                    self.close(closing);
                }
                zmq::SocketEvent::DISCONNECTED => {
                    // A handshake the guard cut short is its closing,
                    // counted as that, not as a sender's failure.
                    self.handshake_failed(Some(fd));
                    self.shut.remove(&fd);
                    self.guard.disconnected(fd);
                }
                _ => {
                    self.handshake_failed(None);
                    let endpoint = frames
                        .get(1)
                        .map(|f| String::from_utf8_lossy(f).into_owned());
                    self.failed = Some((event, endpoint));
                }
            }
        }
        self.stats
            .ingest_connections
            .store(self.guard.len() as u64, Ordering::Relaxed);
    }

    /// Settles the failed handshake waiting, if any: counted and logged,
    /// unless `ended` is a connection the guard shut down.
    fn handshake_failed(&mut self, ended: Option<i32>) {
        let Some((event, endpoint)) = self.failed.take() else {
            return;
        };
        if ended.is_some_and(|fd| self.shut.contains(&fd)) {
            return;
        }
        self.stats.handshake_failed.fetch_add(1, Ordering::Relaxed);
        self.handshakes.note(|suppressed| {
            warn!(event = ?event, endpoint = ?endpoint, suppressed, "a sender failed the CURVE handshake (plaintext, wrong server key, or refused key)");
        });
    }

    fn close(&mut self, closing: Vec<(i32, std::net::SocketAddr, crate::ingest_guard::Closed)>) {
        for (fd, peer, why) in closing {
            if crate::ingest_guard::close(fd, peer) {
                self.shut.insert(fd);
                self.stats
                    .ingest_connections_closed
                    .fetch_add(1, Ordering::Relaxed);
                self.guard.note_closed(peer, why);
            }
        }
    }

    /// Closes connections idle past their time; how long `poll` may sleep.
    fn sweep(&mut self) -> i64 {
        let now = Instant::now();
        if self.guard.next_sweep().is_some_and(|at| at <= now) {
            let closing = self.guard.sweep(now);
            self.close(closing);
        }
        match self.guard.next_sweep() {
            // Rounded up: waking a millisecond early would only poll again.
            Some(at) => {
                i64::try_from(at.saturating_duration_since(now).as_millis() + 1).unwrap_or(i64::MAX)
            }
            None => -1,
        }
    }
}

/// The ZAP handler (RFC 27): answers libzmq's authentication requests for
/// the CURVE socket. A key not on the allowed list gets 400; an accepted one
/// becomes the connection's User-Id, which every message then carries.
fn zap_loop(
    zap: &zmq::Socket,
    stop: &zmq::Socket,
    allowed: Option<&HashSet<String>>,
    stats: &Stats,
) {
    let mut refusals = LogLimit::new();
    loop {
        let mut items = [
            zap.as_poll_item(zmq::POLLIN),
            stop.as_poll_item(zmq::POLLIN),
        ];
        if zmq::poll(&mut items, -1).is_err() {
            continue;
        }
        if items[1].is_readable() {
            return;
        }
        if !items[0].is_readable() {
            continue;
        }
        let Ok(request) = zap.recv_multipart(0) else {
            continue;
        };
        // version, request id, domain, address, identity, mechanism, credentials...
        let request_id = request.get(1).cloned().unwrap_or_default();
        let mechanism = request.get(5).map(Vec::as_slice).unwrap_or_default();
        let key = request
            .get(6)
            .filter(|k| mechanism == b"CURVE" && k.len() == 32)
            .map(z85::encode);
        let (status, text, user) = match key {
            Some(key) if allowed.is_none_or(|set| set.contains(&key)) => ("200", "OK", key),
            Some(key) => {
                stats.curve_refused.fetch_add(1, Ordering::Relaxed);
                refusals.note(|suppressed| {
                    warn!(sender_key = %key, suppressed, "CURVE sender key not allowed; connection refused");
                });
                ("400", "sender key not allowed", String::new())
            }
            None => {
                stats.curve_refused.fetch_add(1, Ordering::Relaxed);
                ("400", "CURVE required", String::new())
            }
        };
        let reply: [&[u8]; 6] = [
            b"1.0",
            &request_id,
            status.as_bytes(),
            text.as_bytes(),
            user.as_bytes(),
            b"",
        ];
        if let Err(err) = zap.send_multipart(reply, 0) {
            warn!(cause = %err, "cannot answer a ZAP request");
        }
    }
}

/// Who sent a frame, for limits and logs: the CURVE key, else the peer address.
fn sender_of(frame: &mut zmq::Message, sender_key: Option<&str>) -> String {
    match sender_key {
        Some(key) => key.to_owned(),
        None => frame.gets("Peer-Address").unwrap_or("unknown").to_owned(),
    }
}

/// Messages handed to the checker at once, at most.
pub const INBOUND_BATCH: usize = 256;

fn receive_loop(
    pull: &zmq::Socket,
    stop: &zmq::Socket,
    proofs: &Proofs,
    curve: bool,
    rate: u32,
    tx: &mpsc::Sender<Vec<Inbound>>,
    stats: &Stats,
) {
    let mut drops = LogLimit::new();
    let mut limits = RateLimits::new(rate);
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
        // Take everything that is ready before polling again, and hand it
        // over in batches: one channel operation (and at most one wake-up
        // of the checker) per batch, not per message.
        // Frames, valid or not, count toward a hand-over: under a flood of
        // garbage the socket never runs dry, and a valid message must not
        // wait in a batch for the flood to end.
        let mut batch: Vec<Inbound> = Vec::with_capacity(INBOUND_BATCH);
        let mut frames_in_batch = 0usize;
        loop {
            if frames_in_batch >= INBOUND_BATCH {
                frames_in_batch = 0;
                if !batch.is_empty() {
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(INBOUND_BATCH));
                    if tx.blocking_send(full).is_err() {
                        return;
                    }
                }
            }
            let mut frame = match pull.recv_msg(zmq::DONTWAIT) {
                Ok(frame) => frame,
                Err(zmq::Error::EAGAIN) => {
                    if !batch.is_empty() && tx.blocking_send(std::mem::take(&mut batch)).is_err() {
                        return;
                    }
                    break;
                }
                Err(zmq::Error::EINTR) => continue,
                Err(err) => {
                    warn!(cause = %err, "zmq receive failed; receive thread stops");
                    return;
                }
            };
            stats.frames.fetch_add(1, Ordering::Relaxed);
            frames_in_batch += 1;
            if frame.get_more() {
                // v1 is one frame per message; discard the rest unread.
                while pull.get_rcvmore().unwrap_or(false) {
                    if pull.recv_msg(zmq::DONTWAIT).is_err() {
                        break;
                    }
                }
                stats.drop_frame(DropReason::Multipart);
                drops.note(|suppressed| {
                    warn!(
                        reason = DropReason::Multipart.name(),
                        suppressed, "dropped a frame"
                    )
                });
                continue;
            }
            // With CURVE, the key is the identity.
            let sender_key = if curve {
                frame.gets("User-Id").map(str::to_owned)
            } else {
                None
            };
            match Message::decode(&frame) {
                Ok(message) => {
                    if limits.enabled() {
                        let sender = match sender_key.as_deref() {
                            Some(key) => key,
                            None => frame.gets("Peer-Address").unwrap_or("unknown"),
                        };
                        if !limits.allow(sender, &message.job) {
                            stats.drop_frame(DropReason::RateLimited);
                            let sender = sender.to_owned();
                            drops.note(|suppressed| {
                                warn!(reason = DropReason::RateLimited.name(), %sender, job = %message.job, suppressed, "dropped a frame: this job from this sender is over its rate limit");
                            });
                            continue;
                        }
                    }
                    proofs.send(&mut frame, &message.job, sender_key.as_deref());
                    stats.accepted.fetch_add(1, Ordering::Relaxed);
                    let kind = usize::from(message.kind.code()) - 1;
                    if let Some(c) = stats.by_kind.get(kind) {
                        c.fetch_add(1, Ordering::Relaxed);
                    }
                    batch.push(Inbound {
                        message,
                        sender_key,
                    });
                }
                Err(err) => {
                    stats.drop_frame(DropReason::from(&err));
                    drops.note(|suppressed| {
                        let sender = sender_of(&mut frame, sender_key.as_deref());
                        warn!(reason = DropReason::from(&err).name(), detail = %crate::printable::one_line(&err.to_string()), %sender, suppressed, "dropped a frame");
                    });
                }
            }
        }
    }
}
