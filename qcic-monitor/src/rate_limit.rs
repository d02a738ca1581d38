//! The ingest rate limit: messages a second for each job from each sender
//! (`[monitor] max_rate_per_sender`), bounded in memory whatever senders
//! send.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tracing::warn;

use crate::log_limit::LogLimit;

/// The per-(sender, job) rate limit: a token bucket each, so one job's
/// burst spends its own budget, never that of another job on the same host
/// or key. Keyed by a hash with this process's random keys (no allocation
/// per message, and no collisions an attacker can aim for).
///
/// Bounded at `MAX_BUCKETS` pairs: when full, pairs idle for `IDLE` go,
/// looked for at most once a second (a scan per new pair cost a core under
/// a flood of made-up job names). A pair that still finds no room spends
/// its sender's budget: one bucket per sender, beside the pairs, so a
/// flood of made-up names from one sender drains that sender's bucket and
/// nobody else's. (One overflow bucket shared by all made a quiet job's
/// next message wait behind the flood and dropped it; letting such pairs
/// through unlimited let a flood that filled the table turn the limit off
/// for everyone.)
pub(crate) struct RateLimits {
    per_second: f64,
    keys: std::collections::hash_map::RandomState,
    pairs: Buckets,
    /// A budget per sender, for pairs the table has no room for.
    senders: Buckets,
    /// Messages let through with neither a pair nor a sender bucket.
    untracked: u64,
    full: LogLimit,
}

/// Token buckets by key hash, bounded.
struct Buckets {
    map: HashMap<u64, (f64, Instant)>,
    /// When idle buckets were last looked for.
    swept: Option<Instant>,
}

impl Buckets {
    fn new() -> Buckets {
        Buckets {
            map: HashMap::new(),
            swept: None,
        }
    }

    /// The bucket for `key`, made full if there is room (after dropping
    /// idle ones, at most once a second).
    fn get(&mut self, key: u64, rate: f64, now: Instant) -> Option<&mut (f64, Instant)> {
        // Two lookups on a hit: returning the `get_mut` borrow from one
        // branch and inserting in the other is refused by today's borrow
        // checker, and the sweep below must run before an insert.
        if !self.map.contains_key(&key) {
            if self.map.len() >= RateLimits::MAX_BUCKETS
                && self
                    .swept
                    .is_none_or(|at| now.duration_since(at) >= Duration::from_secs(1))
            {
                self.swept = Some(now);
                self.map
                    .retain(|_, (_, last)| now.duration_since(*last) < RateLimits::IDLE);
            }
            if self.map.len() >= RateLimits::MAX_BUCKETS {
                return None;
            }
            self.map.insert(key, (rate, now));
        }
        self.map.get_mut(&key)
    }
}

impl RateLimits {
    const MAX_BUCKETS: usize = 100_000;
    const IDLE: Duration = Duration::from_secs(10);

    pub(crate) fn new(per_second: u32) -> RateLimits {
        RateLimits {
            per_second: f64::from(per_second),
            keys: std::collections::hash_map::RandomState::new(),
            pairs: Buckets::new(),
            senders: Buckets::new(),
            untracked: 0,
            full: LogLimit::new(),
        }
    }

    /// Whether one more message of `job` from `sender` may pass now.
    pub(crate) fn allow(&mut self, sender: &str, job: &str) -> bool {
        use std::hash::BuildHasher;
        if !self.enabled() {
            return true;
        }
        let now = Instant::now();
        let rate = self.per_second;
        let pair = self.keys.hash_one((sender, job));
        let bucket = match self.pairs.get(pair, rate, now) {
            Some(bucket) => bucket,
            None => {
                let own = self.keys.hash_one(sender);
                match self.senders.get(own, rate, now) {
                    Some(bucket) => bucket,
                    None => {
                        // 100 000 senders each busy within 10 s: past
                        // what one watcher's ingest carries.
                        self.untracked += 1;
                        let untracked = self.untracked;
                        self.full.note(|suppressed| {
                            warn!(untracked, suppressed, "the rate limit's tables of (sender, job) pairs and of senders are full of busy ones; this message passes unlimited");
                        });
                        return true;
                    }
                }
            }
        };
        let elapsed = now.duration_since(bucket.1).as_secs_f64();
        bucket.0 = (bucket.0 + elapsed * rate).min(rate);
        bucket.1 = now;
        if bucket.0 >= 1.0 {
            bucket.0 -= 1.0;
            true
        } else {
            false
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.per_second > 0.0
    }
}
