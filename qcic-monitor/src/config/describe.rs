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
        if !job.depends_on.is_empty() {
            let _ = writeln!(
                out,
                "  depends on {} (their down or failed holds its alarms back)",
                job.depends_on.join(", ")
            );
        }
        if let (Some(after), Some(within)) = (&job.after, job.start_within) {
            let _ = writeln!(
                out,
                "  starts within {} after each success of {after}",
                humantime::format_duration(within)
            );
        }
        for (k, step) in job.escalate.iter().enumerate() {
            let _ = writeln!(
                out,
                "  escalation {}: after {} unacknowledged, to {}",
                k + 1,
                humantime::format_duration(step.after),
                step.notify.join(", ")
            );
        }
    }
    for window in &config.maintenance {
        let jobs = match &window.jobs {
            None => "every job".to_owned(),
            Some(patterns) => patterns
                .iter()
                .map(glob::Pattern::as_str)
                .collect::<Vec<_>>()
                .join(", "),
        };
        let _ = writeln!(
            out,
            "maintenance {} ({}, for {}): {jobs}",
            window.name,
            window.opens,
            humantime::format_duration(window.duration)
        );
        if let Some(until) = window.open_until(now_ms) {
            let _ = writeln!(
                out,
                "  open now, until {}",
                crate::notification::rfc3339(until)
            );
        }
        for opening in window.opens.next_fires(now_ms, 3) {
            let _ = writeln!(out, "  opens {opening}");
        }
    }
    // Each template as the sample notification renders it: what the
    // operator will read at 02:00, seen now.
    let sample = crate::template::sample();
    for (i, channel) in config.notify.iter().enumerate() {
        match channel.grouping() {
            Some(g) => {
                let _ = writeln!(
                    out,
                    "notify {}: digests: a group goes out {} after its first notification, at most {} in one",
                    channel.name(i),
                    humantime::format_duration(g.wait),
                    g.max
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "notify {}: one message per notification",
                    channel.name(i)
                );
            }
        }
        let templates: Vec<(&str, &crate::template::Template)> = match channel {
            NotifyConfig::Email(email) => [("subject", &email.subject), ("body", &email.body)]
                .into_iter()
                .filter_map(|(part, t)| Some((part, t.as_ref()?)))
                .collect(),
            other => match other.template_keys().and_then(|k| k.compiled.as_ref()) {
                Some(t) => vec![("template", t)],
                None => Vec::new(),
            },
        };
        for (part, template) in templates {
            let _ = writeln!(
                out,
                "notify {} {part}, rendered for a sample `failed`:",
                channel.name(i)
            );
            let text = match template.render(&sample) {
                Ok(rendered) => rendered.into_text(),
                Err(e) => format!("(cannot render: {e})"),
            };
            for line in text.lines() {
                let _ = writeln!(out, "  | {line}");
            }
        }
    }
    out
}
