//! `kind = "slack"`: a message posted to a Slack incoming webhook
//! (<https://api.slack.com/messaging/webhooks>) as Block Kit blocks
//! (<https://api.slack.com/reference/block-kit/blocks>): a header with the
//! headline, the job, event, watcher and incident as fields, the reason,
//! and `text` as the notification's fallback.

use std::time::Duration;

use serde_json::json;

use super::retry::Failure;
use super::webhook::{retry_after, secret};
use crate::config::SlackConfig;
use crate::notification::{Event, Notification, rfc3339};

/// Block Kit's limits that a notification could pass.
const HEADER_MAX: usize = 150;
const FIELD_MAX: usize = 2000;
const SECTION_MAX: usize = 3000;

/// A ready Slack channel.
#[derive(Debug)]
pub struct SlackChannel {
    name: String,
    url: String,
    client: reqwest::Client,
    timeout: Duration,
}

/// `text` cut to `max` characters.
fn cut(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// Text for a mrkdwn field: `&`, `<` and `>` escaped, as Slack asks
/// (<https://api.slack.com/reference/surfaces/formatting#escaping>).
fn escaped(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

impl SlackChannel {
    /// Reads the webhook URL (its path is the credential: `env:VAR` or
    /// `file:PATH`) now, so a missing secret stops the start.
    pub fn new(name: String, cfg: &SlackConfig) -> Result<SlackChannel, String> {
        let url = secret(&cfg.url).map_err(|e| format!("url: {e}"))?;
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(format!(
                "url: {} must start with https://",
                crate::config::redacted_url(&url)
            ));
        }
        let client = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(SlackChannel {
            name,
            url,
            client,
            timeout: cfg.timeout,
        })
    }

    /// The message Slack gets for `note`.
    pub fn message(&self, note: &Notification) -> serde_json::Value {
        let icon = match note.event {
            Event::Recovered | Event::Retracted => ":white_check_mark:",
            Event::Down | Event::Failed | Event::PeerDown | Event::WatcherIsolated => {
                ":rotating_light:"
            }
            _ => ":warning:",
        };
        let headline = note.headline();
        let field = |label: &str, value: &str| json!({"type": "mrkdwn", "text": cut(&format!("*{label}*\n{}", escaped(value)), FIELD_MAX)});
        let mut fields = vec![
            field("Job", &note.job),
            field("Event", note.event.name()),
            field("Watcher", &note.watcher),
            field("Incident", &note.incident),
            field("Detected", &rfc3339(note.detected_ms)),
        ];
        if let Some(host) = &note.host {
            fields.push(field("Host", host));
        }
        let mut blocks = vec![
            json!({"type": "header", "text": {"type": "plain_text", "text": cut(&headline, HEADER_MAX), "emoji": true}}),
            json!({"type": "section", "fields": fields}),
        ];
        if let Some(reason) = &note.text {
            blocks.push(json!({"type": "section", "text": {"type": "mrkdwn",
                "text": cut(&escaped(&crate::printable::one_line(reason)), SECTION_MAX)}}));
        }
        json!({
            "text": format!("{icon} {}", escaped(&headline)),
            "blocks": blocks,
        })
    }

    async fn post(&self, note: &Notification) -> Result<(), Failure> {
        let response = self
            .client
            .post(&self.url)
            .json(&self.message(note))
            .send()
            .await
            // Without the URL: its path is the credential.
            .map_err(|e| Failure::Temporary(e.without_url().to_string()))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let after = retry_after(response.headers());
        // Slack says why in a short body (`invalid_payload`, `no_service`).
        let body: String = cut(&response.text().await.unwrap_or_default(), 200);
        let cause = format!("HTTP {status}: {}", crate::printable::one_line(&body));
        match (status.as_u16(), after) {
            (429 | 408, Some(after)) => Err(Failure::Throttled(cause, after)),
            (429 | 408, None) => Err(Failure::Temporary(cause)),
            (s, _) if (400..500).contains(&s) => Err(Failure::Permanent(cause)),
            (_, Some(after)) => Err(Failure::Throttled(cause, after)),
            _ => Err(Failure::Temporary(cause)),
        }
    }
}

impl super::lanes::Attempt for SlackChannel {
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
