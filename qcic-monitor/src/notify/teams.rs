//! `kind = "teams"`: a message to a Microsoft Teams Workflows webhook
//! (the "Post to a channel when a webhook request is received" flow) as an
//! Adaptive Card
//! (<https://learn.microsoft.com/en-us/microsoftteams/platform/webhooks-and-connectors/how-to/connectors-using>,
//! <https://adaptivecards.io/explorer/>): the headline, the reason, and the
//! job, event, watcher, incident and host as facts.

use serde_json::json;

use super::http::{HttpChannel, Provider, Text};
use super::retry::Failure;
use crate::config::TeamsConfig;
use crate::notification::{Notification, Severity, rfc3339};

/// A ready Teams channel.
#[derive(Debug)]
pub struct TeamsChannel {
    url: String,
}

impl TeamsChannel {
    /// Reads the webhook URL (it holds its signature: `env:VAR` or
    /// `file:PATH`) now, so a missing secret stops the start.
    pub fn new(name: String, cfg: &TeamsConfig) -> Result<HttpChannel<TeamsChannel>, String> {
        let url = super::http::webhook_url(&cfg.url)?;
        HttpChannel::new(name, cfg.timeout, TeamsChannel { url })
            .map(|c| c.with_template(cfg.text.compiled.clone()))
    }

    /// An Adaptive Card message with `body` (its blocks).
    fn card(body: Vec<serde_json::Value>) -> serde_json::Value {
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

    /// The message Teams gets for `note`.
    pub fn message(&self, note: &Notification) -> serde_json::Value {
        let color = colour(note.event.severity());
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
        Self::card(body)
    }
}

/// A severity's colour on a card.
fn colour(severity: Severity) -> &'static str {
    match severity {
        Severity::Resolved => "Good",
        Severity::Critical => "Attention",
        Severity::Error | Severity::Warning | Severity::Notice => "Warning",
    }
}

impl Provider for TeamsChannel {
    fn request(
        &self,
        client: &reqwest::Client,
        note: &Notification,
    ) -> Result<reqwest::RequestBuilder, Failure> {
        Ok(client.post(&self.url).json(&self.message(note)))
    }

    // The title as the card's header, the text below it.
    // A Teams message is at most about 28 KB, JSON and all.
    fn text_max(&self) -> usize {
        20_000
    }

    fn text_request(
        &self,
        client: &reqwest::Client,
        text: &Text,
    ) -> Result<reqwest::RequestBuilder, Failure> {
        let card = Self::card(vec![
            json!({"type": "TextBlock", "text": text.title, "weight": "Bolder",
                "size": "Medium", "color": colour(text.event.severity()), "wrap": true}),
            json!({"type": "TextBlock", "text": text.body, "wrap": true}),
        ]);
        Ok(client.post(&self.url).json(&card))
    }

    fn payload_request(
        &self,
        client: &reqwest::Client,
        payload: &serde_json::Value,
    ) -> Result<reqwest::RequestBuilder, Failure> {
        Ok(client.post(&self.url).json(payload))
    }
}
