//! Jobs that declare themselves (`declare` messages): taken under the
//! watcher's `[declare]` policy, or refused with a counted, logged reason.

use super::*;

impl Registry {
    /// A declaration. Not a sign of life: it moves no deadline.
    pub(super) fn on_declare(
        &mut self,
        msg: &Message,
        _sender_key: Option<&str>,
        _now: Now,
    ) -> Vec<Notification> {
        let total = self
            .stats
            .declarations_refused
            .fetch_add(1, Ordering::Relaxed)
            + 1;
        if total.is_power_of_two() {
            warn!(job = %msg.job, host = %msg.host, declarations_refused = total, "a job declared itself, but this watcher takes no declarations; refused");
        }
        Vec::new()
    }
}
