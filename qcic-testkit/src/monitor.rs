//! The real `qcic-monitor` binary on a config written to a temp dir, the
//! `qcic` command, and reading what a monitor said: the counters it logs at
//! exit, its metrics, and the notifications a command channel wrote.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::{ReservedPort, WAIT, reserve_port, target_dir, wait_until, workspace_root};

/// The real qcic-monitor binary on a config written to a temp dir.
pub struct Monitor {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub listen: String,
    pub publish: String,
    /// `{http}` in the body: a fresh loopback address for `[http] listen`.
    pub http: String,
    pub control: PathBuf,
    /// The `[monitor]` table as written, for `rewrite`.
    header: String,
    /// The listen, publish and HTTP ports, held while the monitor lives
    /// (and across `kill`/restarts of it).
    _ports: [ReservedPort; 3],
}

impl Monitor {
    /// Starts the monitor. `body` is appended to a `[monitor]` table with this
    /// id and a fresh listen port; `{publish}` in it becomes a fresh PUB endpoint.
    pub fn start(id: &str, body: &str) -> Monitor {
        Monitor::start_with(id, "", body, &[])
    }

    /// Like `start`, with extra `[monitor]` keys and environment variables.
    pub fn start_with(id: &str, monitor_keys: &str, body: &str, env: &[(&str, &str)]) -> Monitor {
        Monitor::start_wrapped(&[], id, monitor_keys, body, env)
    }

