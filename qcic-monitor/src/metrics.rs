//! `/metrics`: OpenMetrics text from the Prometheus project's own client
//! (`prometheus-client`), which owns the format, its escaping and its
//! histograms; this module only says what there is to show. Each scrape
//! is one [`Collector`] over a snapshot of the counters, the jobs and the
//! run figures.
//!
//! Per job, in the shapes people already write batch-job alerts for (the
//! pushgateway convention): `qcic_job_last_success_timestamp_seconds`,
//! `qcic_job_last_run_duration_seconds`, `qcic_job_last_run_success`,
//! `qcic_run_duration_seconds` (a histogram) and `qcic_job_up`. Bounded:
//! past `[http] metrics_jobs` jobs the per-job series are left out and
//! `qcic_metrics_jobs_left_out` says how many.

use std::collections::HashMap;
use std::sync::Mutex;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::registry::{HostView, JobStatus, JobView};
use crate::stats::{DeclareRefusal, DropReason, Stats};

/// The default run-duration buckets, seconds: a second to a day.
pub const DURATION_BUCKETS: [f64; 12] = [
    1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 21_600.0, 86_400.0,
];
/// The most jobs with per-job series, by default.
pub const METRICS_JOBS: usize = 10_000;

/// What the metrics keep of each job's runs.
#[derive(Debug, Clone, Default)]
pub struct JobRuns {
    /// When its last successful run ended, unix ms.
    pub last_success_ms: Option<u64>,
    /// Its last run's duration, ms (a lone success/fail has none).
    pub last_duration_ms: Option<u64>,
    /// Whether its last run succeeded.
    pub last_ok: bool,
    sum_s: f64,
    count: u64,
    /// Per bucket (the last is +Inf), not cumulative.
    buckets: Vec<u64>,
}

/// The run figures of every job (at most `cap` jobs), fed as runs end.
#[derive(Debug)]
pub struct RunMetrics {
    table: Mutex<RunTable>,
}

#[derive(Debug)]
struct RunTable {
    cap: usize,
    bounds: Vec<f64>,
    jobs: HashMap<String, JobRuns>,
}

impl Default for RunMetrics {
    fn default() -> RunMetrics {
        RunMetrics {
            table: Mutex::new(RunTable {
                cap: METRICS_JOBS,
                bounds: DURATION_BUCKETS.to_vec(),
                jobs: HashMap::new(),
            }),
        }
    }
}

impl RunMetrics {
    fn table(&self) -> std::sync::MutexGuard<'_, RunTable> {
        self.table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `[http] metrics_jobs` and `run_duration_buckets` (seconds, rising).
    pub fn configure(&self, cap: usize, bounds: &[f64]) {
        let mut table = self.table();
        table.cap = cap;
        table.bounds = bounds.to_vec();
        table.jobs.clear();
    }

    /// A run of `job` ended at `ended_ms` after `duration_ms`.
    pub fn observe(&self, job: &str, ok: bool, ended_ms: u64, duration_ms: Option<u64>) {
        let mut table = self.table();
        let slots = table.bounds.len() + 1;
        if !table.jobs.contains_key(job) && table.jobs.len() >= table.cap {
            return;
        }
        let bounds = table.bounds.clone();
        let runs = table.jobs.entry(job.to_owned()).or_insert_with(|| JobRuns {
            buckets: vec![0; slots],
            ..JobRuns::default()
        });
        runs.last_ok = ok;
        // A lone success/fail has no duration: the last known one stays.
        if duration_ms.is_some() {
            runs.last_duration_ms = duration_ms;
        }
        if ok {
            runs.last_success_ms = Some(ended_ms);
        }
        if let Some(ms) = duration_ms {
            let seconds = ms as f64 / 1000.0;
            let slot = bounds
                .iter()
                .position(|b| seconds <= *b)
                .unwrap_or(bounds.len());
            runs.buckets[slot] += 1;
            runs.sum_s += seconds;
            runs.count += 1;
        }
    }

    /// Keeps the figures of these jobs only: a job no longer watched
    /// (removed by a reload, retired, forgotten) gives its slot back.
    fn keep_only(&self, jobs: &[JobView]) {
        let names: std::collections::HashSet<&str> = jobs.iter().map(|j| j.name.as_str()).collect();
        self.table()
            .jobs
            .retain(|name, _| names.contains(name.as_str()));
    }

    fn snapshot(&self) -> (Vec<f64>, usize, HashMap<String, JobRuns>) {
        let table = self.table();
        (table.bounds.clone(), table.cap, table.jobs.clone())
    }
}

