//! Notification templates (minijinja): the text of an email, a chat
//! message or a webhook body shaped by the operator. Every notification
//! field is there under its PROTOCOL.md name (`{{ job }}`, `{{ event }}`,
//! `{{ incident }}`, ...), with `headline` and `severity`, and filters for
//! durations and times in a zone.
//!
//! A template is compiled and rendered with each of [`samples`] (every
//! kind of notification, with the fields each may lack) when the
//! configuration is checked, so a mistake is refused there (with its file,
//! channel and line) and not met at 02:00. Undefined names are errors for
//! the same reason: a field that is absent from a notification is `none`
//! (printed as nothing in text, `null` in JSON), never undefined, so only
//! a typo is undefined. A template is also bounded in work (fuel), so one
//! cannot stall the watcher; and should a rendering still fail on a real
//! notification, the channel sends its built-in message instead (see
//! `notify::http`), so nothing is lost for a template.

use std::sync::Arc;

use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value};

use crate::notification::{Event, Notification};

/// What a template renders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Text, as written.
    Text,
    /// A JSON document: every value printed is JSON-encoded (a reason with
    /// quotes in it cannot break the document), and the result must parse.
    Json,
}

impl Format {
    /// From `template_format`, or from the file's extension (`.json`).
    pub fn named(name: Option<&str>, file: Option<&std::path::Path>) -> Result<Format, String> {
        match name {
            Some("text") => Ok(Format::Text),
            Some("json") => Ok(Format::Json),
            Some(other) => Err(format!("{other:?} is not a template format (text, json)")),
            None if file
                .and_then(|f| f.extension())
                .is_some_and(|e| e == "json") =>
            {
                Ok(Format::Json)
            }
            None => Ok(Format::Text),
        }
    }
}

/// A compiled template.
#[derive(Clone)]
pub struct Template {
    env: Arc<Environment<'static>>,
    /// Where it came from: `template`, or the file's path.
    origin: String,
    source: String,
    format: Format,
}

impl std::fmt::Debug for Template {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Template")
            .field("origin", &self.origin)
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

impl PartialEq for Template {
    fn eq(&self, other: &Template) -> bool {
        self.source == other.source && self.format == other.format
    }
}

/// A rendering.
#[derive(Debug, Clone, PartialEq)]
pub enum Rendered {
    /// Text.
    Text(String),
    /// A JSON document.
    Json(serde_json::Value),
}

impl Rendered {
    /// As text (a JSON document written compactly).
    pub fn into_text(self) -> String {
        match self {
            Rendered::Text(text) => text,
            Rendered::Json(value) => value.to_string(),
        }
    }
}

impl Template {
    /// Compiles `source` (from `origin`: a key or a file) and renders it
    /// once with [`sample`]: any error, with its line, is returned here.
    pub fn compile(origin: &str, source: String, format: Format) -> Result<Template, String> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_auto_escape_callback(move |_| match format {
            Format::Json => AutoEscape::Json,
            Format::Text => AutoEscape::None,
        });
        // In text, an absent field prints as nothing, not "none"; in JSON
        // it stays null.
        env.set_formatter(move |out, state, value| {
            if format == Format::Text && value.is_none() {
                return Ok(());
            }
            minijinja::escape_formatter(out, state, value)
        });
        // Enough for any template that formats a message; a loop that
        // would run for minutes stops here instead (an error: the sample
        // check refuses it, a real notification falls back).
        env.set_fuel(Some(FUEL));
        env.add_filter("duration", duration);
        env.add_filter("time", time);
        env.add_template_owned(origin.to_owned(), source.clone())
            .map_err(|e| explain(&e))?;
        let template = Template {
            env: Arc::new(env),
            origin: origin.to_owned(),
            source,
            format,
        };
        for note in samples() {
            template
                .render(&note)
                .map_err(|e| format!("{e} (rendering a sample `{}`)", note.event))?;
        }
        Ok(template)
    }

    /// Whether every sample renders a JSON object (a chat service's
    /// payload must be one).
    pub fn renders_objects(&self) -> Result<(), String> {
        for note in samples() {
            match self.render(&note)? {
                Rendered::Json(serde_json::Value::Object(_)) => {}
                other => {
                    return Err(format!(
                        "renders {}, not a JSON object (the message's payload) (rendering a sample `{}`)",
                        other.into_text(),
                        note.event
                    ));
                }
            }
        }
        Ok(())
    }

