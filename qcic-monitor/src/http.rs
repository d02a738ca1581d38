//! The HTTP endpoint (off unless `[http]` is configured; loopback by
//! default): `/api/jobs`, `/api/incidents`, `/api/hosts`, `/api/peers`,
//! `/metrics` and `/`, a status page.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse, Json};
use axum::routing::get;

use crate::checker::CheckerHandle;
use crate::clock::wall_ms;
use crate::notify::NotificationLog;
use crate::registry::{HostView, JobView};
use crate::stats::Stats;

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    /// This watcher's id.
    pub watcher: String,
    /// Questions to the checker.
    pub checker: CheckerHandle,
    /// The counters.
    pub stats: Arc<Stats>,
    /// The notification log.
    pub notes: Arc<Mutex<NotificationLog>>,
    /// The state database, where the run history is (none: no history).
    pub state: Option<std::path::PathBuf>,
}

/// `?limit=&before=` of `/api/jobs/{job}/runs`.
#[derive(Debug, serde::Deserialize)]
struct RunsQuery {
    limit: Option<usize>,
    before: Option<u64>,
}

/// The most runs one request returns.
const RUNS_MAX: usize = 1000;

/// How long a client has to send a request's headers.
const HEADERS_WITHIN: std::time::Duration = std::time::Duration::from_secs(5);

/// Serves `app` on `listener` until the task is dropped: at most
/// `limits.connections` clients at once, each cut off after
/// `limits.per_connection`, and one that does not send its headers within
/// [`HEADERS_WITHIN`] sooner (axum's own `serve` bounds neither).
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: crate::accept::Limits,
    stats: &Arc<Stats>,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let accept = || async { listener.accept().await.map(|(stream, _)| stream) };
    let closed = crate::accept::Closed::new("http", stats, |s| &s.http_connections_closed);
    let slow = closed.clone();
    let handle = move |stream: tokio::net::TcpStream, asked: crate::accept::Asked| {
        let app = app.clone();
        let slow = slow.clone();
        // Marks the connection busy once its request is in (until then it
        // is idle, and the first to go at the cap).
        let service = hyper::service::service_fn(move |request| {
            asked.store(true, std::sync::atomic::Ordering::Relaxed);
            tower::ServiceExt::oneshot(app.clone(), request)
        });
        async move {
            // One request per connection: an idle kept-alive connection
            // would hold a slot for nothing.
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADERS_WITHIN)
                .keep_alive(false)
                .serve_connection(TokioIo::new(stream), service);
            match connection.await {
                Err(err) if err.is_timeout() => {
                    slow.count("no complete request headers within 5 s");
                }
                Err(err) => tracing::debug!(cause = %err, "HTTP connection ended with an error"),
                Ok(()) => {}
            }
        }
    };
    crate::accept::serve(closed, limits, accept, handle).await;
}

/// The routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/api/jobs", get(api_jobs))
        .route("/api/jobs/{job}/runs", get(api_runs))
        .route("/job/{job}", get(job_page))
        .route("/api/incidents", get(api_incidents))
        .route("/api/hosts", get(api_hosts))
        .route("/api/peers", get(api_peers))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn api_jobs(State(s): State<AppState>) -> Json<Vec<JobView>> {
    Json(s.checker.jobs().await)
}

/// A job's runs, newest first (`limit`, default 100, at most 1000;
/// `before`: begun before this unix ms), read from the state database on a
/// blocking thread.
async fn api_runs(
    State(s): State<AppState>,
    axum::extract::Path(job): axum::extract::Path<String>,
    axum::extract::Query(q): axum::extract::Query<RunsQuery>,
) -> axum::response::Response {
    let Some(path) = s.state.clone() else {
        return (
            axum::http::StatusCode::NOT_FOUND,
            Json(serde_json::json!({"error": "no run history: the state database is off"})),
        )
            .into_response();
    };
    let limit = q.limit.unwrap_or(100).min(RUNS_MAX);
    let read =
        tokio::task::spawn_blocking(move || crate::history::read(&path, &job, limit, q.before))
            .await;
    match read {
        Ok(Ok(runs)) => Json(runs).into_response(),
        Ok(Err(e)) => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"error": e})),
        )
            .into_response(),
        Err(e) => (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            Json(serde_json::json!({"error": e.to_string()})),
        )
            .into_response(),
    }
}

