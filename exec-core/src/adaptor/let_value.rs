//! `let_value` and the machinery `let_error` and `let_stopped` share: an
//! operation that runs a first sender, hands one of its completions to a
//! function returning a second sender, and runs that second sender in the
//! storage the first one occupied.
//!
//! # How the operation is laid out
//! `LetOp` holds a union, `state`, and a byte saying which of its members is
//! live:
//! - `INIT`: the first sender, the branch and the downstream receiver;
//! - `FIRST`: the first operation, running, with the branch and the
//!   receiver beside it, never inside it;
//! - `SECOND`: the second operation (which owns the receiver now);
//! - `EMPTY`: in between, or after a forwarded completion.
//!
//! The first operation is connected at `start` (its receiver refers back to
//! the pinned op through an `ErasedParentEnvRef`); when it completes it is
//! dropped in place and the second sender is connected to the downstream
//! receiver in the same storage, so everything but the second operation
//! overlaps it: the op is as large as the larger of the second operation
//! and the first plus branch and receiver.
//!
//! # Completion inside `start`
//! The first completion, wherever it happens, drops the first operation
//! and starts the second at once, even if the first operation's `start` is
//! still on the stack (it completed inline, or handed its completion to
//! another thread that got there first). PROTOCOL.md rule 5 allows that:
//! an operation touches nothing of itself once it has completed, and
//! `tests/op_freed_in_completion.rs` holds every operation to it. So
//! `let_value` keeps no slot for an early completion (a stash would be as
//! large as the first sender's value, in every operation, for the whole
//! time the first operation runs) and no phase word.
//!
//! The stack: an inline chain nests one `let_value` level per step, as
//! `then` does; the depth is that of the (finite) sender type. Recursion
//! through type erasure (`let_value` returning an `AnySender` of itself)
//! is bounded by `AnySender`'s trampoline, and loops (`repeat_*`,
//! `loop_with_state`) iterate instead of recursing (`iterate.rs`); tests
//! run both a million levels deep on small stacks.

use core::fmt;
use core::marker::{PhantomData, PhantomPinned};
use core::mem::ManuallyDrop;
use core::pin::Pin;
use core::ptr;

use crate::adaptor::probe::SendProbe;
use crate::env::CapturedEnv;
use crate::loom::cell::UnsafeCell;
use crate::parent::{ErasedParentEnvRef, NotifyEnv};
use crate::{
    Env, Notify, OperationState, PanicPayload, ParentRef, Receiver, Sender, SenderTo, catch_unwind,
};

/// Sender for the [`let_value`](crate::SenderExt::let_value) method.
#[must_use = "senders do nothing unless connected and started"]
#[derive(Clone, Debug)]
pub struct LetValue<S, F> {
    sender: S,
    f: F,
}

impl<S, F> LetValue<S, F> {
    pub(crate) fn new(sender: S, f: F) -> Self {
        LetValue { sender, f }
    }
}

impl<S, F, N> Sender for LetValue<S, F>
where
    S: Sender,
    F: FnOnce(S::Output) -> N,
    N: Sender,
    S::Error: Into<N::Error>,
{
    type Output = N::Output;
    type Error = N::Error;
    const SENDS_STOPPED: bool = S::SENDS_STOPPED || N::SENDS_STOPPED;
}

impl<S, F, N, R> SenderTo<R> for LetValue<S, F>
where
    S: Sender
        + SenderTo<LetReceiver<<S as Sender>::Output, <S as Sender>::Error, (S, OnValue<F>, R)>>,
    F: FnOnce(S::Output) -> N,
    N: SenderTo<R>,
    S::Error: Into<N::Error>,
    R: Receiver<N::Output, N::Error>,
{
    type Operation = LetOp<S, OnValue<F>, R>;
    fn connect(self, receiver: R) -> Self::Operation {
        LetOp::new(self.sender, OnValue(self.f), receiver)
    }
}

/// How the first sender of a `let_*` algorithm completed.
#[derive(Debug)]
pub enum LetInput<T, E> {
    /// It sent a value.
    Value(T),
    /// It failed.
    Error(E),
    /// It was stopped.
    Stopped,
    /// Code it ran panicked.
    Panic(PanicPayload),
}

