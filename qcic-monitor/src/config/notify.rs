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
    /// The status page (`[http] public_url`) as each alert's
    /// `generatorURL`, set by the check.
    #[serde(skip)]
    pub status_url: Option<String>,
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
    /// The message's text from a template (`template`, `template_file`,
    /// `template_format`).
    #[serde(flatten)]
    pub text: TemplateKeys,
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
    /// The message's text from a template (`template`, `template_file`,
    /// `template_format`).
    #[serde(flatten)]
    pub text: TemplateKeys,
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
    /// The message's text from a template (`template`, `template_file`,
    /// `template_format`).
    #[serde(flatten)]
    pub text: TemplateKeys,
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
    /// The message's text from a template (`template`, `template_file`,
    /// `template_format`).
    #[serde(flatten)]
    pub text: TemplateKeys,
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
    /// The message's text from a template (`template`, `template_file`,
    /// `template_format`).
    #[serde(flatten)]
    pub text: TemplateKeys,
    /// Routing.
    #[serde(flatten)]
    pub route: Route,
}

/// `kind = "slack"`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// The status page's link (`[http] public_url`), set by the check.
    #[serde(skip)]
    pub status_url: Option<String>,
    /// The incoming webhook's URL: its path is the credential, so
    /// `env:VAR` or `file:PATH` (a literal works too). Never logged whole.
    pub url: String,
    /// The timeout of one call.
    #[serde(default = "webhook_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    /// The message's text from a template (`template`, `template_file`,
    /// `template_format`).
    #[serde(flatten)]
    pub text: TemplateKeys,
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
    /// The message's text from a template (`template`, `template_file`,
    /// `template_format`).
    #[serde(flatten)]
    pub text: TemplateKeys,
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

/// A channel's template: inline or in a file, text or JSON. Compiled and
/// tried with a sample when the configuration is checked.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct TemplateKeys {
    /// The template itself.
    #[serde(default)]
    pub template: Option<String>,
    /// A file holding it (read when the configuration is).
    #[serde(default)]
    pub template_file: Option<PathBuf>,
    /// `text` or `json` (default `json` for a `.json` file, else `text`).
    #[serde(default)]
    pub template_format: Option<String>,
    /// Compiled by the configuration check.
    #[serde(skip)]
    pub compiled: Option<crate::template::Template>,
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
    /// Digests: how long a group of notifications stays open before it
    /// goes out as one message (`"off"`: one message each). Default 30s
    /// for email and chat channels, off for the others.
    #[serde(default, deserialize_with = "group_wait")]
    pub group_wait: Option<GroupWait>,
    /// Digests: the most notifications one message carries.
    #[serde(default)]
    pub group_max: Option<usize>,
}

impl Route {
    /// A channel named `name`, used by default, with its kind's grouping.
    pub fn named(name: &str) -> Route {
        Route {
            name: Some(name.to_owned()),
            default: true,
            group_wait: None,
            group_max: None,
        }
    }
}

/// `group_wait`: off, or how long a group stays open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupWait {
    /// One message per notification.
    Off,
    /// Gathered for this long after the first of a group (`0s`: the first
    /// leaves at once; what comes while it is sent goes together next).
    After(Duration),
}

fn group_wait<'de, D: Deserializer<'de>>(de: D) -> Result<Option<GroupWait>, D::Error> {
    let text = String::deserialize(de)?;
    if text == "off" {
        return Ok(Some(GroupWait::Off));
    }
    parse_duration(&text)
        .map(|d| Some(GroupWait::After(d)))
        .map_err(|e| serde::de::Error::custom(format!("{e} (or \"off\")")))
}

