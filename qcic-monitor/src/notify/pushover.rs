//! `kind = "pushover"`: a message through Pushover's Message API
//! (<https://pushover.net/api>) to a user or group key, with a priority per
//! event. The application token and user key are secrets: `env:VAR` or
//! `file:PATH`, never logged.

use std::collections::BTreeMap;

use serde_json::json;

use super::http::{HttpChannel, Provider, Text, by_event};
use super::retry::Failure;
use super::webhook::secret;
use crate::config::PushoverConfig;
use crate::notification::{Event, Notification, Severity};

/// The Message API unless `url` says otherwise.
pub const API_URL: &str = "https://api.pushover.net/1/messages.json";
/// Pushover's limits: a message of 1 024 characters, a title of 250.
const MESSAGE_MAX: usize = 1024;
const TITLE_MAX: usize = 250;

/// An event's priority unless `priority` names another: -2 (no
/// notification) to 1 (high; 2, emergency, needs acknowledgement
/// parameters qcic does not send).
pub fn default_priority(event: Event) -> i8 {
    match event.severity() {
        Severity::Critical => 1,
        Severity::Error | Severity::Warning => 0,
        Severity::Notice | Severity::Resolved => -1,
    }
}

/// A ready Pushover channel.
#[derive(Debug)]
pub struct PushoverChannel {
    url: String,
    token: String,
    user: String,
    priority: BTreeMap<Event, i8>,
}

impl PushoverChannel {
    /// Reads the token and user key now, so a missing secret stops the start.
    pub fn new(name: String, cfg: &PushoverConfig) -> Result<HttpChannel<PushoverChannel>, String> {
        let token = secret(&cfg.token).map_err(|e| format!("token: {e}"))?;
        let user = secret(&cfg.user).map_err(|e| format!("user: {e}"))?;
        HttpChannel::new(
            name,
            cfg.timeout,
            PushoverChannel {
                url: cfg.url.clone().unwrap_or_else(|| API_URL.into()),
                token,
                user,
                priority: by_event(&cfg.priority),
            },
        )
        .map(|c| c.with_template(cfg.text.compiled.clone()))
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
        let mut message = self.text_message(&note.headline(), &text, note.event);
        message["timestamp"] = json!(note.detected_ms / 1000);
        message
    }

    /// A message of `title` and `text` about `event`.
    fn text_message(&self, title: &str, text: &str, event: Event) -> serde_json::Value {
        json!({
            "token": self.token,
            "user": self.user,
            "title": title.chars().take(TITLE_MAX).collect::<String>(),
            "message": text.chars().take(MESSAGE_MAX).collect::<String>(),
            "priority": self.priority.get(&event).copied().unwrap_or(default_priority(event)),
        })
    }
}

impl Provider for PushoverChannel {
    fn request(
        &self,
        client: &reqwest::Client,
        note: &Notification,
    ) -> Result<reqwest::RequestBuilder, Failure> {
        Ok(client.post(&self.url).json(&self.message(note)))
    }

    fn text_max(&self) -> usize {
        MESSAGE_MAX
    }

    fn text_request(
        &self,
        client: &reqwest::Client,
        text: &Text,
    ) -> Result<reqwest::RequestBuilder, Failure> {
        let message = self.text_message(&text.title, &text.body, text.event);
        Ok(client.post(&self.url).json(&message))
    }

    // {"status": 0, "errors": [...]}: never the token or the key.
    fn reason(&self, body: &str) -> String {
        let answer: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
        crate::printable::one_line(&answer["errors"].to_string()).into_owned()
    }
}
