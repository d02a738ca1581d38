//! The file's shape as serde reads it: every key optional, unknown keys
//! refused. `check` turns it into the checked [`super::Config`].

use super::*;

// ---- the file's shape, as serde reads it ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    pub(super) monitor: RawMonitor,
    #[serde(default)]
    pub(super) curve: Option<RawCurve>,
    #[serde(default)]
    pub(super) http: Option<RawHttp>,
    #[serde(default)]
    pub(super) job: Vec<RawJob>,
    #[serde(default)]
    pub(super) notify: Vec<RawNotify>,
    #[serde(default)]
    pub(super) farm: Option<RawFarm>,
    #[serde(default)]
    pub(super) peer: Vec<RawPeer>,
    #[serde(default)]
    pub(super) declare: Option<RawDeclare>,
    #[serde(default)]
    pub(super) maintenance: Vec<RawMaintenance>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMaintenance {
    pub(super) name: String,
    pub(super) cron: String,
    pub(super) timezone: Option<String>,
    #[serde(deserialize_with = "duration")]
    pub(super) duration: Duration,
    pub(super) jobs: Option<Vec<String>>,
}

/// One step of `escalate = [{ after = "15m", notify = ["pager"] }]`.
#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEscalation {
    #[serde(deserialize_with = "duration")]
    pub(super) after: Duration,
    pub(super) notify: Vec<String>,
}

/// One of `[http] tokens`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawToken {
    pub(super) name: String,
    pub(super) token_file: Option<PathBuf>,
    pub(super) token_env: Option<String>,
    pub(super) scope: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDeclare {
    pub(super) allow: Option<bool>,
    pub(super) jobs: Option<Vec<String>>,
    pub(super) senders: Option<Vec<String>>,
    pub(super) max_jobs: Option<usize>,
    #[serde(default, deserialize_with = "opt_duration")]
    pub(super) min_every: Option<Duration>,
    pub(super) notify: Option<Vec<String>>,
    #[serde(default, deserialize_with = "opt_duration")]
    pub(super) retire_after: Option<Duration>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFarm {
    pub(super) gossip: String,
    pub(super) advertise: Option<String>,
    #[serde(default, deserialize_with = "opt_duration")]
    pub(super) gossip_interval: Option<Duration>,
    #[serde(default, deserialize_with = "opt_duration")]
    pub(super) peer_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "opt_duration")]
    pub(super) dead_after: Option<Duration>,
    pub(super) isolation_jobs: Option<usize>,
    pub(super) cluster: Option<String>,
    pub(super) key_file: Option<PathBuf>,
    pub(super) key_env: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPeer {
    pub(super) id: String,
    pub(super) gossip: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMonitor {
    pub(super) id: Option<String>,
    pub(super) listen: Option<Vec<String>>,
    pub(super) max_unknown_jobs: Option<usize>,
    pub(super) max_rate_per_sender: Option<u32>,
    pub(super) max_connections: Option<usize>,
    pub(super) max_connections_per_address: Option<usize>,
    #[serde(default, deserialize_with = "opt_duration")]
    pub(super) sender_ping: Option<Duration>,
    #[serde(default, deserialize_with = "opt_duration")]
    pub(super) max_clock_skew: Option<Duration>,
    pub(super) control: Option<PathBuf>,
    pub(super) state: Option<String>,
    pub(super) unknown_jobs: Option<UnknownJobs>,
    /// `"90d"`, or `"forever"`.
    pub(super) history: Option<String>,
    pub(super) history_runs: Option<usize>,
    pub(super) escalate: Option<Vec<RawEscalation>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHttp {
    pub(super) listen: Option<String>,
    pub(super) public_url: Option<String>,
    pub(super) metrics_jobs: Option<usize>,
    pub(super) run_duration_buckets: Option<Vec<f64>>,
    pub(super) tokens: Option<Vec<RawToken>>,
    pub(super) metrics_public: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCurve {
    pub(super) secret_key_file: Option<PathBuf>,
    pub(super) secret_key_env: Option<String>,
    pub(super) allowed_senders: Option<Vec<String>>,
    pub(super) allowed_senders_file: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawJob {
    pub(super) name: String,
    #[serde(default, deserialize_with = "opt_duration")]
    pub(super) every: Option<Duration>,
    pub(super) cron: Option<String>,
    pub(super) timezone: Option<String>,
    #[serde(default, deserialize_with = "opt_duration")]
    pub(super) grace: Option<Duration>,
    #[serde(default, deserialize_with = "opt_duration")]
    pub(super) max_runtime: Option<Duration>,
    pub(super) senders: Option<Vec<String>>,
    #[serde(default, deserialize_with = "opt_duration")]
    pub(super) start_within: Option<Duration>,
    #[serde(default, deserialize_with = "opt_duration")]
    pub(super) stall_after: Option<Duration>,
    #[serde(default, deserialize_with = "opt_duration")]
    pub(super) min_runtime: Option<Duration>,
    pub(super) alert_after_failures: Option<u32>,
    pub(super) recover_after_successes: Option<u32>,
    #[serde(default, deserialize_with = "opt_duration")]
    pub(super) repeat: Option<Duration>,
    pub(super) notify: Option<Vec<String>>,
    pub(super) slow_after: Option<f64>,
    pub(super) depends_on: Option<Vec<String>>,
    pub(super) after: Option<String>,
    pub(super) escalate: Option<Vec<RawEscalation>>,
}

#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub(super) enum RawNotify {
    Email(EmailConfig),
    Zmq(ZmqConfig),
    Webhook(WebhookConfig),
    Command(CommandConfig),
    #[serde(rename = "pagerduty")]
    PagerDuty(PagerDutyConfig),
    Ntfy(NtfyConfig),
    Slack(SlackConfig),
    Discord(DiscordConfig),
    Telegram(TelegramConfig),
    Pushover(PushoverConfig),
    Opsgenie(OpsgenieConfig),
    Teams(TeamsConfig),
    Matrix(MatrixConfig),
    Alertmanager(AlertmanagerConfig),
}

pub(super) fn duration<'de, D: Deserializer<'de>>(de: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(de)?;
    parse_duration(&text).map_err(serde::de::Error::custom)
}

pub(super) fn opt_duration<'de, D: Deserializer<'de>>(de: D) -> Result<Option<Duration>, D::Error> {
    duration(de).map(Some)
}
