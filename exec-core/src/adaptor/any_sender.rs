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
//! completing thread's cache) before the completion is forwarded — even if
//! the inner operation completed inside its own `start`, which every
//! operation allows (after calling its receiver it touches nothing of
//! itself). So no hand-shake between the start and the completion is
//! needed: after starting the inner operation, `AnyOp` touches nothing.
//!
//! # Stack depth
//! Starting the inner operation and delivering its completion both go
//! through the thread's trampoline (`context::trampoline`): they run inline
//! unless 16 of them are already nested on this thread, in which case they
//! are queued and run when the stack has unwound to the outermost one. A
//! recursion built through `AnySender` (each level a boxed sender whose
//! continuation boxes the next level) therefore uses bounded stack, both
//! while starting and while completing. A delivery that runs inline carries
//! the outcome on the stack; only a queued one stores it in the operation.
//! Without the `std` feature there is no trampoline and such recursion
//! nests on the stack.

use core::alloc::Layout;
use core::fmt;
use core::marker::{PhantomData, PhantomPinned};
use core::mem::ManuallyDrop;
use core::pin::Pin;
use core::ptr::{self, NonNull};

use crate::context::trampoline::{ANY_SENDER_MAX_DEPTH, Task, nest, queue, submit};
use crate::env::CapturedEnv;
use crate::loom::cell::UnsafeCell;
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
            slot: SlotFns::<S, T, E>::frame(sender),
        }
    }
}

/// The one allocation behind an [`AnySender`]: a pinned [`Slot`] in a
/// frame from [`frame_cache`](super::frame_cache), with the functions that
/// know its type (a hand-made vtable: starting, and dropping + freeing,
/// each one call that knows the slot's layout at compile time).
struct Frame<T, E> {
    /// Owned; a `Slot<S, S::Operation>` for the `S` the vtable was made
    /// for, allocated by `frame_cache::alloc` with its layout, initialized,
    /// never moved until released by `Drop`.
    ptr: NonNull<u8>,
    /// Points to the promoted `SlotFns::<S, T, E>::VTABLE` (a `'static`
    /// constant; a raw pointer only so `Frame` needs no `T: 'static` bound).
    vtable: *const SlotVTable<T, E>,
}

// SAFETY: `Frame` owns its slot like a `Box` does; `SlotFns::frame` only
// makes frames for `Send` senders whose operations are `Send`, and the
// vtable is an immutable constant.
unsafe impl<T, E> Send for Frame<T, E> {}

/// The functions of one slot type.
struct SlotVTable<T, E> {
    /// Connects the sender to the receiver in place and starts it.
    ///
    /// Safety: called once, with the frame's pointer; the slot stays
    /// pinned and alive until the operation has completed.
    start: unsafe fn(NonNull<u8>, AnyReceiver<T, E>),
    /// Drops what the slot holds (sender, operation or nothing) in place
    /// and frees the frame.
    ///
    /// Safety: called once, with the frame's pointer, when nothing uses the
    /// slot any more.
    release: unsafe fn(NonNull<u8>),
}

impl<T, E> Frame<T, E> {
    /// Connects and starts the erased sender of the frame at `this` in place.
    ///
    /// Takes a raw pointer, not `&self`: the operation may complete inside
    /// this call, and its completion frees the frame and overwrites the
    /// place `this` points to; nothing here is touched after the call.
    ///
    /// # Safety
    /// `this` points to a live frame. Called once; the frame is not dropped
    /// before the operation has completed (its completion may drop it).
    #[inline]
    unsafe fn start(this: *const Self, receiver: AnyReceiver<T, E>) {
        // SAFETY: `this` is live (contract); the fields are copied out
        // before the call. `vtable` points to the constant made with this
        // frame; the caller's promise is the one `start` asks for.
        unsafe {
            let (ptr, vtable) = ((*this).ptr, (*this).vtable);
            ((*vtable).start)(ptr, receiver)
        }
    }
}

impl<T, E> Drop for Frame<T, E> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: the frame is owned and initialized (field invariant) and
        // released once, here.
        unsafe { ((*self.vtable).release)(self.ptr) }
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
                task: Task::new(),
                slot: ManuallyDrop::new(UnsafeCell::new(Some(self.slot))),
                receiver: UnsafeCell::new(Some(receiver)),
                stash: ManuallyDrop::new(UnsafeCell::new(None)),
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

