use super::*;

const KEY: [u8; 32] = [7; 32];
const NOW: u64 = 1_800_000_000_000;

fn from() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7790))
}

/// The receiving watcher's gossip address.
fn me() -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 5], 7790))
}

#[test]
fn a_sealed_datagram_opens_once_with_the_same_key_and_cluster() {
    let sender = Seal::new(&KEY, "qcic", me(), me(), 0);
    let mut receiver = Seal::new(&KEY, "qcic", me(), me(), 0);
    let datagram = sender.seal(NOW, me(), 9, 0, 1, b"chitchat bytes").unwrap();
    assert!(
        !datagram.windows(8).any(|w| w == b"chitchat"),
        "sealed, not in clear"
    );
    let opened = receiver.open(&mut datagram.clone(), NOW + 1).unwrap();
    assert_eq!(
        opened,
        Opened {
            reply_to: me(),
            id: 9,
            part: 0,
            parts: 1,
            bytes: b"chitchat bytes".to_vec()
        }
    );
    // The same datagram again: a replay.
    assert_eq!(
        receiver.open(&mut datagram.clone(), NOW + 2),
        Err(Refused::Replay)
    );
}

#[test]
fn another_key_another_cluster_an_altered_byte_or_clear_gossip_are_refused() {
    let datagram = Seal::new(&KEY, "qcic", me(), me(), 0)
        .seal(NOW, me(), 1, 0, 1, b"x")
        .unwrap();
    let mut other_key = Seal::new(&[8; 32], "qcic", me(), me(), 0);
    assert_eq!(
        other_key.open(&mut datagram.clone(), NOW),
        Err(Refused::Seal)
    );
    let mut other_cluster = Seal::new(&KEY, "other", me(), me(), 0);
    assert_eq!(
        other_cluster.open(&mut datagram.clone(), NOW),
        Err(Refused::Seal)
    );
    let mut receiver = Seal::new(&KEY, "qcic", me(), me(), 0);
    for at in 4..datagram.len() {
        let mut altered = datagram.clone();
        altered[at] ^= 0x01;
        assert_eq!(
            receiver.open(&mut altered, NOW),
            Err(Refused::Seal),
            "byte {at}"
        );
    }
    // chitchat's own datagram starts with its protocol version, not QCF1.
    assert_eq!(receiver.open(&mut [0u8; 200], NOW), Err(Refused::NotSealed));
    assert_eq!(
        receiver.open(&mut b"QCF1".to_vec(), NOW),
        Err(Refused::NotSealed)
    );
    // The untouched datagram still opens: refusals took nothing.
    assert!(receiver.open(&mut datagram.clone(), NOW).is_ok());
}

#[test]
fn a_datagram_outside_the_window_is_stale_either_way() {
    let seal = Seal::new(&KEY, "qcic", me(), me(), 0);
    let mut receiver = Seal::new(&KEY, "qcic", me(), me(), 0);
    let old = seal.seal(NOW - WINDOW_MS - 1, me(), 1, 0, 1, b"x").unwrap();
    assert_eq!(receiver.open(&mut old.clone(), NOW), Err(Refused::Stale));
    let future = seal.seal(NOW + WINDOW_MS + 1, me(), 1, 0, 1, b"x").unwrap();
    assert_eq!(receiver.open(&mut future.clone(), NOW), Err(Refused::Stale));
    let edge = seal.seal(NOW - WINDOW_MS, me(), 1, 0, 1, b"x").unwrap();
    assert!(receiver.open(&mut edge.clone(), NOW).is_ok());
}

#[test]
fn a_replay_is_refused_for_as_long_as_it_would_pass_the_window() {
    let seal = Seal::new(&KEY, "qcic", me(), me(), 0);
    let mut receiver = Seal::new(&KEY, "qcic", me(), me(), 0);
    let datagram = seal.seal(NOW, me(), 1, 0, 1, b"x").unwrap();
    receiver.open(&mut datagram.clone(), NOW).unwrap();
    // Newer traffic ages the memory; the replay is still within the window.
    for i in 0..100 {
        let fresh = seal.seal(NOW + WINDOW_MS, me(), 2, 0, 1, b"y").unwrap();
        receiver
            .open(&mut fresh.clone(), NOW + WINDOW_MS + i)
            .unwrap();
    }
    assert_eq!(
        receiver.open(&mut datagram.clone(), NOW + WINDOW_MS),
        Err(Refused::Replay)
    );
    // Past the window it is stale, whether remembered or not.
    assert_eq!(
        receiver.open(&mut datagram.clone(), NOW + 3 * WINDOW_MS),
        Err(Refused::Stale)
    );
}

