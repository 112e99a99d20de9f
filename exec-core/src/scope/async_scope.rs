//! [`AsyncScope`], after P3149's `counting_scope`.
//!
//! # State
//! One shared `Inner` (behind an `Arc`, so that detached work never points
//! at freed memory): an atomic word `assoc` = `count << 1 | closed`, a lock
//! around `{joiners, panic}`, and the stop source spawned work observes.
//! Every piece of associated work holds an [`Assoc`]; making one is a
//! `fetch_add` on `assoc` (undone if the closed bit was set), dropping it a
//! `fetch_sub` — no lock on the spawn/complete path, where the spawning
//! thread and the workers finishing work would otherwise fight over it.
//!
//! # Waking joiners
//! `join` sets the closed bit *with the lock held* and, in the same critical
//! section, either sees `count == 0` (and completes) or links itself into
//! `joiners`. Whoever brings `count` to zero while the closed bit is set
//! (`fetch_sub` returned exactly `ONE | CLOSED`) then takes the lock and
//! wakes every joiner. Count and bit live in one word, so the `fetch_or` of
//! `join` and that `fetch_sub` are ordered: if the `fetch_sub` comes first,
//! `join` sees zero; if it comes after, the joiner is linked before the lock
//! is released and the waker, which needs the lock, finds it. Both are
//! `AcqRel`, so everything the work did before leaving happens-before the
//! joiner's completion.
//!
//! # Ordering rules
//! - Spawned work frees its allocation (dropping the operation state and
//!   whatever it borrows) *before* it leaves the scope, so that once `join`
//!   completes nothing of the work is left to touch borrowed data. That is
//!   what lets [`AsyncScope::with`] hand out a scope for non-`'static` work.
//! - A panic of spawned work is recorded (the first one; later ones are
//!   dropped) before the work leaves the scope, so `join` sees it.

use alloc::sync::Arc;
use core::alloc::Layout;
use core::convert::Infallible;
use core::fmt;
use core::marker::PhantomData;
use core::mem::MaybeUninit;
use core::pin::Pin;
use core::ptr::NonNull;

use crate::adaptor::{
    EnsureStarted, Hooks, frame_alloc, frame_dealloc, op_types::EnsureStartedReceiver,
    start_eagerly,
};
use crate::loom::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use crate::sync::wait_list::{Lock, Node, WaitList, Waiter};
use crate::{
    Env, OnStop, OperationState, PanicPayload, Receiver, Sender, SenderTo, StopCallback,
    StopSource, StopToken,
};

pub(crate) struct ScopeState {
    /// Waiting `join` operations.
    joiners: WaitList,
    /// The first panic of spawned work, until a `join` delivers it.
    panic: Option<PanicPayload>,
}

pub(crate) struct Inner {
    /// `count << 1 | closed`: associated work not yet finished, and whether
    /// new work is refused. See the module docs.
    assoc: AtomicUsize,
    state: Lock<ScopeState>,
    stop: StopSource,
}

impl Inner {
    #[inline]
    fn try_associate(self: &Arc<Self>) -> Option<Assoc> {
        // Relaxed: only the closed bit in the same word matters here, and
        // the read-modify-write sees the latest value of it.
        let prev = self.assoc.fetch_add(ONE, Ordering::Relaxed);
        let ptr = Arc::as_ptr(self);
        if prev < ONE {
            // 0 → 1: the associated work as a whole holds one strong count
            // (see `Assoc`). A racing 1 → 0 may give up the previous one
            // meanwhile: `self` keeps the count above zero.
            // SAFETY: `ptr` comes from the live `Arc` `self`.
            unsafe { Arc::increment_strong_count(ptr) };
        }
        let assoc = Assoc {
            // SAFETY: an `Arc`'s pointer is never null.
            inner: InnerRef(unsafe { NonNull::new_unchecked(ptr.cast_mut()) }),
        };
        if prev & CLOSED != 0 {
            // Refused: leave again (waking joiners if we were the last).
            drop(assoc);
            return None;
        }
        Some(assoc)
    }

    /// Associated work not yet finished.
    fn count(&self) -> usize {
        self.assoc.load(Ordering::Acquire) >> 1
    }

    /// Refuses new work from now on.
    fn close(&self) {
        self.assoc.fetch_or(CLOSED, Ordering::AcqRel);
    }

    #[cold]
    #[inline(never)]
    fn record_panic(&self, payload: PanicPayload) {
        let dropped = self.state.with(|s| {
            if s.panic.is_none() {
                s.panic = Some(payload);
                None
            } else {
                Some(payload)
            }
        });
        // Dropped outside the lock: a payload's destructor is user code.
        drop(dropped);
    }
}

/// The closed bit of `Inner::assoc`.
const CLOSED: usize = 1;
/// One unit of `count` in `Inner::assoc`.
const ONE: usize = 2;

/// One unit of work counted in the scope; dropping it leaves the scope.
///
/// While the count is non-zero, the associated work as a whole holds one
/// strong count of the scope's `Arc<Inner>` (taken by the association that
/// brings the count from 0 to 1, given up by the drop that brings it back
/// to 0), instead of one per association: one read-modify-write less on
/// each side. A 1 → 0 racing a 0 → 1 is harmless: the new association is
/// made through a live `Arc` (`try_associate` takes `&Arc<Inner>`), which
/// keeps the strong count above zero in between (as for exec-pool's
/// `PoolRef` shards).
pub(crate) struct Assoc {
    inner: InnerRef,
}

/// The scope state an [`Assoc`] keeps alive (through the associated work's
/// strong count).
pub(crate) struct InnerRef(NonNull<Inner>);

// SAFETY: a shared reference to `Inner`, which is `Send + Sync` (as an
// `Arc<Inner>` would be).
unsafe impl Send for InnerRef {}
// SAFETY: as above.
unsafe impl Sync for InnerRef {}

impl core::ops::Deref for InnerRef {
    type Target = Inner;
    #[inline]
    fn deref(&self) -> &Inner {
        // SAFETY: alive while the `Assoc` holding it exists (see `Assoc`).
        unsafe { self.0.as_ref() }
    }
}

impl Assoc {
    /// The association as a raw pointer (still counted in the scope).
    #[inline]
    fn into_raw(self) -> *const Inner {
        // Not dropped: the association (its unit of the count) moves into
        // the pointer.
        let this = core::mem::ManuallyDrop::new(self);
        this.inner.0.as_ptr().cast_const()
    }