/// `Slot::tag`: the slot holds the sender.
const SENDER: u8 = 0;
/// `Slot::tag`: the slot holds the operation (structurally pinned).
const OP: u8 = 1;
/// `Slot::tag`: the slot holds nothing (while connecting).
const EMPTY: u8 = 2;

/// The heap slot behind an [`AnySender`]: the sender until the operation
/// starts, then the operation, in the same bytes. A tag and a union rather
/// than an enum, so that making the frame copies only the sender's bytes,
/// not the whole (operation-sized) slot.
struct Slot<S, O> {
    /// `SENDER`, `OP` or `EMPTY`: which field of `data` is initialized.
    tag: u8,
    data: SlotData<S, O>,
    _pin: PhantomPinned,
}

union SlotData<S, O> {
    sender: ManuallyDrop<S>,
    op: ManuallyDrop<O>,
}

/// The functions of a slot for sender `S` (never instantiated).
struct SlotFns<S, T, E>(PhantomData<fn(S, T, E)>);

impl<S: SenderTo<AnyReceiver<T, E>>, T, E> SlotFns<S, T, E> {
    const LAYOUT: Layout = Layout::new::<Slot<S, S::Operation>>();
    const VTABLE: SlotVTable<T, E> = SlotVTable {
        start: Self::start,
        release: Self::release,
    };

    /// A frame holding `sender`.
    #[inline]
    fn frame(sender: S) -> Frame<T, E>
    where
        S: Send,
        S::Operation: Send,
    {
        let raw = super::frame_cache::alloc(Self::LAYOUT)
            .cast::<Slot<S, S::Operation>>()
            .as_ptr();
        // SAFETY: freshly allocated for a `Slot`: valid and aligned. Only
        // the tag and the sender's bytes are written.
        unsafe {
            ptr::addr_of_mut!((*raw).tag).write(SENDER);
            ptr::addr_of_mut!((*raw).data.sender).write(ManuallyDrop::new(sender));
        }
        Frame {
            // SAFETY: from a `NonNull`.
            ptr: unsafe { NonNull::new_unchecked(raw.cast()) },
            vtable: &Self::VTABLE,
        }
    }

    /// See [`SlotVTable::start`].
    unsafe fn start(ptr: NonNull<u8>, receiver: AnyReceiver<T, E>) {
        let slot = ptr.cast::<Slot<S, S::Operation>>().as_ptr();
        // SAFETY: `ptr` is a live slot of this type (vtable invariant),
        // reached only through raw pointers here. The sender is read out
        // once and the tag set to `EMPTY` before anything can unwind, so it
        // is never dropped twice; the operation is written in place and
        // pinned there (never moved until `release` drops it in place).
        unsafe {
            assert!((*slot).tag == SENDER, "AnySender started twice");
            let sender = ManuallyDrop::into_inner(ptr::addr_of!((*slot).data.sender).read());
            (*slot).tag = EMPTY;
            let op = ptr::addr_of_mut!((*slot).data.op).cast::<S::Operation>();
            op.write(sender.connect(receiver));
            (*slot).tag = OP;
            // Kept alive and pinned until it completes: the `AnyOp` frees
            // the frame only in the completion (the contract of `start`).
            OperationState::start(Pin::new_unchecked(&mut *op))
        }
    }

