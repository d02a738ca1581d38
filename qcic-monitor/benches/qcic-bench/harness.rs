//! Helpers shared by every part: child-mode options, clocks, messages,
//! statistics. Ports, paths and process memory come from qcic-testkit.

use std::time::{SystemTime, UNIX_EPOCH};

use qcic_sdk::{Kind, Message};

/// Sentinel jobs: sender k ends with a `fail` for `sentinel-k`, whose alert
/// says everything it sent before was applied (one connection is in order).
pub(crate) const SENTINELS: usize = 8;
pub(crate) const HOST: &str = "bench-host-01";

/// `key=value` arguments of the child modes.
pub(crate) struct Opts(Vec<(String, String)>);

impl Opts {
    pub(crate) fn parse(args: &[String]) -> Opts {
        Opts(
            args.iter()
                .filter_map(|a| a.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        )
    }
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
    pub(crate) fn num(&self, key: &str) -> usize {
        self.get(key).map_or(0, |v| v.parse().unwrap())
    }
}

pub(crate) fn wall_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

pub(crate) fn job_name(i: usize) -> String {
    format!("job-{i:07}")
}

/// A `declare` for `job`: due daily, an hour's grace, runs of at most 2 h
/// (what a nightly job would declare).
pub(crate) fn declaration(job: &str, seq: u64) -> Message {
    let spec = qcic_sdk::JobSpec::every(job, std::time::Duration::from_secs(86_400))
        .grace(std::time::Duration::from_secs(3600))
        .max_runtime(std::time::Duration::from_secs(7200));
    Message {
        run_id: None,
        expect: Some(Box::new(spec.expect)),
        ..message(Kind::Declare, job, seq, None)
    }
}

pub(crate) fn message(kind: Kind, job: &str, seq: u64, text: Option<&str>) -> Message {
    Message {
        kind,
        job: job.into(),
        // A real run id (random u64, as the SDK makes them): its size counts.
        run_id: (kind != Kind::Heartbeat).then(qcic_sdk::new_run_id),
        seq,
        ts_ms: u64::try_from(wall_ns() / 1_000_000).unwrap(),
        host: HOST.into(),
        pid: 4242,
        exit_code: (kind == Kind::Fail).then_some(1),
        text: text.map(str::to_owned),
        expect: None,
    }
}

/// Median, minimum and maximum.
pub(crate) fn spread(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}
