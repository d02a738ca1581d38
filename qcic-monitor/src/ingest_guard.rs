//! The guard on the ingest port's connections: libzmq accepts every TCP
//! connection and keeps it as long as the peer likes, so an attacker who
//! can reach the port could hold every descriptor the process has (and a
//! watcher out of descriptors sends no alarm). libzmq has no connection
//! limit of its own, so the guard watches the PULL socket's events and
//! closes what is over the limits.
//!
//! It closes a connection with `shutdown(2)`, never `close(2)`: the
//! descriptor stays libzmq's, which sees the end of the stream and closes
//! it itself, so no descriptor is ever closed under libzmq's feet. Before
//! that it checks that the descriptor is still the connection it was told
//! of (same peer address and port), so a number reused meanwhile by another
//! connection is left alone.
//!
//! Limits, all counted by `ingest_connections_closed`:
//! - at most `max` connections at once, `max` being what the descriptor
//!   limit leaves after the reserve (see [`Limits::from_nofile`]), and at
//!   most `per_ip` from one address; over either, the oldest connection
//!   within it that has not yet brought a valid message makes room (a
//!   sender on the attacker's own address still gets in), and if every one
//!   has, the newcomer is closed;
//! - a connection that brings no valid message within [`IDLE_AFTER`] of
//!   its accept is closed (a real sender's libzmq reconnects at once). The
//!   ZMTP handshake itself must end within 5 s ([`HANDSHAKE_IVL_MS`],
//!   libzmq's own timer).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use nix::sys::socket::{Shutdown, SockaddrStorage, getpeername, getsockname, shutdown};
use tracing::warn;

/// How long a connection has for the ZMTP handshake (libzmq's
/// `ZMQ_HANDSHAKE_IVL`; its default is 30 s).
pub const HANDSHAKE_IVL_MS: i32 = 5_000;

/// Descriptors kept for everything but ingest connections: the state
/// database, channels' connections and commands, libzmq's own, the farm.
pub const RESERVE: u64 = 96;

/// The guard's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Ingest connections at once.
    pub max: usize,
    /// From one peer address.
    pub per_ip: usize,
    /// A connection with no valid message for this long after its accept is closed.
    pub idle_after: Duration,
}

/// A connection with no valid message this long after its accept is
/// closed. Long, since the caps are the defence and this only tidies up;
/// and not a round number on purpose: a sender whose first message comes a
/// round interval (1, 5, 10 minutes) after its connect must not meet the
/// close on its way in (its libzmq reconnects at once after a close, so an
/// idle sender is only cycled, never cut off).
pub const IDLE_AFTER: Duration = Duration::from_secs(11 * 60 + 7);

/// The default cap whatever the descriptor limit: an idle connection costs
/// ~24 KB (CURVE ~40 KB; `qcic-bench --only idle_connections`), so a
/// flood of them costs at most ~100 MB (~160 MB).
pub const MAX_DEFAULT: usize = 4096;

impl Limits {
    /// What the descriptor limit leaves: `nofile` less the HTTP and control
    /// caps (3/16 of it, see `accept::Limits`) and [`RESERVE`], at most
    /// [`MAX_DEFAULT`].
    pub fn from_nofile(nofile: u64) -> Limits {
        Limits {
            max: Limits::room(nofile).min(MAX_DEFAULT),
            per_ip: crate::config::defaults::MAX_CONNECTIONS_PER_ADDRESS,
            idle_after: IDLE_AFTER,
        }
    }

    /// From the configuration: `max_connections` (never more than the
    /// descriptor limit leaves) and `max_connections_per_address`.
    pub fn configured(nofile: u64, max: Option<usize>, per_ip: usize) -> Limits {
        let derived = Limits::from_nofile(nofile);
        Limits {
            max: max.map_or(derived.max, |m| m.min(Limits::room(nofile))),
            per_ip,
            ..derived
        }
    }

