use core::fmt;
use core::marker::PhantomPinned;
use core::pin::Pin;

use super::inplace::{Child, ReceiverSlot, Slot, Stored};
use crate::{
    CompletionScheduler, Env, IntoError, OperationState, PanicPayload, ParentRef, Receiver, Sender,
    SenderTo,
};

/// Sender for the [`finally`](crate::SenderExt::finally) method (and, with
/// a scheduler's `schedule()` sender as the second, for
/// [`continues_on`](crate::SenderExt::continues_on)).
#[must_use = "senders do nothing unless connected and started"]
#[derive(Clone, Debug)]
pub struct Finally<S1, S2> {
    first: S1,
    second: S2,
}

impl<S1, S2> Finally<S1, S2> {
    pub(crate) fn new(first: S1, second: S2) -> Self {
        Finally { first, second }
    }
}

impl<S1, S2> Sender for Finally<S1, S2>
where
    S1: Sender,
    S2: Sender<Output = ()>,
    S2::Error: IntoError<S1::Error>,
{
    type Output = S1::Output;
    type Error = S1::Error;
    const SENDS_STOPPED: bool = S1::SENDS_STOPPED || S2::SENDS_STOPPED;
}

/// The first's value is delivered from inside the second's completion, so
/// it completes where the second does.
impl<S1, S2> CompletionScheduler for Finally<S1, S2>
where
    S1: Sender,
    S2: CompletionScheduler<Output = ()>,
    S2::Error: IntoError<S1::Error>,
{
    type Scheduler = S2::Scheduler;
    fn completion_scheduler(&self) -> S2::Scheduler {
        self.second.completion_scheduler()
    }
}

/// What the second child reaches through its [`ParentRef`]. (It does not
/// name the second sender's type, so the receiver type is not recursive.)
struct Tail<T, E, R> {
    /// Taken by the second child's completion.
    receiver: ReceiverSlot<R>,
    /// Written by the first child's completion, taken by the second's.
    stored: Slot<Stored<T, E>>,
}

/// What the first child reaches through its [`ParentRef`].
struct Shared<T, E, S2, R>
where
    S2: SenderTo<FinallySecondReceiver<T, E, R>>,
{
    /// Structurally pinned: the second child refers to it.
    tail: Tail<T, E, R>,
    /// Connected and started by the first child's completion. Structurally
    /// pinned.
    second: Child<S2, S2::Operation>,
}

/// The first sender's operation state inside [`FinallyOp`].
type FirstOp<S1, S2, R> = <S1 as SenderTo<
    FinallyFirstReceiver<<S1 as Sender>::Output, <S1 as Sender>::Error, S2, R>,
>>::Operation;

/// Operation state of [`Finally`].
pub struct FinallyOp<S1, S2, R>
where
    S1: Sender
        + SenderTo<FinallyFirstReceiver<<S1 as Sender>::Output, <S1 as Sender>::Error, S2, R>>,
    S2: SenderTo<FinallySecondReceiver<<S1 as Sender>::Output, <S1 as Sender>::Error, R>>,
{
    /// Structurally pinned: holds the first child's operation once started.
    first: Child<S1, FirstOp<S1, S2, R>>,
    /// Structurally pinned: children refer to it through `ParentRef`.
    shared: Shared<<S1 as Sender>::Output, <S1 as Sender>::Error, S2, R>,
    _pin: PhantomPinned,
}

impl<S1, S2, R> fmt::Debug for FinallyOp<S1, S2, R>
where
    S1: Sender
        + SenderTo<FinallyFirstReceiver<<S1 as Sender>::Output, <S1 as Sender>::Error, S2, R>>,
    S2: SenderTo<FinallySecondReceiver<<S1 as Sender>::Output, <S1 as Sender>::Error, R>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FinallyOp").finish_non_exhaustive()
    }
}

impl<S1, S2, R> SenderTo<R> for Finally<S1, S2>
where
    S1: Sender
        + SenderTo<FinallyFirstReceiver<<S1 as Sender>::Output, <S1 as Sender>::Error, S2, R>>,
    S2: SenderTo<
            FinallySecondReceiver<<S1 as Sender>::Output, <S1 as Sender>::Error, R>,
            Output = (),
        >,
    S2::Error: IntoError<S1::Error>,
    R: Receiver<S1::Output, S1::Error>,
{
    type Operation = FinallyOp<S1, S2, R>;
    fn connect(self, receiver: R) -> FinallyOp<S1, S2, R> {
        FinallyOp {
            first: Child::new(self.first),
            shared: Shared {
                tail: Tail {
                    receiver: ReceiverSlot::new(receiver),
                    stored: Slot::new(None),
                },
                second: Child::new(self.second),
            },
            _pin: PhantomPinned,
        }
    }
}

