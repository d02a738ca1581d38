//! `Client`: the caller's side of the sender. Every call only validates and
//! enqueues; the sockets live in the background thread (see `worker`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::curve::{self, Curve};
use crate::declare::JobSpec;
use crate::error::Error;
use crate::message::{self, Kind, MAX_HOST_LEN, Message};
use crate::process::{ProcessSlot, Slot, pid};
use crate::run::Run;
use crate::worker::{self, Shared, Stats, duration_ms_i32};

/// How long dropping the last handle of a client waits for queued messages to
/// reach the watchers before giving up on them.
pub const DEFAULT_CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// Messages the caller may queue ahead of the sender thread.
pub const DEFAULT_QUEUE_CAPACITY: usize = 1024;
/// Messages libzmq may hold per watcher while that watcher is unreachable.
pub const DEFAULT_SEND_HWM: i32 = 1000;

/// Splits a comma-separated endpoint list (`"tcp://a:7700, tcp://b:7700"`).
pub fn parse_endpoints(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Settings for a [`Client`].
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    endpoints: Vec<String>,
    queue_capacity: usize,
    send_hwm: i32,
    close_timeout: Duration,
    host: Option<String>,
    server_key: Option<String>,
    client_keys: Option<(String, String)>,
    curve: Option<Curve>,
}

impl Default for ClientBuilder {
    fn default() -> Self {
        ClientBuilder {
            endpoints: Vec::new(),
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            send_hwm: DEFAULT_SEND_HWM,
            close_timeout: DEFAULT_CLOSE_TIMEOUT,
            host: None,
            server_key: None,
            client_keys: None,
            curve: None,
        }
    }
}

impl ClientBuilder {
    /// Adds one watcher endpoint, e.g. `tcp://watcher-a:7700`.
    pub fn endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoints.push(endpoint.into());
        self
    }

    /// Adds several watcher endpoints.
    pub fn endpoints<I, S>(mut self, endpoints: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.endpoints.extend(endpoints.into_iter().map(Into::into));
        self
    }

    /// Messages that may wait for the sender thread (at least 1).
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.queue_capacity = capacity.max(1);
        self
    }

    /// Messages libzmq may hold per unreachable watcher (ZMQ_SNDHWM).
    pub fn send_hwm(mut self, hwm: i32) -> Self {
        self.send_hwm = hwm.max(1);
        self
    }

    /// How long dropping the client waits for delivery.
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// Overrides the host name sent with every message.
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = Some(host.into());
        self
    }

    /// Turns CURVE on: messages are encrypted and the watchers (every
    /// endpoint: a farm shares one CURVE key pair) are authenticated by this
    /// public key (Z85, from `qcic-monitor keygen`).
    pub fn server_key(mut self, z85: impl Into<String>) -> Self {
        self.server_key = Some(z85.into());
        self
    }

    /// This sender's CURVE key pair (Z85), which watchers may require and
    /// pin jobs to. Without it, a CURVE client makes a fresh pair.
    pub fn client_keys(mut self, public: impl Into<String>, secret: impl Into<String>) -> Self {
        self.client_keys = Some((public.into(), secret.into()));
        self
    }

    /// Takes [`ENV_SERVER_KEY`], [`ENV_CLIENT_PUBLIC_KEY`] and
    /// [`ENV_CLIENT_SECRET_KEY`] from the environment, where set and not
    /// already given.
    ///
    /// [`ENV_SERVER_KEY`]: crate::ENV_SERVER_KEY
    /// [`ENV_CLIENT_PUBLIC_KEY`]: crate::ENV_CLIENT_PUBLIC_KEY
    /// [`ENV_CLIENT_SECRET_KEY`]: crate::ENV_CLIENT_SECRET_KEY
    pub fn keys_from_env(mut self) -> Self {
        if self.server_key.is_none() {
            self.server_key = curve::server_key_from_env();
        }
        if self.client_keys.is_none() {
            self.client_keys = curve::client_keys_from_env();
        }
        self
    }

    fn resolve_curve(&mut self) -> Result<(), Error> {
        let client_keys = self
            .client_keys
            .as_ref()
            .map(|(public, secret)| (public.as_str(), secret.as_str()));
        self.curve = Curve::resolve(self.server_key.as_deref(), client_keys)?;
        Ok(())
    }

    /// Connects one PUSH socket per endpoint and starts the sender thread.
    ///
    /// Connecting never waits for a watcher: ZeroMQ connects in the
    /// background and reconnects by itself.
    pub fn build(mut self) -> Result<Client, Error> {
        if self.endpoints.is_empty() {
            return Err(Error::NoEndpoints);
        }
        self.resolve_curve()?;
        let sender = Sender::start(&self)?;
        let host = self
            .host
            .clone()
            .unwrap_or_else(|| gethostname::gethostname().to_string_lossy().into_owned());
        Ok(Client {
            inner: Arc::new(Inner {
                settings: self,
                slot: ProcessSlot::new(sender),
                seq: AtomicU64::new(1),
                host: cut(message::sendable_host(&host), MAX_HOST_LEN),
                closed: AtomicBool::new(false),
            }),
        })
    }
}

