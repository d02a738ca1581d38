//! Pages for people, rendered from templates (minijinja, HTML
//! auto-escaping: a job's name or output cannot become markup): `/job/{name}`,
//! a job's runs as a duration chart (server-rendered SVG, no external
//! assets), its success rate and p50/p95 over 7 and 30 days, its last
//! outputs and open incidents.

use std::sync::OnceLock;

use minijinja::{Environment, context};
use serde::Serialize;

use crate::history::{Outcome, RunRecord};
use crate::registry::{JobStatus, JobView};

/// The chart's runs.
pub const CHART_RUNS: usize = 100;
/// The last outputs listed.
pub const RECENT_RUNS: usize = 10;

fn templates() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        // `.html`: every value printed is HTML-escaped.
        let mut env = Environment::new();
        env.add_template("job.html", include_str!("job.html"))
            .unwrap_or_else(|e| panic!("the job page's template: {e:#}"));
        env
    })
}

/// The colours of every job state (one rule each, so a new state cannot
/// go uncoloured: the match is exhaustive).
pub fn state_css() -> String {
    JobStatus::ALL
        .iter()
        .map(|s| {
            let colour = match s {
                JobStatus::Up | JobStatus::Running => "#2e7d32",
                JobStatus::Waiting => "#757575",
                JobStatus::Down | JobStatus::Failed => "#c62828",
                JobStatus::Overrun | JobStatus::Late | JobStatus::Stalled => "#ef6c00",
                JobStatus::TooFast | JobStatus::Slow => "#f9a825",
            };
            format!(".state-{}{{background:{colour}}}", s.name())
        })
        .collect()
}

#[derive(Serialize)]
struct Bar {
    class: &'static str,
    x: String,
    y: String,
    w: String,
    h: String,
    title: String,
}

#[derive(Serialize)]
struct Chart {
    width: u32,
    height: u32,
    base: u32,
    max: String,
    bars: Vec<Bar>,
}

#[derive(Serialize)]
struct Stat {
    days: u32,
    runs: usize,
    success_rate: String,
    p50: String,
    p95: String,
}

#[derive(Serialize)]
struct Row {
    start: String,
    duration: String,
    outcome: &'static str,
    exit: String,
    host: String,
    text: String,
}

fn human_ms(ms: u64) -> String {
    crate::clock::human(std::time::Duration::from_millis(ms))
}

fn when(ms: Option<u64>) -> String {
    ms.map_or_else(
        || "-".into(),
        |ms| crate::notification::rfc3339(ms).replace('T', " "),
    )
}

/// The `p`-th percentile (nearest rank) of sorted `values`.
fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

/// Success rate and p50/p95 of the successful runs' durations, of the
/// runs begun (or, lone, ended) in the last `days` days before `now_ms`.
fn stat(runs: &[RunRecord], days: u32, now_ms: u64) -> Stat {
    let since = now_ms.saturating_sub(u64::from(days) * 86_400_000);
    let window: Vec<&RunRecord> = runs
        .iter()
        .filter(|r| r.started_ms.or(r.ended_ms).is_some_and(|at| at >= since))
        .collect();
    let ended: Vec<&&RunRecord> = window
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Success | Outcome::Fail))
        .collect();
    let good = ended
        .iter()
        .filter(|r| r.outcome == Outcome::Success)
        .count();
    let mut durations: Vec<u64> = ended
        .iter()
        .filter(|r| r.outcome == Outcome::Success)
        .filter_map(|r| r.duration_ms)
        .collect();
    durations.sort_unstable();
    let show = |v: Option<u64>| v.map_or_else(|| "-".into(), human_ms);
    Stat {
        days,
        runs: window.len(),
        success_rate: if ended.is_empty() {
            "-".into()
        } else {
            format!("{:.0} %", 100.0 * good as f64 / ended.len() as f64)
        },
        p50: show(percentile(&durations, 0.5)),
        p95: show(percentile(&durations, 0.95)),
    }
}

/// The last [`CHART_RUNS`] runs as bars, oldest left; `runs` newest first.
fn chart(runs: &[RunRecord]) -> Chart {
    let (width, height, top) = (800u32, 200u32, 16u32);
    let base = height - 4;
    let shown: Vec<&RunRecord> = runs.iter().take(CHART_RUNS).rev().collect();
    let max = shown
        .iter()
        .filter_map(|r| r.duration_ms)
        .max()
        .unwrap_or(0);
    let slot = f64::from(width) / shown.len().max(1) as f64;
    let bars = shown
        .iter()
        .enumerate()
        .map(|(i, r)| {
            // A lone success/fail has no duration: a short mark.
            let h = match (r.duration_ms, max) {
                (Some(d), m) if m > 0 => (d as f64 / m as f64 * f64::from(base - top)).max(2.0),
                _ => 4.0,
            };
            let class = match r.outcome {
                Outcome::Success => "ok",
                Outcome::Fail => "fail",
                Outcome::Overrun => "overrun",
                Outcome::Stalled => "stalled",
            };
            Bar {
                class,
                x: format!("{:.1}", i as f64 * slot + slot * 0.1),
                y: format!("{:.1}", f64::from(base) - h),
                w: format!("{:.1}", (slot * 0.8).max(1.0)),
                h: format!("{h:.1}"),
                title: format!(
                    "{}: {} after {}",
                    when(r.started_ms.or(r.ended_ms)),
                    r.outcome.name(),
                    r.duration_ms.map_or_else(|| "?".into(), human_ms)
                ),
            }
        })
        .collect();
    Chart {
        width,
        height,
        base,
        max: human_ms(max),
        bars,
    }
}

