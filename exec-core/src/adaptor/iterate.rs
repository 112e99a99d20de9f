//! The loop shared by `repeat_effect_until`, `repeat_n` and
//! `loop_with_state`: run one iteration's sender after another in one
//! operation state, without growing the stack.
//!
//! # The loop
//! A [`LoopBody`] says, after each iteration's value (and once before the
//! first), whether to finish or to go on, and makes the next iteration's
//! sender. Each iteration's operation is connected in `child` (dropping the
//! previous one in place) and started. An iteration that completes inside
//! its own `start` only stashes its outcome; the loop, once `start` has
//! returned, picks it up and goes round again — so a sender that always
//! completes inline iterates in a loop, not by recursion. An iteration that
//! completes later runs the loop from its completion. `phase`
//! (`IDLE`/`IN_START`/`DEFERRED`) decides which of the two continues:
//! - the runner sets `IN_START` before starting an iteration and, once its
//!   `start` returned, CASes `IN_START → IDLE`; failure means `DEFERRED`,
//!   i.e. the iteration completed meanwhile and left its outcome in
//!   `stash`;
//! - the completion writes `stash`, then CASes `IN_START → DEFERRED`;
//!   success hands over to the runner, failure (`IDLE`) means `start` has
//!   returned and the completion runs the loop itself.
//!
//! Both CASes are `AcqRel`, so the stash write happens-before its read.
//! Unlike `let_value` (which may free its first operation inside that
//! operation's `start`, see `let_value.rs`), the loop never drops an
//! iteration whose `start` is still running: the stash is what bounds the
//! stack of a loop whose iterations complete inline.

use core::fmt;
use core::marker::{PhantomData, PhantomPinned};
use core::mem::MaybeUninit;
use core::ops::ControlFlow;
use core::pin::Pin;

use crate::adaptor::probe::SendProbe;
use crate::env::CapturedEnv;
use crate::loom::cell::UnsafeCell;
use crate::loom::sync::atomic::{AtomicU8, Ordering};
use crate::parent::{ErasedParentEnvRef, NotifyEnv};
use crate::{
    Env, Notify, OperationState, PanicPayload, ParentRef, Receiver, Sender, SenderTo, catch_unwind,
};

/// What a loop ([`LoopOp`]) runs: implemented by the bodies of
/// [`repeat_effect_until`](crate::SenderExt::repeat_effect_until),
/// [`repeat_n`](crate::SenderExt::repeat_n) and
/// [`loop_with_state`](crate::loop_with_state); public only because it
/// appears in their operation types.
pub trait LoopBody {
    /// The sender of every iteration.
    type Sender: Sender;
    /// The value the loop completes with.
    type Output;
    /// What [`decide`](LoopBody::decide) hands to
    /// [`next`](LoopBody::next) when the loop goes on.
    type Carry;
    /// Called before the first iteration (with `None`, or with the first
    /// value the loop was made with, see `LoopOp::with_first`) and with
    /// every iteration's value: `Break(value)` finishes the loop with `value`,
    /// `Continue(carry)` goes on (unless a stop was requested: then the loop
    /// drops `carry` and completes stopped). Runs under `catch_unwind`.
    fn decide(
        &mut self,
        last: Option<<Self::Sender as Sender>::Output>,
    ) -> ControlFlow<Self::Output, Self::Carry>;
    /// Makes the next iteration's sender. Runs under `catch_unwind`.
    fn next(&mut self, carry: Self::Carry) -> Self::Sender;
}

/// How an iteration completed.
enum Iteration<T, E> {
    Value(T),
    Error(E),
    Stopped,
    Panic(PanicPayload),
}

/// How the whole loop completes.
enum Finish<T, E> {
    Value(T),
    Error(E),
    Stopped,
    Panic(PanicPayload),
}

const IDLE: u8 = 0;
const IN_START: u8 = 1;
const DEFERRED: u8 = 2;

