//! Real parts for the integration tests: the qcic-monitor binary, an aiosmtpd
//! SMTP server process, a ZeroMQ SUB socket on the alert stream.
#![allow(dead_code, reason = "each test file uses a different subset")]

use std::fs;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use serde_json::Value;

pub const WAIT: Duration = Duration::from_secs(20);

/// A loopback port free now, and never handed out before in this test
/// binary: the OS may offer a port again once its listener is closed, and
/// two tests running in parallel must not both take it (one test's "dead"
/// SMTP port became another's live listener, once).
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut given = GIVEN
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Waits for `cond` to hold, up to `within`.
pub fn wait_until(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        sleep(Duration::from_millis(20));
    }
}

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
        let listen = format!("tcp://127.0.0.1:{}", free_port());
        let publish = format!("tcp://127.0.0.1:{}", free_port());
        let http = format!("127.0.0.1:{}", free_port());
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
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
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
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
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

/// The qcic-monitor binary: this build's, or `QCIC_TEST_MONITOR_BIN` (to
/// run the tests against another build, e.g. to see a fixed defect fail
/// on the build before the fix).
pub fn monitor_bin() -> PathBuf {
    std::env::var_os("QCIC_TEST_MONITOR_BIN")
        .map_or_else(|| env!("CARGO_BIN_EXE_qcic-monitor").into(), PathBuf::from)
}