#[test]
fn a_message_too_big_for_one_datagram_goes_in_parts_and_comes_back_whole() {
    let seal = Seal::new(&KEY, "qcic", me(), me(), 0);
    let mut receiver = Seal::new(&KEY, "qcic", me(), me(), 0);
    let message: Vec<u8> = (0..MAX_DATAGRAM).map(|i| (i % 251) as u8).collect();
    let chunks: Vec<&[u8]> = message.chunks(ROOM).collect();
    assert_eq!(chunks.len(), 2);
    let parts = u8::try_from(chunks.len()).unwrap();
    let datagrams: Vec<Vec<u8>> = (0u8..)
        .zip(&chunks)
        .map(|(i, c)| seal.seal(NOW, me(), 5, i, parts, c).unwrap())
        .collect();
    assert!(datagrams.iter().all(|d| d.len() <= MAX_DATAGRAM));
    let mut reassembly = Reassembly::default();
    // Out of order, with another sender's part in between.
    let second = receiver.open(&mut datagrams[1].clone(), NOW).unwrap();
    assert_eq!(reassembly.add(from(), second), None);
    let stray = Opened {
        reply_to: me(),
        id: 5,
        part: 0,
        parts: 2,
        bytes: b"not this".to_vec(),
    };
    let elsewhere = SocketAddr::from(([127, 0, 0, 2], 7790));
    assert_eq!(reassembly.add(elsewhere, stray), None);
    let first = receiver.open(&mut datagrams[0].clone(), NOW).unwrap();
    assert_eq!(reassembly.add(from(), first), Some(message));
}

#[test]
fn a_part_that_is_not_in_its_count_is_malformed_and_partial_messages_are_bounded() {
    let seal = Seal::new(&KEY, "qcic", me(), me(), 0);
    let mut receiver = Seal::new(&KEY, "qcic", me(), me(), 0);
    let bad = seal.seal(NOW, me(), 1, 2, 2, b"x").unwrap();
    assert_eq!(
        receiver.open(&mut bad.clone(), NOW),
        Err(Refused::Malformed)
    );
    let mut reassembly = Reassembly::default();
    for id in 0..100 {
        let part = Opened {
            reply_to: me(),
            id,
            part: 0,
            parts: 2,
            bytes: vec![0; 10],
        };
        assert_eq!(reassembly.add(from(), part), None);
    }
    assert_eq!(reassembly.partial.len(), MAX_PARTIAL);
}

/// A loopback UDP port free now (chitchat binds without SO_REUSEADDR).
fn free_udp() -> SocketAddr {
    let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    probe.local_addr().unwrap()
}

fn node(
    id: &str,
    addr: SocketAddr,
    seed: SocketAddr,
) -> (chitchat::ChitchatId, chitchat::ChitchatConfig) {
    let chitchat_id = chitchat::ChitchatId::new(id.to_owned(), 1, addr);
    let config = chitchat::ChitchatConfig {
        chitchat_id: chitchat_id.clone(),
        cluster_id: "qcic".into(),
        gossip_interval: std::time::Duration::from_millis(50),
        listen_addr: addr,
        seed_nodes: vec![seed.to_string()],
        failure_detector_config: chitchat::FailureDetectorConfig::default(),
        marked_for_deletion_grace_period: std::time::Duration::from_secs(3600),
        catchup_callback: None,
        extra_liveness_predicate: None,
        protocol_version: chitchat::ProtocolVersion::V0,
    };
    (chitchat_id, config)
}

