//! The local control socket: a Unix socket for `qcic-monitor status`,
//! `ping`, silences and `forget`. One JSON request line in, one JSON document out.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;
use tracing::warn;

use crate::checker::CheckerHandle;
use crate::error::MonitorError;
use crate::registry::{HostView, JobView};
use crate::stats::Stats;

/// A request on the control socket: one JSON object whose `command` names
/// it, e.g. `{"command":"silence_add","job":"etl","for_ms":3600000}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Request {
    /// Every job, counter, host and peer.
    Status,
    /// Whether the checker's loop answers (cheap whatever the job count).
    Ping,
    /// Silences a job (or, without `for_ms`, pauses it until removed).
    SilenceAdd {
        /// The job.
        job: String,
        /// How long it lasts, ms; absent: a pause until removed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        for_ms: Option<u64>,
        /// Why.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Ends a job's silence or pause.
    SilenceRemove {
        /// The job.
        job: String,
    },
    /// Every silence and pause.
    SilenceList,
    /// Stops watching a declared job until it declares itself again.
    Forget {
        /// The job.
        job: String,
    },
    /// Acknowledges an open incident: no reminders, no escalation.
    Ack {
        /// The incident id.
        incident: String,
        /// Who (default: the user running the command).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<String>,
        /// What they say.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        comment: Option<String>,
    },
}

/// Acknowledges `incident` for `by` (with `comment`); the reply to send.
pub async fn ack(
    incident: String,
    by: String,
    comment: Option<String>,
    checker: &CheckerHandle,
) -> serde_json::Value {
    if let Some(reason) = ack_refusal(&incident, &by, comment.as_deref()) {
        return serde_json::json!({ "error": reason });
    }
    let ack = crate::notification::Ack {
        by,
        at_ms: crate::clock::wall_ms(),
        comment: comment.filter(|c| !c.trim().is_empty()),
    };
    match checker.ack(incident.clone(), ack, false).await {
        Ok(crate::registry::Acked::Now(job)) => {
            serde_json::json!({"ok": true, "incident": incident, "job": job})
        }
        Ok(crate::registry::Acked::Held(job)) => {
            serde_json::json!({"ok": true, "incident": incident, "job": job, "held": true})
        }
        Ok(crate::registry::Acked::Already(first)) => serde_json::json!({
            "ok": true,
            "incident": incident,
            "already": first,
        }),
        Err(e) => serde_json::json!({ "error": e }),
    }
}

/// Why an acknowledgement is refused as written, if it is: bounded, so a
/// request cannot grow the state database (or the gossip) without bound.
fn ack_refusal(incident: &str, by: &str, comment: Option<&str>) -> Option<String> {
    if incident.is_empty() || incident.len() > 64 {
        return Some("the incident id must be 1 to 64 characters".into());
    }
    if by.trim().is_empty() || by.len() > 128 {
        return Some("who acknowledges (--by) must be 1 to 128 characters".into());
    }
    if comment.is_some_and(|c| c.len() > 1024) {
        return Some("a comment may be at most 1024 bytes".into());
    }
    None
}

async fn silence_add(
    job: String,
    for_ms: Option<u64>,
    reason: Option<String>,
    checker: &CheckerHandle,
) -> serde_json::Value {
    let max_ms = u64::try_from(crate::config::MAX_DURATION.as_millis()).unwrap_or(u64::MAX);
    if for_ms.is_some_and(|d| d > max_ms) {
        return serde_json::json!({"error": "a silence may last at most 100 years"});
    }
    let until_ms = for_ms.map(|d| crate::clock::wall_ms().saturating_add(d));
    done(
        checker
            .silence(job, until_ms, reason.unwrap_or_default())
            .await,
    )
}

/// The reply to a request that changes something.
fn done(result: Result<(), String>) -> serde_json::Value {
    match result {
        Ok(()) => serde_json::json!({"ok": true}),
        Err(e) => serde_json::json!({"error": e}),
    }
}