impl<T, E> LetInput<T, E> {
    fn deliver<R: Receiver<T, E>>(self, receiver: R) {
        match self {
            LetInput::Value(v) => receiver.set_value(v),
            LetInput::Error(e) => receiver.set_error(e),
            LetInput::Stopped => receiver.set_stopped(),
            LetInput::Panic(p) => receiver.set_panic(p),
        }
    }
}

/// What a `let_*` algorithm does with the first completion.
#[derive(Debug)]
pub enum LetStep<N: Sender> {
    /// Run this sender and complete as it does.
    Run(N),
    /// Complete with this, without running anything else.
    Forward(LetInput<N::Output, N::Error>),
}

/// The channel a `let_*` algorithm reacts to: turns the first completion
/// into a [`LetStep`]. Implemented by [`OnValue`] (`let_value`),
/// [`OnError`](crate::OnError) (`let_error`) and
/// [`OnStopped`](crate::OnStopped) (`let_stopped`); public only because it
/// appears in their operation types.
pub trait LetBranch<T, E> {
    /// The sender the function returns.
    type Next: Sender;
    /// Calls the function (catching a panic) if `input` is on this branch's
    /// channel, else drops the function and converts `input` for forwarding.
    fn branch(self, input: LetInput<T, E>) -> LetStep<Self::Next>;
}

/// The [`LetBranch`] of [`let_value`](crate::SenderExt::let_value): `f`
/// receives the value.
#[derive(Clone, Debug)]
pub struct OnValue<F>(F);

impl<T, E, F, N> LetBranch<T, E> for OnValue<F>
where
    F: FnOnce(T) -> N,
    N: Sender,
    E: Into<N::Error>,
{
    type Next = N;
    fn branch(self, input: LetInput<T, E>) -> LetStep<N> {
        let picked = match input {
            LetInput::Value(v) => Ok(v),
            LetInput::Error(e) => Err(LetInput::Error(e.into())),
            LetInput::Stopped => Err(LetInput::Stopped),
            LetInput::Panic(p) => Err(LetInput::Panic(p)),
        };
        run_or_forward(self.0, picked, |f, v| f(v))
    }
}

/// What every [`LetBranch`] does once it has `picked` its channel:
/// `Ok(arg)` (the completion is on the branch's channel) calls `call(f, arg)`
/// under `catch_unwind` and runs the sender it returns (a panic is
/// forwarded); `Err(input)` drops `f` and forwards `input` (already
/// converted to the second sender's types).
pub(crate) fn run_or_forward<F, A, N: Sender>(
    f: F,
    picked: Result<A, LetInput<N::Output, N::Error>>,
    call: impl FnOnce(F, A) -> N,
) -> LetStep<N> {
    match picked {
        Ok(arg) => match catch_unwind(move || call(f, arg)) {
            Ok(next) => LetStep::Run(next),
            Err(p) => LetStep::Forward(LetInput::Panic(p)),
        },
        Err(input) => {
            drop(f);
            LetStep::Forward(input)
        }
    }
}

/// `state` holds `init`.
const INIT: u8 = 0;
/// `state` holds `first`.
const FIRST: u8 = 1;
/// `state` holds `second`.
const SECOND: u8 = 2;
/// `state` holds nothing.
const EMPTY: u8 = 3;

/// While the first operation runs: it, and beside it what comes after.
struct First<O1, B, R> {
    /// Structurally pinned.
    op: O1,
    /// Taken, with `receiver`, once the first operation has completed.
    branch: B,
    /// Until then only read, by [`NotifyEnv::child_env`].
    receiver: R,
}

/// The storage of a `let_*` operation; which member is live is recorded
/// beside it (`INIT`/`FIRST`/`SECOND`/`EMPTY`).
union LetState<S, B, R, O1, O2> {
    /// Before `start`.
    init: ManuallyDrop<(S, B, R)>,
    /// The first operation, running.
    first: ManuallyDrop<First<O1, B, R>>,
    /// The second operation, running (connected to the downstream receiver).
    second: ManuallyDrop<O2>,
}

