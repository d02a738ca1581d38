//! Sender hosts' clocks as measured from their messages: the skew
//! estimate (advisory: host names are not authenticated), kept by recency.

use super::*;

/// `v` within `i64`, saturating at either end.
pub(super) fn clamp_i64(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

/// Hosts whose clock state is remembered. Host names are not
/// authenticated (any sender may claim any), so the table is kept by
/// recency: when full, the eighth heard from longest ago make room.
pub(super) const MAX_SKEW_HOSTS: usize = 10_000;

/// Hosts `hosts()` gives (status, page, API, metrics): the largest skews
/// first; the rest are only counted (`Stats::hosts_known`).
pub const HOSTS_SHOWN: usize = 100;

/// One sender host's clock, as measured from its messages.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct HostView {
    /// The host name senders report.
    pub host: String,
    /// The watcher's clock minus the host's, ms (positive: the host is
    /// behind), from the recent message that arrived quickest: transit and
    /// queueing only ever add to it.
    pub skew_ms: i64,
    /// Whether it is beyond `max_clock_skew`.
    pub skewed: bool,
    /// When its last message arrived (watcher clock, unix ms).
    pub last_seen_ms: u64,
    /// Messages from it since the watcher started.
    pub messages: u64,
}

/// Buckets per host for the offset estimate, and the watcher time each
/// covers: the estimate remembers at least `SKEW_WINDOW` × `SKEW_BUCKET_MS`
/// of a host's traffic, however many messages arrive at once. A backlog
/// queued while a link was cut arrives in one burst and fills one bucket,
/// so it cannot push out the offsets measured before the cut (with a
/// window counted in messages, a long enough backlog would measure itself
/// and pass for fresh).
pub(super) const SKEW_WINDOW: usize = 8;

pub(super) const SKEW_BUCKET_MS: u64 = 30_000;

/// Two messages at least this far apart in arrival, equally late within
/// `STEP_TOLERANCE_MS`, show a sender clock that stepped (see
/// `HostClock::stepped`).
pub(super) const STEP_SPACING_MS: u64 = 1_000;

pub(super) const STEP_TOLERANCE_MS: u64 = 1_000;

#[derive(Debug)]
pub(super) struct HostClock {
    /// The interned name (the map's key too).
    pub(super) name: Arc<str>,
    /// With CURVE, the key of the sender that first claimed the name:
    /// another key claiming it is measured apart, under a name of its own,
    /// so it cannot move this host's estimate.
    pub(super) key: Option<Arc<str>>,
    /// The last `SKEW_WINDOW` buckets: (first arrival in it, watcher clock
    /// unix ms; the smallest offset in it, watcher minus sender, ms).
    pub(super) samples: VecDeque<(u64, i64)>,
    pub(super) skewed: bool,
    pub(super) last_seen_ms: u64,
    pub(super) messages: u64,
    /// The previous message's (arrival, offset), to tell a sender whose
    /// clock stepped from a backlog.
    pub(super) previous: Option<(u64, i64)>,
}

impl HostClock {
    pub(super) fn new(name: Arc<str>, wall_ms: u64) -> HostClock {
        HostClock {
            name,
            key: None,
            samples: VecDeque::with_capacity(SKEW_WINDOW),
            skewed: false,
            last_seen_ms: wall_ms,
            messages: 0,
            previous: None,
        }
    }

    /// Whether the host's clock stepped back: this message and the one
    /// before it both look late, by the same amount, yet arrived well
    /// apart. A backlog arrives in a burst, each message less late than the
    /// one before; messages sent live by a clock set back arrive spaced as
    /// they were sent, all late alike. The offsets measured before the step
    /// are then void.
    pub(super) fn stepped(&self, wall_ms: u64, sample: i64) -> bool {
        let (Some(estimate), Some((at, before))) = (self.measured(), self.previous) else {
            return false;
        };
        let late = |s: i64| {
            s.saturating_sub(estimate) >= i64::try_from(STALE_AFTER_MS).unwrap_or(i64::MAX)
        };
        late(sample)
            && late(before)
            && sample.abs_diff(before) <= STEP_TOLERANCE_MS
            && wall_ms.saturating_sub(at) >= STEP_SPACING_MS
    }

