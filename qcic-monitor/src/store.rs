//! The embedded state database (SQLite, bundled): the notification outbox
//! (so a notification survives a crash, `kill -9`, and an outage of its
//! channel), the notification log as sent, and each job's state.
//!
//! One thread owns the connection. The dispatcher writes a notification to
//! the outbox and waits for the commit before any channel sees it; a channel
//! deletes the row once it has delivered (or given up for good). At start-up
//! the rows still there are queued again. Delivery is therefore
//! at-least-once: a crash between a delivery and its delete resends that one
//! notification (with the same incident id, so it is recognisable).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;

use rusqlite::{Connection, params};
use tokio::sync::oneshot;
use tracing::{error, warn};

use crate::error::MonitorError;
use crate::history::RunRecord;
use crate::notification::Notification;
use crate::registry::JobRecord;

/// How long the run history is kept, and how many runs per job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Runs begun longer ago than this go (`None`: kept by count only).
    pub max_age: Option<std::time::Duration>,
    /// The newest this many runs of each job are kept.
    pub per_job: usize,
}
use crate::stats::Stats;

enum Op {
    Enqueue {
        items: Vec<(Vec<String>, Arc<Notification>)>,
        ack: oneshot::Sender<Enqueued>,
    },
    Done(i64),
    SaveJobs(
        Vec<(String, JobRecord)>,
        Vec<RunRecord>,
        oneshot::Sender<()>,
    ),
    ForgetJobs(Vec<String>),
}

/// The outbox rows written for a batch of notifications.
#[derive(Debug, Default)]
pub struct Enqueued {
    /// Per notification, its row id for each channel (in order).
    pub ids: Vec<Vec<i64>>,
    /// Committed; false when the database refused the write (it is kept
    /// and tried again, and the ids stay valid).
    pub durable: bool,
}

/// A handle to the store thread; cheap to clone.
#[derive(Clone)]
pub struct Store {
    tx: std_mpsc::Sender<Op>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

/// Rows left from before a restart: (outbox id, channel name, notification).
pub type Pending = Vec<(i64, String, Notification)>;

/// What a store holds at start-up.
#[derive(Debug)]
pub struct Loaded {
    /// Deliveries not done yet.
    pub pending: Pending,
    /// The most recent notifications already delivered (or given up on),
    /// oldest first: the notification log as it was, so a notification
    /// raised again after a crash (job state is saved in batches, the
    /// outbox at once) is known as a repeat and not sent twice.
    pub sent: Vec<Notification>,
    /// Job state records: (job name, JSON).
    pub jobs: Vec<(String, String)>,
    /// The same rows as `sent`, with the channel that delivered each (a
    /// channel that keeps state at its service, Alertmanager, takes its
    /// own back).
    pub sent_by: Vec<(String, Notification)>,
}

impl Store {
    /// Opens (or creates) the database and starts its thread. Returns the
    /// deliveries that were pending when the monitor last stopped.
    pub fn open(
        path: &Path,
        stats: &Arc<Stats>,
        retention: Retention,
    ) -> Result<(Store, Loaded, JoinHandle<()>), MonitorError> {
        let err = |reason: String| MonitorError::State {
            path: path.to_path_buf(),
            reason,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
        }
        let conn = Connection::open(path).map_err(|e| err(e.to_string()))?;
        // WAL with synchronous=NORMAL: a commit survives a crash of the
        // process (kill -9), at a fraction of FULL's cost; a power cut may
        // lose the last commits.
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             CREATE TABLE IF NOT EXISTS jobs (
                 name TEXT PRIMARY KEY,
                 state TEXT NOT NULL
             );
             CREATE TABLE IF NOT EXISTS outbox (
                 id INTEGER PRIMARY KEY AUTOINCREMENT,
                 channel TEXT NOT NULL,
                 note TEXT NOT NULL,
                 created_ms INTEGER NOT NULL
             );",
        )
        .map_err(|e| err(e.to_string()))?;
        conn.execute_batch(crate::history::SCHEMA)
            .map_err(|e| err(e.to_string()))?;
        add_done_column(&conn).map_err(|e| err(e.to_string()))?;
        let pending = load_pending(&conn).map_err(|e| err(e.to_string()))?;
        let sent_by = load_sent(&conn).map_err(|e| err(e.to_string()))?;
        let sent = sent_by.iter().map(|(_, note)| note.clone()).collect();
        let jobs = load_jobs(&conn).map_err(|e| err(e.to_string()))?;
        let (tx, rx) = std_mpsc::channel::<Op>();
        let stats = Arc::clone(stats);
        let thread = std::thread::Builder::new()
            .name("qcic-store".into())
            .spawn(move || store_loop(&conn, &rx, &stats.state_write_failures, retention))
            .map_err(|e| err(e.to_string()))?;
        Ok((
            Store { tx },
            Loaded {
                pending,
                sent,
                jobs,
                sent_by,
            },
            thread,
        ))
    }

