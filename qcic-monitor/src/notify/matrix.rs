//! `kind = "matrix"`: a message to a Matrix room through the
//! client-server API's `PUT /_matrix/client/v3/rooms/{roomId}/send/m.room.message/{txnId}`
//! (<https://spec.matrix.org/v1.9/client-server-api/#put_matrixclientv3roomsroomidsendeventtypetxnid>).
//! The transaction id is derived from the notification, so a retry after an
//! answer that was lost is taken by the homeserver as the same message,
//! not a second one.

use std::time::Duration;

use serde_json::json;

use super::http::{HttpChannel, Provider, Text};
use super::retry::Failure;
use super::webhook::secret;
use crate::config::MatrixConfig;
use crate::notification::Notification;

/// A ready Matrix channel.
#[derive(Debug)]
pub struct MatrixChannel {
    homeserver: reqwest::Url,
    room: String,
    token: String,
}

impl MatrixChannel {
    /// Reads the access token now, so a missing secret stops the start.
    pub fn new(name: String, cfg: &MatrixConfig) -> Result<HttpChannel<MatrixChannel>, String> {
        let token = secret(&cfg.access_token).map_err(|e| format!("access_token: {e}"))?;
        let homeserver =
            reqwest::Url::parse(&cfg.homeserver).map_err(|e| format!("homeserver: {e}"))?;
        HttpChannel::new(
            name,
            cfg.timeout,
            MatrixChannel {
                homeserver,
                room: cfg.room.clone(),
                token,
            },
        )
        .map(|c| c.with_template(cfg.text.compiled.clone()))
    }

    /// The URL of the message whose transaction id is `key` (the same for
    /// every attempt at it, so a retry after a lost answer is not a
    /// second message).
    fn url(&self, key: &str) -> Result<reqwest::Url, String> {
        let mut url = self.homeserver.clone();
        url.path_segments_mut()
            .map_err(|()| "homeserver: not a base URL".to_owned())?
            .pop_if_empty()
            .extend([
                "_matrix",
                "client",
                "v3",
                "rooms",
                &self.room,
                "send",
                "m.room.message",
                &format!("qcic-{key}"),
            ]);
        Ok(url)
    }

    /// The request's URL and body for `note`.
    pub fn request_for(
        &self,
        note: &Notification,
    ) -> Result<(reqwest::Url, serde_json::Value), String> {
        let url = self.url(&super::http::note_key(note))?;
        let mut body = format!(
            "{}\njob {} · event {} · watcher {} · incident {}",
            note.headline(),
            note.job,
            note.event,
            note.watcher,
            note.incident
        );
        if let Some(reason) = &note.text {
            body.push_str(&format!("\n{}", crate::printable::one_line(reason)));
        }
        // m.notice: a bot's message, which other bots do not answer.
        Ok((url, json!({"msgtype": "m.notice", "body": body})))
    }
}

impl Provider for MatrixChannel {
    fn request(
        &self,
        client: &reqwest::Client,
        note: &Notification,
    ) -> Result<reqwest::RequestBuilder, Failure> {
        let (url, body) = self.request_for(note).map_err(Failure::Permanent)?;
        Ok(client.put(url).bearer_auth(&self.token).json(&body))
    }

    // An event is at most 65 KB, JSON and all.
    fn text_max(&self) -> usize {
        30_000
    }

    fn text_request(
        &self,
        client: &reqwest::Client,
        text: &Text,
    ) -> Result<reqwest::RequestBuilder, Failure> {
        let url = self.url(&text.key).map_err(Failure::Permanent)?;
        let body = json!({"msgtype": "m.notice", "body": text.whole()});
        Ok(client.put(url).bearer_auth(&self.token).json(&body))
    }

    // {"errcode": "M_FORBIDDEN", "error": "...", "retry_after_ms": N}.
    fn reason(&self, body: &str) -> String {
        let answer: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
        crate::printable::one_line(&format!(
            "{} {}",
            answer["errcode"].as_str().unwrap_or(""),
            answer["error"].as_str().unwrap_or("")
        ))
        .into_owned()
    }

    fn retry_after(&self, body: &str) -> Option<Duration> {
        let answer: serde_json::Value = serde_json::from_str(body).ok()?;
        answer["retry_after_ms"].as_u64().map(Duration::from_millis)
    }
}