/// The per-process half of a client: the sender thread and its queue.
#[derive(Debug)]
struct Sender {
    tx: Option<SyncSender<Message>>,
    shared: Arc<Shared>,
    done: Option<Receiver<bool>>,
    /// False until this process's sender thread is started.
    started: bool,
}

impl Sender {
    fn start(settings: &ClientBuilder) -> Result<Sender, Error> {
        let linger = duration_ms_i32(settings.close_timeout);
        let ctx = zmq::Context::new();
        let mut sockets = Vec::with_capacity(settings.endpoints.len());
        for endpoint in &settings.endpoints {
            // One socket per watcher: a PUSH socket connected to two
            // endpoints round-robins, so each watcher would see half.
            let socket = ctx.socket(zmq::PUSH)?;
            socket.set_linger(linger)?;
            socket.set_sndhwm(settings.send_hwm)?;
            socket.set_reconnect_ivl(100)?;
            socket.set_reconnect_ivl_max(2000)?;
            socket.set_tcp_keepalive(1)?;
            // libzmq cannot connect to an IPv6 address without it; only
            // then, as with it a host name may resolve to an IPv6 address
            // the watcher does not listen on.
            if endpoint.contains('[') {
                socket.set_ipv6(true)?;
            }
            if let Some(curve) = &settings.curve {
                curve.apply(&socket)?;
            }
            socket.connect(endpoint).map_err(|source| Error::Endpoint {
                endpoint: endpoint.clone(),
                source,
            })?;
            sockets.push(socket);
        }
        let (tx, rx) = mpsc::sync_channel(settings.queue_capacity);
        let (done_tx, done_rx) = mpsc::channel();
        let shared = Arc::new(Shared::new());
        worker::spawn(ctx, sockets, rx, Arc::clone(&shared), done_tx)?;
        Ok(Sender {
            tx: Some(tx),
            shared,
            done: Some(done_rx),
            started: true,
        })
    }

    /// A sender whose thread starts on first use (in a forked child).
    fn not_started() -> Sender {
        Sender {
            tx: None,
            shared: Arc::new(Shared::new()),
            done: None,
            started: false,
        }
    }
}

/// A sender to one or more qcic watchers.
///
/// Cheap to clone and safe to share between threads: every clone and every
/// [`Run`] feeds the same background thread. No call ever blocks on the
/// network: a message that cannot be queued is dropped and counted in
/// [`Client::stats`]. The sender thread closes when [`Client::close`] is
/// called or the last clone and run are dropped, waiting at most the close
/// timeout ([`DEFAULT_CLOSE_TIMEOUT`] unless set) for delivery.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    settings: ClientBuilder,
    /// This process's sender: after a fork, the child's first call makes
    /// its own (see `process`).
    slot: ProcessSlot<Sender>,
    seq: AtomicU64,
    host: String,
    closed: AtomicBool,
}

