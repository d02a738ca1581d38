//! `qcic`: the sender on the command line, for shell jobs, crontab lines and
//! systemd timers.
//!
//! ```sh
//! qcic run --job nightly-etl --timeout 2h -- /usr/local/bin/etl --full
//! qcic run --job nightly-etl --cron '30 2 * * *' --timezone Europe/London --max-runtime 2h -- etl
//! qcic declare --job disk-sync --every 10m
//! qcic discover            # the crontab's jobs, and the crontab with each wrapped in qcic run
//! qcic discover --apply    # installs it (crontab -), after a backup
//! qcic send --job disk-sync heartbeat
//! RUN=$(qcic send --job backup start); ...; qcic send --job backup --run-id "$RUN" success
//! ```
//!
//! It never delays the wrapped job by more than `--close-timeout` (2 s) at
//! the end, even with every watcher down, and says so on stderr.

use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, IsTerminal, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitCode, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

mod discover;

use clap::{Parser, Subcommand, ValueEnum};
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use qcic_sdk::{Client, ClientBuilder, JobSpec, Kind, SpecError, parse_endpoints};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// Report batch jobs to qcic watchers.
#[derive(Debug, Parser)]
#[command(name = "qcic", version, about)]
struct Cli {
    /// Watcher endpoints, comma-separated [default: $QCIC_ENDPOINTS].
    #[arg(long, global = true, env = "QCIC_ENDPOINTS", hide_env_values = true)]
    endpoints: Option<String>,
    /// The watchers' CURVE public key [default: $QCIC_SERVER_KEY].
    #[arg(long, global = true)]
    server_key: Option<String>,
    /// How long to wait at the end for the watchers to take the messages.
    #[arg(long, global = true, default_value = "2s", value_parser = humantime::parse_duration)]
    close_timeout: Duration,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Send one message.
    Send {
        /// The job's name.
        #[arg(long)]
        job: String,
        /// What to say.
        kind: KindArg,
        /// A short note or failure reason (bytes that are not UTF-8 are
        /// replaced with U+FFFD: a failure is never dropped over its text).
        #[arg(long)]
        text: Option<std::ffi::OsString>,
        /// An exit code (with fail).
        #[arg(long, allow_negative_numbers = true)]
        exit_code: Option<i32>,
        /// The run this message belongs to: 16 hex digits, as `send start`
        /// prints it.
        #[arg(long, value_parser = run_id_hex)]
        run_id: Option<u64>,
    },
    /// Declare what a job expects of itself (`--every` or `--cron`, and
    /// its limits), so a watcher whose `[declare]` policy allows it
    /// watches the job. `qcic run` takes the same options.
    Declare {
        /// The job's name.
        #[arg(long)]
        job: String,
        #[command(flatten)]
        declare: DeclareArgs,
    },
    /// Read a crontab (yours, or --file) and print its jobs (on stderr),
    /// then the same crontab (on stdout) with each job wrapped in `qcic run
    /// --job NAME --cron 'SCHEDULE'`, so that every job declares itself.
    /// Lines already wrapped, comments and environment lines stay as they
    /// are.
    Discover {
        /// A crontab file instead of yours (`crontab -l`).
        #[arg(long, value_name = "PATH")]
        file: Option<std::path::PathBuf>,
        /// The file has a user column after the schedule [default: for
        /// /etc/crontab and /etc/cron.d/*].
        #[arg(long)]
        system: bool,
        /// The name of the job on line N (repeatable): N=NAME.
        #[arg(long = "name", value_name = "N=NAME", value_parser = line_name)]
        names: Vec<(usize, String)>,
        /// Install the result (`crontab -`, or write --file back) after a
        /// backup; does nothing when nothing changes.
        #[arg(long)]
        apply: bool,
        /// Where the backup goes [default: ~/.qcic/crontab.UNIXTIME, or
        /// FILE.qcic-backup.UNIXTIME].
        #[arg(long, value_name = "PATH")]
        backup: Option<std::path::PathBuf>,
        /// The crontab program.
        #[arg(long, default_value = "crontab", env = "QCIC_CRONTAB")]
        crontab: String,
        /// How the wrapped lines run qcic [default: this program's full path:
        /// cron's PATH is short].
        #[arg(long, value_name = "COMMAND")]
        qcic: Option<String>,
        /// More `qcic run` options for every job, e.g. "--grace 10m".
        #[arg(long, default_value = "", allow_hyphen_values = true)]
        run_options: String,
    },
    /// Run a command as one run of a job: start, then success or fail with
    /// its exit code, duration and last lines of output. Exits with the
    /// command's exit code.
    Run {
        /// The job's name.
        #[arg(long)]
        job: String,
        /// Kill the command after this long and report it failed (exit 124).
        #[arg(long, value_parser = humantime::parse_duration)]
        timeout: Option<Duration>,
        #[command(flatten)]
        declare: DeclareArgs,
        /// The command and its arguments.
        #[arg(trailing_var_arg = true, required = true, num_args = 1..)]
        command: Vec<String>,
    },
}