    /// # Safety
    /// `ptr` came from [`into_raw`](Self::into_raw), and is used once.
    #[inline]
    unsafe fn from_raw(ptr: *const Inner) -> Self {
        Assoc {
            // SAFETY: per the contract, a pointer `into_raw` took from a
            // live association (never null).
            inner: InnerRef(unsafe { NonNull::new_unchecked(ptr.cast_mut()) }),
        }
    }
}

impl Drop for Assoc {
    #[inline]
    fn drop(&mut self) {
        // AcqRel: releases what this work did; the last one acquires what
        // all the others did, for the joiners it wakes and for the free.
        let prev = self.inner.assoc.fetch_sub(ONE, Ordering::AcqRel);
        if prev >> 1 != 1 {
            // Work is left.
            return;
        }
        self.last_left(prev);
    }
}

impl Assoc {
    /// The rest of the drop of the last association (`prev`: the word
    /// before its decrement): out of line, off the common path.
    #[cold]
    #[inline(never)]
    fn last_left(&self, prev: usize) {
        if prev & CLOSED != 0 {
            self.wake_joiners();
        }
        // Last: give up the associated work's strong count (`Assoc` docs).
        // Nothing of `self.inner` is touched afterwards.
        // SAFETY: from `Arc::as_ptr` in `try_associate`; this is the count
        // the 0 → 1 association took.
        unsafe { Arc::decrement_strong_count(self.inner.0.as_ptr().cast_const()) };
    }
}

impl Assoc {
    /// Wakes the joiners, after the last work left a closed scope. (With
    /// the scope open there is no joiner: `join` closes it before waiting.)
    fn wake_joiners(&self) {
        // Wake the joiners one at a time. The count is re-checked under the
        // lock: a refused association may bump it for a moment, and then
        // its own drop, which brings it back to zero, wakes the rest.
        let inner = &self.inner;
        while let Some(node) = inner.state.with(|s| {
            if inner.count() == 0 {
                s.joiners.pop_front()
            } else {
                None
            }
        }) {
            // SAFETY: unlinked under the lock for waking; a waiting join op
            // is alive.
            unsafe { Node::wake(node) };
        }
    }
}

/// A scope that counts the work associated with it and can wait for all of
/// it: P3149's `counting_scope`.
///
/// - [`spawn`](Self::spawn) starts fire-and-forget work (one allocation);
///   [`spawn_future`](Self::spawn_future) also returns a sender for the
///   result; [`associate`](Self::associate) counts a sender you run yourself.
/// - [`request_stop`](Self::request_stop) triggers the stop token all spawned
///   work sees; [`close`](Self::close) refuses new work;
///   [`join`](Self::join) closes the scope and completes once it is empty.
///
/// `'env` bounds what spawned work may borrow. Two ways to own one:
/// - [`AsyncScope::new`] gives an owned `AsyncScope<'static>`: spawned work
///   must be `'static + Send` (it runs on thread pools). **Dropping it while
///   work is still counted** requests stop of that work, lets it finish
///   detached (its memory stays valid: the work shares the scope's state),
///   and panics (unless already panicking) to report the misuse; dropping
///   it with a recorded panic that no `join` delivered re-raises that panic.
///   Join it first.
/// - [`AsyncScope::with`] lends a scope to a closure and joins it before
///   returning, so spawned work may **borrow** from the caller (`'env`).
///
/// # Example
/// ```
/// use exec_core::{just, sync_wait, AsyncScope, SenderExt};
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
///
/// let scope = AsyncScope::new();
/// let hits = Arc::new(AtomicUsize::new(0));
/// for _ in 0..3 {
///     let h = hits.clone();
///     scope.spawn(just(()).then(move |()| { h.fetch_add(1, Ordering::Relaxed); }));
/// }
/// assert_eq!(sync_wait(scope.join()), Ok(Some(())));
/// assert_eq!(hits.load(Ordering::Relaxed), 3);
/// ```
pub struct AsyncScope<'env> {
    inner: Arc<Inner>,
    /// Invariant in `'env`: an owned `AsyncScope<'static>` must not become
    /// a scope that accepts shorter-lived work.
    _env: PhantomData<fn(&'env ()) -> &'env ()>,
}

impl AsyncScope<'static> {
    /// An open, empty scope for `'static` work.
    ///
    /// ```
    /// use exec_core::{sync_wait, AsyncScope};
    /// let scope = AsyncScope::new();
    /// assert_eq!(sync_wait(scope.join()), Ok(Some(())));
    /// ```
    pub fn new() -> Self {
        AsyncScope::make()
    }
}