impl Client {
    /// A client sending to every endpoint given, with default settings and
    /// CURVE keys from the environment ([`ClientBuilder::keys_from_env`]).
    pub fn new<I, S>(endpoints: I) -> Result<Client, Error>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ClientBuilder::default()
            .endpoints(endpoints)
            .keys_from_env()
            .build()
    }

    /// Settings for a new client.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// Says the job is alive.
    pub fn heartbeat(&self, job: &str) -> Result<(), Error> {
        self.report(Kind::Heartbeat, job, None, None, None)
    }

    /// Reports a failure of the job outside any run.
    pub fn fail(&self, job: &str, exit_code: Option<i32>, text: &str) -> Result<(), Error> {
        self.report(Kind::Fail, job, None, exit_code, Some(text))
    }

    /// Begins a run and sends `start`.
    ///
    /// Fails only for a bad job name, a closed client or a fork. If the queue
    /// is full the `start` is dropped and counted but the run is still
    /// returned, so the job goes on and its end is still reported.
    pub fn start(&self, job: &str) -> Result<Run, Error> {
        let id = new_run_id();
        match self.report(Kind::Start, job, Some(id), None, None) {
            Ok(()) | Err(Error::QueueFull) => Ok(Run::new(self.clone(), job.to_owned(), id)),
            Err(err) => Err(err),
        }
    }

    /// Waits until every message queued before this call has been handed to
    /// libzmq for every watcher, at most `timeout`. Returns whether it was.
    ///
    /// libzmq then delivers on its own as soon as each watcher is connected;
    /// only [`Client::close`] can wait for that.
    pub fn flush(&self, timeout: Duration) -> bool {
        let shared = self.inner.shared();
        let target = shared.counters.queued.load(Ordering::SeqCst);
        shared.wait_processed(target, timeout)
    }

    /// Stops the sender: messages still queued are handed over, then libzmq
    /// gets what is left of `timeout` to deliver them. Returns `true` only if
    /// everything was delivered in time. Later sends fail with
    /// [`Error::Closed`]. Calling it again returns the first result.
    pub fn close(&self, timeout: Duration) -> bool {
        self.inner.close(timeout)
    }

    /// Counters of what was queued, sent and dropped.
    ///
    /// Counts this process's messages: a forked child starts from zero.
    pub fn stats(&self) -> Stats {
        self.inner.shared().counters.snapshot()
    }

    /// The host name sent with every message.
    pub fn host(&self) -> &str {
        &self.inner.host
    }

    /// Sends one message of any kind, for callers outside a [`Run`] guard
    /// (such as the `qcic` command, whose start and end are separate
    /// processes). Host, pid, sequence number and time are filled in; text
    /// is cut to 1024 bytes. Never blocks, like every other call.
    pub fn report(
        &self,
        kind: Kind,
        job: &str,
        run_id: Option<u64>,
        exit_code: Option<i32>,
        text: Option<&str>,
    ) -> Result<(), Error> {
        message::check_job_name(job).map_err(|reason| Error::InvalidJob {
            job: job.to_owned(),
            reason,
        })?;
        let inner = &self.inner;
        let msg = Message {
            kind,
            job: job.to_owned(),
            run_id,
            seq: inner.seq.fetch_add(1, Ordering::Relaxed),
            ts_ms: unix_ms(),
            host: inner.host.clone(),
            pid: pid(),
            exit_code,
            text: text.map(|t| message::truncate_text(t).to_owned()),
            expect: None,
        };
        inner.enqueue(msg)
    }

    /// Tells every watcher what `spec.job` expects of itself, so that a
    /// watcher whose policy allows it watches the job without a
    /// `[[job]]` in its configuration. Sent again before the job's next
    /// message after each reconnection to a watcher, and at most every 5
    /// minutes, so a watcher that restarted with its state wiped learns it
    /// again. Fails (and sends nothing) for a spec that breaks a rule.
    pub fn declare(&self, spec: &JobSpec) -> Result<(), Error> {
        message::check_job_name(&spec.job).map_err(|reason| Error::InvalidJob {
            job: spec.job.clone(),
            reason,
        })?;
        spec.expect.check()?;
        let inner = &self.inner;
        let msg = Message {
            seq: inner.seq.fetch_add(1, Ordering::Relaxed),
            ts_ms: unix_ms(),
            host: inner.host.clone(),
            pid: pid(),
            ..Message::declare(spec)
        };
        inner.enqueue(msg)
    }

    /// Sends a message exactly as given: the caller chooses every field,
    /// including `seq`, `ts_ms`, `host` and `pid`. For bridges that relay
    /// other programs' messages, and for checking the wire format against
    /// the protocol's test vectors. Validated like a received message.
    pub fn send_message(&self, msg: Message) -> Result<(), Error> {
        msg.validate()
            .map_err(|err| Error::InvalidMessage(err.to_string()))?;
        self.inner.enqueue(msg)
    }
}

