//! Per-thread recycling of [`AnySender`](crate::AnySender) frames.
//!
//! A recursive fork-join (`fib` by recursive `when_all`) makes and frees
//! one erased frame per call; going to the global allocator each time costs
//! more than the rest of the composition, and on a pool the frames are
//! often freed on another thread than the one that made them, which is the
//! slow path of most allocators. So frames come from size classes (multiples
//! of [`FINE`] bytes up to [`FINE_MAX`], then of [`COARSE`] bytes up to
//! [`MAX_SIZE`], aligned to [`ALIGN`]) and a
//! freed frame goes onto the *freeing* thread's free list for its class, to
//! be handed out again by the next allocation of that class on that thread
//! (DESIGN: "frames recycled per worker").
//!
//! # Invariants
//! - Every block of class `c` is allocated from the global allocator with
//!   [`class_layout`]`(c)` and, when not cached, returned to it with the
//!   same layout: which class a layout maps to is a pure function of the
//!   layout, so [`alloc`] and [`dealloc`] agree.
//! - A cached block is owned by the free list of one thread; nothing else
//!   points to it. Its first word is the link to the next cached block.
//! - A thread caches at most [`MAX_PER_CLASS`] blocks per class. When a
//!   class is full, its whole list moves, as one *batch*, to a process-wide
//!   depot (a mutex per class, taken once per batch), unless the depot holds
//!   [`depot_batches_max`] batches of that class already (about
//!   [`DEPOT_BYTES`] of blocks): then the freed block goes back to the
//!   global allocator. A thread whose class is empty takes
//!   a batch from the depot before asking the global allocator. So frames
//!   made on one worker and freed on another (a fork-join on a pool) flow
//!   back to the allocating worker without the global allocator.
//! - A batch in the depot is owned by the depot; a thread's cache is
//!   emptied when the thread exits (during and after that, frames bypass
//!   it); the depot's batches stay for the other threads.
//!
//! # The thread-local, and emptying it at thread exit
//! The free lists live in a `const`-initialized thread-local without a
//! destructor, which the common paths reach with one thread-pointer-relative
//! address (a thread-local with a destructor is checked for "not yet
//! registered / already destroyed" on every access). Emptying the lists at
//! thread exit is the job of a second thread-local, a guard with a
//! destructor, registered by the first slow path the thread takes. Until
//! then every class's count reads [`MAX_PER_CLASS`] (so the first free of a
//! class takes the slow path) and every list is empty (so does the first
//! allocation); the slow path registers the guard and zeroes the counts.
//! The guard's destructor returns the cached blocks to the global allocator
//! and *closes* the cache: counts at the maximum and lists empty again, and
//! the slow paths, seeing it closed, pass frames to the global allocator
//! from then on (frames freed by later thread-local destructors).
//!
//! Without the `std` feature (no thread-locals), and under loom, frames go
//! straight to the global allocator.

use alloc::alloc::{alloc as global_alloc, dealloc as global_dealloc, handle_alloc_error};
use core::alloc::Layout;
use core::ptr::NonNull;

/// Size-class granularity of small frames, in bytes: small operation
/// states (a spawned task's block, a channel) are the ones made by the
/// hundred thousand, so they waste at most 15 bytes each.
const FINE: usize = 16;
/// Frames up to this size have [`FINE`]-byte classes.
const FINE_MAX: usize = 256;
/// Size-class granularity above [`FINE_MAX`], in bytes.
const COARSE: usize = 64;
/// Frames up to this size are recycled.
const MAX_SIZE: usize = 1024;
/// Number of classes.
#[cfg_attr(not(any(test, all(feature = "std", not(loom)))), allow(dead_code))]
const CLASSES: usize = FINE_MAX / FINE + (MAX_SIZE - FINE_MAX) / COARSE;
/// The smallest class holds a free-list link.
const _: () = assert!(FINE >= core::mem::size_of::<usize>());
/// Alignment of every class block; frames aligned more strictly bypass the
/// cache.
const ALIGN: usize = 16;
/// At most this many free blocks are kept per class and thread.
#[cfg_attr(not(all(feature = "std", not(loom))), allow(dead_code))]
const MAX_PER_CLASS: u32 = 64;
/// About how many bytes of blocks the depot keeps per class (at least
/// [`DEPOT_MIN_BATCHES`] batches).
///
/// A bound in bytes rather than batches: a thread that spawns a burst of
/// work which other threads finish (2,000 spawns from outside a pool, say)
/// has that many blocks in flight, all freed on the workers; with room for
/// only a few batches, most of them went back to the global allocator as
/// cross-thread frees (its slow path) and the spawning thread allocated
/// most of the next burst from it again. The memory kept is memory the
/// program had in use at its peak, at most this much per class (28 MiB
/// over all [`CLASSES`]).
#[cfg_attr(not(all(feature = "std", not(loom))), allow(dead_code))]
const DEPOT_BYTES: usize = 1 << 20;
/// The depot's room per class, for the largest classes.
#[cfg_attr(not(all(feature = "std", not(loom))), allow(dead_code))]
const DEPOT_MIN_BATCHES: usize = 4;

