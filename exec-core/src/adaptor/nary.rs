//! Machinery shared by the algorithms with several children
//! ([`when_all`](crate::when_all), [`when_all_vec`](crate::when_all_vec),
//! [`when_any`](crate::when_any), [`stop_when`](crate::stop_when)).
//!
//! # The join protocol
//! A parent with `n` children keeps a [`Join`]: a reference count `refs`
//! (initially `n`), an in-place [`StopSource`] its children observe, and a
//! [`StopCallback`] that chains the receiver's stop token to that source.
//!
//! The chaining is lazy where it can be ([`StopSource::chain`]): the
//! children's tokens also report a stop requested on the receiver's token
//! (their check walks up the chain), and the callback is registered with
//! the receiver's source only when a descendant first registers a callback
//! with ours. Nested joins whose children merely poll their token (a pool's
//! `schedule`) or register nothing thus never touch the parent's stop
//! source, whose cache line the parent's other children share. Past a
//! bounded chain length the callback is registered at `start`, as before.
//!
//! - Every child holds one reference until it *arrives* (completes). A child
//!   that wants its siblings stopped calls [`Join::stop_siblings`] **before**
//!   it arrives: while it holds its reference the parent cannot complete, so
//!   the stop source (and the siblings' stop callbacks that run inside
//!   `request_stop`, possibly completing siblings inline) stays alive.
//! - The forwarding callback takes an extra reference (only if the count is
//!   not already zero) for the duration of its `request_stop`, for the same
//!   reason: a sibling completing inside that call must not free the source
//!   the call is still walking.
//!   When a lazy link finds the receiver's source already stopped, the
//!   registering descendant runs the forwarder itself; that descendant's
//!   ancestor child still holds its reference, so again nothing is freed.
//! - Whoever brings `refs` to zero (`AcqRel`, so it sees every write the
//!   others made before arriving) first unchains the source and drops the
//!   forwarding callback — either deregisters it, waiting for it if it is
//!   running on another thread — and then completes the downstream
//!   receiver, touching nothing afterwards.
//! - A holder that finds `refs == 1` (`Acquire`) holds the last reference
//!   and completes without decrementing: only a forwarder can take a
//!   reference afterwards, and the completer waits for it (previous
//!   point), so that forwarder's own `arrive` never reaches zero. This
//!   saves the last child's read-modify-write (one per `when_all`).
//!
//! When no child can fail or be stopped (decided from the children's types,
//! see [`uninhabited`]) the parent says so with `stoppable = false`: the
//! source and the callback are then never initialised or touched and the
//! children observe the receiver's own stop token. (Stable Rust cannot remove
//! the fields from the type based on a `const`, so the bytes remain.)

use core::marker::PhantomPinned;
use core::pin::Pin;

use crate::loom::cell::UnsafeCell;
use crate::loom::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use crate::{
    Env, OnStop, OperationState, PanicPayload, ParentRef, Receiver, SchedulerRef, SenderTo,
    StopCallback, StopSource, StopToken,
};

/// Whether `E` has no values (like [`core::convert::Infallible`]), as far as
/// stable Rust can tell at compile time.
///
/// `Option<E>` being zero-sized means `Some(_)` and `None` share one
/// representation, so `E` has no value. The converse is not guaranteed
/// (an uninhabited type with a non-zero size reports `false`), which only
/// costs a stop source that is never used.
pub(crate) const fn uninhabited<E>() -> bool {
    core::mem::size_of::<Option<E>>() == 0
}

/// One child of an n-ary operation: its sender until the parent starts, then
/// its operation state, which is structurally pinned.
pub struct ChildOp<S, O> {
    state: ChildState<S, O>,
    /// A child op is pointed into while it runs; never `Unpin`, so a
    /// `Pin<&mut ChildOp>` does not claim uniqueness.
    _pin: PhantomPinned,
}

enum ChildState<S, O> {
    Pending(S),
    Started(O),
    Empty,
}

impl<S, O> ChildOp<S, O> {
    pub(crate) fn new(sender: S) -> Self {
        ChildOp {
            state: ChildState::Pending(sender),
            _pin: PhantomPinned,
        }
    }

