//! The email channel: one message per notification, threaded by incident.

use std::time::Duration;

use super::retry::Failure;
use super::smtp::SmtpTransport;
use lettre::message::Mailbox;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::transport::smtp::authentication::Credentials;

use crate::config::EmailConfig;
use crate::notification::Notification;

/// A ready SMTP channel.
#[derive(Debug)]
pub struct EmailChannel {
    name: String,
    transport: SmtpTransport,
    from: Mailbox,
    to: Vec<Mailbox>,
    prefix: String,
    /// The subject's and the body's templates, if configured.
    subject_template: Option<crate::template::Template>,
    body_template: Option<crate::template::Template>,
    timeout: Duration,
}

impl EmailChannel {
    /// Builds the transport. The password comes from `password_file`, the
    /// variable named by `password_env`, or `QCIC_SMTP_PASSWORD`; it is never logged.
    pub fn new(name: String, cfg: &EmailConfig) -> Result<EmailChannel, String> {
        // lettre's SMTP client over a socket of our own with TCP_NODELAY
        // (`smtp`): through lettre's transport each email waited ~40 ms
        // for the end-of-data marker (Nagle + the server's delayed ACK).
        let mut builder = SmtpTransport::from_url(&cfg.smtp)
            .map_err(|e| format!("smtp {}: {e}", crate::config::redacted_url(&cfg.smtp)))?
            // Applied to the TCP connect only; the whole
            // exchange is bounded by `timeout` around each attempt.
            // A connection per email (no pool): an
            // attempt cut off at its deadline drops its connection with
            // it. Pooled, it went back mid-exchange and the next email
            // read the old reply as its own (a 451 taken for a 250: an
            // alarm lost); with a pool of size 0, lettre sent QUIT on it
            // in a task of its own with no timeout, and a hung server kept
            // every such connection open. A connection per email costs a
            // few round trips; the lanes keep several going at once.
            .timeout(Some(cfg.timeout));
        if let Some(user) = &cfg.username {
            let password = match (&cfg.password_file, &cfg.password_env) {
                (Some(path), _) => std::fs::read_to_string(path)
                    .map_err(|e| format!("password_file {}: {e}", path.display()))?
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
                (None, env) => {
                    let var = env.as_deref().unwrap_or("QCIC_SMTP_PASSWORD");
                    std::env::var(var).map_err(|_| {
                        format!("username is set but the environment variable {var} is not")
                    })?
                }
            };
            builder = builder.credentials(Credentials::new(user.clone(), password));
        }
        let from = cfg.from.parse().map_err(|e| format!("from: {e}"))?;
        let to = cfg
            .to
            .iter()
            .map(|t| t.parse().map_err(|e| format!("to {t:?}: {e}")))
            .collect::<Result<Vec<Mailbox>, String>>()?;
        Ok(EmailChannel {
            name,
            transport: builder,
            from,
            to,
            prefix: cfg.subject_prefix.clone(),
            subject_template: cfg.subject.clone(),
            body_template: cfg.body.clone(),
            timeout: cfg.timeout,
        })
    }

