//! `AnySender<T, E>`: a type-erased sender, one allocation per operation.
//!
//! # Layout
//! [`AnySender::new`] puts a *slot* in a frame: an enum that holds the
//! sender until the operation starts and the sender's operation state after,
//! so the frame is sized for the larger of the two and is the only
//! allocation. Frames come from a per-thread cache of size classes
//! (`frame_cache`), so a thread that keeps making and finishing erased
//! senders (a recursive fork-join) reuses the same few blocks instead of
//! calling the global allocator. The inner operation's receiver type
//! ([`AnyReceiver`]) does not depend on the outer receiver, so the inner
//! operation's type is known when the frame is made. Connecting moves the
//! frame pointer into [`AnyOp`] next to the real receiver; `start` connects
//! the inner operation in place inside the frame, with an [`AnyReceiver`]
//! that refers back to the pinned `AnyOp` through an [`ErasedParentRef`].
//! When the inner operation completes, the frame is freed (back to the
//! completing thread's cache) before the completion is forwarded.
//!
//! # Stack depth
//! Starting the inner operation and delivering its completion both go
//! through the thread's trampoline (`context::trampoline`): they run inline
//! unless 16 of them are already nested on this thread, in which case they
//! are queued and run when the stack has unwound to the outermost one. A
//! recursion built through `AnySender` (each level a boxed sender whose
//! continuation boxes the next level) therefore uses bounded stack, both
//! while starting and while completing. (A completion that arrives while
//! the inner `start` is still running is delivered from the trampoline entry
//! of that start, once it has returned, rather than from a second entry.)
//! Without the `std` feature there is no trampoline and such recursion
//! nests on the stack.

use core::alloc::Layout;
use core::fmt;
use core::marker::PhantomPinned;
use core::pin::Pin;
use core::ptr::NonNull;

use crate::context::trampoline::{ANY_SENDER_MAX_DEPTH, Task, submit};
use crate::env::CapturedEnv;
use crate::loom::cell::UnsafeCell;
use crate::loom::sync::atomic::{AtomicU8, Ordering};
use crate::{
    Env, ErasedParentRef, Notify, OperationState, PanicPayload, ParentRef, Receiver, Sender,
    SenderTo,
};

/// A type-erased sender of `T` or error `E`, `Send`, made with
/// [`SenderExt::boxed`](crate::SenderExt::boxed) or [`AnySender::new`].
///
/// Use it where a sender's type cannot be written or would be infinite:
/// recursion, collections of different senders, trait objects.
///
/// # Cost
/// At most one allocation, made by `new`/`boxed`: a frame sized for the
/// larger of the sender and its operation state, in which the operation is
/// connected at `start`. Connecting and running allocate nothing more; the
/// frame is released when the erased operation completes (or when the
/// unconnected sender is dropped). Released frames up to 1 KiB are kept in
/// a per-thread cache and handed to the next `AnySender` of a similar size
/// made on that thread, so steady recursion allocates nothing.
///
/// # Completion
/// As the erased sender: value, error, or stopped, forwarded unchanged. The
/// completion may be delivered from the thread's trampoline (see
/// [`TrampolineScheduler`](crate::TrampolineScheduler)) rather than nested
/// in the inner completion, when inline completions are nested deeply.
///
/// # Cancellation
/// The receiver's environment (its stop token) is forwarded to the erased
/// sender, captured when the operation starts.
///
/// # Panics
/// Panics of the erased sender are forwarded through
/// [`Receiver::set_panic`](crate::Receiver::set_panic).
///
/// # Example
/// ```
/// use exec_core::{just, sync_wait, AnySender, SenderExt};
/// use core::convert::Infallible;
///
/// // A recursive sender: the type of `count(n)` would otherwise be infinite.
/// fn count(n: u64) -> AnySender<u64, Infallible> {
///     if n == 0 {
///         just(0).boxed()
///     } else {
///         just(n).let_value(move |n| count(n - 1).then(move |acc| acc + n)).boxed()
///     }
/// }
/// assert_eq!(sync_wait(count(100)), Ok(Some(5050)));
/// ```
///
/// # See also
/// [`SenderExt::boxed`](crate::SenderExt::boxed),
/// [`TrampolineScheduler`](crate::TrampolineScheduler).
#[must_use = "senders do nothing unless connected and started"]
pub struct AnySender<T, E> {
    slot: Frame<T, E>,
}

