//! The ZeroMQ alert stream: a PUB socket, two frames per notification.
//!
//! Frame 1 is the topic `alert.<event>.<job>`, so subscribers filter by
//! prefix (`alert.`, `alert.down.`, ...); frame 2 is the notification as a
//! MessagePack map (`docs/PROTOCOL.md`).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;

use tokio::sync::mpsc;
use tracing::{debug, error};

use crate::config::ZmqConfig;
use crate::error::MonitorError;
use crate::notification::Notification;
use crate::notify::Delivery;
use crate::stats::Stats;
use crate::store::Store;

/// Alerts queued per subscriber before PUB drops (two frames each).
pub const ALERT_HWM: i32 = 200_000;

/// The topic frame for a notification.
pub fn topic(note: &Notification) -> String {
    format!("alert.{}.{}", note.event, note.job)
}

/// Binds the PUB socket (errors come back here) and starts its thread, which
/// ends when `rx`'s sender side is dropped.
pub fn start(
    ctx: &zmq::Context,
    index: usize,
    cfg: &ZmqConfig,
    mut rx: mpsc::Receiver<Delivery>,
    stats: Arc<Stats>,
    store: Option<Store>,
) -> Result<JoinHandle<()>, MonitorError> {
    let socket = ctx.socket(zmq::PUB)?;
    // Bounded: a subscriber that went away must not hold up shutdown.
    socket.set_linger(1000)?;
    // A burst (ten thousand jobs due in the same second) must reach a
    // subscriber that is a moment behind: libzmq's default of 1000 queued
    // messages per subscriber would drop the rest silently.
    socket.set_sndhwm(ALERT_HWM)?;
    socket
        .bind(&cfg.publish)
        .map_err(|source| MonitorError::Bind {
            endpoint: cfg.publish.clone(),
            source,
        })?;
    let name = cfg
        .route
        .name
        .clone()
        .unwrap_or_else(|| format!("notify[{index}] zmq {}", cfg.publish));
    let thread = std::thread::Builder::new()
        .name("qcic-publish".into())
        .spawn(move || {
            while let Some(Delivery { id, note, farm }) = rx.blocking_recv() {
                // PUB is fire-and-forget: handed to libzmq is as delivered as it gets.
                if let Some(store) = &store {
                    store.done(id);
                }
                let body = match rmp_serde::to_vec_named(&*note) {
                    Ok(body) => body,
                    Err(err) => {
                        stats.delivery_failed.fetch_add(1, Ordering::Relaxed);
                        error!(channel = %name, cause = %err, "cannot encode the notification");
                        continue;
                    }
                };
                let topic = topic(&note);
                match socket.send_multipart([topic.as_bytes(), &body[..]], 0) {
                    Ok(()) => {
                        if let Some(farm) = &farm {
                            farm.delivered(&note);
                        }
                        stats.delivered.fetch_add(1, Ordering::Relaxed);
                        stats.channel_result(&name, true);
                        debug!(channel = %name, %topic, "published");
                    }
                    Err(err) => {
                        stats.delivery_failed.fetch_add(1, Ordering::Relaxed);
                        stats.channel_result(&name, false);
                        error!(channel = %name, %topic, cause = %err, "publish failed");
                    }
                }
            }
        })?;
    Ok(thread)
}