    /// See [`SlotVTable::release`].
    unsafe fn release(ptr: NonNull<u8>) {
        /// Frees the frame even if a destructor unwinds (generic, so the
        /// layout, hence the size class, is a constant).
        struct Free<S: SenderTo<AnyReceiver<T, E>>, T, E>(
            NonNull<u8>,
            PhantomData<SlotFns<S, T, E>>,
        );
        impl<S: SenderTo<AnyReceiver<T, E>>, T, E> Drop for Free<S, T, E> {
            #[inline]
            fn drop(&mut self) {
                // SAFETY: allocated by `frame_cache::alloc(LAYOUT)`; freed
                // once, after its contents were dropped.
                unsafe { super::frame_cache::dealloc(self.0, SlotFns::<S, T, E>::LAYOUT) }
            }
        }
        let _free = Free::<S, T, E>(ptr, PhantomData);
        let slot = ptr.cast::<Slot<S, S::Operation>>().as_ptr();
        // SAFETY: a live slot of this type that nothing uses any more
        // (contract); the tag says which field is initialized.
        unsafe {
            match (*slot).tag {
                SENDER => ptr::drop_in_place(ptr::addr_of_mut!((*slot).data.sender).cast::<S>()),
                OP => ptr::drop_in_place(ptr::addr_of_mut!((*slot).data.op).cast::<S::Operation>()),
                _ => {}
            }
        }
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

// `repr(C)`, the node first: the trampoline hands `run_start` and
// `run_deliver` the node, and they cast it back to this state (see
// `trampoline::submit`).
#[repr(C)]
struct AnyInner<T, E, R> {
    /// Trampoline node, used first to start, then (only if delivery has to
    /// be deferred) to deliver; never both queued at once: delivery follows
    /// the inner completion, which follows the start.
    task: Task,
    /// The box; its contents are pinned. Touched by `run_start`, then by the
    /// inner completion (`notify`), which frees it.
    /// `None` once the inner operation has completed and been freed.
    /// Dropped by `AnyInner`'s `Drop`, only if `receiver` is still there.
    slot: ManuallyDrop<UnsafeCell<Option<Frame<T, E>>>>,
    /// Taken once, by `deliver`, after `slot` and `stash` were emptied: so
    /// `None` here means there is nothing else to drop either.
    receiver: UnsafeCell<Option<R>>,
    /// The outcome, kept here only while its delivery is queued on the
    /// trampoline (the thread was nested too deeply to deliver at once).
    /// Dropped as `slot` is.
    stash: ManuallyDrop<UnsafeCell<Option<Outcome<T, E>>>>,
}

impl<T, E, R> Drop for AnyInner<T, E, R> {
    /// A completed operation (the usual case) holds nothing: one check of
    /// `receiver` instead of one per field.
    #[inline]
    fn drop(&mut self) {
        // SAFETY: `&mut self`: nothing else touches the cells.
        if self.receiver.with(|r| unsafe { (*r).is_none() }) {
            return;
        }
        // Never started (or dropped against `start`'s contract): the frame
        // may still be there.
        // SAFETY: dropped once, here; not used afterwards.
        unsafe {
            ManuallyDrop::drop(&mut self.slot);
            ManuallyDrop::drop(&mut self.stash);
        }
    }
}

impl<T, E, R: Receiver<T, E>> AnyInner<T, E, R> {
    /// Connects and starts the inner operation (from the trampoline).
    ///
    /// Touches nothing of the op once the inner `start` has been called: the
    /// inner operation may complete inside it, and the receiver's
    /// completion may free this op.
    ///
    /// # Safety
    /// `task` is the node of a started, pinned `AnyInner<T, E, R>`, derived
    /// from a pointer to the whole state; called once.
    unsafe fn run_start(task: *const Task) {
        // SAFETY: per the contract; the node is the first field (`repr(C)`).
        let inner: Pin<&Self> = unsafe { Pin::new_unchecked(&*task.cast::<Self>()) };
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
        // SAFETY: started once; the frame lives until the inner operation
        // completes. No reference into `slot` is held across the call (the
        // completion frees the frame and empties the slot, maybe inside it).
        unsafe {
            let frame: *const Frame<T, E> = match &*slot {
                Some(frame) => frame,
                None => unreachable!("AnySender: started twice"),
            };
            Frame::start(frame, AnyReceiver { parent, env })
        }
    }

    /// Delivers `outcome` to the real receiver.
    ///
    /// # Safety
    /// `inner` is a started, pinned `AnyInner<T, E, R>` whose inner
    /// operation has completed and been freed; called once. The op may be
    /// freed by the completion: nothing of it is touched afterwards.
    ///
    /// Inlined into `notify`, its usual caller: the outcome then stays in
    /// registers instead of being spilled for a call.
    #[inline(always)]
    unsafe fn deliver(inner: *const Self, outcome: Outcome<T, E>) {
        // SAFETY: the inner operation completed; this runs once; nobody else
        // touches the receiver any more.
        let receiver = unsafe { (*inner).receiver.with_mut(|r| (*r).take()) };
        let Some(receiver) = receiver else {
            unreachable!("AnySender: completed twice")
        };
        match outcome {
            Outcome::Value(v) => receiver.set_value(v),
            Outcome::Error(e) => receiver.set_error(e),
            Outcome::Stopped => receiver.set_stopped(),
            Outcome::Panic(p) => receiver.set_panic(p),
        }
    }

    /// Delivers the stashed completion (a delivery the trampoline deferred).
    ///
    /// # Safety
    /// `task` is the node of a started, pinned `AnyInner<T, E, R>` whose
    /// outcome was stashed by `notify`, derived from a pointer to the whole
    /// state; called once, from the trampoline.
    unsafe fn run_deliver(task: *const Task) {
        // The node is the first field (`repr(C)`).
        let inner = task.cast::<Self>();
        // SAFETY: written by `notify` before queueing this task; nobody else
        // touches the stash.
        let outcome = unsafe { (*inner).stash.with_mut(|s| (*s).take()) };
        let Some(outcome) = outcome else {
            unreachable!("AnySender: deferred delivery without an outcome")
        };
        // SAFETY: per the contract (the frame was freed before queueing).
        unsafe { Self::deliver(inner, outcome) }
    }
}

impl<T, E, R: Receiver<T, E>> Notify<Outcome<T, E>> for AnyInner<T, E, R> {
    /// The inner operation completed: free its frame (back to this thread's
    /// cache), then deliver through the trampoline — at once, one level
    /// deeper, or, if this thread is nested too deeply, from the outermost
    /// trampolined frame once the stack has unwound.
    ///
    /// The inner operation may still be inside its own `start` (it completed
    /// inline): dropping it here is what every operation allows (after
    /// calling its receiver it touches nothing of itself), and `run_start`
    /// touches nothing after that `start` returns.
    fn notify(this: ParentRef<Self>, outcome: Outcome<T, E>) {
        let inner: *const Self = this.get();
        // SAFETY: the inner operation completes once and no longer touches
        // itself after calling its receiver; `run_start` does not touch the
        // slot after starting it. So this completion owns the slot.
        unsafe {
            let slot: *mut Option<Frame<T, E>> = (*inner).slot.with_mut(|s| s);
            drop((*slot).take());
        }
        let deferred = nest(ANY_SENDER_MAX_DEPTH, outcome, |outcome| {
            // SAFETY: the frame was freed above; the op is alive until its
            // receiver completes, which is this call, made once.
            unsafe { Self::deliver(inner, outcome) }
        });
        if let Some(outcome) = deferred {
            // SAFETY: the op is alive until it completes (after this queued
            // delivery has run); the stash is only touched by this
            // completion and then by `run_deliver`; the task node is free
            // (its start has run: the inner operation exists only after
            // `run_start`). The node is derived from the pointer to the whole
            // state (`this.get()`).
            unsafe {
                (*inner).stash.with_mut(|s| *s = Some(outcome));
                queue(ptr::addr_of!((*inner).task), Self::run_deliver);
            }
        }
    }
}

impl<T, E, R: Receiver<T, E>> OperationState for AnyOp<T, E, R> {
    unsafe fn start(self: Pin<&mut Self>) {
        let inner: *const AnyInner<T, E, R> = &self.into_ref().get_ref().inner;
        // SAFETY: by `start`'s contract the op stays pinned and alive until
        // it completes, which happens after `run_start` has run. The node is
        // derived from the pointer to the whole state, as `run_start` needs.
        unsafe {
            submit(
                ptr::addr_of!((*inner).task),
                AnyInner::<T, E, R>::run_start,
                ANY_SENDER_MAX_DEPTH,
            )
        }
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    //! The inner operation completes on another thread while `run_start` may
    //! still be running: the completion frees the frame and delivers by
    //! itself (no hand-shake), and `run_start` touches nothing afterwards.
    use crate::SenderExt;
    use crate::loom::sync::atomic::Ordering;
    use crate::loom_fixtures::{OnThread, Out, handles, join_all};
    use crate::{OperationState, SenderTo};
    use alloc::boxed::Box;

    /// Inner completion on another thread, racing the rest of `start`: the
    /// frame is freed once, the value delivered once (loom checks the cells
    /// the two threads touch for races).
    #[test]
    fn loom_inner_completes_on_another_thread() {
        ::loom::model(|| {
            let hs = handles();
            let (out, seen, completions) = Out::new();
            let s = OnThread {
                handles: hs.clone(),
                value: 1u32,
                touch_after_spawn: false,
            }
            .then(|v| v + 1)
            .boxed()
            .then(|v| v * 10);
            let mut op = Box::pin(s.connect(out));
            // SAFETY: `op` is dropped only after the completing thread has
            // been joined, i.e. after the operation completed.
            unsafe { op.as_mut().start() };
            join_all(&hs);
            assert_eq!(completions.load(Ordering::Relaxed), 1);
            assert_eq!(seen.lock().unwrap().take(), Some(20));
            drop(op);
        });
    }
}
