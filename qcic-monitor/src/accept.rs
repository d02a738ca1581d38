//! The accept loop the control socket and the HTTP endpoint share: a cap on
//! connections, a time limit on each, and a pause after an accept error.
//!
//! Local clients must not be able to blind the watcher. Without a cap, idle
//! connections used up the process's descriptors, so libzmq could no longer
//! accept senders (and jobs that were alive went `down`); without a pause,
//! the accept error that follows (EMFILE) was retried in a busy loop that
//! took a whole core. At the cap, the oldest connection that has not sent
//! its request yet makes room for the new one.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};

use std::sync::atomic::AtomicU64;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::AbortHandle;
use tracing::{info, warn};

/// The longest pause after repeated accept errors.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// How many connections a local server holds at once, and how long each may last.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections served at once.
    pub connections: usize,
    /// The longest a connection may take, request and answer.
    pub per_connection: Duration,
}

impl Limits {
    /// The control socket's: a few at once (it answers people and probes),
    /// out of the descriptors this process may open.
    pub fn control(nofile: u64) -> Limits {
        Limits {
            connections: share(nofile, 16, 4, 64),
            per_connection: Duration::from_secs(30),
        }
    }

    /// The HTTP endpoint's.
    pub fn http(nofile: u64) -> Limits {
        Limits {
            connections: share(nofile, 8, 8, 256),
            per_connection: Duration::from_secs(60),
        }
    }
}

/// `nofile / divisor`, within `min..=max`.
fn share(nofile: u64, divisor: u64, min: usize, max: usize) -> usize {
    usize::try_from(nofile / divisor)
        .unwrap_or(max)
        .clamp(min, max)
}

/// Raises the soft limit on open descriptors to the hard one (as most
/// daemons do) and returns the limit now in force.
pub fn raise_nofile() -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return 1024;
    };
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        info!(from = soft, to = hard, "raised the open-descriptor limit");
        return hard;
    }
    soft
}

/// Where a server counts the connections it closes before answering them
/// (idle at the cap, too slow to send its request, past its time limit).
#[derive(Clone)]
pub struct Closed {
    server: &'static str,
    stats: Arc<crate::stats::Stats>,
    counter: fn(&crate::stats::Stats) -> &AtomicU64,
}

impl std::fmt::Debug for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Closed")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

impl Closed {
    /// Counts into `counter` of `stats`, logging as `server`.
    pub fn new(
        server: &'static str,
        stats: &Arc<crate::stats::Stats>,
        counter: fn(&crate::stats::Stats) -> &AtomicU64,
    ) -> Closed {
        Closed {
            server,
            stats: Arc::clone(stats),
            counter,
        }
    }

    /// Counts one connection closed, and logs the 1st, 2nd, 4th, 8th...:
    /// a flood shows in the log without filling it.
    pub fn count(&self, why: &'static str) {
        let closed = (self.counter)(&self.stats).fetch_add(1, Ordering::Relaxed) + 1;
        if closed.is_power_of_two() {
            warn!(
                server = self.server,
                closed, why, "connections closed before they were answered (counted)"
            );
        }
    }
}

/// Whether a connection's client has sent its request: until then it is
/// idle, and the first to go when the cap is reached.
pub type Asked = Arc<AtomicBool>;

/// A connection being served.
struct Open {
    task: AbortHandle,
    asked: Asked,
    since: tokio::time::Instant,
}

/// A connection this young is not closed to make room: its request may be
/// in, not yet read (a flood of new connections must not evict the one
/// real client among them). Short, since at the cap it also paces how fast
/// the idle ones are cleared away.
const YOUNG: Duration = Duration::from_millis(100);

