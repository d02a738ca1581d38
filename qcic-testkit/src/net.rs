//! Endpoints and ports on loopback, without the race of a port picked,
//! released and bound later (meanwhile another test, or some connection's
//! ephemeral port, can take it: seen as `AddrInUse`, and as one test's
//! "dead" port turning into another's live listener).
//!
//! - Where this process binds, libzmq picks the port and keeps it
//!   (`tcp://127.0.0.1:*`, read back with `get_last_endpoint`): [`Receiver`].
//! - Where a server binds later (a monitor, an SMTP server), the port is
//!   held until then by a socket bound with `SO_REUSEADDR` that never
//!   listens: [`ReservedPort`]. Linux hands such a port to no `bind` to
//!   port 0 and to no outgoing connection, yet lets a server that sets
//!   `SO_REUSEADDR` bind it (libzmq, tokio and Python's servers all do).
//! - A port so held and never listened on refuses every connection:
//!   [`DeadEndpoint`].
//! - Where the server binds without `SO_REUSEADDR` (UDP gossip), the port
//!   comes from outside the range the kernel hands out: [`free_port`].

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::socket::{
    AddressFamily, SockFlag, SockType, SockaddrIn, SockaddrIn6, bind, getsockname, setsockopt,
    socket, sockopt,
};
use qcic_sdk::Message;

/// A loopback port, free now for TCP and UDP, for a server that binds it
/// later without `SO_REUSEADDR` (a farm's UDP gossip; an IPv6 listen),
/// where [`reserve_port`] cannot hold it. Taken from below the kernel's
/// ephemeral range (`net.ipv4.ip_local_port_range`), which the kernel
/// hands to no `bind` to port 0 and to no outgoing connection, so only a
/// process that names the same port can race for it; each is handed out
/// once per test binary, from a start that differs per process.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768);
    // Ports from 10000 up to the ephemeral range: no well-known service.
    let span = low.saturating_sub(10_000).max(1_000);
    // A random start per process: two test binaries at once (cargo runs
    // them one at a time, but a bench or a second checkout may not) do
    // not walk the same ports.
    static START: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    let start = *START.get_or_init(|| {
        use std::hash::{BuildHasher, Hasher};
        let random = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        u32::try_from(random % u64::from(span)).unwrap_or(0)
    });
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        assert!(n < span, "no free port left below {low}");
        let port = u16::try_from(10_000 + (start + n) % span).expect("a port");
        if TcpListener::bind(("127.0.0.1", port)).is_ok()
            && std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok()
        {
            return port;
        }
    }
}

/// A loopback TCP port held for a server that binds it later (see the
/// module's notes); released on drop. Nobody listens on it until that
/// server does: connections are refused.
#[derive(Debug)]
pub struct ReservedPort {
    port: u16,
    _held: OwnedFd,
}

/// Holds a loopback TCP port the kernel picks.
pub fn reserve_port() -> ReservedPort {
    let fd = reuse_socket(AddressFamily::Inet);
    bind(fd.as_raw_fd(), &SockaddrIn::new(127, 0, 0, 1, 0)).expect("a loopback port");
    let port = getsockname::<SockaddrIn>(fd.as_raw_fd())
        .expect("the port bound")
        .port();
    ReservedPort { port, _held: fd }
}

/// Holds an IPv6 loopback (`[::1]`) TCP port the kernel picks.
pub fn reserve_port_v6() -> ReservedPort {
    let fd = reuse_socket(AddressFamily::Inet6);
    let loopback = std::net::SocketAddrV6::new(std::net::Ipv6Addr::LOCALHOST, 0, 0, 0);
    bind(fd.as_raw_fd(), &SockaddrIn6::from(loopback)).expect("an IPv6 loopback port");
    let port = getsockname::<SockaddrIn6>(fd.as_raw_fd())
        .expect("the port bound")
        .port();
    ReservedPort { port, _held: fd }
}

fn reuse_socket(family: AddressFamily) -> OwnedFd {
    let fd = socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None).expect("a TCP socket");
    setsockopt(&fd, sockopt::ReuseAddr, &true).expect("SO_REUSEADDR");
    fd
}

impl ReservedPort {
    /// The port number.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `tcp://127.0.0.1:PORT`, for a ZeroMQ socket.
    pub fn endpoint(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }
}

/// A ZeroMQ endpoint nobody listens on, and nobody else is given while
/// this lives: every connection to it is refused.
#[derive(Debug)]
pub struct DeadEndpoint {
    /// `tcp://127.0.0.1:PORT`.
    pub endpoint: String,
    _port: ReservedPort,
}

/// A fresh [`DeadEndpoint`].
pub fn dead_endpoint() -> DeadEndpoint {
    let port = reserve_port();
    DeadEndpoint {
        endpoint: port.endpoint(),
        _port: port,
    }
}

