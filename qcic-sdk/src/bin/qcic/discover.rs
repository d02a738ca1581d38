//! `qcic discover`: the jobs of a crontab, and the same crontab with each
//! job wrapped in `qcic run --job NAME --cron 'SCHEDULE' ...`, so every job
//! declares itself to the watchers.
//!
//! What a crontab line is follows crontab(5) (Debian's cron and cronie):
//! comments and environment lines kept as they are; `CRON_TZ=` (else
//! `TZ=`) names the time zone of the lines after it; `@daily`-style
//! shortcuts; in a system crontab (`/etc/crontab`, `/etc/cron.d/*`) a user
//! column after the schedule; in the command an unescaped `%` ends it (the
//! rest is its standard input) and `\%` is a `%`. The schedule is checked
//! with the same cron parser the watcher uses.

use std::collections::HashSet;
use std::io::Write;
use std::process::{Command, Stdio};

/// One line of a crontab, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// A comment, a blank line, an environment line, or a line left as it
    /// is (already wrapped, `@reboot`, a schedule that does not read):
    /// kept verbatim, with why when it is a job left alone.
    Keep(String, Option<String>),
    /// A job.
    Job(Job),
}

/// A crontab job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// Its line number (from 1).
    pub line: usize,
    /// The schedule: five fields, or a shortcut such as `@daily`.
    pub schedule: String,
    /// The time zone in force (`CRON_TZ`, else `TZ`), if any.
    pub timezone: Option<String>,
    /// The user column of a system crontab.
    pub user: Option<String>,
    /// The command, as cron gives it to the shell (up to an unescaped `%`).
    pub command: String,
    /// What follows the first unescaped `%` (with it), kept as it was.
    pub input: String,
    /// The job's name.
    pub name: String,
    /// The shell cron runs it with (`SHELL=` in force; default `/bin/sh`).
    pub shell: String,
}

const SHORTCUTS: [&str; 7] = [
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@midnight",
    "@hourly",
];

/// Reads a crontab; `system`: it has a user column. `names` overrides
/// derived names by line number.
pub fn read(text: &str, system: bool, names: &[(usize, String)]) -> Vec<Line> {
    let mut timezone: Option<String> = None;
    let mut shell = "/bin/sh".to_owned();
    let mut cron_tz = false;
    let mut taken: HashSet<String> = HashSet::new();
    let mut lines = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let trimmed = raw.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            lines.push(Line::Keep(raw.to_owned(), None));
            continue;
        }
        if let Some((key, value)) = environment(trimmed) {
            // CRON_TZ names the schedules' zone; TZ does only where no
            // CRON_TZ was given (it is the jobs' environment too).
            if key == "CRON_TZ" {
                cron_tz = true;
                timezone = Some(value);
            } else if key == "TZ" && !cron_tz {
                timezone = Some(value);
            } else if key == "SHELL" {
                // Cron runs the commands with it: so must their wrapper.
                shell = value;
            }
            lines.push(Line::Keep(raw.to_owned(), None));
            continue;
        }
        match job(n, trimmed, system, timezone.clone()) {
            Err(why) => lines.push(Line::Keep(raw.to_owned(), Some(why))),
            Ok(mut job) => {
                job.shell.clone_from(&shell);
                let wanted = names
                    .iter()
                    .find(|(line, _)| *line == n)
                    .map_or_else(|| name_of(&job.command), |(_, name)| name.clone());
                job.name = unique(&wanted, &mut taken);
                lines.push(Line::Job(job));
            }
        }
    }
    lines
}

/// `NAME=value` (value unquoted), if the line is one.
fn environment(line: &str) -> Option<(String, String)> {
    let (key, value) = line.split_once('=')?;
    let key = key.trim();
    if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return None;
    }
    let value = value.trim();
    let value = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
        .unwrap_or(value);
    Some((key.to_owned(), value.to_owned()))
}