/// The answer to `status`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Status {
    /// The watcher's id.
    pub watcher: String,
    /// Every job.
    pub jobs: Vec<JobView>,
    /// Every counter.
    pub counters: serde_json::Map<String, serde_json::Value>,
    /// Every sender host, with its clock offset.
    #[serde(default)]
    pub hosts: Vec<HostView>,
    /// In a farm: each configured peer and whether it is reachable.
    #[serde(default)]
    pub peers: Vec<crate::stats::PeerView>,
}

/// Binds the socket (replacing a stale one left by a dead monitor; refusing
/// if a live monitor answers on it). Errors come back before the monitor runs.
pub fn bind(path: &Path) -> Result<UnixListener, MonitorError> {
    let err = |reason: String| MonitorError::Control {
        path: path.to_path_buf(),
        reason,
    };
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(err("another monitor is listening on it".into()));
        }
        std::fs::remove_file(path)
            .map_err(|e| err(format!("cannot remove the stale socket: {e}")))?;
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if dir == crate::config::private_tmp_dir() {
            use std::os::unix::fs::DirBuilderExt;
            match std::fs::DirBuilder::new().mode(0o700).create(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(err(e.to_string())),
            }
            check_private(dir).map_err(err)?;
        } else {
            std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
        }
    }
    let std_listener =
        std::os::unix::net::UnixListener::bind(path).map_err(|e| err(e.to_string()))?;
    std_listener
        .set_nonblocking(true)
        .map_err(|e| err(e.to_string()))?;
    UnixListener::from_std(std_listener).map_err(|e| err(e.to_string()))
}

/// Whether `dir` is this user's alone: owned by the effective user, and
/// neither group nor others may read, write or enter it. A directory in
/// `/tmp` another user made first would let them put a socket there that
/// answers `status` with anything they like.
pub fn check_private(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let me = nix::unistd::geteuid().as_raw();
    if !meta.is_dir() || meta.uid() != me || meta.mode() & 0o077 != 0 {
        return Err(format!(
            "{} is not private to this user (owner uid {}, mode {:o}; wanted a directory of uid {me}, mode 700): another user may have made it; remove it, or set [monitor] control (and --control) to a path of your own",
            dir.display(),
            meta.uid(),
            meta.mode() & 0o7777
        ));
    }
    Ok(())
}

/// The `status` document.
pub async fn status(watcher: &str, checker: &CheckerHandle, stats: &Stats) -> Status {
    let jobs = checker.jobs().await;
    let counters = stats
        .snapshot()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), serde_json::Value::from(v)))
        .collect();
    Status {
        watcher: watcher.to_owned(),
        jobs,
        counters,
        hosts: checker.hosts().await,
        peers: crate::stats::peer_views(stats),
    }
}

/// How long a client has to send its request line.
const REQUEST_WITHIN: Duration = Duration::from_secs(5);

/// Serves the socket until the task is dropped: at most `limits.connections`
/// clients at once, each cut off after `limits.per_connection` (and after
/// `REQUEST_WITHIN` (5 s) if it has not sent its request, or not read its
/// reply, by then).
pub async fn serve(
    listener: UnixListener,
    watcher: String,
    checker: CheckerHandle,
    stats: Arc<Stats>,
    limits: crate::accept::Limits,
) {
    let accept = || async { listener.accept().await.map(|(stream, _)| stream) };
    let closed =
        crate::accept::Closed::new("control socket", &stats, |s| &s.control_connections_closed);
    let handle = move |stream: tokio::net::UnixStream, asked: crate::accept::Asked| {
        let (watcher, checker, stats) = (watcher.clone(), checker.clone(), Arc::clone(&stats));
        async move {
            let (read, mut write) = stream.into_split();
            let mut line = String::new();
            // One bounded line: a client cannot make the monitor buffer much.
            let mut reader = tokio::io::BufReader::new(read).take(4096);
            match tokio::time::timeout(REQUEST_WITHIN, reader.read_line(&mut line)).await {
                Ok(Ok(_)) => asked.store(true, std::sync::atomic::Ordering::Relaxed),
                Ok(Err(_)) | Err(_) => return,
            }
            let reply = answer(&line, &watcher, &checker, &stats).await;
            match reply {
                Ok(text) => {
                    // A client that does not read its reply does not keep
                    // its slot: it has REQUEST_WITHIN to take it.
                    let _ = tokio::time::timeout(REQUEST_WITHIN, async {
                        write.write_all(text.as_bytes()).await?;
                        write.write_all(b"\n").await
                    })
                    .await;
                }
                Err(e) => warn!(cause = %e, "cannot encode the control reply"),
            }
        }
    };
    crate::accept::serve(closed, limits, accept, handle).await;
}