impl Default for AsyncScope<'static> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'env> AsyncScope<'env> {
    fn make() -> Self {
        AsyncScope {
            inner: Arc::new(Inner {
                assoc: AtomicUsize::new(0),
                state: Lock::new(ScopeState {
                    joiners: WaitList::new(),
                    panic: None,
                }),
                stop: StopSource::new(),
            }),
            _env: PhantomData,
        }
    }

    /// Runs `f` with a scope whose work may borrow anything that outlives
    /// the call, then joins the scope (blocking this thread) before
    /// returning `f`'s result.
    ///
    /// # Completion
    /// Returns once `f` has returned **and** every piece of work spawned or
    /// associated in the scope has finished.
    ///
    /// # Cancellation
    /// If `f` panics, stop is requested on the scope before joining.
    ///
    /// # Panics
    /// - A panic of `f` is re-raised after the join.
    /// - Otherwise the first panic of spawned work is re-raised (with its
    ///   original payload) after the join.
    /// - Called on a thread that drives an execution context (a `RunLoop`, a
    ///   pool worker), it panics *before* running `f`, since joining would
    ///   block that context.
    ///
    /// # Example
    /// ```
    /// use exec_core::{just, AsyncScope, SenderExt};
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    ///
    /// let data = vec![1, 2, 3];
    /// let sum = AtomicUsize::new(0);
    /// AsyncScope::with(|scope| {
    ///     for x in &data {
    ///         let sum = &sum;
    ///         scope.spawn(just(*x).then(move |x| { sum.fetch_add(x, Ordering::Relaxed); }));
    ///     }
    /// });
    /// assert_eq!(sum.load(Ordering::Relaxed), 6);
    /// ```
    ///
    /// A scope cannot outlive the data its work borrows:
    /// ```compile_fail
    /// use exec_core::{just, AsyncScope, SenderExt};
    /// let scope = AsyncScope::new();
    /// {
    ///     let local = vec![1];
    ///     scope.spawn(just(()).then(|()| { let _ = local.len(); }));
    /// }
    /// ```
    ///
    /// # See also
    /// [`join`](Self::join), [`crate::sync_wait`].
    pub fn with<F, R>(f: F) -> R
    where
        F: FnOnce(&AsyncScope<'env>) -> R,
    {
        crate::context::assert_may_block("AsyncScope::with");
        let scope = AsyncScope::<'env>::make();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&scope)));
        if result.is_err() {
            scope.request_stop();
        }
        let joined = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            crate::sync_wait(scope.join())
        }));
        // The scope is empty here (or `sync_wait` aborted the process).
        match (result, joined) {
            (Err(p), _) => std::panic::resume_unwind(p),
            (Ok(_), Err(p)) => std::panic::resume_unwind(p),
            (Ok(r), Ok(_)) => r,
        }
    }

    /// Starts `sender` in the scope, fire-and-forget.
    ///
    /// One allocation, sized to the sender's operation state. The work sees
    /// the scope's stop token. Returns `false` (dropping `sender` without
    /// starting it) if the scope is closed.
    ///
    /// # Completion
    /// The value is dropped. Errors are not accepted: the sender's `Error`
    /// must be [`Infallible`] — handle errors inside the work first. Stopped
    /// is fine.
    ///
    /// # Cancellation
    /// The work's stop token is the scope's: see
    /// [`request_stop`](Self::request_stop).
    ///
    /// # Panics
    /// A panic of the work is caught; the first one is kept in the scope
    /// and re-raised from [`join`](Self::join)'s completion.
    ///
    /// # Example
    /// ```
    /// use exec_core::{just, sync_wait, AsyncScope, SenderExt};
    /// let scope = AsyncScope::new();
    /// assert!(scope.spawn(just(1).then(|x| x + 1)));
    /// assert_eq!(sync_wait(scope.join()), Ok(Some(())));
    /// assert!(!scope.spawn(just(2)), "closed by join");
    /// ```
    ///
    /// # See also
    /// [`spawn_future`](Self::spawn_future).
    pub fn spawn<S>(&self, sender: S) -> bool
    where
        S: Sender<Error = Infallible> + SenderTo<SpawnReceiver> + Send + 'env,
        S::Operation: Send,
    {
        let Some(assoc) = self.inner.try_associate() else {
            return false;
        };
        // The block comes from this thread's frame cache (recycled blocks
        // of its size class), not from the global allocator each time: a
        // worker spawning work that its own completion frees reuses one
        // block over and over.
        let block =
            frame_alloc(SpawnBlock::<S::Operation>::LAYOUT).cast::<SpawnBlock<S::Operation>>();
        let raw: *mut SpawnBlock<S::Operation> = block.as_ptr();
        // SAFETY: a fresh allocation with the block's layout; the op stays
        // uninitialized until `connect` returned.
        unsafe {
            raw.write(SpawnBlock {
                header: SpawnHeader::new(assoc, free_block::<S::Operation>),
                op: MaybeUninit::uninit(),
            })
        };
        // Frees the (still uninitialized) block, leaving the scope, if
        // `connect` unwinds.
        struct FreeUninit<O>(NonNull<SpawnBlock<O>>);
        impl<O> Drop for FreeUninit<O> {
            fn drop(&mut self) {
                // SAFETY: allocated and initialized above (but its op), never
                // shared; the work never ran: the association is taken once,
                // here.
                let assoc = unsafe { self.0.as_ref().header.take_assoc() };
                // SAFETY: from `frame_alloc(LAYOUT)`, freed once; the header
                // needs no drop and the op was never written.
                unsafe { frame_dealloc(self.0.cast(), SpawnBlock::<O>::LAYOUT) };
                drop(assoc);
            }
        }
        let guard = FreeUninit(block);
        // SAFETY: `raw` is a live allocation; all later accesses go through
        // pointers derived from it.
        let op: *mut S::Operation = unsafe { (&raw mut (*raw).op).cast() };
        let receiver = SpawnReceiver {
            block: block.cast(),
        };
        // SAFETY: `op` points into the block, suitably aligned, uninit.
        unsafe { op.write(sender.connect(receiver)) };
        core::mem::forget(guard);
        // SAFETY: the op lives in its own heap allocation, which is freed
        // only after it completed *and* this `start` has returned (see
        // `SpawnHeader`): pinned and alive.
        unsafe { Pin::new_unchecked(&mut *op).start() };
        // SAFETY: the block is alive until one of us frees it (below or in
        // `SpawnReceiver::finish`, whichever sees the other's state).
        let header = unsafe { &(*raw).header };
        if !header.transition(STARTING, STARTED) {
            // The work completed while we were in `start` and left the
            // freeing (and leaving the scope) to us.
            // SAFETY: the completion is over (we acquired its `COMPLETED`);
            // we come second, so the association is ours to take.
            let assoc = unsafe { header.take_assoc() };
            // SAFETY: completed, and we are the one to free it.
            unsafe { free_block::<S::Operation>(NonNull::new_unchecked(raw.cast())) };
            drop(assoc);
        }
        true
    }

    /// Starts `sender` in the scope now and returns a sender for its result.
    ///
    /// One allocation (the running work and its result slot). The work is
    /// counted in the scope until it completes, even if its result is
    /// picked up later.
    ///
    /// # Completion
    /// The returned sender completes with the work's value, error or
    /// stopped. If the scope was closed, it completes *stopped* and
    /// `sender` is dropped unstarted.
    ///
    /// # Cancellation
    /// The work's stop token is triggered by [`request_stop`](Self::request_stop)
    /// on the scope, by dropping the returned sender before it starts, or by
    /// the stop token of whoever waits for it (that consumer then completes
    /// *stopped* at once).
    ///
    /// # Panics
    /// A panic of the work goes to the consumer of the returned sender with
    /// its original payload; if that sender was dropped before the work
    /// completed, it is recorded in the scope like a spawned panic.
    ///
    /// # Example
    /// ```
    /// use exec_core::{just, sync_wait, AsyncScope, SenderExt};
    /// let scope = AsyncScope::new();
    /// let answer = scope.spawn_future(just(21).then(|x| x * 2));
    /// assert_eq!(sync_wait(answer), Ok(Some(42)));
    /// sync_wait(scope.join()).unwrap();
    /// ```
    ///
    /// # See also
    /// [`spawn`](Self::spawn), [`ensure_started`](crate::SenderExt::ensure_started).
    pub fn spawn_future<S>(&self, sender: S) -> SpawnFuture<'env, S::Output, S::Error>
    where
        S: Sender
            + SenderTo<
                EnsureStartedReceiver<
                    <S as Sender>::Output,
                    <S as Sender>::Error,
                    ScopeHooks<'env>,
                >,
            > + Send
            + 'env,
        S::Operation: Send,
        S::Output: Send,
        S::Error: Send,
    {
        let hooks = |assoc| ScopeHooks {
            assoc,
            forward: None,
            _env: PhantomData,
        };
        match self.inner.try_associate() {
            Some(assoc) => EnsureStarted::from_ref(start_eagerly(sender, hooks(Some(assoc)))),
            None => {
                drop(sender);
                EnsureStarted::from_ref(start_eagerly(Refused(PhantomData), hooks(None)))
            }
        }
    }

    /// Wraps `sender` so that it counts as work of this scope until it
    /// completes (or is dropped unstarted): [`join`](Self::join) waits for it.
    ///
    /// The association is made now: if the scope is already closed, the
    /// returned sender completes *stopped* without running `sender`.
    ///
    /// # Completion
    /// Forwards `sender`'s completion, then leaves the scope.
    ///
    /// # Cancellation
    /// `sender` sees the stop token of whoever runs the returned sender (not
    /// the scope's).
    ///
    /// # Panics
    /// Forwarded to the receiver, like any completion.
    ///
    /// # Example
    /// ```
    /// use exec_core::{just, sync_wait, AsyncScope, SenderExt};
    /// let scope = AsyncScope::new();
    /// let work = scope.associate(just(5));
    /// assert_eq!(sync_wait(work), Ok(Some(5)));
    /// scope.close();
    /// assert_eq!(sync_wait(scope.associate(just(6))), Ok(None), "refused");
    /// ```
    ///
    /// # See also
    /// [`spawn`](Self::spawn).
    pub fn associate<S: Sender>(&self, sender: S) -> Associate<S> {
        Associate {
            sender,
            assoc: self.inner.try_associate(),
        }
    }

    /// Requests stop on the token every spawned piece of work sees. Work
    /// already running decides how to finish; new work still starts (with
    /// the token already triggered) until the scope is closed.
    ///
    /// ```
    /// use exec_core::{sync_wait, AsyncScope, Scheduler, SenderExt};
    /// let scope = AsyncScope::new();
    /// scope.request_stop();
    /// // The inline scheduler's op sees the scope's token and completes stopped.
    /// let fut = scope.spawn_future(exec_core::InlineScheduler.schedule().then(|()| 1));
    /// assert_eq!(sync_wait(fut), Ok(None));
    /// sync_wait(scope.join()).unwrap();
    /// ```
    pub fn request_stop(&self) {
        self.inner.stop.request_stop();
    }

    /// Refuses new work from now on: `spawn` returns `false`,
    /// `spawn_future` and `associate` complete stopped.
    ///
    /// ```
    /// use exec_core::{just, AsyncScope};
    /// let scope = AsyncScope::new();
    /// scope.close();
    /// assert!(!scope.spawn(just(())));
    /// ```
    pub fn close(&self) {
        self.inner.close();
    }

    /// A sender that closes the scope and completes once no work is counted
    /// in it any more.
    ///
    /// # Completion
    /// - value `()`: the scope is empty (inline in `start` if it already is,
    ///   otherwise on the thread where the last work finished).
    /// - panic: if spawned work panicked, the first panic's original payload
    ///   (delivered to one join only).
    /// - stopped: if the joiner's own stop token is triggered before the
    ///   scope is empty (the scope's work is not stopped by that).
    ///
    /// # Cancellation
    /// See *stopped*; call [`request_stop`](Self::request_stop) to stop the work.
    ///
    /// # Panics
    /// See *Completion*.
    ///
    /// # Example
    /// ```
    /// use exec_core::{just, sync_wait, AsyncScope, SenderExt};
    /// let scope = AsyncScope::new();
    /// scope.spawn(just(()).then(|()| -> () { panic!("lost?") }));
    /// let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sync_wait(scope.join())));
    /// assert!(r.is_err(), "not lost: re-raised by join");
    /// ```
    ///
    /// # See also
    /// [`AsyncScope::with`].
    pub fn join(&self) -> Join {
        Join {
            inner: self.inner.clone(),
        }
    }
}

