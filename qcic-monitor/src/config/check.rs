//! The checks, one function per section: each error names the key (as a
//! path such as `job[1].every`) and the reason.

use super::*;

/// Checks `[farm]` and `[[peer]]`: both or neither, distinct ids, sane timings.
pub(super) fn check_farm(
    farm: Option<RawFarm>,
    peers: Vec<RawPeer>,
    id: &str,
) -> Result<Option<FarmConfig>, (String, String)> {
    let Some(farm) = farm else {
        if peers.is_empty() {
            return Ok(None);
        }
        return Err((
            "peer".into(),
            "[[peer]] entries need a [farm] table with this watcher's gossip address".into(),
        ));
    };
    let addr = |key: &str, text: &str| {
        text.parse::<std::net::SocketAddr>().map_err(|e| {
            (
                key.to_owned(),
                format!("{text:?} is not an address such as \"10.0.0.5:7790\": {e}"),
            )
        })
    };
    let gossip = addr("farm.gossip", &farm.gossip)?;
    let advertise = match &farm.advertise {
        Some(text) => addr("farm.advertise", text)?,
        None => gossip,
    };
    // Peers gossip to, and are answered at, the advertised address.
    if advertise.ip().is_unspecified() {
        let key = if farm.advertise.is_some() {
            "farm.advertise"
        } else {
            "farm.gossip"
        };
        return Err((
            key.into(),
            format!(
                "{advertise} is no address peers can reach: set [farm] advertise to this watcher's address as its peers list it"
            ),
        ));
    }
    if peers.is_empty() {
        return Err((
            "peer".into(),
            "a [farm] needs at least one [[peer]] (id and gossip address)".into(),
        ));
    }
    let mut seen = HashSet::new();
    let mut checked = Vec::with_capacity(peers.len());
    for (i, peer) in peers.into_iter().enumerate() {
        if peer.id.trim().is_empty() {
            return Err((format!("peer[{i}].id"), "must not be empty".into()));
        }
        if peer.id == id {
            return Err((
                format!("peer[{i}].id"),
                format!("{:?} is this watcher's own id (monitor.id)", peer.id),
            ));
        }
        if !seen.insert(peer.id.clone()) {
            return Err((
                format!("peer[{i}].id"),
                format!("peer {:?} is listed twice", peer.id),
            ));
        }
        if !peer.gossip.contains(':') {
            return Err((
                format!("peer[{i}].gossip"),
                format!("{:?} needs a port, such as \"10.0.0.6:7790\"", peer.gossip),
            ));
        }
        checked.push(PeerConfig {
            id: peer.id,
            gossip: peer.gossip,
        });
    }
    let gossip_interval = farm.gossip_interval.unwrap_or(GOSSIP_INTERVAL);
    if gossip_interval < Duration::from_millis(10) {
        return Err((
            "farm.gossip_interval".into(),
            "must be at least 10ms".into(),
        ));
    }
    let dead_after = farm
        .dead_after
        .unwrap_or(gossip_interval * DEAD_AFTER_INTERVALS);
    if dead_after < gossip_interval * 3 {
        return Err((
            "farm.dead_after".into(),
            format!(
                "must be at least 3 gossip intervals ({}): shorter, a live peer is taken for dead between two rounds",
                humantime::format_duration(gossip_interval * 3)
            ),
        ));
    }
    let peer_timeout = farm.peer_timeout.unwrap_or(PEER_TIMEOUT);
    if peer_timeout < gossip_interval * 2 {
        return Err((
            "farm.peer_timeout".into(),
            format!(
                "must be at least 2 gossip intervals ({}): a lower rank must be able to learn that a higher one notified",
                humantime::format_duration(gossip_interval * 2)
            ),
        ));
    }
    let isolation_jobs = farm.isolation_jobs.unwrap_or(ISOLATION_JOBS);
    if isolation_jobs == 0 {
        return Err(("farm.isolation_jobs".into(), "must be at least 1".into()));
    }
    Ok(Some(FarmConfig {
        gossip,
        advertise,
        peers: checked,
        gossip_interval,
        peer_timeout,
        dead_after,
        isolation_jobs,
        cluster: farm.cluster.unwrap_or_else(|| CLUSTER.into()),
        key: farm_key(farm.key_file.as_deref(), farm.key_env.as_deref())?,
    }))
}

/// A secret file that every user of the machine may read is refused: with
/// the farm key, any of them could speak for the farm.
fn private_to_owner_and_group(path: &std::path::Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o007 != 0 {
        return Err(format!(
            "{} is open to every user (mode {:o}): chmod 600 it (640 to share it with the service's group)",
            path.display(),
            mode & 0o777
        ));
    }
    Ok(())
}