/// The `qcic` command (qcic-sdk's binary), built if it is not yet
/// (`QCIC_TEST_QCIC_BIN` names another build).
pub fn qcic_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("QCIC_TEST_QCIC_BIN") {
        return bin.into();
    }
    let bin = Path::new(env!("CARGO_BIN_EXE_qcic-monitor")).with_file_name("qcic");
    static BUILT: std::sync::Once = std::sync::Once::new();
    BUILT.call_once(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--quiet", "-p", "qcic-sdk", "--bin", "qcic"])
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

fn python() -> PathBuf {
    if let Ok(p) = std::env::var("QCIC_TEST_PYTHON") {
        return p.into();
    }
    let venv = workspace_root().join(".venv/bin/python");
    if venv.exists() {
        venv
    } else {
        "python3".into()
    }
}

/// A real SMTP server (aiosmtpd) writing every email into a Maildir.
pub struct Smtp {
    child: Child,
    pub port: u16,
    pub maildir: tempfile::TempDir,
}

impl Smtp {
    pub fn start() -> Smtp {
        Smtp::start_on(free_port())
    }

    pub fn start_on(port: u16) -> Smtp {
        let maildir = tempfile::tempdir().unwrap();
        for sub in ["cur", "new", "tmp"] {
            fs::create_dir(maildir.path().join(sub)).unwrap();
        }
        let mut child = Command::new(python())
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(maildir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot run python for aiosmtpd (scripts/setup.sh makes .venv)");
        let up = wait_until(WAIT, || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
                || child.try_wait().ok().flatten().is_some()
        });
        if !up || child.try_wait().ok().flatten().is_some() {
            let mut err = String::new();
            if let Some(mut stderr) = child.stderr.take() {
                let _ = stderr.read_to_string(&mut err);
            }
            let _ = child.kill();
            panic!("aiosmtpd did not start (run scripts/setup.sh to install it): {err}");
        }
        Smtp {
            child,
            port,
            maildir,
        }
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every email received so far, unfolded, oldest first.
    pub fn emails(&self) -> Vec<String> {
        read_maildir(self.maildir.path())
    }

    /// Waits until at least `n` emails arrived.
    pub fn wait_for(&self, n: usize) -> Vec<String> {
        let mut mails = Vec::new();
        let ok = wait_until(WAIT, || {
            mails = self.emails();
            mails.len() >= n
        });
        assert!(ok, "expected {n} emails, got {}: {mails:#?}", mails.len());
        mails
    }
}

fn read_maildir(dir: &Path) -> Vec<String> {
    let mut files: Vec<(std::time::SystemTime, String)> = fs::read_dir(dir.join("new"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| {
                    let modified = e.metadata().ok()?.modified().ok()?;
                    let text = fs::read_to_string(e.path()).ok()?;
                    Some((modified, text.replace("\r\n", "\n").replace("\n ", " ")))
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files.into_iter().map(|(_, text)| text).collect()
}

/// The value of a header in a raw email.
pub fn header<'a>(email: &'a str, name: &str) -> Option<&'a str> {
    let prefix = format!("{name}: ");
    email
        .lines()
        .take_while(|l| !l.is_empty())
        .find_map(|l| l.strip_prefix(&prefix))
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A SUB socket on a monitor's alert stream.
pub struct Alerts {
    _ctx: zmq::Context,
    socket: zmq::Socket,
    /// Every alert received, in order.
    pub seen: Vec<(String, Value)>,
    /// Received but not yet taken by `expect`.
    pending: Vec<(String, Value)>,
}

impl Alerts {
    pub fn subscribe(endpoint: &str) -> Alerts {
        let ctx = zmq::Context::new();
        let socket = ctx.socket(zmq::SUB).unwrap();
        socket.set_linger(0).unwrap();
        socket.set_rcvtimeo(200).unwrap();
        socket.set_subscribe(b"alert.").unwrap();
        socket.connect(endpoint).unwrap();
        // PUB drops what is published before the subscription reaches it
        // (the "slow joiner"); on loopback it takes well under this.
        sleep(Duration::from_millis(500));
        Alerts {
            _ctx: ctx,
            socket,
            seen: Vec::new(),
            pending: Vec::new(),
        }
    }

    /// True if no alert with this topic arrives within `wait` (others are kept).
    pub fn none_within(&mut self, topic: &str, wait: Duration) -> bool {
        if self.pending.iter().any(|(t, _)| t == topic) {
            return false;
        }
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            let Ok(frames) = self.socket.recv_multipart(0) else {
                continue;
            };
            let got = String::from_utf8(frames[0].clone()).unwrap();
            let body: Value = rmp_serde::from_slice(&frames[1]).unwrap();
            self.seen.push((got.clone(), body.clone()));
            if got == topic {
                self.pending.push((got, body));
                return false;
            }
            self.pending.push((got, body));
        }
        true
    }

    /// Takes the oldest alert with this topic, waiting for it if none came
    /// yet. Alerts of other topics stay for later calls: two channels or two
    /// jobs may publish in either order.
    pub fn expect(&mut self, topic: &str) -> Value {
        if let Some(i) = self.pending.iter().position(|(t, _)| t == topic) {
            return self.pending.remove(i).1;
        }
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            let Ok(frames) = self.socket.recv_multipart(0) else {
                continue;
            };
            assert_eq!(frames.len(), 2, "an alert is two frames");
            let got = String::from_utf8(frames[0].clone()).unwrap();
            let body: Value = rmp_serde::from_slice(&frames[1]).unwrap();
            self.seen.push((got.clone(), body.clone()));
            if got == topic {
                return body;
            }
            self.pending.push((got, body));
        }
        panic!("no alert {topic} within {WAIT:?}; saw {:#?}", self.seen);
    }
}

/// A plain HTTP/1.1 GET; returns (status line, body).
pub fn http_get(addr: &str, path: &str) -> (String, String) {
    use std::io::Write;
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    (
        head.lines().next().unwrap_or("").to_owned(),
        body.to_owned(),
    )
}

/// The sum of a metric's samples in Prometheus text.
pub fn metric_sum(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// splitmix64: small and seedable, for the seeded simulations (the same
/// seed gives the same schedule, so a failing seed replays exactly).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// The seeds a seeded simulation runs: the one in `{prefix}_SEED` (to
/// replay it), else the regression seeds and then 1 to `{prefix}_SCHEDULES`
/// (default `schedules`).
pub fn seeds(prefix: &str, regression: &[u64], schedules: u64) -> Vec<u64> {
    if let Ok(seed) = std::env::var(format!("{prefix}_SEED")) {
        return vec![seed.parse().expect("the seed is a number")];
    }
    let n = std::env::var(format!("{prefix}_SCHEDULES"))
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(schedules);
    regression.iter().copied().chain(1..=n).collect()
}

/// A misbehaving server from `tests/bad_servers.py` (see its usage), killed
/// on drop.
pub struct BadServer {
    child: Child,
    pub port: u16,
}

impl BadServer {
    /// Starts `mode` on a fresh port with `args` after the port; waits for
    /// its "ready".
    pub fn start(mode: &str, args: &[&str]) -> BadServer {
        use std::io::BufRead;
        let port = free_port();
        let script = workspace_root().join("qcic-monitor/tests/bad_servers.py");
        let mut child = Command::new(python())
            .arg(script)
            .arg(mode)
            .arg(port.to_string())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("cannot run python for tests/bad_servers.py");
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            let _ = std::io::BufReader::new(out).read_line(&mut line);
        }
        assert_eq!(line.trim(), "ready", "bad_servers.py {mode} did not start");
        BadServer { child, port }
    }
}

impl Drop for BadServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Lines of a JSON-lines file, parsed (a missing file is empty).
pub fn json_lines(path: &Path) -> Vec<Value> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}