/// The receiver each iteration of a loop ([`LoopOp`]) is connected to.
///
/// `M` is `(B, R)` (the [`LoopBody`] and the downstream receiver) and only
/// decides when it may cross threads.
pub struct LoopReceiver<T, E, M> {
    /// Also answers the environment: the downstream receiver's, which the
    /// loop keeps until the last iteration has completed (two words, where
    /// a captured copy of the environment would add three).
    parent: ErasedParentEnvRef<Iteration<T, E>>,
    _marker: PhantomData<M>,
}

impl<T, E, M> fmt::Debug for LoopReceiver<T, E, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoopReceiver").finish_non_exhaustive()
    }
}

// SAFETY: completing an iteration on another thread moves `T`/`E` there,
// runs the body (`B`: deciding, making the next sender), drops the
// iteration's operation, connects and starts the next iteration and may
// complete `R` there: all `Send` by the bounds. The iteration's operation
// cannot be named here (it contains this receiver: a cycle through
// `SenderTo`), so, as for `LetReceiver`, the bound asks whether the
// operation the body's sender makes for a `SendProbe` is `Send` (see
// `adaptor/probe.rs`).
unsafe impl<T, E, B, R> Send for LoopReceiver<T, E, (B, R)>
where
    T: Send,
    E: Send,
    B: LoopBody + Send,
    B::Sender: Send + SenderTo<SendProbe<T, E>>,
    <B::Sender as SenderTo<SendProbe<T, E>>>::Operation: Send,
    R: Send,
{
}
// SAFETY: through `&LoopReceiver` only the environment can be reached: the
// downstream receiver's `env`, called through a shared reference (hence
// `R: Sync`); completing needs ownership.
unsafe impl<T, E, B, R: Sync> Sync for LoopReceiver<T, E, (B, R)> {}

impl<T, E, M> Receiver<T, E> for LoopReceiver<T, E, M> {
    fn set_value(self, value: T) {
        self.parent.notify(Iteration::Value(value))
    }
    fn set_error(self, error: E) {
        self.parent.notify(Iteration::Error(error))
    }
    fn set_stopped(self) {
        self.parent.notify(Iteration::Stopped)
    }
    fn set_panic(self, payload: PanicPayload) {
        self.parent.notify(Iteration::Panic(payload))
    }
    fn env(&self) -> impl Env<'_> {
        self.parent.env()
    }
}

/// The receiver type the iterations of body `B` under downstream `R` get.
pub(crate) type LoopRecv<B, R> = LoopReceiver<
    <<B as LoopBody>::Sender as Sender>::Output,
    <<B as LoopBody>::Sender as Sender>::Error,
    (B, R),
>;

type Out<B> = <<B as LoopBody>::Sender as Sender>::Output;
type Err<B> = <<B as LoopBody>::Sender as Sender>::Error;
/// The operation of an iteration of body `B` under downstream `R`.
type ChildOp<B, R> = <<B as LoopBody>::Sender as SenderTo<LoopRecv<B, R>>>::Operation;

/// Operation state of a loop: of [`RepeatEffectUntil`](crate::RepeatEffectUntil),
/// [`RepeatN`](crate::RepeatN) and [`LoopWithState`](crate::LoopWithState).
pub struct LoopOp<B, R>
where
    B: LoopBody,
    B::Sender: SenderTo<LoopRecv<B, R>>,
{
    inner: LoopInner<B, R>,
    _pin: PhantomPinned,
}

impl<B, R> fmt::Debug for LoopOp<B, R>
where
    B: LoopBody,
    B::Sender: SenderTo<LoopRecv<B, R>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoopOp").finish_non_exhaustive()
    }
}