type Labels = Vec<(&'static str, String)>;

/// A label value as the exposition format must have it: backslash,
/// double quote and line feed escaped. The client library writes label
/// values as given (its encoder does not escape them), and a sender's
/// host name may hold any of the three.
fn label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A gauge's value: a count reads as one (`3`, not `3.0`).
#[derive(Clone, Copy)]
enum Value {
    Count(i64),
    Real(f64),
}

impl From<usize> for Value {
    fn from(n: usize) -> Value {
        Value::Count(i64::try_from(n).unwrap_or(i64::MAX))
    }
}

impl From<u64> for Value {
    fn from(n: u64) -> Value {
        Value::Count(i64::try_from(n).unwrap_or(i64::MAX))
    }
}

impl From<f64> for Value {
    fn from(x: f64) -> Value {
        Value::Real(x)
    }
}

/// (labels, sum, count, per-bucket counts with their upper bounds).
type HistogramRow = (Labels, f64, u64, Vec<(f64, u64)>);

enum Samples {
    Counter(Vec<(Labels, u64)>),
    Gauge(Vec<(Labels, Value)>),
    Histogram(Vec<HistogramRow>),
}

struct Family {
    name: &'static str,
    help: String,
    samples: Samples,
}

/// One scrape's families, encoded by the client library.
struct Scrape(Vec<Family>);

impl std::fmt::Debug for Scrape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Scrape").field(&self.0.len()).finish()
    }
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for family in &self.0 {
            match &family.samples {
                Samples::Counter(rows) => {
                    // The library writes the `_total` suffix itself.
                    let name = family.name.trim_end_matches("_total");
                    let mut metric =
                        encoder.encode_descriptor(name, &family.help, None, MetricType::Counter)?;
                    for (labels, value) in rows {
                        // No labels: no `{}` either.
                        if labels.is_empty() {
                            metric.encode_counter::<NoLabelSet, _, u64>(value, None)?;
                        } else {
                            metric
                                .encode_family(labels)?
                                .encode_counter::<NoLabelSet, _, u64>(value, None)?;
                        }
                    }
                }
                Samples::Gauge(rows) => {
                    let mut metric = encoder.encode_descriptor(
                        family.name,
                        &family.help,
                        None,
                        MetricType::Gauge,
                    )?;
                    for (labels, value) in rows {
                        let gauge =
                            |sample: &mut prometheus_client::encoding::MetricEncoder<'_>| {
                                match value {
                                    Value::Count(n) => sample.encode_gauge(n),
                                    Value::Real(x) => sample.encode_gauge(x),
                                }
                            };
                        if labels.is_empty() {
                            gauge(&mut metric)?;
                        } else {
                            gauge(&mut metric.encode_family(labels)?)?;
                        }
                    }
                }
                Samples::Histogram(rows) => {
                    let mut metric = encoder.encode_descriptor(
                        family.name,
                        &family.help,
                        None,
                        MetricType::Histogram,
                    )?;
                    for (labels, sum, count, buckets) in rows {
                        metric
                            .encode_family(labels)?
                            .encode_histogram::<NoLabelSet>(*sum, *count, buckets, None)?;
                    }
                }
            }
        }
        Ok(())
    }
}

fn one<T>(value: T) -> Vec<(Labels, T)> {
    vec![(Vec::new(), value)]
}

