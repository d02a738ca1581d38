//! Farm gossip sealed with the farm's shared key (`[farm] key_file`):
//! chitchat's datagrams authenticated and encrypted with ChaCha20-Poly1305
//! (`ring`), so that only watchers holding the key take part.
//!
//! Why: gossip decides who notifies. Without a key, anyone who can send UDP
//! to the gossip port can speak as a peer: forge the evidence that a job was
//! heard (no `down`), a ledger entry that says an alarm went out (no alarm),
//! or an acknowledgement. A datagram from the network that does not open
//! (another key, altered, replayed, addressed to another watcher, sealed
//! before this one started, or more than [`WINDOW_MS`] off its clock) is
//! dropped and counted (`farm_gossip_refused`) before chitchat sees a byte
//! of it.
//!
//! A datagram: `QCF1`, a random 96-bit nonce, then sealed: the send time
//! (ms), the address it was sent to, the sender's `advertise` address, a
//! message id, part and part count, and the chitchat bytes. The cluster
//! name is authenticated with it. chitchat answers a message at the address
//! it came from; here that is the sealed `advertise`, never the datagram's
//! source, which anyone can forge: a captured datagram replayed with a
//! victim's source address cannot turn a watcher's answer (up to 64 KB for
//! a 100-byte question) on the victim. The destination and the start time
//! refuse a replay to another watcher, or to a restarted one. chitchat fills a datagram to nearly the UDP limit, so a message
//! that no longer fits with the seal's bytes goes as two parts, reassembled
//! here (only sealed parts are kept, so a stranger cannot fill the
//! reassembly buffer).

use std::collections::{HashSet, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::Context;
use async_trait::async_trait;
use chitchat::ChitchatEnvelope;
use chitchat::transport::{RecvOutcome, SendOutcome, Socket, Transport, UdpSocket};
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

use crate::clock::wall_ms;
use crate::log_limit::LogLimit;
use crate::stats::Stats;

const MAGIC: &[u8; 4] = b"QCF1";
/// The most a UDP datagram over IPv4 carries.
const MAX_DATAGRAM: usize = 65_507;
const TAG_LEN: usize = 16;
/// In clear: magic and nonce.
const CLEAR_LEN: usize = MAGIC.len() + NONCE_LEN;
/// Sealed before the chitchat bytes: sent at (ms), sent to, reply to,
/// message id, part, parts.
const INNER_LEN: usize = 8 + 2 * ADDR_LEN + 4 + 1 + 1;
/// An address: family (4 or 6), 16 address bytes (IPv4 in the first 4), port.
const ADDR_LEN: usize = 1 + 16 + 2;
/// The chitchat bytes one datagram holds.
const ROOM: usize = MAX_DATAGRAM - CLEAR_LEN - INNER_LEN - TAG_LEN;
/// A datagram sent longer ago than this (by the sender's clock against
/// ours), or as far ahead, is refused: replays of old gossip stop here.
/// Farms already need their clocks within seconds of each other for
/// shared evidence; one further off is told so in the log.
pub const WINDOW_MS: u64 = 60 * 1000;
/// A datagram sealed this long before this watcher started is refused:
/// the nonces it remembered died with its last run. (Room for a peer's
/// clock a little behind ours.)
pub const START_SLACK_MS: u64 = 5 * 1000;
/// Nonces remembered to refuse a replay inside the window (for twice the
/// window): ten watchers gossiping every 100 ms receive ~11 000.
const MAX_SEEN: usize = 1 << 17;
/// Messages waiting for their second part.
const MAX_PARTIAL: usize = 8;

/// Why a datagram was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Not a sealed qcic datagram (no magic, too short).
    NotSealed,
    /// The seal did not open: another key or cluster, or altered.
    Seal,
    /// Sent outside the window of our clock.
    Stale,
    /// Sealed before this watcher started: a replay from its last run.
    BeforeStart,
    /// Sent to an address that is not this watcher's.
    Elsewhere,
    /// Opened before: a replay.
    Replay,
    /// Parts that do not make a message, or bytes that are not chitchat.
    Malformed,
}