    /// Writes each notification to the outbox once per channel, all in one
    /// transaction, and returns the row ids (per notification) after the
    /// commit (empty if the store is gone). One commit for a burst, not one
    /// per notification.
    pub async fn enqueue(&self, items: Vec<(Vec<String>, Arc<Notification>)>) -> Enqueued {
        let (ack, rx) = oneshot::channel();
        if self.tx.send(Op::Enqueue { items, ack }).is_err() {
            return Enqueued::default();
        }
        rx.await.unwrap_or_default()
    }

    /// Saves job state records and the runs ended since the last save
    /// (one transaction); the receiver hears once they are committed (or
    /// the store is gone). Serialized on the store thread.
    pub fn save_jobs(
        &self,
        records: Vec<(String, JobRecord)>,
        runs: Vec<RunRecord>,
    ) -> oneshot::Receiver<()> {
        let (ack, rx) = oneshot::channel();
        if !records.is_empty() || !runs.is_empty() {
            let _ = self.tx.send(Op::SaveJobs(records, runs, ack));
        }
        rx
    }

    /// Deletes the saved state of jobs no longer configured, so a job of
    /// the same name added later starts afresh.
    pub fn forget_jobs(&self, names: Vec<String>) {
        if !names.is_empty() {
            let _ = self.tx.send(Op::ForgetJobs(names));
        }
    }

    /// Records a notification as sent, delivered to no channel: the
    /// notification log learns it at the next start (its own log entry
    /// learnt back from the farm after this watcher's state was lost).
    pub fn remember(&self, note: Notification) {
        let (ack, _) = oneshot::channel();
        let items = vec![(Vec::new(), Arc::new(note))];
        let _ = self.tx.send(Op::Enqueue { items, ack });
    }

    /// Marks a delivery done (delivered, or given up for good).
    pub fn done(&self, id: Option<i64>) {
        if let Some(id) = id {
            let _ = self.tx.send(Op::Done(id));
        }
    }
}

fn load_jobs(conn: &Connection) -> rusqlite::Result<Vec<(String, String)>> {
    let mut stmt = conn.prepare("SELECT name, state FROM jobs")?;
    let rows = stmt.query_map([], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
    })?;
    rows.collect()
}

/// Rows of the outbox kept once done, as the notification log (the newest
/// this many; older ones are pruned).
pub const SENT_KEPT: i64 = 10_000;

/// Databases from before `done_ms` deleted rows once delivered; the column
/// is added in place.
fn add_done_column(conn: &Connection) -> rusqlite::Result<()> {
    let mut stmt =
        conn.prepare("SELECT 1 FROM pragma_table_info('outbox') WHERE name = 'done_ms'")?;
    if !stmt.exists([])? {
        conn.execute_batch("ALTER TABLE outbox ADD COLUMN done_ms INTEGER")?;
    }
    Ok(())
}

fn load_sent(conn: &Connection) -> rusqlite::Result<Vec<(String, Notification)>> {
    let mut stmt = conn.prepare(
        "SELECT channel, note FROM outbox WHERE done_ms IS NOT NULL ORDER BY id DESC LIMIT ?1",
    )?;
    let rows = stmt.query_map(params![SENT_KEPT], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
    })?;
    let mut sent = Vec::new();
    for row in rows {
        let (channel, text) = row?;
        if let Ok(note) = serde_json::from_str(&text) {
            sent.push((channel, note));
        }
    }
    sent.reverse();
    Ok(sent)
}

fn load_pending(conn: &Connection) -> rusqlite::Result<Pending> {
    let mut stmt =
        conn.prepare("SELECT id, channel, note FROM outbox WHERE done_ms IS NULL ORDER BY id")?;
    let rows = stmt.query_map([], |row| {
        Ok((
            row.get::<_, i64>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, String>(2)?,
        ))
    })?;
    let mut pending = Vec::new();
    for row in rows {
        let (id, channel, text) = row?;
        match serde_json::from_str(&text) {
            Ok(note) => pending.push((id, channel, note)),
            Err(e) => warn!(id, cause = %e, "unreadable outbox row skipped"),
        }
    }
    Ok(pending)
}

