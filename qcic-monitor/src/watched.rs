//! The jobs the registry watches, as the receive thread needs them to tell
//! a connection that proved itself (see [`WatchedJobs`]).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// The jobs the watcher watches, as the receive thread needs them: only a
/// message the registry would take (a watched job, from a key the job is
/// pinned to, if it is) proves its connection to the guard, so a peer that
/// makes up job names, or a key that may not report the job it names,
/// cannot make its connections look like senders' (an outside attack held
/// every place under the cap with one connection per address, each proven
/// by a heartbeat for a made-up job, and locked real senders out; with
/// CURVE, throwaway keys did the same with a pinned job's name). Keyed
/// hashes, not names (the registry keeps the names): ~20 bytes a job.
/// Replaced whole on a reload.
#[derive(Debug, Default)]
pub struct WatchedJobs {
    keys: std::collections::hash_map::RandomState,
    set: std::sync::RwLock<Watched>,
}

#[derive(Debug, Default)]
struct Watched {
    jobs: HashSet<u64>,
    /// Jobs pinned to sender keys: the keys' hashes.
    pinned: HashMap<u64, HashSet<u64>>,
}

impl WatchedJobs {
    /// The set of `jobs`.
    pub fn new(jobs: &[crate::config::JobConfig]) -> Arc<WatchedJobs> {
        let watched = WatchedJobs::default();
        watched.replace(jobs);
        Arc::new(watched)
    }

    /// Watches `jobs` from now on, instead of the jobs before.
    pub fn replace(&self, jobs: &[crate::config::JobConfig]) {
        use std::hash::BuildHasher;
        let mut set = Watched::default();
        for job in jobs {
            let name = self.keys.hash_one(job.name.as_str());
            set.jobs.insert(name);
            if let Some(keys) = &job.senders {
                set.pinned.insert(
                    name,
                    keys.iter()
                        .map(|k| self.keys.hash_one(k.as_str()))
                        .collect(),
                );
            }
        }
        *self
            .set
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = set;
    }

    /// Watches `job` too (a job that declared itself), pinned to `senders`
    /// if given.
    pub fn add(&self, job: &str, senders: Option<&HashSet<String>>) {
        use std::hash::BuildHasher;
        let name = self.keys.hash_one(job);
        let mut set = self
            .set
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        set.jobs.insert(name);
        match senders {
            Some(keys) => {
                set.pinned.insert(
                    name,
                    keys.iter()
                        .map(|k| self.keys.hash_one(k.as_str()))
                        .collect(),
                );
            }
            None => {
                set.pinned.remove(&name);
            }
        }
    }

    /// No longer watches `job` (a declared job forgotten or retired).
    pub fn remove(&self, job: &str) {
        use std::hash::BuildHasher;
        let name = self.keys.hash_one(job);
        let mut set = self
            .set
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        set.jobs.remove(&name);
        set.pinned.remove(&name);
    }

    /// Whether the registry would take a message for `job` from
    /// `sender_key` (with CURVE) as its job's.
    pub fn takes(&self, job: &str, sender_key: Option<&str>) -> bool {
        use std::hash::BuildHasher;
        let name = self.keys.hash_one(job);
        let set = self
            .set
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        set.jobs.contains(&name)
            && set.pinned.get(&name).is_none_or(|keys| {
                sender_key.is_some_and(|key| keys.contains(&self.keys.hash_one(key)))
            })
    }
}