fn job(line: usize, text: &str, system: bool, timezone: Option<String>) -> Result<Job, String> {
    let mut rest = text;
    let mut word = || {
        let t = rest.trim_start();
        let end = t.find(char::is_whitespace).unwrap_or(t.len());
        let (w, r) = t.split_at(end);
        rest = r;
        w.to_owned()
    };
    let first = word();
    let schedule = if first.starts_with('@') {
        if first == "@reboot" {
            return Err("@reboot: no schedule to watch".into());
        }
        if !SHORTCUTS.contains(&first.as_str()) {
            return Err(format!("{first}: not a cron shortcut"));
        }
        first
    } else {
        let mut fields = vec![first];
        for _ in 0..4 {
            fields.push(word());
        }
        fields.join(" ")
    };
    if !schedule.starts_with('@') {
        croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Disallowed)
            .build()
            .parse(&schedule)
            .map_err(|e| format!("{schedule:?} does not read as a schedule: {e}"))?;
    }
    let user = system.then(&mut word);
    if user.as_deref().is_some_and(str::is_empty) {
        return Err("no user column (a system crontab line is: schedule user command)".into());
    }
    let command_line = rest.trim_start();
    if command_line.is_empty() {
        return Err("no command".into());
    }
    let (command, input) = split_percent(command_line);
    if wrapped(&command) {
        return Err("already wrapped in qcic run".into());
    }
    Ok(Job {
        line,
        schedule,
        timezone,
        user,
        command,
        input,
        name: String::new(),
        shell: String::new(),
    })
}

/// The command up to the first unescaped `%`, and the rest (from it).
fn split_percent(text: &str) -> (String, String) {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if bytes.get(i + 1) == Some(&b'%') => i += 2,
            b'%' => return (text[..i].trim_end().to_owned(), text[i..].to_owned()),
            _ => i += 1,
        }
    }
    (text.trim_end().to_owned(), String::new())
}

/// Whether a command already runs under `qcic run` (so `--apply` twice
/// changes nothing).
fn wrapped(command: &str) -> bool {
    let mut words = command.split_whitespace();
    let first = words.next().unwrap_or("");
    (first == "qcic" || first.ends_with("/qcic")) && command.split_whitespace().any(|w| w == "run")
}

/// A job name from a command: the program's file name without extension
/// (the script's, if an interpreter runs one), after `cd DIR &&` and
/// `VAR=value` prefixes.
fn name_of(command: &str) -> String {
    let words = shlex::split(command)
        .unwrap_or_else(|| command.split_whitespace().map(str::to_owned).collect());
    let mut words = words.iter().map(String::as_str);
    // Programs that run another: what they run names the job.
    const RUNNERS: [&str; 14] = [
        "sh", "bash", "python", "python3", "perl", "ruby", "php", "node", "nice", "ionice",
        "timeout", "nohup", "env", "flock",
    ];
    let mut runner = false;
    let mut program = "";
    while let Some(w) = words.next() {
        if w == "cd" {
            words.next();
            continue;
        }
        if matches!(w, "&&" | ";" | "||") || (w.contains('=') && !w.starts_with('-')) {
            continue;
        }
        // A runner's options and their numbers (`nice -n 10`, `timeout 1h`).
        if runner && (w.starts_with('-') || w.starts_with(|c: char| c.is_ascii_digit())) {
            continue;
        }
        if RUNNERS.contains(&w.rsplit('/').next().unwrap_or(w)) {
            runner = true;
            continue;
        }
        program = w;
        break;
    }
    let base = program.rsplit('/').next().unwrap_or(program);
    let stem = match base.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() && ext.len() <= 4 => stem,
        _ => base,
    };
    let mut name: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    name = name.trim_matches('-').to_owned();
    name.truncate(100);
    if name.is_empty() { "job".into() } else { name }
}

fn unique(wanted: &str, taken: &mut HashSet<String>) -> String {
    let mut name = wanted.to_owned();
    let mut n = 2;
    while !taken.insert(name.clone()) {
        name = format!("{wanted}-{n}");
        n += 1;
    }
    name
}

/// A word quoted for a POSIX shell (crontab lines are run by `sh -c`):
/// single quotes only, so that a backslash stays what it was for cron,
/// which turns `\%` into `%` before the shell sees the line.
fn quote(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"@%+=:,./_-".contains(&b));
    if plain && !text.contains('%') {
        return text.to_owned();
    }
    format!("'{}'", text.replace('\'', "'\"'\"'"))
}