/// The receiver a `let_*` algorithm connects its first sender to.
///
/// `M` is `(S, B, R)` — first sender, branch, downstream receiver — and only
/// decides when the receiver may be sent to another thread.
///
/// # Threads
/// Completing this receiver drops the first operation in place, on the
/// completing thread. So the receiver is `Send` only if, besides the values,
/// the function, the second sender and operation and the downstream
/// receiver, the first sender's *operation* is `Send`. A first sender whose
/// operation holds thread-bound state but completes on another thread is
/// rejected (with the `Rc` removed this compiles and prints 1):
/// ```compile_fail
/// use std::{convert::Infallible, marker::PhantomPinned, pin::Pin, rc::Rc};
/// use exec_core::{just, sync_wait, OperationState, Receiver, Sender, SenderExt, SenderTo};
///
/// struct OtherThread;
/// impl Sender for OtherThread {
///     type Output = i32;
///     type Error = Infallible;
/// }
/// impl<R: Receiver<i32, Infallible> + Send + 'static> SenderTo<R> for OtherThread {
///     type Operation = OtherThreadOp<R>;
///     fn connect(self, r: R) -> OtherThreadOp<R> {
///         OtherThreadOp { r: Some(r), rc: Rc::new(()), _pin: PhantomPinned }
///     }
/// }
/// struct OtherThreadOp<R> {
///     r: Option<R>,
///     rc: Rc<()>, // thread-bound: must not be dropped on the other thread
///     _pin: PhantomPinned,
/// }
/// impl<R: Receiver<i32, Infallible> + Send + 'static> OperationState for OtherThreadOp<R> {
///     unsafe fn start(self: Pin<&mut Self>) {
///         let r = unsafe { self.get_unchecked_mut() }.r.take().unwrap();
///         std::thread::spawn(move || r.set_value(1)).join().unwrap();
///     }
/// }
/// let s = OtherThread.let_value(|x| just(x));
/// println!("{:?}", sync_wait(s));
/// ```
pub struct LetReceiver<T, E, M> {
    /// Also answers the environment: the downstream receiver's, which the
    /// op keeps until the first operation has completed (two words, where
    /// a captured copy of the environment would add three).
    parent: ErasedParentEnvRef<LetInput<T, E>>,
    _marker: PhantomData<M>,
}

impl<T, E, M> fmt::Debug for LetReceiver<T, E, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LetReceiver").finish_non_exhaustive()
    }
}

// SAFETY: completing this receiver on another thread moves the `T`/`E` sent
// there, runs the branch (`B`) there, connects and starts the second
// operation there and completes `R` there, and the op may later be dropped
// elsewhere: all `Send` by the bounds. It also drops the first operation
// there, so that operation must be `Send` too. Its type cannot be named in
// this bound (it contains this receiver: `S: SenderTo<LetReceiver<..>>` needs
// this very impl, a cycle the trait solver rejects), so the bound asks the
// same question of the operation `S` makes for a `SendProbe` (a receiver
// that is always `Send`): an operation type's `Send`-ness can only depend on
// its receiver's through the receiver's own `Send`-ness, and `SendProbe`
// cannot be named outside this crate, so no impl can single it out.
unsafe impl<T, E, S, B, R> Send for LetReceiver<T, E, (S, B, R)>
where
    T: Send,
    E: Send,
    S: Send + SenderTo<SendProbe<T, E>>,
    <S as SenderTo<SendProbe<T, E>>>::Operation: Send,
    B: Send + LetBranch<T, E>,
    B::Next: Send + SenderTo<R>,
    <B::Next as SenderTo<R>>::Operation: Send,
    R: Send,
{
}

// SAFETY: through `&LetReceiver` only the environment can be reached: the
// downstream receiver's `env`, called through a shared reference (hence
// `R: Sync`); completing needs ownership.
unsafe impl<T, E, S, B, R: Sync> Sync for LetReceiver<T, E, (S, B, R)> {}