/// `[farm] key_file` or `key_env`: a Z85 key of 32 bytes, as `qcic-monitor
/// keygen --farm` writes it.
fn farm_key(
    file: Option<&std::path::Path>,
    env: Option<&str>,
) -> Result<Option<FarmKey>, (String, String)> {
    let (key, text) = match (file, env) {
        (None, None) => return Ok(None),
        (Some(_), Some(_)) => {
            return Err((
                "farm.key_env".into(),
                "give key_file or key_env, not both".into(),
            ));
        }
        (Some(path), None) => {
            private_to_owner_and_group(path).map_err(|r| ("farm.key_file".to_owned(), r))?;
            (
                "farm.key_file",
                read_key_file(path, "farm-key").map_err(|r| ("farm.key_file".to_owned(), r))?,
            )
        }
        (None, Some(var)) => (
            "farm.key_env",
            std::env::var(var).map_err(|_| {
                (
                    "farm.key_env".to_owned(),
                    format!("the environment variable {var} is not set"),
                )
            })?,
        ),
    };
    // Never echo the key itself.
    let bytes = z85::decode(text.trim()).map_err(|_| {
        (
            key.to_owned(),
            "the farm key is not 40 Z85 characters (qcic-monitor keygen --farm writes one)"
                .to_owned(),
        )
    })?;
    let bytes: [u8; 32] = bytes.try_into().map_err(|_| {
        (
            key.to_owned(),
            "the farm key is not 32 bytes (40 Z85 characters; qcic-monitor keygen --farm writes one)".to_owned(),
        )
    })?;
    Ok(Some(FarmKey(bytes)))
}

pub(super) type Checked = (
    MonitorConfig,
    Vec<JobConfig>,
    Vec<NotifyConfig>,
    Option<DeclareConfig>,
    Vec<MaintenanceWindow>,
);

impl RawConfig {
    pub(super) fn check(self) -> Result<Checked, (String, String)> {
        let RawConfig {
            monitor,
            http,
            curve,
            farm,
            peer,
            job,
            notify,
            declare,
            maintenance,
        } = self;
        let mut monitor = monitor;
        let unknown_jobs = monitor.unknown_jobs;
        let default_escalation = monitor.escalate.take();
        let mut monitor = check_monitor(RawSections {
            monitor,
            http,
            curve,
            farm,
            peer,
        })?;
        let escalate_default = match default_escalation.clone() {
            Some(raw) => super::noise::check_escalation(raw, "monitor.escalate")?,
            None => Vec::new(),
        };
        let jobs = check_jobs(job, monitor.curve.is_some(), default_escalation.as_ref())?;
        let mut notify = check_notify(notify, &jobs)?;
        for channel in &mut notify {
            match channel {
                NotifyConfig::Slack(slack) => slack.status_url.clone_from(&monitor.public_url),
                NotifyConfig::Alertmanager(am) => am.status_url.clone_from(&monitor.public_url),
                _ => {}
            }
        }
        let channels: Vec<String> = notify.iter().enumerate().map(|(i, n)| n.name(i)).collect();
        super::noise::check_step_channels(&escalate_default, &channels, "monitor.escalate")?;
        super::noise::check_links(&jobs, &channels)?;
        let maintenance = super::noise::check_maintenance(maintenance)?;
        let mut declare = declare::check_declare(declare, monitor.curve.is_some(), channels)?;
        if let Some(declare) = &mut declare {
            declare.escalate = escalate_default;
        }
        monitor.unknown_jobs = unknown_jobs.unwrap_or(if declare.is_some() {
            UnknownJobs::Count
        } else {
            UnknownJobs::Alert
        });
        Ok((monitor, jobs, notify, declare, maintenance))
    }
}

/// The sections that make the `[monitor]` part of the checked configuration.
struct RawSections {
    monitor: RawMonitor,
    http: Option<RawHttp>,
    curve: Option<RawCurve>,
    farm: Option<RawFarm>,
    peer: Vec<RawPeer>,
}