impl<T, E> AnySender<T, E> {
    /// Erases the type of `sender` (one allocation).
    pub fn new<S>(sender: S) -> Self
    where
        S: Sender<Output = T, Error = E> + SenderTo<AnyReceiver<T, E>> + Send + 'static,
        S::Operation: Send + 'static,
        T: 'static,
        E: 'static,
    {
        AnySender {
            slot: Frame::new(Slot::<S, T, E> {
                state: SlotState::Sender(sender),
                _pin: PhantomPinned,
                _types: core::marker::PhantomData,
            }),
        }
    }
}

/// The one allocation behind an [`AnySender`]: a pinned, type-erased
/// [`Slot`] in a frame from [`frame_cache`](super::frame_cache) (a
/// `Pin<Box<dyn ErasedSlot>>` whose memory is recycled per thread).
struct Frame<T, E> {
    /// Owned; allocated by `frame_cache::alloc` with the pointee's layout,
    /// initialized, never moved until dropped in place by `Drop`.
    ptr: NonNull<dyn ErasedSlot<T, E> + Send>,
}

// SAFETY: `Frame` owns its pointee like a `Box` does, and the pointee is
// `Send` (the trait object says so).
unsafe impl<T, E> Send for Frame<T, E> {}

impl<T, E> Frame<T, E> {
    fn new<X: ErasedSlot<T, E> + Send + 'static>(slot: X) -> Self {
        let raw = super::frame_cache::alloc(Layout::new::<X>()).cast::<X>();
        // SAFETY: freshly allocated for an `X`: valid and aligned.
        unsafe { raw.as_ptr().write(slot) };
        let ptr: NonNull<dyn ErasedSlot<T, E> + Send> = raw;
        Frame { ptr }
    }

    /// The slot, pinned (it never moves until dropped).
    fn pin_mut(&mut self) -> Pin<&mut (dyn ErasedSlot<T, E> + Send)> {
        // SAFETY: owned and initialized (field invariant); `&mut self` makes
        // the borrow unique; the pointee is never moved.
        unsafe { Pin::new_unchecked(self.ptr.as_mut()) }
    }
}

impl<T, E> Drop for Frame<T, E> {
    fn drop(&mut self) {
        // SAFETY: the pointee is initialized and owned (field invariant);
        // the layout is read before it is dropped, and the memory is freed
        // with the layout it was allocated with.
        unsafe {
            let layout = Layout::for_value(self.ptr.as_ref());
            core::ptr::drop_in_place(self.ptr.as_ptr());
            super::frame_cache::dealloc(self.ptr.cast(), layout);
        }
    }
}

impl<T, E> fmt::Debug for AnySender<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnySender").finish_non_exhaustive()
    }
}

impl<T, E> Sender for AnySender<T, E> {
    type Output = T;
    type Error = E;
}

impl<T, E, R> SenderTo<R> for AnySender<T, E>
where
    T: Send,
    E: Send,
    R: Receiver<T, E> + Send,
{
    type Operation = AnyOp<T, E, R>;
    fn connect(self, receiver: R) -> AnyOp<T, E, R> {
        AnyOp {
            inner: AnyInner {
                phase: AtomicU8::new(IDLE),
                task: Task::new(),
                slot: UnsafeCell::new(Some(self.slot)),
                receiver: UnsafeCell::new(Some(receiver)),
                stash: UnsafeCell::new(None),
            },
            _pin: PhantomPinned,
        }
    }
}

