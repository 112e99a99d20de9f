//! [`loop_with_state`]: a loop of senders that hands owned state from one
//! iteration to the next, in one operation state.
//!
//! exec-core's `repeat_effect_until` runs clones of one sender, so state
//! that changes hands between iterations (a connection's buffer, moved into
//! a read and given back with the bytes) would need a shared cell. This
//! loop instead calls `f(state)` for every iteration; the sender `f` returns
//! sends `ControlFlow::Continue(next_state)` or `ControlFlow::Break(value)`.
//!
//! # The loop
//! The same as exec-core's `repeat_effect_until.rs` (see `let_value.rs`
//! there for the handshake): each iteration's operation is connected in
//! `child`, dropping the previous one in place, so only the running
//! iteration is alive. An iteration that completes inside its own `start`
//! only stashes its outcome (`phase`: `IN_START` → `DEFERRED`); the loop
//! picks it up once `start` returned and goes round again, so iterations
//! that complete inline iterate instead of recursing. An iteration that
//! completes later (`phase` back to `IDLE` first) runs the loop from its
//! completion.

use core::fmt;
use core::marker::{PhantomData, PhantomPinned};
use core::ops::ControlFlow;
use core::pin::Pin;

use exec_core::{
    Env, ErasedParentRef, Notify, OperationState, PanicPayload, ParentRef, Receiver, SchedulerRef,
    Sender, SenderTo, StopToken, catch_unwind,
};

use crate::loom::cell::UnsafeCell;
use crate::loom::sync::atomic::{AtomicU8, Ordering};
use crate::probe::SendProbe;

/// Runs `f(state)`, then `f` of the state its sender continued with, and so
/// on, until an iteration sends `ControlFlow::Break(value)`; completes with
/// that `value`.
///
/// Each iteration owns the state it was given and hands it (or a new one)
/// back through `Continue`, so a connection loop keeps its buffer without
/// sharing it. Only the running iteration's operation is alive (each one is
/// connected in the place of the previous one): no allocation per
/// iteration, no stack growth when iterations complete inline.
///
/// # Completion
/// - value: the `Break` value of the last iteration.
/// - error: the first iteration error, forwarded; the loop ends.
/// - stopped: an iteration completed *stopped*, or a stop request was seen
///   between iterations.
///
/// # Cancellation
/// Each iteration sees the receiver's stop token (and its scheduler); the
/// token is also checked before each iteration.
///
/// # Panics
/// A panic in `f` or of an iteration ends the loop and is delivered through
/// [`Receiver::set_panic`].
///
/// # Example
/// ```
/// use core::ops::ControlFlow;
/// use exec_core::{just, sync_wait, SenderExt};
/// use exec_io::loop_with_state;
///
/// // Double a number until it exceeds 100, one sender per step.
/// let s = loop_with_state(3u32, |n| {
///     just(n * 2).then(|m| if m > 100 { ControlFlow::Break(m) } else { ControlFlow::Continue(m) })
/// });
/// assert_eq!(sync_wait(s), Ok(Some(192)));
/// ```
///
/// # See also
/// [`SenderExt::repeat_effect_until`](exec_core::SenderExt::repeat_effect_until)
/// (clones one sender), [`SenderExt::let_value`](exec_core::SenderExt::let_value).
pub fn loop_with_state<St, F, N, T>(state: St, f: F) -> LoopWithState<St, F>
where
    F: FnMut(St) -> N,
    N: Sender<Output = ControlFlow<T, St>>,
{
    LoopWithState { state, f }
}

/// Sender for the [`loop_with_state`] function.
#[must_use = "senders do nothing unless connected and started"]
#[derive(Clone)]
pub struct LoopWithState<St, F> {
    state: St,
    f: F,
}

impl<St, F> fmt::Debug for LoopWithState<St, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoopWithState").finish_non_exhaustive()
    }
}

impl<St, F, N, T> Sender for LoopWithState<St, F>
where
    F: FnMut(St) -> N,
    N: Sender<Output = ControlFlow<T, St>>,
{
    type Output = T;
    type Error = N::Error;
}

/// How an iteration completed.
enum Iteration<T, E> {
    Value(T),
    Error(E),
    Stopped,
    Panic(PanicPayload),
}

const IDLE: u8 = 0;
const IN_START: u8 = 1;
const DEFERRED: u8 = 2;

/// The downstream environment's answers, captured at `start`.
#[derive(Clone, Copy)]
struct LoopEnv {
    token: StopToken<'static>,
    scheduler: Option<SchedulerRef<'static>>,
}