    /// `note` rendered.
    pub fn render(&self, note: &Notification) -> Result<Rendered, String> {
        let template = self
            .env
            .get_template(&self.origin)
            .map_err(|e| explain(&e))?;
        let text = template.render(context(note)).map_err(|e| explain(&e))?;
        match self.format {
            // A sender's text may hold control characters: written as
            // escapes, as the built-in messages do (line breaks kept).
            Format::Text => Ok(Rendered::Text(crate::printable::lines(&text).into_owned())),
            Format::Json => serde_json::from_str(&text)
                .map(Rendered::Json)
                .map_err(|e| format!("renders no JSON document ({e}): {text}")),
        }
    }

    /// Its format.
    pub fn format(&self) -> Format {
        self.format
    }
}

/// An error with its line: "line 3: unknown filter: ...".
fn explain(err: &minijinja::Error) -> String {
    let mut text = match err.line() {
        Some(line) => format!("line {line}: {}", err.kind()),
        None => err.kind().to_string(),
    };
    if let Some(detail) = err.detail() {
        text.push_str(": ");
        text.push_str(detail);
    } else if err.kind() == minijinja::ErrorKind::UndefinedError {
        text.push_str(&format!(
            " (a name no notification has; the names: {})",
            NAMES.join(", ")
        ));
    }
    text
}

/// The names a template can use.
pub const NAMES: [&str; 16] = [
    "event",
    "job",
    "incident",
    "watcher",
    "detected_ms",
    "last_seen_ms",
    "resolves",
    "duration_ms",
    "run_id",
    "host",
    "exit_code",
    "text",
    "repeat",
    "farm",
    "headline",
    "severity",
];

/// The values a template sees: the notification's fields as PROTOCOL.md
/// names them (an absent one is `none`), its headline and severity.
fn context(note: &Notification) -> Value {
    let mut fields = serde_json::to_value(note).unwrap_or_default();
    if let Some(map) = fields.as_object_mut() {
        map.entry("farm").or_insert(serde_json::Value::Null);
        map.insert("headline".into(), note.headline().into());
        map.insert("severity".into(), note.event.severity().name().into());
    }
    Value::from_serialize(&fields)
}

/// `{{ duration_ms | duration }}`: ms as people read them ("1h 2m 3s").
fn duration(ms: Value) -> String {
    match u64::try_from(ms) {
        Ok(ms) => crate::clock::human(std::time::Duration::from_millis(ms)),
        Err(_) => String::new(),
    }
}

/// `{{ detected_ms | time }}`, `{{ detected_ms | time("Europe/London") }}`,
/// `{{ detected_ms | time("UTC", "%H:%M") }}`: unix ms in a time zone
/// (default UTC), written with a strftime format (default
/// `%Y-%m-%d %H:%M:%S %Z`).
fn time(
    ms: Value,
    zone: Option<String>,
    format: Option<String>,
) -> Result<String, minijinja::Error> {
    let Ok(ms) = u64::try_from(ms) else {
        return Ok(String::new());
    };
    let zone: chrono_tz::Tz = zone.as_deref().unwrap_or("UTC").parse().map_err(|_| {
        minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            format!("{zone:?} is not a time zone (an IANA name such as Europe/London)"),
        )
    })?;
    let Some(at) = i64::try_from(ms)
        .ok()
        .and_then(chrono::DateTime::from_timestamp_millis)
    else {
        return Ok(String::new());
    };
    let format = format.as_deref().unwrap_or("%Y-%m-%d %H:%M:%S %Z");
    let mut out = String::new();
    std::fmt::Write::write_fmt(
        &mut out,
        format_args!("{}", at.with_timezone(&zone).format(format)),
    )
    .map_err(|_| {
        minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            format!("{format:?} is not a time format"),
        )
    })?;
    Ok(out)
}

/// The most work one rendering may do (minijinja's fuel: instructions).
pub const FUEL: u64 = 100_000;

/// The notifications a template is tried on when the configuration is
/// read: [`sample`] (a `failed` with every field set); a `down` never
/// heard from (no last message, host, exit code or run); its `recovered`
/// (`resolves`, the duration); a `late` seen by a farm watcher that took
/// over (`farm` set); and a `retired` notice.
pub fn samples() -> Vec<Notification> {
    let failed = sample();
    let mut down = Notification::new(
        Event::Down,
        "nightly-etl".into(),
        "9b1d0c3e2f4a5b6c".into(),
        "watcher-a".into(),
        1_767_225_600_000,
    );
    down.text = Some("never heard from since the watcher started 1h ago".into());
    let mut recovered = down.clone();
    recovered.event = Event::Recovered;
    recovered.resolves = Some(Event::Down);
    recovered.duration_ms = Some(3_600_000);
    recovered.last_seen_ms = Some(1_767_229_200_000);
    recovered.text = None;
    let mut late = failed.clone();
    late.event = Event::Late;
    late.exit_code = None;
    late.repeat = 2;
    late.farm = Some(crate::notification::FarmView {
        rank: 1,
        took_over: true,
        reachable: 1,
        configured: 2,
        partition_suspected: true,
    });
    let mut retired = down.clone();
    retired.event = Event::Retired;
    retired.text = Some("no message for 30d".into());
    vec![failed, down, recovered, late, retired]
}

