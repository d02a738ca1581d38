//! `kind = "pushover"`: a message through Pushover's Message API
//! (<https://pushover.net/api>) to a user or group key, with a priority per
//! event. The application token and user key are secrets: `env:VAR` or
//! `file:PATH`, never logged.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;

use super::retry::Failure;
use super::webhook::{retry_after, secret};
use crate::config::PushoverConfig;
use crate::notification::{Event, Notification};

/// The Message API unless `url` says otherwise.
pub const API_URL: &str = "https://api.pushover.net/1/messages.json";
/// Pushover's limits: a message of 1 024 characters, a title of 250.
const MESSAGE_MAX: usize = 1024;
const TITLE_MAX: usize = 250;

/// An event's priority unless `priority` names another: -2 (no
/// notification) to 1 (high; 2, emergency, needs acknowledgement
/// parameters qcic does not send).
pub fn default_priority(event: Event) -> i8 {
    match event {
        Event::Down | Event::Failed | Event::PeerDown | Event::WatcherIsolated => 1,
        Event::Recovered | Event::Retracted | Event::Retired => -1,
        _ => 0,
    }
}

/// A ready Pushover channel.
#[derive(Debug)]
pub struct PushoverChannel {
    name: String,
    url: String,
    token: String,
    user: String,
    priority: BTreeMap<Event, i8>,
    client: reqwest::Client,
    timeout: Duration,
}

impl PushoverChannel {
    /// Reads the token and user key now, so a missing secret stops the start.
    pub fn new(name: String, cfg: &PushoverConfig) -> Result<PushoverChannel, String> {
        let token = secret(&cfg.token).map_err(|e| format!("token: {e}"))?;
        let user = secret(&cfg.user).map_err(|e| format!("user: {e}"))?;
        let client = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(PushoverChannel {
            name,
            url: cfg.url.clone().unwrap_or_else(|| API_URL.into()),
            token,
            user,
            priority: cfg
                .priority
                .iter()
                .filter_map(|(event, p)| Some((Event::from_name(event)?, *p)))
                .collect(),
            client,
            timeout: cfg.timeout,
        })
    }

    /// The request for `note`.
    pub fn message(&self, note: &Notification) -> serde_json::Value {
        let mut text = format!(
            "job {} · event {} · watcher {} · incident {}",
            note.job, note.event, note.watcher, note.incident
        );
        if let Some(reason) = &note.text {
            text.push_str(&format!("\n{}", crate::printable::one_line(reason)));
        }
        json!({
            "token": self.token,
            "user": self.user,
            "title": note.headline().chars().take(TITLE_MAX).collect::<String>(),
            "message": text.chars().take(MESSAGE_MAX).collect::<String>(),
            "priority": self.priority.get(&note.event).copied().unwrap_or(default_priority(note.event)),
            "timestamp": note.detected_ms / 1000,
        })
    }

    async fn post(&self, note: &Notification) -> Result<(), Failure> {
        let response = self
            .client
            .post(&self.url)
            .json(&self.message(note))
            .send()
            .await
            .map_err(|e| Failure::Temporary(e.without_url().to_string()))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let after = retry_after(response.headers());
        // Pushover says why in "errors" (never echoing the token or key).
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        let errors = body["errors"].to_string();
        let cause = format!("HTTP {status}: {}", crate::printable::one_line(&errors));
        match (status.as_u16(), after) {
            (429 | 408, Some(after)) => Err(Failure::Throttled(cause, after)),
            (429 | 408, None) => Err(Failure::Temporary(cause)),
            (s, _) if (400..500).contains(&s) => Err(Failure::Permanent(cause)),
            (_, Some(after)) => Err(Failure::Throttled(cause, after)),
            _ => Err(Failure::Temporary(cause)),
        }
    }
}

impl super::lanes::Attempt for PushoverChannel {
    fn name(&self) -> &str {
        &self.name
    }

    fn deadline(&self) -> Duration {
        self.timeout + Duration::from_secs(1)
    }

    async fn attempt(&self, note: &Notification) -> Result<(), Failure> {
        self.post(note).await
    }
}
