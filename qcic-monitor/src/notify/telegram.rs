//! `kind = "telegram"`: a message sent by a bot with the Bot API's
//! `sendMessage` (<https://core.telegram.org/bots/api#sendmessage>) to a
//! chat. The bot token is part of the request URL: it is read from
//! `env:VAR` or `file:PATH` and never logged.

use std::time::Duration;

use serde_json::json;

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
    name: String,
    /// `API/bot<token>/sendMessage`: holds the token.
    endpoint: String,
    chat_id: String,
    client: reqwest::Client,
    timeout: Duration,
}

impl TelegramChannel {
    /// Reads the bot token now, so a missing secret stops the start.
    pub fn new(name: String, cfg: &TelegramConfig) -> Result<TelegramChannel, String> {
        let token = secret(&cfg.token).map_err(|e| format!("token: {e}"))?;
        let base = cfg.url.as_deref().unwrap_or(API_URL).trim_end_matches('/');
        let client = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(TelegramChannel {
            name,
            endpoint: format!("{base}/bot{token}/sendMessage"),
            chat_id: cfg.chat_id.clone(),
            client,
            timeout: cfg.timeout,
        })
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

    async fn post(&self, note: &Notification) -> Result<(), Failure> {
        let response = self
            .client
            .post(&self.endpoint)
            .json(&self.message(note))
            .send()
            .await
            // Without the URL: it holds the bot token.
            .map_err(|e| Failure::Temporary(e.without_url().to_string()))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        // The Bot API answers {"ok": false, "error_code", "description",
        // "parameters": {"retry_after": seconds}} (the wait of a 429).
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        let description = body["description"].as_str().unwrap_or("").to_owned();
        let cause = format!(
            "HTTP {status}: {}",
            crate::printable::one_line(&description)
        );
        let after = body["parameters"]["retry_after"]
            .as_u64()
            .map(Duration::from_secs);
        match (status.as_u16(), after) {
            (429, Some(after)) => Err(Failure::Throttled(cause, after)),
            (429 | 408, _) => Err(Failure::Temporary(cause)),
            (s, _) if (400..500).contains(&s) => Err(Failure::Permanent(cause)),
            _ => Err(Failure::Temporary(cause)),
        }
    }
}

impl super::lanes::Attempt for TelegramChannel {
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
