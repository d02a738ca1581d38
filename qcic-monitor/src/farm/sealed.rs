//! Farm gossip sealed with the farm's shared key (`[farm] key_file`):
//! chitchat's datagrams authenticated and encrypted with ChaCha20-Poly1305
//! (`ring`), so that only watchers holding the key take part.
//!
//! Why: gossip decides who notifies. Without a key, anyone who can send UDP
//! to the gossip port can speak as a peer: forge the evidence that a job was
//! heard (no `down`), a ledger entry that says an alarm went out (no alarm),
//! or an acknowledgement. A sealed datagram that does not open (another key,
//! altered, replayed, or older than [`WINDOW_MS`]) is dropped and counted
//! (`farm_gossip_refused`) before chitchat sees a byte of it.
//!
//! A datagram: `QCF1`, a random 96-bit nonce, then sealed: the send time
//! (ms), a message id, part and part count, and the chitchat bytes. The
//! cluster name is authenticated with it. chitchat fills a datagram to the
//! UDP limit, so a message that no longer fits with the seal's 46 bytes
//! goes as two parts, reassembled here (only sealed parts are kept, so a
//! stranger cannot fill the reassembly buffer).

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
/// Sealed before the chitchat bytes: sent at (ms), message id, part, parts.
const INNER_LEN: usize = 8 + 4 + 1 + 1;
/// The chitchat bytes one datagram holds.
const ROOM: usize = MAX_DATAGRAM - CLEAR_LEN - INNER_LEN - TAG_LEN;
/// A datagram sent longer ago than this (by the sender's clock against
/// ours) is refused: replays of old gossip stop here. Farms already need
/// their clocks within seconds of each other for shared evidence.
pub const WINDOW_MS: u64 = 5 * 60 * 1000;
/// Nonces remembered to refuse a replay inside the window; a farm of five
/// gossiping every 500 ms sends ~5 000 in five minutes.
const MAX_SEEN: usize = 1 << 16;
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
            Refused::Stale => "sent outside 5 minutes of this watcher's clock",
            Refused::Replay => "a replay of a datagram already taken",
            Refused::Malformed => "malformed parts",
        }
    }
}

/// One opened datagram.
#[derive(Debug, PartialEq, Eq)]
pub struct Opened {
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
    /// A seal for this key and cluster name.
    pub fn new(key: &[u8; 32], cluster: &str) -> Seal {
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
            seen: HashSet::new(),
            order: VecDeque::new(),
        }
    }

    /// One datagram: `part` of `parts` of message `id`, sent at `sent_ms`.
    /// Fails only without system randomness: a nonce used twice would give
    /// the key away, so nothing is sent then.
    pub fn seal(
        &self,
        sent_ms: u64,
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
        let mut id = [0u8; 4];
        id.copy_from_slice(&inner[8..12]);
        let id = u32::from_be_bytes(id);
        let (part, parts) = (inner[12], inner[13]);
        if sent_ms.abs_diff(now_ms) > WINDOW_MS {
            return Err(Refused::Stale);
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
            id,
            part,
            parts,
            bytes: bytes.to_vec(),
        })
    }
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
    /// A transport for this farm key and cluster.
    pub fn new(key: [u8; 32], cluster: &str, stats: Arc<Stats>) -> SealedUdp {
        SealedUdp {
            key,
            cluster: cluster.to_owned(),
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
        let sink_addr = sink.local_addr()?;
        Ok(Box::new(SealedSocket {
            outer,
            codec,
            codec_addr,
            sink,
            sink_addr,
            relays: VecDeque::new(),
            seal: Seal::new(&self.key, &self.cluster),
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
    /// (peer, relay socket's address, relay socket)
    relays: VecDeque<(SocketAddr, SocketAddr, tokio::net::UdpSocket)>,
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
        if !self.relays.iter().any(|(p, _, _)| *p == peer) {
            let std = std::net::UdpSocket::bind(loopback())?;
            std.set_nonblocking(true)?;
            let socket = tokio::net::UdpSocket::from_std(std)?;
            if self.relays.len() >= MAX_RELAYS {
                self.relays.pop_front();
            }
            self.relays.push_back((peer, socket.local_addr()?, socket));
        }
        if let Some((_, _, socket)) = self.relays.iter().find(|(p, _, _)| *p == peer) {
            // Not awaited: recv() may be cancelled at any await, and a
            // loopback send that would block is a datagram lost, as UDP may.
            socket.try_send_to(bytes, self.codec_addr)?;
        }
        Ok(())
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
        let bytes = loop {
            let (len, from) = tokio::time::timeout(ENCODE_WAIT, self.sink.recv_from(&mut self.buf))
                .await
                .context("chitchat's encoding never reached the loopback sink")??;
            // Anything else on the loopback port is not ours to seal.
            if from == self.codec_addr {
                break self.buf[..len].to_vec();
            }
        };
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
                .seal(now, id, part, parts, chunk)
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
                    if let Some(bytes) = self.reassembly.add(from, opened) {
                        if let Err(err) = self.relay(from, &bytes) {
                            tracing::debug!(%from, %err, "farm gossip not relayed on loopback");
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
