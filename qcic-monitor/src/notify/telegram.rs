//! `kind = "telegram"`: a message sent by a bot with the Bot API's
//! `sendMessage` (<https://core.telegram.org/bots/api#sendmessage>) to a
//! chat. The bot token is part of the request URL: it is read from
//! `env:VAR` or `file:PATH` and never logged.

use std::time::Duration;

use serde_json::json;

use super::http::{HttpChannel, Provider, Text};
use super::retry::Failure;
use super::webhook::secret;
use crate::config::TelegramConfig;
use crate::notification::Notification;

/// The Bot API unless `url` says otherwise (a local Bot API server).
pub const API_URL: &str = "https://api.telegram.org";
/// A message's longest text, in characters.
const TEXT_MAX: usize = 4096;

/// A ready Telegram channel.
#[derive(Debug)]
pub struct TelegramChannel {
    /// `API/bot<token>/sendMessage`: holds the token.
    endpoint: String,
    chat_id: String,
}

impl TelegramChannel {
    /// Reads the bot token now, so a missing secret stops the start.
    pub fn new(name: String, cfg: &TelegramConfig) -> Result<HttpChannel<TelegramChannel>, String> {
        let token = secret(&cfg.token).map_err(|e| format!("token: {e}"))?;
        let base = cfg.url.as_deref().unwrap_or(API_URL).trim_end_matches('/');
        HttpChannel::new(
            name,
            cfg.timeout,
            TelegramChannel {
                endpoint: format!("{base}/bot{token}/sendMessage"),
                chat_id: cfg.chat_id.clone(),
            },
        )
        .map(|c| c.with_template(cfg.text.compiled.clone()))
    }

    /// The `sendMessage` request for `note`: plain text (no parse mode, so
    /// nothing in a job's output is taken for markup).
    pub fn message(&self, note: &Notification) -> serde_json::Value {
        let mut text = format!(
            "{}\njob {} · event {} · watcher {} · incident {}",
            note.headline(),
            note.job,
            note.event,
            note.watcher,
            note.incident
        );
        if let Some(host) = &note.host {
            text.push_str(&format!(" · host {host}"));
        }
        if let Some(reason) = &note.text {
            text.push_str(&format!("\n{}", crate::printable::one_line(reason)));
        }
        let text: String = text.chars().take(TEXT_MAX).collect();
        json!({
            "chat_id": self.chat_id,
            "text": text,
            "link_preview_options": {"is_disabled": true},
        })
    }
}

impl Provider for TelegramChannel {
    fn request(
        &self,
        client: &reqwest::Client,
        note: &Notification,
    ) -> Result<reqwest::RequestBuilder, Failure> {
        Ok(client.post(&self.endpoint).json(&self.message(note)))
    }

    fn text_max(&self) -> usize {
        TEXT_MAX
    }

    fn text_request(
        &self,
        client: &reqwest::Client,
        text: &Text,
    ) -> Result<reqwest::RequestBuilder, Failure> {
        Ok(client.post(&self.endpoint).json(&json!({
            "chat_id": self.chat_id,
            "text": text.whole().chars().take(TEXT_MAX).collect::<String>(),
            "link_preview_options": {"is_disabled": true},
        })))
    }

    // {"ok": false, "error_code", "description", "parameters": {"retry_after"}}.
    fn reason(&self, body: &str) -> String {
        let answer: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
        crate::printable::one_line(answer["description"].as_str().unwrap_or("")).into_owned()
    }

    fn retry_after(&self, body: &str) -> Option<Duration> {
        let answer: serde_json::Value = serde_json::from_str(body).ok()?;
        answer["parameters"]["retry_after"]
            .as_u64()
            .map(Duration::from_secs)
    }
}
