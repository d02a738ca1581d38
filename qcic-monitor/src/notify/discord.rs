//! `kind = "discord"`: a message to a Discord webhook
//! (<https://discord.com/developers/docs/resources/webhook#execute-webhook>)
//! with one embed: the headline as title, the reason as description, the
//! job, event, watcher, incident and host as fields, a colour by event,
//! and no mentions allowed (a job's output cannot ping anyone).

use std::time::Duration;

use serde_json::json;

use super::retry::Failure;
use super::webhook::{retry_after, secret};
use crate::config::DiscordConfig;
use crate::notification::{Event, Notification, rfc3339};

/// Discord's embed limits that a notification could pass
/// (<https://discord.com/developers/docs/resources/message#embed-object-embed-limits>).
const TITLE_MAX: usize = 256;
const DESCRIPTION_MAX: usize = 4096;
const FIELD_VALUE_MAX: usize = 1024;

/// A ready Discord channel.
#[derive(Debug)]
pub struct DiscordChannel {
    name: String,
    url: String,
    client: reqwest::Client,
    timeout: Duration,
}

fn cut(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

impl DiscordChannel {
    /// Reads the webhook URL (its path is the credential: `env:VAR` or
    /// `file:PATH`) now, so a missing secret stops the start.
    pub fn new(name: String, cfg: &DiscordConfig) -> Result<DiscordChannel, String> {
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
        Ok(DiscordChannel {
            name,
            url,
            client,
            timeout: cfg.timeout,
        })
    }

    /// The message Discord gets for `note`.
    pub fn message(&self, note: &Notification) -> serde_json::Value {
        let color = match note.event {
            Event::Recovered | Event::Retracted => 0x2e7d32,
            Event::Down | Event::Failed | Event::PeerDown | Event::WatcherIsolated => 0xc62828,
            _ => 0xef6c00,
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
        // Discord says why in a JSON body ("message", "code").
        let body: String = cut(&response.text().await.unwrap_or_default(), 300);
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

impl super::lanes::Attempt for DiscordChannel {
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