/// How the erased operation completed.
enum Outcome<T, E> {
    Value(T),
    Error(E),
    Stopped,
    Panic(PanicPayload),
}

/// The heap slot behind an [`AnySender`].
trait ErasedSlot<T, E> {
    /// Connects the sender to `receiver` in place and starts it.
    ///
    /// # Safety
    /// Called once; the slot stays pinned and alive until the operation has
    /// completed (the contract of [`OperationState::start`]).
    unsafe fn start(self: Pin<&mut Self>, receiver: AnyReceiver<T, E>);
}

enum SlotState<S, O> {
    Sender(S),
    Op(O),
    Empty,
}

struct Slot<S: SenderTo<AnyReceiver<T, E>>, T, E> {
    /// The sender, then (structurally pinned) its operation.
    state: SlotState<S, S::Operation>,
    _pin: PhantomPinned,
    _types: core::marker::PhantomData<fn() -> (T, E)>,
}

impl<S: SenderTo<AnyReceiver<T, E>>, T, E> ErasedSlot<T, E> for Slot<S, T, E> {
    unsafe fn start(self: Pin<&mut Self>, receiver: AnyReceiver<T, E>) {
        // SAFETY: the sender is not pinned (moved out below); the operation
        // is written in place and never moved after.
        let this = unsafe { self.get_unchecked_mut() };
        let state: *mut SlotState<S, S::Operation> = &mut this.state;
        // Moves only the sender out (not the whole state, which is sized for
        // the operation) and writes the operation straight into the state,
        // so no copy of the whole slot is made on the way.
        // SAFETY: `state` is valid; the sender is read out once and the
        // state is overwritten with `Empty` (nothing dropped) before
        // anything can unwind, so it is never dropped twice.
        let sender = unsafe {
            let SlotState::Sender(sender) = &*state else {
                unreachable!("AnySender started twice")
            };
            let sender = core::ptr::read(sender);
            core::ptr::write(state, SlotState::Empty);
            sender
        };
        // SAFETY: the state is `Empty` (nothing to drop); written in place.
        unsafe { core::ptr::write(state, SlotState::Op(sender.connect(receiver))) };
        // SAFETY: just written.
        let SlotState::Op(op) = (unsafe { &mut *state }) else {
            unreachable!()
        };
        // SAFETY: pinned in the frame, which the `AnyOp` frees only after
        // the operation has completed (and keeps alive until then by
        // `start`'s contract).
        unsafe { OperationState::start(Pin::new_unchecked(op)) }
    }
}

/// The receiver the erased sender is connected to: refers back to the
/// [`AnyOp`] that holds the real receiver.
pub struct AnyReceiver<T, E> {
    parent: ErasedParentRef<Outcome<T, E>>,
    /// The real receiver's environment, captured at start.
    env: CapturedEnv,
}

impl<T, E> fmt::Debug for AnyReceiver<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnyReceiver").finish_non_exhaustive()
    }
}

// SAFETY: an `AnyReceiver` only exists inside an `AnyOp<T, E, R>` with
// `R: Send` (see the `SenderTo` impl). Completing it on another thread moves
// the `T`/`E` there and completes `R` there, all `Send`.
unsafe impl<T: Send, E: Send> Send for AnyReceiver<T, E> {}
// SAFETY: through `&AnyReceiver` only the captured environment (a `Sync`
// stop token) is reachable.
unsafe impl<T, E> Sync for AnyReceiver<T, E> {}

impl<T, E> Receiver<T, E> for AnyReceiver<T, E> {
    fn set_value(self, value: T) {
        self.parent.notify(Outcome::Value(value))
    }
    fn set_error(self, error: E) {
        self.parent.notify(Outcome::Error(error))
    }
    fn set_stopped(self) {
        self.parent.notify(Outcome::Stopped)
    }
    fn set_panic(self, payload: PanicPayload) {
        self.parent.notify(Outcome::Panic(payload))
    }
    fn env(&self) -> impl Env<'_> {
        self.env
    }
}