struct LoopInner<B, R>
where
    B: LoopBody,
    B::Sender: SenderTo<LoopRecv<B, R>>,
{
    /// `IDLE`/`IN_START`/`DEFERRED`: who continues after an iteration.
    phase: AtomicU8,
    /// Decides and makes the iterations; dropped when the loop ends.
    body: UnsafeCell<Option<B>>,
    /// Taken when the loop finishes; until then only read (for its
    /// environment), by the loop runner and by [`NotifyEnv::child_env`].
    receiver: UnsafeCell<Option<R>>,
    /// An inline iteration's outcome, handed to the loop by `phase`. Before
    /// `start`, the first value the loop was made with (if any), which
    /// `start` hands to the first `decide`: a body whose first decision
    /// needs a value (`loop_with_state`'s initial state) keeps it here, in
    /// a slot that is idle until the first iteration runs, instead of in a
    /// field of its own that would be idle afterwards.
    stash: UnsafeCell<Option<Iteration<Out<B>, Err<B>>>>,
    /// Whether `child` holds an operation. (A flag next to `phase`, in
    /// what would be padding, instead of an `Option`'s tag word: the
    /// operation inside a cell offers no niche.) Same access rule as
    /// `child`.
    child_live: UnsafeCell<bool>,
    /// Structurally pinned: the current iteration's operation, if
    /// `child_live`. Only the loop runner touches it.
    child: UnsafeCell<MaybeUninit<ChildOp<B, R>>>,
}

impl<B, R> LoopOp<B, R>
where
    B: LoopBody,
    B::Sender: SenderTo<LoopRecv<B, R>>,
{
    /// A loop whose first `decide` gets `None`.
    pub(crate) fn new(body: B, receiver: R) -> Self {
        Self::make(body, None, receiver)
    }

    /// A loop whose first `decide` gets `Some(first)`, as if an iteration
    /// had sent it.
    pub(crate) fn with_first(body: B, first: Out<B>, receiver: R) -> Self {
        Self::make(body, Some(Iteration::Value(first)), receiver)
    }

    fn make(body: B, first: Option<Iteration<Out<B>, Err<B>>>, receiver: R) -> Self {
        LoopOp {
            inner: LoopInner {
                phase: AtomicU8::new(IDLE),
                body: UnsafeCell::new(Some(body)),
                receiver: UnsafeCell::new(Some(receiver)),
                stash: UnsafeCell::new(first),
                child_live: UnsafeCell::new(false),
                child: UnsafeCell::new(MaybeUninit::uninit()),
            },
            _pin: PhantomPinned,
        }
    }
}

impl<B, R> LoopInner<B, R>
where
    B: LoopBody,
    B::Sender: SenderTo<LoopRecv<B, R>>,
{
    /// Drops the iteration's operation in place, if there is one.
    ///
    /// # Safety
    /// The caller owns `child` (the loop runner, or the owner dropping the
    /// op): no iteration is running, or the running one has completed and
    /// no longer touches itself.
    unsafe fn drop_child(&self) {
        // SAFETY: per the contract. The flag is cleared first, so a
        // panicking drop does not leave it set.
        unsafe {
            if self
                .child_live
                .with_mut(|l| core::mem::replace(&mut *l, false))
            {
                self.child
                    .with_mut(|c| core::ptr::drop_in_place((*c).as_mut_ptr()));
            }
        }
    }

    /// Writes `op` into the (empty) `child` slot, returning where it is.
    ///
    /// # Safety
    /// As for [`drop_child`](Self::drop_child), and `child` is empty.
    unsafe fn put_child(&self, op: ChildOp<B, R>) -> *mut ChildOp<B, R> {
        // SAFETY: per the contract.
        unsafe {
            debug_assert!(!self.child_live.with(|l| *l));
            let p = self.child.with_mut(|c| (*c).write(op) as *mut _);
            self.child_live.with_mut(|l| *l = true);
            p
        }
    }
}

impl<B, R> Drop for LoopInner<B, R>
where
    B: LoopBody,
    B::Sender: SenderTo<LoopRecv<B, R>>,
{
    fn drop(&mut self) {
        // SAFETY: `&mut self`: nothing runs; an iteration still in `child`
        // was either never started or has completed.
        unsafe { self.drop_child() }
    }
}