impl Refused {
    fn as_str(self) -> &'static str {
        match self {
            Refused::NotSealed => "not sealed (a watcher without [farm] key_file, or not qcic)",
            Refused::Seal => "the seal did not open (another farm key or cluster, or altered)",
            Refused::Stale => {
                "sent more than a minute off this watcher's clock (are the watchers' clocks synchronised?)"
            }
            Refused::BeforeStart => "sealed before this watcher started (a replay)",
            Refused::Elsewhere => {
                "addressed to another watcher (a replay, or peers reach this one at an address that is not its [farm] advertise)"
            }
            Refused::Replay => "a replay of a datagram already taken",
            Refused::Malformed => "malformed parts",
        }
    }
}

/// One opened datagram.
#[derive(Debug, PartialEq, Eq)]
pub struct Opened {
    /// Where its sender takes answers: its `advertise` address.
    pub reply_to: SocketAddr,
    /// The sender's message id.
    pub id: u32,
    /// This part's index.
    pub part: u8,
    /// How many parts the message has.
    pub parts: u8,
    /// Its share of the chitchat bytes.
    pub bytes: Vec<u8>,
}

/// Seals and opens datagrams with one farm key, remembering nonces.
pub struct Seal {
    key: LessSafeKey,
    aad: Vec<u8>,
    /// Where peers send to this watcher: its gossip and advertise
    /// addresses. A gossip address on 0.0.0.0 or :: takes any address
    /// with its port.
    me: [SocketAddr; 2],
    /// Its advertise address, where peers answer.
    advertise: SocketAddr,
    started_ms: u64,
    seen: HashSet<[u8; NONCE_LEN]>,
    order: VecDeque<(u64, [u8; NONCE_LEN])>,
}

impl std::fmt::Debug for Seal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Seal")
            .field("nonces_remembered", &self.order.len())
            .finish_non_exhaustive()
    }
}

impl Seal {
    /// A seal for this key and cluster name, for a watcher that gossips on
    /// `gossip`, is reached at `advertise`, and started at `started_ms`.
    pub fn new(
        key: &[u8; 32],
        cluster: &str,
        gossip: SocketAddr,
        advertise: SocketAddr,
        started_ms: u64,
    ) -> Seal {
        let unbound = match UnboundKey::new(&CHACHA20_POLY1305, key) {
            Ok(k) => k,
            // ring refuses only a key of the wrong length; 32 is right.
            Err(_) => unreachable!("ChaCha20-Poly1305 takes a 32-byte key"),
        };
        let mut aad = MAGIC.to_vec();
        aad.extend_from_slice(cluster.as_bytes());
        Seal {
            key: LessSafeKey::new(unbound),
            aad,
            me: [gossip, advertise],
            advertise,
            started_ms,
            seen: HashSet::new(),
            order: VecDeque::new(),
        }
    }