    /// Connects the sender to `receiver`, in place, and starts the result.
    ///
    /// # Safety
    /// Called at most once. The parent containing `self` is started (so
    /// pinned) and is not dropped before this child has completed.
    pub(crate) unsafe fn start<R>(self: Pin<&mut Self>, receiver: R)
    where
        S: SenderTo<R, Operation = O>,
        O: OperationState,
    {
        // SAFETY: only `Started` is structurally pinned; we move the sender
        // out of `Pending` and write the operation in place, pinning it only
        // after it has reached its final address.
        let this = unsafe { self.get_unchecked_mut() };
        let state: *mut ChildState<S, O> = &mut this.state;
        // Moves only the sender out (not the whole state, which is sized for
        // the operation) and writes the operation straight into the state.
        // SAFETY: `state` is valid; the sender is read out once and the
        // state is overwritten with `Empty` (nothing dropped) before
        // anything can unwind, so it is never dropped twice.
        let sender = unsafe {
            let ChildState::Pending(sender) = &*state else {
                panic!("exec: a child operation was started twice");
            };
            let sender = core::ptr::read(sender);
            core::ptr::write(state, ChildState::Empty);
            sender
        };
        // SAFETY: the state is `Empty` (nothing to drop); written in place.
        unsafe { core::ptr::write(state, ChildState::Started(sender.connect(receiver))) };
        // SAFETY: just written.
        let ChildState::Started(op) = (unsafe { &mut *state }) else {
            unreachable!()
        };
        // SAFETY: `op` lives inside the pinned parent and never moves again;
        // the caller keeps the parent alive until this child completed;
        // started once (it was `Pending` just now).
        unsafe { Pin::new_unchecked(op).start() }
    }
}

impl<S, O> core::fmt::Debug for ChildOp<S, O> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let state = match self.state {
            ChildState::Pending(_) => "pending",
            ChildState::Started(_) => "started",
            ChildState::Empty => "empty",
        };
        f.debug_tuple("ChildOp").field(&state).finish()
    }
}

/// The parent side of the join protocol.
pub(crate) trait JoinParent: Sized {
    /// The parent's join state.
    fn join(&self) -> &Join<Self>;
    /// Completes the downstream receiver.
    ///
    /// # Safety
    /// Called once, by whoever brought the reference count to zero, after the
    /// forwarding callback was dropped. The parent may be freed as soon as
    /// the downstream completion is called: implementations touch nothing
    /// afterwards.
    unsafe fn complete(this: ParentRef<Self>);
}

/// Reference count, stop source and stop forwarding of a parent `P`.
pub(crate) struct Join<P> {
    /// Children that have not arrived, plus one while the forwarding
    /// callback is inside `request_stop`. Whoever brings it to zero completes
    /// the parent.
    refs: AtomicUsize,
    /// Whether siblings are stopped through `source`. If `false`, `source`
    /// and `forward` are never touched and children observe `outer`.
    stoppable: bool,
    /// What the children observe (when `stoppable`).
    source: StopSource,
    /// The receiver's stop token. Written once in `start`, before any child
    /// runs; only read afterwards.
    outer: UnsafeCell<StopToken<'static>>,
    /// The receiver's current scheduler, which children see too. Written
    /// once in `start`, before any child runs; only read afterwards.
    scheduler: UnsafeCell<Option<SchedulerRef<'static>>>,
    /// Chains `outer` to `source`. Written (and registered) in `start` before
    /// any child runs; afterwards only the completer touches it, after every
    /// other reference is gone, and drops it in place.
    forward: UnsafeCell<Option<StopCallback<'static, ForwardStop<P>>>>,
}

impl<P> Join<P> {
    /// A join for `children` children.
    pub(crate) fn new(children: usize, stoppable: bool) -> Self {
        Join {
            refs: AtomicUsize::new(children),
            stoppable,
            source: StopSource::new(),
            outer: UnsafeCell::new(StopToken::never()),
            scheduler: UnsafeCell::new(None),
            forward: UnsafeCell::new(None),
        }
    }