/// The notification templates are checked with first: a `failed` with
/// every field set; `check` shows its rendering.
pub fn sample() -> Notification {
    let mut note = Notification::new(
        Event::Failed,
        "nightly-etl".into(),
        "3f2a9c1e5b7d4a60".into(),
        "watcher-a".into(),
        1_767_225_600_000,
    );
    note.last_seen_ms = Some(1_767_225_000_000);
    note.duration_ms = Some(600_000);
    note.run_id = Some(42);
    note.host = Some("db-1".into());
    note.exit_code = Some(2);
    note.text = Some("disk full".into());
    note
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_filters_render() {
        let t = Template::compile(
            "template",
            "{{ event }} {{ job }} {{ incident }} after {{ duration_ms | duration }} at {{ detected_ms | time(\"Europe/London\", \"%H:%M %Z\") }} ({{ severity }}) {{ resolves }}".into(),
            Format::Text,
        )
        .unwrap();
        assert_eq!(
            t.render(&sample()).unwrap(),
            Rendered::Text(
                "failed nightly-etl 3f2a9c1e5b7d4a60 after 10m at 00:00 GMT (critical) ".into()
            )
        );
    }

    #[test]
    fn json_values_are_encoded_so_a_reason_cannot_break_the_document() {
        let t = Template::compile(
            "x.json",
            "{\"text\": {{ text }}, \"code\": {{ exit_code }}}".into(),
            Format::Json,
        )
        .unwrap();
        let mut note = sample();
        note.text = Some("a \"quoted\"\nreason".into());
        assert_eq!(
            t.render(&note).unwrap(),
            Rendered::Json(serde_json::json!({"text": "a \"quoted\"\nreason", "code": 2}))
        );
    }

    #[test]
    fn every_field_a_notification_has_is_named() {
        let fields = serde_json::to_value(sample()).unwrap();
        for key in fields.as_object().unwrap().keys() {
            assert!(NAMES.contains(&key.as_str()), "{key} is missing from NAMES");
        }
    }

    #[test]
    fn every_name_is_defined() {
        let source: String = NAMES.iter().map(|n| format!("{{{{ {n} }}}}")).collect();
        Template::compile("template", source, Format::Text).unwrap();
    }

    #[test]
    fn a_template_right_only_for_the_first_sample_is_refused() {
        for (source, says) in [
            // Arithmetic on a field a never-heard `down` lacks.
            ("{{ headline }} exit {{ exit_code + 0 }}", "sample `down`"),
            // A typo in a branch only a follow-up takes.
            (
                "{% if resolves %}{{ duration_ms | duraton }}{% endif %}",
                "sample `recovered`",
            ),
            ("{{ farm.rank + 1 }}", "sample `failed`"),
        ] {
            let err = Template::compile("template", source.into(), Format::Text).unwrap_err();
            assert!(err.contains(says), "{source}: {err}");
        }
    }

    #[test]
    fn a_template_that_would_run_for_minutes_runs_out_of_fuel() {
        let source =
            "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}";
        let started = std::time::Instant::now();
        let err = Template::compile("template", source.into(), Format::Text).unwrap_err();
        assert!(err.contains("fuel"), "{err}");
        // Not a timing claim: minutes would mean the fuel did nothing.
        assert!(started.elapsed() < std::time::Duration::from_secs(60));
    }

    #[test]
    fn control_characters_in_a_text_rendering_are_escaped() {
        let t = Template::compile("template", "{{ text }}".into(), Format::Text).unwrap();
        let mut note = sample();
        note.text = Some("a\u{1b}[2Jb\nc".into());
        assert_eq!(
            t.render(&note).unwrap(),
            Rendered::Text("a\\u{1b}[2Jb\nc".into())
        );
    }

    #[test]
    fn mistakes_are_refused_with_their_line() {
        for (source, says) in [
            ("ok\n{{ job | nosuchfilter }}", "line 2"),
            ("{{ jbo }}", "the names: event, job"),
            ("{% if job %}", "line 1"),
            (
                "{{ detected_ms | time(\"Mars/Olympus\") }}",
                "not a time zone",
            ),
        ] {
            let err = Template::compile("template", source.into(), Format::Text).unwrap_err();
            assert!(err.contains(says), "{source}: {err}");
        }
        let err = Template::compile("t.json", "{\"a\": }".into(), Format::Json).unwrap_err();
        assert!(err.contains("no JSON"), "{err}");
    }
}
