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
//! of the `Arc<Shared>`; the `Arc` frees the state as before.
//!
//! # A worker's own shard: no read-modify-write
//! Only worker `i`'s thread makes references in shard `i` (a reference is
//! counted where it is made), so while `i` runs, the references it makes
//! and drops itself are counted in `local`, which only that thread reads
//! and writes (a load and a store, no locked instruction); references of
//! shard `i` dropped on other threads subtract from `count` instead. The
//! worker *opens* its shard when it starts (`enter_worker`: the shard takes
//! a strong count, and the worker keeps one reference in it, so `local`
//! stays ≥ 1 and no zero has to be detected while it runs) and *closes* it
//! when it stops (`leave_worker`: it stops counting as worker `i`, so its
//! own later drops subtract from `count` too, then adds `local` into
//! `count`, which from then on is the number of references, and drops its
//! own reference like any other). Before the close, `count` is 0 minus the
//! remote drops, so no remote drop can see it fall from 1 to 0; after the
//! close, the drop that does gives up the shard's strong count. A shard that
//! several threads count in (the outside one, the one surplus workers of a
//! very large pool share) keeps the protocol below.
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
use crate::loom::sync::atomic::{AtomicUsize, Ordering};
use crate::worker::Shared;

/// How many shards a pool has at most (they are indexed by the pointer's
/// low bits).
pub(crate) const SHARDS: usize = 64;
const MASK: usize = SHARDS - 1;
const _: () = assert!(core::mem::align_of::<Shared>() >= SHARDS);

/// One shard's counts (see the module docs).
pub(crate) struct Shard {
    /// A shared shard: the references counted here. A worker's own shard:
    /// minus (wrapping) the references dropped on other threads until the
    /// worker closes it, then the references counted here.
    count: AtomicUsize,
    /// A worker's own shard while open: the references its worker made
    /// minus those it dropped. Only that thread touches it (Relaxed load
    /// and store).
    local: AtomicUsize,
    /// Whether exactly one worker counts in this shard.
    owned: bool,
}

impl Shard {
    /// The `local` count if exactly one worker counts in this shard (for
    /// that worker's thread-local, see `worker::Current`), else null.
    pub(crate) fn local_if_owned(&self) -> *const AtomicUsize {
        if self.owned {
            &self.local
        } else {
            core::ptr::null()
        }
    }

    /// A shard with no references; `owned` if exactly one worker counts in it.
    pub(crate) fn new(owned: bool) -> Self {
        Shard {
            count: AtomicUsize::new(0),
            local: AtomicUsize::new(0),
            owned,
        }
    }
}

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
        let current = shared.current();
        if let Some(c) = current
            && !c.local.is_null()
        {
            // We are the worker of this open, owned shard (only it maps
            // here): `local` is ours alone.
            // SAFETY: points into the pool's state, alive (see above).
            let local = unsafe { &*c.local };
            local.store(local.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
            return PoolRef {
                tagged: ptr.map_addr(|a| a | c.shard),
            };
        }
        let shard = match current {
            Some(c) => c.shard,
            None => shared.shards.len() - 1,
        };
        debug_assert!(shard < SHARDS);
        let counts = &shared.shards[shard];
        // Relaxed: the shard count only decides who holds the strong count;
        // the `Arc` orders the final free.
        if counts.count.fetch_add(1, Ordering::Relaxed) == 0 {
            // SAFETY: the pointer comes from an `Arc` whose strong count is
            // non-zero during the call (per the contract).
            unsafe { Arc::increment_strong_count(ptr.as_ptr() as *const Shared) };
        }
        PoolRef {
            tagged: ptr.map_addr(|a| a | shard),
        }
    }

    /// Makes the calling thread worker `index` of the pool `from` refers
    /// to and opens its shard (see the module docs); returns the reference
    /// that keeps the shard open, for [`leave_worker`](Self::leave_worker).
    pub(crate) fn enter_worker(from: &PoolRef, index: usize) -> PoolRef {
        from.set_current_worker(Some(index));
        let shard = from.current_shard();
        if from.shards[shard].owned {
            // The open shard's strong count, given up by the drop that
            // brings `count` to zero after the close.
            // SAFETY: `from` keeps the `Arc`-owned state alive; its pointer
            // carries the provenance of the whole allocation.
            unsafe { Arc::increment_strong_count(from.ptr().as_ptr() as *const Shared) };
        }
        // Counted in `local` (owned) or as in any shared shard.
        from.clone()
    }

    /// The calling thread stops being a worker and closes the shard `keep`
    /// (from [`enter_worker`](Self::enter_worker)) kept open.
    pub(crate) fn leave_worker(keep: PoolRef) {
        keep.set_current_worker(None);
        let counts = &keep.shards[keep.shard()];
        if counts.owned {
            // From now on our drops, like everyone's, go to `count`; hand
            // it what `local` counted. AcqRel: as for a drop (below).
            let local = counts.local.load(Ordering::Relaxed);
            counts.local.store(0, Ordering::Relaxed);
            counts.count.fetch_add(local, Ordering::AcqRel);
        }
        drop(keep);
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

    /// The address of the pool's state.
    #[inline]
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

impl PoolRef {
    /// Gives up this handle's count.
    ///
    /// # Safety
    /// Called once, as the handle's drop; the handle is not used afterwards.
    #[inline]
    unsafe fn release(&mut self) {
        // Read what we need first: giving up the strong count may free it.
        let ptr = self.ptr().as_ptr() as *const Shared;
        let index = self.shard();
        // SAFETY: alive until the strong count below is given up.
        let shared = unsafe { &*ptr };
        if let Some(c) = shared.current()
            && c.shard == index
            && !c.local.is_null()
        {
            // The owned shard's worker, shard open: `local` is ours and
            // stays ≥ 1 (the worker's own reference), so this is never the
            // last.
            // SAFETY: points into the pool's state, alive (see above).
            let local = unsafe { &*c.local };
            local.store(local.load(Ordering::Relaxed) - 1, Ordering::Relaxed);
            return;
        }
        // A shared shard, or an owned one released on another thread than
        // its worker's (or after the worker closed it).
        // AcqRel (the `Arc` drop pattern): our uses of the state
        // happen-before the free by whoever brings `count` to zero and then
        // gives up the shard's strong count (it acquires them all).
        let last = shared.shards[index].count.fetch_sub(1, Ordering::AcqRel) == 1;
        if last {
            // SAFETY: this shard held one strong count (module invariant),
            // which we give up; the `Arc` orders the free (AcqRel).
            unsafe { Arc::decrement_strong_count(ptr) };
        }
    }
}

impl Drop for PoolRef {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: this is the handle's drop.
        unsafe { self.release() };
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
