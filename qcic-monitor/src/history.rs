//! Run history: every run of every job, kept in the state database (the
//! `runs` table) with its times on the watcher's clock, duration, outcome,
//! exit code and last text, and read back by `qcic-monitor history` and
//! `GET /api/jobs/{job}/runs`.
//!
//! The registry records a run when it ends (`success`, `fail`, a lone
//! `success`/`fail` without a `start`) and when it overruns or stalls
//! (then again when it ends: one row per run, replaced). The rows go to the
//! store thread with the job state, in the same batched transaction; the
//! store thread also prunes them by age and by count per job.

use rusqlite::{Connection, OpenFlags, params};
use serde::Serialize;

/// How a run ended (or where it stands, while overrun or stalled).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Ended with `success`.
    Success,
    /// Ended with `fail`.
    Fail,
    /// Still running past `max_runtime` (replaced when it ends).
    Overrun,
    /// Still running but silent past `stall_after` (replaced when it ends).
    Stalled,
}

impl Outcome {
    /// Its name, as stored and shown.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Fail => "fail",
            Outcome::Overrun => "overrun",
            Outcome::Stalled => "stalled",
        }
    }

    fn from_name(name: &str) -> Outcome {
        match name {
            "success" => Outcome::Success,
            "overrun" => Outcome::Overrun,
            "stalled" => Outcome::Stalled,
            _ => Outcome::Fail,
        }
    }
}

/// One run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRecord {
    /// The job.
    pub job: String,
    /// The sender's run id, 16 hex digits (none for a lone `success`/`fail`).
    pub run_id: Option<String>,
    /// The sending host.
    pub host: String,
    /// The sending process.
    pub pid: u32,
    /// When its `start` arrived, unix ms on the watcher's clock (none for a
    /// lone `success`/`fail`).
    pub started_ms: Option<u64>,
    /// When it ended, unix ms (none while overrun or stalled).
    pub ended_ms: Option<u64>,
    /// From `start` to its end (or to now, while overrun or stalled), ms.
    pub duration_ms: Option<u64>,
    /// How it ended.
    pub outcome: Outcome,
    /// The exit code reported with `fail` (or `success`).
    pub exit_code: Option<i32>,
    /// The last text: a failure's reason, `qcic run`'s output tail.
    pub text: Option<String>,
    /// The ending message's sequence number: with its host and process,
    /// what tells lone runs ended in the same millisecond apart.
    #[serde(skip)]
    pub seq: u64,
}

impl RunRecord {
    /// What names the run across its rows: an overrun row and its end
    /// share it, so the end replaces the overrun.
    pub fn key(&self) -> String {
        match (&self.run_id, self.started_ms) {
            (Some(run), Some(started)) => format!("{run}/{started}"),
            // A lone success/fail: its own row.
            _ => format!(
                "lone/{}/{}/{}/{}",
                self.host,
                self.pid,
                self.seq,
                self.ended_ms.unwrap_or(0)
            ),
        }
    }
}

/// A run id as people and JSON see it: 16 hex digits.
pub fn run_id_text(id: u64) -> String {
    format!("{id:016x}")
}

/// The table, created if missing.
pub(crate) const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS runs (
     job TEXT NOT NULL,
     key TEXT NOT NULL,
     run_id TEXT,
     host TEXT NOT NULL,
     pid INTEGER NOT NULL,
     started_ms INTEGER,
     ended_ms INTEGER,
     at_ms INTEGER NOT NULL,
     duration_ms INTEGER,
     outcome TEXT NOT NULL,
     exit_code INTEGER,
     text TEXT,
     PRIMARY KEY (job, key)
 );
 CREATE INDEX IF NOT EXISTS runs_by_time ON runs (job, at_ms);
 CREATE INDEX IF NOT EXISTS runs_by_age ON runs (at_ms);";

/// Writes (or replaces) one run in `tx`.
pub(crate) fn write(tx: &Connection, run: &RunRecord) -> rusqlite::Result<()> {
    let ms = |v: Option<u64>| v.map(|v| i64::try_from(v).unwrap_or(i64::MAX));
    // Ordered by when it began (or, for a lone one, ended).
    let at = ms(run.started_ms.or(run.ended_ms)).unwrap_or(0);
    tx.prepare_cached(
        "INSERT INTO runs (job, key, run_id, host, pid, started_ms, ended_ms, at_ms, duration_ms, outcome, exit_code, text)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
         ON CONFLICT(job, key) DO UPDATE SET ended_ms = excluded.ended_ms, pid = excluded.pid,
             duration_ms = excluded.duration_ms, outcome = excluded.outcome,
             exit_code = excluded.exit_code, text = excluded.text",
    )?
    .execute(params![
        run.job,
        run.key(),
        run.run_id,
        run.host,
        run.pid,
        ms(run.started_ms),
        ms(run.ended_ms),
        at,
        ms(run.duration_ms),
        run.outcome.name(),
        run.exit_code,
        run.text,
    ])?;
    Ok(())
}

