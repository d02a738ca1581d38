//! Farm membership over chitchat (scuttlebutt gossip, phi-accrual failure
//! detection, UDP): the only file that knows chitchat.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chitchat::transport::{Transport, UdpTransport};
use chitchat::{
    Chitchat, ChitchatConfig, ChitchatHandle, ChitchatId, FailureDetectorConfig, ListenerHandle,
    NodeState, ProtocolVersion, spawn_chitchat,
};
use tokio::sync::{Mutex, mpsc, watch};

use crate::clock::wall_ms;
use crate::config::FarmConfig;
use crate::error::MonitorError;
use crate::farm::sealed::SealedUdp;
use crate::stats::Stats;

/// A key a peer set: (peer, key, value).
pub type KeyChange = (Arc<str>, String, String);

/// This watcher's membership of the farm.
pub struct Membership {
    handle: ChitchatHandle,
    chitchat: Arc<Mutex<Chitchat>>,
    _listener: ListenerHandle,
}

impl std::fmt::Debug for Membership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Membership")
            .field("id", self.handle.chitchat_id())
            .finish_non_exhaustive()
    }
}

/// What membership reports.
#[derive(Debug)]
pub struct Events {
    /// Keys peers set (their own, or their copies of others').
    pub keys: mpsc::UnboundedReceiver<KeyChange>,
    /// The live nodes, whenever they change.
    pub live: watch::Receiver<BTreeMap<ChitchatId, NodeState>>,
}

/// The live nodes as (id, generation).
pub fn live_nodes(live: &BTreeMap<ChitchatId, NodeState>) -> Vec<(Arc<str>, u64)> {
    live.keys()
        .map(|id| (Arc::clone(&id.node_id), id.generation_id))
        .collect()
}

impl Membership {
    /// Joins the farm as `me`.
    pub async fn join(
        cfg: &FarmConfig,
        me: &str,
        stats: Arc<Stats>,
    ) -> Result<(Membership, Events), MonitorError> {
        let id = ChitchatId::new(me.to_owned(), wall_ms(), cfg.advertise);
        let rounds = (cfg.dead_after.as_secs_f64() / cfg.gossip_interval.as_secs_f64()).max(3.0);
        let config = ChitchatConfig {
            chitchat_id: id,
            cluster_id: cfg.cluster.clone(),
            gossip_interval: cfg.gossip_interval,
            listen_addr: cfg.gossip,
            seed_nodes: cfg.peers.iter().map(|p| p.gossip.clone()).collect(),
            // chitchat's phi is "time since the last heartbeat / mean
            // interval": a threshold of dead_after / interval marks a peer
            // dead after about dead_after of silence.
            failure_detector_config: FailureDetectorConfig {
                phi_threshold: rounds,
                sampling_window_size: 100,
                max_interval: cfg.dead_after,
                initial_interval: cfg.gossip_interval,
                dead_node_grace_period: Duration::from_secs(3600),
            },
            marked_for_deletion_grace_period: Duration::from_secs(3600),
            catchup_callback: None,
            extra_liveness_predicate: None,
            protocol_version: ProtocolVersion::V0,
        };
        let sealed;
        let transport: &dyn Transport = match &cfg.key {
            Some(key) => {
                sealed = SealedUdp::new(key.0, &cfg.cluster, cfg.advertise, stats);
                &sealed
            }
            None => {
                tracing::warn!(
                    gossip = %cfg.gossip,
                    "farm gossip is not sealed ([farm] key_file unset): anyone who can send UDP to it can speak for a peer and hold back alarms; see README \"Securing qcic\""
                );
                &UdpTransport
            }
        };
        let handle = spawn_chitchat(config, Vec::new(), transport)
            .await
            .map_err(|e| MonitorError::Farm {
                addr: cfg.gossip,
                reason: e.to_string(),
            })?;
        let (tx, keys) = mpsc::unbounded_channel::<KeyChange>();
        let chitchat = handle.chitchat();
        let me: Arc<str> = Arc::from(me);
        let (listener, live) = {
            let guard = chitchat.lock().await;
            let listener = guard.subscribe_event("", move |event| {
                if *event.node.node_id != *me {
                    let _ = tx.send((
                        Arc::clone(&event.node.node_id),
                        event.key.to_owned(),
                        event.value.to_owned(),
                    ));
                }
            });
            (listener, guard.live_nodes_watcher())
        };
        Ok((
            Membership {
                handle,
                chitchat,
                _listener: listener,
            },
            Events { keys, live },
        ))
    }

    /// Sets and deletes keys of ours.
    pub async fn update(&self, set: Vec<(String, String)>, delete: Vec<String>) {
        if set.is_empty() && delete.is_empty() {
            return;
        }
        let mut chitchat = self.chitchat.lock().await;
        let state = chitchat.self_node_state();
        for (key, value) in set {
            state.set(key, value);
        }
        for key in delete {
            state.delete(&key);
        }
    }

    /// The heartbeats last known of every node, by id (the highest over
    /// its generations): what the survivors of a peer's outage agree on.
    pub async fn heartbeats(&self) -> BTreeMap<Arc<str>, u64> {
        let chitchat = self.chitchat.lock().await;
        let mut out: BTreeMap<Arc<str>, u64> = BTreeMap::new();
        for (id, state) in chitchat.node_states() {
            let beat = u64::from(state.heartbeat());
            let e = out.entry(Arc::clone(&id.node_id)).or_default();
            *e = (*e).max(beat);
        }
        out
    }

    /// Leaves the farm.
    pub async fn leave(self) {
        let _ = self.handle.shutdown().await;
    }
}
