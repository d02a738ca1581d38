//! Pages for people, rendered from templates (minijinja, HTML
//! auto-escaping: a job's name or output cannot become markup): `/`, the
//! status page (every job, a legend of the states), and `/job/{name}`,
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
        env.add_template("status.html", include_str!("status.html"))
            .unwrap_or_else(|e| panic!("the status page's template: {e:#}"));
        env
    })
}

/// The colours of every job state (one rule each, so a new state cannot
/// go uncoloured: the match is exhaustive).
pub fn state_css() -> String {
    JobStatus::ALL
        .iter()
        .map(|s| {
            // Its own colour each: greens for well, reds for down or
            // failed, oranges and browns for a run gone wrong.
            let colour = match s {
                JobStatus::Waiting => "#757575",
                JobStatus::Up => "#2e7d32",
                JobStatus::Running => "#1565c0",
                JobStatus::Down => "#c62828",
                JobStatus::Failed => "#880e4f",
                JobStatus::Late => "#ef6c00",
                JobStatus::Stalled => "#6d4c41",
                JobStatus::Overrun => "#d84315",
                JobStatus::TooFast => "#6a1b9a",
                JobStatus::Slow => "#9e7700",
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

/// A window's figures as the page shows them.
fn stat(days: u32, w: &crate::history::Window) -> Stat {
    let show = |v: Option<u64>| v.map_or_else(|| "-".into(), human_ms);
    Stat {
        days,
        runs: usize::try_from(w.runs).unwrap_or(usize::MAX),
        success_rate: if w.ended == 0 {
            "-".into()
        } else {
            format!("{:.0} %", 100.0 * w.successes as f64 / w.ended as f64)
        },
        p50: show(w.p50_ms),
        p95: show(w.p95_ms),
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

/// `/job/{name}`: its last runs newest first and its 7- and 30-day
/// figures (`None`: no state database).
pub fn job_page(
    job: &JobView,
    runs: Option<(&[RunRecord], [crate::history::Window; 2])>,
) -> Result<String, String> {
    let history = runs.is_some();
    let (runs, windows) = runs.unwrap_or_default();
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
        .map(|i| {
            context! {
                event => i.event.name(),
                id => i.id,
                acked => i.acked.as_ref().map(|a| context! {
                    by => crate::printable::one_line(&a.by),
                    at => crate::notification::rfc3339(a.at_ms),
                    comment => a.comment.as_deref().map(crate::printable::one_line),
                }),
                held => i.held.as_ref().map(|h| {
                    let mut why = Vec::new();
                    if let Some(w) = &h.maintenance {
                        why.push(format!("maintenance {}", crate::printable::one_line(w)));
                    }
                    if let Some(b) = &h.blocked_by {
                        why.push(format!("{} down or failed", crate::printable::one_line(b)));
                    }
                    if h.silence {
                        why.push("a silence".to_owned());
                    }
                    why.join(", ")
                }),
                escalated => i.escalated,
            }
        })
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
                stats => [stat(7, &windows[0]), stat(30, &windows[1])],
                recent => recent,
            })
        })
        .map_err(|e| format!("{e:#}"))
}

/// What each state means, for the legend.
fn meaning(state: JobStatus) -> &'static str {
    match state {
        JobStatus::Waiting => "never heard from since the watcher started",
        JobStatus::Up => "heard from in time, no run going",
        JobStatus::Running => "a run started and has not ended",
        JobStatus::Down => "not heard from in time",
        JobStatus::Failed => "its last run (or report) failed",
        JobStatus::Late => "a scheduled start did not come",
        JobStatus::Stalled => "a run went quiet",
        JobStatus::Overrun => "a run passed max_runtime",
        JobStatus::TooFast => "a run ended sooner than min_runtime",
        JobStatus::Slow => "a run going on far longer than usual",
    }
}

/// The status page's filter: `?filter=` and the box hide other rows. What
/// is typed goes into the address (`?filter=`), so the page's refresh
/// every 5 s keeps it.
const FILTER_SCRIPT: &str = "(function(){var f=document.getElementById('filter');\
function apply(){var q=f.value.toLowerCase();document.querySelectorAll('tr.job').forEach(function(r){\
r.hidden=q!==''&&r.dataset.job.toLowerCase().indexOf(q)<0&&r.dataset.state.indexOf(q)<0;});}\
function keep(){var u=new URL(location.href);if(f.value){u.searchParams.set('filter',f.value);}\
else{u.searchParams.delete('filter');}history.replaceState(null,'',u);}\
var p=new URLSearchParams(location.search).get('filter');if(p){f.value=p;}\
f.addEventListener('input',function(){apply();keep();});apply();})();";

/// `/`: every job (`jobs`), the sender hosts with the largest skews
/// (`hosts`) and how many more there are.
pub fn status_page(
    watcher: &str,
    jobs: &[JobView],
    hosts: &[crate::registry::HostView],
    more_hosts: u64,
    now_ms: u64,
) -> Result<String, String> {
    let never =
        |ms: Option<u64>| ms.map_or_else(|| "never".to_owned(), crate::notification::rfc3339);
    // Jobs held back by a job they depend on come under that cause.
    let jobs: Vec<_> = crate::registry::under_causes(jobs)
        .into_iter()
        .map(|(i, depth)| (&jobs[i], depth))
        .map(|(j, depth)| {
            context! {
                depth => depth,
                blocked_by => j.blocked_by.iter().map(|b| crate::printable::one_line(b)).collect::<Vec<_>>(),
                maintenance => j.maintenance.as_deref().map(crate::printable::one_line),
                acked => j.incidents.first().and_then(|i| i.acked.as_ref()).map(|a| context! {
                    by => crate::printable::one_line(&a.by),
                    at => never(Some(a.at_ms)),
                    comment => a.comment.as_deref().map(crate::printable::one_line),
                }),
                held => j.incidents.first().is_some_and(|i| i.held.is_some()),
                name => crate::printable::one_line(&j.name),
                link => path_segment(&j.name),
                state => j.state.name(),
                origin => j.origin,
                last => match &j.last_kind {
                    Some(kind) => format!("{kind} at {}", never(j.last_seen_ms)),
                    None => "never".into(),
                },
                next => never(j.next_deadline_ms),
                incident => j.incidents.first().map(|i| context! { event => i.event.name(), id => i.id }),
                history => j.history.iter().rev().map(|(ms, what)| context! {
                    at => never(Some(*ms)),
                    what => crate::printable::one_line(what),
                }).collect::<Vec<_>>(),
                declared => j.declared.as_ref().map(|d| context! {
                    host => crate::printable::one_line(&d.host),
                    at => never(Some(d.at_ms)),
                    spec => crate::printable::one_line(&d.spec),
                }),
            }
        })
        .collect();
    let hosts: Vec<_> = hosts
        .iter()
        .map(|h| {
            context! {
                host => crate::printable::one_line(&h.host),
                skew => format!("{:+.3} s", h.skew_ms as f64 / 1000.0),
                skewed => h.skewed,
                last => never(Some(h.last_seen_ms)),
                messages => h.messages,
            }
        })
        .collect();
    let states: Vec<_> = JobStatus::ALL
        .iter()
        .map(|s| context! { name => s.name(), meaning => meaning(*s) })
        .collect();
    templates()
        .get_template("status.html")
        .and_then(|t| {
            t.render(context! {
                watcher => crate::printable::one_line(watcher),
                now => never(Some(now_ms)),
                jobs => jobs,
                hosts => hosts,
                more_hosts => more_hosts,
                states => states,
                state_css => minijinja::Value::from_safe_string(state_css()),
                script => minijinja::Value::from_safe_string(FILTER_SCRIPT.to_owned()),
            })
        })
        .map_err(|e| format!("{e:#}"))
}

/// `text` as one URL path segment: every byte outside the unreserved set
/// percent-encoded (a job name may hold `/`, `?` or `#`).
pub fn path_segment(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
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
            seq: 0,
        }
    }

    #[test]
    fn the_status_page_has_a_legend_and_a_colour_for_every_state_and_escapes_names() {
        let mut job = view("a/b?<i>");
        job.history = vec![(0, "fail received: <script>x</script>".into())];
        let html = status_page("w<1>", &[job], &[], 3, 0).unwrap();
        let css = state_css();
        let colours: std::collections::HashSet<&str> = css
            .split('}')
            .filter_map(|rule| rule.split("background:").nth(1))
            .collect();
        assert_eq!(
            colours.len(),
            JobStatus::ALL.len(),
            "a colour of its own each"
        );
        for state in JobStatus::ALL {
            assert!(
                html.contains(&format!(".state-{}{{", state.name())),
                "{state}"
            );
            assert!(
                html.contains(&format!(
                    "<span class=\"state state-{0}\" title=",
                    state.name()
                )),
                "{state}"
            );
        }
        assert!(!html.contains("<script>x"), "{html}");
        assert!(html.contains("href=\"/job/a%2Fb%3F%3Ci%3E\""), "{html}");
        assert!(html.contains("w&lt;1&gt;"), "{html}");
        assert!(html.contains("and 3 more hosts"), "{html}");
    }

    fn view(name: &str) -> JobView {
        JobView {
            name: name.into(),
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
            blocked_by: Vec::new(),
            maintenance: None,
            origin: "config".into(),
            declared: None,
        }
    }

    #[test]
    fn the_page_escapes_what_senders_wrote_and_marks_failed_runs() {
        let job = view("etl<script>");
        let runs = [run(200, 5, Outcome::Fail), run(100, 10, Outcome::Success)];
        let windows = [crate::history::Window::default(); 2];
        let html = job_page(&job, Some((&runs, windows))).unwrap();
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
