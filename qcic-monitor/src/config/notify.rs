//! The `[[notify]]` channels' settings, as the channels take them.

use super::*;

/// One `[[notify]]` channel.
#[derive(Debug, Clone, PartialEq)]
pub enum NotifyConfig {
    /// Email through an SMTP server.
    Email(EmailConfig),
    /// A ZeroMQ PUB alert stream.
    Zmq(ZmqConfig),
    /// An HTTP POST of the notification as JSON.
    Webhook(WebhookConfig),
    /// A program run with the notification as JSON on stdin.
    Command(CommandConfig),
    /// PagerDuty's Events API v2.
    PagerDuty(PagerDutyConfig),
    /// An ntfy topic.
    Ntfy(NtfyConfig),
    /// A Slack incoming webhook.
    Slack(SlackConfig),
    /// A Discord webhook.
    Discord(DiscordConfig),
    /// A Telegram bot's messages to a chat.
    Telegram(TelegramConfig),
    /// Pushover's Message API.
    Pushover(PushoverConfig),
    /// Opsgenie's Alert API.
    Opsgenie(OpsgenieConfig),
    /// A Microsoft Teams Workflows webhook.
    Teams(TeamsConfig),
    /// A Matrix room.
    Matrix(MatrixConfig),
    /// A Prometheus Alertmanager cluster.
    Alertmanager(AlertmanagerConfig),
}

/// `kind = "alertmanager"`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerConfig {
    /// Each Alertmanager of the cluster (`http://am-1:9093`, or the full
    /// `.../api/v2/alerts`): one URL or a list; every alert goes to each.
    #[serde(deserialize_with = "one_or_many")]
    pub url: Vec<String>,
    /// Labels added to every alert (the routing tree matches on them).
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    /// How often open alerts are posted again (their `endsAt` is four of
    /// these ahead, so they stay firing while this watcher lives).
    #[serde(default = "alertmanager_resend", deserialize_with = "duration")]
    pub resend: Duration,
    /// HTTP basic authentication (a reverse proxy in front of Alertmanager).
    #[serde(default)]
    pub username: Option<String>,
    /// Its password: a literal, `env:VAR` or `file:PATH`. Never logged.
    #[serde(default)]
    pub password: Option<String>,
    /// The timeout of one call.
    #[serde(default = "webhook_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    /// Routing.
    #[serde(flatten)]
    pub route: Route,
}

fn one_or_many<'de, D: Deserializer<'de>>(de: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    match OneOrMany::deserialize(de)? {
        OneOrMany::One(url) => Ok(vec![url]),
        OneOrMany::Many(urls) => Ok(urls),
    }
}

/// `kind = "matrix"`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatrixConfig {
    /// The homeserver's client-server API base, e.g. `https://matrix.example.org`.
    pub homeserver: String,
    /// The room's id (`!abcdef:example.org`; the bot must be in it).
    pub room: String,
    /// The bot account's access token: a literal, `env:VAR` or `file:PATH`.
    /// Never logged.
    pub access_token: String,
    /// The timeout of one call.
    #[serde(default = "webhook_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    /// Routing.
    #[serde(flatten)]
    pub route: Route,
}

/// `kind = "teams"`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamsConfig {
    /// The Workflows webhook's URL: it holds its signature, so `env:VAR` or
    /// `file:PATH` (a literal works too). Never logged whole.
    pub url: String,
    /// The timeout of one call.
    #[serde(default = "webhook_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    /// Routing.
    #[serde(flatten)]
    pub route: Route,
}

/// `kind = "opsgenie"`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpsgenieConfig {
    /// An API integration's key: a literal, `env:VAR` or `file:PATH`. Never logged.
    pub api_key: String,
    /// The API (default the US region, `https://api.opsgenie.com`; the EU
    /// region is `https://api.eu.opsgenie.com`).
    #[serde(default)]
    pub url: Option<String>,
    /// Priority by event name (`P1` to `P5`), over the defaults.
    #[serde(default)]
    pub priority: std::collections::BTreeMap<String, String>,
    /// The timeout of one call.
    #[serde(default = "webhook_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    /// Routing.
    #[serde(flatten)]
    pub route: Route,
}

/// `kind = "pushover"`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushoverConfig {
    /// The application's API token: a literal, `env:VAR` or `file:PATH`.
    /// Never logged.
    pub token: String,
    /// The user or group key: a literal, `env:VAR` or `file:PATH`. Never logged.
    pub user: String,
    /// Priority by event name, -2 to 1, over the defaults.
    #[serde(default)]
    pub priority: std::collections::BTreeMap<String, i8>,
    /// The Message API (default Pushover's).
    #[serde(default)]
    pub url: Option<String>,
    /// The timeout of one call.
    #[serde(default = "webhook_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    /// Routing.
    #[serde(flatten)]
    pub route: Route,
}

/// `kind = "telegram"`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelegramConfig {
    /// The bot's token: a literal, `env:VAR` or `file:PATH`. Never logged.
    pub token: String,
    /// The chat: its numeric id (`-1001234567890`) or `@channelusername`.
    pub chat_id: String,
    /// The Bot API server (default `https://api.telegram.org`).
    #[serde(default)]
    pub url: Option<String>,
    /// The timeout of one call.
    #[serde(default = "webhook_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    /// Routing.
    #[serde(flatten)]
    pub route: Route,
}

/// `kind = "discord"`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscordConfig {
    /// The webhook's URL: its path is the credential, so `env:VAR` or
    /// `file:PATH` (a literal works too). Never logged whole.
    pub url: String,
    /// The timeout of one call.
    #[serde(default = "webhook_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    /// Routing.
    #[serde(flatten)]
    pub route: Route,
}