/// `[monitor]`, `[http]`, `[curve]`, `[farm]` and `[[peer]]`.
fn check_monitor(mut raw: RawSections) -> Result<MonitorConfig, (String, String)> {
    let id = match raw.monitor.id {
        Some(id) if id.trim().is_empty() => {
            return Err(("monitor.id".into(), "must not be empty".into()));
        }
        Some(id) => id,
        None => gethostname::gethostname().to_string_lossy().into_owned(),
    };
    let listen = raw
        .monitor
        .listen
        .unwrap_or_else(|| vec![DEFAULT_LISTEN.to_owned()]);
    if listen.is_empty() {
        return Err((
            "monitor.listen".into(),
            "needs at least one endpoint, such as \"tcp://0.0.0.0:7700\"".into(),
        ));
    }
    for (i, endpoint) in listen.iter().enumerate() {
        check_endpoint(endpoint).map_err(|r| (format!("monitor.listen[{i}]"), r))?;
    }
    for (key, value) in [
        ("monitor.max_connections", raw.monitor.max_connections),
        (
            "monitor.max_connections_per_address",
            raw.monitor.max_connections_per_address,
        ),
    ] {
        if value == Some(0) {
            return Err((key.into(), "must be at least 1".into()));
        }
    }
    let sender_ping = raw.monitor.sender_ping.unwrap_or(SENDER_PING);
    if !sender_ping.is_zero()
        && !(Duration::from_secs(1)..=Duration::from_secs(3600)).contains(&sender_ping)
    {
        return Err((
            "monitor.sender_ping".into(),
            "must be between 1s and 1h, or 0s to turn pings off".into(),
        ));
    }
    let curve = raw.curve.map(RawCurve::check).transpose()?;
    let farm = check_farm(raw.farm, raw.peer, &id)?;
    let public_url = match raw.http.as_ref().and_then(|h| h.public_url.clone()) {
        Some(url) if !(url.starts_with("https://") || url.starts_with("http://")) => {
            return Err((
                "http.public_url".into(),
                format!(
                    "{url:?} must be the status page's http(s) URL, such as \"https://qcic.example.com/\""
                ),
            ));
        }
        url => url.map(|u| u.trim_end_matches('/').to_owned()),
    };
    let metrics_jobs = raw
        .http
        .as_ref()
        .and_then(|h| h.metrics_jobs)
        .unwrap_or(crate::metrics::METRICS_JOBS);
    let run_duration_buckets = match raw
        .http
        .as_ref()
        .and_then(|h| h.run_duration_buckets.clone())
    {
        None => crate::metrics::DURATION_BUCKETS.to_vec(),
        Some(bounds) => {
            let rising = bounds.windows(2).all(|w| w[0] < w[1]);
            if bounds.is_empty()
                || bounds.len() > 50
                || !rising
                || bounds.iter().any(|b| !b.is_finite() || *b <= 0.0)
            {
                return Err((
                    "http.run_duration_buckets".into(),
                    "must be 1 to 50 positive numbers of seconds, rising, such as [1, 10, 60, 600, 3600]".into(),
                ));
            }
            bounds
        }
    };
    let tokens = match raw.http.as_mut().and_then(|h| h.tokens.take()) {
        Some(raw) => super::noise::check_tokens(raw)?,
        None => Vec::new(),
    };
    let metrics_public = raw
        .http
        .as_ref()
        .and_then(|h| h.metrics_public)
        .unwrap_or(false);
    let http = match raw.http {
        None => None,
        Some(h) => {
            let text = h.listen.unwrap_or_else(|| HTTP_LISTEN.into());
            Some(text.parse::<std::net::SocketAddr>().map_err(|e| {
                (
                    "http.listen".to_owned(),
                    format!("{text:?} is not an address such as \"127.0.0.1:7780\": {e}"),
                )
            })?)
        }
    };
    let control = raw
        .monitor
        .control
        .unwrap_or_else(|| default_control_path(&id));
    let state = match raw.monitor.state.as_deref() {
        Some("off") => None,
        Some(path) => Some(PathBuf::from(path)),
        None => Some(default_state_path(&id)),
    };
    let history = match raw.monitor.history.as_deref() {
        None => Some(HISTORY),
        Some("forever") => None,
        Some(text) => Some(parse_duration(text).map_err(|e| {
            (
                "monitor.history".to_owned(),
                format!("{e} (or \"forever\": runs are then kept by count only)"),
            )
        })?),
    };
    let history_runs = raw.monitor.history_runs.unwrap_or(HISTORY_RUNS);
    if history_runs == 0 {
        return Err((
            "monitor.history_runs".into(),
            "must be at least 1 (the history keeps the newest runs of each job)".into(),
        ));
    }
    Ok(MonitorConfig {
        state,
        history,
        history_runs,
        id,
        listen,
        max_unknown_jobs: raw.monitor.max_unknown_jobs.unwrap_or(MAX_UNKNOWN_JOBS),
        max_rate_per_sender: raw
            .monitor
            .max_rate_per_sender
            .unwrap_or(MAX_RATE_PER_SENDER),
        max_connections: raw.monitor.max_connections,
        max_connections_per_address: raw
            .monitor
            .max_connections_per_address
            .unwrap_or(MAX_CONNECTIONS_PER_ADDRESS),
        sender_ping,
        max_clock_skew: raw.monitor.max_clock_skew.unwrap_or(MAX_CLOCK_SKEW),
        // Set by the caller, which knows whether `[declare]` is there.
        unknown_jobs: UnknownJobs::Alert,
        curve,
        control,
        http,
        public_url,
        metrics_jobs,
        run_duration_buckets,
        farm,
        tokens,
        metrics_public,
    })
}

/// Every `[[job]]`; `curve`: whether a `[curve]` table is set (a job may
/// pin sender keys only then).
fn check_jobs(
    raw_jobs: Vec<RawJob>,
    curve: bool,
    escalate: Option<&Vec<RawEscalation>>,
) -> Result<Vec<JobConfig>, (String, String)> {
    let mut names = HashSet::new();
    let mut jobs = Vec::with_capacity(raw_jobs.len());
    for (i, mut job) in raw_jobs.into_iter().enumerate() {
        // `escalate = []` opts a job out of `[monitor] escalate`.
        if job.escalate.is_none() {
            job.escalate = escalate.cloned();
        }
        if names.contains(&job.name) {
            return Err((
                format!("job[{i}].name"),
                format!("job {:?} is defined twice", job.name),
            ));
        }
        names.insert(job.name.clone());
        jobs.push(check_job(job, curve).map_err(|(key, reason)| {
            let path = if key.is_empty() {
                format!("job[{i}]")
            } else {
                format!("job[{i}].{key}")
            };
            (path, reason)
        })?);
    }
    Ok(jobs)
}