impl<B, R> LoopInner<B, R>
where
    B: LoopBody,
    B::Sender: SenderTo<LoopRecv<B, R>>,
    R: Receiver<B::Output, Err<B>>,
{
    /// Drops what the loop holds, then completes downstream. Touches nothing
    /// afterwards. (Takes a raw pointer: a `&Self` argument would assert the
    /// op is alive for the whole call, but completing may free it.)
    fn finish(this: *const Self, how: Finish<B::Output, Err<B>>) {
        // SAFETY: `this` is the started op (alive until this completion).
        let this = unsafe { &*this };
        // SAFETY: only the single runner of the loop gets here; no iteration
        // is running (the last one completed).
        let receiver = unsafe {
            this.drop_child();
            this.body.with_mut(|b| *b = None);
            this.receiver.with_mut(|r| (*r).take())
        };
        let receiver = receiver.expect("loop: completed twice");
        match how {
            Finish::Value(v) => receiver.set_value(v),
            Finish::Error(e) => receiver.set_error(e),
            Finish::Stopped => receiver.set_stopped(),
            Finish::Panic(p) => receiver.set_panic(p),
        }
    }

    /// Runs the loop: handles `done` (the outcome of the iteration that just
    /// completed, or `None` at the start), then starts iterations until one
    /// completes later or the loop finishes.
    fn run(this: ParentRef<Self>, mut done: Option<Iteration<Out<B>, Err<B>>>) {
        let inner = this.get();
        loop {
            // SAFETY: the loop runner owns `child` and `body` between
            // iterations; the finished iteration no longer touches itself.
            unsafe { inner.drop_child() };
            let last = match done.take() {
                None => None,
                Some(Iteration::Value(v)) => Some(v),
                Some(Iteration::Error(e)) => return Self::finish(inner, Finish::Error(e)),
                Some(Iteration::Stopped) => return Self::finish(inner, Finish::Stopped),
                Some(Iteration::Panic(p)) => return Self::finish(inner, Finish::Panic(p)),
            };
            let body = inner.body.with_mut(|b| b);
            // SAFETY: as above.
            let decided =
                catch_unwind(|| unsafe { (*body).as_mut().expect("loop: body").decide(last) });
            let carry = match decided {
                Ok(ControlFlow::Continue(c)) => c,
                Ok(ControlFlow::Break(v)) => return Self::finish(inner, Finish::Value(v)),
                Err(p) => return Self::finish(inner, Finish::Panic(p)),
            };
            // SAFETY: the receiver is taken only by `finish`; here it is
            // only read (as by `child_env`, which may run concurrently).
            let stop = inner.receiver.with(|r| unsafe {
                (*r).as_ref()
                    .is_some_and(|r| r.env().stop_token().stop_requested())
            });
            if stop {
                drop(carry);
                return Self::finish(inner, Finish::Stopped);
            }
            // SAFETY: as above.
            let next =
                match catch_unwind(|| unsafe { (*body).as_mut().expect("loop: body").next(carry) })
                {
                    Ok(s) => s,
                    Err(p) => return Self::finish(inner, Finish::Panic(p)),
                };
            // SAFETY: the op is started and completes only after this
            // iteration has completed (consuming the receiver).
            let parent = unsafe { ErasedParentEnvRef::new(this.get_pin()) };
            let op = next.connect(LoopReceiver {
                parent,
                _marker: PhantomData,
            });
            // SAFETY: no iteration is running: `child` is ours; the new
            // operation stays pinned there until the next round drops it,
            // after it has completed.
            // (Dropped at the top of the loop: the slot is empty.)
            let child = unsafe { inner.put_child(op) };
            inner.phase.store(IN_START, Ordering::Relaxed);
            // SAFETY: started once, kept pinned and alive as said above.
            unsafe { OperationState::start(Pin::new_unchecked(&mut *child)) };
            if inner
                .phase
                .compare_exchange(IN_START, IDLE, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                // Completes later; its completion runs the loop. The op may
                // be gone from here on.
                return;
            }
            // SAFETY: completed inline; `phase` handed the stash to us.
            done = inner.stash.with_mut(|s| unsafe { (*s).take() });
            debug_assert!(done.is_some());
        }
    }
}

