//! Wire protocol v1: the message a sender sends, and its MessagePack frame.
//!
//! The normative description is `docs/PROTOCOL.md`; `docs/protocol-vectors.json`
//! holds the byte-exact test vectors that every implementation checks.

use std::fmt;

use serde::de::{self, IgnoredAny, SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::declare::{Expectations, JobSpec, RawExpectations, SpecError};

/// The protocol version carried as the first element of every frame.
pub const PROTOCOL_VERSION: u8 = 1;
/// Longest job name, in bytes.
pub const MAX_JOB_LEN: usize = 128;
/// Longest host name, in bytes.
pub const MAX_HOST_LEN: usize = 255;
/// Longest free text (progress note, failure reason), in bytes of UTF-8.
pub const MAX_TEXT_LEN: usize = 1024;
/// Largest frame a watcher accepts. Every valid v1 message fits with room to spare.
pub const MAX_FRAME_LEN: usize = 2048;

/// What a message says about a job. The numeric codes are the wire encoding
/// and are never renumbered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Kind {
    /// A run began.
    Start = 1,
    /// A run is still alive and moving; may carry a short note.
    Progress = 2,
    /// A run ended well.
    Success = 3,
    /// A run (or the job, outside any run) failed; may carry an exit code and a reason.
    Fail = 4,
    /// The job is alive; outside any run.
    Heartbeat = 5,
    /// The job says what it expects of itself (`expect`, field 10).
    Declare = 6,
}

impl Kind {
    /// All kinds, in code order.
    pub const ALL: [Kind; 6] = [
        Kind::Start,
        Kind::Progress,
        Kind::Success,
        Kind::Fail,
        Kind::Heartbeat,
        Kind::Declare,
    ];

    /// The wire code.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The kind for a wire code, if there is one.
    pub fn from_code(code: u8) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.code() == code)
    }

    /// The lower-case name used in documents, logs and test vectors.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Start => "start",
            Kind::Progress => "progress",
            Kind::Success => "success",
            Kind::Fail => "fail",
            Kind::Heartbeat => "heartbeat",
            Kind::Declare => "declare",
        }
    }

    /// The kind for a name as returned by [`Kind::name`].
    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One message from a sender to a watcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// What happened.
    pub kind: Kind,
    /// The job's name: 1 to [`MAX_JOB_LEN`] bytes of `A-Z a-z 0-9 . _ -`.
    pub job: String,
    /// The run this message belongs to; `None` for heartbeats and run-less failures.
    pub run_id: Option<u64>,
    /// Per-sender sequence number, starting at 1, so a watcher can see gaps.
    pub seq: u64,
    /// The sender's wall clock, unix milliseconds. For the record only: watchers
    /// keep deadlines on their own clock.
    pub ts_ms: u64,
    /// The sending host, at most [`MAX_HOST_LEN`] bytes.
    pub host: String,
    /// The sending process.
    pub pid: u32,
    /// A process exit code, mostly with `fail`.
    pub exit_code: Option<i32>,
    /// A short note, at most [`MAX_TEXT_LEN`] bytes.
    pub text: Option<String>,
    /// With `declare` (and only then): what the job expects of itself.
    /// Boxed: every other message leaves it out and stays small.
    pub expect: Option<Box<Expectations>>,
}

/// Why a frame was not accepted. [`DecodeError::reason`] gives a stable
/// short label for counting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The frame is longer than [`MAX_FRAME_LEN`].
    #[error("frame of {len} bytes is longer than the {MAX_FRAME_LEN}-byte limit")]
    TooLarge {
        /// The frame's length.
        len: usize,
    },
    /// Not a MessagePack array of the v1 shape.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// A well-formed frame of a protocol version this decoder does not know.
    #[error("unsupported protocol version {0}")]
    UnsupportedVersion(u64),
    /// A kind code that v1 does not define.
    #[error("unknown message kind code {0}")]
    UnknownKind(u8),
    /// A `declare` whose `expect` breaks a rule.
    #[error("invalid field expect: {0}")]
    InvalidExpect(#[from] SpecError),
    /// A field that breaks a limit of the protocol.
    #[error("invalid field {field}: {reason}")]
    InvalidField {
        /// The field's name as in `docs/PROTOCOL.md`.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl DecodeError {
    /// A stable label for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::TooLarge { .. } => "too_large",
            DecodeError::Malformed(_) => "malformed",
            DecodeError::UnsupportedVersion(_) => "unsupported_version",
            DecodeError::UnknownKind(_) => "unknown_kind",
            DecodeError::InvalidField { .. } | DecodeError::InvalidExpect(_) => "invalid_field",
        }
    }
}