    /// One datagram to `to`: `part` of `parts` of message `id`, sent at
    /// `sent_ms`. Fails only without system randomness: a nonce used twice
    /// would give the key away, so nothing is sent then.
    pub fn seal(
        &self,
        sent_ms: u64,
        to: SocketAddr,
        id: u32,
        part: u8,
        parts: u8,
        bytes: &[u8],
    ) -> Result<Vec<u8>, getrandom::Error> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce)?;
        let mut out = Vec::with_capacity(CLEAR_LEN + INNER_LEN + bytes.len() + TAG_LEN);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&nonce);
        let mut body = Vec::with_capacity(INNER_LEN + bytes.len() + TAG_LEN);
        body.extend_from_slice(&sent_ms.to_be_bytes());
        body.extend_from_slice(&addr_bytes(to));
        body.extend_from_slice(&addr_bytes(self.advertise));
        body.extend_from_slice(&id.to_be_bytes());
        body.push(part);
        body.push(parts);
        body.extend_from_slice(bytes);
        let sealed = self.key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&self.aad),
            &mut body,
        );
        if sealed.is_err() {
            // ring refuses only a body over ~256 GiB.
            unreachable!("a datagram is far below ChaCha20-Poly1305's limit");
        }
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Opens a datagram received at `now_ms`.
    pub fn open(&mut self, datagram: &mut [u8], now_ms: u64) -> Result<Opened, Refused> {
        if datagram.len() < CLEAR_LEN + INNER_LEN + TAG_LEN || !datagram.starts_with(MAGIC) {
            return Err(Refused::NotSealed);
        }
        let (clear, body) = datagram.split_at_mut(CLEAR_LEN);
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&clear[MAGIC.len()..]);
        let plain = self
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&self.aad),
                body,
            )
            .map_err(|_| Refused::Seal)?;
        let (inner, bytes) = plain.split_at(INNER_LEN);
        let mut sent_ms = [0u8; 8];
        sent_ms.copy_from_slice(&inner[..8]);
        let sent_ms = u64::from_be_bytes(sent_ms);
        let to = addr_from(&inner[8..8 + ADDR_LEN]);
        let reply_to =
            addr_from(&inner[8 + ADDR_LEN..8 + 2 * ADDR_LEN]).ok_or(Refused::Malformed)?;
        let rest = &inner[8 + 2 * ADDR_LEN..];
        let mut id = [0u8; 4];
        id.copy_from_slice(&rest[..4]);
        let id = u32::from_be_bytes(id);
        let (part, parts) = (rest[4], rest[5]);
        if sent_ms.abs_diff(now_ms) > WINDOW_MS {
            return Err(Refused::Stale);
        }
        if sent_ms + START_SLACK_MS < self.started_ms {
            return Err(Refused::BeforeStart);
        }
        if !to.is_some_and(|to| self.is_me(to)) {
            return Err(Refused::Elsewhere);
        }
        if part >= parts {
            return Err(Refused::Malformed);
        }
        // Remembered for twice the window: a replay must be refused for as
        // long as its send time still passes the window check.
        while self
            .order
            .front()
            .is_some_and(|&(at, _)| at + 2 * WINDOW_MS < now_ms || self.order.len() >= MAX_SEEN)
        {
            if let Some((_, old)) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        if !self.seen.insert(nonce) {
            return Err(Refused::Replay);
        }
        self.order.push_back((now_ms, nonce));
        Ok(Opened {
            reply_to,
            id,
            part,
            parts,
            bytes: bytes.to_vec(),
        })
    }
}

impl Seal {
    fn is_me(&self, to: SocketAddr) -> bool {
        self.me
            .iter()
            .any(|me| *me == to || (me.ip().is_unspecified() && me.port() == to.port()))
    }
}

fn addr_bytes(addr: SocketAddr) -> [u8; ADDR_LEN] {
    let mut out = [0u8; ADDR_LEN];
    match addr.ip() {
        std::net::IpAddr::V4(ip) => {
            out[0] = 4;
            out[1..5].copy_from_slice(&ip.octets());
        }
        std::net::IpAddr::V6(ip) => {
            out[0] = 6;
            out[1..17].copy_from_slice(&ip.octets());
        }
    }
    out[17..].copy_from_slice(&addr.port().to_be_bytes());
    out
}

fn addr_from(bytes: &[u8]) -> Option<SocketAddr> {
    let mut ip = [0u8; 16];
    ip.copy_from_slice(bytes.get(1..17)?);
    let port = u16::from_be_bytes([*bytes.get(17)?, *bytes.get(18)?]);
    let ip = match bytes.first()? {
        4 => std::net::IpAddr::from([ip[0], ip[1], ip[2], ip[3]]),
        6 => std::net::IpAddr::from(ip),
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// A message's parts so far: sender, message id, each part once in.
type Partial = (SocketAddr, u32, Vec<Option<Vec<u8>>>);

/// Messages in parts, by sender and id, until whole.
#[derive(Debug, Default)]
pub struct Reassembly {
    partial: VecDeque<Partial>,
}

impl Reassembly {
    /// Adds a part; the message's bytes once every part is in.
    pub fn add(&mut self, from: SocketAddr, opened: Opened) -> Option<Vec<u8>> {
        if opened.parts == 1 {
            return Some(opened.bytes);
        }
        let at = self
            .partial
            .iter()
            .position(|(addr, id, parts)| {
                *addr == from && *id == opened.id && parts.len() == usize::from(opened.parts)
            })
            .unwrap_or_else(|| {
                if self.partial.len() >= MAX_PARTIAL {
                    self.partial.pop_front();
                }
                self.partial
                    .push_back((from, opened.id, vec![None; usize::from(opened.parts)]));
                self.partial.len() - 1
            });
        let slot = self.partial[at].2.get_mut(usize::from(opened.part))?;
        *slot = Some(opened.bytes);
        if self.partial[at].2.iter().any(Option::is_none) {
            return None;
        }
        let (_, _, parts) = self.partial.remove(at)?;
        Some(parts.into_iter().flatten().flatten().collect())
    }
}

/// chitchat's transport with every datagram sealed.
pub struct SealedUdp {
    key: [u8; 32],
    cluster: String,
    advertise: SocketAddr,
    stats: Arc<Stats>,
}

impl std::fmt::Debug for SealedUdp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedUdp")
            .field("cluster", &self.cluster)
            .finish_non_exhaustive()
    }
}