impl<T, E, M> Receiver<T, E> for LetReceiver<T, E, M> {
    fn set_value(self, value: T) {
        self.parent.notify(LetInput::Value(value))
    }
    fn set_error(self, error: E) {
        self.parent.notify(LetInput::Error(error))
    }
    fn set_stopped(self) {
        self.parent.notify(LetInput::Stopped)
    }
    fn set_panic(self, payload: PanicPayload) {
        self.parent.notify(LetInput::Panic(payload))
    }
    fn env(&self) -> impl Env<'_> {
        self.parent.env()
    }
}

type Recv<S, B, R> = LetReceiver<<S as Sender>::Output, <S as Sender>::Error, (S, B, R)>;
type Input<S> = LetInput<<S as Sender>::Output, <S as Sender>::Error>;
type FirstOp<S, B, R> = <S as SenderTo<Recv<S, B, R>>>::Operation;
type FirstOf<S, B, R> = First<FirstOp<S, B, R>, B, R>;
type StateOf<S, B, R> = LetState<S, B, R, FirstOp<S, B, R>, NextOp<S, B, R>>;
type NextOp<S, B, R> =
    <<B as LetBranch<<S as Sender>::Output, <S as Sender>::Error>>::Next as SenderTo<R>>::Operation;

/// Operation state of [`LetValue`], [`LetError`](crate::LetError) and
/// [`LetStopped`](crate::LetStopped).
pub struct LetOp<S, B, R>
where
    S: SenderTo<Recv<S, B, R>>,
    B: LetBranch<S::Output, S::Error>,
    B::Next: SenderTo<R>,
{
    inner: LetInner<S, B, R>,
    _pin: PhantomPinned,
}

struct LetInner<S, B, R>
where
    S: SenderTo<Recv<S, B, R>>,
    B: LetBranch<S::Output, S::Error>,
    B::Next: SenderTo<R>,
{
    /// Which member of `state` is live. Same access rule as `state`.
    live: UnsafeCell<u8>,
    /// Structurally pinned: the child operations live here. Written by
    /// `start` before the first op starts, then only by the first
    /// completion (which the first operation's own hand-off orders after
    /// `start`'s writes), except that the first operation reads
    /// `first.receiver`'s environment while it runs.
    state: UnsafeCell<StateOf<S, B, R>>,
}

impl<S, B, R> fmt::Debug for LetOp<S, B, R>
where
    S: SenderTo<Recv<S, B, R>>,
    B: LetBranch<S::Output, S::Error>,
    B::Next: SenderTo<R>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LetOp").finish_non_exhaustive()
    }
}

impl<S, B, R> LetOp<S, B, R>
where
    S: SenderTo<Recv<S, B, R>>,
    B: LetBranch<S::Output, S::Error>,
    B::Next: SenderTo<R>,
    R: Receiver<<B::Next as Sender>::Output, <B::Next as Sender>::Error>,
{
    pub(crate) fn new(sender: S, branch: B, receiver: R) -> Self {
        LetOp {
            inner: LetInner {
                live: UnsafeCell::new(INIT),
                state: UnsafeCell::new(LetState {
                    init: ManuallyDrop::new((sender, branch, receiver)),
                }),
            },
            _pin: PhantomPinned,
        }
    }
}

impl<S, B, R> LetInner<S, B, R>
where
    S: SenderTo<Recv<S, B, R>>,
    B: LetBranch<S::Output, S::Error>,
    B::Next: SenderTo<R>,
{
    /// `state`'s `first` member (live while `live` is `FIRST`).
    ///
    /// # Safety
    /// `st` is `state`'s pointer.
    unsafe fn first(st: *mut StateOf<S, B, R>) -> *mut FirstOf<S, B, R> {
        // SAFETY: a place projection, no read (`ManuallyDrop` is
        // `repr(transparent)`).
        unsafe { (&raw mut (*st).first).cast() }
    }
}

impl<S, B, R> Drop for LetInner<S, B, R>
where
    S: SenderTo<Recv<S, B, R>>,
    B: LetBranch<S::Output, S::Error>,
    B::Next: SenderTo<R>,
{
    fn drop(&mut self) {
        // SAFETY: `&mut self`: nothing runs. `live` says which member of
        // `state` holds a value; it is set to `EMPTY` first, so a
        // panicking drop does not leave it to be dropped again.
        unsafe {
            let live = self.live.with_mut(|l| core::mem::replace(&mut *l, EMPTY));
            self.state.with_mut(|st| match live {
                INIT => ptr::drop_in_place((&raw mut (*st).init).cast::<(S, B, R)>()),
                FIRST => ptr::drop_in_place(Self::first(st)),
                SECOND => ptr::drop_in_place((&raw mut (*st).second).cast::<NextOp<S, B, R>>()),
                _ => {}
            })
        }
    }
}