    /// The email of a notification.
    pub fn build(&self, note: &Notification) -> Result<lettre::Message, String> {
        // Tried on samples of every kind at start-up; should a template
        // still fail on this notification, its built-in part goes
        // instead: an alarm is never lost for its wording.
        let rendered = |template: &crate::template::Template| match template.render(note) {
            Ok(text) => Some(text.into_text()),
            Err(e) => {
                tracing::error!(channel = %self.name, incident = %note.incident, event = %note.event, cause = %e, "the template failed on this notification; sending the built-in text instead");
                None
            }
        };
        let subject = match self.subject_template.as_ref().and_then(rendered) {
            Some(text) => format!(
                "{} {}",
                self.prefix,
                crate::printable::one_line(text.trim())
            ),
            None => subject(&self.prefix, note),
        };
        let body = self
            .body_template
            .as_ref()
            .and_then(rendered)
            .unwrap_or_else(|| body(note));
        let mut builder = lettre::Message::builder()
            .from(self.from.clone())
            .subject(subject.trim_start())
            // Unique per notification; every notification of an incident
            // refers to the incident, so mail clients thread them together.
            .message_id(Some(format!(
                "<{}.{}.{}.{}.{}@qcic>",
                note.incident,
                note.event,
                note.round(),
                note.detected_ms,
                id_safe(&note.watcher)
            )))
            .references(format!("<{}@qcic>", note.incident))
            .in_reply_to(format!("<{}@qcic>", note.incident))
            .header(ContentType::TEXT_PLAIN);
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        for (name, value) in [
            ("X-Qcic-Incident", note.incident.to_string()),
            ("X-Qcic-Event", note.event.to_string()),
            ("X-Qcic-Job", note.job.to_string()),
            ("X-Qcic-Watcher", note.watcher.to_string()),
        ] {
            if let Ok(name) = HeaderName::new_from_ascii(name.to_owned()) {
                builder = builder.raw_header(HeaderValue::new(name, value));
            }
        }
        builder
            .body(body)
            .map_err(|e| format!("cannot build the email: {e}"))
    }
}

impl super::lanes::Attempt for EmailChannel {
    fn name(&self) -> &str {
        &self.name
    }

    fn deadline(&self) -> Duration {
        self.timeout
    }

    async fn attempt(&self, note: &Notification) -> Result<(), Failure> {
        // A notification that cannot become an email never will.
        let email = self.build(note).map_err(Failure::Permanent)?;
        self.send(email).await
    }

    async fn attempt_digest(&self, digest: super::digest::Digest<'_>) -> Result<(), Failure> {
        let email = self.build_digest(digest).map_err(Failure::Permanent)?;
        self.send(email).await
    }
}

impl EmailChannel {
    async fn send(&self, email: lettre::Message) -> Result<(), Failure> {
        match self.transport.send(email).await {
            Ok(_) => Ok(()),
            // 5xx replies are permanent (a rejected address); everything
            // else may pass on a later try.
            Err(e) if e.is_permanent() => Err(Failure::Permanent(e.to_string())),
            Err(e) => Err(Failure::Temporary(e.to_string())),
        }
    }

    /// The email of a digest: the counts as its subject, then a line per
    /// notification (each with its incident id, for searching the mailbox).
    pub fn build_digest(
        &self,
        digest: super::digest::Digest<'_>,
    ) -> Result<lettre::Message, String> {
        let text = digest.text();
        let watcher = digest.notes.first().map_or("", |n| &*n.watcher);
        let mut builder = lettre::Message::builder()
            .from(self.from.clone())
            .subject(
                format!(
                    "{} {} from {}",
                    self.prefix,
                    digest.summary(),
                    digest.watchers()
                )
                .trim_start(),
            )
            .message_id(Some(format!(
                "<digest.{}.{}@qcic>",
                text.key,
                id_safe(watcher)
            )))
            .header(ContentType::TEXT_PLAIN);
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        if let Ok(name) = HeaderName::new_from_ascii("X-Qcic-Digest".to_owned()) {
            builder = builder.raw_header(HeaderValue::new(name, digest.notes.len().to_string()));
        }
        let body = format!(
            "{}\n\n{}\nEach incident is followed up as usual when it ends.\n",
            digest.summary(),
            text.body
        );
        builder
            .body(body)
            .map_err(|e| format!("cannot build the email: {e}"))
    }
}

/// `[qcic] DOWN nightly-etl (incident 3f9a…) from watcher-a`
pub fn subject(prefix: &str, note: &Notification) -> String {
    format!(
        "{prefix} {} (incident {}) from {}",
        note.headline(),
        note.incident,
        note.watcher
    )
    .trim_start()
    .to_owned()
}

