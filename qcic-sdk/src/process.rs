//! Fork safety: this process's id, cached, and the per-process slot that
//! keeps a forked child off its parent's sender and locks.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, Ordering};

/// This process's id, cached. `getpid` is a system call, and a heartbeat
/// asked twice (the message's pid, the fork check): about a third of its
/// cost. A fork handler empties the cache in the child, so the fork check
/// still sees the new pid.
static PID: AtomicU32 = AtomicU32::new(0);
/// Set if the fork handler could not be registered: then no caching.
static NO_CACHE: AtomicBool = AtomicBool::new(false);

pub(crate) fn pid() -> u32 {
    let cached = PID.load(Ordering::Relaxed);
    if cached != 0 {
        return cached;
    }
    static HANDLER: std::sync::Once = std::sync::Once::new();
    HANDLER.call_once(register_fork_handler);
    let pid = std::process::id();
    if !NO_CACHE.load(Ordering::Relaxed) {
        PID.store(pid, Ordering::Relaxed);
    }
    pid
}

extern "C" fn forked_child() {
    // Async-signal-safe: one atomic store.
    PID.store(0, Ordering::Relaxed);
}

#[expect(unsafe_code, reason = "pthread_atfork has no safe wrapper in std")]
fn register_fork_handler() {
    // SAFETY: `forked_child` is a plain `extern "C" fn` that only stores to
    // an atomic, which is allowed in a child between fork and exec; the
    // handler stays valid for the life of the process (a static function).
    let rc = unsafe { libc::pthread_atfork(None, None, Some(forked_child)) };
    if rc != 0 {
        // Without the handler the cache would be wrong after a fork.
        NO_CACHE.store(true, Ordering::Relaxed);
    }
}

/// One process's sender and its locks. A forked child makes its own slot
/// on first use and never touches its parent's: a lock another thread of
/// the parent held at the moment of `fork` stays held for good in the
/// child (that thread does not exist there), so the child must not need
/// any of them.
#[derive(Debug)]
pub(crate) struct Slot<T> {
    pid: u32,
    pub(crate) sender: Mutex<T>,
    pub(crate) close_result: Mutex<Option<bool>>,
}

impl<T> Slot<T> {
    fn new(pid: u32, sender: T) -> Slot<T> {
        Slot {
            pid,
            sender: Mutex::new(sender),
            close_result: Mutex::new(None),
        }
    }
}

/// This process's slot (a leaked `Box`, freed in `Drop`). After a fork it
/// still points at the parent's until the child's first call to
/// [`ProcessSlot::get`] swaps in the child's own.
pub(crate) struct ProcessSlot<T> {
    slot: AtomicPtr<Slot<T>>,
    /// It owns a `Slot<T>`: sendable and shareable only as that is.
    _owns: PhantomData<Box<Slot<T>>>,
}

impl<T> ProcessSlot<T> {
    /// A slot for this process, holding `sender`.
    pub(crate) fn new(sender: T) -> ProcessSlot<T> {
        let slot = Box::new(Slot::new(pid(), sender));
        ProcessSlot {
            slot: AtomicPtr::new(Box::into_raw(slot)),
            _owns: PhantomData,
        }
    }

    /// This process's slot, made with `fresh()` if the process was forked
    /// since the current one was.
    #[expect(unsafe_code, reason = "the slot is a pointer swapped without a lock")]
    pub(crate) fn get(&self, fresh: impl FnOnce() -> T) -> &Slot<T> {
        let me = pid();
        let current = self.slot.load(Ordering::Acquire);
        // SAFETY: a slot is freed only in `Drop`, which has `&mut self`;
        // until then every pointer ever stored stays valid (a parent's slot
        // is leaked in the child, never freed).
        let slot = unsafe { &*current };
        if slot.pid == me {
            return slot;
        }
        let own = Box::into_raw(Box::new(Slot::new(me, fresh())));
        match self
            .slot
            .compare_exchange(current, own, Ordering::AcqRel, Ordering::Acquire)
        {
            // SAFETY: just stored, and valid until `Drop` as above.
            Ok(_) => unsafe { &*own },
            Err(other) => {
                // Another thread of this process swapped its slot in first
                // (only this process writes this memory, so it is ours).
                // SAFETY: `own` was never shared.
                drop(unsafe { Box::from_raw(own) });
                // SAFETY: as for `current`.
                unsafe { &*other }
            }
        }
    }
}

impl<T> fmt::Debug for ProcessSlot<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.slot, f)
    }
}

impl<T> Drop for ProcessSlot<T> {
    #[expect(unsafe_code, reason = "frees the slot made in `new` or `get`")]
    fn drop(&mut self) {
        let slot = *self.slot.get_mut();
        // SAFETY: `&mut self`: nobody else holds the slot now.
        if unsafe { &*slot }.pid == pid() {
            // SAFETY: made by `Box::into_raw` in this process, freed once.
            drop(unsafe { Box::from_raw(slot) });
        }
        // Otherwise it is a parent's, left as it is: dropping its queue
        // here could wait on locks held by threads that exist only there.
    }
}