/// The exposition: every counter, the jobs by state, host clock skews,
/// and the per-job run series.
pub fn exposition(jobs: &[JobView], hosts: &[HostView], stats: &Stats, hosts_total: u64) -> String {
    let get = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    let counter = |name, help: &str, rows| Family {
        name,
        help: help.to_owned(),
        samples: Samples::Counter(rows),
    };
    let gauge = |name, help: &str, rows| Family {
        name,
        help: help.to_owned(),
        samples: Samples::Gauge(rows),
    };
    let count = |n: usize| Value::from(n);
    let mut f = vec![
        counter(
            "qcic_messages_received_total",
            "Messages decoded and accepted, by kind.",
            qcic_sdk::Kind::ALL
                .iter()
                .enumerate()
                .map(|(i, kind)| (vec![("kind", kind.to_string())], get(&stats.by_kind[i])))
                .collect(),
        ),
        counter(
            "qcic_frames_dropped_total",
            "Frames dropped, by reason.",
            DropReason::ALL
                .iter()
                .map(|r| (vec![("reason", r.name().to_owned())], stats.dropped(*r)))
                .collect(),
        ),
        counter(
            "qcic_declarations_refused_total",
            "Declarations refused, by reason.",
            DeclareRefusal::ALL
                .iter()
                .map(|r| {
                    (
                        vec![("reason", r.name().to_owned())],
                        stats.declarations_refused(*r),
                    )
                })
                .collect(),
        ),
        gauge(
            "qcic_declared_jobs",
            "Jobs watched because they declared themselves.",
            one(count(jobs.iter().filter(|j| j.declared.is_some()).count())),
        ),
        gauge(
            "qcic_jobs",
            "Jobs by state.",
            JobStatus::ALL
                .iter()
                .map(|s| {
                    (
                        vec![("state", s.name().to_owned())],
                        count(jobs.iter().filter(|j| j.state == *s).count()),
                    )
                })
                .collect(),
        ),
    ];
    let channels = stats
        .channels
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    f.push(counter(
        "qcic_notifications_total",
        "Notifications handled by each channel, by result.",
        channels
            .iter()
            .flat_map(|(channel, (sent, failed))| {
                [
                    (
                        vec![("channel", label(channel)), ("result", "sent".into())],
                        *sent,
                    ),
                    (
                        vec![("channel", label(channel)), ("result", "failed".into())],
                        *failed,
                    ),
                ]
            })
            .collect(),
    ));
    f.push(counter(
        "qcic_notifications_raised_total",
        "Notifications raised (before channels).",
        one(get(&stats.notifications)),
    ));
    f.push(counter(
        "qcic_digests_total",
        "Digests delivered: messages carrying several notifications.",
        one(get(&stats.digests)),
    ));
    f.push(gauge(
        "qcic_ingest_queue_depth",
        "Messages decoded and waiting for the checker (ingest lag).",
        one(Value::from(get(&stats.inbound_queued))),
    ));
    f.push(counter(
        "qcic_local_connections_closed_total",
        "Connections to the HTTP port or the control socket closed before they were answered (idle at the cap, too slow, past the time limit).",
        vec![
            (vec![("server", "http".into())], get(&stats.http_connections_closed)),
            (vec![("server", "control".into())], get(&stats.control_connections_closed)),
        ],
    ));
    f.push(counter(
        "qcic_http_refused_total",
        "HTTP requests refused by the token check: no token, an unknown one, or a read token on a write.",
        one(get(&stats.http_refused)),
    ));
    f.push(gauge(
        "qcic_hosts_known",
        "Sender hosts in the clock-skew table (qcic_host_clock_skew_seconds shows the 100 largest skews).",
        one(Value::from(hosts_total)),
    ));
    f.push(gauge(
        "qcic_ingest_connections",
        "Connections to the ingest port now.",
        one(Value::from(get(&stats.ingest_connections))),
    ));
    f.push(counter(
        "qcic_ingest_connections_closed_total",
        "Ingest connections the connection guard closed (over a limit, or nothing valid sent in time).",
        one(get(&stats.ingest_connections_closed)),
    ));
    f.push(counter(
        "qcic_state_write_failures_total",
        "State database transactions refused (disk full); their writes are kept and retried.",
        one(get(&stats.state_write_failures)),
    ));
    f.push(gauge(
        "qcic_host_clock_skew_seconds",
        "Watcher clock minus the sender host's (positive: the host is behind).",
        hosts
            .iter()
            .map(|h| {
                (
                    vec![("host", label(&h.host))],
                    Value::from(h.skew_ms as f64 / 1000.0),
                )
            })
            .collect(),
    ));
    let (live, configured) = stats.peer_counts();
    f.push(gauge(
        "qcic_peers_seen",
        "Other watchers of the farm currently seen.",
        one(Value::from(live)),
    ));
    f.push(gauge(
        "qcic_peers_configured",
        "Other watchers of the farm configured.",
        one(Value::from(configured)),
    ));
    for (name, help, value) in [
        (
            "qcic_farm_suppressed_total",
            "Notifications skipped because a peer had sent them.",
            &stats.farm_suppressed,
        ),
        (
            "qcic_farm_took_over_total",
            "Notifications sent in place of a higher-ranked watcher.",
            &stats.farm_took_over,
        ),
        (
            "qcic_farm_duplicate_sends_total",
            "Notifications known to have been sent by more than one watcher.",
            &stats.farm_duplicate_sends,
        ),
        (
            "qcic_farm_gossip_refused_total",
            "Farm gossip datagrams refused: not sealed with the farm key, altered, replayed or stale.",
            &stats.farm_gossip_refused,
        ),
        (
            "qcic_curve_refused_total",
            "CURVE connections refused by the ZAP handler.",
            &stats.curve_refused,
        ),
        (
            "qcic_handshake_failed_total",
            "Failed handshakes on the CURVE socket.",
            &stats.handshake_failed,
        ),
        (
            "qcic_unknown_job_messages_total",
            "Messages for jobs neither configured nor declared.",
            &stats.unknown_job_messages,
        ),
        (
            "qcic_unknown_job_alerts_total",
            "unknown_job notifications raised (one per new name, rate-limited).",
            &stats.unknown_job_alerts,
        ),
        (
            "qcic_declarations_taken_total",
            "Declarations that added a job or changed a declared job.",
            &stats.declarations_taken,
        ),
        (
            "qcic_declarations_unchanged_total",
            "Declarations that changed nothing (a job re-declaring itself).",
            &stats.declarations_unchanged,
        ),
        (
            "qcic_declared_retired_total",
            "Declared jobs removed after [declare] retire_after of silence.",
            &stats.declared_retired,
        ),
        (
            "qcic_skewed_messages_total",
            "Messages from senders whose clock is off.",
            &stats.skewed_messages,
        ),
        (
            "qcic_stale_messages_total",
            "Messages delivered late and older than what was known of their job (not taken as life).",
            &stats.stale_messages,
        ),
        (
            "qcic_config_reloads_total",
            "Configuration reloads taken (SIGHUP).",
            &stats.config_reloads,
        ),
        (
            "qcic_config_reload_failures_total",
            "Configuration reloads refused; the running configuration stayed.",
            &stats.config_reload_failures,
        ),
    ] {
        f.push(counter(name, help, one(get(value))));
    }
    per_job(jobs, stats, &mut f);
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Scrape(f)));
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
    out
}