impl<S1, S2, R> OperationState for FinallyOp<S1, S2, R>
where
    S1: Sender
        + SenderTo<FinallyFirstReceiver<<S1 as Sender>::Output, <S1 as Sender>::Error, S2, R>>,
    S2: SenderTo<
            FinallySecondReceiver<<S1 as Sender>::Output, <S1 as Sender>::Error, R>,
            Output = (),
        >,
    S2::Error: IntoError<S1::Error>,
    R: Receiver<S1::Output, S1::Error>,
{
    unsafe fn start(self: Pin<&mut Self>) {
        let this = self.into_ref();
        // SAFETY: projections of structurally pinned fields.
        let (first, shared) = unsafe {
            (
                this.map_unchecked(|t| &t.first),
                this.map_unchecked(|t| &t.shared),
            )
        };
        // SAFETY: we are started, so pinned and alive until we complete,
        // which happens only after both children completed and consumed
        // their receivers (and the `ParentRef`s in them).
        let parent = unsafe { ParentRef::new(shared) };
        // SAFETY: the only access to `first`; `start` is called once; `first`
        // lives as long as we do (see above).
        unsafe { first.connect_and_start(FinallyFirstReceiver { parent }) };
    }
}

/// The receiver the first sender of [`Finally`] is connected to.
pub struct FinallyFirstReceiver<T, E, S2, R>
where
    S2: SenderTo<FinallySecondReceiver<T, E, R>>,
{
    parent: ParentRef<Shared<T, E, S2, R>>,
}

impl<T, E, S2, R> fmt::Debug for FinallyFirstReceiver<T, E, S2, R>
where
    S2: SenderTo<FinallySecondReceiver<T, E, R>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FinallyFirstReceiver")
            .finish_non_exhaustive()
    }
}

impl<T, E, S2, R> FinallyFirstReceiver<T, E, S2, R>
where
    S2: SenderTo<FinallySecondReceiver<T, E, R>>,
{
    fn store_and_run_second(self, stored: Stored<T, E>) {
        let shared = self.parent.get_pin();
        // SAFETY: sequential: the first child is completing and the second
        // has not started, so nothing else touches `stored`.
        unsafe { shared.tail.stored.put(stored) };
        // SAFETY: `tail` is structurally pinned in the pinned shared state,
        // which outlives the second child (the parent completes only from
        // the second child's completion).
        let parent = unsafe { ParentRef::new(shared.map_unchecked(|s| &s.tail)) };
        // SAFETY: structurally pinned field of the pinned shared state.
        let second = unsafe { shared.map_unchecked(|s| &s.second) };
        // SAFETY: started once (the first child completes once), nothing else
        // touches `second` now, and the parent op stays alive until the second
        // child completes (the parent completes only from there).
        unsafe { second.connect_and_start(FinallySecondReceiver { parent }) };
    }
}

impl<T, E, S2, R> Receiver<T, E> for FinallyFirstReceiver<T, E, S2, R>
where
    S2: SenderTo<FinallySecondReceiver<T, E, R>>,
    R: Receiver<T, E>,
{
    fn set_value(self, value: T) {
        self.store_and_run_second(Stored::Value(value))
    }
    fn set_error(self, error: E) {
        self.store_and_run_second(Stored::Error(error))
    }
    fn set_stopped(self) {
        self.store_and_run_second(Stored::Stopped)
    }
    fn set_panic(self, payload: PanicPayload) {
        self.store_and_run_second(Stored::Panic(payload))
    }
    fn env(&self) -> impl Env<'_> {
        // SAFETY: the receiver is taken only by the second child's completion,
        // which cannot happen while the first child still holds this receiver.
        unsafe { self.parent.get().tail.receiver.get() }.env()
    }
}

/// The receiver the second sender of [`Finally`] is connected to.
pub struct FinallySecondReceiver<T, E, R> {
    parent: ParentRef<Tail<T, E, R>>,
}

impl<T, E, R> fmt::Debug for FinallySecondReceiver<T, E, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FinallySecondReceiver")
            .finish_non_exhaustive()
    }
}

impl<T, E, R> FinallySecondReceiver<T, E, R> {
    /// Takes the stored completion and the downstream receiver. After this,
    /// the caller completes the receiver and touches nothing else.
    fn take(self) -> (Option<Stored<T, E>>, R) {
        let shared = self.parent.get();
        // SAFETY: the second child is completing (once); the first completed
        // before it started; this is the last access to the shared state and
        // no child receiver (hence no `env()` borrow) is left.
        unsafe { (shared.stored.take(), shared.receiver.take()) }
    }
}

impl<T, E, R, SE> Receiver<(), SE> for FinallySecondReceiver<T, E, R>
where
    R: Receiver<T, E>,
    SE: IntoError<E>,
{
    fn set_value(self, (): ()) {
        let (stored, receiver) = self.take();
        stored
            .expect("exec: finally's first result is missing")
            .deliver(receiver)
    }
    fn set_error(self, error: SE) {
        let (stored, receiver) = self.take();
        drop(stored);
        receiver.set_error(error.into_error())
    }
    fn set_stopped(self) {
        let (stored, receiver) = self.take();
        drop(stored);
        receiver.set_stopped()
    }
    fn set_panic(self, payload: PanicPayload) {
        let (stored, receiver) = self.take();
        drop(stored);
        receiver.set_panic(payload)
    }
    fn env(&self) -> impl Env<'_> {
        // SAFETY: the receiver is taken only by this receiver's completion,
        // which consumes `self`, so not while `&self` is borrowed.
        unsafe { self.parent.get().receiver.get() }.env()
    }
}