/// What a job expects of itself: with `run`, declared before the start,
/// so a watcher whose `[declare]` policy allows it watches the job
/// without a `[[job]]` in its configuration.
#[derive(Debug, Default, clap::Args)]
struct DeclareArgs {
    /// Declare the job due at least once every so long (e.g. 1d, 10m).
    #[arg(long, help_heading = "Declaration")]
    every: Option<String>,
    /// Declare the job run at these times (e.g. '30 2 * * 1-5', @daily).
    #[arg(long, help_heading = "Declaration")]
    cron: Option<String>,
    /// The cron expression's time zone (e.g. Europe/London; default UTC).
    #[arg(long, help_heading = "Declaration")]
    timezone: Option<String>,
    /// Slack after a due time before the job counts as down.
    #[arg(long, help_heading = "Declaration")]
    grace: Option<String>,
    /// A scheduled run not started this long after its time is late.
    #[arg(long, help_heading = "Declaration")]
    start_within: Option<String>,
    /// A run not ended this long after its start is overrunning.
    #[arg(long, help_heading = "Declaration")]
    max_runtime: Option<String>,
    /// A run silent this long is stalled.
    #[arg(long, help_heading = "Declaration")]
    stall_after: Option<String>,
    /// A success sooner than this after its start is too fast.
    #[arg(long, help_heading = "Declaration")]
    min_runtime: Option<String>,
    /// Alarm only after this many failures or misses in a row.
    #[arg(long, help_heading = "Declaration")]
    alert_after_failures: Option<String>,
    /// Close an alarm only after this many successes in a row.
    #[arg(long, help_heading = "Declaration")]
    recover_after_successes: Option<String>,
    /// The watcher's channels for this job, comma-separated.
    #[arg(long, help_heading = "Declaration")]
    notify: Option<String>,
    /// `slow` when a run lasts this factor (such as 3) × the median of the
    /// job's last successful runs.
    #[arg(long, help_heading = "Declaration")]
    slow_after: Option<String>,
    /// Jobs whose down or failed holds this job's alarms back, comma-separated.
    #[arg(long, help_heading = "Declaration")]
    depends_on: Option<String>,
    /// A step of a chain: a start is due --start-within after each success of this job.
    #[arg(long, help_heading = "Declaration")]
    after: Option<String>,
}