/// At most this many batches of [`MAX_PER_CLASS`] blocks of class `c` wait
/// in the depot: [`DEPOT_BYTES`] worth, and at least [`DEPOT_MIN_BATCHES`].
#[cfg_attr(not(all(feature = "std", not(loom))), allow(dead_code))]
const fn depot_batches_max(c: usize) -> usize {
    let batches = DEPOT_BYTES / (MAX_PER_CLASS as usize * class_size(c));
    if batches < DEPOT_MIN_BATCHES {
        DEPOT_MIN_BATCHES
    } else {
        batches
    }
}

/// The block size of class `c` (`c < CLASSES`).
#[inline]
const fn class_size(c: usize) -> usize {
    if c < FINE_MAX / FINE {
        (c + 1) * FINE
    } else {
        FINE_MAX + (c + 1 - FINE_MAX / FINE) * COARSE
    }
}

/// The class of a frame with `layout`, if it is recycled: the smallest
/// class whose blocks hold it.
#[inline]
fn class_of(layout: Layout) -> Option<usize> {
    let size = layout.size();
    if size == 0 || size > MAX_SIZE || layout.align() > ALIGN {
        None
    } else if size <= FINE_MAX {
        Some((size - 1) / FINE)
    } else {
        Some(FINE_MAX / FINE + (size - FINE_MAX - 1) / COARSE)
    }
}

/// The layout every block of class `c` is allocated with.
#[inline]
fn class_layout(c: usize) -> Layout {
    // Non-zero size, power-of-two alignment, no overflow: always valid.
    match Layout::from_size_align(class_size(c), ALIGN) {
        Ok(l) => l,
        Err(_) => unreachable!(),
    }
}

/// Allocates a frame for `layout` (a recycled block if this thread has one).
///
/// Never returns null: allocation failure goes to [`handle_alloc_error`].
/// A zero-sized `layout` gets a dangling, aligned pointer.
#[inline]
pub(crate) fn alloc(layout: Layout) -> NonNull<u8> {
    let Some(c) = class_of(layout) else {
        return alloc_exact(layout);
    };
    #[cfg(all(feature = "std", not(loom)))]
    if let Some(block) = CACHE.with(|cache| cache.pop(c)) {
        return block;
    }
    alloc_exact(class_layout(c))
}

/// Frees a frame made by [`alloc`] with the same `layout`.
///
/// # Safety
/// `ptr` was returned by [`alloc`]`(layout)` and is not used afterwards.
#[inline]
pub(crate) unsafe fn dealloc(ptr: NonNull<u8>, layout: Layout) {
    let Some(c) = class_of(layout) else {
        if layout.size() != 0 {
            // SAFETY: allocated by `alloc_exact(layout)` (see `alloc`).
            unsafe { global_dealloc(ptr.as_ptr(), layout) };
        }
        return;
    };
    #[cfg(all(feature = "std", not(loom)))]
    if CACHE.with(|cache| cache.push(c, ptr)) {
        return;
    }
    // SAFETY: a block of class `c`, allocated with `class_layout(c)` (by
    // `alloc`, directly or through some thread's cache).
    unsafe { global_dealloc(ptr.as_ptr(), class_layout(c)) };
}