impl<B, R> Notify<Iteration<Out<B>, Err<B>>> for LoopInner<B, R>
where
    B: LoopBody,
    B::Sender: SenderTo<LoopRecv<B, R>>,
    R: Receiver<B::Output, Err<B>>,
{
    fn notify(this: ParentRef<Self>, it: Iteration<Out<B>, Err<B>>) {
        let inner = this.get();
        // The common case of an iteration that completes later: `start`
        // has returned and handed the loop to us (`IDLE`, a value only its
        // CAS can have written since this iteration's `IN_START`, which
        // happened-before this completion). Go on without the stash and
        // without a read-modify-write. Acquire: pairs with that CAS.
        if inner.phase.load(Ordering::Acquire) == IDLE {
            return Self::run(this, Some(it));
        }
        // SAFETY: an iteration completes once; until `phase` hands over this
        // is the only access to the stash.
        inner.stash.with_mut(|s| unsafe { *s = Some(it) });
        if inner
            .phase
            .compare_exchange(IN_START, DEFERRED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            return;
        }
        // SAFETY: the loop is not running (`IDLE`): the stash is ours.
        let it = inner.stash.with_mut(|s| unsafe { (*s).take() });
        Self::run(this, it);
    }
}

impl<B, R> NotifyEnv<Iteration<Out<B>, Err<B>>> for LoopInner<B, R>
where
    B: LoopBody,
    B::Sender: SenderTo<LoopRecv<B, R>>,
    R: Receiver<B::Output, Err<B>>,
{
    fn child_env(inner: &Self) -> CapturedEnv {
        // The downstream receiver, whose env produced the answers, stays in
        // this op until the loop finishes, after the last iteration (the
        // only one asking) has completed, and iterations drop their
        // registrations before completing: that is what `capture` (and
        // `detach`) ask.
        // SAFETY: while an iteration runs, `receiver` is only read (here
        // and by the loop's stop check); `finish` takes it only after the
        // last iteration has completed and so stopped asking.
        inner.receiver.with(|r| unsafe {
            match &*r {
                Some(r) => CapturedEnv::capture(&r.env()),
                None => CapturedEnv::empty(),
            }
        })
    }
}

impl<B, R> OperationState for LoopOp<B, R>
where
    B: LoopBody,
    B::Sender: SenderTo<LoopRecv<B, R>>,
    R: Receiver<B::Output, Err<B>>,
{
    unsafe fn start(self: Pin<&mut Self>) {
        // SAFETY: projecting to `inner`, which is never moved.
        let inner: Pin<&LoopInner<B, R>> =
            unsafe { self.map_unchecked_mut(|op| &mut op.inner) }.into_ref();
        // SAFETY: not running yet: the stash (holding the first value, if
        // any) is ours.
        let first = inner.stash.with_mut(|s| unsafe { (*s).take() });
        // SAFETY: started, so pinned and alive until the loop finishes.
        let this = unsafe { ParentRef::new(inner) };
        LoopInner::run(this, first);
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    //! The hand-over between an iteration's `start` returning (the loop's
    //! CAS to `IDLE`) and the iteration completing on another thread (the
    //! completion's load of `phase`, or its CAS to `DEFERRED`).
    use crate::loom::sync::atomic::Ordering;
    use crate::loom_fixtures::{OnThread, Out, handles, join_all};
    use crate::{OperationState, SenderExt, SenderTo};
    use alloc::boxed::Box;

    /// Two iterations, each completing on its own thread before, during or
    /// after the loop's hand-over: the loop completes once, and each
    /// iteration's operation is dropped after its `start` returned.
    #[test]
    fn loom_iterations_complete_while_start_runs() {
        ::loom::model(|| {
            let hs = handles();
            let (out, seen, done) = Out::new();
            // Writes into each iteration's operation after its completion
            // was handed to another thread: the loop must drop that
            // operation only after `start` returned, and see the write.
            let s = OnThread {
                handles: hs.clone(),
                value: (),
                touch_after_spawn: true,
            }
            .repeat_n(2);
            let mut op = Box::pin(s.connect(out));
            // SAFETY: `op` is dropped only after every completing thread
            // has been joined, i.e. after the loop completed.
            unsafe { op.as_mut().start() };
            join_all(&hs);
            assert_eq!(done.load(Ordering::Relaxed), 1);
            assert_eq!(seen.lock().unwrap().take(), Some(()));
            drop(op);
        });
    }
}