impl DeclareArgs {
    /// The declaration, if any option was given.
    fn spec(&self, job: &str) -> Result<Option<JobSpec>, SpecError> {
        let pairs: Vec<(&str, &str)> = [
            ("every", &self.every),
            ("cron", &self.cron),
            ("timezone", &self.timezone),
            ("grace", &self.grace),
            ("start_within", &self.start_within),
            ("max_runtime", &self.max_runtime),
            ("stall_after", &self.stall_after),
            ("min_runtime", &self.min_runtime),
            ("alert_after_failures", &self.alert_after_failures),
            ("recover_after_successes", &self.recover_after_successes),
            ("notify", &self.notify),
            ("slow_after", &self.slow_after),
            ("depends_on", &self.depends_on),
            ("after", &self.after),
        ]
        .into_iter()
        .filter_map(|(key, value)| Some((key, value.as_deref()?)))
        .collect();
        if pairs.is_empty() {
            return Ok(None);
        }
        JobSpec::from_pairs(job, &pairs).map(Some)
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum KindArg {
    Start,
    Progress,
    Success,
    Fail,
    Heartbeat,
}

impl From<KindArg> for Kind {
    fn from(k: KindArg) -> Kind {
        match k {
            KindArg::Start => Kind::Start,
            KindArg::Progress => Kind::Progress,
            KindArg::Success => Kind::Success,
            KindArg::Fail => Kind::Fail,
            KindArg::Heartbeat => Kind::Heartbeat,
        }
    }
}

/// Lines of the command's output kept for the report.
const TAIL_LINES: usize = 5;
/// Characters kept of each line.
const TAIL_WIDTH: usize = 160;
/// After the command exits, its output is read until the pipes close, or
/// until nothing has moved for this long (a process it left running holds
/// them open) ...
const DRAIN_IDLE: Duration = Duration::from_millis(500);
/// ... or for this long at most (that process keeps writing).
const DRAIN_MAX: Duration = Duration::from_secs(10);

fn warn(text: &str) {
    eprintln!("qcic: {text}");
}

fn client(cli: &Cli) -> Result<Client, String> {
    let endpoints = parse_endpoints(cli.endpoints.as_deref().unwrap_or_default());
    if endpoints.is_empty() {
        return Err("no watcher endpoints: pass --endpoints or set QCIC_ENDPOINTS".into());
    }
    let mut builder = ClientBuilder::default()
        .endpoints(endpoints)
        .close_timeout(cli.close_timeout);
    if let Some(key) = &cli.server_key {
        builder = builder.server_key(key);
    }
    builder.keys_from_env().build().map_err(|e| e.to_string())
}

fn close(client: &Client, timeout: Duration) {
    if !client.close(timeout) {
        warn(&format!(
            "could not confirm delivery to the watchers within {}; they may be unreachable",
            humantime::format_duration(timeout)
        ));
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Cmd::Send {
            job,
            kind,
            text,
            exit_code,
            run_id,
        } => send(
            &cli,
            job,
            (*kind).into(),
            text.as_ref().map(|t| t.to_string_lossy()).as_deref(),
            *exit_code,
            *run_id,
        ),
        Cmd::Run {
            job,
            timeout,
            declare,
            command,
        } => run(&cli, job, *timeout, declare, command),
        Cmd::Declare { job, declare } => declare_only(&cli, job, declare),
        Cmd::Discover {
            file,
            system,
            names,
            apply,
            backup,
            crontab,
            qcic,
            run_options,
        } => discover_cmd(
            file.as_deref(),
            *system,
            names,
            (*apply, backup.as_deref()),
            crontab,
            qcic.as_deref(),
            run_options,
        ),
    }
}

fn line_name(text: &str) -> Result<(usize, String), String> {
    let (n, name) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: give N=NAME (a line number and a job name)"))?;
    let n = n
        .parse()
        .map_err(|_| format!("{n:?} is not a line number"))?;
    qcic_sdk::message::check_job_name(name).map_err(|r| format!("job name {name:?} {r}"))?;
    Ok((n, name.to_owned()))
}

fn discover_cmd(
    file: Option<&std::path::Path>,
    system: bool,
    names: &[(usize, String)],
    (apply, backup): (bool, Option<&std::path::Path>),
    crontab: &str,
    qcic: Option<&str>,
    run_options: &str,
) -> ExitCode {
    let fail = |text: String| {
        warn(&text);
        ExitCode::from(2)
    };
    let text = match file {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) => return fail(format!("cannot read {}: {e}", path.display())),
        },
        None => match discover::crontab(crontab, &["-l"], None) {
            Ok(text) => text,
            Err(e) => return fail(e),
        },
    };
    let system = system
        || file.is_some_and(|p| {
            p == std::path::Path::new("/etc/crontab") || p.starts_with("/etc/cron.d")
        });
    let lines = discover::read(&text, system, names);
    let qcic = qcic.map_or_else(
        || std::env::current_exe().map_or_else(|_| "qcic".to_owned(), |p| p.display().to_string()),
        str::to_owned,
    );
    let rewritten = discover::rewrite(&lines, &qcic, run_options);
    eprint!("{}", discover::table(&lines));
    if !apply {
        print!("{rewritten}");
        return ExitCode::SUCCESS;
    }
    if rewritten == text || rewritten.trim_end() == text.trim_end() {
        eprintln!("qcic: nothing to change: every job is wrapped already");
        return ExitCode::SUCCESS;
    }
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let backup = match (backup, file) {
        (Some(path), _) => path.to_path_buf(),
        (None, Some(path)) => {
            std::path::PathBuf::from(format!("{}.qcic-backup.{stamp}", path.display()))
        }
        (None, None) => {
            let home =
                std::env::var_os("HOME").map_or_else(|| std::path::PathBuf::from("."), Into::into);
            home.join(".qcic").join(format!("crontab.{stamp}"))
        }
    };
    if let Some(dir) = backup.parent() {
        if let Err(e) = std::fs::create_dir_all(dir) {
            return fail(format!("cannot make {}: {e}", dir.display()));
        }
    }
    if let Err(e) = std::fs::write(&backup, &text) {
        return fail(format!("cannot write the backup {}: {e}", backup.display()));
    }
    let installed = match file {
        Some(path) => std::fs::write(path, &rewritten)
            .map_err(|e| format!("cannot write {}: {e}", path.display())),
        None => discover::crontab(crontab, &["-"], Some(&rewritten)).map(drop),
    };
    match installed {
        Ok(()) => {
            eprintln!(
                "qcic: installed; the crontab before is in {}",
                backup.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(format!(
            "{e}; nothing changed (backup in {})",
            backup.display()
        )),
    }
}

fn declare_only(cli: &Cli, job: &str, args: &DeclareArgs) -> ExitCode {
    let spec = match args.spec(job) {
        Ok(Some(spec)) => spec,
        Ok(None) => {
            warn("nothing to declare: give --every or --cron (and any limits)");
            return ExitCode::from(2);
        }
        Err(err) => {
            warn(&format!("invalid declaration: {err}"));
            return ExitCode::from(2);
        }
    };
    let client = match client(cli) {
        Ok(client) => client,
        Err(err) => {
            warn(&err);
            return ExitCode::from(2);
        }
    };
    if let Err(err) = client.declare(&spec) {
        warn(&err.to_string());
        return ExitCode::from(2);
    }
    close(&client, cli.close_timeout);
    ExitCode::SUCCESS
}

fn send(
    cli: &Cli,
    job: &str,
    kind: Kind,
    text: Option<&str>,
    exit_code: Option<i32>,
    run_id: Option<u64>,
) -> ExitCode {
    let client = match client(cli) {
        Ok(client) => client,
        Err(err) => {
            warn(&err);
            return ExitCode::from(2);
        }
    };
    // A start without a run id gets a fresh one, printed for the later
    // success or fail of the same run.
    let run_id = match (kind, run_id) {
        (Kind::Start, None) => Some(qcic_sdk::new_run_id()),
        (_, id) => id,
    };
    if let Err(err) = client.report(kind, job, run_id, exit_code, text) {
        warn(&err.to_string());
        return ExitCode::from(2);
    }
    if kind == Kind::Start {
        if let Some(id) = run_id {
            println!("{id:016x}");
        }
    }
    close(&client, cli.close_timeout);
    ExitCode::SUCCESS
}

/// A run id as `send start` prints it and every JSON and page shows it:
/// up to 16 hex digits.
fn run_id_hex(text: &str) -> Result<u64, String> {
    if text.is_empty() || text.len() > 16 {
        return Err(format!(
            "{text:?} is not a run id (16 hex digits, as `qcic send start` prints it)"
        ));
    }
    u64::from_str_radix(text, 16).map_err(|_| {
        format!("{text:?} is not a run id (16 hex digits, as `qcic send start` prints it)")
    })
}

/// The last lines of the command's output, both streams interleaved.
#[derive(Default)]
struct Tail {
    lines: VecDeque<String>,
}

impl Tail {
    fn push(&mut self, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end();
        if text.is_empty() {
            return;
        }
        if self.lines.len() == TAIL_LINES {
            self.lines.pop_front();
        }
        self.lines
            .push_back(text.chars().take(TAIL_WIDTH).collect());
    }
}

/// Copies a child's stream to ours byte for byte, keeping its last lines.
fn pass_through<R: Read + Send + 'static, W: Write + Send + 'static>(
    from: R,
    mut to: W,
    tail: Arc<Mutex<Tail>>,
    progress: Arc<AtomicU64>,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut reader = BufReader::new(from);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    progress.fetch_add(1, Ordering::Relaxed);
                    let _ = to.write_all(&line);
                    let _ = to.flush();
                    progress.fetch_add(1, Ordering::Relaxed);
                    tail.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(&line);
                }
            }
        }
    })
}

