//! `kind = "ntfy"`: a message published to an ntfy topic
//! (<https://docs.ntfy.sh/publish/>): the text in the body, the headline as
//! `Title`, a `Priority` and `Tags` per event, and the access token (if
//! any) as a bearer token.

use std::collections::BTreeMap;
use std::time::Duration;

use super::retry::Failure;
use super::webhook::{retry_after, secret};
use crate::config::NtfyConfig;
use crate::notification::{Event, Notification};

/// The priorities ntfy takes, by name (it also takes 1 to 5).
pub const PRIORITIES: [&str; 5] = ["min", "low", "default", "high", "urgent"];

/// ntfy's longest message, in bytes: past it the text is cut.
const MAX_MESSAGE: usize = 4096;

/// An event's priority unless `priority` names another.
pub fn default_priority(event: Event) -> &'static str {
    match event {
        Event::Down | Event::Failed | Event::PeerDown | Event::WatcherIsolated => "urgent",
        Event::Overrun | Event::Late | Event::Stalled => "high",
        Event::TooFast | Event::UnknownJob | Event::Retired => "default",
        Event::Recovered | Event::Retracted => "low",
    }
}

/// An event's tags (emoji short codes ntfy shows) unless `tags` names others.
fn default_tags(event: Event) -> &'static str {
    match event {
        Event::Down | Event::Failed | Event::PeerDown | Event::WatcherIsolated => "rotating_light",
        Event::Recovered | Event::Retracted => "white_check_mark",
        _ => "warning",
    }
}

/// A ready ntfy channel.
#[derive(Debug)]
pub struct NtfyChannel {
    name: String,
    url: String,
    token: Option<String>,
    priority: BTreeMap<Event, String>,
    tags: BTreeMap<Event, String>,
    client: reqwest::Client,
    timeout: Duration,
}

impl NtfyChannel {
    /// Reads the topic URL and token (`env:VAR`, `file:PATH`) now, so a
    /// missing secret stops the start.
    pub fn new(name: String, cfg: &NtfyConfig) -> Result<NtfyChannel, String> {
        let url = secret(&cfg.url).map_err(|e| format!("url: {e}"))?;
        let token = cfg
            .token
            .as_deref()
            .map(secret)
            .transpose()
            .map_err(|e| format!("token: {e}"))?;
        let by_event = |map: &BTreeMap<String, String>| -> BTreeMap<Event, String> {
            map.iter()
                .filter_map(|(event, value)| Some((Event::from_name(event)?, value.clone())))
                .collect()
        };
        let tags = cfg
            .tags
            .iter()
            .map(|(event, list)| (event.clone(), list.join(",")))
            .collect();
        let client = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(NtfyChannel {
            name,
            url,
            token,
            priority: by_event(&cfg.priority),
            tags: by_event(&tags),
            client,
            timeout: cfg.timeout,
        })
    }

    /// The message's title, text, priority and tags.
    pub fn message(&self, note: &Notification) -> (String, String, String, String) {
        // A header holds ASCII only: anything else in the title is `?`
        // (the text keeps it).
        let title: String = note
            .headline()
            .chars()
            .map(|c| {
                if c.is_ascii_graphic() || c == ' ' {
                    c
                } else {
                    '?'
                }
            })
            .collect();
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
        if text.len() > MAX_MESSAGE {
            let mut end = MAX_MESSAGE;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
        }
        let priority = self
            .priority
            .get(&note.event)
            .map_or(default_priority(note.event), String::as_str)
            .to_owned();
        let tags = self
            .tags
            .get(&note.event)
            .map_or(default_tags(note.event), String::as_str)
            .to_owned();
        (title, text, priority, tags)
    }

    async fn post(&self, note: &Notification) -> Result<(), Failure> {
        let (title, text, priority, tags) = self.message(note);
        let mut request = self
            .client
            .post(&self.url)
            .header("Title", title)
            .header("Priority", priority)
            .header("Tags", tags)
            .body(text);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request
            .send()
            .await
            // Without the URL: the topic name is often the secret.
            .map_err(|e| Failure::Temporary(e.without_url().to_string()))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let after = retry_after(response.headers());
        // ntfy explains a refusal in a JSON body ("error", "link").
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

impl super::lanes::Attempt for NtfyChannel {
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
