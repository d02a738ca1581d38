//! The HTTP API's writes (behind [`crate::api_guard`]): acknowledge an
//! incident, silence or pause a job and end it, forget a declared job.
//! Each does what the control socket's command of the same name does.

use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::api_guard::Caller;
use crate::http::AppState;

/// Bodies are small: a comment, a reason.
pub const BODY_MAX: usize = 16 * 1024;

/// `POST /api/incidents/{id}/ack` body (optional).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AckBody {
    comment: Option<String>,
    /// Who; default: the token's name.
    by: Option<String>,
}

/// `POST /api/jobs/{job}/silence` body.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SilenceBody {
    /// How long: `"2h"`.
    #[serde(rename = "for")]
    duration: String,
    reason: Option<String>,
}

/// `POST /api/jobs/{job}/pause` body (optional).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PauseBody {
    reason: Option<String>,
}

/// A reply from the checker's `Result`: 404 when what it names is not
/// there, 400 otherwise.
fn reply(result: Result<serde_json::Value, String>) -> Response {
    match result {
        Ok(body) => Json(body).into_response(),
        Err(e) if e.starts_with("no ") => (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({ "error": e })),
        )
            .into_response(),
        Err(e) => (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({ "error": e })),
        )
            .into_response(),
    }
}

/// The body, or what is wrong with it (an empty body is the default).
fn body<T: serde::de::DeserializeOwned + Default>(bytes: &[u8]) -> Result<T, String> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(bytes).map_err(|e| format!("bad JSON body: {e}"))
}

/// `POST /api/incidents/{id}/ack`.
pub async fn ack(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(incident): Path<String>,
    bytes: axum::body::Bytes,
) -> Response {
    let b: AckBody = match body(&bytes) {
        Ok(b) => b,
        Err(e) => return reply(Err(e)),
    };
    let by = b.by.or(caller.0).unwrap_or_else(|| "HTTP API".to_owned());
    let answer = crate::control::ack(incident, by, b.comment, &s.checker).await;
    match answer.get("error").and_then(|e| e.as_str()) {
        Some(e) => reply(Err(e.to_owned())),
        None => reply(Ok(answer)),
    }
}

/// `POST /api/jobs/{job}/silence`.
pub async fn silence(
    State(s): State<AppState>,
    Path(job): Path<String>,
    bytes: axum::body::Bytes,
) -> Response {
    let b: SilenceBody = match body(&bytes) {
        Ok(b) => b,
        Err(e) => return reply(Err(e)),
    };
    let duration = match crate::config::parse_duration(&b.duration) {
        Ok(d) if !d.is_zero() => d,
        Ok(_) => return reply(Err("\"for\" must be longer than 0s".into())),
        Err(e) => return reply(Err(format!("\"for\": {e}"))),
    };
    let until_ms = crate::clock::wall_ms()
        .saturating_add(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX));
    let result = s
        .checker
        .silence(job.clone(), Some(until_ms), bounded(b.reason))
        .await;
    reply(result.map(|()| serde_json::json!({"ok": true, "job": job, "until_ms": until_ms})))
}

/// `POST /api/jobs/{job}/pause`.
pub async fn pause(
    State(s): State<AppState>,
    Path(job): Path<String>,
    bytes: axum::body::Bytes,
) -> Response {
    let b: PauseBody = match body(&bytes) {
        Ok(b) => b,
        Err(e) => return reply(Err(e)),
    };
    let result = s
        .checker
        .silence(job.clone(), None, bounded(b.reason))
        .await;
    reply(result.map(|()| serde_json::json!({"ok": true, "job": job, "paused": true})))
}

/// `DELETE /api/jobs/{job}/silence` and `POST /api/jobs/{job}/resume`.
pub async fn resume(State(s): State<AppState>, Path(job): Path<String>) -> Response {
    let result = s.checker.unsilence(job.clone()).await;
    reply(result.map(|()| serde_json::json!({"ok": true, "job": job})))
}

/// `DELETE /api/jobs/{job}`: stops watching a declared job.
pub async fn forget(State(s): State<AppState>, Path(job): Path<String>) -> Response {
    let result = s.checker.forget(job.clone()).await;
    reply(result.map(|()| serde_json::json!({"ok": true, "job": job, "forgotten": true})))
}

/// A reason of at most 1 KiB (it is kept with the job's state).
fn bounded(reason: Option<String>) -> String {
    let mut reason = reason.unwrap_or_default();
    if reason.len() > 1024 {
        let mut cut = 1024;
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        reason.truncate(cut);
    }
    reason
}