/// How a channel groups its notifications into digests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grouping {
    /// How long a group stays open.
    pub wait: Duration,
    /// The most notifications in one message.
    pub max: usize,
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
    /// The message's text from a template (`template`, `template_file`,
    /// `template_format`).
    #[serde(flatten)]
    pub text: TemplateKeys,
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
    /// The subject from a template (one line; the prefix still goes first).
    #[serde(default)]
    pub subject_template: Option<String>,
    /// The body from a template.
    #[serde(default)]
    pub body_template: Option<String>,
    /// A file holding the body's template.
    #[serde(default)]
    pub body_template_file: Option<PathBuf>,
    /// Compiled by the configuration check.
    #[serde(skip)]
    pub subject: Option<crate::template::Template>,
    /// Compiled by the configuration check.
    #[serde(skip)]
    pub body: Option<crate::template::Template>,
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
    /// The template keys of a channel that takes them.
    pub fn template_keys(&self) -> Option<&TemplateKeys> {
        match self {
            NotifyConfig::Webhook(c) => Some(&c.text),
            NotifyConfig::Slack(c) => Some(&c.text),
            NotifyConfig::Teams(c) => Some(&c.text),
            NotifyConfig::Discord(c) => Some(&c.text),
            NotifyConfig::Matrix(c) => Some(&c.text),
            NotifyConfig::Telegram(c) => Some(&c.text),
            NotifyConfig::Ntfy(c) => Some(&c.text),
            NotifyConfig::Pushover(c) => Some(&c.text),
            _ => None,
        }
    }

    /// The template keys of a channel that takes them, to compile.
    pub fn template_keys_mut(&mut self) -> Option<&mut TemplateKeys> {
        match self {
            NotifyConfig::Webhook(c) => Some(&mut c.text),
            NotifyConfig::Slack(c) => Some(&mut c.text),
            NotifyConfig::Teams(c) => Some(&mut c.text),
            NotifyConfig::Discord(c) => Some(&mut c.text),
            NotifyConfig::Matrix(c) => Some(&mut c.text),
            NotifyConfig::Telegram(c) => Some(&mut c.text),
            NotifyConfig::Ntfy(c) => Some(&mut c.text),
            NotifyConfig::Pushover(c) => Some(&mut c.text),
            NotifyConfig::Email(_)
            | NotifyConfig::Zmq(_)
            | NotifyConfig::Command(_)
            | NotifyConfig::PagerDuty(_)
            | NotifyConfig::Opsgenie(_)
            | NotifyConfig::Alertmanager(_) => None,
        }
    }

    /// How this channel groups notifications into digests; `None`: one
    /// message per notification.
    pub fn grouping(&self) -> Option<Grouping> {
        let route = self.route();
        let (wait, max) = match self {
            NotifyConfig::Email(_) => (DIGEST_WAIT, EMAIL_DIGEST_MAX),
            NotifyConfig::Slack(_)
            | NotifyConfig::Teams(_)
            | NotifyConfig::Discord(_)
            | NotifyConfig::Matrix(_)
            | NotifyConfig::Telegram(_)
            | NotifyConfig::Ntfy(_)
            | NotifyConfig::Pushover(_) => (DIGEST_WAIT, CHAT_DIGEST_MAX),
            NotifyConfig::Webhook(_) | NotifyConfig::Command(_) => (None, CHAT_DIGEST_MAX),
            NotifyConfig::Zmq(_)
            | NotifyConfig::PagerDuty(_)
            | NotifyConfig::Opsgenie(_)
            | NotifyConfig::Alertmanager(_) => return None,
        };
        let wait = match route.group_wait {
            Some(GroupWait::Off) => None,
            Some(GroupWait::After(d)) => Some(d),
            None => wait,
        }?;
        Some(Grouping {
            wait,
            max: route.group_max.unwrap_or(max),
        })
    }

    /// Whether this kind can send digests (alert services and the stream
    /// keep one alert per incident).
    pub fn takes_digests(&self) -> bool {
        !matches!(
            self,
            NotifyConfig::Zmq(_)
                | NotifyConfig::PagerDuty(_)
                | NotifyConfig::Opsgenie(_)
                | NotifyConfig::Alertmanager(_)
        )
    }

    /// Whether a JSON template is the whole payload (text templates are
    /// the message's text everywhere).
    pub fn takes_json_template(&self) -> bool {
        matches!(
            self,
            NotifyConfig::Webhook(_)
                | NotifyConfig::Slack(_)
                | NotifyConfig::Teams(_)
                | NotifyConfig::Discord(_)
        )
    }

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