impl<'a> Env<'a> for LoopEnv {
    fn stop_token(&self) -> StopToken<'a> {
        self.token
    }
    fn scheduler(&self) -> Option<SchedulerRef<'a>> {
        self.scheduler
    }
}

/// The receiver each iteration of a [`loop_with_state`] is connected to.
///
/// `M` is `(F, N, R)` and only decides when it may cross threads.
pub struct LoopReceiver<T, E, M> {
    parent: ErasedParentRef<Iteration<T, E>>,
    env: LoopEnv,
    _marker: PhantomData<M>,
}

impl<T, E, M> fmt::Debug for LoopReceiver<T, E, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoopReceiver").finish_non_exhaustive()
    }
}

// SAFETY: completing an iteration on another thread moves `T`/`E` there,
// drops the iteration's operation, runs `F` to make the next sender `N`,
// connects and starts it, and may complete `R` there: all `Send` by the
// bounds. The iteration's operation cannot be named here (it contains this
// receiver), so the bound asks whether the operation `N` makes for a
// `SendProbe` is `Send` (see `probe.rs`).
unsafe impl<T, E, F, N, R> Send for LoopReceiver<T, E, (F, N, R)>
where
    T: Send,
    E: Send,
    F: Send,
    N: Send + SenderTo<SendProbe<T, E>>,
    <N as SenderTo<SendProbe<T, E>>>::Operation: Send,
    R: Send,
{
}
// SAFETY: through `&LoopReceiver` only the captured environment (a `Sync`
// stop token and scheduler handle) is reachable.
unsafe impl<T, E, M> Sync for LoopReceiver<T, E, M> {}

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
        self.env
    }
}

type Recv<N, F, R> = LoopReceiver<<N as Sender>::Output, <N as Sender>::Error, (F, N, R)>;

impl<St, F, N, T, R> SenderTo<R> for LoopWithState<St, F>
where
    F: FnMut(St) -> N,
    N: Sender<Output = ControlFlow<T, St>> + SenderTo<Recv<N, F, R>>,
    R: Receiver<T, N::Error>,
{
    type Operation = LoopOp<St, F, N, R>;
    fn connect(self, receiver: R) -> Self::Operation {
        LoopOp {
            inner: LoopInner {
                phase: AtomicU8::new(IDLE),
                env: UnsafeCell::new(LoopEnv {
                    token: StopToken::never(),
                    scheduler: None,
                }),
                f: UnsafeCell::new(Some(self.f)),
                state: UnsafeCell::new(Some(self.state)),
                receiver: UnsafeCell::new(Some(receiver)),
                stash: UnsafeCell::new(None),
                child: UnsafeCell::new(None),
            },
            _pin: PhantomPinned,
        }
    }
}

/// Operation state of [`LoopWithState`].
pub struct LoopOp<St, F, N, R>
where
    N: SenderTo<Recv<N, F, R>>,
{
    inner: LoopInner<St, F, N, R>,
    _pin: PhantomPinned,
}

impl<St, F, N: SenderTo<Recv<N, F, R>>, R> fmt::Debug for LoopOp<St, F, N, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoopOp").finish_non_exhaustive()
    }
}

struct LoopInner<St, F, N, R>
where
    N: SenderTo<Recv<N, F, R>>,
{
    /// `IDLE`/`IN_START`/`DEFERRED`: who continues after an iteration.
    phase: AtomicU8,
    /// The downstream environment, captured at `start`.
    env: UnsafeCell<LoopEnv>,
    /// Makes each iteration's sender; dropped when the loop ends.
    f: UnsafeCell<Option<F>>,
    /// The initial state, taken by the first iteration.
    state: UnsafeCell<Option<St>>,
    receiver: UnsafeCell<Option<R>>,
    /// An inline iteration's outcome, handed to the loop by `phase`.
    stash: UnsafeCell<Option<Iteration<N::Output, N::Error>>>,
    /// Structurally pinned: the current iteration's operation.
    child: UnsafeCell<Option<N::Operation>>,
}

enum Finish<T, E> {
    Value(T),
    Error(E),
    Stopped,
    Panic(PanicPayload),
}

