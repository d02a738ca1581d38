//! What the state database hands the channels at start-up: the
//! notification log as it was, and the deliveries still pending from
//! before a crash or restart, which go out first.

use std::sync::{Arc, Mutex, PoisonError};

use tracing::{info, warn};

use super::{Delivery, NotificationLog, Queues};
use crate::notification::Notification;
use crate::store::Store;

/// Teaches `log` what was sent before: a notification raised again after
/// a crash (job state is saved in batches) is then known as already sent.
pub fn remember_sent(notes: &Mutex<NotificationLog>, sent: &[Notification]) {
    let mut notes = notes.lock().unwrap_or_else(PoisonError::into_inner);
    for note in sent {
        notes.record(note);
    }
}

/// Queues every pending delivery (outbox row id, channel, notification)
/// for its channel, ahead of anything new; the log learns each, so this
/// run does not notify them again. A delivery whose channel is no longer
/// configured is dropped (and marked done, so it is not replayed again).
pub fn replay(
    pending: crate::store::Pending,
    queues: &Queues,
    notes: &Mutex<NotificationLog>,
    store: Option<&Store>,
) {
    for (id, channel, note) in pending {
        notes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .record(&note);
        match queues.iter().find(|(name, _)| *name == channel) {
            Some((_, queue)) => {
                info!(%channel, incident = %note.incident, event = %note.event, "redelivering a notification pending since before the restart");
                let _ = queue.try_send(Delivery {
                    id: Some(id),
                    note: Arc::new(note),
                    farm: None,
                });
            }
            None => {
                warn!(%channel, incident = %note.incident, "a pending notification's channel is no longer configured; dropped");
                if let Some(store) = store {
                    store.done(Some(id));
                }
            }
        }
    }
}
