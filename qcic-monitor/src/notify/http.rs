//! What every HTTP channel shares (PagerDuty, Opsgenie, Slack, Teams,
//! Discord, Matrix, Telegram, ntfy, Pushover): the client and its
//! deadline, and how an answer is read: success, a wait the service asks
//! for (`Retry-After`, or its own field), a temporary failure (429, 408,
//! 5xx, no answer) or a refusal for good (another 4xx), with the service's
//! reason and never the URL (it often holds the credential). Each channel
//! only says what it sends ([`Provider`]).

use std::time::Duration;

use super::retry::Failure;
use super::webhook::retry_after;
use crate::notification::Notification;

/// One service's part of a channel.
pub trait Provider: std::fmt::Debug + Send + Sync + 'static {
    /// The request for `note`, built on `client`.
    fn request(
        &self,
        client: &reqwest::Client,
        note: &Notification,
    ) -> Result<reqwest::RequestBuilder, Failure>;

    /// What a refusal's body says, for the log.
    fn reason(&self, body: &str) -> String {
        crate::printable::one_line(&body.chars().take(300).collect::<String>()).into_owned()
    }

    /// A wait the body asks for, where the service says it there
    /// (Telegram's `retry_after`, Matrix's `retry_after_ms`).
    fn retry_after(&self, _body: &str) -> Option<Duration> {
        None
    }
}

/// A channel posting to one service.
#[derive(Debug)]
pub struct HttpChannel<P> {
    name: String,
    client: reqwest::Client,
    timeout: Duration,
    provider: P,
}

impl<P: Provider> HttpChannel<P> {
    /// A channel named `name` whose calls take at most `timeout`.
    pub fn new(name: String, timeout: Duration, provider: P) -> Result<HttpChannel<P>, String> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(HttpChannel {
            name,
            client,
            timeout,
            provider,
        })
    }
}

/// A per-event setting (`severity = { down = "critical" }`) keyed by the
/// event; the configuration check refused names that are no event.
pub fn by_event<T: Clone>(
    map: &std::collections::BTreeMap<String, T>,
) -> std::collections::BTreeMap<crate::notification::Event, T> {
    map.iter()
        .filter_map(|(name, value)| {
            Some((crate::notification::Event::from_name(name)?, value.clone()))
        })
        .collect()
}

/// A chat webhook's URL, read now from `env:VAR` or `file:PATH` (its path
/// is the credential); it must be http(s). Errors never show its path.
pub fn webhook_url(configured: &str) -> Result<String, String> {
    let url = super::webhook::secret(configured).map_err(|e| format!("url: {e}"))?;
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(format!(
            "url: {} must start with https://",
            crate::config::redacted_url(&url)
        ));
    }
    Ok(url)
}

/// A failed answer's kind: a wait asked for is honoured; 429 and 408 are
/// worth another try, as is any 5xx; another 4xx never will be.
pub fn classify(status: u16, after: Option<Duration>, cause: String) -> Failure {
    match (status, after) {
        (429 | 408, Some(after)) => Failure::Throttled(cause, after),
        (429 | 408, None) => Failure::Temporary(cause),
        (400..=499, _) => Failure::Permanent(cause),
        (_, Some(after)) => Failure::Throttled(cause, after),
        _ => Failure::Temporary(cause),
    }
}

impl<P: Provider> super::lanes::Attempt for HttpChannel<P> {
    fn name(&self) -> &str {
        &self.name
    }

    // A little past the client's own timeout, which usually ends it first
    // with a clearer reason.
    fn deadline(&self) -> Duration {
        self.timeout + Duration::from_secs(1)
    }

    async fn attempt(&self, note: &Notification) -> Result<(), Failure> {
        let response = self
            .provider
            .request(&self.client, note)?
            .send()
            .await
            // Without the URL: its path or query may be the credential.
            .map_err(|e| Failure::Temporary(e.without_url().to_string()))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let header = retry_after(response.headers());
        let body = response.text().await.unwrap_or_default();
        let after = header.or_else(|| self.provider.retry_after(&body));
        let cause = format!("HTTP {status}: {}", self.provider.reason(&body));
        Err(classify(status.as_u16(), after, cause))
    }
}
