//! `kind = "alertmanager"`: alerts posted to a Prometheus Alertmanager
//! cluster (`POST /api/v2/alerts`, <https://prometheus.io/docs/alerting/latest/clients/>),
//! so an organisation keeps its routing tree, inhibitions, silences and
//! receivers.
//!
//! As Prometheus does, every alert is posted to every configured
//! Alertmanager (they deduplicate among themselves) and carries an
//! explicit `endsAt` a few resend periods ahead; open alerts are posted
//! again every `resend` so they stay firing, and a follow-up posts the
//! same labels with `endsAt` = now, which resolves the alert. An alert
//! whose watcher stops re-posting it (the watcher is gone) ends by itself
//! at that `endsAt`, whatever Alertmanager's own `resolve_timeout`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use serde_json::{Value, json};
use tracing::warn;

use super::http::classify;
use super::retry::Failure;
use super::webhook::{retry_after, secret};
use crate::config::AlertmanagerConfig;
use crate::notification::{Notification, rfc3339};

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
    client: reqwest::Client,
    timeout: Duration,
    /// Each Alertmanager's alerts endpoint.
    endpoints: Vec<String>,
    basic: Option<(String, String)>,
    labels: BTreeMap<String, String>,
    resend: Duration,
    /// `[http] public_url`: each alert's `generatorURL`.
    status_url: Option<String>,
    /// Open alerts by incident: what is posted again every `resend`.
    open: Mutex<HashMap<Arc<str>, Value>>,
    /// Held by a re-post and by a follow-up while they post: a re-post
    /// taken before a follow-up and landing after it would fire the
    /// resolved alert again.
    posting: tokio::sync::Mutex<()>,
}

impl AlertmanagerChannel {
    /// Reads the password now (a missing secret stops the start), builds
    /// the client and starts the re-posting of open alerts.
    pub fn new(name: String, cfg: &AlertmanagerConfig) -> Result<AlertmanagerChannel, String> {
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
        let inner = Arc::new(Inner {
            client,
            timeout: cfg.timeout,
            endpoints: cfg.url.iter().map(|u| endpoint(u)).collect(),
            basic,
            labels: cfg.labels.clone(),
            resend: cfg.resend,
            status_url: cfg.status_url.clone(),
            open: Mutex::new(HashMap::new()),
            posting: tokio::sync::Mutex::new(()),
        });
        tokio::spawn(repost(Arc::downgrade(&inner), name.clone()));
        Ok(AlertmanagerChannel { name, inner })
    }

    /// The alert Alertmanager gets for `note`, its `endsAt` set for now
    /// (`wall_ms`).
    pub fn alert(&self, note: &Notification, wall_ms: u64) -> Value {
        self.inner.alert(note, wall_ms)
    }
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
        labels.insert("watcher", &note.watcher);
        labels.insert("incident", &note.incident);
        let ends_ms = if note.event.is_follow_up() {
            wall_ms
        } else {
            let ahead = self.resend.saturating_mul(ENDS_AFTER_RESENDS);
            wall_ms.saturating_add(u64::try_from(ahead.as_millis()).unwrap_or(u64::MAX))
        };
        let mut annotations = BTreeMap::new();
        annotations.insert("summary", note.headline());
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

    /// Posts `alerts` to every Alertmanager; delivered when one took them
    /// (they share alerts among themselves), otherwise the most hopeful
    /// failure (a temporary one is retried).
    async fn post(&self, alerts: &Value) -> Result<(), Failure> {
        let mut failure = None;
        let mut delivered = false;
        for url in &self.endpoints {
            let mut request = self.client.post(url).json(alerts);
            if let Some((user, password)) = &self.basic {
                request = request.basic_auth(user, Some(password));
            }
            let result = match request.send().await {
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
            match result {
                Ok(()) => delivered = true,
                Err(e) => {
                    warn!(alertmanager = %crate::config::redacted_url(url), cause = ?e, "an Alertmanager did not take the alert");
                    failure = match (failure, e) {
                        // A temporary failure anywhere is worth a retry.
                        (Some(Failure::Temporary(c)), _) | (_, Failure::Temporary(c)) => {
                            Some(Failure::Temporary(c))
                        }
                        (_, e) => Some(e),
                    };
                }
            }
        }
        match (delivered, failure) {
            (true, _) | (false, None) => Ok(()),
            (false, Some(failure)) => Err(failure),
        }
    }
}

/// Posts the open alerts again every `resend` until the channel is gone.
async fn repost(inner: Weak<Inner>, name: String) {
    let Some(resend) = inner.upgrade().map(|i| i.resend) else {
        return;
    };
    let mut tick = tokio::time::interval(resend);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        let _posting = inner.posting.lock().await;
        let now = crate::clock::wall_ms();
        let alerts: Vec<Value> = inner
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .map(|alert| {
                let mut alert = alert.clone();
                let ahead = inner.resend.saturating_mul(ENDS_AFTER_RESENDS);
                alert["endsAt"] = json!(rfc3339(
                    now.saturating_add(u64::try_from(ahead.as_millis()).unwrap_or(u64::MAX))
                ));
                alert
            })
            .collect();
        if alerts.is_empty() {
            continue;
        }
        if let Err(e) = inner.post(&Value::Array(alerts)).await {
            warn!(channel = %name, cause = ?e, "open alerts not posted again; tried again at the next resend");
        }
    }
}

impl AlertmanagerChannel {
    fn open(&self) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, Value>> {
        self.inner
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl super::lanes::Attempt for AlertmanagerChannel {
    fn name(&self) -> &str {
        &self.name
    }

    // Each Alertmanager in turn, each within the client's timeout.
    fn deadline(&self) -> Duration {
        let count = u32::try_from(self.inner.endpoints.len().max(1)).unwrap_or(u32::MAX);
        self.inner.timeout.saturating_mul(count) + Duration::from_secs(1)
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
        self.open().insert(Arc::clone(&note.incident), alert);
        Ok(())
    }
}