impl<'env> Drop for AsyncScope<'env> {
    fn drop(&mut self) {
        let count = self.inner.count();
        let panic = self.inner.state.with(|s| s.panic.take());
        if count > 0 {
            self.inner.stop.request_stop();
            self.inner.close();
            if !std::thread::panicking() {
                panic!(
                    "AsyncScope dropped with {count} operation(s) still running: join it \
                     first (sync_wait(scope.join()) or AsyncScope::with). The work was asked \
                     to stop and continues detached."
                );
            }
        } else if let Some(p) = panic
            && !std::thread::panicking()
        {
            std::panic::resume_unwind(p);
        }
    }
}

impl fmt::Debug for AsyncScope<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let assoc = self.inner.assoc.load(Ordering::Relaxed);
        let (count, closed) = (assoc >> 1, assoc & CLOSED != 0);
        f.debug_struct("AsyncScope")
            .field("count", &count)
            .field("closed", &closed)
            .field("stop_requested", &self.inner.stop.stop_requested())
            .finish()
    }
}

// ------------------------------------------------------------------ spawn

/// `start` has not returned yet.
const STARTING: usize = 0;
/// `start` returned: the completion frees the block.
const STARTED: usize = 1;
/// The work completed during `start`: the starter frees the block.
const COMPLETED: usize = 2;
/// The bits of `SpawnHeader::word` that hold the state.
const STATE_BITS: usize = 0b11;
const _: () = assert!(core::mem::align_of::<Inner>() > STATE_BITS);