/// Real chitchat nodes over the sealed transport: state far over one
/// datagram arrives whole (chitchat fills each delta to ~63 KB, which
/// with the seal's 46 bytes still fits; a fuller one would go in two
/// parts, as the test above shows), and a node with another key learns
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chitchat_through_the_seal_carries_full_datagrams_and_only_between_keys() {
    let (a_addr, b_addr, x_addr) = (free_udp(), free_udp(), free_udp());
    let stats = Arc::new(Stats::default());
    let sealed_a = SealedUdp::new(KEY, "qcic", a_addr, Arc::clone(&stats));
    let sealed_b = SealedUdp::new(KEY, "qcic", b_addr, Arc::clone(&stats));
    let outsider = SealedUdp::new([9; 32], "qcic", x_addr, Arc::new(Stats::default()));
    // ~300 KB of values that barely compress.
    let mut values = Vec::new();
    for i in 0..300 {
        let mut raw = [0u8; 768];
        getrandom::fill(&mut raw).unwrap();
        values.push((format!("k{i:03}"), z85::encode(raw)));
    }
    let (a_id, a_config) = node("a", a_addr, b_addr);
    let (_, b_config) = node("b", b_addr, a_addr);
    let (_, x_config) = node("x", x_addr, a_addr);
    let a = chitchat::spawn_chitchat(a_config, values.clone(), &sealed_a)
        .await
        .unwrap();
    let b = chitchat::spawn_chitchat(b_config, Vec::new(), &sealed_b)
        .await
        .unwrap();
    let x = chitchat::spawn_chitchat(x_config, Vec::new(), &outsider)
        .await
        .unwrap();
    let learnt = |handle: &chitchat::ChitchatHandle| {
        let chitchat = Arc::clone(&handle.chitchat());
        let a_id = a_id.clone();
        async move {
            let guard = chitchat.lock().await;
            guard.node_state(&a_id).map_or(0, |state| {
                state
                    .key_values()
                    .filter(|(k, _)| k.starts_with('k'))
                    .count()
            })
        }
    };
    let mut whole = false;
    for _ in 0..400 {
        if learnt(&b).await == values.len() {
            whole = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        whole,
        "b learnt {} of {} keys",
        learnt(&b).await,
        values.len()
    );
    {
        let chitchat = b.chitchat();
        let guard = chitchat.lock().await;
        let state = guard.node_state(&a_id).unwrap();
        for (k, v) in &values {
            assert_eq!(state.get(k), Some(v.as_str()), "{k}");
        }
    }
    assert_eq!(learnt(&x).await, 0);
    assert!(stats.farm_gossip_refused.load(Ordering::Relaxed) > 0);
    for handle in [a, b, x] {
        handle.shutdown().await.unwrap();
    }
}

#[test]
fn a_datagram_for_another_watcher_or_from_before_this_start_is_refused() {
    let seal = Seal::new(&KEY, "qcic", me(), me(), 0);
    let other = SocketAddr::from(([10, 0, 0, 6], 7790));
    let mut receiver = Seal::new(&KEY, "qcic", me(), me(), NOW);
    let elsewhere = seal.seal(NOW, other, 1, 0, 1, b"x").unwrap();
    assert_eq!(
        receiver.open(&mut elsewhere.clone(), NOW),
        Err(Refused::Elsewhere)
    );
    // Sealed before the receiver started (beyond the slack for a peer's
    // clock a little behind): from its last run.
    let old = seal
        .seal(NOW - START_SLACK_MS - 1, me(), 1, 0, 1, b"x")
        .unwrap();
    assert_eq!(
        receiver.open(&mut old.clone(), NOW),
        Err(Refused::BeforeStart)
    );
    let behind = seal
        .seal(NOW - START_SLACK_MS, me(), 1, 0, 1, b"x")
        .unwrap();
    assert!(receiver.open(&mut behind.clone(), NOW).is_ok());
    // Bound to 0.0.0.0: any address with its port is this watcher's.
    let mut any = Seal::new(
        &KEY,
        "qcic",
        SocketAddr::from(([0, 0, 0, 0], 7790)),
        me(),
        0,
    );
    let to_any = seal.seal(NOW, other, 1, 0, 1, b"x").unwrap();
    assert!(any.open(&mut to_any.clone(), NOW).is_ok());
    let other_port = seal
        .seal(NOW, SocketAddr::from(([10, 0, 0, 6], 7791)), 1, 0, 1, b"x")
        .unwrap();
    assert_eq!(
        any.open(&mut other_port.clone(), NOW),
        Err(Refused::Elsewhere)
    );
    // IPv6 round-trips.
    let v6: SocketAddr = "[fd00::5]:7790".parse().unwrap();
    let mut six = Seal::new(&KEY, "qcic", v6, v6, 0);
    let to_six = seal.seal(NOW, v6, 1, 0, 1, b"x").unwrap();
    assert!(six.open(&mut to_six.clone(), NOW).is_ok());
}

#[test]
fn the_answer_goes_to_the_senders_sealed_advertise_address() {
    let b = SocketAddr::from(([10, 0, 0, 6], 7790));
    let sender = Seal::new(&KEY, "qcic", SocketAddr::from(([0, 0, 0, 0], 7790)), b, 0);
    let mut receiver = Seal::new(&KEY, "qcic", me(), me(), 0);
    let datagram = sender.seal(NOW, me(), 1, 0, 1, b"x").unwrap();
    assert_eq!(
        receiver.open(&mut datagram.clone(), NOW).unwrap().reply_to,
        b
    );
}