/// One job, from a `[[job]]` table or a declaration; errors name the key
/// within the job (`every`, `senders[1]`, ...).
pub(super) fn check_job(mut job: RawJob, curve: bool) -> Result<JobConfig, (String, String)> {
    {
        qcic_sdk::message::check_job_name(&job.name)
            .map_err(|r| ("name".to_owned(), format!("{:?} {r}", job.name)))?;
        let schedule = match (job.every, &job.cron) {
            (Some(every), None) => {
                if every.is_zero() {
                    return Err(("every".to_owned(), "must be longer than 0s".into()));
                }
                if job.timezone.is_some() {
                    return Err((
                        "timezone".to_owned(),
                        "applies to cron schedules only".into(),
                    ));
                }
                Schedule::Every(every)
            }
            (None, Some(pattern)) => {
                Schedule::cron(pattern, job.timezone.as_deref().unwrap_or(TIMEZONE))
                    .map_err(|(key, reason)| (key.to_owned(), reason))?
            }
            (Some(_), Some(_)) => {
                return Err(("cron".to_owned(), "give every or cron, not both".into()));
            }
            // A step of a chain may have no clock schedule: it is
            // judged by its chain (and its runs) alone.
            (None, None) if job.after.is_some() => Schedule::Every(super::MAX_DURATION),
            (None, None) => {
                return Err((
                    String::new(),
                    "needs a schedule: every = \"10m\" or cron = \"30 2 * * *\" (or after = \"job\")".into(),
                ));
            }
        };
        if let Some(after) = &job.after {
            if *after == job.name {
                return Err(("after".to_owned(), "names the job itself".into()));
            }
            if job.start_within.is_none() {
                return Err((
                    "after".to_owned(),
                    "needs start_within: how soon after each success of the job it follows a start is due".into(),
                ));
            }
        }
        let depends_on = job.depends_on.take().unwrap_or_default();
        for (k, parent) in depends_on.iter().enumerate() {
            if *parent == job.name {
                return Err((format!("depends_on[{k}]"), "names the job itself".into()));
            }
        }
        let escalate = match job.escalate.take() {
            Some(raw) => super::noise::check_escalation(raw, "escalate")?,
            None => Vec::new(),
        };
        if job.max_runtime.is_some_and(|d| d.is_zero()) {
            return Err(("max_runtime".to_owned(), "must be longer than 0s".into()));
        }
        let senders = match job.senders {
            None => None,
            Some(_) if !curve => {
                return Err((
                    "senders".to_owned(),
                    "pins the job to CURVE sender keys, so it needs a [curve] table".into(),
                ));
            }
            Some(keys) => Some(
                keys.iter()
                    .enumerate()
                    .map(|(k, key)| public_key(key).map_err(|r| (format!("senders[{k}]"), r)))
                    .collect::<Result<HashSet<String>, _>>()?,
            ),
        };
        for (key, value) in [
            ("start_within", job.start_within),
            ("stall_after", job.stall_after),
            ("min_runtime", job.min_runtime),
            ("repeat", job.repeat),
        ] {
            if value.is_some_and(|d| d.is_zero()) {
                return Err((key.to_owned(), "must be longer than 0s".into()));
            }
        }
        if let Some(factor) = job.slow_after {
            if !(factor.is_finite() && factor > 1.0 && factor <= 1000.0) {
                return Err((
                    "slow_after".to_owned(),
                    format!(
                        "{factor} is not a factor above 1 such as 3.0 (a run three times its usual length is slow)"
                    ),
                ));
            }
        }
        for (key, value) in [
            ("alert_after_failures", job.alert_after_failures),
            ("recover_after_successes", job.recover_after_successes),
        ] {
            if value == Some(0) {
                return Err((key.to_owned(), "must be at least 1".into()));
            }
        }
        Ok(JobConfig {
            name: job.name,
            schedule,
            grace: job.grace.unwrap_or(GRACE),
            max_runtime: job.max_runtime,
            senders,
            start_within: job.start_within,
            stall_after: job.stall_after,
            min_runtime: job.min_runtime,
            alert_after_failures: job.alert_after_failures.unwrap_or(ALERT_AFTER_FAILURES),
            recover_after_successes: job
                .recover_after_successes
                .unwrap_or(RECOVER_AFTER_SUCCESSES),
            repeat: job.repeat,
            notify: job.notify,
            slow_after: job.slow_after,
            depends_on,
            after: job.after,
            escalate,
        })
    }
}