/// The plain-text body: every field of the notification, one per line.
pub fn body(note: &Notification) -> String {
    let mut lines = vec![
        format!("{}", note.headline()),
        String::new(),
        format!("event:     {}", note.event),
        format!("job:       {}", note.job),
        format!("incident:  {}", note.incident),
        format!("watcher:   {}", note.watcher),
        format!("detected:  {}", rfc3339(note.detected_ms)),
        format!(
            "last seen: {}",
            note.last_seen_ms
                .map_or_else(|| "never".to_owned(), rfc3339)
        ),
    ];
    if let Some(resolves) = note.resolves {
        lines.push(format!("resolves:  {resolves}"));
    }
    if let Some(ms) = note.duration_ms {
        let lasted = humantime::format_duration(Duration::from_secs(ms / 1000));
        lines.push(format!("lasted:    {lasted}"));
    }
    if let Some(run) = note.run_id {
        lines.push(format!("run:       {run:016x}"));
    }
    if let Some(host) = &note.host {
        lines.push(format!("host:      {}", printable::one_line(host)));
    }
    if let Some(code) = note.exit_code {
        lines.push(format!("exit code: {code}"));
    }
    if let Some(text) = &note.text {
        // A sender's text may have lines (an output tail): each is
        // indented under the field, so none can pass for a field of its
        // own, and control characters are written as escapes.
        let text = printable::lines(text).replace('\n', "\n           ");
        lines.push(format!("text:      {text}"));
    }
    lines.push(String::new());
    lines.push("-- qcic".into());
    lines.join("\n")
}

use crate::notification::rfc3339;
use crate::printable;

fn id_safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notification::Event;

    fn note() -> Notification {
        Notification {
            event: Event::Recovered,
            job: "etl".into(),
            incident: "0123456789abcdef".into(),
            watcher: "watcher a".into(),
            detected_ms: 1_764_072_000_000,
            last_seen_ms: None,
            resolves: Some(Event::Down),
            duration_ms: Some(61_000),
            run_id: Some(255),
            host: Some("h1".into()),
            exit_code: None,
            text: Some("heartbeat received".into()),
            repeat: 0,
            farm: None,
            route: None,
            blocked_by: None,
            held_by: None,
            held_ms: None,
            acked: None,
            escalation: 0,
        }
    }

    // The transport is built in a runtime, as the watcher builds it.
    #[tokio::test]
    async fn email_carries_event_job_incident_and_watcher() {
        let cfg = EmailConfig {
            smtp: "smtp://127.0.0.1:2525".into(),
            from: "qcic@example.com".into(),
            to: vec!["ops@example.com".into(), "b@example.com".into()],
            username: None,
            password_env: None,
            password_file: None,
            subject_prefix: "[qcic]".into(),
            subject_template: None,
            body_template: None,
            body_template_file: None,
            subject: None,
            body: None,
            timeout: Duration::from_secs(30),
            route: crate::config::Route {
                name: None,
                default: true,
                group_wait: None,
                group_max: None,
            },
        };
        let channel = EmailChannel::new("email".into(), &cfg).unwrap();
        let raw = String::from_utf8(channel.build(&note()).unwrap().formatted()).unwrap();
        // Unfold long header lines (RFC 5322 2.2.3).
        let raw = raw.replace("\r\n ", " ");
        assert!(raw.contains("Subject: [qcic] RECOVERED etl (was down) (incident 0123456789abcdef) from watcher a"), "{raw}");
        assert!(raw.contains("X-Qcic-Incident: 0123456789abcdef"), "{raw}");
        assert!(raw.contains("References: <0123456789abcdef@qcic>"), "{raw}");
        assert!(
            raw.contains("Message-ID: <0123456789abcdef.recovered.0.1764072000000.watcher_a@qcic>"),
            "{raw}"
        );
        assert!(raw.contains("lasted:    1m 1s"), "{raw}");
        assert!(raw.contains("last seen: never"), "{raw}");
        assert!(raw.contains("detected:  2025-11-25T12:00:00Z"), "{raw}");
    }
}
