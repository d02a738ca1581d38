//! The one error type of the sender.

/// Everything a sender call can report. Sending itself never blocks and never
/// fails loudly: a message that cannot be queued is dropped and counted, and
/// the call says so with [`Error::QueueFull`].
// Not #[non_exhaustive]: the C and Python layers map every variant with an
// exhaustive match, so a new variant must break their build, not slip by.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No watcher endpoint was given.
    #[error("no watcher endpoint given")]
    NoEndpoints,
    /// libzmq refused an endpoint (bad syntax, unknown transport, ...).
    #[error("bad watcher endpoint {endpoint:?}: {source}")]
    Endpoint {
        /// The endpoint as given.
        endpoint: String,
        /// libzmq's reason.
        source: zmq::Error,
    },
    /// libzmq failed to make a socket or set an option.
    #[error("ZeroMQ setup failed: {0}")]
    Zmq(#[from] zmq::Error),
    /// A CURVE key is malformed, or this libzmq cannot do CURVE.
    #[error("CURVE: {0}")]
    Key(String),
    /// The background sender thread could not be started.
    #[error("cannot start the sender thread: {0}")]
    Thread(#[from] std::io::Error),
    /// The job name breaks the protocol's rules.
    #[error("invalid job name {job:?}: {reason}")]
    InvalidJob {
        /// The name as given.
        job: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The queue to the sender thread is full; the message was dropped and counted.
    #[error("send queue full: message dropped")]
    QueueFull,
    /// The client was closed; the message was dropped and counted.
    #[error("client is closed")]
    Closed,
    /// A declaration breaks a rule (the key is named).
    #[error("invalid declaration: {0}")]
    InvalidSpec(#[from] crate::declare::SpecError),
    /// A message given to [`crate::Client::send_message`] breaks the protocol's rules.
    #[error("invalid message: {0}")]
    InvalidMessage(String),
}