/// Every `[[notify]]` channel, and the channel names jobs give.
fn check_notify(
    raw_notify: Vec<RawNotify>,
    jobs: &[JobConfig],
) -> Result<Vec<NotifyConfig>, (String, String)> {
    let mut notify = Vec::with_capacity(raw_notify.len());
    for (i, channel) in raw_notify.into_iter().enumerate() {
        match channel {
            RawNotify::Email(email) => {
                check_email(&email).map_err(|(k, r)| (format!("notify[{i}].{k}"), r))?;
                notify.push(NotifyConfig::Email(email));
            }
            RawNotify::Zmq(zmq) => {
                check_endpoint(&zmq.publish).map_err(|r| (format!("notify[{i}].publish"), r))?;
                notify.push(NotifyConfig::Zmq(zmq));
            }
            RawNotify::Webhook(hook) => {
                let indirect = hook.url.starts_with("env:") || hook.url.starts_with("file:");
                if !(indirect
                    || hook.url.starts_with("http://")
                    || hook.url.starts_with("https://"))
                {
                    return Err((
                        format!("notify[{i}].url"),
                        format!(
                            "{} must start with http:// or https:// (or be env:VAR or file:PATH)",
                            redacted_url(&hook.url)
                        ),
                    ));
                }
                notify.push(NotifyConfig::Webhook(hook));
            }
            RawNotify::Slack(slack) => {
                check_webhook_url(&slack.url).map_err(|r| (format!("notify[{i}].url"), r))?;
                notify.push(NotifyConfig::Slack(slack));
            }
            RawNotify::Opsgenie(og) => {
                if og.api_key.trim().is_empty() {
                    return Err((
                        format!("notify[{i}].api_key"),
                        "must not be empty (better: env:VAR or file:PATH)".into(),
                    ));
                }
                for (event, level) in &og.priority {
                    check_event(event).map_err(|r| (format!("notify[{i}].priority.{event}"), r))?;
                    if !crate::notify::opsgenie::PRIORITIES.contains(&level.as_str()) {
                        return Err((
                            format!("notify[{i}].priority.{event}"),
                            format!("{level:?} is not an Opsgenie priority (P1 to P5)"),
                        ));
                    }
                }
                if let Some(url) = &og.url {
                    check_webhook_url(url).map_err(|r| (format!("notify[{i}].url"), r))?;
                }
                notify.push(NotifyConfig::Opsgenie(og));
            }
            RawNotify::Pushover(pushover) => {
                for (key, value) in [("token", &pushover.token), ("user", &pushover.user)] {
                    if value.trim().is_empty() {
                        return Err((
                            format!("notify[{i}].{key}"),
                            "must not be empty (better: env:VAR or file:PATH)".into(),
                        ));
                    }
                }
                for (event, level) in &pushover.priority {
                    check_event(event).map_err(|r| (format!("notify[{i}].priority.{event}"), r))?;
                    if !(-2..=1).contains(level) {
                        return Err((
                            format!("notify[{i}].priority.{event}"),
                            format!(
                                "{level} is not -2 to 1 (2, emergency, needs acknowledgement settings qcic does not send)"
                            ),
                        ));
                    }
                }
                if let Some(url) = &pushover.url {
                    check_webhook_url(url).map_err(|r| (format!("notify[{i}].url"), r))?;
                }
                notify.push(NotifyConfig::Pushover(pushover));
            }
            RawNotify::Telegram(telegram) => {
                if telegram.token.trim().is_empty() {
                    return Err((
                        format!("notify[{i}].token"),
                        "needs the bot's token (better: env:VAR or file:PATH)".into(),
                    ));
                }
                let chat = telegram.chat_id.trim();
                let numeric = chat.strip_prefix('-').unwrap_or(chat);
                if !(chat.starts_with('@') && chat.len() > 1
                    || !numeric.is_empty() && numeric.bytes().all(|b| b.is_ascii_digit()))
                {
                    return Err((
                        format!("notify[{i}].chat_id"),
                        format!("{chat:?} is neither a numeric chat id nor @channelusername"),
                    ));
                }
                if let Some(url) = &telegram.url {
                    check_webhook_url(url).map_err(|r| (format!("notify[{i}].url"), r))?;
                }
                notify.push(NotifyConfig::Telegram(telegram));
            }
            RawNotify::Matrix(matrix) => {
                if !(matrix.homeserver.starts_with("https://")
                    || matrix.homeserver.starts_with("http://"))
                {
                    return Err((
                        format!("notify[{i}].homeserver"),
                        format!(
                            "{} must be the homeserver's https:// URL",
                            redacted_url(&matrix.homeserver)
                        ),
                    ));
                }
                if !(matrix.room.starts_with('!') && matrix.room.contains(':')) {
                    return Err((
                        format!("notify[{i}].room"),
                        format!(
                            "{:?} is not a room id such as \"!abcdef:example.org\" (an alias cannot be sent to)",
                            matrix.room
                        ),
                    ));
                }
                if matrix.access_token.trim().is_empty() {
                    return Err((
                        format!("notify[{i}].access_token"),
                        "must not be empty (better: env:VAR or file:PATH)".into(),
                    ));
                }
                notify.push(NotifyConfig::Matrix(matrix));
            }
            RawNotify::Teams(teams) => {
                check_webhook_url(&teams.url).map_err(|r| (format!("notify[{i}].url"), r))?;
                notify.push(NotifyConfig::Teams(teams));
            }
            RawNotify::Discord(discord) => {
                check_webhook_url(&discord.url).map_err(|r| (format!("notify[{i}].url"), r))?;
                notify.push(NotifyConfig::Discord(discord));
            }
            RawNotify::Ntfy(ntfy) => {
                check_ntfy(&ntfy).map_err(|(k, r)| (format!("notify[{i}].{k}"), r))?;
                notify.push(NotifyConfig::Ntfy(ntfy));
            }
            RawNotify::Alertmanager(am) => {
                check_alertmanager(&am).map_err(|(k, r)| (format!("notify[{i}].{k}"), r))?;
                notify.push(NotifyConfig::Alertmanager(am));
            }
            RawNotify::PagerDuty(pd) => {
                check_pagerduty(&pd).map_err(|(k, r)| (format!("notify[{i}].{k}"), r))?;
                notify.push(NotifyConfig::PagerDuty(pd));
            }
            RawNotify::Command(cmd) => {
                if cmd.command.is_empty() {
                    return Err((
                        format!("notify[{i}].command"),
                        "needs the program, e.g. [\"/usr/local/bin/send-sms\", \"--to\", \"+44...\"]".into(),
                    ));
                }
                notify.push(NotifyConfig::Command(cmd));
            }
        }
    }
    for (i, channel) in notify.iter_mut().enumerate() {
        compile_templates(channel, i)?;
        check_grouping(channel, i)?;
    }
    let names: Vec<String> = notify.iter().enumerate().map(|(i, n)| n.name(i)).collect();
    for (i, name) in names.iter().enumerate() {
        if names[..i].contains(name) {
            return Err((
                format!("notify[{i}].name"),
                format!("{name:?} is used twice"),
            ));
        }
    }
    for (i, job) in jobs.iter().enumerate() {
        for (k, channel) in job.notify.iter().flatten().enumerate() {
            if !names.contains(channel) {
                return Err((
                    format!("job[{i}].notify[{k}]"),
                    format!("no [[notify]] channel is named {channel:?} (names: {names:?})"),
                ));
            }
        }
    }
    Ok(notify)
}