fn alloc_exact(layout: Layout) -> NonNull<u8> {
    if layout.size() == 0 {
        // A dangling pointer with the right alignment (no provenance needed:
        // a zero-sized frame is never read or written).
        return NonNull::<u8>::dangling().with_addr(
            core::num::NonZeroUsize::new(layout.align()).unwrap_or(core::num::NonZeroUsize::MIN),
        );
    }
    // SAFETY: non-zero size.
    let p = unsafe { global_alloc(layout) };
    match NonNull::new(p) {
        Some(p) => p,
        None => handle_alloc_error(layout),
    }
}

#[cfg(all(feature = "std", not(loom)))]
mod cache {
    use alloc::vec::Vec;
    use core::cell::Cell;
    use core::ptr::{self, NonNull};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Mutex, MutexGuard};

    use super::{CLASSES, MAX_PER_CLASS, class_layout, depot_batches_max, global_dealloc};

    /// A cached block's link to the next one (stored in the block itself).
    struct Free {
        next: *mut Free,
    }

    /// A whole free list of one class, on its way between threads.
    struct Batch {
        head: *mut Free,
        count: u32,
    }

    // SAFETY: a batch owns its blocks (module invariant): nobody else points
    // to them, so whichever thread holds the batch may use them.
    unsafe impl Send for Batch {}

    /// Batches handed between threads, per class.
    static DEPOT: [Mutex<Vec<Batch>>; CLASSES] = [const { Mutex::new(Vec::new()) }; CLASSES];
    /// How many batches each class of the depot holds, written under its
    /// lock: a hint read without it, so that a thread whose class is empty
    /// does not take the lock on every allocation while the depot is empty
    /// too (a thread that only allocates, freeing on other threads).
    static DEPOT_LEN: [AtomicUsize; CLASSES] = [const { AtomicUsize::new(0) }; CLASSES];

    /// How many batches of class `c` wait in the depot.
    #[cfg(test)]
    pub(super) fn depot_batches(c: usize) -> usize {
        depot(c).len()
    }

    fn depot(c: usize) -> MutexGuard<'static, Vec<Batch>> {
        // Nothing panics while holding the lock but an allocation failure
        // in `Vec::push` (which aborts); a poisoned list is still sound.
        DEPOT[c].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `Cache::state`: the exit guard is not registered yet.
    const UNREGISTERED: u8 = 0;
    /// `Cache::state`: the exit guard is registered; the cache is in use.
    const ACTIVE: u8 = 1;
    /// `Cache::state`: the exit guard emptied the cache (the thread is
    /// exiting); frames bypass it.
    const CLOSED: u8 = 2;

    /// One thread's free lists, one per class (see the module docs, "The
    /// thread-local, and emptying it at thread exit").
    pub(super) struct Cache {
        heads: [Cell<*mut Free>; CLASSES],
        /// `MAX_PER_CLASS` for every class unless `ACTIVE`.
        counts: [Cell<u32>; CLASSES],
        /// `UNREGISTERED`, `ACTIVE` or `CLOSED`; read only by the slow paths.
        state: Cell<u8>,
    }

    /// Empties this thread's cache when the thread exits.
    struct ExitGuard;

    impl Drop for ExitGuard {
        fn drop(&mut self) {
            super::CACHE.with(Cache::close);
        }
    }

    std::thread_local! {
        static EXIT_GUARD: ExitGuard = const { ExitGuard };
    }

    impl Cache {
        pub(super) const fn new() -> Self {
            Cache {
                heads: [const { Cell::new(ptr::null_mut()) }; CLASSES],
                counts: [const { Cell::new(MAX_PER_CLASS) }; CLASSES],
                state: Cell::new(UNREGISTERED),
            }
        }

        /// Whether the cache may be used (registering the exit guard first
        /// if that is not done yet). Slow paths only.
        #[cold]
        #[inline(never)]
        fn usable(&self) -> bool {
            match self.state.get() {
                ACTIVE => true,
                CLOSED => false,
                _ => {
                    // Registers the guard's destructor; fails if this
                    // thread's thread-locals are being destroyed already.
                    if EXIT_GUARD.try_with(|_| ()).is_err() {
                        self.state.set(CLOSED);
                        return false;
                    }
                    for count in &self.counts {
                        count.set(0);
                    }
                    self.state.set(ACTIVE);
                    true
                }
            }
        }

        /// Returns every cached block to the global allocator and closes
        /// the cache (the thread is exiting).
        fn close(&self) {
            for c in 0..CLASSES {
                while let Some(block) = self.pop_local(c) {
                    // SAFETY: every cached block of class `c` was allocated
                    // with `class_layout(c)` and is owned by this list.
                    unsafe { global_dealloc(block.as_ptr(), class_layout(c)) };
                }
                self.counts[c].set(MAX_PER_CLASS);
            }
            self.state.set(CLOSED);
        }

        /// A cached block of class `c`, if any (refilling the class from
        /// the depot if it is empty).
        #[inline]
        pub(super) fn pop(&self, c: usize) -> Option<NonNull<u8>> {
            if self.heads[c].get().is_null() {
                self.refill(c);
            }
            self.pop_local(c)
        }

        /// Takes a batch from the depot into the (empty) class `c`.
        #[cold]
        fn refill(&self, c: usize) {
            if !self.usable() {
                return;
            }
            // Relaxed: a stale answer only costs a lock taken for nothing,
            // or a batch missed until the next allocation; the lock orders
            // the blocks themselves.
            if DEPOT_LEN[c].load(Ordering::Relaxed) == 0 {
                return;
            }
            let mut depot = depot(c);
            let batch = depot.pop();
            DEPOT_LEN[c].store(depot.len(), Ordering::Relaxed);
            drop(depot);
            if let Some(batch) = batch {
                self.heads[c].set(batch.head);
                self.counts[c].set(batch.count);
            }
        }

        /// A block from this thread's list of class `c`, if any.
        #[inline]
        fn pop_local(&self, c: usize) -> Option<NonNull<u8>> {
            let head = NonNull::new(self.heads[c].get())?;
            // SAFETY: cached blocks are owned by this list (module
            // invariant) and start with a `Free` link written by `push`.
            let next = unsafe { (*head.as_ptr()).next };
            self.heads[c].set(next);
            self.counts[c].set(self.counts[c].get() - 1);
            Some(head.cast())
        }

        /// Caches `block` (of class `c`) unless the class is full; `false`
        /// means the caller frees it.
        #[inline]
        pub(super) fn push(&self, c: usize, block: NonNull<u8>) -> bool {
            let mut n = self.counts[c].get();
            if n >= MAX_PER_CLASS {
                if !self.hand_off(c) {
                    return false;
                }
                n = 0;
            }
            let free = block.cast::<Free>();
            // SAFETY: the block is at least `FINE` bytes, aligned to
            // `ALIGN`, and ours now (the caller gave it up).
            unsafe {
                free.as_ptr().write(Free {
                    next: self.heads[c].get(),
                })
            };
            self.heads[c].set(free.as_ptr());
            self.counts[c].set(n + 1);
            true
        }
    }

    impl Cache {
        /// Makes room in class `c`, whose count reads full: registers the
        /// exit guard if this is the thread's first slow path (the class is
        /// then empty), or moves the (full) list to the depot, unless the
        /// depot has enough of that class. `true` if the class is empty now;
        /// `false` if the caller frees its block (the depot is full, or the
        /// cache is closed).
        #[cold]
        fn hand_off(&self, c: usize) -> bool {
            if self.state.get() != ACTIVE {
                return self.usable();
            }
            // Relaxed hint, as in `refill`: a depot that looks full is not
            // locked for nothing on every free while it stays full.
            if DEPOT_LEN[c].load(Ordering::Relaxed) >= depot_batches_max(c) {
                return false;
            }
            let mut depot = depot(c);
            if depot.len() >= depot_batches_max(c) {
                return false;
            }
            depot.push(Batch {
                head: self.heads[c].replace(ptr::null_mut()),
                count: self.counts[c].replace(0),
            });
            DEPOT_LEN[c].store(depot.len(), Ordering::Relaxed);
            true
        }
    }
}

