//! `kind = "discord"`: a message to a Discord webhook
//! (<https://discord.com/developers/docs/resources/webhook#execute-webhook>)
//! with one embed: the headline as title, the reason as description, the
//! job, event, watcher, incident and host as fields, a colour by event,
//! and no mentions allowed (a job's output cannot ping anyone).

use serde_json::json;

use super::http::{HttpChannel, Provider, Text};
use super::retry::Failure;
use crate::config::DiscordConfig;
use crate::notification::{Notification, Severity, rfc3339};

/// Discord's embed limits that a notification could pass
/// (<https://discord.com/developers/docs/resources/message#embed-object-embed-limits>).
const TITLE_MAX: usize = 256;
const DESCRIPTION_MAX: usize = 4096;
const FIELD_VALUE_MAX: usize = 1024;
const CONTENT_MAX: usize = 2000;

/// A ready Discord channel.
#[derive(Debug)]
pub struct DiscordChannel {
    url: String,
}

fn cut(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

impl DiscordChannel {
    /// Reads the webhook URL (its path is the credential: `env:VAR` or
    /// `file:PATH`) now, so a missing secret stops the start.
    pub fn new(name: String, cfg: &DiscordConfig) -> Result<HttpChannel<DiscordChannel>, String> {
        let url = super::http::webhook_url(&cfg.url)?;
        HttpChannel::new(name, cfg.timeout, DiscordChannel { url })
            .map(|c| c.with_template(cfg.text.compiled.clone()))
    }

    /// The message Discord gets for `note`.
    pub fn message(&self, note: &Notification) -> serde_json::Value {
        let color = match note.event.severity() {
            Severity::Resolved => 0x2e7d32,
            Severity::Critical => 0xc62828,
            Severity::Error | Severity::Warning | Severity::Notice => 0xef6c00,
        };
        let field = |name: &str, value: &str| json!({"name": name, "value": cut(value, FIELD_VALUE_MAX), "inline": true});
        let mut fields = vec![
            field("Job", &note.job),
            field("Event", note.event.name()),
            field("Watcher", &note.watcher),
            field("Incident", &note.incident),
        ];
        if let Some(host) = &note.host {
            fields.push(field("Host", host));
        }
        let mut embed = json!({
            "title": cut(&note.headline(), TITLE_MAX),
            "color": color,
            "fields": fields,
            "timestamp": rfc3339(note.detected_ms),
        });
        if let Some(reason) = &note.text {
            embed["description"] = json!(cut(&crate::printable::one_line(reason), DESCRIPTION_MAX));
        }
        json!({
            "username": "qcic",
            "embeds": [embed],
            "allowed_mentions": {"parse": []},
        })
    }
}

impl Provider for DiscordChannel {
    fn request(
        &self,
        client: &reqwest::Client,
        note: &Notification,
    ) -> Result<reqwest::RequestBuilder, Failure> {
        Ok(client.post(&self.url).json(&self.message(note)))
    }

    fn text_max(&self) -> usize {
        CONTENT_MAX
    }

    fn text_request(
        &self,
        client: &reqwest::Client,
        text: &Text,
    ) -> Result<reqwest::RequestBuilder, Failure> {
        Ok(client.post(&self.url).json(&json!({
            "username": "qcic",
            "content": cut(&text.whole(), CONTENT_MAX),
            "allowed_mentions": {"parse": []},
        })))
    }

    // The operator's payload, with no mentions parsed unless it says.
    fn payload_request(
        &self,
        client: &reqwest::Client,
        payload: &serde_json::Value,
    ) -> Result<reqwest::RequestBuilder, Failure> {
        let mut payload = payload.clone();
        if let Some(map) = payload.as_object_mut() {
            map.entry("allowed_mentions")
                .or_insert_with(|| json!({"parse": []}));
        }
        Ok(client.post(&self.url).json(&payload))
    }
}