    /// Records the answers of the receiver's environment `env` that
    /// children see (its stop token and scheduler) and, if siblings can be
    /// stopped, chains the token to the children's stop source.
    ///
    /// # Safety
    /// Called once, from the parent's `start`, before any child is started.
    /// `parent` is the started (pinned) parent owning `self`, and `env` is
    /// the environment of the receiver the parent will complete.
    #[inline]
    pub(crate) unsafe fn start<'e>(&self, parent: Pin<&P>, env: &impl Env<'e>)
    where
        P: JoinParent,
    {
        // SAFETY: the answer borrows from the downstream receiver, which
        // stays in the parent until every child has arrived (children stop
        // asking their environment before they arrive).
        let scheduler = env.scheduler().map(|s| unsafe { s.detach() });
        // SAFETY: no child runs yet, so nobody else accesses the cell.
        self.scheduler.with_mut(|s| unsafe { *s = scheduler });
        // SAFETY: the token comes from the downstream receiver's environment,
        // which outlives every use: children stop using it before they
        // arrive, and `forward` is dropped before the receiver is completed.
        let outer = unsafe { env.stop_token().detach() };
        // SAFETY: no child runs yet, so nobody else accesses the cell.
        self.outer.with_mut(|o| unsafe { *o = outer });
        if !(self.stoppable && outer.stop_possible()) {
            return;
        }
        // SAFETY: `parent` is pinned and, per the join protocol, not freed
        // before the callback holding this reference has been dropped.
        let parent_ref = unsafe { ParentRef::new(parent) };
        let slot = self.forward.with_mut(|f| {
            // SAFETY: no child runs yet and the callback is not registered:
            // this is the only access.
            unsafe {
                *f = Some(StopCallback::new(
                    outer,
                    ForwardStop {
                        parent: parent_ref,
                        run: forward_stop::<P>,
                    },
                ))
            };
            f
        });
        // SAFETY: the callback lives in the pinned parent and is dropped in
        // place (never moved); `slot` points at it and only this thread
        // touches the cell until the completer drops it.
        let mut callback = unsafe { Pin::new_unchecked((*slot).as_mut().unwrap_unchecked()) };
        // Chain lazily when the chain is short enough: the forwarder is then
        // registered with the receiver's source only if some descendant
        // registers a callback with ours.
        // SAFETY: no child runs yet, so no token of `source` is out; the
        // receiver's source outlives our use of it (as for `outer`); the
        // callback is pinned, registered by no one else, requests stop on
        // `source`, and stays alive until the completer has called
        // `unchain` (in `arrive`, before dropping it).
        if unsafe { self.source.chain(outer, callback.as_mut().node_ptr()) } {
            return;
        }
        // May run the forwarder inline (stop already requested): it holds a
        // reference while no child has arrived, so it cannot complete us.
        callback.register();
    }

    /// The environment children see.
    pub(crate) fn child_env(&self) -> ChildEnv<'_> {
        ChildEnv {
            token: self.child_token(),
            // SAFETY: written before any child started; read-only since.
            scheduler: self.scheduler.with(|s| unsafe { *s }),
        }
    }

    /// The stop token children observe.
    pub(crate) fn child_token(&self) -> StopToken<'_> {
        if self.stoppable {
            self.source.token()
        } else {
            // SAFETY: written before any child started; read-only since.
            self.outer.with(|o| unsafe { *o })
        }
    }

    /// Asks every child to stop. The caller must hold a reference (a child
    /// that has not arrived yet).
    pub(crate) fn stop_siblings(&self) {
        if self.stoppable {
            self.source.request_stop();
        }
    }

    /// Takes one more reference unless the count already reached zero.
    fn try_acquire(&self) -> bool {
        let mut n = self.refs.load(Ordering::Relaxed);
        loop {
            if n == 0 {
                return false;
            }
            match self
                .refs
                .compare_exchange_weak(n, n + 1, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(actual) => n = actual,
            }
        }
    }

    /// Gives up one reference; the last one completes the parent.
    ///
    /// # Safety
    /// The caller holds a reference (a child that has not arrived yet, or the
    /// forwarder's) and gives it up; `this` refers to the parent owning the
    /// join.
    pub(crate) unsafe fn arrive(this: ParentRef<P>)
    where
        P: JoinParent,
    {
        let join = this.get().join();
        // Last reference already (every other holder has arrived): skip the
        // read-modify-write. The count stays at 1 for good, which nobody
        // reads as "complete": only a forwarder can still take a reference
        // (`try_acquire` sees 1, not 0), and it runs as a callback that
        // `unchain` / dropping `forward` below waits for, so its own
        // `arrive` finds our reference and leaves, before we complete.
        // Acquire: reads the value the others' releasing decrements (or a
        // forwarder's read-modify-writes after them) left, so it sees what
        // every other child wrote before arriving.
        // Otherwise, AcqRel: the release publishes what this child wrote
        // (its value, error); the acquire, for the last one, sees what all
        // others wrote.
        if join.refs.load(Ordering::Acquire) != 1 && join.refs.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        // Unchain, then drop the forwarder in place: either deregisters it,
        // and waits for it if it is running on another thread (it then finds
        // `refs == 0` and leaves).
        if join.stoppable {
            // SAFETY: every child arrived: nobody uses the source's tokens.
            unsafe { join.source.unchain() };
        }
        // SAFETY: every other reference is gone: we are the only accessor.
        join.forward.with_mut(|f| unsafe { *f = None });
        // SAFETY: we brought the count to zero, after dropping the forwarder.
        unsafe { P::complete(this) }
    }

    /// Asks the siblings to stop, then [`arrive`](Join::arrive)s: the
    /// caller's reference keeps the stop source alive through
    /// `request_stop` (siblings may complete inside it).
    ///
    /// # Safety
    /// As [`arrive`](Join::arrive): the caller holds a reference and gives
    /// it up.
    pub(crate) unsafe fn stop_siblings_and_arrive(this: ParentRef<P>)
    where
        P: JoinParent,
    {
        this.get().join().stop_siblings();
        // SAFETY: per the caller.
        unsafe { Self::arrive(this) }
    }
}