impl<St, F, N, T, R> LoopInner<St, F, N, R>
where
    F: FnMut(St) -> N,
    N: Sender<Output = ControlFlow<T, St>> + SenderTo<Recv<N, F, R>>,
    R: Receiver<T, N::Error>,
{
    /// Drops what the loop holds, then completes downstream; touches
    /// nothing afterwards. (A raw pointer, not `&Self`: completing may free
    /// the op.)
    fn finish(this: *const Self, how: Finish<T, N::Error>) {
        // SAFETY: `this` is the started op, alive until this completion.
        let this = unsafe { &*this };
        // SAFETY: only the single runner of the loop gets here; no
        // iteration is running (the last one completed).
        let receiver = unsafe {
            this.child.with_mut(|c| *c = None);
            this.f.with_mut(|f| *f = None);
            this.state.with_mut(|s| *s = None);
            this.receiver.with_mut(|r| (*r).take())
        };
        let receiver = receiver.expect("loop_with_state: completed twice");
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
    fn run(this: ParentRef<Self>, mut done: Option<Iteration<N::Output, N::Error>>) {
        let inner = this.get();
        loop {
            // SAFETY: the loop runner owns `child` and `state` between
            // iterations; the finished iteration touches itself no more.
            unsafe { inner.child.with_mut(|c| *c = None) };
            let state = match done.take() {
                // SAFETY: as above (the first round).
                None => match inner.state.with_mut(|s| unsafe { (*s).take() }) {
                    Some(s) => s,
                    None => return,
                },
                Some(Iteration::Value(ControlFlow::Continue(s))) => s,
                Some(Iteration::Value(ControlFlow::Break(v))) => {
                    return Self::finish(inner, Finish::Value(v));
                }
                Some(Iteration::Error(e)) => return Self::finish(inner, Finish::Error(e)),
                Some(Iteration::Stopped) => return Self::finish(inner, Finish::Stopped),
                Some(Iteration::Panic(p)) => return Self::finish(inner, Finish::Panic(p)),
            };
            // SAFETY: written once at start, before any iteration.
            let env = inner.env.with(|e| unsafe { *e });
            if env.token.stop_requested() {
                drop(state);
                return Self::finish(inner, Finish::Stopped);
            }
            let f = inner.f.with_mut(|f| f);
            // SAFETY: the loop runner owns `f` between iterations.
            let next = match catch_unwind(|| unsafe { (*f).as_mut().expect("loop: f")(state) }) {
                Ok(s) => s,
                Err(p) => return Self::finish(inner, Finish::Panic(p)),
            };
            // SAFETY: the op is started and completes only after this
            // iteration has completed (consuming the receiver).
            let parent = unsafe { ErasedParentRef::new(this.get_pin()) };
            let op = next.connect(LoopReceiver {
                parent,
                env,
                _marker: PhantomData,
            });
            // SAFETY: no iteration is running: `child` is ours; the new
            // operation stays pinned there until the next round drops it,
            // after it has completed.
            let child: *mut N::Operation = unsafe {
                inner.child.with_mut(|c| {
                    *c = Some(op);
                    (*c).as_mut().expect("just written") as *mut _
                })
            };
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

impl<St, F, N, T, R> Notify<Iteration<N::Output, N::Error>> for LoopInner<St, F, N, R>
where
    F: FnMut(St) -> N,
    N: Sender<Output = ControlFlow<T, St>> + SenderTo<Recv<N, F, R>>,
    R: Receiver<T, N::Error>,
{
    fn notify(this: ParentRef<Self>, it: Iteration<N::Output, N::Error>) {
        let inner = this.get();
        // SAFETY: an iteration completes once; until `phase` hands over,
        // this is the only access to the stash.
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

impl<St, F, N, T, R> OperationState for LoopOp<St, F, N, R>
where
    F: FnMut(St) -> N,
    N: Sender<Output = ControlFlow<T, St>> + SenderTo<Recv<N, F, R>>,
    R: Receiver<T, N::Error>,
{
    unsafe fn start(self: Pin<&mut Self>) {
        // SAFETY: projecting to `inner`, which is never moved.
        let inner: Pin<&LoopInner<St, F, N, R>> =
            unsafe { self.map_unchecked_mut(|op| &mut op.inner) }.into_ref();
        let i = inner.get_ref();
        // The downstream receiver stays in this op until the loop finishes,
        // after the last iteration completed; iterations drop their stop
        // callbacks before completing: what `detach` asks.
        // SAFETY: see above; nothing else runs yet, the cells are ours.
        unsafe {
            let env = i.receiver.with(|r| {
                (*r).as_ref().map(|r| {
                    let env = r.env();
                    LoopEnv {
                        token: env.stop_token().detach(),
                        scheduler: env.scheduler().map(|s| s.detach()),
                    }
                })
            });
            if let Some(env) = env {
                i.env.with_mut(|e| *e = env);
            }
        }
        // SAFETY: started, so pinned and alive until the loop finishes.
        let this = unsafe { ParentRef::new(inner) };
        LoopInner::run(this, None);
    }
}
