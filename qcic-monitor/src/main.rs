//! `qcic-monitor`: parse the command line, start logging, run the watcher.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use qcic_monitor::config::Config;
use qcic_monitor::control::Request;
use tracing_subscriber::EnvFilter;

/// The qcic watcher: raises the alarm when a batch job's expected message does not arrive.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Configuration file (TOML). Without it, the embedded examples/monitor.toml.
    #[arg(long, short, value_name = "FILE", global = true)]
    config: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value = "text", global = true)]
    log_format: LogFormat,
    /// Also run a demo sender against the first listen endpoint.
    #[arg(long)]
    demo: bool,
    /// Check the configuration, print a summary and exit.
    #[arg(long)]
    check_config: bool,
}

#[derive(Debug, clap::Subcommand)]
enum SilenceOp {
    /// Silence a job for a while.
    Add {
        /// The job.
        #[arg(long)]
        job: String,
        /// How long, e.g. 2h.
        #[arg(long = "for", value_parser = qcic_monitor::config::parse_duration)]
        duration: std::time::Duration,
        /// Why (shown in status).
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// List silences and pauses.
    List,
    /// End a job's silence now; incidents still open are notified.
    Remove {
        /// The job.
        #[arg(long)]
        job: String,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Validate the configuration and print every job's schedule, with the
    /// next fire times of cron jobs.
    Check,
    /// Hold back a job's notifications for a while (it still records what happens).
    Silence {
        #[command(subcommand)]
        op: SilenceOp,
        /// The control socket [default: from the configuration].
        #[arg(long, value_name = "PATH", global = true)]
        control: Option<PathBuf>,
    },
    /// Pause a job's notifications until `resume`.
    Pause {
        /// The job.
        #[arg(long)]
        job: String,
        /// Why (shown in status).
        #[arg(long, default_value = "")]
        reason: String,
        /// The control socket [default: from the configuration].
        #[arg(long, value_name = "PATH")]
        control: Option<PathBuf>,
    },
    /// End a pause (or silence) now; incidents still open are notified.
    Resume {
        /// The job.
        #[arg(long)]
        job: String,
        /// The control socket [default: from the configuration].
        #[arg(long, value_name = "PATH")]
        control: Option<PathBuf>,
    },
    /// Ask the running monitor (through its control socket) what it thinks
    /// of every job.
    Status {
        /// The control socket [default: from the configuration].
        #[arg(long, value_name = "PATH")]
        control: Option<PathBuf>,
    },
    /// Acknowledge an open incident ("I'm on it"): no reminders and no
    /// escalation follow; its follow-up still goes out. In a farm every
    /// watcher learns it.
    Ack {
        /// The incident id (from the notification, `status` or the API).
        incident: String,
        /// What you say (shown in status, the API and the page).
        #[arg(long)]
        comment: Option<String>,
        /// Who acknowledges [default: $USER].
        #[arg(long)]
        by: Option<String>,
        /// The control socket [default: from the configuration].
        #[arg(long, value_name = "PATH")]
        control: Option<PathBuf>,
    },
    /// Stop watching a job that declared itself (it is watched again when
    /// it next declares itself); a job in the configuration is removed there.
    Forget {
        /// The job.
        #[arg(long)]
        job: String,
        /// The control socket [default: from the configuration].
        #[arg(long, value_name = "PATH")]
        control: Option<PathBuf>,
    },
    /// A job's runs, newest first, from the state database: start,
    /// duration, outcome, exit code, host and last text.
    History {
        /// The job.
        #[arg(long)]
        job: String,
        /// How many runs.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// The state database [default: from the configuration].
        #[arg(long, value_name = "PATH")]
        state: Option<PathBuf>,
    },
    /// Write a commented starter configuration (one example job, the
    /// status page on loopback, email if given) that passes `check`.
    Init {
        /// Write it here (refused if the file exists) instead of to stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Send alarms by email to this address (with --smtp).
        #[arg(long, value_name = "ADDR", requires = "smtp")]
        email_to: Option<String>,
        /// The SMTP server: smtp://host:port (?tls=required) or smtps://host:port.
        #[arg(long, value_name = "URL", requires = "email_to")]
        smtp: Option<String>,
        /// `[monitor] id` [default: the host name].
        #[arg(long)]
        id: Option<String>,
        /// For a system service: state in /var/lib/qcic, the control socket
        /// in /run/qcic, the id left to the host name at run time (the
        /// Debian package's /etc/qcic/monitor.toml).
        #[arg(long, conflicts_with = "id")]
        system: bool,
    },
    /// Write a new CURVE key pair: PREFIX.key (both keys, mode 0600) and PREFIX.pub.
    Keygen {
        /// Path prefix of the two files, e.g. /etc/qcic/watcher-a.
        #[arg(long, value_name = "PREFIX")]
        out: PathBuf,
        /// Instead, a farm key (PREFIX.key, mode 0600) that every watcher of
        /// a farm shares to seal its gossip ([farm] key_file).
        #[arg(long)]
        farm: bool,
    },
}

/// Writes to stdout; a reader that went away (`status | head`) is not an
/// error worth a panic.
fn to_stdout(text: &str) {
    use std::io::Write;
    let _ = std::io::stdout().write_all(text.as_bytes());
}

/// A new private directory (mode 0700) under the temporary directory.
fn throwaway_dir() -> std::io::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = std::env::temp_dir().join(format!("qcic-demo-{}", std::process::id()));
    std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
    Ok(dir)
}

/// `init`: the starter configuration, to `out` (never over a file) or stdout.
fn init(
    out: Option<&PathBuf>,
    starter: &qcic_monitor::config::starter::Starter,
) -> Result<String, String> {
    let text = qcic_monitor::config::starter::starter(starter);
    // Checked as written: a bad --smtp or --email-to is said now, not at start.
    qcic_monitor::config::Config::parse(&text, "init").map_err(|e| e.to_string())?;
    let Some(path) = out else {
        return Ok(text);
    };
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| format!("{}: {e} (init never overwrites a file)", path.display()))?;
    file.write_all(text.as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(format!(
        "wrote {}; next: qcic-monitor --config {} check, then qcic-monitor --config {}\n",
        path.display(),
        path.display(),
        path.display()
    ))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Init {
        out,
        email_to,
        smtp,
        id,
        system,
    }) = &cli.command
    {
        let starter = qcic_monitor::config::starter::Starter {
            id: id
                .clone()
                .unwrap_or_else(|| gethostname::gethostname().to_string_lossy().into_owned()),
            email: email_to.clone().zip(smtp.clone()),
            system: *system,
        };
        return match init(out.as_ref(), &starter) {
            Ok(text) => {
                to_stdout(&text);
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("qcic-monitor init: {err}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(Command::Keygen { out, farm }) = &cli.command {
        let made = if *farm {
            qcic_monitor::keys::farm_keygen(out)
        } else {
            qcic_monitor::keys::keygen(out)
        };
        return match made {
            Ok(written) => {
                to_stdout(&written);
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("qcic-monitor keygen: {err}");
                ExitCode::FAILURE
            }
        };
    }
    let mut filter = EnvFilter::try_from_env("QCIC_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    // chitchat's UDP socket warns once per bad datagram, unlimited. With a
    // sealed farm it is the loopback codec, which any local process can
    // write to (farm::sealed): a log flood. The seal counts and rate-limits
    // its own refusals instead.
    if let Ok(quiet) = "chitchat::transport::udp=error".parse() {
        filter = filter.add_directive(quiet);
    }
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => logs.json().init(),
    }

    let config = match &cli.config {
        Some(path) => Config::load(path),
        None => Config::embedded(),
    };
    let mut config = match config {
        Ok(config) => config,
        Err(err) => {
            eprintln!("qcic-monitor: configuration error: {err}");
            return ExitCode::from(2);
        }
    };
    // The demo on the embedded defaults keeps its state database and
    // control socket in a throwaway directory: a second demo starts
    // afresh (not with the first one's incidents restored), and a demo
    // never touches the state of a watcher run for real under the same id.
    let demo_dir = match (cli.demo, &cli.config, &cli.command) {
        (true, None, None) => match throwaway_dir() {
            Ok(dir) => {
                config.monitor.state = Some(dir.join("state.db"));
                config.monitor.control = dir.join("control.sock");
                Some(dir)
            }
            Err(err) => {
                eprintln!("qcic-monitor: cannot make the demo's directory: {err}");
                return ExitCode::FAILURE;
            }
        },
        _ => None,
    };
    if let Some(Command::Check) = &cli.command {
        to_stdout(&qcic_monitor::config::describe(
            &config,
            qcic_monitor::clock::wall_ms(),
        ));
        return ExitCode::SUCCESS;
    }
    let silence_request = match &cli.command {
        Some(Command::Silence { op, control }) => Some((
            control,
            match op {
                SilenceOp::Add {
                    job,
                    duration,
                    reason,
                } => Request::SilenceAdd {
                    job: job.clone(),
                    for_ms: Some(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)),
                    reason: Some(reason.clone()),
                },
                SilenceOp::List => Request::SilenceList,
                SilenceOp::Remove { job } => Request::SilenceRemove { job: job.clone() },
            },
        )),
        Some(Command::Pause {
            job,
            reason,
            control,
        }) => Some((
            control,
            Request::SilenceAdd {
                job: job.clone(),
                for_ms: None,
                reason: Some(reason.clone()),
            },
        )),
        Some(Command::Resume { job, control }) => {
            Some((control, Request::SilenceRemove { job: job.clone() }))
        }
        Some(Command::Forget { job, control }) => {
            Some((control, Request::Forget { job: job.clone() }))
        }
        Some(Command::Ack {
            incident,
            comment,
            by,
            control,
        }) => Some((
            control,
            Request::Ack {
                incident: incident.clone(),
                by: by
                    .clone()
                    .or_else(|| std::env::var("USER").ok())
                    .filter(|b| !b.trim().is_empty()),
                comment: comment.clone(),
            },
        )),
        _ => None,
    };
    if let Some((control, request)) = silence_request {
        let path = control
            .clone()
            .unwrap_or_else(|| config.monitor.control.clone());
        return match qcic_monitor::control::silence(&path, &request) {
            Ok(text) => {
                to_stdout(&text);
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("qcic-monitor: {err}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(Command::History { job, limit, state }) = &cli.command {
        let Some(path) = state.clone().or_else(|| config.monitor.state.clone()) else {
            eprintln!(
                "qcic-monitor history: {}: the state database is off (state = \"off\"): no run history is kept",
                config.source
            );
            return ExitCode::FAILURE;
        };
        return match qcic_monitor::history::read(&path, job, *limit, None) {
            Ok(runs) => {
                to_stdout(&qcic_monitor::history::table(&runs));
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("qcic-monitor history: {err}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(Command::Status { control }) = &cli.command {
        let path = control
            .clone()
            .unwrap_or_else(|| config.monitor.control.clone());
        return match qcic_monitor::control::print_status(&path) {
            Ok(table) => {
                to_stdout(&table);
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("qcic-monitor status: {err}");
                ExitCode::FAILURE
            }
        };
    }
    if cli.check_config {
        println!(
            "{}: ok: watcher {}, {} jobs, {} notify channels",
            config.source,
            config.monitor.id,
            config.jobs.len(),
            config.notify.len()
        );
        return ExitCode::SUCCESS;
    }

    qcic_monitor::exit_on_panic();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("qcic-monitor: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(dir) = &demo_dir {
        tracing::info!(dir = %dir.display(), "the demo keeps its state and control socket here (removed at exit)");
    }
    let ran = runtime.block_on(qcic_monitor::run(config, shutdown_signal(), cli.demo));
    if let Some(dir) = demo_dir {
        let _ = std::fs::remove_dir_all(dir);
    }
    match ran {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("qcic-monitor: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}
