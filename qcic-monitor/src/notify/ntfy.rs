//! `kind = "ntfy"`: a message published to an ntfy topic
//! (<https://docs.ntfy.sh/publish/>): the text in the body, the headline as
//! `Title`, a `Priority` and `Tags` per event, and the access token (if
//! any) as a bearer token.

use std::collections::BTreeMap;

use super::http::{HttpChannel, Provider, Text, by_event};
use super::retry::Failure;
use super::webhook::secret;
use crate::config::NtfyConfig;
use crate::notification::{Event, Notification, Severity};

/// The priorities ntfy takes, by name (it also takes 1 to 5).
pub const PRIORITIES: [&str; 5] = ["min", "low", "default", "high", "urgent"];

/// ntfy's longest message, in bytes: past it the text is cut.
const MAX_MESSAGE: usize = 4096;

/// An event's priority unless `priority` names another.
pub fn default_priority(event: Event) -> &'static str {
    match event.severity() {
        Severity::Critical => "urgent",
        Severity::Error => "high",
        Severity::Warning | Severity::Notice => "default",
        Severity::Resolved => "low",
    }
}

/// An event's tags (emoji short codes ntfy shows) unless `tags` names others.
fn default_tags(event: Event) -> &'static str {
    match event.severity() {
        Severity::Critical => "rotating_light",
        Severity::Resolved => "white_check_mark",
        Severity::Error | Severity::Warning | Severity::Notice => "warning",
    }
}

/// A ready ntfy channel.
#[derive(Debug)]
pub struct NtfyChannel {
    url: String,
    token: Option<String>,
    priority: BTreeMap<Event, String>,
    tags: BTreeMap<Event, String>,
}

impl NtfyChannel {
    /// Reads the topic URL and token (`env:VAR`, `file:PATH`) now, so a
    /// missing secret stops the start.
    pub fn new(name: String, cfg: &NtfyConfig) -> Result<HttpChannel<NtfyChannel>, String> {
        let url = secret(&cfg.url).map_err(|e| format!("url: {e}"))?;
        let token = cfg
            .token
            .as_deref()
            .map(secret)
            .transpose()
            .map_err(|e| format!("token: {e}"))?;
        let tags = cfg
            .tags
            .iter()
            .map(|(event, list)| (event.clone(), list.join(",")))
            .collect();
        HttpChannel::new(
            name,
            cfg.timeout,
            NtfyChannel {
                url,
                token,
                priority: by_event(&cfg.priority),
                tags: by_event(&tags),
            },
        )
        .map(|c| c.with_template(cfg.text.compiled.clone()))
    }

    /// The message's title, text, priority and tags.
    pub fn message(&self, note: &Notification) -> (String, String, String, String) {
        let mut text = format!(
            "{} {} on watcher {} (incident {})",
            note.event, note.job, note.watcher, note.incident
        );
        if let Some(host) = &note.host {
            text.push_str(&format!("\nhost: {host}"));
        }
        if let Some(reason) = &note.text {
            text.push_str(&format!("\n{}", crate::printable::one_line(reason)));
        }
        self.parts(&note.headline(), text, note.event)
    }

    /// A message's title, text, priority and tags for `event`.
    fn parts(
        &self,
        title: &str,
        mut text: String,
        event: Event,
    ) -> (String, String, String, String) {
        // A header holds ASCII only: anything else in the title is `?`
        // (the text keeps it).
        let title: String = title
            .chars()
            .map(|c| {
                if c.is_ascii_graphic() || c == ' ' {
                    c
                } else {
                    '?'
                }
            })
            .collect();
        if text.len() > MAX_MESSAGE {
            let mut end = MAX_MESSAGE;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
        }
        let priority = self
            .priority
            .get(&event)
            .map_or(default_priority(event), String::as_str)
            .to_owned();
        let tags = self
            .tags
            .get(&event)
            .map_or(default_tags(event), String::as_str)
            .to_owned();
        (title, text, priority, tags)
    }
}

impl Provider for NtfyChannel {
    fn request(
        &self,
        client: &reqwest::Client,
        note: &Notification,
    ) -> Result<reqwest::RequestBuilder, Failure> {
        self.publish(client, self.message(note))
    }

    fn text_max(&self) -> usize {
        MAX_MESSAGE
    }

    fn text_request(
        &self,
        client: &reqwest::Client,
        text: &Text,
    ) -> Result<reqwest::RequestBuilder, Failure> {
        self.publish(
            client,
            self.parts(&text.title, text.body.clone(), text.event),
        )
    }
}

impl NtfyChannel {
    fn publish(
        &self,
        client: &reqwest::Client,
        (title, text, priority, tags): (String, String, String, String),
    ) -> Result<reqwest::RequestBuilder, Failure> {
        let request = client
            .post(&self.url)
            .header("Title", title)
            .header("Priority", priority)
            .header("Tags", tags)
            .body(text);
        Ok(match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        })
    }
}