    /// The ingest connections `nofile` descriptors leave room for.
    fn room(nofile: u64) -> usize {
        let local = nofile / 8 + nofile / 16 + 2;
        usize::try_from(nofile.saturating_sub(local + RESERVE).max(16)).unwrap_or(usize::MAX)
    }
}

/// One accepted connection.
#[derive(Debug)]
struct Conn {
    peer: SocketAddr,
    since: Instant,
    /// A valid message came from its address after it was accepted.
    proven: bool,
}

/// Why a connection was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// Over a limit: the oldest one within it that had sent nothing valid.
    Evicted,
    /// Over `max`, and every other one had sent something valid: the newcomer.
    Full,
    /// Over `per_ip`, the same.
    PerIp,
    /// No valid message within `idle_after`.
    Idle,
}

impl Closed {
    fn why(self) -> &'static str {
        match self {
            Closed::Evicted => {
                "a connection limit was reached; the oldest connection that had sent nothing valid made room"
            }
            Closed::Full => {
                "the connection limit was reached by connections that all sent valid messages; the newcomer was closed"
            }
            Closed::PerIp => {
                "the limit of connections from one address was reached by connections that all sent valid messages; the newcomer was closed"
            }
            Closed::Idle => "no valid message since the connection was made",
        }
    }
}

/// The guard's table of connections.
#[derive(Debug)]
pub struct Guard {
    limits: Limits,
    /// The local ports the PULL socket listens on (to recognise its own
    /// connections among reused descriptor numbers).
    ports: Vec<u16>,
    conns: HashMap<RawFd, Conn>,
    per_ip: HashMap<IpAddr, usize>,
    /// Addresses with a connection not proven yet.
    unproven: HashMap<IpAddr, usize>,
    closed: u64,
}

impl Guard {
    /// A guard for a socket listening on `ports`.
    pub fn new(limits: Limits, ports: Vec<u16>) -> Guard {
        Guard {
            limits,
            ports,
            conns: HashMap::new(),
            per_ip: HashMap::new(),
            unproven: HashMap::new(),
            closed: 0,
        }
    }

    /// Connections tracked now.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    /// Whether a valid message's address matters (some connection from
    /// somewhere is not proven yet): the caller skips the lookup otherwise.
    pub fn wants_proof(&self) -> bool {
        !self.unproven.is_empty()
    }

    /// libzmq accepted `fd`. Returns what to close (as `(fd, peer, why)`):
    /// the caller closes them with [`close`].
    pub fn accepted(&mut self, fd: RawFd, now: Instant) -> Vec<(RawFd, SocketAddr, Closed)> {
        let Some(peer) = self.peer_of(fd) else {
            return Vec::new();
        };
        if let Some(old) = self.conns.remove(&fd) {
            // The number was reused: the old connection is gone.
            self.forget(&old);
        }
        let mut out = Vec::new();
        // Over a limit, the oldest connection within it that has sent
        // nothing valid makes room; if every one has, the newcomer goes.
        let ip = peer.ip();
        for (within, refused) in [(Some(ip), Closed::PerIp), (None, Closed::Full)] {
            let over = match within {
                Some(ip) => self.per_ip.get(&ip).copied().unwrap_or(0) >= self.limits.per_ip,
                None => self.conns.len() >= self.limits.max,
            };
            if !over {
                continue;
            }
            let oldest = self
                .conns
                .iter()
                .filter(|(_, c)| !c.proven && within.is_none_or(|ip| c.peer.ip() == ip))
                .min_by_key(|(_, c)| c.since)
                .map(|(fd, c)| (*fd, c.peer));
            // Every one proven: at the global cap, the address holding the
            // most connections gives up its oldest, unless the newcomer's
            // own address holds as many (a sender valid once per address
            // must not keep every other address out for good).
            let oldest = oldest.or_else(|| within.is_none().then(|| self.most_held(ip)).flatten());
            let Some((victim, victim_peer)) = oldest else {
                out.push((fd, peer, refused));
                return out;
            };
            if let Some(gone) = self.conns.remove(&victim) {
                self.forget(&gone);
            }
            out.push((victim, victim_peer, Closed::Evicted));
        }
        *self.per_ip.entry(peer.ip()).or_default() += 1;
        *self.unproven.entry(peer.ip()).or_default() += 1;
        self.conns.insert(
            fd,
            Conn {
                peer,
                since: now,
                proven: false,
            },
        );
        out
    }

