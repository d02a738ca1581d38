//! Delivery with retries, shared by every channel that can fail for a while
//! (SMTP, webhook, command).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tracing::{debug, error, info, warn};

use super::DeliveryReports;
use crate::notification::Notification;
use crate::stats::Stats;

/// Waits between delivery attempts; the last one repeats until the give-up time.
pub const BACKOFF: [Duration; 6] = [
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(5),
    Duration::from_secs(10),
    Duration::from_secs(30),
    Duration::from_secs(60),
];
/// The longest `Retry-After` waited for: a server that asks for more gets
/// asked again this much later.
pub const RETRY_AFTER_MAX: Duration = Duration::from_secs(300);
/// How long one notification is retried before it is given up on.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(15 * 60);

/// Why an attempt failed.
#[derive(Debug)]
pub enum Failure {
    /// Worth trying again (server down, timeout, 5xx).
    Temporary(String),
    /// Worth trying again after the time the server asked for
    /// (`Retry-After`), capped at [`RETRY_AFTER_MAX`].
    Throttled(String, Duration),
    /// Will never work as it is (rejected address, 4xx): logged, not retried.
    Permanent(String),
}

/// Delivers `notes` as one digest through `attempt` (given what is left
/// to send: in a farm, what a peer delivered meanwhile is dropped from the
/// next try), retrying as [`deliver`] does. Its outcome is each
/// notification's: counted, logged and reported to the farm for each.
/// Refused for good, it returns its members, to be sent alone (one of
/// them may be what the service will not take, or the digest too large).
#[must_use = "members of a refused digest must be sent alone"]
pub async fn deliver_digest<F, Fut>(
    channel: &str,
    mut notes: Vec<Arc<Notification>>,
    stats: &Arc<Stats>,
    farm: Option<&dyn DeliveryReports>,
    mut attempt: F,
) -> Vec<Arc<Notification>>
where
    F: FnMut(Vec<Arc<Notification>>) -> Fut,
    Fut: Future<Output = Result<(), Failure>>,
{
    let started = tokio::time::Instant::now();
    let mut tries = 0usize;
    let summary = |notes: &[Arc<Notification>]| super::digest::Digest { notes }.summary();
    loop {
        let result = attempt(notes.clone()).await;
        let (cause, after, permanent) = match result {
            Ok(()) => {
                stats.digests.fetch_add(1, Ordering::Relaxed);
                for note in &notes {
                    if let Some(farm) = farm {
                        farm.delivered(note);
                    }
                    stats.delivered.fetch_add(1, Ordering::Relaxed);
                    stats.channel_result(channel, true);
                    debug!(%channel, incident = %note.incident, event = %note.event, job = %note.job, "notification delivered in a digest");
                }
                info!(%channel, digest = %summary(&notes), attempt = tries + 1, "digest delivered");
                return Vec::new();
            }
            Err(Failure::Temporary(cause)) => (cause, None, false),
            Err(Failure::Throttled(cause, after)) => (cause, Some(after), false),
            Err(Failure::Permanent(cause)) => (cause, None, true),
        };
        if permanent && notes.len() > 1 {
            warn!(%channel, digest = %summary(&notes), %cause, "digest refused; its notifications go alone");
            return notes;
        }
        if tries == 0 || permanent || started.elapsed() >= GIVE_UP_AFTER {
            if let Some(farm) = farm {
                for note in &notes {
                    farm.failed(note);
                }
            }
        }
        if permanent || started.elapsed() >= GIVE_UP_AFTER {
            for _ in &notes {
                stats.delivery_failed.fetch_add(1, Ordering::Relaxed);
                stats.channel_result(channel, false);
            }
            let incidents: Vec<&str> = notes.iter().map(|n| &*n.incident).collect();
            error!(%channel, digest = %summary(&notes), incidents = %incidents.join(","), %cause, permanent, "digest given up; its notifications were not delivered");
            return Vec::new();
        }
        if let Some(farm) = farm {
            notes.retain(|note| !farm.delivered_elsewhere(note));
            if notes.is_empty() {
                info!(%channel, "farm peers delivered everything in this digest; not retried here");
                return Vec::new();
            }
        }
        let backoff = BACKOFF[tries.min(BACKOFF.len() - 1)];
        let wait = after.map_or(backoff, |after| after.clamp(backoff, RETRY_AFTER_MAX));
        stats.delivery_retries.fetch_add(1, Ordering::Relaxed);
        warn!(%channel, digest = %summary(&notes), %cause, retry_in = ?wait, "digest not delivered; will retry");
        tokio::time::sleep(wait).await;
        tries += 1;
    }
}

/// Delivers `note` through `attempt` (told whether it is the first try),
/// retrying temporary failures with backoff for up to [`GIVE_UP_AFTER`].
/// Counts and logs the outcome.
pub async fn deliver<F, Fut>(
    channel: &str,
    note: &Notification,
    stats: &Arc<Stats>,
    farm: Option<&dyn DeliveryReports>,
    mut attempt: F,
) where
    F: FnMut(bool) -> Fut,
    Fut: Future<Output = Result<(), Failure>>,
{
    let started = tokio::time::Instant::now();
    let mut tries = 0usize;
    loop {
        let result = attempt(tries == 0).await;
        let failure_after = match &result {
            Err(Failure::Throttled(_, after)) => Some(*after),
            _ => None,
        };
        match result {
            Ok(()) => {
                if let Some(farm) = farm {
                    farm.delivered(note);
                }
                stats.delivered.fetch_add(1, Ordering::Relaxed);
                stats.channel_result(channel, true);
                info!(%channel, incident = %note.incident, event = %note.event, job = %note.job, attempt = tries + 1, "notification delivered");
                return;
            }
            Err(Failure::Temporary(cause) | Failure::Throttled(cause, _))
                if started.elapsed() < GIVE_UP_AFTER =>
            {
                if let Some(farm) = farm {
                    // Told at the first failure: a peer takes over now,
                    // not after this channel's fifteen minutes of retries.
                    if tries == 0 {
                        farm.failed(note);
                    }
                    if farm.delivered_elsewhere(note) {
                        info!(%channel, incident = %note.incident, event = %note.event, "a farm peer delivered this notification; not retried here");
                        return;
                    }
                }
                let backoff = BACKOFF[tries.min(BACKOFF.len() - 1)];
                let wait = match &failure_after {
                    Some(after) => (*after).clamp(backoff, RETRY_AFTER_MAX),
                    None => backoff,
                };
                stats.delivery_retries.fetch_add(1, Ordering::Relaxed);
                warn!(%channel, incident = %note.incident, %cause, retry_in = ?wait, "notification not delivered; will retry");
                tokio::time::sleep(wait).await;
                tries += 1;
            }
            Err(Failure::Temporary(cause) | Failure::Throttled(cause, _)) => {
                if let Some(farm) = farm {
                    farm.failed(note);
                }
                stats.delivery_failed.fetch_add(1, Ordering::Relaxed);
                stats.channel_result(channel, false);
                error!(%channel, incident = %note.incident, event = %note.event, job = %note.job, %cause, retried_for = %crate::clock::human(GIVE_UP_AFTER), "notification given up after retrying");
                return;
            }
            Err(Failure::Permanent(cause)) => {
                if let Some(farm) = farm {
                    farm.failed(note);
                }
                stats.delivery_failed.fetch_add(1, Ordering::Relaxed);
                stats.channel_result(channel, false);
                error!(%channel, incident = %note.incident, event = %note.event, job = %note.job, %cause, "notification refused permanently; not retried");
                return;
            }
        }
    }
}