/// A real libzmq PULL socket standing in for a watcher, on a loopback port
/// libzmq picked (and keeps).
pub struct Receiver {
    _ctx: zmq::Context,
    pull: zmq::Socket,
    /// Where senders connect: `tcp://127.0.0.1:PORT`.
    pub endpoint: String,
}

impl Receiver {
    /// A plain (NULL security) receiver; [`Receiver::recv`] waits up to 10 s.
    pub fn bind() -> Receiver {
        Receiver::bind_with(None)
    }

    /// Like [`Receiver::bind`], as a CURVE server with this secret key
    /// when one is given.
    pub fn bind_with(curve_secret: Option<[u8; 32]>) -> Receiver {
        let ctx = zmq::Context::new();
        let pull = ctx.socket(zmq::PULL).unwrap();
        pull.set_linger(0).unwrap();
        pull.set_rcvtimeo(10_000).unwrap();
        if let Some(secret) = curve_secret {
            pull.set_curve_server(true).unwrap();
            pull.set_curve_secretkey(&secret).unwrap();
        }
        pull.bind("tcp://127.0.0.1:*").unwrap();
        let endpoint = pull.get_last_endpoint().unwrap().unwrap();
        Receiver {
            _ctx: ctx,
            pull,
            endpoint,
        }
    }

    /// The next message, decoded; panics if none comes within 10 s.
    pub fn recv(&self) -> Message {
        let frame = self.pull.recv_bytes(0).expect("a message within 10 s");
        Message::decode(&frame).unwrap()
    }

    /// The raw socket, for what the methods here do not cover.
    pub fn socket(&self) -> &zmq::Socket {
        &self.pull
    }

    /// Collects frames on a thread of its own until `n` arrived or
    /// `within` passed; they come out of the channel all at once.
    pub fn collect(self, n: usize, within: Duration) -> mpsc::Receiver<Vec<Vec<u8>>> {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            self.pull.set_rcvtimeo(200).unwrap();
            let deadline = Instant::now() + within;
            let mut frames = Vec::new();
            while frames.len() < n && Instant::now() < deadline {
                if let Ok(frame) = self.pull.recv_bytes(0) {
                    frames.push(frame);
                }
            }
            let _ = tx.send(frames);
        });
        rx
    }
}

/// `count` real libzmq PUSH sockets connected to `endpoint` from the
/// loopback addresses `sources` in turn, that complete the ZMTP handshake
/// (as CURVE clients of `curve_server`, each with a fresh key pair, when
/// it is given) and never send; libzmq reconnects each one as soon as it
/// is closed (an attacker reopening). Several contexts: one holds at most
/// 1 023 sockets. Raise this process's descriptor limit first for many.
pub fn idle_flood(
    endpoint: &str,
    sources: &[&str],
    count: usize,
    curve_server: Option<[u8; 32]>,
) -> Vec<(zmq::Context, Vec<zmq::Socket>)> {
    let port = endpoint.rsplit(':').next().unwrap();
    let mut held = Vec::new();
    for chunk in 0..count.div_ceil(500) {
        let ctx = zmq::Context::new();
        let mut sockets = Vec::new();
        for i in chunk * 500..count.min((chunk + 1) * 500) {
            let socket = ctx.socket(zmq::PUSH).unwrap();
            socket.set_linger(0).unwrap();
            if let Some(server) = curve_server {
                let (public, secret) = qcic_sdk::new_curve_pair().unwrap();
                socket.set_curve_serverkey(&server).unwrap();
                socket.set_curve_publickey(&public).unwrap();
                socket.set_curve_secretkey(&secret).unwrap();
            }
            let source = sources[i % sources.len()];
            socket
                .connect(&format!("tcp://{source}:0;127.0.0.1:{port}"))
                .unwrap();
            sockets.push(socket);
        }
        held.push((ctx, sockets));
    }
    held
}

/// A plain HTTP/1.1 request with an optional bearer token and JSON body;
/// returns (status line, body).
pub fn http_request(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (String, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
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

/// A plain HTTP/1.1 GET; returns (status line, body).
pub fn http_get(addr: &str, path: &str) -> (String, String) {
    http_request(addr, "GET", path, None, "")
}

/// A sender flooding on a thread of its own until [`Flood::stop`]. Its
/// body loops while `going()` and returns what it counted.
pub struct Flood {
    going: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<u64>,
}

impl Flood {
    /// Runs `body` on a new thread.
    pub fn start(body: impl FnOnce(&dyn Fn() -> bool) -> u64 + Send + 'static) -> Flood {
        use std::sync::atomic::Ordering;
        let going = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let flag = std::sync::Arc::clone(&going);
        let thread = std::thread::spawn(move || body(&|| flag.load(Ordering::SeqCst)));
        Flood { going, thread }
    }

    /// Ends the flood; what its body counted.
    pub fn stop(self) -> u64 {
        self.going.store(false, std::sync::atomic::Ordering::SeqCst);
        self.thread.join().expect("the flood thread panicked")
    }
}
