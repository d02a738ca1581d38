//! Who may use the HTTP endpoint: `[http] tokens`. Without tokens the
//! endpoint is read-only and open (as before tokens existed). With any,
//! every request needs `Authorization: Bearer <token>`: a read token for
//! reads, a write token for changes (`/metrics` needs none when
//! `metrics_public = true`). Tokens are compared by their SHA-256 digests
//! in constant time, every configured token each time, so neither a
//! token's bytes nor its length nor which one matched shows in the timing.
//! Refusals are counted and logged, never with the token.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::{ApiToken, Scope};
use crate::stats::Stats;

/// The tokens, as digests.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    tokens: Arc<[(String, [u8; 32], Scope)]>,
    metrics_public: bool,
    stats: Arc<Stats>,
}

/// Who a request comes from, for the write handlers (`by` of an ack).
#[derive(Debug, Clone)]
pub struct Caller(pub Option<String>);

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

impl Guard {
    /// From `[http] tokens` and `metrics_public`.
    pub fn new(tokens: &[ApiToken], metrics_public: bool, stats: Arc<Stats>) -> Guard {
        Guard {
            tokens: tokens
                .iter()
                .map(|t| (t.name.clone(), digest(&t.secret), t.scope))
                .collect(),
            metrics_public,
            stats,
        }
    }

    /// The token `presented` is (name, scope), if it is one.
    fn holder(&self, presented: &[u8]) -> Option<(&str, Scope)> {
        let wanted = digest(presented);
        let mut found = None;
        // No early exit: every token is compared.
        for (name, secret, scope) in self.tokens.iter() {
            if bool::from(secret.ct_eq(&wanted)) {
                found = Some((name.as_str(), *scope));
            }
        }
        found
    }

    fn refuse(&self, status: StatusCode, method: &Method, path: &str, why: &str) -> Response {
        let total = self.stats.http_refused.fetch_add(1, Ordering::Relaxed) + 1;
        // Bounded logging: a scan of the endpoint must not flood the log.
        if total.is_power_of_two() || total < 16 {
            tracing::warn!(%method, path = %crate::printable::one_line(path), reason = why, http_refused = total, "HTTP request refused");
        }
        let mut response =
            (status, axum::Json(serde_json::json!({ "error": why }))).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"qcic\""),
            );
        }
        response
    }
}

/// Whether `method` changes something.
fn writes(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The middleware: lets a request through, or refuses it.
pub async fn check(State(guard): State<Guard>, mut request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let write = writes(&method);
    if guard.tokens.is_empty() {
        if write {
            return guard.refuse(
                StatusCode::FORBIDDEN,
                &method,
                &path,
                "the HTTP API is read-only: no [http] tokens are configured",
            );
        }
        request.extensions_mut().insert(Caller(None));
        return next.run(request).await;
    }
    if !write && path == "/metrics" && guard.metrics_public {
        request.extensions_mut().insert(Caller(None));
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer)
        .map(|t| t.as_bytes().to_vec());
    let Some(presented) = presented else {
        return guard.refuse(
            StatusCode::UNAUTHORIZED,
            &method,
            &path,
            "a token is needed: Authorization: Bearer <token>",
        );
    };
    let Some((name, scope)) = guard.holder(&presented) else {
        return guard.refuse(StatusCode::UNAUTHORIZED, &method, &path, "unknown token");
    };
    if write && scope != Scope::Write {
        let why = format!("the token {name:?} may read, not change things");
        return guard.refuse(StatusCode::FORBIDDEN, &method, &path, &why);
    }
    if write {
        // Who changed what: the token's name, never the token.
        tracing::info!(%method, path = %crate::printable::one_line(&path), token = name, "HTTP API change");
    }
    request
        .extensions_mut()
        .insert(Caller(Some(name.to_owned())));
    next.run(request).await
}

/// The token of an `Authorization` value: the scheme `Bearer` in any
/// case (RFC 9110), then blanks.
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once([' ', '\t'])?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::bearer;

    #[test]
    fn the_scheme_is_read_in_any_case_and_blanks_around_the_token_go() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("BEARER\tabc"), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer"), None);
        assert_eq!(bearer("Bearer   "), None);
        assert_eq!(bearer("Bearerabc"), None);
    }
}