/// Checks a job name against the protocol's rules; returns the reason it fails.
pub fn check_job_name(job: &str) -> Result<(), &'static str> {
    if job.is_empty() {
        return Err("is empty");
    }
    if job.len() > MAX_JOB_LEN {
        return Err("is longer than 128 bytes");
    }
    if !job
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err("may hold only ASCII letters, digits, '.', '_' and '-'");
    }
    Ok(())
}

/// A character a host name may not hold: a control character (C0, DEL,
/// C1: line breaks and terminal escapes forge log lines and repaint
/// terminals) or a bidirectional-formatting one (it reorders what is shown
/// around it).
pub fn is_unprintable(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// A host name as senders send it: unprintable characters (see
/// [`is_unprintable`]) become `?`, so a strange host name still reports.
pub fn sendable_host(host: &str) -> String {
    host.chars()
        .map(|c| if is_unprintable(c) { '?' } else { c })
        .collect()
}

/// How deep a frame's values may nest, the frame's own array included:
/// room for a newer sender's structured additions, none for a parser
/// stress test.
pub const MAX_DEPTH: usize = 16;

/// Cuts `text` to at most [`MAX_TEXT_LEN`] bytes on a character boundary.
/// Senders truncate rather than refuse: a failure reason that is too long must
/// still report the failure.
pub fn truncate_text(text: &str) -> &str {
    if text.len() <= MAX_TEXT_LEN {
        return text;
    }
    let mut end = MAX_TEXT_LEN;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

impl Message {
    /// A message of `kind` for `job` with every other field at its
    /// plainest: no run, sequence number 1, timestamp 0, no host, pid 0, no
    /// exit code, no text. For tests and tools that build messages by hand;
    /// set the rest with struct update syntax:
    /// `Message { seq: 7, ..Message::new(Kind::Heartbeat, "etl") }`.
    pub fn new(kind: Kind, job: impl Into<String>) -> Message {
        Message {
            kind,
            job: job.into(),
            run_id: None,
            seq: 1,
            ts_ms: 0,
            host: String::new(),
            pid: 0,
            exit_code: None,
            text: None,
            expect: None,
        }
    }

    /// A `declare` message for `spec`, every other field as in
    /// [`Message::new`].
    pub fn declare(spec: &JobSpec) -> Message {
        Message {
            expect: Some(Box::new(spec.expect.clone())),
            ..Message::new(Kind::Declare, spec.job.clone())
        }
    }

    /// Appends the v1 frame for this message to `buf`.
    pub fn encode_into(&self, buf: &mut Vec<u8>) {
        // Writing MessagePack into a Vec cannot fail: every value here is a
        // plain integer, string or nil.
        if let Err(err) = rmp_serde::encode::write(buf, self) {
            unreachable!("encoding a qcic message into memory failed: {err}");
        }
    }

    /// The v1 frame for this message.
    pub fn encode(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(64);
        self.encode_into(&mut buf);
        buf
    }

    /// Decodes and validates one frame.
    ///
    /// Accepts frames with more trailing elements than v1 defines (a newer
    /// sender's additions) and frames without the optional trailing
    /// `exit_code` and `text`.
    pub fn decode(frame: &[u8]) -> Result<Message, DecodeError> {
        if frame.len() > MAX_FRAME_LEN {
            return Err(DecodeError::TooLarge { len: frame.len() });
        }
        // rmp-serde reads strings with `take(len)`, so a hostile length
        // prefix cannot make it allocate more than the frame holds.
        let mut de = rmp_serde::Deserializer::new(std::io::Cursor::new(frame));
        // One rule for every kind of nesting (arrays, maps, ext): the frame
        // and a newer sender's trailing values at most MAX_DEPTH deep.
        de.set_max_depth(MAX_DEPTH);
        let raw = RawFrame::deserialize(&mut de)
            .map_err(|err| DecodeError::Malformed(err.to_string()))?;
        if usize::try_from(de.position()).ok() != Some(frame.len()) {
            return Err(DecodeError::Malformed(
                "trailing bytes after the message".into(),
            ));
        }
        raw.validate()
    }

    /// Checks every field against the protocol's limits.
    pub fn validate(&self) -> Result<(), DecodeError> {
        check_job_name(&self.job).map_err(|reason| DecodeError::InvalidField {
            field: "job",
            reason,
        })?;
        if self.host.len() > MAX_HOST_LEN {
            return Err(DecodeError::InvalidField {
                field: "host",
                reason: "is longer than 255 bytes",
            });
        }
        if self.host.chars().any(is_unprintable) {
            return Err(DecodeError::InvalidField {
                field: "host",
                reason: "holds a control or bidirectional-formatting character",
            });
        }
        if self.text.as_ref().is_some_and(|t| t.len() > MAX_TEXT_LEN) {
            return Err(DecodeError::InvalidField {
                field: "text",
                reason: "is longer than 1024 bytes",
            });
        }
        match (self.kind, &self.expect) {
            (Kind::Declare, None) => Err(DecodeError::InvalidField {
                field: "expect",
                reason: "is required with declare",
            }),
            (Kind::Declare, Some(expect)) => Ok(expect.check()?),
            (_, Some(_)) => Err(DecodeError::InvalidField {
                field: "expect",
                reason: "goes with declare only",
            }),
            (_, None) => Ok(()),
        }
    }
}

impl Serialize for Message {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Canonical form: absent optional fields at the end are left out, so
        // the common messages stay small; an absent field before a present
        // one is nil.
        let len = if self.expect.is_some() {
            11
        } else if self.text.is_some() {
            10
        } else if self.exit_code.is_some() {
            9
        } else {
            8
        };
        let mut seq = serializer.serialize_seq(Some(len))?;
        seq.serialize_element(&PROTOCOL_VERSION)?;
        seq.serialize_element(&self.kind.code())?;
        seq.serialize_element(&self.job)?;
        seq.serialize_element(&self.run_id)?;
        seq.serialize_element(&self.seq)?;
        seq.serialize_element(&self.ts_ms)?;
        seq.serialize_element(&self.host)?;
        seq.serialize_element(&self.pid)?;
        if len >= 9 {
            seq.serialize_element(&self.exit_code)?;
        }
        if len >= 10 {
            seq.serialize_element(&self.text)?;
        }
        if let Some(expect) = &self.expect {
            seq.serialize_element(expect)?;
        }
        seq.end()
    }
}

/// A frame as read, before validation. A frame of another version is kept
/// apart so that it can be counted as such instead of as garbage.
enum RawFrame {
    V1 {
        kind: u8,
        job: String,
        run_id: Option<u64>,
        seq: u64,
        ts_ms: u64,
        host: String,
        pid: u32,
        exit_code: Option<i32>,
        text: Option<String>,
        expect: Option<Box<RawExpectations>>,
    },
    Other(u64),
}

impl RawFrame {
    fn validate(self) -> Result<Message, DecodeError> {
        match self {
            RawFrame::Other(version) => Err(DecodeError::UnsupportedVersion(version)),
            RawFrame::V1 {
                kind,
                job,
                run_id,
                seq,
                ts_ms,
                host,
                pid,
                exit_code,
                text,
                expect,
            } => {
                let kind = Kind::from_code(kind).ok_or(DecodeError::UnknownKind(kind))?;
                let expect = match expect {
                    Some(raw) => Some(Box::new(raw.check()?)),
                    None => None,
                };
                let message = Message {
                    kind,
                    job,
                    run_id,
                    seq,
                    ts_ms,
                    host,
                    pid,
                    exit_code,
                    text,
                    expect,
                };
                message.validate()?;
                Ok(message)
            }
        }
    }
}

impl<'de> Deserialize<'de> for RawFrame {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_seq(RawFrameVisitor)
    }
}