/// One row write, kept until it is committed: a transaction that fails
/// (disk full, I/O error) is rolled back whole, so everything it carried is
/// written again with the next batch, in the same order.
#[derive(Debug)]
enum Write {
    /// An outbox row, with the id already handed to its channel.
    Insert {
        id: i64,
        channel: String,
        text: Arc<str>,
        created: i64,
    },
    /// A notification recorded as sent to no channel (the log learns it).
    Remembered {
        id: i64,
        text: Arc<str>,
        created: i64,
    },
    /// A delivery done.
    Done {
        id: i64,
        at: i64,
    },
    SaveJob {
        name: String,
        state: String,
    },
    ForgetJob(String),
    /// A run for the history (replacing its overrun or stall row).
    SaveRun(RunRecord),
    /// The history of these jobs cut to the retention.
    PruneRuns {
        jobs: Vec<String>,
        per_job: usize,
        oldest_ms: Option<u64>,
    },
}

/// Writes kept for a retry while the database refuses them; beyond this
/// the oldest are dropped (and counted): memory stays bounded through a
/// disk that stays full.
pub const RETRY_KEPT: usize = 100_000;
/// How soon a failed write is tried again when nothing new arrives.
const RETRY_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// The next outbox id: after every id ever used, so an id handed out for a
/// write that failed is never given to another row (SQLite's AUTOINCREMENT
/// would reuse it once the transaction that took it rolled back).
fn next_id(conn: &Connection) -> rusqlite::Result<i64> {
    let used: i64 = conn.query_row(
        "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'outbox'), 0),
                    COALESCE((SELECT MAX(id) FROM outbox), 0))",
        [],
        |row| row.get(0),
    )?;
    Ok(used + 1)
}