/// Accepts connections and runs `handle` on each, at most
/// `limits.connections` at once, each cut off after `limits.per_connection`.
///
/// At the cap, the oldest connection whose client has not sent its request
/// within [`YOUNG`] is closed to make room (idle clients cannot lock out
/// `status`); when none is, the next waits for one to end.
pub async fn serve<S, A, AF, H, HF>(closed: Closed, limits: Limits, mut accept: A, handle: H)
where
    A: FnMut() -> AF,
    AF: Future<Output = io::Result<S>>,
    H: Fn(S, Asked) -> HF,
    HF: Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(limits.connections));
    let mut open: VecDeque<Open> = VecDeque::with_capacity(limits.connections);
    let what = closed.server;
    let mut backoff = Duration::ZERO;
    loop {
        let stream = match accept().await {
            Ok(stream) => {
                backoff = Duration::ZERO;
                stream
            }
            Err(err) => {
                // EMFILE and friends do not clear by retrying at once.
                backoff = (backoff * 2).clamp(Duration::from_millis(10), MAX_BACKOFF);
                warn!(server = what, cause = %err, pause_ms = u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX), "cannot accept a connection; pausing");
                tokio::time::sleep(backoff).await;
                continue;
            }
        };
        let permit: OwnedSemaphorePermit = loop {
            if let Ok(permit) = Arc::clone(&slots).try_acquire_owned() {
                break permit;
            }
            open.retain(|c| !c.task.is_finished());
            let now = tokio::time::Instant::now();
            let unasked = |c: &&Open| !c.asked.load(Ordering::Relaxed);
            if let Some(i) = open
                .iter()
                .position(|c| unasked(&c) && now >= c.since + YOUNG)
            {
                if let Some(idle) = open.remove(i) {
                    idle.task.abort();
                }
                closed.count("the connection cap was reached; an idle connection made room");
            }
            // A slot frees when a connection ends (the one just closed, at
            // once), or an idle one grows old enough to be closed.
            let next_old = open.iter().filter(unasked).map(|c| c.since + YOUNG).min();
            tokio::select! {
                permit = Arc::clone(&slots).acquire_owned() => match permit {
                    Ok(permit) => break permit,
                    Err(_) => return,
                },
                () = tokio::time::sleep_until(next_old.unwrap_or(now)), if next_old.is_some_and(|t| t > now) => {}
            }
        };
        let asked = Asked::default();
        let work = handle(stream, Arc::clone(&asked));
        let limit = limits.per_connection;
        let cut = closed.clone();
        let task = tokio::spawn(async move {
            let _permit = permit;
            if tokio::time::timeout(limit, work).await.is_err() {
                cut.count("a connection reached its time limit");
            }
        });
        open.retain(|c| !c.task.is_finished());
        open.push_back(Open {
            task: task.abort_handle(),
            asked,
            since: tokio::time::Instant::now(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_follow_the_descriptor_limit() {
        assert_eq!(Limits::control(256).connections, 16);
        assert_eq!(Limits::http(256).connections, 32);
        assert_eq!(Limits::control(32).connections, 4);
        assert_eq!(Limits::control(1 << 20).connections, 64);
        assert_eq!(Limits::http(1 << 20).connections, 256);
    }

    #[tokio::test(start_paused = true)]
    async fn at_the_cap_idle_clients_make_room_and_an_error_pauses_the_loop() {
        use std::sync::atomic::AtomicUsize;
        let calls = Arc::new(AtomicUsize::new(0));
        let served = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (c, done) = (Arc::clone(&calls), Arc::clone(&served));
        let limits = Limits {
            connections: 3,
            per_connection: Duration::from_secs(30),
        };
        let stats = Arc::new(crate::stats::Stats::default());
        let closed = Closed::new("test", &stats, |s| &s.http_connections_closed);
        let server = tokio::spawn(serve(
            closed,
            limits,
            move || {
                let n = c.fetch_add(1, Ordering::SeqCst);
                async move {
                    match n {
                        // An accept error, then six clients: 1-4 idle, 5 and 6 ask.
                        0 => Err(io::Error::other("EMFILE")),
                        1..=6 => Ok(n),
                        _ => std::future::pending().await,
                    }
                }
            },
            move |n: usize, asked: Asked| {
                let done = Arc::clone(&done);
                async move {
                    if n >= 5 {
                        asked.store(true, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        done.lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .push(n);
                    } else {
                        std::future::pending::<()>().await;
                    }
                }
            },
        ));
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(
            calls.load(Ordering::SeqCst),
            8,
            "one pause after the error, then every client"
        );
        assert_eq!(
            *served
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
            [5, 6],
            "idle clients 1 to 3 made room for the ones that asked"
        );
        assert_eq!(stats.http_connections_closed.load(Ordering::Relaxed), 3);
        server.abort();
    }
}