    /// Like `start_with`, run through `wrapper` (e.g. `["prlimit", "--nofile=256:256", "--"]`).
    pub fn start_wrapped(
        wrapper: &[&str],
        id: &str,
        monitor_keys: &str,
        body: &str,
        env: &[(&str, &str)],
    ) -> Monitor {
        let ports = [reserve_port(), reserve_port(), reserve_port()];
        let listen = ports[0].endpoint();
        let publish = ports[1].endpoint();
        let http = ports[2].addr();
        let dir = tempfile::tempdir().unwrap();
        let control = dir.path().join("control.sock");
        let state = if monitor_keys.contains("state =") {
            String::new()
        } else {
            format!("state = \"{}\"\n", dir.path().join("state.db").display())
        };
        // `listen = ` in `monitor_keys` replaces the fresh one.
        let listen_key = if monitor_keys.contains("listen =") {
            String::new()
        } else {
            format!("listen = [\"{listen}\"]\n")
        };
        let header = format!(
            "[monitor]\nid = \"{id}\"\n{listen_key}control = \"{}\"\n{state}{monitor_keys}\n\n",
            control.display(),
        );
        let config = format!(
            "{header}{}",
            body.replace("{publish}", &publish).replace("{http}", &http)
        );
        let path = dir.path().join("monitor.toml");
        fs::write(&path, config).unwrap();
        let log = fs::File::create(dir.path().join("stderr.log")).unwrap();
        let bin = monitor_bin();
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(bin);
                command
            }
            None => Command::new(bin),
        };
        let child = command
            .arg("--config")
            .arg(&path)
            .env("QCIC_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut monitor = Monitor {
            child: Some(child),
            dir,
            listen,
            publish,
            http,
            control,
            header,
            _ports: ports,
        };
        let started = wait_until(WAIT, || {
            monitor.log().contains("qcic-monitor started") || monitor.exited()
        });
        assert!(
            started && !monitor.exited(),
            "monitor did not start:\n{}",
            monitor.log()
        );
        monitor
    }

    /// Runs `qcic-monitor ARGS --control <its socket>` (status, silence,
    /// ack, ...), which must succeed; returns what it printed.
    pub fn ctl(&self, args: &[&str]) -> String {
        let out = Command::new(monitor_bin())
            .args(args)
            .arg("--control")
            .arg(&self.control)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Writes a new body under the same `[monitor]` table (placeholders as
    /// in `start`); the running monitor reads it on `hup`.
    pub fn rewrite(&self, body: &str) {
        let text = format!(
            "{}{}",
            self.header,
            body.replace("{publish}", &self.publish)
                .replace("{http}", &self.http)
        );
        fs::write(self.dir.path().join("monitor.toml"), text).unwrap();
    }

    /// Sends SIGHUP (reload the configuration).
    pub fn hup(&self) {
        let status = Command::new("kill")
            .args(["-HUP", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// The monitor's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Descriptors the monitor process has open.
    pub fn descriptors(&self) -> usize {
        fs::read_dir(format!("/proc/{}/fd", self.pid())).map_or(0, Iterator::count)
    }

    /// Resident memory of the monitor process, in KiB (VmRSS).
    pub fn rss_kib(&self) -> u64 {
        rss_kib(self.pid())
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    /// Waits for `text` to appear in the log; fails with the log if it does not.
    pub fn wait_log(&self, text: &str) {
        assert!(
            wait_until(WAIT, || self.log().contains(text)),
            "no {text:?} in the log:\n{}",
            self.log()
        );
    }

    /// Waits up to `within` for the monitor to exit by itself; its status.
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let mut status = None;
        wait_until(within, || {
            status = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            status.is_some()
        });
        status
    }

    fn exited(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_some())
    }

    /// SIGTERM, wait for exit, return the log.
    pub fn stop(mut self) -> String {
        if let Some(mut child) = self.child.take() {
            let status = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .unwrap();
            assert!(status.success());
            let exited = wait_until(WAIT, || child.try_wait().ok().flatten().is_some());
            if !exited {
                let _ = child.kill();
                panic!("monitor did not stop on SIGTERM:\n{}", self.log());
            }
        }
        self.log()
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A `[[notify]]` command channel that appends every notification to
/// `path`, one JSON document a line (read back with [`notes`]).
pub fn note_channel(path: &Path) -> String {
    format!(
        "\n[[notify]]\nkind = \"command\"\ncommand = [\"sh\", \"-c\", \"cat >> {}\"]\n",
        path.display()
    )
}

/// Every notification a [`note_channel`] wrote, oldest first.
pub fn notes(path: &Path) -> Vec<Value> {
    json_lines(path)
}

/// The notifications of `event` for `job` in `path`.
pub fn notes_of(path: &Path, event: &str, job: &str) -> Vec<Value> {
    notes(path)
        .into_iter()
        .filter(|n| n["event"] == event && n["job"] == job)
        .collect()
}

/// Waits until `path` holds at least `count` notifications of `event`
/// for `job`; returns them.
pub fn wait_notes(path: &Path, event: &str, job: &str, count: usize) -> Vec<Value> {
    let mut found = Vec::new();
    assert!(
        wait_until(WAIT, || {
            found = notes_of(path, event, job);
            found.len() >= count
        }),
        "expected {count} {event} for {job}, got {}: {:#?}",
        found.len(),
        notes(path)
    );
    found
}

/// The qcic-monitor binary: `QCIC_TEST_MONITOR_BIN` (to run the tests
/// against another build, e.g. to see a fixed defect fail on the build
/// before the fix), else this build's: the one cargo builds for
/// qcic-monitor's integration tests and benchmarks, beside their `deps`
/// (where `CARGO_BIN_EXE_qcic-monitor` points).
pub fn monitor_bin() -> PathBuf {
    std::env::var_os("QCIC_TEST_MONITOR_BIN")
        .map_or_else(|| target_dir().join("qcic-monitor"), PathBuf::from)
}

/// The `qcic` command (qcic-sdk's binary) of this build, built if it is
/// not yet (`QCIC_TEST_QCIC_BIN` names another build).
pub fn qcic_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("QCIC_TEST_QCIC_BIN") {
        return bin.into();
    }
    let dir = target_dir();
    let bin = dir.join("qcic");
    static BUILT: std::sync::Once = std::sync::Once::new();
    BUILT.call_once(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        build.args(["build", "--quiet", "-p", "qcic-sdk", "--bin", "qcic"]);
        // The same profile as this build, so that it lands where `bin` is.
        if dir.file_name().is_some_and(|d| d == "release") {
            build.arg("--release");
        }
        let status = build
            .current_dir(workspace_root())
            .status()
            .expect("cannot run cargo to build qcic");
        assert!(
            status.success(),
            "cargo build -p qcic-sdk --bin qcic failed"
        );
    });
    bin
}

/// Resident memory of a process, in KiB (VmRSS); 0 if it is gone.
pub fn rss_kib(pid: u32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// A counter from the monitor's "final counters" log line.
pub fn counter(log: &str, name: &str) -> Option<u64> {
    let line = log.lines().rev().find(|l| l.contains("final counters"))?;
    let key = format!(" {name}=");
    let start = line.find(&key)? + key.len();
    line[start..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// The sum of a metric's samples in Prometheus text.
pub fn metric_sum(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// Lines of a JSON-lines file, parsed (a missing file is empty).
pub fn json_lines(path: &Path) -> Vec<Value> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}