fn write_all(conn: &Connection, writes: &[Write]) -> rusqlite::Result<()> {
    let tx = conn.unchecked_transaction()?;
    let mut marked_done = false;
    for write in writes {
        match write {
            Write::Insert {
                id,
                channel,
                text,
                created,
            } => {
                tx.prepare_cached(
                    "INSERT INTO outbox (id, channel, note, created_ms) VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![id, channel, &**text, created])?;
            }
            Write::Remembered { id, text, created } => {
                tx.prepare_cached(
                    "INSERT INTO outbox (id, channel, note, created_ms, done_ms) VALUES (?1, '', ?2, ?3, ?3)",
                )?
                .execute(params![id, &**text, created])?;
            }
            Write::Done { id, at } => {
                tx.prepare_cached("UPDATE outbox SET done_ms = ?2 WHERE id = ?1")?
                    .execute(params![id, at])?;
                marked_done = true;
            }
            Write::SaveJob { name, state } => {
                tx.prepare_cached(
                    "INSERT INTO jobs (name, state) VALUES (?1, ?2)
                     ON CONFLICT(name) DO UPDATE SET state = excluded.state",
                )?
                .execute(params![name, state])?;
            }
            Write::ForgetJob(name) => {
                tx.prepare_cached("DELETE FROM jobs WHERE name = ?1")?
                    .execute(params![name])?;
            }
            Write::SaveRun(run) => crate::history::write(&tx, run)?,
            Write::PruneRuns {
                jobs,
                per_job,
                oldest_ms,
            } => {
                let jobs: Vec<&str> = jobs.iter().map(String::as_str).collect();
                crate::history::prune(&tx, &jobs, *per_job, *oldest_ms)?;
            }
        }
    }
    if marked_done {
        // Bounded: done rows beyond the newest SENT_KEPT go (by id, the
        // primary key: no scan).
        tx.execute(
            "DELETE FROM outbox WHERE done_ms IS NOT NULL AND id <= (SELECT MAX(id) FROM outbox) - ?1",
            params![SENT_KEPT],
        )?;
    }
    tx.commit()
}

/// Turns an operation into its writes; ids come from `next`, never reused.
fn writes_of(
    op: Op,
    next: &mut i64,
    writes: &mut Vec<Write>,
    acks: &mut Vec<Ack>,
    retention: Retention,
) {
    match op {
        Op::Enqueue { items, ack } => {
            let mut all = Vec::with_capacity(items.len());
            for (channels, note) in items {
                let text: Arc<str> = serde_json::to_string(&*note).unwrap_or_default().into();
                let created = i64::try_from(note.detected_ms).unwrap_or(i64::MAX);
                if channels.is_empty() {
                    writes.push(Write::Remembered {
                        id: *next,
                        text: Arc::clone(&text),
                        created,
                    });
                    *next += 1;
                }
                let mut ids = Vec::with_capacity(channels.len());
                for channel in channels {
                    let id = *next;
                    *next += 1;
                    writes.push(Write::Insert {
                        id,
                        channel,
                        text: Arc::clone(&text),
                        created,
                    });
                    ids.push(id);
                }
                all.push(ids);
            }
            acks.push(Ack::Enqueued(ack, all));
        }
        Op::Done(id) => writes.push(Write::Done {
            id,
            at: i64::try_from(crate::clock::wall_ms()).unwrap_or(i64::MAX),
        }),
        Op::ForgetJobs(names) => writes.extend(names.into_iter().map(Write::ForgetJob)),
        Op::SaveJobs(records, runs, ack) => {
            for (name, record) in records {
                let state = serde_json::to_string(&record).unwrap_or_default();
                writes.push(Write::SaveJob { name, state });
            }
            if !runs.is_empty() {
                let mut jobs: Vec<String> = runs.iter().map(|r| r.job.clone()).collect();
                jobs.sort_unstable();
                jobs.dedup();
                writes.extend(runs.into_iter().map(Write::SaveRun));
                let oldest_ms = retention
                    .max_age
                    .map(|age| crate::clock::wall_ms().saturating_sub(crate::clock::millis(age)));
                writes.push(Write::PruneRuns {
                    jobs,
                    per_job: retention.per_job,
                    oldest_ms,
                });
            }
            acks.push(Ack::Saved(ack));
        }
    }
}

enum Ack {
    Enqueued(oneshot::Sender<Enqueued>, Vec<Vec<i64>>),
    Saved(oneshot::Sender<()>),
}

/// Whether a failed write may pass later (the disk fills and empties, a
/// lock clears); anything else (a constraint, a corrupt row) never will.
fn may_pass_later(e: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode::{
        CannotOpen, DatabaseBusy, DatabaseLocked, DiskFull, OutOfMemory, ReadOnly, SystemIoFailure,
    };
    matches!(
        e.sqlite_error_code(),
        Some(
            DiskFull
                | SystemIoFailure
                | DatabaseBusy
                | DatabaseLocked
                | CannotOpen
                | OutOfMemory
                | ReadOnly
        )
    )
}

/// Writes `writes` in one transaction. If that fails for a reason that may
/// pass, returns them all to try again; if it fails for one that never
/// will, writes each alone, drops (and logs) those that can never be
/// written, and returns the rest. Ok(()) when nothing is left.
fn write_or_keep(
    conn: &Connection,
    writes: Vec<Write>,
) -> Result<(), (rusqlite::Error, Vec<Write>)> {
    let Err(e) = write_all(conn, &writes) else {
        return Ok(());
    };
    if may_pass_later(&e) {
        return Err((e, writes));
    }
    let mut kept = Vec::new();
    let mut last = e;
    for write in writes {
        if !kept.is_empty() {
            // Order matters (a done mark after its row): once one is kept,
            // the rest wait behind it.
            kept.push(write);
            continue;
        }
        match write_all(conn, std::slice::from_ref(&write)) {
            Ok(()) => {}
            Err(e) if may_pass_later(&e) => {
                last = e;
                kept.push(write);
            }
            Err(e) => {
                error!(cause = %e, write = ?write.describe(), "a state database write can never succeed; dropped")
            }
        }
    }
    if kept.is_empty() {
        Ok(())
    } else {
        Err((last, kept))
    }
}

impl Write {
    /// What a log line says of it.
    fn describe(&self) -> String {
        match self {
            Write::Insert {
                id, channel, text, ..
            } => {
                let note: Option<Notification> = serde_json::from_str(text).ok();
                match note {
                    Some(n) => format!(
                        "outbox row {id} for channel {channel}: {} {} incident {}",
                        n.event, n.job, n.incident
                    ),
                    None => format!("outbox row {id} for channel {channel}"),
                }
            }
            Write::Remembered { id, .. } => format!("notification log row {id}"),
            Write::Done { id, .. } => format!("done mark of outbox row {id}"),
            Write::SaveJob { name, .. } => format!("state of job {name}"),
            Write::ForgetJob(name) => format!("removal of job {name}"),
            Write::SaveRun(run) => format!("a run of job {}", run.job),
            Write::PruneRuns { .. } => "the run history's pruning".into(),
        }
    }
}

/// Keeps only the last of the kept writes that concern one job's state (a
/// later save or removal of a job makes the earlier ones moot), so a
/// refusing database holds one write per job however often the checker
/// saves; the outbox's rows and done marks stay as they are, in order.
fn compact(writes: Vec<Write>) -> Vec<Write> {
    let mut seen = std::collections::HashSet::new();
    let mut kept: Vec<Write> = writes
        .into_iter()
        .rev()
        .filter(|w| match w {
            Write::SaveJob { name, .. } | Write::ForgetJob(name) => seen.insert(name.clone()),
            _ => true,
        })
        .collect();
    kept.reverse();
    kept
}

/// Brings the kept writes down to [`RETRY_KEPT`]: job state first (the
/// checker saves it again when it next changes), then the oldest outbox
/// writes, each lost notification named.
fn shed(writes: &mut Vec<Write>) {
    let mut over = writes.len().saturating_sub(RETRY_KEPT);
    writes.retain(|w| {
        let state = matches!(w, Write::SaveJob { .. } | Write::ForgetJob(_));
        if state && over > 0 {
            over -= 1;
            return false;
        }
        true
    });
    if over > 0 {
        for write in writes.drain(..over) {
            if matches!(write, Write::Insert { .. }) {
                error!(write = %write.describe(), "state database still refusing writes; the oldest kept ones dropped");
            }
        }
    }
}

/// How long, after the last handle is gone, the store keeps trying writes
/// the database refuses: within the watcher's shutdown grace.
const SHUTDOWN_TRIES_FOR: std::time::Duration = std::time::Duration::from_secs(8);

fn store_loop(
    conn: &Connection,
    rx: &std_mpsc::Receiver<Op>,
    failures: &AtomicU64,
    retention: Retention,
) {
    let mut next = match next_id(conn) {
        Ok(next) => next,
        Err(e) => {
            error!(cause = %e, "cannot read the outbox's last id; the state database is not written");
            return;
        }
    };
    // Writes the database refused, oldest first, and when it last refused.
    let mut unwritten: Vec<Write> = Vec::new();
    let mut refused_at: Option<std::time::Instant> = None;
    let mut closed_at: Option<std::time::Instant> = None;
    loop {
        let mut batch = Vec::new();
        if closed_at.is_none() {
            let first = if unwritten.is_empty() {
                rx.recv()
                    .map_err(|_| std_mpsc::RecvTimeoutError::Disconnected)
            } else {
                rx.recv_timeout(RETRY_EVERY)
            };
            match first {
                Ok(op) => batch.push(op),
                Err(std_mpsc::RecvTimeoutError::Timeout) => {}
                Err(std_mpsc::RecvTimeoutError::Disconnected) => {
                    closed_at = Some(std::time::Instant::now());
                }
            }
        }
        // Take whatever else is waiting too: one transaction for the batch.
        while batch.len() < 1000 && closed_at.is_none() {
            match rx.try_recv() {
                Ok(more) => batch.push(more),
                Err(std_mpsc::TryRecvError::Empty) => break,
                Err(std_mpsc::TryRecvError::Disconnected) => {
                    closed_at = Some(std::time::Instant::now());
                }
            }
        }
        let mut acks = Vec::new();
        for op in batch {
            writes_of(op, &mut next, &mut unwritten, &mut acks, retention);
        }
        // While the database refuses, it is asked again once a second, not
        // at every new operation (each try carries every kept write).
        let due = refused_at.is_none_or(|t| t.elapsed() >= RETRY_EVERY);
        let durable = if unwritten.is_empty() {
            true
        } else if !due {
            false
        } else {
            let retried = refused_at.is_some();
            match write_or_keep(conn, std::mem::take(&mut unwritten)) {
                Ok(()) => {
                    if retried {
                        warn!("state database writable again: the writes it refused are in it now");
                    }
                    refused_at = None;
                    true
                }
                Err((e, kept)) => {
                    failures.fetch_add(1, Ordering::Relaxed);
                    if !retried {
                        error!(cause = %e, "state database write failed; kept in memory and tried again every second (notifications still go out; a crash or a shutdown before the write succeeds would lose them)");
                    }
                    unwritten = compact(kept);
                    if unwritten.len() > RETRY_KEPT {
                        shed(&mut unwritten);
                    }
                    refused_at = Some(std::time::Instant::now());
                    false
                }
            }
        };
        // Acknowledged after the attempt: on success the dispatcher knows
        // its notifications are on disk; on failure it is told so (the
        // alarm is not held back for a full disk) and the ids it got stay
        // its own.
        for ack in acks {
            match ack {
                Ack::Enqueued(ack, ids) => {
                    let _ = ack.send(Enqueued { ids, durable });
                }
                Ack::Saved(ack) => {
                    let _ = ack.send(());
                }
            }
        }
        if let Some(closed) = closed_at {
            if unwritten.is_empty() {
                return;
            }
            if closed.elapsed() >= SHUTDOWN_TRIES_FOR {
                // Named one by one: what an operator must resend by hand
                // (a row whose done mark is waiting too was delivered).
                let done: std::collections::HashSet<i64> = unwritten
                    .iter()
                    .filter_map(|w| match w {
                        Write::Done { id, .. } => Some(*id),
                        _ => None,
                    })
                    .collect();
                for write in &unwritten {
                    if let Write::Insert { id, .. } = write {
                        if done.contains(id) {
                            warn!(write = %write.describe(), "state database refused writes until shutdown: a delivered notification is not recorded");
                        } else {
                            error!(write = %write.describe(), "state database refused writes until shutdown: a notification not delivered yet is lost");
                        }
                    }
                }
                error!(
                    writes = unwritten.len(),
                    "state database refused writes until shutdown; these are lost"
                );
                return;
            }
            std::thread::sleep(RETRY_EVERY);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RETAIN: Retention = Retention {
        max_age: None,
        per_job: 1000,
    };
    use crate::notification::Event;

    fn note(incident: &str) -> Arc<Notification> {
        Arc::new(Notification::new(
            Event::Failed,
            "j".into(),
            incident.into(),
            "w".into(),
            1,
        ))
    }

    #[test]
    fn kept_writes_hold_one_state_per_job_and_shed_state_first() {
        let save = |name: &str, state: &str| Write::SaveJob {
            name: name.into(),
            state: state.into(),
        };
        let row = |id| Write::Insert {
            id,
            channel: "mail".into(),
            text: "{}".into(),
            created: 0,
        };
        let kept = compact(vec![
            save("a", "1"),
            row(1),
            save("b", "1"),
            save("a", "2"),
            Write::Done { id: 1, at: 5 },
            Write::ForgetJob("b".into()),
        ]);
        let shown: Vec<String> = kept.iter().map(Write::describe).collect();
        assert_eq!(
            shown,
            [
                "outbox row 1 for channel mail",
                "state of job a",
                "done mark of outbox row 1",
                "removal of job b"
            ]
        );
        let mut many: Vec<Write> = (0..RETRY_KEPT).map(|i| row(i as i64)).collect();
        many.push(save("a", "3"));
        many.push(row(-1));
        shed(&mut many);
        assert_eq!(many.len(), RETRY_KEPT);
        assert!(!many.iter().any(|w| matches!(w, Write::SaveJob { .. })));
        assert!(matches!(many.last(), Some(Write::Insert { id: -1, .. })));
    }

    /// A notification recorded for no channel, then one for a channel: the
    /// two rows must not get the same id (the second write failed for good
    /// when the first took its id from SQLite and the second from the
    /// store's counter).
    #[tokio::test]
    async fn a_remembered_notification_and_a_queued_one_both_land() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let stats = Arc::new(Stats::default());
        let (store, _, thread) = Store::open(&path, &stats, RETAIN).unwrap();
        store.remember((*note("a")).clone());
        let stored = store.enqueue(vec![(vec!["mail".into()], note("b"))]).await;
        assert!(stored.durable);
        store.done(stored.ids[0].first().copied());
        let again = store.enqueue(vec![(vec!["mail".into()], note("c"))]).await;
        assert!(again.durable);
        drop(store);
        thread.join().unwrap();
        assert_eq!(stats.state_write_failures.load(Ordering::Relaxed), 0);
        let (_store, loaded, _thread) = Store::open(&path, &stats, RETAIN).unwrap();
        let pending: Vec<&str> = loaded.pending.iter().map(|p| &*p.2.incident).collect();
        assert_eq!(pending, ["c"]);
        let sent: Vec<&str> = loaded.sent.iter().map(|n| &*n.incident).collect();
        assert_eq!(sent, ["a", "b"]);
    }
}