/// Operation state of [`AnySender`].
pub struct AnyOp<T, E, R> {
    inner: AnyInner<T, E, R>,
    _pin: PhantomPinned,
}

impl<T, E, R> fmt::Debug for AnyOp<T, E, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnyOp").finish_non_exhaustive()
    }
}

/// `run_start` is not inside the inner operation's `start`.
const IDLE: u8 = 0;
/// `run_start` is inside the inner operation's `start`.
const IN_START: u8 = 1;
/// The inner operation completed inside its `start`; `run_start` takes over.
const DEFERRED: u8 = 2;

struct AnyInner<T, E, R> {
    /// Who handles the inner completion: `run_start` if it happens inside the
    /// inner `start` (then the completion only stashes), else the completion
    /// itself. Same protocol as `let_value`'s (see its module docs). Either
    /// way the inner operation is dropped *before* the completion is
    /// forwarded, so nested erased operations are freed level by level, not
    /// by one recursive drop at the end.
    phase: AtomicU8,
    /// Trampoline node, used first to start, then to deliver (never both
    /// queued at once: delivery follows the inner completion, which follows
    /// the start).
    task: Task,
    /// The box; its contents are pinned. Touched by `run_start`, then by the
    /// single handler of the inner completion.
    /// `None` once the inner operation has completed and been freed.
    slot: UnsafeCell<Option<Frame<T, E>>>,
    /// Taken once, by `run_deliver`.
    receiver: UnsafeCell<Option<R>>,
    /// Written by the inner completion, read by its handler and then by
    /// `run_deliver`.
    stash: UnsafeCell<Option<Outcome<T, E>>>,
}

impl<T, E, R: Receiver<T, E>> AnyInner<T, E, R> {
    /// Connects and starts the inner operation (from the trampoline).
    ///
    /// # Safety
    /// `ctx` is a started, pinned `AnyInner<T, E, R>`; called once.
    unsafe fn run_start(ctx: *const ()) {
        // SAFETY: per the contract.
        let inner: Pin<&Self> = unsafe { Pin::new_unchecked(&*(ctx as *const Self)) };
        // The real receiver stays in this op until the inner operation has
        // completed, and that operation drops its stop callbacks before
        // completing: that is what `detach` asks.
        // SAFETY: see above; no inner operation exists yet.
        let env = inner.receiver.with(|r| unsafe {
            match &*r {
                Some(r) => CapturedEnv::capture(&r.env()),
                None => CapturedEnv::empty(),
            }
        });
        // SAFETY: the op is started, hence pinned and alive until it
        // completes, which happens only after the inner operation has
        // consumed this receiver.
        let parent = unsafe { ErasedParentRef::new(inner) };
        // SAFETY: no inner operation exists yet: the slot is ours.
        let slot: *mut Option<Frame<T, E>> = inner.slot.with_mut(|s| s);
        inner.phase.store(IN_START, Ordering::Relaxed);
        // SAFETY: started once; the frame lives as long as this op.
        unsafe {
            let Some(frame) = &mut *slot else {
                unreachable!("AnySender: started twice")
            };
            frame.pin_mut().start(AnyReceiver { parent, env })
        }
        if inner
            .phase
            .compare_exchange(IN_START, IDLE, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            // Completes later; from here on the op may be gone.
            return;
        }
        // Completed inside `start`: `run_start` is itself running from the
        // trampoline, one level deeper than its caller, and its `start` has
        // returned, so the completion is delivered from here, at this level,
        // instead of through a second trampoline entry. (Completions that
        // arrive later go through `finish`, which uses the trampoline; a
        // chain of erased senders completing inline still enters the
        // trampoline once per level, through each one's `run_start`, so the
        // stack stays bounded.)
        // SAFETY: completed inside `start`; `phase` handed it to us.
        unsafe {
            Self::release_frame(ctx);
            Self::run_deliver(ctx)
        }
    }