    /// The offset with the least transit delay in it: delay (and a message
    /// queued at the sender while the link was cut) only adds to
    /// watcher-minus-sender, so the smallest recent sample is the best.
    /// `None` until the host is measured (or since the watcher's clock
    /// stepped).
    pub(super) fn measured(&self) -> Option<i64> {
        self.samples.iter().map(|(_, s)| *s).min()
    }

    pub(super) fn estimate(&self) -> i64 {
        self.measured().unwrap_or(0)
    }

    pub(super) fn sample(&mut self, wall_ms: u64, sample: i64) {
        match self.samples.back_mut() {
            Some((from, least)) if wall_ms.saturating_sub(*from) < SKEW_BUCKET_MS => {
                *least = (*least).min(sample);
            }
            _ => {
                if self.samples.len() == SKEW_WINDOW {
                    self.samples.pop_front();
                }
                self.samples.push_back((wall_ms, sample));
            }
        }
    }
}

/// Every sender host's clock, kept by recency (host names are not
/// authenticated, so the table is bounded, not by name).
#[derive(Debug)]
pub(super) struct HostClocks {
    /// foldhash, seeded per process: hosts come from senders, but at most
    /// MAX_SKEW_HOSTS are inserted.
    table: HashMap<Arc<str>, HostClock, foldhash::fast::RandomState>,
    /// A host off by more than this is reported.
    pub(super) max_skew: Duration,
    stats: Arc<Stats>,
}

impl HostClocks {
    pub(super) fn new(max_skew: Duration, stats: Arc<Stats>) -> HostClocks {
        HostClocks {
            table: HashMap::default(),
            max_skew,
            stats,
        }
    }

    /// The measured offset of `host` (watcher minus sender, ms), if any.
    pub(super) fn offset_of(&self, host: &str) -> Option<i64> {
        self.table.get(host)?.measured()
    }

    /// A restarted watcher's offset for `host` from its saved state, unless
    /// the host is known already or the table is full.
    pub(super) fn restore(&mut self, host: Arc<str>, offset: i64, at_ms: u64) {
        if !self.table.contains_key(&host) && self.table.len() < MAX_SKEW_HOSTS {
            let mut clock = HostClock::new(Arc::clone(&host), at_ms);
            clock.sample(at_ms, offset);
            self.table.insert(host, clock);
            self.stats
                .hosts_known
                .store(self.table.len() as u64, Ordering::Relaxed);
        }
    }

    /// The watcher's own clock stepped: offsets measured against its old
    /// reading are void.
    pub(super) fn forget_offsets(&mut self) {
        for clock in self.table.values_mut() {
            clock.samples.clear();
            clock.previous = None;
        }
    }