/// `/job/{name}`: the job's page (its runs from the state database).
async fn job_page(
    State(s): State<AppState>,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> axum::response::Response {
    let Some(job) = s.checker.jobs().await.into_iter().find(|j| j.name == name) else {
        return (
            axum::http::StatusCode::NOT_FOUND,
            Html(format!(
                "<p>No job is named {}. <a href=\"/\">all jobs</a></p>",
                esc(&name)
            )),
        )
            .into_response();
    };
    let runs = match s.state.clone() {
        Some(path) => {
            let read = tokio::task::spawn_blocking(move || {
                // Enough for the chart and the 30 days' figures.
                crate::history::read(&path, &name, crate::pages::CHART_RUNS.max(1000), None)
            })
            .await;
            match read {
                Ok(Ok(runs)) => Some(runs),
                // No history yet (an empty database) reads as no runs.
                _ => Some(Vec::new()),
            }
        }
        None => None,
    };
    match crate::pages::job_page(&job, runs.as_deref(), wall_ms()) {
        Ok(html) => Html(html).into_response(),
        Err(e) => (axum::http::StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
    }
}

async fn api_hosts(State(s): State<AppState>) -> Json<Vec<HostView>> {
    Json(s.checker.hosts().await)
}

async fn api_peers(State(s): State<AppState>) -> Json<Vec<crate::stats::PeerView>> {
    Json(crate::stats::peer_views(&s.stats))
}

async fn api_incidents(State(s): State<AppState>) -> impl IntoResponse {
    let open: Vec<serde_json::Value> = s.checker.jobs()
        .await
        .into_iter()
        .flat_map(|j| {
            j.incidents.into_iter().map(move |i| {
                serde_json::json!({"job": j.name, "incident": i.id, "event": i.event, "run_id": i.run_id.map(crate::history::run_id_text)})
            })
        })
        .collect();
    let recent: Vec<serde_json::Value> = {
        let notes = s.notes.lock().unwrap_or_else(PoisonError::into_inner);
        let entries: Vec<_> = notes.entries().collect();
        entries
            .iter()
            .rev()
            .take(100)
            .filter_map(|n| serde_json::to_value(n).ok())
            .collect()
    };
    Json(serde_json::json!({"watcher": s.watcher, "open": open, "recent_notifications": recent}))
}

/// The `# HELP` and `# TYPE` lines of a metric.
/// OpenMetrics text (`metrics::exposition`).
async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    let jobs = s.checker.jobs().await;
    let hosts = s.checker.hosts().await;
    let total = s.stats.hosts_known.load(Ordering::Relaxed);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        crate::metrics::exposition(&jobs, &hosts, &s.stats, total),
    )
}

