//! `kind = "slack"`: a message posted to a Slack incoming webhook
//! (<https://api.slack.com/messaging/webhooks>) as Block Kit blocks
//! (<https://api.slack.com/reference/block-kit/blocks>): a header with the
//! headline, the job, event, watcher and incident as fields, the reason,
//! and `text` as the notification's fallback.

use serde_json::json;

use super::http::{HttpChannel, Provider, Text};
use super::retry::Failure;
use crate::config::SlackConfig;
use crate::notification::{Notification, Severity, rfc3339};

/// Block Kit's limits that a notification could pass.
const HEADER_MAX: usize = 150;
const FIELD_MAX: usize = 2000;
const SECTION_MAX: usize = 3000;
/// A message's `text` is cut past 40 000 characters.
const TEXT_MAX: usize = 40_000;

/// A ready Slack channel.
#[derive(Debug)]
pub struct SlackChannel {
    url: String,
    /// The status page (`[http] public_url`), linked from each message.
    status_url: Option<String>,
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
    pub fn new(name: String, cfg: &SlackConfig) -> Result<HttpChannel<SlackChannel>, String> {
        let url = super::http::webhook_url(&cfg.url)?;
        let status_url = cfg.status_url.clone();
        HttpChannel::new(name, cfg.timeout, SlackChannel { url, status_url })
            .map(|c| c.with_template(cfg.text.compiled.clone()))
    }

    /// The message Slack gets for `note`.
    pub fn message(&self, note: &Notification) -> serde_json::Value {
        let icon = match note.event.severity() {
            Severity::Resolved => ":white_check_mark:",
            Severity::Critical => ":rotating_light:",
            Severity::Error | Severity::Warning | Severity::Notice => ":warning:",
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
        if let Some(page) = &self.status_url {
            blocks.push(json!({"type": "context", "elements": [
                {"type": "mrkdwn", "text": format!("<{}/|Status page>", escaped(page))}]}));
        }
        json!({
            "text": format!("{icon} {}", escaped(&headline)),
            "blocks": blocks,
        })
    }
}

impl Provider for SlackChannel {
    fn request(
        &self,
        client: &reqwest::Client,
        note: &Notification,
    ) -> Result<reqwest::RequestBuilder, Failure> {
        Ok(client.post(&self.url).json(&self.message(note)))
    }

    // As mrkdwn text, `&`, `<` and `>` escaped: a job's output cannot
    // `@channel` anyone (Slack links URLs written plainly).
    // Escaping may make a character five (`&amp;`): a fifth of the limit
    // always fits.
    fn text_max(&self) -> usize {
        TEXT_MAX / 5
    }

    fn text_request(
        &self,
        client: &reqwest::Client,
        text: &Text,
    ) -> Result<reqwest::RequestBuilder, Failure> {
        Ok(client
            .post(&self.url)
            .json(&json!({"text": cut(&escaped(&text.whole()), TEXT_MAX)})))
    }

    fn payload_request(
        &self,
        client: &reqwest::Client,
        payload: &serde_json::Value,
    ) -> Result<reqwest::RequestBuilder, Failure> {
        Ok(client.post(&self.url).json(payload))
    }
}