    /// Deadlines never use the sender's clock; a clock far off is only
    /// reported (and shown per host), once each time a host goes out of (or
    /// back into) bounds.
    pub(super) fn observe(
        &mut self,
        msg: &Message,
        sender_key: Option<&str>,
        wall_ms: u64,
    ) -> Arc<str> {
        // Saturated, sign kept: a timestamp of u64::MAX is a host far
        // ahead (negative), never the most behind there is.
        let sample = clamp_i64(i128::from(wall_ms) - i128::from(msg.ts_ms));
        if sample.unsigned_abs() > u64::try_from(self.max_skew.as_millis()).unwrap_or(u64::MAX) {
            self.stats.skewed_messages.fetch_add(1, Ordering::Relaxed);
        }
        // With CURVE, a name first claimed by another key is measured
        // under a name of its own.
        let claimed = msg.host.as_str();
        let table_name: std::borrow::Cow<'_, str> = match (self.table.get(claimed), sender_key) {
            (Some(clock), Some(key)) if clock.key.as_deref() != Some(key) => {
                std::borrow::Cow::Owned(format!("{claimed} [key {}]", key.get(..8).unwrap_or(key)))
            }
            _ => std::borrow::Cow::Borrowed(claimed),
        };
        if !self.table.contains_key(&*table_name) {
            if self.table.len() >= MAX_SKEW_HOSTS {
                self.forget_oldest();
            }
            let name: Arc<str> = Arc::from(&*table_name);
            let mut clock = HostClock::new(Arc::clone(&name), wall_ms);
            clock.key = sender_key.map(Arc::from);
            self.table.insert(name, clock);
            self.stats
                .hosts_known
                .store(self.table.len() as u64, Ordering::Relaxed);
        }
        // Looked up again rather than with `entry`, which would allocate
        // the host name for every message; the key is the interned name
        // every job's last message shares.
        let Some(clock) = self.table.get_mut(&*table_name) else {
            return Arc::from(msg.host.as_str());
        };
        // A job's last message keeps the name the sender claimed.
        let host = if clock.name.as_ref() == claimed {
            Arc::clone(&clock.name)
        } else {
            Arc::from(claimed)
        };
        let shown = Arc::clone(&clock.name);
        if clock.stepped(wall_ms, sample) {
            tracing::info!(host = %shown, offset_ms = sample, "sender clock stepped back (messages arrive live, all late alike): its offset is measured afresh");
            clock.samples.clear();
        }
        clock.previous = Some((wall_ms, sample));
        clock.sample(wall_ms, sample);
        clock.last_seen_ms = wall_ms;
        clock.messages += 1;
        let skew_ms = clock.estimate();
        let skewed = u128::from(skew_ms.unsigned_abs()) > self.max_skew.as_millis();
        if skewed != clock.skewed {
            clock.skewed = skewed;
            if skewed {
                warn!(host = %shown, skew_ms, max_clock_skew = ?self.max_skew, "sender clock is off (positive: behind the watcher); deadlines use the watcher's clock, the sender's timestamps are only recorded");
            } else {
                tracing::info!(host = %shown, skew_ms, "sender clock back within bounds");
            }
        }
        host
    }

    /// The sender hosts with the largest clock offsets, at most
    /// [`HOSTS_SHOWN`], largest first (then by name): what people look
    /// for, in a size that stays readable however many hosts there are.
    pub(super) fn views(&self) -> Vec<HostView> {
        // Only the shown ones are built and fully sorted: with a full
        // table, building and sorting every view cost ~2 ms a query, on
        // the loop that also runs the deadlines.
        let order = |a: &(u64, &Arc<str>, &HostClock), b: &(u64, &Arc<str>, &HostClock)| {
            b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1))
        };
        let mut all: Vec<(u64, &Arc<str>, &HostClock)> = self
            .table
            .iter()
            .map(|(host, c)| (c.estimate().unsigned_abs(), host, c))
            .collect();
        if all.len() > HOSTS_SHOWN {
            all.select_nth_unstable_by(HOSTS_SHOWN, order);
            all.truncate(HOSTS_SHOWN);
        }
        all.sort_unstable_by(order);
        all.into_iter()
            .map(|(_, host, c)| HostView {
                host: host.to_string(),
                skew_ms: c.estimate(),
                skewed: c.skewed,
                last_seen_ms: c.last_seen_ms,
                messages: c.messages,
            })
            .collect()
    }

    /// Makes room in the full host table: the eighth heard from longest
    /// ago go (one sort per 1 250 new names, not a scan per message).
    fn forget_oldest(&mut self) {
        let mut by_age: Vec<(u64, Arc<str>)> = self
            .table
            .values()
            .map(|c| (c.last_seen_ms, Arc::clone(&c.name)))
            .collect();
        by_age.sort_unstable();
        for (_, name) in by_age.into_iter().take(MAX_SKEW_HOSTS / 8) {
            self.table.remove(&name);
        }
    }
}