    /// Frees the frame of the completed inner operation (back to this
    /// thread's frame cache, for the next erased sender made here).
    ///
    /// # Safety
    /// `ctx` is a started `AnyInner<T, E, R>` whose inner operation has
    /// completed; called once, by the single handler of that completion.
    unsafe fn release_frame(ctx: *const ()) {
        let inner = ctx as *const Self;
        // SAFETY: the handler owns the slot now; the inner operation no
        // longer touches itself.
        unsafe {
            let slot: *mut Option<Frame<T, E>> = (*inner).slot.with_mut(|s| s);
            drop((*slot).take());
        }
    }

    /// The inner operation has completed (its outcome is stashed): drop it
    /// and deliver the outcome through the trampoline.
    ///
    /// # Safety
    /// `ctx` is a started `AnyInner<T, E, R>` whose inner operation has
    /// completed; called once, by the single handler of that completion.
    unsafe fn finish(ctx: *const ()) {
        let inner = ctx as *const Self;
        // SAFETY: per the contract.
        unsafe { Self::release_frame(ctx) };
        // SAFETY: the op has not completed, so it stays alive until
        // `run_deliver` has run; the task node is free (its start has run).
        unsafe { submit(&(*inner).task, Self::run_deliver, ctx, ANY_SENDER_MAX_DEPTH) }
    }

    /// Delivers the stashed completion to the real receiver.
    ///
    /// # Safety
    /// `ctx` is a started, pinned `AnyInner<T, E, R>` whose inner operation
    /// has completed; called once.
    unsafe fn run_deliver(ctx: *const ()) {
        let inner = ctx as *const Self;
        // SAFETY: the inner operation completed (stash written, once); this
        // runs once; nobody else touches these cells any more.
        let (outcome, receiver) = unsafe {
            (
                (*inner).stash.with_mut(|s| (*s).take()),
                (*inner).receiver.with_mut(|r| (*r).take()),
            )
        };
        let (Some(outcome), Some(receiver)) = (outcome, receiver) else {
            unreachable!("AnySender: completed twice")
        };
        match outcome {
            Outcome::Value(v) => receiver.set_value(v),
            Outcome::Error(e) => receiver.set_error(e),
            Outcome::Stopped => receiver.set_stopped(),
            Outcome::Panic(p) => receiver.set_panic(p),
        }
    }
}

impl<T, E, R: Receiver<T, E>> Notify<Outcome<T, E>> for AnyInner<T, E, R> {
    fn notify(this: ParentRef<Self>, outcome: Outcome<T, E>) {
        let inner = this.get();
        // SAFETY: the inner operation completes once; until `phase` hands
        // over, this is the only access to the stash.
        inner.stash.with_mut(|s| unsafe { *s = Some(outcome) });
        if inner
            .phase
            .compare_exchange(IN_START, DEFERRED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            return;
        }
        let ctx = inner as *const Self as *const ();
        // SAFETY: `run_start` has returned: we are the single handler.
        unsafe { Self::finish(ctx) }
    }
}

impl<T, E, R: Receiver<T, E>> OperationState for AnyOp<T, E, R> {
    unsafe fn start(self: Pin<&mut Self>) {
        let inner: &AnyInner<T, E, R> = &self.into_ref().get_ref().inner;
        let ctx = inner as *const AnyInner<T, E, R> as *const ();
        // SAFETY: by `start`'s contract the op stays pinned and alive until
        // it completes, which happens after `run_start` has run.
        unsafe {
            submit(
                &inner.task,
                AnyInner::<T, E, R>::run_start,
                ctx,
                ANY_SENDER_MAX_DEPTH,
            )
        }
    }
}
