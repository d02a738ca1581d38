//! What the qcic tests and benchmarks share, so that each has one copy:
//!
//! - [`net`]: a PULL test receiver ([`Receiver`]) on a port libzmq picks,
//!   loopback ports held for a server that binds later ([`reserve_port`]),
//!   an endpoint nobody listens on ([`dead_endpoint`]), a port outside the
//!   range the kernel hands out, for servers that bind without
//!   `SO_REUSEADDR` ([`free_port`]), a
//!   flood of idle ZMTP connections ([`idle_flood`]), a sender flooding on
//!   a thread of its own ([`Flood`]), and a plain HTTP GET
//!   ([`http_get`]).
//! - [`monitor`]: the real `qcic-monitor` binary on a config in a temp dir
//!   ([`Monitor`]), the `qcic` command ([`qcic_bin`]), and reading what a
//!   monitor said: its counters, metrics and notification files.
//! - [`servers`]: a real SMTP server ([`Smtp`]) and the misbehaving servers
//!   of `qcic-monitor/tests/bad_servers.py` ([`BadServer`]).
//! - [`alerts`]: a SUB socket on a monitor's alert stream ([`Alerts`]).
//! - [`sim`]: the seeded simulations' random numbers ([`Rng`], [`seeds`]).
//!
//! Used only as a dev-dependency: a panic is a test's failure report.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_debug_implementations,
    reason = "test fixtures: a panic is the failure report"
)]

pub mod alerts;
pub mod monitor;
pub mod net;
pub mod servers;
pub mod sim;

use std::path::PathBuf;
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use alerts::Alerts;
pub use monitor::{
    Monitor, counter, json_lines, metric_sum, monitor_bin, note_channel, notes, notes_of, qcic_bin,
    rss_kib, wait_notes,
};
pub use net::{
    DeadEndpoint, Flood, Receiver, ReservedPort, dead_endpoint, free_port, http_get, http_request,
    idle_flood, reserve_port, reserve_port_v6,
};
pub use servers::{BadServer, Smtp, header, incidents_in};
pub use sim::{Rng, seeds};

/// How long a test waits for something that should happen.
pub const WAIT: Duration = Duration::from_secs(20);

/// The workspace's root directory.
pub fn workspace_root() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    std::fs::canonicalize(&root).unwrap_or(root)
}

/// Where cargo put the running test or benchmark binary's build: the
/// folder above its `deps` (`target/release` or `target/debug`), where
/// the workspace's binaries are.
pub fn target_dir() -> PathBuf {
    // target/<profile>/deps/<test>-HASH
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
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

/// The wall clock, unix milliseconds.
pub fn now_ms() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// The Python with the test requirements: `QCIC_TEST_PYTHON`, else the
/// workspace's `.venv` (scripts/setup.sh makes it), else `python3`.
pub fn python() -> PathBuf {
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

/// Whether this process runs as root (the tests that mount file systems
/// or make network namespaces need it).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next().map(|u| u == "0"))
        .unwrap_or(false)
}

/// Waits for this test binary's turn, for tests that must not run beside
/// each other (they share two cores and would time each other out, or share
/// names); the turn ends when the guard is dropped. One lock per test
/// binary: tests of other binaries are other processes.
pub fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    TURN.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Writes the tests' farm key to `path`, mode 0600 as `qcic-monitor keygen
/// --farm` leaves it (a key file every user may read is refused).
pub fn write_farm_key(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(
        path,
        "farm-key = \"+MBOt!Fypf4F{geHp:-ksGu!]Wq4N3:<Pgtp=oZ6\"\n",
    )
    .unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// Installs the libqcic that cargo built in `built` into `prefix` the way a
/// C user does (`scripts/build-c.sh`: versioned names after the SONAME,
/// pkg-config files). Programs linked against libqcic load it by its
/// SONAME, which only such an install provides.
pub fn install_libqcic(prefix: &std::path::Path, built: &std::path::Path) -> Result<(), String> {
    let status = std::process::Command::new("bash")
        .arg(workspace_root().join("scripts/build-c.sh"))
        .arg(prefix)
        .env("QCIC_NO_BUILD", "1")
        .env("QCIC_LIB_DIR", built)
        .status()
        .map_err(|e| format!("scripts/build-c.sh: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("scripts/build-c.sh failed: {status}"))
    }
}
