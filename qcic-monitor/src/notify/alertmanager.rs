//! `kind = "alertmanager"`: alerts posted to a Prometheus Alertmanager
//! cluster (`POST /api/v2/alerts`, <https://prometheus.io/docs/alerting/latest/clients/>),
//! so an organisation keeps its routing tree, inhibitions, silences and
//! receivers.
//!
//! As Prometheus does, every alert is posted to every configured
//! Alertmanager at once (they deduplicate among themselves) and carries an
//! explicit `endsAt` a few resend periods ahead; open alerts are posted
//! again every `resend` so they stay firing, and a follow-up posts the
//! same labels with `endsAt` = now, which resolves the alert.
//!
//! An alert's labels name the trouble, not the watcher (the watcher is an
//! annotation): the watchers of a farm that both send it make one alert,
//! and a follow-up sent by either resolves it. What is posted again is
//! kept true by the watcher's own view: before each re-post the open
//! alerts are checked against the incidents open in its registry (an
//! incident another watcher followed up, or a notice such as `retired`,
//! is not posted again), and after a restart the alerts this channel
//! delivered before (from the state database) whose incidents are still
//! open are posted again, so a restart never lets Alertmanager close them.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use serde_json::{Value, json};
use tracing::warn;

use super::http::classify;
use super::retry::Failure;
use super::webhook::{retry_after, secret};
use crate::checker::CheckerHandle;
use crate::config::AlertmanagerConfig;
use crate::notification::{Notification, Severity, rfc3339};

/// How many resend periods ahead an open alert's `endsAt` is set
/// (Prometheus uses four).
pub const ENDS_AFTER_RESENDS: u32 = 4;

/// A ready Alertmanager channel.
#[derive(Debug)]
pub struct AlertmanagerChannel {
    name: String,
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    name: String,
    client: reqwest::Client,
    timeout: Duration,
    /// Each Alertmanager's alerts endpoint.
    endpoints: Vec<String>,
    basic: Option<(String, String)>,
    labels: BTreeMap<String, String>,
    resend: Duration,
    /// `[http] public_url`: each alert's `generatorURL`.
    status_url: Option<String>,
    /// Open alerts by incident: the notification each was raised by.
    open: Mutex<HashMap<Arc<str>, Notification>>,
    /// Held by a re-post and by a follow-up while they post: a re-post
    /// taken before a follow-up and landing after it would fire the
    /// resolved alert again.
    posting: tokio::sync::Mutex<()>,
}