    /// libzmq closed `fd`.
    pub fn disconnected(&mut self, fd: RawFd) {
        if let Some(old) = self.conns.remove(&fd) {
            self.forget(&old);
        }
    }

    /// A valid message came from `ip`: its connections are proven.
    pub fn valid_from(&mut self, ip: IpAddr) {
        let ip = ip.to_canonical();
        if self.unproven.remove(&ip).is_none() {
            return;
        }
        for conn in self.conns.values_mut() {
            if conn.peer.ip() == ip {
                conn.proven = true;
            }
        }
    }

    /// Connections past `idle_after` with nothing valid yet, and entries
    /// whose descriptor is no longer the connection they were (an event
    /// missed): the first to close, the second forgotten.
    pub fn sweep(&mut self, now: Instant) -> Vec<(RawFd, SocketAddr, Closed)> {
        let mut out = Vec::new();
        let mut gone = Vec::new();
        for (fd, conn) in &self.conns {
            if self.peer_of(*fd) != Some(conn.peer) {
                gone.push(*fd);
            } else if !conn.proven && now.duration_since(conn.since) >= self.limits.idle_after {
                gone.push(*fd);
                out.push((*fd, conn.peer, Closed::Idle));
            }
        }
        for fd in gone {
            self.disconnected(fd);
        }
        out
    }

    /// When [`Guard::sweep`] has work next, if ever.
    pub fn next_sweep(&self) -> Option<Instant> {
        self.conns
            .values()
            .filter(|c| !c.proven)
            .map(|c| c.since + self.limits.idle_after)
            .min()
    }

    /// Counts and logs a closed connection (the 1st, 2nd, 4th, ...).
    pub fn note_closed(&mut self, peer: SocketAddr, why: Closed) {
        self.closed += 1;
        if self.closed.is_power_of_two() {
            warn!(%peer, why = why.why(), closed = self.closed, "ingest connections closed by the connection guard (counted)");
        }
    }

    /// The oldest connection of the address holding the most, if it
    /// holds more than `newcomer`'s address would with one more.
    fn most_held(&self, newcomer: IpAddr) -> Option<(RawFd, SocketAddr)> {
        let (&top, &count) = self.per_ip.iter().max_by_key(|(_, n)| **n)?;
        let mine = self.per_ip.get(&newcomer).copied().unwrap_or(0);
        if top == newcomer || count <= mine + 1 {
            return None;
        }
        self.conns
            .iter()
            .filter(|(_, c)| c.peer.ip() == top)
            .min_by_key(|(_, c)| c.since)
            .map(|(fd, c)| (*fd, c.peer))
    }

    fn forget(&mut self, conn: &Conn) {
        let ip = conn.peer.ip();
        if let Some(n) = self.per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&ip);
            }
        }
        if !conn.proven {
            if let Some(n) = self.unproven.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    self.unproven.remove(&ip);
                }
            }
        }
    }

    /// The peer of `fd` if it is a TCP connection to one of our ports.
    fn peer_of(&self, fd: RawFd) -> Option<SocketAddr> {
        let local = getsockname::<SockaddrStorage>(fd).ok()?;
        let port = socket_addr(&local)?.port();
        if !self.ports.contains(&port) {
            return None;
        }
        socket_addr(&getpeername::<SockaddrStorage>(fd).ok()?)
    }
}