impl<S, B, R> LetInner<S, B, R>
where
    S: SenderTo<Recv<S, B, R>>,
    B: LetBranch<S::Output, S::Error>,
    B::Next: SenderTo<R>,
    R: Receiver<<B::Next as Sender>::Output, <B::Next as Sender>::Error>,
{
    /// The first operation has completed with `input`: drop it, then run
    /// the branch and either start the second operation or forward.
    ///
    /// Touches nothing of the op after handing control downstream.
    fn resume(this: ParentRef<Self>, input: Input<S>) {
        let inner = this.get();
        // SAFETY: only the first completion gets here (the first operation
        // completes once), and the first operation no longer touches itself
        // once it has called its receiver (PROTOCOL.md rule 5, even if its
        // `start` is still on the stack), so it may be dropped in place. `live` is `EMPTY` before
        // anything is moved or dropped (nothing is dropped twice if the
        // operation's drop unwinds: the branch and receiver are then locals).
        // Raw pointers only: no reference covers the first operation, whose
        // completing frames may still be on the stack.
        let (branch, receiver) = unsafe {
            inner.live.with_mut(|l| {
                assert!(*l == FIRST, "let: the first operation completed twice");
                *l = EMPTY;
            });
            inner.state.with_mut(|st| {
                let f = Self::first(st);
                let branch = ptr::read(&raw const (*f).branch);
                let receiver = ptr::read(&raw const (*f).receiver);
                ptr::drop_in_place(&raw mut (*f).op);
                (branch, receiver)
            })
        };
        match branch.branch(input) {
            LetStep::Run(next) => {
                let op = next.connect(receiver);
                // SAFETY: `state` is structurally pinned and ours alone (as
                // above) and holds nothing (`EMPTY`); the second operation
                // stays there, pinned, until the `LetOp` is dropped, which
                // its owner does only after the downstream receiver —
                // completed by the second operation — has been completed.
                unsafe {
                    let op: *mut NextOp<S, B, R> = inner.state.with_mut(|st| {
                        let p = (&raw mut (*st).second).cast::<NextOp<S, B, R>>();
                        p.write(op);
                        p
                    });
                    inner.live.with_mut(|l| *l = SECOND);
                    OperationState::start(Pin::new_unchecked(&mut *op));
                }
            }
            LetStep::Forward(out) => out.deliver(receiver),
        }
    }
}

impl<S, B, R> Notify<Input<S>> for LetInner<S, B, R>
where
    S: SenderTo<Recv<S, B, R>>,
    B: LetBranch<S::Output, S::Error>,
    B::Next: SenderTo<R>,
    R: Receiver<<B::Next as Sender>::Output, <B::Next as Sender>::Error>,
{
    fn notify(this: ParentRef<Self>, input: Input<S>) {
        // Wherever it happens (inside the first `start` or later, on any
        // thread): see the module docs, "Completion inside `start`".
        Self::resume(this, input);
    }
}

impl<S, B, R> NotifyEnv<Input<S>> for LetInner<S, B, R>
where
    S: SenderTo<Recv<S, B, R>>,
    B: LetBranch<S::Output, S::Error>,
    B::Next: SenderTo<R>,
    R: Receiver<<B::Next as Sender>::Output, <B::Next as Sender>::Error>,
{
    fn child_env(inner: &Self) -> CapturedEnv {
        // The downstream receiver, whose env produced the answers, stays in
        // this op until the first operation (the only one asking) has
        // completed, and that operation drops its registrations before
        // completing: that is what `capture` (and `detach`) ask.
        // SAFETY: while the first operation runs (`FIRST`), `receiver` is
        // only read (here); it is taken in `resume`, after the first
        // operation has completed and so stopped asking. Only the receiver
        // field is referenced, not the operation beside it.
        unsafe {
            if inner.live.with(|l| *l) != FIRST {
                return CapturedEnv::empty();
            }
            inner
                .state
                .with(|st| CapturedEnv::capture(&(*Self::first(st.cast_mut())).receiver.env()))
        }
    }
}