/// `kind = "slack"`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// The incoming webhook's URL: its path is the credential, so
    /// `env:VAR` or `file:PATH` (a literal works too). Never logged whole.
    pub url: String,
    /// The timeout of one call.
    #[serde(default = "webhook_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    /// Routing.
    #[serde(flatten)]
    pub route: Route,
}

/// `kind = "ntfy"`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NtfyConfig {
    /// The topic's URL (`https://ntfy.sh/TOPIC`, or a server of one's
    /// own); `env:VAR` or `file:PATH` when the topic name is the secret.
    /// Never logged whole.
    pub url: String,
    /// An access token (`env:VAR`, `file:PATH` or literal), sent as a
    /// bearer token. Never logged.
    #[serde(default)]
    pub token: Option<String>,
    /// Priority by event name (`min`, `low`, `default`, `high`, `urgent`),
    /// over the defaults.
    #[serde(default)]
    pub priority: std::collections::BTreeMap<String, String>,
    /// Tags (emoji short codes) by event name, over the defaults.
    #[serde(default)]
    pub tags: std::collections::BTreeMap<String, Vec<String>>,
    /// The timeout of one call.
    #[serde(default = "webhook_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    /// Routing.
    #[serde(flatten)]
    pub route: Route,
}

/// `kind = "pagerduty"`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PagerDutyConfig {
    /// The integration's routing key: a literal, `env:VAR` or `file:PATH`.
    /// Never logged.
    pub routing_key: String,
    /// The Events API endpoint (default PagerDuty's US service region; the
    /// EU one is `https://events.eu.pagerduty.com/v2/enqueue`).
    #[serde(default)]
    pub url: Option<String>,
    /// Severity by event name (`down = "critical"`, ...), over the defaults.
    #[serde(default)]
    pub severity: std::collections::BTreeMap<String, String>,
    /// The timeout of one call.
    #[serde(default = "webhook_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    /// Routing.
    #[serde(flatten)]
    pub route: Route,
}

/// Keys every `[[notify]]` channel has.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// The name jobs use in `notify = [...]`; default `notify[INDEX]`.
    pub name: Option<String>,
    /// Whether jobs without a `notify` list use this channel (default true).
    #[serde(default = "yes")]
    pub default: bool,
}

/// `kind = "webhook"`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where to POST; `env:VAR` or `file:PATH` reads it from there (a URL
    /// that holds its credential). Never logged whole.
    pub url: String,
    /// Extra headers; a value `env:VAR` or `file:PATH` is read from there (secrets).
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
    /// The timeout of one call.
    #[serde(default = "webhook_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    /// Routing.
    #[serde(flatten)]
    pub route: Route,
}

/// `kind = "command"`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandConfig {
    /// The program and its arguments (no shell).
    pub command: Vec<String>,
    /// Kill it after this long (and retry).
    #[serde(default = "command_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    /// Routing.
    #[serde(flatten)]
    pub route: Route,
}

/// `kind = "email"`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// `smtp://host:port` (plain; add `?tls=required` for STARTTLS) or `smtps://host:port`.
    pub smtp: String,
    /// The From address.
    pub from: String,
    /// Recipients.
    pub to: Vec<String>,
    /// SMTP user name, if the server wants one.
    #[serde(default)]
    pub username: Option<String>,
    /// Environment variable holding the SMTP password (default `QCIC_SMTP_PASSWORD`).
    #[serde(default)]
    pub password_env: Option<String>,
    /// File holding the SMTP password (first line).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Text put before every subject.
    #[serde(default = "default_subject_prefix")]
    pub subject_prefix: String,
    /// The longest one delivery attempt (connect, greeting, the whole
    /// exchange) may take before it is abandoned and retried.
    #[serde(default = "email_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    /// Routing.
    #[serde(flatten)]
    pub route: Route,
}

/// `kind = "zmq"`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZmqConfig {
    /// Endpoint the PUB socket binds.
    pub publish: String,
    /// Routing.
    #[serde(flatten)]
    pub route: Route,
}

/// A URL as an error message may show it: scheme, host and port only.
/// A webhook's path or query (and any user name or password) is often its
/// credential.
pub fn redacted_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "the value (not shown: it may hold a secret)".into();
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or("");
    let hidden = if rest.len() > authority.len() || authority.contains('@') {
        "/…"
    } else {
        ""
    };
    format!("{scheme}://{host}{hidden}")
}

impl NotifyConfig {
    /// The routing keys.
    pub fn route(&self) -> &Route {
        match self {
            NotifyConfig::Email(c) => &c.route,
            NotifyConfig::Zmq(c) => &c.route,
            NotifyConfig::Webhook(c) => &c.route,
            NotifyConfig::Command(c) => &c.route,
            NotifyConfig::PagerDuty(c) => &c.route,
            NotifyConfig::Ntfy(c) => &c.route,
            NotifyConfig::Slack(c) => &c.route,
            NotifyConfig::Discord(c) => &c.route,
            NotifyConfig::Telegram(c) => &c.route,
            NotifyConfig::Pushover(c) => &c.route,
            NotifyConfig::Opsgenie(c) => &c.route,
            NotifyConfig::Teams(c) => &c.route,
            NotifyConfig::Matrix(c) => &c.route,
            NotifyConfig::Alertmanager(c) => &c.route,
        }
    }

    /// The channel's name for routing and metrics.
    pub fn name(&self, index: usize) -> String {
        self.route()
            .name
            .clone()
            .unwrap_or_else(|| format!("notify[{index}]"))
    }
}