/// The reply to one request line.
async fn answer(
    line: &str,
    watcher: &str,
    checker: &CheckerHandle,
    stats: &Stats,
) -> Result<String, serde_json::Error> {
    let request = match serde_json::from_str::<Request>(line) {
        Ok(request) => request,
        Err(e) => {
            return Ok(serde_json::json!({"error": format!("bad request: {e}")}).to_string());
        }
    };
    match request {
        Request::Status => serde_json::to_string(&status(watcher, checker, stats).await),
        Request::SilenceAdd {
            job,
            for_ms,
            reason,
        } => Ok(silence_add(job, for_ms, reason, checker).await.to_string()),
        Request::SilenceRemove { job } => Ok(done(checker.unsilence(job).await).to_string()),
        Request::Forget { job } => Ok(done(checker.forget(job).await).to_string()),
        Request::Ack {
            incident,
            by,
            comment,
        } => {
            let by = by.unwrap_or_else(|| "qcic-monitor ack".to_owned());
            Ok(ack(incident, by, comment, checker).await.to_string())
        }
        // A liveness probe through the checker's own loop, cheap
        // whatever the number of jobs (status is not).
        Request::Ping => {
            let alive = checker.ping().await;
            Ok(serde_json::json!({"watcher": watcher, "alive": alive}).to_string())
        }
        Request::SilenceList => {
            let list: Vec<serde_json::Value> = checker
                .jobs()
                .await
                .into_iter()
                .filter_map(|j| Some(serde_json::json!({"job": j.name, "silence": j.silence?})))
                .collect();
            Ok(serde_json::json!({"silences": list}).to_string())
        }
    }
}

/// How long `request` waits for the monitor's answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

/// Sends one request to a running monitor and returns its JSON reply.
pub fn request(path: &PathBuf, req: &Request) -> Result<String, String> {
    // Where a watcher run under another [monitor] id or control path is
    // to be found instead: the usual reason for a socket that is not there.
    let unreachable = |e: &dyn std::fmt::Display| {
        format!(
            "cannot reach the monitor at {}: {e}. Is it running? A watcher with another [monitor] id or control path has its socket elsewhere: pass its --config FILE, or --control PATH",
            path.display()
        )
    };
    if let Some(dir) = path
        .parent()
        .filter(|d| *d == crate::config::private_tmp_dir())
    {
        if !dir.exists() {
            return Err(unreachable(&"no such directory"));
        }
        check_private(dir)?;
    }
    let mut stream = UnixStream::connect(path).map_err(|e| unreachable(&e))?;
    let silent = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => format!(
            "the monitor at {} did not answer within {} s (it may be stopped, e.g. by SIGSTOP, or overloaded)",
            path.display(),
            ANSWER_WITHIN.as_secs()
        ),
        _ => format!("the monitor at {}: {e}", path.display()),
    };
    stream
        .set_read_timeout(Some(ANSWER_WITHIN))
        .map_err(silent)?;
    let mut text = serde_json::to_string(req).map_err(|e| e.to_string())?;
    text.push('\n');
    stream.write_all(text.as_bytes()).map_err(silent)?;
    let mut line = String::new();
    BufReader::new(stream)
        .read_line(&mut line)
        .map_err(silent)?;
    if line.is_empty() {
        return Err(format!(
            "the monitor at {} closed the connection without an answer",
            path.display()
        ));
    }
    Ok(line)
}