impl Inner {
    /// This process's slot, made if the process was forked since the
    /// current one was.
    fn slot(&self) -> &Slot<Sender> {
        self.slot.get(Sender::not_started)
    }

    /// This process's sender, its thread started on first use in a child.
    fn sender(&self) -> Result<MutexGuard<'_, Sender>, Error> {
        let mut sender = self
            .slot()
            .sender
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if !sender.started {
            if self.closed.load(Ordering::SeqCst) {
                return Err(Error::Closed);
            }
            *sender = Sender::start(&self.settings)?;
        }
        Ok(sender)
    }

    fn shared(&self) -> Arc<Shared> {
        match self.sender() {
            Ok(sender) => Arc::clone(&sender.shared),
            // Only a closed client in a forked child gets here; it has sent nothing.
            Err(_) => Arc::new(Shared::new()),
        }
    }

    fn enqueue(&self, msg: Message) -> Result<(), Error> {
        if self.closed.load(Ordering::SeqCst) {
            let sender = self
                .slot()
                .sender
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            sender
                .shared
                .counters
                .dropped_closed
                .fetch_add(1, Ordering::Relaxed);
            return Err(Error::Closed);
        }
        let sender = self.sender()?;
        let counters = &sender.shared.counters;
        let Some(tx) = sender.tx.as_ref() else {
            counters.dropped_closed.fetch_add(1, Ordering::Relaxed);
            return Err(Error::Closed);
        };
        match tx.try_send(msg) {
            Ok(()) => {
                counters.queued.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
            Err(TrySendError::Full(_)) => {
                counters.dropped_queue_full.fetch_add(1, Ordering::Relaxed);
                Err(Error::QueueFull)
            }
            Err(TrySendError::Disconnected(_)) => {
                counters.dropped_closed.fetch_add(1, Ordering::Relaxed);
                Err(Error::Closed)
            }
        }
    }

    fn close(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        self.closed.store(true, Ordering::SeqCst);
        let slot = self.slot();
        let done = {
            let mut sender = slot.sender.lock().unwrap_or_else(PoisonError::into_inner);
            if !sender.started {
                // A forked child that never sent has no thread to stop.
                return true;
            }
            sender.shared.set_close_deadline(deadline);
            // Dropping the only sender lets the worker drain the queue and stop.
            drop(sender.tx.take());
            sender.done.take()
        };
        let mut result = slot
            .close_result
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let Some(done) = done else {
            // Closed before: report the first close's outcome.
            return result.unwrap_or(false);
        };
        let wait = deadline.saturating_duration_since(Instant::now());
        // The worker's own linger ends by the deadline; a little slack lets
        // its report arrive.
        // A timeout or a vanished worker both mean: not confirmed delivered.
        let delivered = done
            .recv_timeout(wait + Duration::from_millis(50))
            .unwrap_or_default();
        *result = Some(delivered);
        delivered
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if !self.closed.load(Ordering::SeqCst) {
            self.close(self.settings.close_timeout);
        }
        // Then `slot` frees this process's slot, never a parent's.
    }
}

fn cut(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A fresh run id: random, so overlapping runs of a job stay apart.
pub fn new_run_id() -> u64 {
    // A run id only has to differ from the job's other runs; if the OS has no
    // randomness to give, time, pid and a counter still do that.
    static FALLBACK: AtomicU64 = AtomicU64::new(0);
    getrandom::u64().unwrap_or_else(|_| {
        let n = FALLBACK.fetch_add(1, Ordering::Relaxed);
        unix_ms().rotate_left(20) ^ (u64::from(std::process::id()) << 44) ^ n
    })
}
