//! What every HTTP channel shares (the webhook, PagerDuty, Opsgenie,
//! Slack, Teams, Discord, Matrix, Telegram, ntfy, Pushover): the client,
//! the template that may shape its messages, and its
//! deadline, and how an answer is read: success, a wait the service asks
//! for (`Retry-After`, or its own field), a temporary failure (429, 408,
//! 5xx, no answer) or a refusal for good (another 4xx), with the service's
//! reason and never the URL (it often holds the credential). Each channel
//! only says what it sends ([`Provider`]): a notification in the service's
//! own form, free text (a template's, a digest's) where its messages' text
//! goes, or a JSON template's payload whole.

use std::time::Duration;

use super::digest::Digest;
use super::retry::Failure;
use super::webhook::retry_after;
use crate::notification::{Event, Notification};
use crate::template::{Rendered, Template};

/// A message of free text: a text template's rendering, or a digest.
#[derive(Debug, Clone)]
pub struct Text {
    /// One line (a title, a subject, a header).
    pub title: String,
    /// The message.
    pub body: String,
    /// The event it is about (a digest: its most serious one), for
    /// colours, priorities and icons.
    pub event: Event,
    /// Stable for every attempt at the same message (an idempotency key).
    pub key: String,
    /// Whether a service with no title field shows the title first (a
    /// digest's summary), or only the body (a template says all).
    pub heading: bool,
}

impl Text {
    /// A template's text for `note`: its headline as title.
    pub fn rendered(note: &Notification, body: String) -> Text {
        Text {
            title: note.headline(),
            body,
            event: note.event,
            key: note_key(note),
            heading: false,
        }
    }

    /// The message for a service with no title field.
    pub fn whole(&self) -> String {
        if self.heading {
            format!("{}\n{}", self.title, self.body)
        } else {
            self.body.clone()
        }
    }
}

/// A key stable for every attempt at `note` (and different for each
/// reminder), for services that take an idempotency key.
pub fn note_key(note: &Notification) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    for part in [&*note.watcher, &*note.incident, note.event.name()] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    hash.update(note.round().to_be_bytes());
    hex::encode(&hash.finalize()[..12])
}

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

    /// Whether the service is sent `note` at all. Alert services (an
    /// alert there waits for an answer or a resolve) are not sent notices
    /// (a declared job `retired`), which never get a follow-up.
    fn takes(&self, _note: &Notification) -> bool {
        true
    }

    /// The request carrying free text (a text template's rendering, a
    /// digest): each service puts it where its messages' text goes.
    /// Alert services (PagerDuty, Opsgenie) send each notification as
    /// their own alert and take none: the configuration refuses templates
    /// and digests for them.
    fn text_request(
        &self,
        _client: &reqwest::Client,
        _text: &Text,
    ) -> Result<reqwest::RequestBuilder, Failure> {
        Err(Failure::Permanent(
            "this channel sends each notification as the service's own alert".into(),
        ))
    }

    /// The request whose whole body is `payload` (a JSON template's
    /// rendering), for services that take one.
    fn payload_request(
        &self,
        _client: &reqwest::Client,
        _payload: &serde_json::Value,
    ) -> Result<reqwest::RequestBuilder, Failure> {
        Err(Failure::Permanent(
            "this channel takes text templates only".into(),
        ))
    }

    /// The request carrying a digest: by default its text (the summary,
    /// then a line per notification) where the service's text goes.
    fn digest_request(
        &self,
        client: &reqwest::Client,
        digest: Digest<'_>,
    ) -> Result<reqwest::RequestBuilder, Failure> {
        self.text_request(client, &digest.text_within(self.text_max()))
    }

    /// The longest text (in characters) one message holds; a digest is
    /// cut to it with a count of what it could not list.
    fn text_max(&self) -> usize {
        usize::MAX
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
    template: Option<Template>,
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
            template: None,
        })
    }

    /// Its messages shaped by `template` (compiled and tried when the
    /// configuration was checked).
    pub fn with_template(mut self, template: Option<Template>) -> HttpChannel<P> {
        self.template = template;
        self
    }

    /// The service's part.
    pub fn provider(&self) -> &P {
        &self.provider
    }

    /// The request for `note`, through the template if there is one.
    /// Should the template fail on it (tried on samples of every kind at
    /// start-up, it rarely can), the built-in message goes instead: an
    /// alarm is never lost for its wording.
    pub fn request(&self, note: &Notification) -> Result<reqwest::RequestBuilder, Failure> {
        let Some(template) = &self.template else {
            return self.provider.request(&self.client, note);
        };
        match template.render(note) {
            Ok(Rendered::Text(body)) => self
                .provider
                .text_request(&self.client, &Text::rendered(note, body)),
            Ok(Rendered::Json(payload)) => self.provider.payload_request(&self.client, &payload),
            Err(e) => {
                tracing::error!(channel = %self.name, incident = %note.incident, event = %note.event, cause = %e, "the template failed on this notification; sending the built-in message instead");
                self.provider.request(&self.client, note)
            }
        }
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
        if !self.provider.takes(note) {
            tracing::info!(channel = %self.name, incident = %note.incident, event = %note.event, "not sent to this alert service: a notice gets no follow-up, and its alert would stay open");
            return Ok(());
        }
        self.send(self.request(note)?).await
    }

    async fn attempt_digest(&self, digest: Digest<'_>) -> Result<(), Failure> {
        self.send(self.provider.digest_request(&self.client, digest)?)
            .await
    }
}