/// The crontab with every job wrapped: `qcic run --job NAME --cron
/// 'SCHEDULE' [--timezone TZ] -- SHELL -c 'COMMAND'` (the command stays a
/// line for the crontab's `SHELL`, `sh` unless it says otherwise;
/// shell line; what followed an unescaped `%` stays after it). `extra`:
/// further `qcic run` options for every job.
pub fn rewrite(lines: &[Line], qcic: &str, extra: &str) -> String {
    let mut out = String::new();
    for line in lines {
        match line {
            Line::Keep(text, _) => out.push_str(text),
            Line::Job(job) => {
                let mut wrapped = match &job.user {
                    Some(user) => format!("{} {user} ", job.schedule),
                    None => format!("{} ", job.schedule),
                };
                wrapped.push_str(&format!(
                    "{qcic} run --job {} --cron {}",
                    quote(&job.name),
                    quote(&job.schedule)
                ));
                if let Some(tz) = &job.timezone {
                    wrapped.push_str(&format!(" --timezone {}", quote(tz)));
                }
                if !extra.is_empty() {
                    wrapped.push(' ');
                    wrapped.push_str(extra);
                }
                let shell = if job.shell == "/bin/sh" {
                    "sh".to_owned()
                } else {
                    quote(&job.shell)
                };
                wrapped.push_str(&format!(" -- {shell} -c {}", quote(&job.command)));
                if !job.input.is_empty() {
                    wrapped.push_str(&job.input);
                }
                out.push_str(&wrapped);
            }
        }
        out.push('\n');
    }
    out
}

/// The jobs found, as a table for people (what `discover` prints first).
pub fn table(lines: &[Line]) -> String {
    let mut out = format!(
        "{:<5} {:<24} {:<20} {:<16} {}\n",
        "LINE", "JOB", "SCHEDULE", "TIMEZONE", "COMMAND"
    );
    for line in lines {
        if let Line::Job(job) = line {
            let command = match &job.user {
                Some(user) => format!("(as {user}) {}", job.command),
                None => job.command.clone(),
            };
            out.push_str(&format!(
                "{:<5} {:<24} {:<20} {:<16} {}\n",
                job.line,
                job.name,
                job.schedule,
                job.timezone.as_deref().unwrap_or("-"),
                command
            ));
        }
    }
    let skipped: Vec<String> = lines
        .iter()
        .enumerate()
        .filter_map(|(i, l)| match l {
            Line::Keep(_, Some(why)) => Some(format!("line {}: left as it is: {why}\n", i + 1)),
            _ => None,
        })
        .collect();
    out.extend(skipped);
    out
}

/// Runs `crontab` (or the command given) with `args`, `input` on stdin;
/// its standard output.
pub fn crontab(program: &str, args: &[&str], input: Option<&str>) -> Result<String, String> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin
            .write_all(text.as_bytes())
            .map_err(|e| format!("cannot write to {program}: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{program}: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        // `crontab -l` of a user without one.
        if args == ["-l"] && err.contains("no crontab") {
            return Ok(String::new());
        }
        return Err(format!("{program} {}: {}", args.join(" "), err.trim()));
    }
    // Not lossy: a crontab rewritten (and backed up) with its bytes
    // replaced would lose them.
    String::from_utf8(out.stdout).map_err(|_| {
        format!(
            "{program} {}: the crontab is not UTF-8; nothing changed",
            args.join(" ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_program_or_its_script() {
        for (command, name) in [
            ("/usr/local/bin/etl --full", "etl"),
            (
                "cd /srv/app && ./nightly-report.sh > /dev/null 2>&1",
                "nightly-report",
            ),
            (
                "PATH=/bin:/usr/bin python3 /opt/jobs/sync_users.py --all",
                "sync_users",
            ),
            ("/bin/bash -x /root/backup.sh", "backup"),
            ("nice -n 10 /usr/bin/find /tmp -mtime +7 -delete", "find"),
            ("echo 'hi'", "echo"),
        ] {
            assert_eq!(name_of(command), name, "{command}");
        }
    }

    #[test]
    fn percent_ends_the_command_unless_escaped() {
        assert_eq!(
            split_percent("date +\\%F >> /tmp/x % line one%line two"),
            (
                "date +\\%F >> /tmp/x".to_owned(),
                "% line one%line two".to_owned()
            )
        );
        assert_eq!(split_percent("plain"), ("plain".to_owned(), String::new()));
    }
}