/// Keeps at most `per_job` runs of each of `jobs` (the newest) and none
/// that began before `oldest_ms`.
pub(crate) fn prune(
    tx: &Connection,
    jobs: &[&str],
    per_job: usize,
    oldest_ms: Option<u64>,
) -> rusqlite::Result<()> {
    let per_job = i64::try_from(per_job).unwrap_or(i64::MAX);
    for job in jobs {
        tx.prepare_cached(
            "DELETE FROM runs WHERE job = ?1 AND at_ms < COALESCE(
                 (SELECT at_ms FROM runs WHERE job = ?1 ORDER BY at_ms DESC LIMIT 1 OFFSET ?2 - 1), 0)",
        )?
        .execute(params![job, per_job])?;
    }
    if let Some(oldest) = oldest_ms {
        tx.prepare_cached("DELETE FROM runs WHERE at_ms < ?1")?
            .execute(params![i64::try_from(oldest).unwrap_or(i64::MAX)])?;
    }
    Ok(())
}

/// The runs of `job`, newest first: at most `limit`, begun before
/// `before_ms` if given. Opens the state database read-only (the watcher
/// may be writing it: WAL lets both).
pub fn read(
    path: &std::path::Path,
    job: &str,
    limit: usize,
    before_ms: Option<u64>,
) -> Result<Vec<RunRecord>, String> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| format!("{}: {e}", path.display()))?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let before = before_ms.map_or(i64::MAX, |b| i64::try_from(b).unwrap_or(i64::MAX));
    let mut stmt = conn
        .prepare(
            "SELECT run_id, host, pid, started_ms, ended_ms, duration_ms, outcome, exit_code, text
             FROM runs WHERE job = ?1 AND at_ms < ?2 ORDER BY at_ms DESC LIMIT ?3",
        )
        .map_err(|e| {
            format!(
                "{}: {e} (no run history in this state database yet?)",
                path.display()
            )
        })?;
    let ms = |v: Option<i64>| v.and_then(|v| u64::try_from(v).ok());
    let rows = stmt
        .query_map(params![job, before, limit], |row| {
            Ok(RunRecord {
                job: job.to_owned(),
                run_id: row.get(0)?,
                host: row.get(1)?,
                pid: row.get(2)?,
                started_ms: ms(row.get(3)?),
                ended_ms: ms(row.get(4)?),
                duration_ms: ms(row.get(5)?),
                outcome: Outcome::from_name(&row.get::<_, String>(6)?),
                exit_code: row.get(7)?,
                text: row.get(8)?,
                seq: 0,
            })
        })
        .map_err(|e| e.to_string())?;
    rows.collect::<Result<_, _>>().map_err(|e| e.to_string())
}

/// A job's runs over a window of time, counted in the database (not
/// from a page of rows: a frequent job has thousands in 30 days).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Window {
    /// Runs begun (or, lone, ended) in the window.
    pub runs: u64,
    /// Of them, those that ended (success or fail).
    pub ended: u64,
    /// Of them, the successes.
    pub successes: u64,
    /// The median and 95th percentile (nearest rank) of the successes'
    /// durations, ms.
    pub p50_ms: Option<u64>,
    /// See `p50_ms`.
    pub p95_ms: Option<u64>,
}

/// `job`'s runs since `since_ms`, counted by the database.
pub fn window(path: &std::path::Path, job: &str, since_ms: u64) -> Result<Window, String> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| format!("{}: {e}", path.display()))?;
    let since = i64::try_from(since_ms).unwrap_or(i64::MAX);
    let (runs, ended, successes, timed): (i64, i64, i64, i64) = conn
        .query_row(
            "SELECT COUNT(*),
                    COALESCE(SUM(outcome IN ('success', 'fail')), 0),
                    COALESCE(SUM(outcome = 'success'), 0),
                    COALESCE(SUM(outcome = 'success' AND duration_ms IS NOT NULL), 0)
             FROM runs WHERE job = ?1 AND at_ms >= ?2",
            params![job, since],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
        )
        .map_err(|e| e.to_string())?;
    let nth = |p: f64| -> Result<Option<u64>, String> {
        if timed == 0 {
            return Ok(None);
        }
        let rank = ((p * timed as f64).ceil() as i64).clamp(1, timed);
        conn.query_row(
            "SELECT duration_ms FROM runs WHERE job = ?1 AND at_ms >= ?2
                 AND outcome = 'success' AND duration_ms IS NOT NULL
             ORDER BY duration_ms LIMIT 1 OFFSET ?3",
            params![job, since, rank - 1],
            |row| row.get::<_, i64>(0),
        )
        .map(|ms| u64::try_from(ms).ok())
        .map_err(|e| e.to_string())
    };
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    Ok(Window {
        runs: count(runs),
        ended: count(ended),
        successes: count(successes),
        p50_ms: nth(0.5)?,
        p95_ms: nth(0.95)?,
    })
}

