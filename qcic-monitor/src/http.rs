//! The HTTP endpoint (off unless `[http]` is configured; loopback by
//! default): `/api/jobs`, `/api/incidents`, `/api/hosts`, `/api/peers`,
//! `/metrics` and `/`, a status page.

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
    /// Who may read and write (`[http] tokens`).
    pub guard: crate::api_guard::Guard,
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
    use crate::api_write;
    use axum::routing::{delete, post};
    let guard = state.guard.clone();
    Router::new()
        .route("/api/incidents/{id}/ack", post(api_write::ack))
        .route(
            "/api/jobs/{job}/silence",
            post(api_write::silence).delete(api_write::resume),
        )
        .route("/api/jobs/{job}/pause", post(api_write::pause))
        .route("/api/jobs/{job}/resume", post(api_write::resume))
        .route("/api/jobs/{job}", delete(api_write::forget))
        .route("/", get(page))
        .route("/api/jobs", get(api_jobs))
        .route("/api/jobs/{job}/runs", get(api_runs))
        .route("/job/{job}", get(job_page))
        .route("/api/incidents", get(api_incidents))
        .route("/api/hosts", get(api_hosts))
        .route("/api/peers", get(api_peers))
        .route("/metrics", get(metrics))
        .layer(axum::extract::DefaultBodyLimit::max(api_write::BODY_MAX))
        // Outermost: nothing is parsed for a request refused.
        .route_layer(axum::middleware::from_fn_with_state(
            guard,
            crate::api_guard::check,
        ))
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
            let now = wall_ms();
            let read = tokio::task::spawn_blocking(move || {
                let runs = crate::history::read(&path, &name, crate::pages::CHART_RUNS, None)?;
                // The figures counted over the whole window by the
                // database, not from the rows read for the chart.
                let day = 86_400_000;
                let week = crate::history::window(&path, &name, now.saturating_sub(7 * day))?;
                let month = crate::history::window(&path, &name, now.saturating_sub(30 * day))?;
                Ok::<_, String>((runs, [week, month]))
            })
            .await;
            match read {
                Ok(Ok(found)) => Some(found),
                // No history yet (an empty database) reads as no runs.
                _ => Some((Vec::new(), [crate::history::Window::default(); 2])),
            }
        }
        None => None,
    };
    let shown = runs.as_ref().map(|(r, w)| (r.as_slice(), *w));
    match crate::pages::job_page(&job, shown) {
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
                serde_json::json!({"job": j.name, "incident": i.id, "event": i.event, "run_id": i.run_id.map(crate::history::run_id_text), "acked": i.acked, "held": i.held, "escalated": i.escalated, "blocked_by": j.blocked_by})
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

/// The status page (`pages::status_page`): server-rendered, no external
/// assets, refreshed every 5 s.
async fn page(State(s): State<AppState>) -> axum::response::Response {
    let jobs = s.checker.jobs().await;
    let hosts = s.checker.hosts().await;
    let more = s
        .stats
        .hosts_known
        .load(Ordering::Relaxed)
        .saturating_sub(hosts.len() as u64);
    match crate::pages::status_page(&s.watcher, &jobs, &hosts, more, wall_ms()) {
        Ok(html) => Html(html).into_response(),
        Err(e) => (axum::http::StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
    }
}
