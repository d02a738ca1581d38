//! `kind = "pagerduty"`: PagerDuty's Events API v2
//! (<https://developer.pagerduty.com/docs/events-api-v2/overview/>). An
//! alarm is a `trigger` whose `dedup_key` is the incident id, so every
//! watcher of a farm that sends it raises one PagerDuty incident; its
//! follow-up (`recovered`, `retracted`) is a `resolve` of the same key.

use std::collections::BTreeMap;

use serde_json::json;

use super::http::{HttpChannel, Provider, by_event};
use super::retry::Failure;
use super::webhook::secret;
use crate::config::PagerDutyConfig;
use crate::notification::{Event, Notification, Severity, rfc3339};

/// Where events go unless `url` says otherwise (the EU service region is
/// `https://events.eu.pagerduty.com/v2/enqueue`).
pub const EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// The severities PagerDuty takes.
pub const SEVERITIES: [&str; 4] = ["critical", "error", "warning", "info"];

/// An event's severity unless `severity` names another.
pub fn default_severity(event: Event) -> &'static str {
    match event.severity() {
        Severity::Critical => "critical",
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Notice | Severity::Resolved => "info",
    }
}

/// A ready PagerDuty channel.
#[derive(Debug)]
pub struct PagerDutyChannel {
    url: String,
    routing_key: String,
    severity: BTreeMap<Event, String>,
}

impl PagerDutyChannel {
    /// Reads the routing key (`env:VAR` and `file:PATH` now, so a missing
    /// secret stops the start) and builds the client.
    pub fn new(
        name: String,
        cfg: &PagerDutyConfig,
    ) -> Result<HttpChannel<PagerDutyChannel>, String> {
        let routing_key = secret(&cfg.routing_key).map_err(|e| format!("routing_key: {e}"))?;
        let severity = by_event(&cfg.severity);
        HttpChannel::new(
            name,
            cfg.timeout,
            PagerDutyChannel {
                url: cfg.url.clone().unwrap_or_else(|| EVENTS_URL.into()),
                routing_key,
                severity,
            },
        )
    }

    /// The event PagerDuty gets for `note`.
    pub fn event(&self, note: &Notification) -> serde_json::Value {
        if note.event.is_follow_up() {
            return json!({
                "routing_key": self.routing_key,
                "event_action": "resolve",
                "dedup_key": note.incident,
            });
        }
        let severity = self
            .severity
            .get(&note.event)
            .map_or(default_severity(note.event), String::as_str);
        // The summary is at most 1 024 characters.
        let summary: String = note.headline().chars().take(1024).collect();
        json!({
            "routing_key": self.routing_key,
            "event_action": "trigger",
            "dedup_key": note.incident,
            "client": "qcic",
            "payload": {
                "summary": summary,
                "source": note.host.as_deref().unwrap_or(&note.watcher),
                "severity": severity,
                "timestamp": rfc3339_ms(note.detected_ms),
                "component": note.job,
                "group": note.watcher,
                "class": note.event.name(),
                "custom_details": note,
            },
        })
    }
}

/// `ms` (unix) as RFC 3339 with milliseconds, as PagerDuty shows it.
fn rfc3339_ms(ms: u64) -> String {
    let seconds = rfc3339(ms);
    match seconds.strip_suffix('Z') {
        Some(s) if !seconds.starts_with("after") => format!("{s}.{:03}Z", ms % 1000),
        _ => seconds,
    }
}

impl Provider for PagerDutyChannel {
    fn takes(&self, note: &Notification) -> bool {
        note.event.severity() != Severity::Notice
    }

    fn request(
        &self,
        client: &reqwest::Client,
        note: &Notification,
    ) -> Result<reqwest::RequestBuilder, Failure> {
        Ok(client.post(&self.url).json(&self.event(note)))
    }
}