impl<P: Provider> HttpChannel<P> {
    /// Sends `request` and reads the answer.
    async fn send(&self, request: reqwest::RequestBuilder) -> Result<(), Failure> {
        let response = request
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

/// Each channel's rendering of a template, read from the request it
/// builds.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, NotifyConfig};
    use crate::notify::{discord, matrix, ntfy, pushover, slack, teams, telegram, webhook};

    /// The body and headers `channel` sends for the sample notification.
    fn sent<P: Provider>(
        channel: Result<HttpChannel<P>, String>,
    ) -> (String, reqwest::header::HeaderMap) {
        let request = channel
            .unwrap()
            .request(&crate::template::sample())
            .unwrap()
            .build()
            .unwrap();
        let body = request
            .body()
            .and_then(reqwest::Body::as_bytes)
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default();
        (body, request.headers().clone())
    }

    fn channel(keys: &str) -> NotifyConfig {
        let text = format!("[[job]]\nname = \"etl\"\nevery = \"1h\"\n\n[[notify]]\n{keys}\n");
        Config::parse(&text, "t.toml").unwrap().notify.remove(0)
    }

    const TEXT: &str = "template = \"{{ event }}: {{ job }} <{{ text }}>\"";
    const SAID: &str = "failed: nightly-etl <disk full>";

    #[test]
    fn each_chat_channel_puts_a_text_template_where_its_text_goes() {
        let json = |body: &str| serde_json::from_str::<serde_json::Value>(body).unwrap();
        let NotifyConfig::Slack(cfg) =
            channel(&format!("kind = \"slack\"\nurl = \"https://h/s\"\n{TEXT}"))
        else {
            panic!()
        };
        let (body, _) = sent(slack::SlackChannel::new("s".into(), &cfg));
        // Escaped: a job's output cannot write Slack markup.
        assert_eq!(json(&body)["text"], "failed: nightly-etl &lt;disk full&gt;");

        let NotifyConfig::Discord(cfg) = channel(&format!(
            "kind = \"discord\"\nurl = \"https://h/d\"\n{TEXT}"
        )) else {
            panic!()
        };
        let (body, _) = sent(discord::DiscordChannel::new("d".into(), &cfg));
        assert_eq!(json(&body)["content"], SAID);
        assert_eq!(
            json(&body)["allowed_mentions"]["parse"],
            serde_json::json!([])
        );

        let NotifyConfig::Teams(cfg) =
            channel(&format!("kind = \"teams\"\nurl = \"https://h/t\"\n{TEXT}"))
        else {
            panic!()
        };
        let (body, _) = sent(teams::TeamsChannel::new("t".into(), &cfg));
        let card = &json(&body)["attachments"][0]["content"]["body"];
        assert_eq!(card[0]["text"], "FAILED nightly-etl");
        assert_eq!(card[1]["text"], SAID);

        let NotifyConfig::Matrix(cfg) = channel(&format!(
            "kind = \"matrix\"\nhomeserver = \"https://m\"\nroom = \"!r:m\"\naccess_token = \"t\"\n{TEXT}"
        )) else {
            panic!()
        };
        let (body, _) = sent(matrix::MatrixChannel::new("m".into(), &cfg));
        assert_eq!(json(&body)["body"], SAID);
        assert_eq!(json(&body)["msgtype"], "m.notice");

        let NotifyConfig::Telegram(cfg) = channel(&format!(
            "kind = \"telegram\"\ntoken = \"t\"\nchat_id = \"42\"\n{TEXT}"
        )) else {
            panic!()
        };
        let (body, _) = sent(telegram::TelegramChannel::new("g".into(), &cfg));
        assert_eq!(json(&body)["text"], SAID);
        assert_eq!(json(&body)["chat_id"], "42");

        let NotifyConfig::Ntfy(cfg) = channel(&format!(
            "kind = \"ntfy\"\nurl = \"https://n/topic\"\n{TEXT}"
        )) else {
            panic!()
        };
        let (body, headers) = sent(ntfy::NtfyChannel::new("n".into(), &cfg));
        assert_eq!(body, SAID);
        assert_eq!(headers["Title"], "FAILED nightly-etl");
        assert_eq!(headers["Priority"], "urgent");

        let NotifyConfig::Pushover(cfg) = channel(&format!(
            "kind = \"pushover\"\ntoken = \"t\"\nuser = \"u\"\n{TEXT}"
        )) else {
            panic!()
        };
        let (body, _) = sent(pushover::PushoverChannel::new("p".into(), &cfg));
        assert_eq!(json(&body)["message"], SAID);
        assert_eq!(json(&body)["title"], "FAILED nightly-etl");
        assert_eq!(json(&body)["priority"], 1);

        let NotifyConfig::Webhook(cfg) =
            channel(&format!("kind = \"webhook\"\nurl = \"https://w\"\n{TEXT}"))
        else {
            panic!()
        };
        let (body, headers) = sent(webhook::WebhookChannel::new("w".into(), &cfg));
        assert_eq!(body, SAID);
        assert_eq!(headers["content-type"], "text/plain; charset=utf-8");
    }

    #[test]
    fn a_template_failing_on_a_real_notification_falls_back_to_the_built_in_message() {
        // Passes every sample (none is job "special"), fails on it.
        let NotifyConfig::Slack(cfg) = channel(
            "kind = \"slack\"\nurl = \"https://h/s\"\ntemplate = \"{% if job == 'special' %}{{ 1 // 0 }}{% endif %}{{ headline }}\"",
        ) else {
            panic!()
        };
        let slack = slack::SlackChannel::new("s".into(), &cfg).unwrap();
        let mut note = crate::template::sample();
        note.job = "special".into();
        let request = slack.request(&note).unwrap().build().unwrap();
        let body: serde_json::Value =
            serde_json::from_slice(request.body().unwrap().as_bytes().unwrap()).unwrap();
        assert_eq!(
            body["blocks"][0]["type"], "header",
            "the built-in message: {body}"
        );
        assert!(
            body["text"].as_str().unwrap().contains("FAILED special"),
            "{body}"
        );
    }

    #[test]
    fn a_webhook_answer_echoing_our_secrets_is_logged_without_them() {
        let NotifyConfig::Webhook(cfg) = channel(
            "kind = \"webhook\"\nurl = \"https://hooks.example.com/T0KEN-IN-PATH\"\nheaders = { Authorization = \"Bearer s3cr3t-value\" }",
        ) else {
            panic!()
        };
        let hook = webhook::WebhookChannel::new("w".into(), &cfg).unwrap();
        let said = hook.provider().reason(&format!(
            "{}bad auth: Bearer s3cr3t-value for https://hooks.example.com/T0KEN-IN-PATH",
            "x".repeat(280)
        ));
        assert!(!said.contains("s3cr3t"), "{said}");
        assert!(!said.contains("T0KEN"), "{said}");
    }

    #[test]
    fn a_json_template_is_the_whole_payload_where_a_service_takes_one() {
        let template =
            "template_format = \"json\"\ntemplate = '{\"msg\": {{ text }}, \"job\": {{ job }}}'";
        for kind in ["slack", "teams", "discord", "webhook"] {
            let cfg = channel(&format!(
                "kind = \"{kind}\"\nurl = \"https://h/x\"\n{template}"
            ));
            let (body, _) = match cfg {
                NotifyConfig::Slack(c) => sent(slack::SlackChannel::new("x".into(), &c)),
                NotifyConfig::Teams(c) => sent(teams::TeamsChannel::new("x".into(), &c)),
                NotifyConfig::Discord(c) => sent(discord::DiscordChannel::new("x".into(), &c)),
                NotifyConfig::Webhook(c) => sent(webhook::WebhookChannel::new("x".into(), &c)),
                other => panic!("{other:?}"),
            };
            let body: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(body["msg"], "disk full", "{kind}");
            assert_eq!(body["job"], "nightly-etl", "{kind}");
        }
        let err = Config::parse(
            &format!("[[job]]\nname = \"etl\"\nevery = \"1h\"\n\n[[notify]]\nkind = \"telegram\"\ntoken = \"t\"\nchat_id = \"42\"\n{template}\n"),
            "t.toml",
        )
        .unwrap_err();
        assert_eq!(err.key, "notify[0].template_format", "{err}");
    }
}