impl AlertmanagerChannel {
    /// Reads the password now (a missing secret stops the start), builds
    /// the client, takes back the alarms it `delivered` before a restart
    /// (an alarm whose follow-up was delivered too is closed), and starts
    /// the re-posting of open alerts, checked against `checker`'s open
    /// incidents.
    pub(crate) fn new<'a>(
        name: String,
        cfg: &AlertmanagerConfig,
        delivered: impl Iterator<Item = &'a Notification>,
        checker: CheckerHandle,
    ) -> Result<AlertmanagerChannel, String> {
        let client = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        let basic = match (&cfg.username, &cfg.password) {
            (Some(user), Some(password)) => Some((
                user.clone(),
                secret(password).map_err(|e| format!("password: {e}"))?,
            )),
            _ => None,
        };
        let mut open = HashMap::new();
        for note in delivered {
            if note.event.is_follow_up() {
                open.remove(&note.incident);
            } else if reposted(note) {
                open.insert(Arc::clone(&note.incident), note.clone());
            }
        }
        let inner = Arc::new(Inner {
            name: name.clone(),
            client,
            timeout: cfg.timeout,
            endpoints: cfg.url.iter().map(|u| endpoint(u)).collect(),
            basic,
            labels: cfg.labels.clone(),
            resend: cfg.resend,
            status_url: cfg.status_url.clone(),
            open: Mutex::new(open),
            posting: tokio::sync::Mutex::new(()),
        });
        tokio::spawn(repost(Arc::downgrade(&inner), checker));
        Ok(AlertmanagerChannel { name, inner })
    }

    /// The alert Alertmanager gets for `note`, its `endsAt` set for now
    /// (`wall_ms`).
    pub fn alert(&self, note: &Notification, wall_ms: u64) -> Value {
        self.inner.alert(note, wall_ms)
    }

    fn open(&self) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, Notification>> {
        self.inner
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Whether an alarm is kept firing until its follow-up. A notice (a
/// declared job `retired`) has no follow-up: it fires for one resend
/// period and ends by itself.
fn reposted(note: &Notification) -> bool {
    !note.event.is_follow_up() && note.event.severity() != Severity::Notice
}

/// `http://am:9093` → `http://am:9093/api/v2/alerts` (a URL already
/// ending so is kept).
fn endpoint(url: &str) -> String {
    let url = url.trim_end_matches('/');
    if url.ends_with("/api/v2/alerts") {
        url.to_owned()
    } else {
        format!("{url}/api/v2/alerts")
    }
}

impl Inner {
    fn alert(&self, note: &Notification, wall_ms: u64) -> Value {
        // A follow-up must carry its alarm's labels to resolve it.
        let event = note.resolves.unwrap_or(note.event);
        let mut labels: BTreeMap<&str, &str> = self
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let alertname = format!("qcic_{}", event.name());
        labels.insert("alertname", &alertname);
        labels.insert("job", &note.job);
        labels.insert("event", event.name());
        labels.insert("incident", &note.incident);
        let ahead = |periods: u32| {
            wall_ms.saturating_add(crate::clock::millis(self.resend.saturating_mul(periods)))
        };
        let ends_ms = if note.event.is_follow_up() {
            wall_ms
        } else if reposted(note) {
            ahead(ENDS_AFTER_RESENDS)
        } else {
            ahead(1)
        };
        let mut annotations = BTreeMap::new();
        annotations.insert("summary", note.headline());
        annotations.insert("watcher", note.watcher.to_string());
        if let Some(text) = &note.text {
            annotations.insert("description", text.clone());
        }
        if let Some(host) = &note.host {
            annotations.insert("host", host.to_string());
        }
        let mut alert = json!({
            "labels": labels,
            "annotations": annotations,
            // Never after endsAt, which Alertmanager refuses.
            "startsAt": rfc3339(note.detected_ms.min(ends_ms)),
            "endsAt": rfc3339(ends_ms),
        });
        if let Some(page) = &self.status_url {
            alert["generatorURL"] = json!(format!("{page}/"));
        }
        alert
    }

    /// Posts `alerts` to every Alertmanager at once; delivered when one
    /// took them (they share alerts among themselves), otherwise the most
    /// hopeful failure (a temporary one is retried). One slow or dead
    /// Alertmanager costs one timeout, not one per URL.
    async fn post(&self, alerts: &Value) -> Result<(), Failure> {
        let posts = self.endpoints.iter().map(|url| async move {
            let mut request = self.client.post(url).json(alerts);
            if let Some((user, password)) = &self.basic {
                request = request.basic_auth(user, Some(password));
            }
            let result = match request.send().await {
                Err(e) if e.is_timeout() => Err(Failure::Temporary(format!(
                    "no answer within {}",
                    crate::clock::human(self.timeout)
                ))),
                Err(e) => Err(Failure::Temporary(e.without_url().to_string())),
                Ok(response) if response.status().is_success() => Ok(()),
                Ok(response) => {
                    let status = response.status();
                    let after = retry_after(response.headers());
                    let body = response.text().await.unwrap_or_default();
                    let reason =
                        crate::printable::one_line(&body.chars().take(300).collect::<String>())
                            .into_owned();
                    Err(classify(
                        status.as_u16(),
                        after,
                        format!("HTTP {status}: {reason}"),
                    ))
                }
            };
            (url, result)
        });
        let results = futures_util::future::join_all(posts).await;
        let delivered = results.iter().any(|(_, r)| r.is_ok());
        let mut failure = None;
        let mut refused = Vec::new();
        for (url, result) in results {
            let Err(e) = result else { continue };
            let cause = match &e {
                Failure::Temporary(c) | Failure::Throttled(c, _) | Failure::Permanent(c) => {
                    c.clone()
                }
            };
            refused.push(format!("{}: {cause}", crate::config::redacted_url(url)));
            failure = match (failure, e) {
                // A temporary failure anywhere is worth a retry.
                (Some(Failure::Temporary(c)), _) | (_, Failure::Temporary(c)) => {
                    Some(Failure::Temporary(c))
                }
                (_, e) => Some(e),
            };
        }
        if !refused.is_empty() {
            let count = alerts.as_array().map_or(1, Vec::len);
            warn!(channel = %self.name, alerts = count, delivered, refused = %refused.join("; "), "an Alertmanager did not take the alerts");
        }
        match (delivered, failure) {
            (true, _) | (false, None) => Ok(()),
            (false, Some(failure)) => Err(failure),
        }
    }
}

/// Posts the open alerts again every `resend` until the channel is gone,
/// first dropping those whose incident the watcher no longer has open.
async fn repost(inner: Weak<Inner>, checker: CheckerHandle) {
    let Some(resend) = inner.upgrade().map(|i| i.resend) else {
        return;
    };
    let mut tick = tokio::time::interval(resend);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // The first tick is at once: alerts taken back after a restart
        // are posted before Alertmanager could end them.
        tick.tick().await;
        let Some(still_open) = checker.open_incidents().await else {
            // The checker has stopped: the watcher is shutting down.
            return;
        };
        let Some(inner) = inner.upgrade() else { return };
        let _posting = inner.posting.lock().await;
        let now = crate::clock::wall_ms();
        let alerts: Vec<Value> = {
            let mut open = inner.open.lock().unwrap_or_else(PoisonError::into_inner);
            open.retain(|incident, _| still_open.contains(incident));
            open.values().map(|note| inner.alert(note, now)).collect()
        };
        if alerts.is_empty() {
            continue;
        }
        if let Err(e) = inner.post(&Value::Array(alerts)).await {
            warn!(channel = %inner.name, cause = ?e, "open alerts not posted again; tried again at the next resend");
        }
    }
}

impl super::lanes::Attempt for AlertmanagerChannel {
    fn name(&self) -> &str {
        &self.name
    }

    // Every Alertmanager at once, each within the client's timeout.
    fn deadline(&self) -> Duration {
        self.inner.timeout + Duration::from_secs(1)
    }

    async fn attempt(&self, note: &Notification) -> Result<(), Failure> {
        let alert = self.inner.alert(note, crate::clock::wall_ms());
        if note.event.is_follow_up() {
            // Not posted again from now on, even if this post fails: the
            // alert then ends by itself at its endsAt.
            let _posting = self.inner.posting.lock().await;
            self.open().remove(&note.incident);
            return self.inner.post(&json!([alert])).await;
        }
        self.inner.post(&json!([alert])).await?;
        if reposted(note) {
            self.open().insert(Arc::clone(&note.incident), note.clone());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::Query;
    use crate::notification::Event;

    fn config() -> AlertmanagerConfig {
        let text = "[[job]]\nname = \"etl\"\nevery = \"1h\"\n\n[[notify]]\nkind = \"alertmanager\"\nurl = \"http://127.0.0.1:9\"\nresend = \"1s\"\n";
        match crate::config::Config::parse(text, "t.toml")
            .unwrap()
            .notify
            .remove(0)
        {
            crate::config::NotifyConfig::Alertmanager(am) => am,
            other => panic!("{other:?}"),
        }
    }

    fn note(incident: &str, event: Event, watcher: &str) -> Notification {
        let mut note = Notification::new(event, "etl".into(), incident.into(), watcher.into(), 0);
        if event.is_follow_up() {
            note.resolves = Some(Event::Failed);
        }
        note
    }

    /// After a restart the channel takes back what it delivered: alarms
    /// without a follow-up, not notices. Before re-posting it drops the
    /// incidents the watcher no longer has open (another farm watcher sent
    /// the follow-up; this one only saw the job recover).
    #[tokio::test]
    async fn what_is_posted_again_follows_the_watchers_open_incidents() {
        let (checker, mut inbox) = CheckerHandle::channel(4);
        let delivered = [
            note("a", Event::Failed, "w"),
            note("b", Event::Down, "w"),
            note("b", Event::Recovered, "w"),
            note("c", Event::Retired, "w"),
            note("d", Event::Late, "w"),
        ];
        let channel =
            AlertmanagerChannel::new("am".into(), &config(), delivered.iter(), checker).unwrap();
        let mut kept: Vec<String> = channel.open().keys().map(|k| k.to_string()).collect();
        kept.sort();
        assert_eq!(kept, ["a", "d"]);
        // The first re-post asks which incidents are open: only "d".
        match inbox.queries.recv().await.unwrap() {
            Query::OpenIncidents(reply) => {
                reply.send(["d".into()].into_iter().collect()).unwrap();
            }
            other => panic!("{other:?}"),
        }
        // Its post (to a closed port) fails; the set is already pruned.
        for _ in 0..50 {
            if channel.open().len() == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let kept: Vec<String> = channel.open().keys().map(|k| k.to_string()).collect();
        assert_eq!(kept, ["d"]);
    }

    #[test]
    fn the_watcher_is_no_label_so_a_farm_makes_one_alert() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _guard = rt.enter();
        let (checker, _inbox) = CheckerHandle::channel(4);
        let channel = AlertmanagerChannel::new("am".into(), &config(), [].iter(), checker).unwrap();
        let from_a = channel.alert(&note("x", Event::Failed, "watcher-a"), 1000);
        let from_b = channel.alert(&note("x", Event::Failed, "watcher-b"), 1000);
        assert_eq!(from_a["labels"], from_b["labels"]);
        assert_eq!(from_a["annotations"]["watcher"], "watcher-a");
        let resolve = channel.alert(&note("x", Event::Recovered, "watcher-b"), 2000);
        assert_eq!(resolve["labels"], from_a["labels"]);
        assert_eq!(resolve["endsAt"], "1970-01-01T00:00:02Z");
        // A notice ends by itself one resend on.
        let retired = channel.alert(&note("y", Event::Retired, "watcher-a"), 1000);
        assert_eq!(retired["endsAt"], "1970-01-01T00:00:02Z");
    }
}
