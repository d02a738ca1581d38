//! The webhook channel: an HTTP POST of the notification as JSON, with
//! configured headers (SMS gateways, Slack, PagerDuty, ...).

use std::time::Duration;

use super::retry::Failure;
use crate::config::WebhookConfig;
use crate::notification::Notification;

/// A ready webhook channel.
#[derive(Debug)]
pub struct WebhookChannel {
    name: String,
    url: String,
    headers: Vec<(String, String)>,
    client: reqwest::Client,
    timeout: Duration,
}

impl WebhookChannel {
    /// Resolves header values (`env:VAR` and `file:PATH` are read now, so a
    /// missing secret stops the start) and builds the client.
    pub fn new(name: String, cfg: &WebhookConfig) -> Result<WebhookChannel, String> {
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
        let client = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(WebhookChannel {
            name,
            url,
            headers,
            client,
            timeout: cfg.timeout,
        })
    }

    async fn post(&self, note: &Notification) -> Result<(), Failure> {
        let mut request = self.client.post(&self.url).json(note);
        for (key, value) in &self.headers {
            request = request.header(key, value);
        }
        match request.send().await {
            Ok(response) if response.status().is_success() => Ok(()),
            Ok(response) => {
                let status = response.status();
                // 4xx means this request will never be accepted as it is,
                // except "too many requests" and "request timeout".
                Err(super::http::classify(
                    status.as_u16(),
                    retry_after(response.headers()),
                    format!("HTTP {status}"),
                ))
            }
            // Without the URL: its path or query may be the secret.
            Err(err) => Err(Failure::Temporary(err.without_url().to_string())),
        }
    }
}

impl super::lanes::Attempt for WebhookChannel {
    fn name(&self) -> &str {
        &self.name
    }

    // A little past the HTTP client's own timeout, which usually ends it
    // first with a clearer reason.
    fn deadline(&self) -> Duration {
        self.timeout + Duration::from_secs(1)
    }

    async fn attempt(&self, note: &Notification) -> Result<(), Failure> {
        self.post(note).await
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
