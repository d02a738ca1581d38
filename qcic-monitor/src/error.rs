//! The monitor's error type.

use crate::config::ConfigError;

/// What can stop the monitor from starting or running.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    /// The configuration is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// An endpoint could not be bound.
    #[error("cannot bind {endpoint:?}: {source}")]
    Bind {
        /// The endpoint.
        endpoint: String,
        /// libzmq's reason.
        source: zmq::Error,
    },
    /// libzmq failed otherwise.
    #[error("ZeroMQ: {0}")]
    Zmq(#[from] zmq::Error),
    /// A notification channel could not be set up.
    #[error("notify[{index}] ({kind}): {reason}")]
    Channel {
        /// Position in the config's `[[notify]]` list.
        index: usize,
        /// The channel kind.
        kind: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A task the watcher cannot work without ended while it ran (its
    /// input closed): it would go on answering while alarming no more.
    #[error(
        "the {task} stopped while the watcher was running; exiting so that a supervisor restarts it"
    )]
    TaskEnded {
        /// Which.
        task: &'static str,
    },
    /// The control socket could not be set up.
    #[error("control socket {}: {reason}", path.display())]
    Control {
        /// Its path.
        path: std::path::PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The HTTP endpoint could not be bound.
    #[error("http {addr}: {reason}")]
    Http {
        /// The address.
        addr: std::net::SocketAddr,
        /// What went wrong.
        reason: String,
    },
    /// The farm's gossip could not start.
    #[error("farm gossip {addr}: {reason}")]
    Farm {
        /// The gossip address.
        addr: std::net::SocketAddr,
        /// What went wrong.
        reason: String,
    },
    /// The state database could not be opened.
    #[error("state database {}: {reason}", path.display())]
    State {
        /// Its path.
        path: std::path::PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A thread could not be started.
    #[error("cannot start a thread: {0}")]
    Thread(#[from] std::io::Error),
}