impl RawCurve {
    pub(super) fn check(self) -> Result<CurveConfig, (String, String)> {
        if zmq::has("curve") != Some(true) {
            return Err((
                "curve".into(),
                "this build's libzmq has no CURVE support (link Debian's libzmq5, see .cargo/config.toml)".into(),
            ));
        }
        let secret = match (&self.secret_key_file, &self.secret_key_env) {
            (Some(path), None) => read_key_file(path, "secret-key")
                .map_err(|r| ("curve.secret_key_file".to_owned(), r))?,
            (None, Some(var)) => std::env::var(var).map_err(|_| {
                (
                    "curve.secret_key_env".to_owned(),
                    format!("the environment variable {var} is not set"),
                )
            })?,
            (Some(_), Some(_)) => {
                return Err((
                    "curve.secret_key_env".into(),
                    "give secret_key_file or secret_key_env, not both".into(),
                ));
            }
            (None, None) => {
                return Err((
                    "curve".into(),
                    "needs secret_key_file or secret_key_env (the secret key is never written in the config itself)".into(),
                ));
            }
        };
        let secret_key: [u8; 32] = qcic_sdk::decode_curve_key(&secret).ok_or_else(|| {
            let key = if self.secret_key_file.is_some() {
                "curve.secret_key_file"
            } else {
                "curve.secret_key_env"
            };
            // Never echo the secret itself.
            (
                key.to_owned(),
                "the secret key is not 40 Z85 characters".to_owned(),
            )
        })?;
        let mut allowed: Option<HashSet<String>> = None;
        if let Some(keys) = self.allowed_senders {
            let set = allowed.get_or_insert_with(HashSet::new);
            for (i, key) in keys.iter().enumerate() {
                set.insert(
                    public_key(key).map_err(|r| (format!("curve.allowed_senders[{i}]"), r))?,
                );
            }
        }
        if let Some(path) = self.allowed_senders_file {
            let keys = crate::keys::read_public_keys_file(&path)
                .map_err(|r| ("curve.allowed_senders_file".to_owned(), r))?;
            allowed.get_or_insert_with(HashSet::new).extend(keys);
        }
        Ok(CurveConfig {
            secret_key,
            allowed_senders: allowed,
        })
    }
}

pub(super) fn check_endpoint(endpoint: &str) -> Result<(), String> {
    let ok = ["tcp://", "ipc://", "inproc://"]
        .iter()
        .any(|scheme| endpoint.starts_with(scheme) && endpoint.len() > scheme.len());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{endpoint:?} is not a ZeroMQ endpoint (tcp://HOST:PORT, ipc://PATH)"
        ))
    }
}