impl SealedUdp {
    /// A transport for this farm key and cluster, for a watcher that peers
    /// reach at `advertise`.
    pub fn new(
        key: [u8; 32],
        cluster: &str,
        advertise: SocketAddr,
        stats: Arc<Stats>,
    ) -> SealedUdp {
        SealedUdp {
            key,
            cluster: cluster.to_owned(),
            advertise,
            stats,
        }
    }
}

/// Peers whose datagrams are relayed to chitchat at once (each from its own
/// loopback socket); more evict the oldest. Only peers whose datagrams
/// opened get one.
const MAX_RELAYS: usize = 64;
/// How long the send path waits for chitchat's encoding on loopback.
const ENCODE_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

#[async_trait]
impl Transport for SealedUdp {
    async fn open(&self, bind_addr: SocketAddr) -> anyhow::Result<Box<dyn Socket>> {
        let outer = tokio::net::UdpSocket::bind(bind_addr)
            .await
            .with_context(|| format!("failed to bind to {bind_addr}/UDP for gossip"))?;
        let codec = UdpSocket::open(loopback()).await?;
        let codec_addr = codec.local_addr()?;
        let sink = tokio::net::UdpSocket::bind(loopback())
            .await
            .context("failed to bind the gossip encoder's loopback socket")?;
        // Connected: the kernel drops what any other socket sends it, so a
        // local process cannot fill it and crowd out the encoding.
        sink.connect(codec_addr)
            .await
            .context("failed to connect the gossip encoder's loopback socket")?;
        let sink_addr = sink.local_addr()?;
        Ok(Box::new(SealedSocket {
            outer,
            codec,
            codec_addr,
            sink,
            sink_addr,
            relays: VecDeque::new(),
            seal: Seal::new(
                &self.key,
                &self.cluster,
                bind_addr,
                self.advertise,
                wall_ms(),
            ),
            reassembly: Reassembly::default(),
            next_id: 0,
            buf: vec![0u8; MAX_DATAGRAM].into_boxed_slice(),
            stats: Arc::clone(&self.stats),
            log: LogLimit::new(),
        }))
    }
}

/// chitchat 0.13 keeps its wire format to itself: only its own UDP socket
/// turns envelopes into bytes and back. So that socket (`codec`) is kept on
/// loopback and used as the codec: what it sends goes to `sink`, is sealed
/// and leaves by `outer`; what opens on `outer` is handed to it from a
/// loopback `relay` socket per peer, whose address says which peer it was.
struct SealedSocket {
    outer: tokio::net::UdpSocket,
    codec: UdpSocket,
    codec_addr: SocketAddr,
    sink: tokio::net::UdpSocket,
    sink_addr: SocketAddr,
    /// (peer's advertise address, relay socket's address, relay socket),
    /// least recently used first.
    relays: VecDeque<(SocketAddr, SocketAddr, std::net::UdpSocket)>,
    seal: Seal,
    reassembly: Reassembly,
    next_id: u32,
    buf: Box<[u8]>,
    stats: Arc<Stats>,
    log: LogLimit,
}

impl SealedSocket {
    fn refuse(&mut self, from: SocketAddr, why: Refused) {
        self.stats
            .farm_gossip_refused
            .fetch_add(1, Ordering::Relaxed);
        self.log.note(|held_back| {
            tracing::warn!(
                %from,
                reason = why.as_str(),
                held_back,
                "farm gossip refused"
            );
        });
    }