impl<P> core::fmt::Debug for Join<P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Join")
            .field("refs", &self.refs.load(Ordering::Relaxed))
            .field("stoppable", &self.stoppable)
            .finish_non_exhaustive()
    }
}

/// The stop callback chaining a receiver's token to a parent's stop source.
///
/// Holds the function to run instead of requiring `P: JoinParent`, so the
/// structs embedding it need no trait bounds.
pub(crate) struct ForwardStop<P> {
    parent: ParentRef<P>,
    run: fn(ParentRef<P>),
}

impl<P> OnStop for ForwardStop<P> {
    fn on_stop(self) {
        (self.run)(self.parent)
    }
}

/// What [`ForwardStop`] runs for a `P`.
fn forward_stop<P: JoinParent>(parent: ParentRef<P>) {
    let join = parent.get().join();
    if join.try_acquire() {
        join.source.request_stop();
        // SAFETY: we hold the reference taken above. If it is the last,
        // `arrive` drops this very callback (on the notifying thread, which
        // the stop source supports) and completes the parent; we touch
        // nothing afterwards.
        unsafe { Join::arrive(parent) };
    }
}

/// A parent whose children's failures and stops are decided by one
/// [`Outcome`] (`when_all`, `when_all_vec`).
pub(crate) trait OutcomeParent: JoinParent {
    /// The children's error type.
    type Error;
    /// Where the children record how they ended.
    fn outcome(&self) -> &Outcome<Self::Error>;
}

/// A child of an [`OutcomeParent`] ended without a value: records `failure`
/// (`None`: it was stopped), stops its siblings and arrives.
///
/// # Safety
/// As [`Join::arrive`]: the calling child holds a reference and gives it up.
pub(crate) unsafe fn arrive_without_value<P: OutcomeParent>(
    this: ParentRef<P>,
    failure: Option<Failure<P::Error>>,
) {
    let outcome = this.get().outcome();
    match failure {
        Some(failure) => outcome.fail(failure),
        None => outcome.stopped(),
    }
    // SAFETY: per the caller.
    unsafe { Join::stop_siblings_and_arrive(this) }
}

/// A failed child: an error, or a panic in its user code.
pub(crate) enum Failure<E> {
    Error(E),
    Panic(PanicPayload),
}

impl<E> Failure<E> {
    pub(crate) fn deliver<T, R: Receiver<T, E>>(self, receiver: R) {
        match self {
            Failure::Error(e) => receiver.set_error(e),
            Failure::Panic(p) => receiver.set_panic(p),
        }
    }
}

const ALL_VALUES: u8 = 0;
const STOPPED: u8 = 1;
const FAILED: u8 = 2;

/// How a `when_all` ends, decided as its children complete: values unless a
/// child stopped (then stopped) or failed (then the first failure, which
/// wins over stopped).
pub(crate) struct Outcome<E> {
    /// `ALL_VALUES`, `STOPPED` or `FAILED`; only grows (`fetch_max`).
    state: AtomicU8,
    /// Written by the one child that moved `state` to `FAILED`; read by the
    /// completer.
    failure: UnsafeCell<Option<Failure<E>>>,
}

