//! The webhook channel: an HTTP POST of the notification as JSON (or of
//! its template's rendering), with configured headers (SMS gateways, home
//! grown receivers, ...).

use std::time::Duration;

use super::http::{HttpChannel, Provider, Text};
use super::retry::Failure;
use crate::config::WebhookConfig;
use crate::notification::Notification;

/// A ready webhook channel.
#[derive(Debug)]
pub struct WebhookChannel {
    url: String,
    headers: Vec<(String, String)>,
}

impl WebhookChannel {
    /// Resolves header values (`env:VAR` and `file:PATH` are read now, so a
    /// missing secret stops the start) and builds the client.
    pub fn new(name: String, cfg: &WebhookConfig) -> Result<HttpChannel<WebhookChannel>, String> {
        let mut headers = Vec::new();
        for (key, value) in &cfg.headers {
            let value = secret(value).map_err(|e| format!("header {key}: {e}"))?;
            headers.push((key.clone(), value));
        }
        // Slack, Discord, Teams and many SMS gateways put the credential in
        // the URL: it may come from the environment or a file, and is never
        // logged (errors are logged without it).
        let url = secret(&cfg.url).map_err(|e| format!("url: {e}"))?;
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!(
                "url: {} must start with http:// or https://",
                crate::config::redacted_url(&url)
            ));
        }
        HttpChannel::new(name, cfg.timeout, WebhookChannel { url, headers })
            .map(|c| c.with_template(cfg.text.compiled.clone()))
    }

    fn post(&self, client: &reqwest::Client) -> reqwest::RequestBuilder {
        let mut request = client.post(&self.url);
        for (key, value) in &self.headers {
            request = request.header(key, value);
        }
        request
    }
}

impl Provider for WebhookChannel {
    // The receiver's answer, with anything of ours it echoes (a header's
    // secret, the URL) blanked: the log never shows them.
    fn reason(&self, body: &str) -> String {
        // Blanked before the cut, so no secret is left half shown.
        let mut text = body.to_owned();
        for secret in self.headers.iter().map(|(_, v)| v).chain([&self.url]) {
            if secret.len() >= 4 {
                text = text.replace(secret.as_str(), "[redacted]");
            }
        }
        let text: String = text.chars().take(300).collect();
        crate::printable::one_line(&text).into_owned()
    }

    fn request(
        &self,
        client: &reqwest::Client,
        note: &Notification,
    ) -> Result<reqwest::RequestBuilder, Failure> {
        Ok(self.post(client).json(note))
    }

    fn text_request(
        &self,
        client: &reqwest::Client,
        text: &Text,
    ) -> Result<reqwest::RequestBuilder, Failure> {
        Ok(self
            .post(client)
            .header(reqwest::header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(text.whole()))
    }

    fn payload_request(
        &self,
        client: &reqwest::Client,
        payload: &serde_json::Value,
    ) -> Result<reqwest::RequestBuilder, Failure> {
        Ok(self.post(client).json(payload))
    }

    // For machines: every notification whole.
    fn digest_request(
        &self,
        client: &reqwest::Client,
        digest: super::digest::Digest<'_>,
    ) -> Result<reqwest::RequestBuilder, Failure> {
        Ok(self.post(client).json(&digest.json()))
    }
}

/// A value as written, or read from `env:VAR` or `file:PATH` (first line,
/// trailing blanks trimmed). Errors never include the value.
pub(super) fn secret(value: &str) -> Result<String, String> {
    if let Some(var) = value.strip_prefix("env:") {
        std::env::var(var).map_err(|_| format!("the environment variable {var} is not set"))
    } else if let Some(path) = value.strip_prefix("file:") {
        Ok(std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {path}: {e}"))?
            .trim_end()
            .to_owned())
    } else {
        Ok(value.to_owned())
    }
}

/// How long a server asked to wait before the next try (`Retry-After`:
/// seconds, or an HTTP date).
pub(super) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// The default timeout of one webhook call.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