#[cfg(all(feature = "std", not(loom)))]
std::thread_local! {
    // No destructor (see the module docs): `cache::ExitGuard` empties it.
    static CACHE: cache::Cache = const { cache::Cache::new() };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames handed to another thread (to be freed there).
    #[cfg(all(feature = "std", not(loom)))]
    struct Frames(alloc::vec::Vec<NonNull<u8>>);
    // SAFETY: the blocks are plain memory owned by whoever holds the
    // vector; nothing else points at them.
    #[cfg(all(feature = "std", not(loom)))]
    unsafe impl Send for Frames {}

    #[test]
    fn classes_round_up_and_bound() {
        let class = |size| class_of(Layout::from_size_align(size, 8).unwrap());
        assert_eq!(class(1), Some(0));
        assert_eq!(class(16), Some(0));
        assert_eq!(class(17), Some(1));
        assert_eq!(class(80), Some(4));
        assert_eq!(class(256), Some(15));
        assert_eq!(class(257), Some(16));
        assert_eq!(class(320), Some(16));
        assert_eq!(class(321), Some(17));
        assert_eq!(class(MAX_SIZE), Some(CLASSES - 1));
        assert_eq!(class(MAX_SIZE + 1), None);
        // Every size maps to the smallest class that holds it, and class
        // sizes increase.
        for size in 1..=MAX_SIZE {
            let c = class(size).unwrap();
            assert!(class_size(c) >= size, "{size} in class {c}");
            assert!(c == 0 || class_size(c - 1) < size, "{size} in class {c}");
            assert_eq!(class_layout(c).size(), class_size(c));
        }
        assert_eq!(class_of(Layout::from_size_align(64, 32).unwrap()), None);
        assert_eq!(class_of(Layout::from_size_align(0, 1).unwrap()), None);
    }

    #[test]
    fn recycles_on_the_same_thread() {
        let l = Layout::from_size_align(100, 8).unwrap();
        let a = alloc(l);
        // SAFETY: from `alloc(l)`, not used again.
        unsafe { dealloc(a, l) };
        let b = alloc(Layout::from_size_align(110, 16).unwrap());
        #[cfg(all(feature = "std", not(loom)))]
        assert_eq!(a, b, "same class (97..=112): the freed block is reused");
        // SAFETY: from `alloc` with this layout.
        unsafe { dealloc(b, Layout::from_size_align(110, 16).unwrap()) };
        // Big, over-aligned and zero-sized frames bypass the classes.
        for l in [
            Layout::from_size_align(4096, 8).unwrap(),
            Layout::from_size_align(64, 64).unwrap(),
            Layout::from_size_align(0, 4).unwrap(),
        ] {
            let p = alloc(l);
            assert_eq!(p.as_ptr().addr() % l.align(), 0);
            // SAFETY: from `alloc(l)`.
            unsafe { dealloc(p, l) };
        }
    }

    /// Frames made on one thread and freed on another come back to the
    /// first through the depot instead of the global allocator.
    #[cfg(all(feature = "std", not(loom)))]
    #[test]
    fn frames_freed_on_another_thread_are_reused() {
        extern crate std;
        // A class no other test of this crate uses (its frames are smaller).
        let l = Layout::from_size_align(class_size(CLASSES - 3) + 1, 8).unwrap();
        let n = 2 * MAX_PER_CLASS as usize;
        let made = Frames((0..n).map(|_| alloc(l)).collect());
        let addrs: alloc::vec::Vec<usize> = made.0.iter().map(|p| p.as_ptr().addr()).collect();
        std::thread::spawn(move || {
            let made = made;
            for p in made.0 {
                // SAFETY: from `alloc(l)` on the other thread, freed once.
                unsafe { dealloc(p, l) };
            }
        })
        .join()
        .unwrap();
        // The other thread handed at least one full batch to the depot.
        let c = class_of(l).unwrap();
        let before = cache::depot_batches(c);
        assert!(before >= 1);
        let again: alloc::vec::Vec<NonNull<u8>> = (0..n).map(|_| alloc(l)).collect();
        let reused = again
            .iter()
            .filter(|p| addrs.contains(&p.as_ptr().addr()))
            .count();
        assert!(reused >= MAX_PER_CLASS as usize, "reused {reused}");
        assert!(cache::depot_batches(c) < before, "taken from the depot");
        for p in again {
            // SAFETY: from `alloc(l)`, freed once.
            unsafe { dealloc(p, l) };
        }
    }

    /// A burst of frames made on one thread and freed on another (work
    /// spawned from outside a pool and finished on its workers) comes back
    /// whole, up to the depot's budget, not just a few batches of it.
    #[cfg(all(feature = "std", not(loom)))]
    #[test]
    fn a_burst_freed_on_another_thread_is_reused() {
        extern crate std;
        // The largest class, which no other test of this crate uses.
        let l = Layout::from_size_align(MAX_SIZE, 8).unwrap();
        let c = class_of(l).unwrap();
        let batches = depot_batches_max(c);
        assert!(batches >= 16, "the budget holds a burst of 1,000 frames");
        let n = batches * MAX_PER_CLASS as usize;
        let made = Frames((0..n).map(|_| alloc(l)).collect());
        std::thread::spawn(move || {
            let made = made;
            for p in made.0 {
                // SAFETY: from `alloc(l)` on the other thread, freed once.
                unsafe { dealloc(p, l) };
            }
        })
        .join()
        .unwrap();
        // All but the freeing thread's last list (returned to the global
        // allocator when it exited) wait in the depot. (Addresses would not
        // tell: the global allocator hands freed blocks out again too, by
        // its slow path.)
        assert_eq!(cache::depot_batches(c), batches - 1);
        let again: alloc::vec::Vec<NonNull<u8>> = (0..n).map(|_| alloc(l)).collect();
        assert_eq!(cache::depot_batches(c), 0, "the burst came from the depot");
        for p in again {
            // SAFETY: from `alloc(l)`, freed once.
            unsafe { dealloc(p, l) };
        }
    }

    /// A thread that only frees (its first slow path is a free) and frees
    /// again from thread-local destructors, before and after the cache's
    /// exit guard ran: every block is cached and returned at exit, or
    /// passed to the allocator (miri reports any block left behind).
    #[cfg(all(feature = "std", not(loom)))]
    #[test]
    fn frames_freed_while_a_thread_exits_are_not_leaked() {
        extern crate std;
        use core::cell::Cell;
        const L: Layout = match Layout::from_size_align(48, 8) {
            Ok(l) => l,
            Err(_) => unreachable!(),
        };
        /// Frees its frame when the thread's thread-locals are destroyed.
        struct FreeOnExit(Cell<Option<NonNull<u8>>>);
        impl Drop for FreeOnExit {
            fn drop(&mut self) {
                if let Some(p) = self.0.take() {
                    // SAFETY: from `alloc(L)`, freed once.
                    unsafe { dealloc(p, L) };
                }
            }
        }
        std::thread_local! {
            static EARLY: FreeOnExit = const { FreeOnExit(Cell::new(None)) };
            static LATE: FreeOnExit = const { FreeOnExit(Cell::new(None)) };
        }
        let made = Frames((0..4).map(|_| alloc(L)).collect());
        std::thread::spawn(move || {
            let mut made = made;
            let (early, late) = (made.0.pop().unwrap(), made.0.pop().unwrap());
            // Registered before the cache's guard (destroyed after it, if
            // destructors run in reverse order) ...
            EARLY.with(|e| e.0.set(Some(early)));
            for p in made.0 {
                // SAFETY: from `alloc(L)` on the other thread, freed once.
                unsafe { dealloc(p, L) };
            }
            // ... and one registered after it.
            LATE.with(|e| e.0.set(Some(late)));
            // A frame made and freed here is recycled as usual.
            let p = alloc(L);
            // SAFETY: from `alloc(L)`, freed once.
            unsafe { dealloc(p, L) };
            assert_eq!(alloc(L), p, "recycled on this thread");
            // SAFETY: from `alloc(L)` (the same block), freed once.
            unsafe { dealloc(p, L) };
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_full_class_returns_blocks_to_the_allocator() {
        let l = Layout::from_size_align(200, 8).unwrap();
        let blocks: alloc::vec::Vec<_> = (0..MAX_PER_CLASS + 10).map(|_| alloc(l)).collect();
        for b in blocks {
            // SAFETY: from `alloc(l)`, each freed once.
            unsafe { dealloc(b, l) };
        }
    }
}