/// The per-job series, for at most `metrics_jobs` jobs.
fn per_job(jobs: &[JobView], stats: &Stats, f: &mut Vec<Family>) {
    stats.runs.keep_only(jobs);
    let (bounds, cap, runs) = stats.runs.snapshot();
    // `qcic_job_up` for the first `cap` jobs; the run series for every
    // job with figures (at most `cap` of them are kept).
    let shown: Vec<&JobView> = jobs.iter().take(cap).collect();
    let with_runs: Vec<&JobView> = jobs.iter().filter(|j| runs.contains_key(&j.name)).collect();
    let job = |j: &JobView| vec![("job", label(&j.name))];
    let mut last_success = Vec::new();
    let mut last_duration = Vec::new();
    let mut last_ok = Vec::new();
    let mut histograms = Vec::new();
    for j in &with_runs {
        let Some(r) = runs.get(&j.name) else { continue };
        if let Some(ms) = r.last_success_ms {
            last_success.push((job(j), Value::from(ms as f64 / 1000.0)));
        }
        if let Some(ms) = r.last_duration_ms {
            last_duration.push((job(j), Value::from(ms as f64 / 1000.0)));
        }
        last_ok.push((job(j), Value::Count(i64::from(r.last_ok))));
        let buckets: Vec<(f64, u64)> = bounds
            .iter()
            .copied()
            .chain([f64::MAX])
            .zip(r.buckets.iter().copied())
            .collect();
        histograms.push((job(j), r.sum_s, r.count, buckets));
    }
    let up = |j: &&JobView| {
        matches!(
            j.state,
            JobStatus::Up | JobStatus::Running | JobStatus::Slow
        )
    };
    f.push(Family {
        name: "qcic_job_up",
        help: "1 while the job is heard in time and its last run did not fail (up, running or slow), else 0.".into(),
        samples: Samples::Gauge(
            shown
                .iter()
                .map(|j| (job(j), Value::Count(i64::from(up(j)))))
                .collect(),
        ),
    });
    f.push(Family {
        name: "qcic_job_last_success_timestamp_seconds",
        help: "When the job's last successful run ended (unix seconds).".into(),
        samples: Samples::Gauge(last_success),
    });
    f.push(Family {
        name: "qcic_job_last_run_duration_seconds",
        help: "How long the job's last run took.".into(),
        samples: Samples::Gauge(last_duration),
    });
    f.push(Family {
        name: "qcic_job_last_run_success",
        help: "1 if the job's last run succeeded, else 0.".into(),
        samples: Samples::Gauge(last_ok),
    });
    f.push(Family {
        name: "qcic_run_duration_seconds",
        help: "Durations of the job's runs since the watcher started.".into(),
        samples: Samples::Histogram(histograms),
    });
    f.push(Family {
        name: "qcic_metrics_jobs_left_out",
        help: "Jobs without per-job series: past [http] metrics_jobs.".into(),
        samples: Samples::Gauge(one(Value::from(jobs.len().saturating_sub(shown.len())))),
    });
}