/// HTML-escaped, control characters written as escapes (they are
/// invisible on a page, and copied from it into a terminal they act).
fn esc(text: &str) -> String {
    crate::printable::one_line(text)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// `text` as one URL path segment: every byte outside the unreserved
/// set percent-encoded (a job name may hold `/`, `?` or `#`).
fn path_segment(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn time(ms: Option<u64>) -> String {
    ms.map_or_else(|| "never".to_owned(), crate::notification::rfc3339)
}

const STYLE: &str = "body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}\
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.35em .6em;border-bottom:1px solid #ddd;vertical-align:top}\
.state{font-weight:600;border-radius:3px;padding:.1em .5em;color:#fff}\
.state-up,.state-running{background:#2e7d32}.state-waiting{background:#757575}\
.state-down,.state-failed{background:#c62828}\
.state-overrun,.state-late,.state-stalled,.state-too_fast,.state-slow{background:#ef6c00}\
.origin{font-size:80%;color:#616161}\
details{font-size:12px;color:#555}input{padding:.3em;width:20em;margin-bottom:1em}";

const SCRIPT: &str = "(function(){var f=document.getElementById('filter');\
function apply(){var q=f.value.toLowerCase();document.querySelectorAll('tr.job').forEach(function(r){\
r.hidden=q!==''&&r.dataset.job.toLowerCase().indexOf(q)<0&&r.dataset.state.indexOf(q)<0;});}\
var p=new URLSearchParams(location.search).get('filter');if(p){f.value=p;}\
f.addEventListener('input',apply);apply();})();";

/// The status page: server-rendered, no external assets, refreshed every 5 s.
async fn page(State(s): State<AppState>) -> Html<String> {
    let jobs = s.checker.jobs().await;
    let hosts = s.checker.hosts().await;
    let now = wall_ms();
    let mut host_rows = String::new();
    for h in &hosts {
        let _ = write!(
            host_rows,
            "<tr class=\"host\"><td>{}</td><td>{:+.3} s{}</td><td>{}</td><td>{}</td></tr>",
            esc(&h.host),
            h.skew_ms as f64 / 1000.0,
            if h.skewed {
                " <strong>off</strong>"
            } else {
                ""
            },
            time(Some(h.last_seen_ms)),
            h.messages
        );
    }
    let mut rows = String::new();
    for j in &jobs {
        let incident = j.incidents.first().map_or_else(
            || "-".to_owned(),
            |i| format!("{} <code>{}</code>", i.event, esc(&i.id)),
        );
        let history: String = j
            .history
            .iter()
            .rev()
            .map(|(ms, what)| format!("<li>{} {}</li>", time(Some(*ms)), esc(what)))
            .collect();
        let _ = write!(
            rows,
            "<tr class=\"job\" data-job=\"{name}\" data-state=\"{state}\" data-origin=\"{origin}\"><td><a href=\"/job/{link}\">{name}</a><div class=\"origin\">{from}</div></td>\
             <td><span class=\"state state-{state}\">{state}</span></td><td>{last}</td><td>{next}</td><td>{incident}</td>\
             <td><details><summary>{n} events</summary><ul>{history}</ul></details></td></tr>",
            name = esc(&j.name),
            link = esc(&path_segment(&j.name)),
            state = j.state,
            last = j.last_kind.as_deref().map_or_else(
                || "never".to_owned(),
                |k| format!("{k} at {}", time(j.last_seen_ms))
            ),
            next = time(j.next_deadline_ms),
            n = j.history.len(),
            origin = esc(&j.origin),
            from = j.declared.as_ref().map_or_else(
                || "from the configuration".to_owned(),
                |d| format!(
                    "declared by {} at {}: <code>{}</code>",
                    esc(&d.host),
                    time(Some(d.at_ms)),
                    esc(&d.spec)
                )
            ),
        );
    }
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"5\">\
         <title>qcic {watcher}</title><style>{STYLE}</style></head><body>\
         <h1>qcic watcher {watcher}</h1><p>{count} jobs, {now}. <a href=\"/metrics\">metrics</a> \
         <a href=\"/api/jobs\">jobs (JSON)</a> <a href=\"/api/incidents\">incidents (JSON)</a></p>\
         <input id=\"filter\" placeholder=\"filter by job or state\" autofocus>\
         <table><thead><tr><th>job</th><th>state</th><th>last message</th><th>next deadline</th><th>incident</th><th>history</th></tr></thead>\
         <tbody>{rows}</tbody></table>\
         <h2>sender hosts</h2><table><thead><tr><th>host</th><th>clock skew (watcher minus host)</th><th>last message</th><th>messages</th></tr></thead>\
         <tbody>{host_rows}</tbody></table>{more_hosts}<script>{SCRIPT}</script></body></html>",
        more_hosts = match s
            .stats
            .hosts_known
            .load(std::sync::atomic::Ordering::Relaxed)
            .saturating_sub(hosts.len() as u64)
        {
            0 => String::new(),
            rest => format!("<p>and {rest} more hosts (the largest skews are shown)</p>"),
        },
        watcher = esc(&s.watcher),
        count = jobs.len(),
        now = time(Some(now)),
    ))
}
