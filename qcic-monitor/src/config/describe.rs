//! `qcic-monitor check`: the configuration in words.

use super::*;

/// `qcic-monitor check`: the configuration in words, with the next fire
/// times of every cron job after `now_ms`.
pub fn describe(config: &Config, now_ms: u64) -> String {
    use std::fmt::Write as _;
    let mut out = format!(
        "{}: ok: watcher {}, {} jobs, {} notify channels\n",
        config.source,
        config.monitor.id,
        config.jobs.len(),
        config.notify.len()
    );
    for job in &config.jobs {
        let _ = writeln!(out, "job {job}");
        let timers = [
            ("start_within", job.start_within),
            ("max_runtime", job.max_runtime),
            ("stall_after", job.stall_after),
            ("min_runtime", job.min_runtime),
            ("repeat", job.repeat),
        ];
        for (name, value) in timers {
            if let Some(d) = value {
                let _ = writeln!(out, "  {name} {}", humantime::format_duration(d));
            }
        }
        for fire in job.schedule.next_fires(now_ms, 5) {
            let _ = writeln!(out, "  next {fire}");
        }
    }
    out
}