impl<S, B, R> OperationState for LetOp<S, B, R>
where
    S: SenderTo<Recv<S, B, R>>,
    B: LetBranch<S::Output, S::Error>,
    B::Next: SenderTo<R>,
    R: Receiver<<B::Next as Sender>::Output, <B::Next as Sender>::Error>,
{
    unsafe fn start(self: Pin<&mut Self>) {
        // SAFETY: projecting to `inner`, which we never move.
        let inner: Pin<&LetInner<S, B, R>> =
            unsafe { self.map_unchecked_mut(|op| &mut op.inner) }.into_ref();
        let inner_ref = inner.get_ref();
        // SAFETY: the op is pinned and, by `start`'s contract, alive until it
        // completes, which it does only after the first operation completed
        // (consuming the receiver holding this reference).
        let parent = unsafe { ErasedParentEnvRef::new(inner) };
        let receiver = LetReceiver {
            parent,
            _marker: PhantomData,
        };
        // SAFETY: no child exists yet: `state` is ours. The first operation
        // is structurally pinned in `state` and only dropped in `resume`,
        // after it has completed.
        let first: *mut FirstOp<S, B, R> = unsafe {
            // Moves the sender, branch and receiver out (`EMPTY` meanwhile,
            // so nothing is dropped twice if `connect` unwinds) and writes
            // the first operation, with them beside it, straight in.
            let live = inner_ref
                .live
                .with_mut(|l| core::mem::replace(&mut *l, EMPTY));
            assert!(live == INIT, "let: started twice");
            inner_ref.state.with_mut(|st| {
                let (sender, branch, next) = ptr::read((&raw const (*st).init).cast::<(S, B, R)>());
                let f = LetInner::<S, B, R>::first(st);
                f.write(First {
                    op: sender.connect(receiver),
                    branch,
                    receiver: next,
                });
                &raw mut (*f).op
            })
        };
        // SAFETY: as above (the cell is ours until the first op starts).
        unsafe { inner_ref.live.with_mut(|l| *l = FIRST) };
        // SAFETY: started once; kept alive and pinned as said above. The
        // first completion may run inside this call and complete the whole
        // op (which may then be freed): touch nothing afterwards.
        unsafe { OperationState::start(Pin::new_unchecked(&mut *first)) };
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    //! A first operation that completes on another thread while `start` is
    //! still running: that thread drops it and runs the second operation,
    //! racing `start`'s return (which touches nothing of the op).
    use crate::loom::sync::atomic::{AtomicUsize, Ordering};
    use crate::loom_fixtures::{OnThread, Out, handles, join_all};
    use crate::{OperationState, SenderExt, SenderTo, just};
    use ::loom::sync::Arc;
    use alloc::boxed::Box;

    /// The first operation completes on another thread before, during or
    /// after `start`'s return: the function runs once, the second
    /// operation once, the result is delivered once.
    #[test]
    fn loom_first_completes_while_start_runs() {
        ::loom::model(|| {
            let hs = handles();
            let (out, seen, completions) = Out::new();
            let calls = Arc::new(AtomicUsize::new(0));
            let c = calls.clone();
            let s = OnThread {
                handles: hs.clone(),
                value: 1u32,
                touch_after_spawn: false,
            }
            .let_value(move |v| {
                c.fetch_add(1, Ordering::Relaxed);
                just(v + 1)
            });
            let mut op = Box::pin(s.connect(out));
            // SAFETY: `op` is dropped only after the completing thread has
            // been joined, i.e. after the operation completed.
            unsafe { op.as_mut().start() };
            join_all(&hs);
            assert_eq!(calls.load(Ordering::Relaxed), 1);
            assert_eq!(completions.load(Ordering::Relaxed), 1);
            assert_eq!(seen.lock().unwrap().take(), Some(2));
            drop(op);
        });
    }
}