fn exit_code_of(status: ExitStatus) -> i32 {
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

fn run(
    cli: &Cli,
    job: &str,
    timeout: Option<Duration>,
    declare: &DeclareArgs,
    command: &[String],
) -> ExitCode {
    // Catch SIGINT/SIGTERM first, before anything is sent: from then on a
    // signal stops the command (once it runs), never qcic alone.
    let signals = Signals::new([SIGINT, SIGTERM])
        .map_err(|e| warn(&format!("cannot catch signals: {e}")))
        .ok();
    // The job runs even if qcic cannot report it: monitoring must never be
    // the reason a job did not run. The watchers will see it as missing.
    let client = client(cli)
        .map_err(|e| warn(&format!("{e}; running the command unreported")))
        .ok();
    // A bad declaration is reported and the job still runs (as above).
    match declare.spec(job) {
        Ok(Some(spec)) => {
            if let Some(Err(err)) = client.as_ref().map(|c| c.declare(&spec)) {
                warn(&format!("cannot declare the job: {err}"));
            }
        }
        Ok(None) => {}
        Err(err) => warn(&format!(
            "invalid declaration ({err}); running the command undeclared"
        )),
    }
    let started = Instant::now();
    let run = client.as_ref().and_then(|c| match c.start(job) {
        Ok(run) => Some(run),
        Err(err) => {
            warn(&format!("cannot report the run: {err}"));
            None
        }
    });

    let (program, args) = match command.split_first() {
        Some(split) => split,
        None => return ExitCode::from(2),
    };
    // Its own process group, so that a timeout or a forwarded signal
    // reaches what it started too (a shell's `sleep 25` went on after the
    // run was reported stopped). Not when run from a terminal: a process
    // outside the terminal's foreground group cannot read it.
    let grouped = !io::stdin().is_terminal();
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::inherit())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if grouped {
        command.process_group(0);
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(err) => {
            let text = format!("cannot start {program:?}: {err}");
            warn(&text);
            // The shell's convention: 127 not found, 126 found but not
            // executable (a directory, no permission).
            let code: u8 = if err.kind() == std::io::ErrorKind::NotFound {
                127
            } else {
                126
            };
            if let Some(run) = run {
                let _ = run.fail_with_code(Some(i32::from(code)), &text);
            }
            if let Some(c) = &client {
                close(c, cli.close_timeout);
            }
            return ExitCode::from(code);
        }
    };
    let pid = Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
    let signal = move |sig: Signal| {
        let _ = if grouped {
            killpg(pid, sig)
        } else {
            kill(pid, sig)
        };
    };
    let tail = Arc::new(Mutex::new(Tail::default()));
    // Lines read and written by the copiers: whether the copy still moves.
    let progress = Arc::new(AtomicU64::new(0));
    let mut copiers = Vec::new();
    if let Some(out) = child.stdout.take() {
        copiers.push(pass_through(
            out,
            io::stdout(),
            Arc::clone(&tail),
            Arc::clone(&progress),
        ));
    }
    if let Some(err) = child.stderr.take() {
        copiers.push(pass_through(
            err,
            io::stderr(),
            Arc::clone(&tail),
            Arc::clone(&progress),
        ));
    }
    // Forward SIGINT and SIGTERM to the command: stopping qcic stops the job,
    // and the run is then reported as failed with the signal. (Signals that
    // arrived before the command started are pending and forwarded now.)
    if let Some(mut signals) = signals {
        thread::spawn(move || {
            for sig in signals.forever() {
                if let Ok(sig) = Signal::try_from(sig) {
                    signal(sig);
                }
            }
        });
    }
    let (done_tx, done_rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = done_tx.send(child.wait());
    });
    let mut timed_out = false;
    let status = match timeout {
        Some(limit) => match done_rx.recv_timeout(limit) {
            Ok(status) => status,
            Err(_) => {
                timed_out = true;
                warn(&format!(
                    "{job}: timed out after {}; stopping the command",
                    humantime::format_duration(limit)
                ));
                signal(Signal::SIGTERM);
                match done_rx.recv_timeout(Duration::from_secs(5)) {
                    Ok(status) => status,
                    Err(_) => {
                        signal(Signal::SIGKILL);
                        done_rx
                            .recv()
                            .unwrap_or_else(|_| Err(io::Error::other("lost the child")))
                    }
                }
            }
        },
        None => done_rx
            .recv()
            .unwrap_or_else(|_| Err(io::Error::other("lost the child"))),
    };
    // The command has exited: the run is over. What it wrote is passed on
    // whole (a slow reader downstream only slows the copy), but a process
    // it left running (a daemon, `sleep &`) holds the pipes open, and
    // waiting for them to close made qcic wait for that process too, and
    // report the run late or never: the copy stops once nothing has moved
    // for DRAIN_IDLE, or after DRAIN_MAX in all.
    let exited = Instant::now();
    let mut moved = progress.load(Ordering::Relaxed);
    let mut idle_since = Instant::now();
    while !copiers.iter().all(thread::JoinHandle::is_finished) {
        thread::sleep(Duration::from_millis(10));
        let now = progress.load(Ordering::Relaxed);
        if now != moved {
            moved = now;
            idle_since = Instant::now();
        }
        if idle_since.elapsed() >= DRAIN_IDLE || exited.elapsed() >= DRAIN_MAX {
            warn(&format!(
                "{job}: the command exited, but a process it started still holds its output open; no longer reading it"
            ));
            break;
        }
    }
    for copier in copiers {
        if copier.is_finished() {
            let _ = copier.join();
        }
    }
    let took = humantime::format_duration(Duration::from_millis(
        u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    ));
    let code = match &status {
        Ok(_) if timed_out => 124,
        Ok(status) => exit_code_of(*status),
        Err(_) => 1,
    };
    let last = tail
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .lines
        .iter()
        .cloned()
        .collect::<Vec<_>>()
        .join("\n");
    let summary = match (&status, timed_out) {
        (_, true) => format!(
            "timed out after {} and was stopped",
            humantime::format_duration(timeout.unwrap_or_default())
        ),
        (Ok(s), false) if s.signal().is_some() => {
            format!("killed by signal {} after {took}", s.signal().unwrap_or(0))
        }
        (Ok(_), false) => format!("exit {code} after {took}"),
        (Err(e), false) => format!("cannot wait for the command: {e}"),
    };
    let text = if last.is_empty() {
        summary
    } else {
        format!("{summary}; last output:\n{last}")
    };
    if let Some(run) = run {
        let sent = if code == 0 {
            run.success_with_text(&text)
        } else {
            run.fail_with_code(Some(code), &text)
        };
        if let Err(err) = sent {
            warn(&format!("cannot report the end of the run: {err}"));
        }
    }
    if let Some(c) = &client {
        close(c, cli.close_timeout);
    }
    ExitCode::from(u8::try_from(code.clamp(0, 255)).unwrap_or(1))
}