/// An IPv4 peer of a dual-stack (`[::]`) listen comes as `::ffff:a.b.c.d`:
/// the same address as on a plain IPv4 listen, so the same per-address count.
fn socket_addr(addr: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = addr.as_sockaddr_in() {
        return Some(SocketAddr::from((v4.ip(), v4.port())));
    }
    addr.as_sockaddr_in6()
        .map(|v6| SocketAddr::new(IpAddr::V6(v6.ip()).to_canonical(), v6.port()))
}

/// Ends the connection on `fd` if it is still the one to `peer`: libzmq
/// sees the end of the stream and closes the descriptor itself.
pub fn close(fd: RawFd, peer: SocketAddr) -> bool {
    if socket_addr(&match getpeername::<SockaddrStorage>(fd) {
        Ok(addr) => addr,
        Err(_) => return false,
    }) != Some(peer)
    {
        return false;
    }
    // `shutdown` takes the number and never releases it.
    shutdown(fd, Shutdown::Both).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsRawFd;

    /// Real loopback connections: (the client ends, the accepted ends).
    fn connections(n: usize) -> (TcpListener, Vec<TcpStream>, Vec<TcpStream>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut clients = Vec::new();
        let mut accepted = Vec::new();
        for _ in 0..n {
            clients.push(TcpStream::connect(addr).unwrap());
            accepted.push(listener.accept().unwrap().0);
        }
        (listener, clients, accepted)
    }

    fn closed_by_peer(client: &mut TcpStream) -> bool {
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        matches!(client.read(&mut [0u8; 1]), Ok(0))
    }

    #[test]
    fn over_a_limit_the_oldest_silent_connection_goes_then_the_newcomer() {
        let (listener, mut clients, accepted) = connections(4);
        let port = listener.local_addr().unwrap().port();
        let limits = Limits {
            max: 10,
            per_ip: 2,
            idle_after: Duration::from_secs(60),
        };
        let mut guard = Guard::new(limits, vec![port]);
        let t0 = Instant::now();
        let fd = |i: usize| accepted[i].as_raw_fd();
        assert!(guard.accepted(fd(0), t0).is_empty());
        assert!(
            guard
                .accepted(fd(1), t0 + Duration::from_secs(1))
                .is_empty()
        );
        // Third from the same address: the oldest silent one makes room.
        let out = guard.accepted(fd(2), t0 + Duration::from_secs(2));
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].0, out[0].2), (fd(0), Closed::Evicted));
        assert!(close(out[0].0, out[0].1));
        assert!(closed_by_peer(&mut clients[0]), "shutdown ends the stream");
        // Both left have now sent something valid: the newcomer is refused.
        guard.valid_from("127.0.0.1".parse().unwrap());
        assert!(!guard.wants_proof());
        let out = guard.accepted(fd(3), t0 + Duration::from_secs(3));
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].0, out[0].2), (fd(3), Closed::PerIp));
        assert_eq!(guard.len(), 2);
        // Proven connections are never idle.
        assert!(guard.sweep(t0 + Duration::from_secs(3600)).is_empty());
    }

    #[test]
    fn a_silent_connection_is_closed_after_idle_after_and_a_stale_entry_forgotten() {
        let (listener, mut clients, accepted) = connections(2);
        let port = listener.local_addr().unwrap().port();
        let limits = Limits {
            max: 10,
            per_ip: 10,
            idle_after: Duration::from_secs(60),
        };
        let mut guard = Guard::new(limits, vec![port]);
        let t0 = Instant::now();
        guard.accepted(accepted[0].as_raw_fd(), t0);
        guard.accepted(accepted[1].as_raw_fd(), t0);
        assert_eq!(guard.next_sweep(), Some(t0 + Duration::from_secs(60)));
        assert!(guard.sweep(t0 + Duration::from_secs(59)).is_empty());
        // The second one closed without an event reaching the guard: its
        // descriptor is no longer that connection, so it is forgotten, not
        // shut down.
        let mut accepted = accepted;
        drop(accepted.pop());
        let out = guard.sweep(t0 + Duration::from_secs(60));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].2, Closed::Idle);
        assert!(close(out[0].0, out[0].1));
        assert!(closed_by_peer(&mut clients[0]));
        assert_eq!(guard.len(), 0);
        // Not a connection to the guarded port: ignored.
        let (_other, _c, theirs) = connections(1);
        assert!(guard.accepted(theirs[0].as_raw_fd(), t0).is_empty());
        assert_eq!(guard.len(), 0);
    }

    /// A connection to `to` from the loopback address `from`.
    fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
        use nix::sys::socket::{
            AddressFamily, SockFlag, SockType, SockaddrIn, bind, connect, socket,
        };
        let fd = socket(
            AddressFamily::Inet,
            SockType::Stream,
            SockFlag::empty(),
            None,
        )
        .unwrap();
        let source: std::net::SocketAddrV4 = format!("{from}:0").parse().unwrap();
        bind(fd.as_raw_fd(), &SockaddrIn::from(source)).unwrap();
        let SocketAddr::V4(to) = to else { panic!("v4") };
        connect(fd.as_raw_fd(), &SockaddrIn::from(to)).unwrap();
        TcpStream::from(fd)
    }

    /// Every connection has sent something valid (an attacker can send one
    /// valid message per address): at the cap, the address holding the
    /// most connections gives up its oldest for a newcomer from another
    /// address, instead of every newcomer being refused for good.
    #[test]
    fn at_the_cap_the_busiest_address_makes_room_for_another() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let limits = Limits {
            max: 3,
            per_ip: 10,
            idle_after: Duration::from_secs(60),
        };
        let mut guard = Guard::new(limits, vec![addr.port()]);
        let t0 = Instant::now();
        let mut held = Vec::new();
        for (i, from) in ["127.0.0.2", "127.0.0.2", "127.0.0.3"].iter().enumerate() {
            held.push(connect_from(from, addr));
            let (theirs, _) = listener.accept().unwrap();
            assert!(
                guard
                    .accepted(theirs.as_raw_fd(), t0 + Duration::from_secs(i as u64))
                    .is_empty()
            );
            held.push(theirs);
        }
        guard.valid_from("127.0.0.2".parse().unwrap());
        guard.valid_from("127.0.0.3".parse().unwrap());
        // A newcomer from a third address: 127.0.0.2 (two) gives up its oldest.
        held.push(connect_from("127.0.0.4", addr));
        let (newcomer, _) = listener.accept().unwrap();
        let out = guard.accepted(newcomer.as_raw_fd(), t0 + Duration::from_secs(5));
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].0, out[0].2), (held[1].as_raw_fd(), Closed::Evicted));
        assert_eq!(out[0].1.ip().to_string(), "127.0.0.2");
        assert_eq!(guard.len(), 3);
        // Once the newcomer has sent something valid too, every address
        // holds one: another from 127.0.0.3 is refused.
        guard.valid_from("127.0.0.4".parse().unwrap());
        held.push(connect_from("127.0.0.3", addr));
        let (again, _) = listener.accept().unwrap();
        let out = guard.accepted(again.as_raw_fd(), t0 + Duration::from_secs(6));
        assert_eq!((out[0].0, out[0].2), (again.as_raw_fd(), Closed::Full));
    }

    #[test]
    fn the_reserve_leaves_room_for_everything_else() {
        let limits = Limits::from_nofile(1024);
        assert_eq!(limits.max, 1024 - (128 + 64 + 2) - RESERVE as usize);
        assert_eq!(Limits::from_nofile(64).max, 16);
        assert_eq!(Limits::from_nofile(1 << 20).max, MAX_DEFAULT);
        // Configured higher than the descriptors allow: what they allow.
        assert_eq!(Limits::configured(1024, Some(5000), 8).max, 734);
        assert_eq!(Limits::configured(1 << 20, Some(5000), 8).max, 5000);
    }
}