struct RawFrameVisitor;

fn required<'de, A, T>(seq: &mut A, index: usize, what: &'static str) -> Result<T, A::Error>
where
    A: SeqAccess<'de>,
    T: Deserialize<'de>,
{
    seq.next_element()?
        .ok_or_else(|| de::Error::invalid_length(index, &what))
}

impl<'de> Visitor<'de> for RawFrameVisitor {
    type Value = RawFrame;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a qcic message array beginning with a protocol version")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawFrame, A::Error> {
        const V1: &str = "at least 8 elements (version 1)";
        let version: u64 = required(&mut seq, 0, "a protocol version")?;
        if version != u64::from(PROTOCOL_VERSION) {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            return Ok(RawFrame::Other(version));
        }
        let kind: u8 = required(&mut seq, 1, V1)?;
        let job = required(&mut seq, 2, V1)?;
        let run_id = required(&mut seq, 3, V1)?;
        let seq_no = required(&mut seq, 4, V1)?;
        let ts_ms = required(&mut seq, 5, V1)?;
        let host = required(&mut seq, 6, V1)?;
        let pid = required(&mut seq, 7, V1)?;
        let exit_code = seq.next_element::<Option<i32>>()?.flatten();
        let text = seq.next_element::<Option<String>>()?.flatten();
        // Field 10 is read with `declare` only: other kinds skip it, as
        // they skip any later field.
        let expect = if kind == Kind::Declare.code() {
            seq.next_element::<Option<RawExpectations>>()?
                .flatten()
                .map(Box::new)
        } else {
            None
        };
        // Later minor revisions may append fields; v1 readers skip them.
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(RawFrame::V1 {
            kind,
            job,
            run_id,
            seq: seq_no,
            ts_ms,
            host,
            pid,
            exit_code,
            text,
            expect,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn heartbeat() -> Message {
        Message {
            kind: Kind::Heartbeat,
            job: "nightly-etl1".into(),
            run_id: None,
            seq: 42,
            ts_ms: 1_764_072_000_000,
            host: "etl-worker-01".into(),
            pid: 48213,
            exit_code: None,
            text: None,
            expect: None,
        }
    }

    #[test]
    fn heartbeat_round_trips_and_is_compact() {
        let msg = heartbeat();
        let bytes = msg.encode();
        assert!(bytes.len() <= 60, "heartbeat is {} bytes", bytes.len());
        assert_eq!(Message::decode(&bytes).unwrap(), msg);
    }

    #[test]
    fn optional_fields_round_trip() {
        let mut msg = heartbeat();
        msg.kind = Kind::Fail;
        msg.run_id = Some(u64::MAX);
        msg.text = Some("disk full".into());
        assert_eq!(Message::decode(&msg.encode()).unwrap(), msg);
        msg.exit_code = Some(-3);
        assert_eq!(Message::decode(&msg.encode()).unwrap(), msg);
        msg.text = None;
        assert_eq!(
            msg.encode()[0],
            0x99,
            "array of 9 when only exit_code is set"
        );
        assert_eq!(Message::decode(&msg.encode()).unwrap(), msg);
    }

    #[test]
    fn nesting_has_one_limit_for_arrays_and_maps() {
        let base = Message {
            kind: Kind::Heartbeat,
            job: "j".into(),
            run_id: None,
            seq: 1,
            ts_ms: 1,
            host: "h".into(),
            pid: 1,
            exit_code: None,
            text: None,
            expect: None,
        };
        // The v1 array with nil exit_code and text, then one trailing value.
        let frame = |trailing: &[u8]| {
            let mut f = base.encode();
            f[0] = 0x9b; // an array of 11 elements
            f.extend([0xc0, 0xc0]);
            f.extend_from_slice(trailing);
            f
        };
        let nested = |open: &[u8], depth: usize| {
            let mut v = Vec::new();
            for _ in 0..depth {
                v.extend_from_slice(open);
            }
            v.push(0xc0);
            v
        };
        // The frame is one level: trailing values may nest 15 more.
        for (what, open) in [("arrays", &[0x91u8][..]), ("maps", &[0x81u8, 0x00][..])] {
            assert!(
                Message::decode(&frame(&nested(open, 14))).is_ok(),
                "{what} 14 deep"
            );
            assert!(
                matches!(
                    Message::decode(&frame(&nested(open, 16))),
                    Err(DecodeError::Malformed(_))
                ),
                "{what} 16 deep"
            );
        }
    }

    #[test]
    fn extra_trailing_elements_are_skipped() {
        let msg = heartbeat();
        let mut bytes = msg.encode();
        // Turn fixarray(8) into fixarray(11) and append nil, nil, "new".
        bytes[0] = 0x9b;
        bytes.extend_from_slice(&[0xc0, 0xc0, 0xa3, b'n', b'e', b'w']);
        assert_eq!(Message::decode(&bytes).unwrap(), msg);
    }

    #[test]
    fn other_versions_are_told_apart_from_garbage() {
        // [2, "anything"]
        let v2 = [0x92, 0x02, 0xa1, b'x'];
        assert_eq!(
            Message::decode(&v2),
            Err(DecodeError::UnsupportedVersion(2))
        );
        assert_eq!(Message::decode(b"hello").unwrap_err().reason(), "malformed");
        assert_eq!(Message::decode(&[]).unwrap_err().reason(), "malformed");
    }

    #[test]
    fn bad_fields_are_refused() {
        let mut msg = heartbeat();
        msg.job = "has space".into();
        assert_eq!(
            Message::decode(&msg.encode()).unwrap_err().reason(),
            "invalid_field"
        );
        let mut msg = heartbeat();
        msg.text = Some("x".repeat(MAX_TEXT_LEN + 1));
        assert_eq!(
            Message::decode(&msg.encode()).unwrap_err().reason(),
            "invalid_field"
        );
        let mut bytes = heartbeat().encode();
        bytes[2] = 9; // kind code
        assert_eq!(Message::decode(&bytes), Err(DecodeError::UnknownKind(9)));
    }

    #[test]
    fn hostile_lengths_and_sizes_are_refused() {
        // str32 claiming 4 GiB inside a tiny frame.
        let frame = [0x98, 0x01, 0x05, 0xdb, 0xff, 0xff, 0xff, 0xff, b'a'];
        assert_eq!(Message::decode(&frame).unwrap_err().reason(), "malformed");
        let big = vec![0xc0; MAX_FRAME_LEN + 1];
        assert_eq!(Message::decode(&big).unwrap_err().reason(), "too_large");
        let mut bytes = heartbeat().encode();
        bytes.push(0xc0);
        assert_eq!(Message::decode(&bytes).unwrap_err().reason(), "malformed");
    }

    #[test]
    fn truncation_keeps_utf8_whole() {
        let text = "é".repeat(MAX_TEXT_LEN);
        let cut = truncate_text(&text);
        assert!(cut.len() <= MAX_TEXT_LEN);
        assert_eq!(cut.len(), MAX_TEXT_LEN);
        let odd = format!("a{}", "é".repeat(MAX_TEXT_LEN));
        assert_eq!(truncate_text(&odd).len(), MAX_TEXT_LEN - 1);
    }

    #[test]
    fn kind_codes_are_stable() {
        let codes: Vec<(u8, &str)> = Kind::ALL.iter().map(|k| (k.code(), k.name())).collect();
        assert_eq!(
            codes,
            [
                (1, "start"),
                (2, "progress"),
                (3, "success"),
                (4, "fail"),
                (5, "heartbeat"),
                (6, "declare")
            ]
        );
    }
}