/// A command that changes something (a silence, `forget`); returns what
/// to print.
pub fn silence(path: &PathBuf, req: &Request) -> Result<String, String> {
    let reply: serde_json::Value =
        serde_json::from_str(&request(path, req)?).map_err(|e| format!("bad reply: {e}"))?;
    if let Some(err) = reply["error"].as_str() {
        return Err(err.to_owned());
    }
    if let Some(incident) = reply["incident"].as_str() {
        return Ok(match reply.get("already") {
            Some(first) => format!(
                "incident {incident} was already acknowledged by {}\n",
                first["by"].as_str().unwrap_or("?")
            ),
            None if reply["held"] == true => format!(
                "incident {incident} of {} acknowledged; it is held back (not notified yet): if it is still open when the hold ends it goes out marked acknowledged, without reminders or escalation\n",
                reply["job"].as_str().unwrap_or("?")
            ),
            None => format!(
                "incident {incident} of {} acknowledged: no reminders or escalation follow; its follow-up still goes out\n",
                reply["job"].as_str().unwrap_or("?")
            ),
        });
    }
    if let Some(list) = reply["silences"].as_array() {
        let mut out = String::new();
        for s in list {
            let until = s["silence"]["until_ms"].as_u64().map_or_else(
                || "paused".to_owned(),
                |ms| format!("until {}", ago(now_ms(), Some(ms))),
            );
            out.push_str(&format!(
                "{:<32} {:<20} {}\n",
                s["job"].as_str().unwrap_or(""),
                until,
                s["silence"]["reason"].as_str().unwrap_or("")
            ));
        }
        return Ok(out);
    }
    Ok("ok\n".into())
}

/// `qcic-monitor status`: asks a running monitor and renders a table.
pub fn print_status(path: &PathBuf) -> Result<String, String> {
    let line = request(path, &Request::Status)?;
    let status: Status = serde_json::from_str(&line).map_err(|e| format!("bad reply: {e}"))?;
    Ok(render(&status, now_ms()))
}

fn now_ms() -> u64 {
    crate::clock::wall_ms()
}

fn ago(now: u64, then: Option<u64>) -> String {
    match then {
        None => "never".into(),
        Some(t) if t <= now => format!("{} ago", span((now - t) / 1000)),
        Some(t) => format!("in {}", span((t - now) / 1000)),
    }
}

