//! The accept loop the control socket and the HTTP endpoint share: a cap on
//! connections, a time limit on each, and a pause after an accept error.
//!
//! Local clients must not be able to blind the watcher. Without a cap, idle
//! connections used up the process's descriptors, so libzmq could no longer
//! accept senders (and jobs that were alive went `down`); without a pause,
//! the accept error that follows (EMFILE) was retried in a busy loop that
//! took a whole core. At the cap the loop stops accepting: new clients wait
//! in the kernel's backlog until a connection ends or times out.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
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

/// Accepts connections one at a time, at most `limits.connections` open,
/// and runs `handle` on each, cut off after `limits.per_connection`.
pub async fn serve<S, A, AF, H, HF>(what: &'static str, limits: Limits, mut accept: A, handle: H)
where
    A: FnMut() -> AF,
    AF: Future<Output = io::Result<S>>,
    H: Fn(S) -> HF,
    HF: Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(limits.connections));
    let mut backoff = Duration::ZERO;
    let mut at_cap_logged = false;
    loop {
        let permit: OwnedSemaphorePermit = match Arc::clone(&slots).try_acquire_owned() {
            Ok(permit) => {
                at_cap_logged = false;
                permit
            }
            Err(_) => {
                if !at_cap_logged {
                    warn!(
                        server = what,
                        connections = limits.connections,
                        "connection cap reached; new clients wait until one ends (or times out)"
                    );
                    at_cap_logged = true;
                }
                match Arc::clone(&slots).acquire_owned().await {
                    Ok(permit) => permit,
                    Err(_) => return,
                }
            }
        };
        let stream = match accept().await {
            Ok(stream) => {
                backoff = Duration::ZERO;
                stream
            }
            Err(err) => {
                // EMFILE and friends do not clear by retrying at once.
                backoff = (backoff * 2).clamp(Duration::from_millis(10), MAX_BACKOFF);
                warn!(server = what, cause = %err, pause_ms = backoff.as_millis() as u64, "cannot accept a connection; pausing");
                tokio::time::sleep(backoff).await;
                continue;
            }
        };
        let work = handle(stream);
        let limit = limits.per_connection;
        tokio::spawn(async move {
            let _permit = permit;
            if tokio::time::timeout(limit, work).await.is_err() {
                tracing::debug!(server = what, "connection cut off at its time limit");
            }
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
    async fn at_the_cap_it_stops_accepting_and_an_error_pauses_it() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let accepted = Arc::new(AtomicUsize::new(0));
        let calls = Arc::new(AtomicUsize::new(0));
        let (a, c) = (Arc::clone(&accepted), Arc::clone(&calls));
        let limits = Limits {
            connections: 3,
            per_connection: Duration::from_secs(30),
        };
        let server = tokio::spawn(serve(
            "test",
            limits,
            move || {
                let n = c.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n % 2 == 0 {
                        Err(io::Error::other("EMFILE"))
                    } else {
                        Ok(n)
                    }
                }
            },
            move |_n: usize| {
                a.fetch_add(1, Ordering::SeqCst);
                // An idle client: holds its slot until cut off.
                std::future::pending::<()>()
            },
        ));
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(accepted.load(Ordering::SeqCst), 3, "the cap");
        // Three errors, each followed by a pause: not a busy loop.
        assert_eq!(calls.load(Ordering::SeqCst), 6);
        // The idle ones are cut off at 30 s; three more are taken.
        tokio::time::sleep(Duration::from_secs(25)).await;
        assert_eq!(accepted.load(Ordering::SeqCst), 6);
        server.abort();
    }
}
