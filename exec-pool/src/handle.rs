//! [`PoolRef`]: the counted reference to a pool's [`Shared`] state that
//! scheduler handles and `schedule()` senders hold.
//!
//! Every `schedule()` makes one (the sender must keep the pool alive until
//! it is started) and drops it once the operation is queued. With a plain
//! `Arc` that is two read-modify-writes on one cache line that every worker
//! hits, so the line bounces between cores on every schedule. Instead a
//! `PoolRef` counts itself in a *shard* — one cache-padded counter per
//! worker plus one for all other threads — chosen by the thread that makes
//! it: a reference made and dropped on one worker never leaves that
//! worker's line. Each shard with a non-zero count holds one strong count
//! of the `Arc<Shared>`; the `Arc` frees the state as before. Each worker
//! keeps one reference in its own shard while it runs, so that a reference
//! made and dropped there never moves that shard between 0 and 1, which
//! would take and give up a strong count on the `Arc`'s shared line.
//!
//! # Why a shard's 0 → 1 and 1 → 0 may race safely
//! A `PoolRef` is made only from a live `Arc<Shared>` or cloned from a live
//! `PoolRef`. While thread Y clones from a source in shard `s'` into shard
//! `s`, the source keeps `s'` non-zero and so keeps a strong count. If X
//! drops the last reference of `s` at the same time (its `fetch_sub` returns
//! 1, Y's `fetch_add` returns 0), X gives up `s`'s strong count and Y takes
//! a new one for `s`: the strong count cannot reach zero in between,
//! because `s' != s` (if the source were in `s`, X's `fetch_sub` would not
//! have returned 1) still holds one. So the strong count is always at least
//! the number of non-zero shards, and the state lives while any `PoolRef`
//! does.
//!
//! The shard index lives in the low bits of the pointer (`Shared` is aligned
//! to 128 bytes), so a `PoolRef` is one word and a schedule operation stays
//! four words. Pools with more than `SHARDS - 1` workers share the last
//! worker shard among the surplus workers (only a matter of contention).

use core::fmt;
use core::ops::Deref;
use core::ptr::NonNull;

use crate::loom::sync::Arc;
use crate::loom::sync::atomic::Ordering;
use crate::worker::Shared;

/// How many shards a pool has at most (they are indexed by the pointer's
/// low bits).
pub(crate) const SHARDS: usize = 64;
const MASK: usize = SHARDS - 1;
const _: () = assert!(core::mem::align_of::<Shared>() >= SHARDS);

/// A counted reference to a pool's [`Shared`] state (see the module docs).
pub(crate) struct PoolRef {
    /// The address of the state (from `Arc::as_ptr`, alive while this
    /// `PoolRef` exists, see the module docs) with the index of the shard
    /// this reference is counted in in its low bits.
    tagged: NonNull<Shared>,
}

// SAFETY: `PoolRef` is a shared reference to `Shared`, which is `Send +
// Sync`; the count it holds is released through atomics on any thread.
unsafe impl Send for PoolRef {}
// SAFETY: as above; `&PoolRef` only reaches `&Shared`.
unsafe impl Sync for PoolRef {}

impl PoolRef {
    /// A reference to the state `arc` owns, counted in the calling thread's
    /// shard.
    pub(crate) fn new(arc: &Arc<Shared>) -> Self {
        // `Arc::as_ptr`, not `&**arc`: the pointer must carry the provenance
        // of the whole allocation, counts included, for the strong-count
        // calls below.
        let ptr = Arc::as_ptr(arc) as *mut Shared;
        // SAFETY: an `Arc`'s pointer is never null.
        let ptr = unsafe { NonNull::new_unchecked(ptr) };
        // SAFETY: `arc` keeps the state alive during the call.
        unsafe { Self::acquire(ptr) }
    }

    /// Counts one more reference in the calling thread's shard.
    ///
    /// # Safety
    /// `ptr` comes from an `Arc<Shared>`, and that `Arc` or a `PoolRef` to
    /// it is alive during the call.
    #[inline]
    unsafe fn acquire(ptr: NonNull<Shared>) -> Self {
        // SAFETY: alive per the contract.
        let shared = unsafe { ptr.as_ref() };
        let shard = shared.current_shard();
        debug_assert!(shard < SHARDS);
        // Relaxed: the shard count only decides who holds the strong count;
        // the `Arc` orders the final free.
        if shared.shards[shard].fetch_add(1, Ordering::Relaxed) == 0 {
            // SAFETY: the pointer comes from an `Arc` whose strong count is
            // non-zero during the call (per the contract).
            unsafe { Arc::increment_strong_count(ptr.as_ptr() as *const Shared) };
        }
        PoolRef {
            tagged: ptr.map_addr(|a| a | shard),
        }
    }

    /// The state's address, without the shard.
    #[inline]
    fn ptr(&self) -> NonNull<Shared> {
        // The address is a non-zero multiple of `SHARDS`: clearing the low
        // bits leaves it non-zero.
        self.tagged
            .map_addr(|a| core::num::NonZeroUsize::new(a.get() & !MASK).unwrap_or(a))
    }

    /// The shard this reference is counted in.
    #[inline]
    fn shard(&self) -> usize {
        self.tagged.addr().get() & MASK
    }

    /// Whether both refer to the same pool.
    pub(crate) fn ptr_eq(&self, other: &PoolRef) -> bool {
        self.ptr() == other.ptr()
    }

    /// The address of the pool's state (for `Debug`).
    pub(crate) fn as_ptr(&self) -> *const Shared {
        self.ptr().as_ptr()
    }
}

impl Clone for PoolRef {
    #[inline]
    fn clone(&self) -> Self {
        // SAFETY: `self` is alive during the call and refers to an
        // `Arc`-owned state.
        unsafe { Self::acquire(self.ptr()) }
    }
}

impl Drop for PoolRef {
    #[inline]
    fn drop(&mut self) {
        // Read what we need first: giving up the strong count may free it.
        let ptr = self.ptr().as_ptr() as *const Shared;
        // SAFETY: alive until the strong count below is given up.
        let shard = unsafe { &(*ptr).shards[self.shard()] };
        if shard.fetch_sub(1, Ordering::Relaxed) == 1 {
            // SAFETY: this shard held one strong count (module invariant),
            // which we give up; the `Arc` orders the free (AcqRel).
            unsafe { Arc::decrement_strong_count(ptr) };
        }
    }
}

impl Deref for PoolRef {
    type Target = Shared;
    #[inline]
    fn deref(&self) -> &Shared {
        // SAFETY: alive while `self` exists (module invariant).
        unsafe { self.ptr().as_ref() }
    }
}

impl fmt::Debug for PoolRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolRef")
            .field("pool", &self.ptr())
            .field("shard", &self.shard())
            .finish()
    }
}