pub(super) fn check_email(email: &EmailConfig) -> Result<(), (&'static str, String)> {
    // Shown without a password it may hold (smtp://user:password@host).
    if !(email.smtp.starts_with("smtp://") || email.smtp.starts_with("smtps://")) {
        return Err((
            "smtp",
            format!(
                "{} must start with smtp:// or smtps://",
                redacted_url(&email.smtp)
            ),
        ));
    }
    // Read as the channel will read it, so a bad tls= or host stops the
    // check, not only the start.
    crate::notify::smtp::SmtpTransport::from_url(&email.smtp)
        .map_err(|e| ("smtp", format!("{}: {e}", redacted_url(&email.smtp))))?;
    email
        .from
        .parse::<lettre::message::Mailbox>()
        .map_err(|e| {
            (
                "from",
                format!("{:?} is not an email address: {e}", email.from),
            )
        })?;
    if email.to.is_empty() {
        return Err(("to", "needs at least one address".into()));
    }
    for to in &email.to {
        to.parse::<lettre::message::Mailbox>()
            .map_err(|e| ("to", format!("{to:?} is not an email address: {e}")))?;
    }
    if email.password_env.is_some() && email.password_file.is_some() {
        return Err((
            "password_file",
            "give password_env or password_file, not both".into(),
        ));
    }
    Ok(())
}

/// `kind = "pagerduty"`: a routing key, an http(s) URL if one is given, and
/// severities PagerDuty takes for events qcic has.
fn check_pagerduty(pd: &PagerDutyConfig) -> Result<(), (String, String)> {
    if pd.routing_key.trim().is_empty() {
        return Err((
            "routing_key".into(),
            "needs the integration's routing key (or \"env:VAR\" / \"file:PATH\")".into(),
        ));
    }
    if let Some(url) = &pd.url {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err((
                "url".into(),
                format!("{} must start with http:// or https://", redacted_url(url)),
            ));
        }
    }
    for (event, level) in &pd.severity {
        check_event(event).map_err(|r| (format!("severity.{event}"), r))?;
        if !crate::notify::pagerduty::SEVERITIES.contains(&level.as_str()) {
            return Err((
                format!("severity.{event}"),
                format!("{level:?} is not a PagerDuty severity (critical, error, warning, info)"),
            ));
        }
    }
    Ok(())
}

/// Digests where a channel can send them, and a sensible size.
fn check_grouping(channel: &NotifyConfig, i: usize) -> Result<(), (String, String)> {
    let route = channel.route();
    let grouped =
        !matches!(route.group_wait, None | Some(GroupWait::Off)) || route.group_max.is_some();
    if route.group_max.is_some() && channel.grouping().is_none() {
        return Err((
            format!("notify[{i}].group_max"),
            "this channel sends one message per notification; set group_wait for digests".into(),
        ));
    }
    if grouped && !channel.takes_digests() {
        return Err((
            format!("notify[{i}].group_wait"),
            "this channel keeps one alert per incident and sends no digests (group alerts in the service itself)".into(),
        ));
    }
    if let Some(max) = route.group_max {
        if !(2..=10_000).contains(&max) {
            return Err((
                format!("notify[{i}].group_max"),
                format!("{max} is not between 2 and 10000"),
            ));
        }
    }
    if let Some(GroupWait::After(wait)) = route.group_wait {
        if wait > Duration::from_secs(3600) {
            return Err((
                format!("notify[{i}].group_wait"),
                "holds alarms back for more than an hour".into(),
            ));
        }
    }
    Ok(())
}

/// Reads, compiles and tries (with the sample notification) a channel's
/// templates; an error names the channel, the file and the line.
fn compile_templates(channel: &mut NotifyConfig, i: usize) -> Result<(), (String, String)> {
    use crate::template::{Format, Template};
    let name = channel.name(i);
    let source = |key: &str, inline: &Option<String>, file: &Option<PathBuf>| match (inline, file) {
        (Some(_), Some(_)) => Err((
            format!("notify[{i}].{key}_file"),
            format!("give {key} or {key}_file, not both"),
        )),
        (Some(text), None) => Ok(Some((
            key.to_owned(),
            format!("notify[{i}].{key}"),
            text.clone(),
        ))),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                (
                    format!("notify[{i}].{key}_file"),
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            Ok(Some((
                path.display().to_string(),
                format!("notify[{i}].{key}_file"),
                text,
            )))
        }
        (None, None) => Ok(None),
    };
    let compile = |(origin, key, text): (String, String, String), format: Format| {
        Template::compile(&origin, text, format).map_err(|reason| {
            let place = if origin.contains('/') || origin.contains('.') {
                format!("{origin} ")
            } else {
                String::new()
            };
            (key, format!("channel {name:?}: {place}{reason}"))
        })
    };
    let takes_json = channel.takes_json_template();
    // A chat service's payload is an object; a webhook takes any JSON.
    let needs_object = takes_json && !matches!(channel, NotifyConfig::Webhook(_));
    if let NotifyConfig::Email(email) = channel {
        if let Some(found) = source("subject_template", &email.subject_template, &None)? {
            email.subject = Some(compile(found, Format::Text)?);
        }
        if let Some(found) = source(
            "body_template",
            &email.body_template,
            &email.body_template_file,
        )? {
            email.body = Some(compile(found, Format::Text)?);
        }
        return Ok(());
    }
    let Some(keys) = channel.template_keys_mut() else {
        return Ok(());
    };
    let format = Format::named(
        keys.template_format.as_deref(),
        keys.template_file.as_deref(),
    )
    .map_err(|r| (format!("notify[{i}].template_format"), r))?;
    if format == Format::Json && !takes_json {
        return Err((
            format!("notify[{i}].template_format"),
            "this channel takes a text template (the message's text); JSON templates are for webhook, slack, teams and discord".into(),
        ));
    }
    if let Some(found) = source("template", &keys.template, &keys.template_file)? {
        let key = found.1.clone();
        let template = compile(found, format)?;
        if needs_object && format == Format::Json {
            template
                .renders_objects()
                .map_err(|reason| (key, format!("channel {name:?}: {reason}")))?;
        }
        keys.compiled = Some(template);
    } else if keys.template_format.is_some() {
        return Err((
            format!("notify[{i}].template_format"),
            "there is no template (template or template_file)".into(),
        ));
    }
    Ok(())
}