/// The type-erased front of a spawned block: what the work's receiver (one
/// pointer to it) needs.
///
/// Freeing an operation state while its `start` is still running (inline
/// completion, or completion on another thread) would free memory that a
/// live `&mut` points to. So the completion and the return from `start`
/// race on `state`, and whoever comes second frees the block and leaves
/// the scope.
///
/// Two words: the state shares a word with the work's [`Assoc`] (its
/// `Arc<Inner>` as a raw pointer, whose alignment leaves the two low bits
/// free).
struct SpawnHeader {
    /// `Arc::into_raw` of the work's association, `|` the state in
    /// [`STATE_BITS`]. The pointer part never changes; the association is
    /// turned back into an [`Assoc`] (leaving the scope) once, by whoever
    /// comes second (the starter after its Acquire failure to `STARTED`).
    /// The receiver's env reads the scope through it while the work runs.
    word: AtomicPtr<Inner>,
    /// Drops the op and frees the block (its type erased).
    free: unsafe fn(NonNull<()>),
}

impl SpawnHeader {
    fn new(assoc: Assoc, free: unsafe fn(NonNull<()>)) -> Self {
        let ptr = assoc.into_raw();
        SpawnHeader {
            word: AtomicPtr::new(ptr.cast_mut().map_addr(|a| a | STARTING)),
            free,
        }
    }

    /// The association's pointer (without the state).
    #[inline]
    fn inner_ptr(&self) -> *const Inner {
        // Relaxed: the pointer part was written before the block was
        // shared, and only the state bits change.
        self.word
            .load(Ordering::Relaxed)
            .map_addr(|a| a & !STATE_BITS)
            .cast_const()
    }

    /// The state bits.
    #[inline]
    fn state(&self, order: Ordering) -> usize {
        self.word.load(order).addr() & STATE_BITS
    }

    /// The scope, for the receiver's env.
    fn inner(&self) -> &Inner {
        // SAFETY: the association is alive until taken, which happens only
        // after the work completed (it no longer asks).
        unsafe { &*self.inner_ptr() }
    }

    /// Moves the state `from → to` (AcqRel); `false` if it was not `from`.
    #[inline]
    fn transition(&self, from: usize, to: usize) -> bool {
        let ptr = self.inner_ptr().cast_mut();
        self.word
            .compare_exchange(
                ptr.map_addr(|a| a | from),
                ptr.map_addr(|a| a | to),
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
    }

    /// Takes the association back (to leave the scope by dropping it).
    ///
    /// # Safety
    /// Once, by whoever comes second (or by `spawn` if `connect` unwound).
    #[inline]
    unsafe fn take_assoc(&self) -> Assoc {
        // SAFETY: made by `Assoc::into_raw` in `new`, taken once.
        unsafe { Assoc::from_raw(self.inner_ptr()) }
    }
}

#[repr(C)]
struct SpawnBlock<O> {
    header: SpawnHeader,
    op: MaybeUninit<O>,
}

impl<O> SpawnBlock<O> {
    /// What `spawn` allocates (from the frame cache) for one block.
    const LAYOUT: Layout = Layout::new::<Self>();
}

/// # Safety
/// `p` is a `SpawnBlock<O>` made by `spawn` whose op has completed; freed once.
unsafe fn free_block<O>(p: NonNull<()>) {
    let block = p.cast::<SpawnBlock<O>>();
    // SAFETY: per the contract the block is alive and its op, initialized
    // by `spawn` before it was started, is dropped once, here.
    unsafe { core::ptr::drop_in_place((*block.as_ptr()).op.as_mut_ptr()) };
    // SAFETY: allocated by `spawn` with `frame_alloc(LAYOUT)`, freed once;
    // the header needs no drop.
    unsafe { frame_dealloc(block.cast(), SpawnBlock::<O>::LAYOUT) };
}

/// The receiver [`AsyncScope::spawn`] connects the work to. It frees the
/// work's allocation when the work completes.
///
/// One pointer: what it needs lives in the block's header.
pub struct SpawnReceiver {
    /// The `SpawnBlock`, whose first field is a `SpawnHeader`; alive until
    /// this receiver has been completed.
    block: NonNull<()>,
}

// SAFETY: `spawn` requires the operation (which the receiver frees) to be
// `Send`; the rest is an `Arc` of thread-safe state.
unsafe impl Send for SpawnReceiver {}

impl fmt::Debug for SpawnReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpawnReceiver").finish_non_exhaustive()
    }
}

impl SpawnReceiver {
    fn header(&self) -> &SpawnHeader {
        // SAFETY: the block lives until this receiver has been completed.
        unsafe { self.block.cast::<SpawnHeader>().as_ref() }
    }

    #[inline]
    fn finish(self, panic: Option<PanicPayload>) {
        if let Some(p) = panic {
            self.header().inner().record_panic(p);
        }
        let block = self.block;
        // SAFETY: the block lives until whoever comes second frees it; we
        // have not published our state yet.
        let header = unsafe { block.cast::<SpawnHeader>().as_ref() };
        // The common case: `start` returned long ago (`STARTED`, which only
        // the starter's CAS writes, after the `STARTING` that happened-before
        // this completion). Then we come second without a read-modify-write.
        // Acquire: pairs with that CAS (the starter is done with the block).
        // Otherwise race the starter for the hand-over.
        if header.state(Ordering::Acquire) != STARTED && header.transition(STARTING, COMPLETED) {
            // `start` is still running: the starter frees and leaves.
            return;
        }
        // SAFETY: the starter is gone (`STARTED`): we come second.
        let assoc = unsafe { header.take_assoc() };
        let free = header.free;
        // SAFETY: the op has completed (we are its completion) and touches
        // nothing of its own afterwards; `start` returned; freed once.
        unsafe { free(block) };
        // Leave the scope last: `join` may complete and borrowed data die.
        drop(assoc);
    }
}

impl<T> Receiver<T, Infallible> for SpawnReceiver {
    fn set_value(self, value: T) {
        drop(value);
        self.finish(None)
    }
    fn set_error(self, error: Infallible) {
        match error {}
    }
    fn set_stopped(self) {
        self.finish(None)
    }
    fn set_panic(self, payload: PanicPayload) {
        self.finish(Some(payload))
    }
    fn env(&self) -> impl Env<'_> {
        ScopeEnv {
            stop: &self.header().inner().stop,
        }
    }
}

struct ScopeEnv<'a> {
    stop: &'a StopSource,
}

impl<'a> Env<'a> for ScopeEnv<'a> {
    fn stop_token(&self) -> StopToken<'a> {
        self.stop.token()
    }
}

// ----------------------------------------------------------- spawn_future

