//! `kind = "opsgenie"`: Opsgenie's Alert API
//! (<https://docs.opsgenie.com/docs/alert-api>). An alarm creates an alert
//! whose `alias` is the incident id (Opsgenie folds alerts with one alias
//! into one, so a watcher pair's duplicates make one alert); its follow-up
//! closes the alert by that alias. The API key is a secret: `env:VAR` or
//! `file:PATH`, never logged.

use std::collections::BTreeMap;

use serde_json::json;

use super::http::{HttpChannel, Provider, by_event};
use super::retry::Failure;
use super::webhook::secret;
use crate::config::OpsgenieConfig;
use crate::notification::{Event, Notification, Severity};

/// The API of Opsgenie's US region; the EU one is `https://api.eu.opsgenie.com`.
pub const API_URL: &str = "https://api.opsgenie.com";
/// The priorities Opsgenie takes.
pub const PRIORITIES: [&str; 5] = ["P1", "P2", "P3", "P4", "P5"];

/// An event's priority unless `priority` names another.
pub fn default_priority(event: Event) -> &'static str {
    match event.severity() {
        Severity::Critical => "P1",
        Severity::Error => "P2",
        Severity::Warning => "P3",
        Severity::Notice | Severity::Resolved => "P5",
    }
}

/// A ready Opsgenie channel.
#[derive(Debug)]
pub struct OpsgenieChannel {
    base: String,
    key: String,
    priority: BTreeMap<Event, String>,
}

impl OpsgenieChannel {
    /// Reads the API key now, so a missing secret stops the start.
    pub fn new(name: String, cfg: &OpsgenieConfig) -> Result<HttpChannel<OpsgenieChannel>, String> {
        let key = secret(&cfg.api_key).map_err(|e| format!("api_key: {e}"))?;
        HttpChannel::new(
            name,
            cfg.timeout,
            OpsgenieChannel {
                base: cfg
                    .url
                    .as_deref()
                    .unwrap_or(API_URL)
                    .trim_end_matches('/')
                    .to_owned(),
                key,
                priority: by_event(&cfg.priority),
            },
        )
    }

    /// The request for `note`: (path, body).
    pub fn request_for(&self, note: &Notification) -> (String, serde_json::Value) {
        if note.event.is_follow_up() {
            return (
                format!("/v2/alerts/{}/close?identifierType=alias", note.incident),
                json!({"source": note.watcher, "user": "qcic",
                       "note": note.text.clone().unwrap_or_else(|| note.headline())}),
            );
        }
        let priority = self
            .priority
            .get(&note.event)
            .map_or(default_priority(note.event), String::as_str);
        let mut description = note.headline();
        if let Some(reason) = &note.text {
            description.push_str(&format!("\n{}", crate::printable::one_line(reason)));
        }
        (
            "/v2/alerts".to_owned(),
            json!({
                // At most 130 characters, 512 for the alias, 15 000 for
                // the description.
                "message": note.headline().chars().take(130).collect::<String>(),
                "alias": note.incident,
                "description": description.chars().take(15_000).collect::<String>(),
                "entity": note.job,
                "source": note.watcher,
                "tags": ["qcic", note.event.name()],
                "details": {
                    "job": note.job,
                    "event": note.event.name(),
                    "incident": note.incident,
                    "watcher": note.watcher,
                    "host": note.host.as_deref().unwrap_or(""),
                },
                "priority": priority,
            }),
        )
    }
}

impl Provider for OpsgenieChannel {
    fn takes(&self, note: &Notification) -> bool {
        note.event.severity() != Severity::Notice
    }

    fn request(
        &self,
        client: &reqwest::Client,
        note: &Notification,
    ) -> Result<reqwest::RequestBuilder, Failure> {
        let (path, body) = self.request_for(note);
        Ok(client
            .post(format!("{}{path}", self.base))
            .header("Authorization", format!("GenieKey {}", self.key))
            .json(&body))
    }

    // {"message": ...}: never the key.
    fn reason(&self, body: &str) -> String {
        let answer: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
        crate::printable::one_line(answer["message"].as_str().unwrap_or("")).into_owned()
    }
}