/// Runs as a table for people: start (UTC), duration, outcome, exit code,
/// host and text (control characters escaped, cut to one line).
pub fn table(runs: &[RunRecord]) -> String {
    use std::fmt::Write as _;
    let mut out = format!(
        "{:<20}  {:>10}  {:<8}  {:>4}  {:<16}  {}\n",
        "START (UTC)", "DURATION", "OUTCOME", "EXIT", "HOST", "TEXT"
    );
    for run in runs {
        let start = match run.started_ms.or(run.ended_ms) {
            Some(ms) => crate::notification::rfc3339(ms)
                .replace('T', " ")
                .replace('Z', ""),
            None => "-".into(),
        };
        let duration = run.duration_ms.map_or("-".into(), |ms| {
            crate::clock::human(std::time::Duration::from_millis(ms))
        });
        let exit = run.exit_code.map_or("-".into(), |c| c.to_string());
        let text: String = run
            .text
            .as_deref()
            .map(|t| crate::printable::one_line(t).chars().take(80).collect())
            .unwrap_or_default();
        let host: String = crate::printable::one_line(&run.host)
            .chars()
            .take(16)
            .collect();
        let _ = writeln!(
            out,
            "{start:<20}  {duration:>10}  {:<8}  {exit:>4}  {host:<16}  {text}",
            run.outcome.name()
        );
    }
    if runs.is_empty() {
        out.push_str("(no runs recorded)\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(started: Option<u64>, outcome: Outcome) -> RunRecord {
        RunRecord {
            job: "etl".into(),
            run_id: started.map(|s| run_id_text(s / 1000)),
            host: "h".into(),
            pid: 7,
            started_ms: started,
            ended_ms: started.map(|s| s + 500).or(Some(99_000)),
            duration_ms: started.map(|_| 500),
            outcome,
            exit_code: None,
            text: None,
            seq: 0,
        }
    }

    #[test]
    fn runs_are_written_replaced_pruned_and_read_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(SCHEMA).unwrap();
        let mut overrun = run(Some(1_000), Outcome::Overrun);
        overrun.ended_ms = None;
        write(&conn, &overrun).unwrap();
        // Its end replaces the overrun row.
        write(&conn, &run(Some(1_000), Outcome::Success)).unwrap();
        for s in [2_000, 3_000, 4_000] {
            write(&conn, &run(Some(s), Outcome::Fail)).unwrap();
        }
        write(&conn, &run(None, Outcome::Success)).unwrap();
        let all = read(&path, "etl", 100, None).unwrap();
        assert_eq!(all.len(), 5);
        assert_eq!(all[0].started_ms, None, "the lone one ended last");
        assert_eq!(all[4].outcome, Outcome::Success);
        assert_eq!(
            read(&path, "etl", 2, Some(3_500)).unwrap()[0].started_ms,
            Some(3_000)
        );
        prune(&conn, &["etl"], 3, None).unwrap();
        let kept: Vec<_> = read(&path, "etl", 100, None)
            .unwrap()
            .iter()
            .map(|r| r.started_ms)
            .collect();
        assert_eq!(kept, [None, Some(4_000), Some(3_000)]);
        prune(&conn, &[], 1000, Some(3_500)).unwrap();
        assert_eq!(read(&path, "etl", 100, None).unwrap().len(), 2);
    }

    #[test]
    fn a_window_is_counted_by_the_database_over_every_run_in_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(SCHEMA).unwrap();
        // 2000 runs (far more than a page): 1 s to 20 s, one in ten failed.
        for i in 0..2000u64 {
            let mut r = run(Some(10_000 + i * 1000), Outcome::Success);
            r.duration_ms = Some((i % 20 + 1) * 1000);
            if i % 10 == 0 {
                r.outcome = Outcome::Fail;
            }
            write(&conn, &r).unwrap();
        }
        let w = window(&path, "etl", 0).unwrap();
        assert_eq!((w.runs, w.ended, w.successes), (2000, 2000, 1800));
        // Successes take 2..=10 s and 12..=20 s, a hundred each.
        assert_eq!(w.p50_ms, Some(10_000));
        assert_eq!(w.p95_ms, Some(20_000));
        let recent = window(&path, "etl", 10_000 + 1990 * 1000).unwrap();
        assert_eq!(recent.runs, 10);
        assert_eq!(window(&path, "other", 0).unwrap(), Window::default());
    }
}
