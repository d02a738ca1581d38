//! Real servers in child processes: an SMTP server that keeps every email,
//! and the misbehaving servers of `qcic-monitor/tests/bad_servers.py`.

use std::fs;
use std::io::Read;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::{ReservedPort, WAIT, python, reserve_port, wait_until, workspace_root};

/// A real SMTP server (aiosmtpd) writing every email into a Maildir.
pub struct Smtp {
    child: Child,
    pub port: u16,
    pub maildir: tempfile::TempDir,
    _held: ReservedPort,
}

impl Smtp {
    pub fn start() -> Smtp {
        Smtp::start_on(reserve_port())
    }

    /// On a port held until now (a monitor already sends to it).
    pub fn start_on(held: ReservedPort) -> Smtp {
        let port = held.port();
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
            _held: held,
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

/// The incident ids an email names, each once: a digest's "incident
/// 3f2a9c1e5b7d4a60" lines, a lone notification's subject. Long lines
/// come quoted-printable: their soft line breaks are joined first.
pub fn incidents_in(mail: &str) -> Vec<String> {
    let mail = mail.replace("=\r\n", "").replace("=\n", "");
    let mut ids: Vec<String> = mail
        .split("incident ")
        .skip(1)
        .filter_map(|rest| rest.get(..16))
        .filter(|id| id.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_owned)
        .collect();
    ids.dedup();
    ids
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

/// A misbehaving server from `tests/bad_servers.py` (see its usage), killed
/// on drop.
pub struct BadServer {
    child: Child,
    pub port: u16,
    held: Option<ReservedPort>,
}

impl BadServer {
    /// Starts `mode` on a fresh port with `args` after the port; waits for
    /// its "ready".
    pub fn start(mode: &str, args: &[&str]) -> BadServer {
        use std::io::BufRead;
        let held = reserve_port();
        let port = held.port();
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
        BadServer {
            child,
            port,
            held: Some(held),
        }
    }

    /// Stops the server and hands its port on, still held (for a working
    /// server to take it).
    pub fn stop(mut self) -> ReservedPort {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.held.take().expect("held until stop")
    }
}

impl Drop for BadServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