/// `secs` in its two largest units, a table cell wide: `2d 8h`, `5m 3s`,
/// `0s` (humantime writes `2days 8h`).
fn span(secs: u64) -> String {
    let units = [
        ("d", secs / 86_400),
        ("h", secs / 3_600 % 24),
        ("m", secs / 60 % 60),
        ("s", secs % 60),
    ];
    let Some(first) = units.iter().position(|(_, n)| *n > 0) else {
        return "0s".into();
    };
    units[first..]
        .iter()
        .take(2)
        .filter(|(_, n)| *n > 0)
        .map(|(unit, n)| format!("{n}{unit}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The status table.
pub fn render(status: &Status, now: u64) -> String {
    let mut out = format!("watcher {}\n", status.watcher);
    out.push_str(&format!(
        "{:<32} {:<8} {:<22} {:<22} {:<18} {}\n",
        "JOB", "STATE", "LAST MESSAGE", "NEXT DEADLINE", "INCIDENT", "SILENCED"
    ));
    // A job held back by a job it depends on is shown under that cause.
    for (i, depth) in crate::registry::under_causes(&status.jobs) {
        let indent = match depth {
            0 => String::new(),
            d => format!("{}└ ", "  ".repeat(d - 1)),
        };
        render_job(&mut out, &status.jobs[i], now, &indent);
    }
    render_tail(&mut out, status, now);
    out
}

/// One job's row; `indent` marks a job shown under its cause.
fn render_job(out: &mut String, job: &JobView, now: u64, indent: &str) {
    {
        let last = match job.last_kind.as_deref() {
            Some(kind) => format!("{kind} {}", ago(now, job.last_seen_ms)),
            None => "never".into(),
        };
        let incident = job
            .incidents
            .first()
            .map(|i| {
                let mut text = format!("{} {}", i.event, i.id);
                if let Some(ack) = &i.acked {
                    text.push_str(&format!(
                        " (acked by {})",
                        crate::printable::one_line(&ack.by)
                    ));
                } else if i.held.is_some() {
                    text.push_str(" (held)");
                }
                text
            })
            .unwrap_or_else(|| "-".into());
        let silenced = match (&job.silence, &job.maintenance, job.blocked_by.first()) {
            (None, Some(window), _) => format!("maintenance {window}"),
            (None, None, Some(cause)) => format!("blocked by {cause}"),
            (None, None, None) => "-".to_owned(),
            (Some(sil), _, _) => match sil.until_ms {
                Some(until) => format!(
                    "until {}: {}",
                    ago(now, Some(until)),
                    crate::printable::one_line(&sil.reason)
                ),
                None => format!("paused: {}", crate::printable::one_line(&sil.reason)),
            },
        };
        out.push_str(&format!(
            "{:<32} {:<8} {:<22} {:<22} {:<18} {}\n",
            format!("{indent}{}", job.name),
            job.state.name(),
            last,
            ago(now, job.next_deadline_ms),
            incident,
            silenced
        ));
    }
}

/// What follows the jobs: declared jobs, peers, hosts.
fn render_tail(out: &mut String, status: &Status, now: u64) {
    let declared: Vec<_> = status
        .jobs
        .iter()
        .filter_map(|job| Some((job, job.declared.as_ref()?)))
        .collect();
    if !declared.is_empty() {
        out.push_str(&format!(
            "\n{:<32} {:<20} {:<22} {}\n",
            "DECLARED JOB", "BY HOST", "SINCE", "EXPECTS"
        ));
        for (job, d) in declared {
            out.push_str(&format!(
                "{:<32} {:<20} {:<22} {}\n",
                job.name,
                crate::printable::one_line(&d.host),
                ago(now, Some(d.at_ms)),
                crate::printable::one_line(&d.spec)
            ));
        }
    }
    if !status.peers.is_empty() {
        out.push_str(&format!("\n{:<32} {}\n", "PEER", "STATE"));
        for peer in &status.peers {
            let state = if peer.live {
                "reachable"
            } else {
                "unreachable"
            };
            out.push_str(&format!("{:<32} {state}\n", peer.id));
        }
    }
    if !status.hosts.is_empty() {
        out.push_str(&format!(
            "\n{:<32} {:<14} {:<22} {}\n",
            "HOST", "CLOCK SKEW", "LAST MESSAGE", "MESSAGES"
        ));
        for host in &status.hosts {
            let skew = format!(
                "{:+.3}s{}",
                host.skew_ms as f64 / 1000.0,
                if host.skewed { " !" } else { "" }
            );
            // Refused at decode, but a state database from before may hold one.
            out.push_str(&format!(
                "{:<32} {:<14} {:<22} {}\n",
                crate::printable::one_line(&host.host),
                skew,
                ago(now, Some(host.last_seen_ms)),
                host.messages
            ));
        }
        let known = status
            .counters
            .get("hosts_known")
            .and_then(serde_json::Value::as_u64);
        if let Some(rest) = known.and_then(|k| k.checked_sub(status.hosts.len() as u64)) {
            if rest > 0 {
                out.push_str(&format!(
                    "... and {rest} more hosts (the largest skews are shown)\n"
                ));
            }
        }
    }
}

#[cfg(test)]
mod span_tests {
    #[test]
    fn a_span_is_its_two_largest_units() {
        assert_eq!(super::span(0), "0s");
        assert_eq!(super::span(59), "59s");
        assert_eq!(super::span(2 * 86_400 + 8 * 3_600 + 7), "2d 8h");
        assert_eq!(super::span(86_400 + 30), "1d");
        assert_eq!(super::span(3_600 + 120), "1h 2m");
    }
}