    /// Hands an opened message from `peer` to chitchat's codec socket.
    fn relay(&mut self, peer: SocketAddr, bytes: &[u8]) -> io::Result<()> {
        let relay = match self.relays.iter().position(|(p, _, _)| *p == peer) {
            Some(at) => self.relays.remove(at),
            None => {
                // A plain non-blocking socket: usable at once (tokio's would
                // first wait for write readiness), and never awaited, since
                // recv() may be cancelled at any await. A loopback send
                // that would block is a datagram lost, as UDP may lose it.
                let socket = std::net::UdpSocket::bind(loopback())?;
                socket.set_nonblocking(true)?;
                socket.connect(self.codec_addr)?;
                let addr = socket.local_addr()?;
                if self.relays.len() >= MAX_RELAYS {
                    self.relays.pop_front();
                }
                Some((peer, addr, socket))
            }
        };
        let Some(relay) = relay else {
            return Ok(());
        };
        let sent = relay.2.send(bytes);
        self.relays.push_back(relay);
        sent.map(drop)
    }

    /// The peer a relay socket speaks for.
    fn peer_of(&self, relay: SocketAddr) -> Option<SocketAddr> {
        self.relays
            .iter()
            .find(|(_, addr, _)| *addr == relay)
            .map(|(peer, _, _)| *peer)
    }
}

/// Errors after which the socket still works (as chitchat's own UDP
/// transport has them).
fn transient(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::OutOfMemory
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::WouldBlock
    )
}

/// What one wait in `recv` brought.
enum Arrival {
    Decoded(RecvOutcome),
    Sealed(usize, SocketAddr),
}

#[async_trait]
impl Socket for SealedSocket {
    fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        self.outer
            .local_addr()
            .context("failed to get the gossip socket's address")
    }

    async fn send(
        &mut self,
        to: SocketAddr,
        envelope: ChitchatEnvelope,
    ) -> anyhow::Result<SendOutcome> {
        self.codec.send(self.sink_addr, envelope).await?;
        // The sink is connected to the codec: nothing else reaches it.
        let len = tokio::time::timeout(ENCODE_WAIT, self.sink.recv(&mut self.buf))
            .await
            .context("chitchat's encoding never reached the loopback sink")??;
        let bytes = self.buf[..len].to_vec();
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let chunks: Vec<&[u8]> = if bytes.is_empty() {
            vec![&[]]
        } else {
            bytes.chunks(ROOM).collect()
        };
        let parts = u8::try_from(chunks.len()).context("a gossip message over 255 datagrams")?;
        let now = wall_ms();
        let mut sent = 0;
        for (part, chunk) in (0u8..).zip(chunks) {
            let datagram = self
                .seal
                .seal(now, to, id, part, parts, chunk)
                .map_err(|e| anyhow::anyhow!("no system randomness for a gossip nonce: {e}"))?;
            sent += self
                .outer
                .send_to(&datagram, to)
                .await
                .context("failed to send farm gossip to a peer")?;
        }
        Ok(SendOutcome {
            num_bytes_sent: sent,
        })
    }

    /// Cancel-safe, as chitchat needs (it drops this future at every gossip
    /// tick): both waits are, and nothing after them awaits.
    async fn recv(&mut self) -> anyhow::Result<RecvOutcome> {
        loop {
            let arrival = tokio::select! {
                decoded = self.codec.recv() => Arrival::Decoded(decoded?),
                sealed = self.outer.recv_from(&mut self.buf) => match sealed {
                    Ok((len, from)) => Arrival::Sealed(len, from),
                    Err(err) if transient(&err) => continue,
                    Err(err) => return Err(err).context("fatal farm gossip receive error"),
                },
            };
            match arrival {
                Arrival::Decoded(outcome) => match self.peer_of(outcome.from_addr) {
                    Some(peer) => {
                        return Ok(RecvOutcome {
                            from_addr: peer,
                            envelope: outcome.envelope,
                            num_bytes_received: outcome.num_bytes_received,
                        });
                    }
                    // Another local process wrote to the codec's port.
                    None => self.refuse(outcome.from_addr, Refused::NotSealed),
                },
                Arrival::Sealed(len, from) => {
                    let opened = match self.seal.open(&mut self.buf[..len], wall_ms()) {
                        Ok(opened) => opened,
                        Err(why) => {
                            self.refuse(from, why);
                            continue;
                        }
                    };
                    // Answers go to the sealed address, not the source.
                    let peer = opened.reply_to;
                    if let Some(bytes) = self.reassembly.add(from, opened) {
                        if let Err(err) = self.relay(peer, &bytes) {
                            tracing::debug!(%peer, %err, "farm gossip not relayed on loopback");
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
