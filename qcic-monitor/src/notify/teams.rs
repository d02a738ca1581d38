//! `kind = "teams"`: a message to a Microsoft Teams Workflows webhook
//! (the "Post to a channel when a webhook request is received" flow) as an
//! Adaptive Card
//! (<https://learn.microsoft.com/en-us/microsoftteams/platform/webhooks-and-connectors/how-to/connectors-using>,
//! <https://adaptivecards.io/explorer/>): the headline, the reason, and the
//! job, event, watcher, incident and host as facts.

use std::time::Duration;

use serde_json::json;

use super::retry::Failure;
use super::webhook::{retry_after, secret};
use crate::config::TeamsConfig;
use crate::notification::{Event, Notification, rfc3339};

/// A ready Teams channel.
#[derive(Debug)]
pub struct TeamsChannel {
    name: String,
    url: String,
    client: reqwest::Client,
    timeout: Duration,
}

impl TeamsChannel {
    /// Reads the webhook URL (it holds its signature: `env:VAR` or
    /// `file:PATH`) now, so a missing secret stops the start.
    pub fn new(name: String, cfg: &TeamsConfig) -> Result<TeamsChannel, String> {
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
        Ok(TeamsChannel {
            name,
            url,
            client,
            timeout: cfg.timeout,
        })
    }

    /// The message Teams gets for `note`.
    pub fn message(&self, note: &Notification) -> serde_json::Value {
        let color = match note.event {
            Event::Recovered | Event::Retracted => "Good",
            Event::Down | Event::Failed | Event::PeerDown | Event::WatcherIsolated => "Attention",
            _ => "Warning",
        };
        let mut facts = vec![
            json!({"title": "Job", "value": note.job}),
            json!({"title": "Event", "value": note.event.name()}),
            json!({"title": "Watcher", "value": note.watcher}),
            json!({"title": "Incident", "value": note.incident}),
            json!({"title": "Detected", "value": rfc3339(note.detected_ms)}),
        ];
        if let Some(host) = &note.host {
            facts.push(json!({"title": "Host", "value": host}));
        }
        let mut body = vec![json!({"type": "TextBlock", "text": note.headline(),
            "weight": "Bolder", "size": "Medium", "color": color, "wrap": true})];
        if let Some(reason) = &note.text {
            body.push(json!({"type": "TextBlock", "text": crate::printable::one_line(reason), "wrap": true}));
        }
        body.push(json!({"type": "FactSet", "facts": facts}));
        json!({
            "type": "message",
            "attachments": [{
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": null,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": body,
                },
            }],
        })
    }

    async fn post(&self, note: &Notification) -> Result<(), Failure> {
        let response = self
            .client
            .post(&self.url)
            .json(&self.message(note))
            .send()
            .await
            // Without the URL: it holds the signature.
            .map_err(|e| Failure::Temporary(e.without_url().to_string()))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let after = retry_after(response.headers());
        let body: String = response
            .text()
            .await
            .unwrap_or_default()
            .chars()
            .take(300)
            .collect();
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

impl super::lanes::Attempt for TeamsChannel {
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