/// Sender returned by [`AsyncScope::spawn_future`]: the result of work
/// running in the scope. See [`EnsureStarted`] for its behaviour; dropping
/// it before it starts requests stop of the work.
pub type SpawnFuture<'env, T, E> = EnsureStarted<T, E, ScopeHooks<'env>>;

/// How [`AsyncScope::spawn_future`] ties eagerly started work to its scope:
/// counts it, forwards the scope's stop request, records orphaned panics.
pub struct ScopeHooks<'env> {
    /// `None` if the scope was closed (the work is then a stopped stub).
    assoc: Option<Assoc>,
    /// Registered on the scope's token at attach; dropped (in place) at
    /// work completion, before `assoc`.
    forward: Option<StopCallback<'static, ForwardStop>>,
    _env: PhantomData<fn(&'env ()) -> &'env ()>,
}

impl fmt::Debug for ScopeHooks<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScopeHooks").finish_non_exhaustive()
    }
}

/// Forwards the scope's stop request into the work's own stop source.
struct ForwardStop(NonNull<StopSource>);

// SAFETY: it only calls `request_stop` on a `StopSource` (which is `Sync`)
// that outlives the callback (both live in the same block; the callback is
// dropped first).
unsafe impl Send for ForwardStop {}

impl OnStop for ForwardStop {
    fn on_stop(self) {
        // SAFETY: see the `Send` impl: the source outlives the callback.
        unsafe { self.0.as_ref() }.request_stop();
    }
}

impl Hooks for ScopeHooks<'_> {
    type Token = Option<Assoc>;

    fn attach(self: Pin<&mut Self>, stop: &StopSource) {
        // SAFETY: `forward` is structurally pinned (written in place,
        // registered, dropped in place); `assoc` is not.
        let this = unsafe { self.get_unchecked_mut() };
        let Some(assoc) = &this.assoc else { return };
        // SAFETY: the scope's `Inner` is kept alive by `assoc`, which is
        // dropped only after `forward` (see `work_done`).
        let token = unsafe { assoc.inner.stop.token().detach() };
        this.forward = Some(StopCallback::new(token, ForwardStop(NonNull::from(stop))));
        if let Some(cb) = &mut this.forward {
            // SAFETY: it lives pinned in the heap block and is dropped in
            // place by `work_done` or with the block.
            unsafe { Pin::new_unchecked(cb) }.register();
        }
    }

    fn work_done(self: Pin<&mut Self>, orphan: Option<PanicPayload>) -> Option<Assoc> {
        // SAFETY: as in `attach`; `Pin::set` drops the callback in place.
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: dropping in place is allowed for a pinned value.
        unsafe { Pin::new_unchecked(&mut this.forward) }.set(None);
        let assoc = this.assoc.take();
        if let (Some(p), Some(a)) = (orphan, &assoc) {
            a.inner.record_panic(p);
        }
        assoc
    }
}

/// A sender that completes stopped: the work `spawn_future` hands back
/// when the scope is closed.
struct Refused<T, E>(PhantomData<fn() -> (T, E)>);

impl<T, E> Sender for Refused<T, E> {
    type Output = T;
    type Error = E;
}

impl<T, E, R: Receiver<T, E>> SenderTo<R> for Refused<T, E> {
    type Operation = RefusedOp<T, E, R>;
    fn connect(self, receiver: R) -> RefusedOp<T, E, R> {
        RefusedOp(Some(receiver), PhantomData)
    }
}

struct RefusedOp<T, E, R>(Option<R>, PhantomData<fn() -> (T, E)>);

impl<T, E, R: Receiver<T, E>> OperationState for RefusedOp<T, E, R> {
    unsafe fn start(self: Pin<&mut Self>) {
        // SAFETY: nothing is structurally pinned.
        let this = unsafe { self.get_unchecked_mut() };
        if let Some(r) = this.0.take() {
            r.set_stopped();
        }
    }
}

// ---------------------------------------------------------------- associate

/// Sender for [`AsyncScope::associate`].
#[must_use = "senders do nothing unless connected and started"]
pub struct Associate<S> {
    sender: S,
    /// `None` if the scope was closed.
    assoc: Option<Assoc>,
}

impl<S> fmt::Debug for Associate<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Associate")
            .field("accepted", &self.assoc.is_some())
            .finish_non_exhaustive()
    }
}

impl<S: Sender> Sender for Associate<S> {
    type Output = S::Output;
    type Error = S::Error;
}

impl<S, R> SenderTo<R> for Associate<S>
where
    S: Sender + SenderTo<AssociateReceiver<R>>,
    R: Receiver<S::Output, S::Error>,
{
    type Operation = AssociateOp<S::Operation, R>;
    fn connect(self, receiver: R) -> AssociateOp<S::Operation, R> {
        match self.assoc {
            Some(assoc) => AssociateOp {
                inner: Some(self.sender.connect(AssociateReceiver { receiver, assoc })),
                refused: None,
                stop: |r| Receiver::<S::Output, S::Error>::set_stopped(r),
            },
            None => AssociateOp {
                inner: None,
                refused: Some(receiver),
                stop: |r| Receiver::<S::Output, S::Error>::set_stopped(r),
            },
        }
    }
}

/// The receiver [`Associate`] connects its sender to: forwards, then leaves
/// the scope.
pub struct AssociateReceiver<R> {
    receiver: R,
    assoc: Assoc,
}

impl<R> fmt::Debug for AssociateReceiver<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AssociateReceiver").finish_non_exhaustive()
    }
}

impl<T, E, R: Receiver<T, E>> Receiver<T, E> for AssociateReceiver<R> {
    fn set_value(self, value: T) {
        let AssociateReceiver { receiver, assoc } = self;
        receiver.set_value(value);
        drop(assoc);
    }
    fn set_error(self, error: E) {
        let AssociateReceiver { receiver, assoc } = self;
        receiver.set_error(error);
        drop(assoc);
    }
    fn set_stopped(self) {
        let AssociateReceiver { receiver, assoc } = self;
        receiver.set_stopped();
        drop(assoc);
    }
    fn set_panic(self, payload: PanicPayload) {
        let AssociateReceiver { receiver, assoc } = self;
        receiver.set_panic(payload);
        drop(assoc);
    }
    fn env(&self) -> impl Env<'_> {
        self.receiver.env()
    }
}

