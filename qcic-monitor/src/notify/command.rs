//! The command channel: runs a program with the notification as JSON on its
//! standard input (the road to SMS and anything else), with a timeout.

use std::process::Stdio;
use std::time::Duration;

use super::retry::Failure;
use crate::config::CommandConfig;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// A ready command channel.
#[derive(Debug)]
pub struct CommandChannel {
    name: String,
    argv: Vec<String>,
    timeout: Duration,
}

impl CommandChannel {
    /// Checks the command line.
    pub fn new(name: String, cfg: &CommandConfig) -> Result<CommandChannel, String> {
        if cfg.command.is_empty() {
            return Err("command needs at least the program".into());
        }
        Ok(CommandChannel {
            name,
            argv: cfg.command.clone(),
            timeout: cfg.timeout,
        })
    }

    async fn run_once(&self, json: &[u8]) -> Result<(), Failure> {
        let (program, args) = self
            .argv
            .split_first()
            .ok_or_else(|| Failure::Permanent("empty command".into()))?;
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| Failure::Temporary(format!("cannot start {program:?}: {e}")))?;
        if let Some(mut stdin) = child.stdin.take() {
            // One write, newline included: a pipe write of up to PIPE_BUF
            // bytes is atomic, so a watcher killed here leaves the program
            // a whole line or nothing, never a line without its end that
            // the next notification would be glued onto.
            let mut line = Vec::with_capacity(json.len() + 1);
            line.extend_from_slice(json);
            line.push(b'\n');
            // A program that does not read its input is its own business.
            let _ = stdin.write_all(&line).await;
        }
        match tokio::time::timeout(self.timeout, child.wait()).await {
            Ok(Ok(status)) if status.success() => Ok(()),
            Ok(Ok(status)) => Err(Failure::Temporary(format!(
                "{program:?} exited with {status}"
            ))),
            Ok(Err(e)) => Err(Failure::Temporary(format!(
                "cannot wait for {program:?}: {e}"
            ))),
            Err(_) => {
                let _ = child.kill().await;
                Err(Failure::Temporary(format!(
                    "{program:?} did not finish within {}",
                    humantime::format_duration(self.timeout)
                )))
            }
        }
    }
}

impl super::lanes::Attempt for CommandChannel {
    fn name(&self) -> &str {
        &self.name
    }

    // Past the command's own timeout (which kills it): this one also
    // covers a program that never reads its input.
    fn deadline(&self) -> Duration {
        self.timeout + Duration::from_secs(5)
    }

    async fn attempt(&self, note: &crate::notification::Notification) -> Result<(), Failure> {
        let json = serde_json::to_vec(note).unwrap_or_default();
        self.run_once(&json).await
    }

    // For machines: every notification whole, as one JSON document.
    async fn attempt_digest(&self, digest: super::digest::Digest<'_>) -> Result<(), Failure> {
        let json = serde_json::to_vec(&digest.json()).unwrap_or_default();
        self.run_once(&json).await
    }
}