/// `/job/{name}`: `runs` newest first (`None`: no state database).
pub fn job_page(job: &JobView, runs: Option<&[RunRecord]>, now_ms: u64) -> Result<String, String> {
    let history = runs.is_some();
    let runs = runs.unwrap_or_default();
    let recent: Vec<Row> = runs
        .iter()
        .take(RECENT_RUNS)
        .map(|r| Row {
            start: when(r.started_ms.or(r.ended_ms)),
            duration: r.duration_ms.map_or_else(|| "-".into(), human_ms),
            outcome: r.outcome.name(),
            exit: r.exit_code.map_or_else(|| "-".into(), |c| c.to_string()),
            host: crate::printable::one_line(&r.host).into_owned(),
            text: r
                .text
                .as_deref()
                .map(|t| crate::printable::lines(t).into_owned())
                .unwrap_or_default(),
        })
        .collect();
    let incidents: Vec<_> = job
        .incidents
        .iter()
        .map(|i| context! { event => i.event.name(), id => i.id })
        .collect();
    templates()
        .get_template("job.html")
        .and_then(|t| {
            t.render(context! {
                job => context! {
                    name => crate::printable::one_line(&job.name),
                    state => job.state.name(),
                    schedule => job.schedule,
                    last_kind => job.last_kind,
                    last_seen => when(job.last_seen_ms),
                    next_deadline => when(job.next_deadline_ms),
                    incidents => incidents,
                },
                state_css => minijinja::Value::from_safe_string(state_css()),
                history => history,
                chart => chart(runs),
                stats => [stat(runs, 7, now_ms), stat(runs, 30, now_ms)],
                recent => recent,
            })
        })
        .map_err(|e| format!("{e:#}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(started_s: u64, secs: u64, outcome: Outcome) -> RunRecord {
        RunRecord {
            job: "etl".into(),
            run_id: Some(crate::history::run_id_text(started_s)),
            host: "db-1".into(),
            pid: 1,
            started_ms: Some(started_s * 1000),
            ended_ms: Some((started_s + secs) * 1000),
            duration_ms: Some(secs * 1000),
            outcome,
            exit_code: (outcome == Outcome::Fail).then_some(3),
            text: Some(format!("<b>{outcome:?}</b>")),
        }
    }

    #[test]
    fn stats_count_the_window_and_take_percentiles_of_successes() {
        let now = 40 * 86_400_000;
        let mut runs: Vec<RunRecord> = (1..=20)
            .map(|i| run(40 * 86_400 - i * 3600, i, Outcome::Success))
            .collect();
        runs.push(run(40 * 86_400 - 25 * 3600, 500, Outcome::Fail));
        // Older than 7 days, inside 30.
        runs.push(run(40 * 86_400 - 10 * 86_400, 1000, Outcome::Success));
        let week = stat(&runs, 7, now);
        assert_eq!(week.runs, 21);
        assert_eq!(week.success_rate, "95 %");
        assert_eq!(week.p50, "10s");
        assert_eq!(week.p95, "19s");
        let month = stat(&runs, 30, now);
        assert_eq!(month.runs, 22);
        assert_eq!(month.p95, "20s");
    }

    #[test]
    fn the_page_escapes_what_senders_wrote_and_marks_failed_runs() {
        let job = JobView {
            name: "etl<script>".into(),
            state: JobStatus::Failed,
            schedule: "every 1h".into(),
            period_ms: 3_600_000,
            grace_ms: 0,
            last_seen_ms: Some(1000),
            last_kind: Some("fail".into()),
            last_host: None,
            next_deadline_ms: None,
            runs_in_progress: 0,
            incidents: Vec::new(),
            silence: None,
            history: Vec::new(),
            origin: "config".into(),
            declared: None,
        };
        let runs = [run(200, 5, Outcome::Fail), run(100, 10, Outcome::Success)];
        let html = job_page(&job, Some(&runs), 300_000).unwrap();
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("etl&lt;script&gt;"), "{html}");
        assert!(!html.contains("<b>"), "{html}");
        assert_eq!(html.matches("<rect class=").count(), 2);
        assert!(html.contains("<rect class=\"fail\""), "{html}");
        for state in JobStatus::ALL {
            assert!(
                html.contains(&format!(".state-{}{{", state.name())),
                "{state}"
            );
        }
    }
}