/// Labels every qcic alert sets itself.
pub const ALERTMANAGER_LABELS: [&str; 5] = ["alertname", "job", "event", "watcher", "incident"];

/// `kind = "alertmanager"`: at least one http(s) URL, label names
/// Alertmanager takes and qcic does not set itself, a sensible resend.
fn check_alertmanager(am: &AlertmanagerConfig) -> Result<(), (String, String)> {
    if am.url.is_empty() {
        return Err(("url".into(), "needs at least one Alertmanager URL".into()));
    }
    for (k, url) in am.url.iter().enumerate() {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err((
                format!("url[{k}]"),
                format!(
                    "{} must be an Alertmanager's http(s) URL, such as http://alertmanager:9093",
                    redacted_url(url)
                ),
            ));
        }
    }
    for (name, value) in &am.labels {
        let mut chars = name.chars();
        let valid = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err((
                format!("labels.{name}"),
                "is not a label name Alertmanager takes ([a-zA-Z_][a-zA-Z0-9_]*)".into(),
            ));
        }
        if ALERTMANAGER_LABELS.contains(&name.as_str()) {
            return Err((
                format!("labels.{name}"),
                format!(
                    "qcic sets this label itself ({})",
                    ALERTMANAGER_LABELS.join(", ")
                ),
            ));
        }
        if value.is_empty() {
            return Err((
                format!("labels.{name}"),
                "an empty value is the same as no label to Alertmanager".into(),
            ));
        }
    }
    if am.resend < Duration::from_secs(1) {
        return Err(("resend".into(), "must be at least 1s".into()));
    }
    if am.username.is_some() != am.password.is_some() {
        return Err((
            "password".into(),
            "username and password go together (basic authentication)".into(),
        ));
    }
    Ok(())
}

/// `kind = "ntfy"`: a topic URL, and priorities and tags for events qcic has.
fn check_ntfy(ntfy: &NtfyConfig) -> Result<(), (String, String)> {
    let indirect = ntfy.url.starts_with("env:") || ntfy.url.starts_with("file:");
    if !(indirect || ntfy.url.starts_with("http://") || ntfy.url.starts_with("https://")) {
        return Err((
            "url".into(),
            format!(
                "{} must be the topic's http(s) URL, such as https://ntfy.sh/TOPIC (or env:VAR / file:PATH)",
                redacted_url(&ntfy.url)
            ),
        ));
    }
    for (name, level) in &ntfy.priority {
        check_event(name).map_err(|r| (format!("priority.{name}"), r))?;
        if !crate::notify::ntfy::PRIORITIES.contains(&level.as_str())
            && !matches!(level.as_str(), "1" | "2" | "3" | "4" | "5")
        {
            return Err((
                format!("priority.{name}"),
                format!(
                    "{level:?} is not an ntfy priority (min, low, default, high, urgent, or 1 to 5)"
                ),
            ));
        }
    }
    for (name, tags) in &ntfy.tags {
        check_event(name).map_err(|r| (format!("tags.{name}"), r))?;
        if let Some(bad) = tags
            .iter()
            .find(|t| t.is_empty() || t.contains(',') || !t.is_ascii())
        {
            return Err((
                format!("tags.{name}"),
                format!("{bad:?}: a tag is ASCII without commas"),
            ));
        }
    }
    Ok(())
}

/// A chat webhook's URL: http(s), or (better: its path is the credential)
/// `env:VAR` / `file:PATH`.
fn check_webhook_url(url: &str) -> Result<(), String> {
    let indirect = url.starts_with("env:") || url.starts_with("file:");
    if indirect || url.starts_with("https://") || url.starts_with("http://") {
        return Ok(());
    }
    Err(format!(
        "{} must be the webhook's https:// URL (better: env:VAR or file:PATH, since its path is the credential)",
        redacted_url(url)
    ))
}

/// The name of a per-event setting (`severity = { down = ... }`): an event
/// qcic sends.
fn check_event(name: &str) -> Result<(), String> {
    use crate::notification::Event;
    if Event::from_name(name).is_some() {
        return Ok(());
    }
    let names: Vec<&str> = Event::ALL.iter().map(|e| e.name()).collect();
    Err(format!("is not an event qcic sends ({})", names.join(", ")))
}