/// Operation state of [`Associate`].
pub struct AssociateOp<O, R> {
    /// The wrapped operation (structurally pinned), if accepted.
    inner: Option<O>,
    /// The receiver, if the scope refused the work.
    refused: Option<R>,
    /// Completes `refused` with stopped (knows the value and error types).
    stop: fn(R),
}

impl<O, R> fmt::Debug for AssociateOp<O, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AssociateOp").finish_non_exhaustive()
    }
}

impl<O: OperationState, R> OperationState for AssociateOp<O, R> {
    unsafe fn start(self: Pin<&mut Self>) {
        // SAFETY: `inner` is structurally pinned (never moved once started);
        // `refused` is not.
        let this = unsafe { self.get_unchecked_mut() };
        if let Some(op) = &mut this.inner {
            // SAFETY: pinned as part of `self`; our caller keeps `self` alive
            // until it completes, which is after `op` completes.
            unsafe { Pin::new_unchecked(op).start() };
        } else if let Some(r) = this.refused.take() {
            (this.stop)(r);
        }
    }
}

// ------------------------------------------------------------------- join

/// Sender for [`AsyncScope::join`].
#[must_use = "senders do nothing unless connected and started"]
pub struct Join {
    inner: Arc<Inner>,
}

impl fmt::Debug for Join {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Join").finish_non_exhaustive()
    }
}

impl Sender for Join {
    type Output = ();
    type Error = Infallible;
}

impl<R: Receiver<(), Infallible> + Send> SenderTo<R> for Join {
    type Operation = JoinOp<R>;
    fn connect(self, receiver: R) -> JoinOp<R> {
        JoinOp {
            waiter: Waiter::new(receiver, JoinOp::<R>::wake, JoinOp::<R>::cancel),
            inner: self.inner,
        }
    }
}

/// Operation state of [`Join`].
#[repr(C)]
pub struct JoinOp<R> {
    /// First field: a `*const Node` is a `*const JoinOp`.
    waiter: Waiter<R>,
    inner: Arc<Inner>,
}

impl<R> fmt::Debug for JoinOp<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinOp").finish_non_exhaustive()
    }
}

// SAFETY: the receiver is `Send` (required by `connect`) and may be completed
// by the thread where the last work finishes or stop is requested.
unsafe impl<R: Send> Send for JoinOp<R> {}

impl<R: Receiver<(), Infallible>> JoinOp<R> {
    fn complete(inner: &Inner, receiver: R) {
        match inner.state.with(|s| s.panic.take()) {
            Some(p) => receiver.set_panic(p),
            None => receiver.set_value(()),
        }
    }

    /// # Safety
    /// `node` is the node of a started `JoinOp<R>`, unlinked for waking.
    unsafe fn wake(node: *const Node) {
        let this = node as *const Self;
        // SAFETY: we own the completion; the op is alive until it completes.
        unsafe {
            (*this).waiter.disarm();
            let receiver = (*this).waiter.take_receiver();
            let inner = (*this).inner.clone();
            Self::complete(&inner, receiver);
        }
    }

    /// # Safety
    /// Called from the stop callback of a started `JoinOp<R>`.
    unsafe fn cancel(node: *const Node) {
        let this = node as *const Self;
        // SAFETY: registered callback: the op is alive.
        let inner = unsafe { &(*this).inner };
        // SAFETY: lock held; the node is alive.
        let won = inner.state.with(|s| unsafe { s.joiners.remove(node) });
        if won {
            // SAFETY: we unlinked it: we own the completion.
            unsafe {
                (*this).waiter.disarm();
                (*this).waiter.take_receiver().set_stopped();
            }
        }
    }
}

enum Next {
    Done,
    Stopped,
    Wait,
}