/// What [`Outcome::take`] found.
pub(crate) enum Verdict<E> {
    Values,
    Stopped,
    Failed(Failure<E>),
}

impl<E> Outcome<E> {
    pub(crate) fn new() -> Self {
        Outcome {
            state: AtomicU8::new(ALL_VALUES),
            failure: UnsafeCell::new(None),
        }
    }

    /// Records a stopped child (unless a failure was already recorded).
    pub(crate) fn stopped(&self) {
        // Relaxed: read by the completer after the `AcqRel` of `arrive`.
        self.state.fetch_max(STOPPED, Ordering::Relaxed);
    }

    /// Records a failed child; only the first failure is kept, later ones
    /// are dropped here.
    pub(crate) fn fail(&self, failure: Failure<E>) {
        if self.state.fetch_max(FAILED, Ordering::Relaxed) < FAILED {
            // SAFETY: only the child that moved the state to FAILED writes;
            // the completer reads after every child arrived.
            self.failure.with_mut(|f| unsafe { *f = Some(failure) });
        }
    }

    /// The decision.
    ///
    /// # Safety
    /// Called once, by the completer (every child has arrived).
    pub(crate) unsafe fn take(&self) -> Verdict<E> {
        match self.state.load(Ordering::Relaxed) {
            ALL_VALUES => Verdict::Values,
            STOPPED => Verdict::Stopped,
            _ => {
                // SAFETY: all children arrived; exclusive per the contract.
                let f = self.failure.with_mut(|f| unsafe { (*f).take() });
                Verdict::Failed(f.expect("exec: failed child left no failure"))
            }
        }
    }
}

/// One child's value, written by that child, read by the completer.
pub struct Slot<T>(UnsafeCell<Option<T>>);

impl<T> core::fmt::Debug for Slot<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Slot").finish_non_exhaustive()
    }
}

impl<T> Slot<T> {
    pub(crate) fn new() -> Self {
        Slot(UnsafeCell::new(None))
    }

    /// # Safety
    /// Only the child owning the slot calls this, once, before it arrives.
    pub(crate) unsafe fn put(&self, value: T) {
        // SAFETY: per the contract, the only access until the completer.
        self.0.with_mut(|s| unsafe { *s = Some(value) });
    }

    /// # Safety
    /// Only the completer calls this (every child has arrived).
    pub(crate) unsafe fn take(&self) -> Option<T> {
        // SAFETY: per the contract, exclusive.
        self.0.with_mut(|s| unsafe { (*s).take() })
    }
}

/// The downstream receiver, kept in the shared state until the completer
/// takes it.
pub(crate) struct Downstream<R>(UnsafeCell<Option<R>>);

impl<R> Downstream<R> {
    pub(crate) fn new(receiver: R) -> Self {
        Downstream(UnsafeCell::new(Some(receiver)))
    }

    /// Calls `f` with the receiver.
    ///
    /// # Safety
    /// Only from the parent's `start`, before any child is started.
    pub(crate) unsafe fn with<U>(&self, f: impl FnOnce(&R) -> U) -> U {
        // SAFETY: no child runs yet: no concurrent access.
        self.0
            .with(|r| f(unsafe { (*r).as_ref().expect("exec: started twice") }))
    }

    /// # Safety
    /// Only the completer calls this, once.
    pub(crate) unsafe fn take(&self) -> R {
        // SAFETY: per the contract, exclusive.
        let r = self.0.with_mut(|r| unsafe { (*r).take() });
        r.expect("exec: completed twice")
    }
}

/// The environment a child of an n-ary operation sees
/// ([`Join::child_env`]): the parent's child stop token, and the
/// downstream receiver's scheduler (children run where the parent was
/// started).
///
/// A query added to [`Env`] must be decided here: most should answer what
/// the downstream receiver's environment answers, captured in
/// [`Join::start`].
#[derive(Debug)]
pub(crate) struct ChildEnv<'a> {
    token: StopToken<'a>,
    scheduler: Option<SchedulerRef<'a>>,
}

const _: () = assert!(
    crate::env::QUERIES == 2,
    "decide what n-ary children see for the new Env query in `ChildEnv`"
);

impl<'a> Env<'a> for ChildEnv<'a> {
    fn stop_token(&self) -> StopToken<'a> {
        self.token
    }
    fn scheduler(&self) -> Option<SchedulerRef<'a>> {
        self.scheduler
    }
}