impl<R: Receiver<(), Infallible>> OperationState for JoinOp<R> {
    unsafe fn start(self: Pin<&mut Self>) {
        let this: &Self = self.into_ref().get_ref();
        let node = Waiter::<R>::node_of(this);
        let inner = this.inner.clone();
        // SAFETY: not linked, not armed: the receiver is ours.
        let token = unsafe { this.waiter.token() };
        if !token.stop_requested() {
            // SAFETY: pinned, not linked, armed once.
            unsafe { this.waiter.arm(node, token) };
        }
        let next = inner.state.with(|s| {
            // With the lock held: see "Waking joiners" in the module docs.
            let prev = inner.assoc.fetch_or(CLOSED, Ordering::AcqRel);
            if prev >> 1 == 0 {
                Next::Done
            } else if token.stop_requested() {
                Next::Stopped
            } else {
                // SAFETY: lock held; the op is pinned and alive until it
                // completes, which requires unlinking it.
                unsafe { s.joiners.push_back(node) };
                Next::Wait
            }
        });
        match next {
            Next::Wait => {}
            // SAFETY: not linked: we own the completion.
            Next::Done => unsafe {
                this.waiter.disarm();
                Self::complete(&inner, this.waiter.take_receiver());
            },
            // SAFETY: not linked: we own the completion.
            Next::Stopped => unsafe {
                this.waiter.disarm();
                this.waiter.take_receiver().set_stopped();
            },
        }
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    //! The lock-free association count against `join`: the last work
    //! leaving on one thread while `join` closes the scope on another, and a
    //! refused association bumping the count of a closed scope.
    use super::*;
    use crate::loom::cell::UnsafeCell;
    use ::loom::sync::atomic::AtomicUsize as Counter;
    use core::pin::pin;

    struct Count<'a>(&'a Counter);
    impl Receiver<(), Infallible> for Count<'_> {
        fn set_value(self, (): ()) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
        fn set_error(self, e: Infallible) {
            match e {}
        }
        fn set_stopped(self) {
            panic!("join completed stopped");
        }
        fn set_panic(self, p: PanicPayload) {
            std::panic::resume_unwind(p)
        }
    }

    #[test]
    fn last_work_leaving_races_join() {
        ::loom::model(|| {
            let scope = AsyncScope::new();
            let a = scope.inner.try_associate().expect("open");
            let t = ::loom::thread::spawn(move || drop(a));
            let joined = Counter::new(0);
            {
                let op = pin!(scope.join().connect(Count(&joined)));
                // SAFETY: `op` stays on this frame until it has completed
                // (asserted below, after the association left).
                unsafe { op.start() };
                t.join().unwrap();
                assert_eq!(joined.load(Ordering::Relaxed), 1, "joined exactly once");
            }
            assert!(scope.inner.try_associate().is_none(), "closed by join");
            assert_eq!(scope.inner.count(), 0);
        });
    }

    type Handle = ::loom::sync::Arc<::loom::sync::Mutex<Option<::loom::thread::JoinHandle<()>>>>;

    /// Completes from a thread it spawns in `start`, then, still in
    /// `start`, writes `mark` (as an operation that starts a second child
    /// after handing off the first would): the completion may free the
    /// block only after `start` returned, and must see that write.
    struct Late {
        handle: Handle,
        drops: ::loom::sync::Arc<Counter>,
    }
    struct LateOp<R> {
        handle: Handle,
        receiver: Option<R>,
        mark: UnsafeCell<u32>,
        drops: ::loom::sync::Arc<Counter>,
    }
    impl Sender for Late {
        type Output = ();
        type Error = Infallible;
    }
    impl<R: Receiver<(), Infallible> + Send + 'static> SenderTo<R> for Late {
        type Operation = LateOp<R>;
        fn connect(self, receiver: R) -> LateOp<R> {
            LateOp {
                handle: self.handle,
                receiver: Some(receiver),
                mark: UnsafeCell::new(0),
                drops: self.drops,
            }
        }
    }
    impl<R: Receiver<(), Infallible> + Send + 'static> OperationState for LateOp<R> {
        unsafe fn start(self: Pin<&mut Self>) {
            // SAFETY: nothing is structurally pinned.
            let this = unsafe { self.get_unchecked_mut() };
            let r = this.receiver.take().unwrap();
            let h = ::loom::thread::spawn(move || r.set_value(()));
            *this.handle.lock().unwrap() = Some(h);
            // SAFETY: only `start` and the op's drop touch the cell; the
            // scope frees the op only after `start` returned.
            this.mark.with_mut(|m| unsafe { *m = 1 });
        }
    }
    impl<R> Drop for LateOp<R> {
        fn drop(&mut self) {
            // SAFETY: the op is being dropped: nobody else touches it.
            assert_eq!(self.mark.with(|m| unsafe { *m }), 1);
            self.drops.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `spawn`'s hand-over between `start` returning and the work
    /// completing on another thread (the `SpawnHeader` state): the block
    /// is freed once, after `start` returned, and the work leaves the
    /// scope once.
    #[test]
    fn spawned_work_completes_while_start_runs() {
        ::loom::model(|| {
            let scope = AsyncScope::new();
            let handle: Handle = Default::default();
            let drops = ::loom::sync::Arc::new(Counter::new(0));
            assert!(scope.spawn(Late {
                handle: handle.clone(),
                drops: drops.clone(),
            }));
            let t = handle.lock().unwrap().take().unwrap();
            t.join().unwrap();
            assert_eq!(drops.load(Ordering::Relaxed), 1, "freed once");
            let joined = Counter::new(0);
            let op = pin!(scope.join().connect(Count(&joined)));
            // SAFETY: the work has left (the thread is joined): `join`
            // completes inside `start`.
            unsafe { op.start() };
            assert_eq!(joined.load(Ordering::Relaxed), 1, "joined exactly once");
        });
    }

    #[test]
    fn refused_association_races_the_last_leaver() {
        ::loom::model(|| {
            let scope = AsyncScope::new();
            let a = scope.inner.try_associate().expect("open");
            scope.close();
            let inner = scope.inner.clone();
            let t = ::loom::thread::spawn(move || {
                assert!(inner.try_associate().is_none(), "closed");
            });
            let joined = Counter::new(0);
            {
                let op = pin!(scope.join().connect(Count(&joined)));
                // SAFETY: as above.
                unsafe { op.start() };
                drop(a);
                t.join().unwrap();
                assert_eq!(joined.load(Ordering::Relaxed), 1, "joined exactly once");
            }
        });
    }

    /// Completes from a thread it spawns in `start`; counts its drops.
    struct OnThread {
        handle: ::loom::sync::Arc<::loom::sync::Mutex<Option<::loom::thread::JoinHandle<()>>>>,
        drops: ::loom::sync::Arc<Counter>,
    }
    struct OnThreadOp<R> {
        handle: ::loom::sync::Arc<::loom::sync::Mutex<Option<::loom::thread::JoinHandle<()>>>>,
        drops: ::loom::sync::Arc<Counter>,
        receiver: Option<R>,
        _pin: core::marker::PhantomPinned,
    }
    impl<R> Drop for OnThreadOp<R> {
        fn drop(&mut self) {
            self.drops.fetch_add(1, Ordering::Relaxed);
        }
    }
    impl Sender for OnThread {
        type Output = ();
        type Error = Infallible;
    }
    impl<R: Receiver<(), Infallible> + Send + 'static> SenderTo<R> for OnThread {
        type Operation = OnThreadOp<R>;
        fn connect(self, receiver: R) -> OnThreadOp<R> {
            OnThreadOp {
                handle: self.handle,
                drops: self.drops,
                receiver: Some(receiver),
                _pin: core::marker::PhantomPinned,
            }
        }
    }
    impl<R: Receiver<(), Infallible> + Send + 'static> OperationState for OnThreadOp<R> {
        unsafe fn start(self: Pin<&mut Self>) {
            // SAFETY: nothing is structurally pinned.
            let this = unsafe { self.get_unchecked_mut() };
            let r = this.receiver.take().unwrap();
            let handle = this.handle.clone();
            // Touch nothing of `this` after the spawn: the completion may be
            // freeing it.
            let h = ::loom::thread::spawn(move || r.set_value(()));
            *handle.lock().unwrap() = Some(h);
        }
    }

    /// Spawned work completing on another thread before, during or after
    /// `spawn`'s return from `start` (the header's STARTING / STARTED /
    /// COMPLETED hand-over): the block is freed exactly once, and the work
    /// leaves the scope once.
    #[test]
    fn spawned_work_completes_while_spawn_returns() {
        ::loom::model(|| {
            let scope = AsyncScope::new();
            let handle = ::loom::sync::Arc::new(::loom::sync::Mutex::new(None));
            let drops = ::loom::sync::Arc::new(Counter::new(0));
            assert!(scope.spawn(OnThread {
                handle: handle.clone(),
                drops: drops.clone(),
            }));
            let t = handle.lock().unwrap().take().expect("spawned");
            t.join().unwrap();
            assert_eq!(drops.load(Ordering::Relaxed), 1, "freed exactly once");
            assert_eq!(scope.inner.count(), 0, "left the scope");
        });
    }
}
