use core::fmt;
use core::marker::PhantomPinned;
use core::pin::Pin;

use super::inplace::{Child, ReceiverSlot};
use crate::{
    Env, IntoError, OperationState, PanicPayload, ParentRef, Receiver, Scheduler, Sender, SenderTo,
};

/// Starts `sender` on `scheduler`'s execution context: the returned sender
/// first runs `scheduler.schedule()` and, when that completes, connects
/// and starts `sender` from there.
///
/// # Completion
/// - value, error, stopped: those of `sender`, wherever it completes.
/// - If the schedule operation fails, its error (converted with
///   [`IntoError`]) is delivered and `sender` is dropped without running;
///   if it completes stopped, the result is *stopped*.
///
/// # Cancellation
/// The receiver's environment (and stop token) is forwarded to both the
/// schedule operation and `sender`: a stop request before the scheduler
/// runs the work typically ends it *stopped* without running `sender`.
///
/// # Panics
/// A panic delivered by the schedule operation or by `sender` is forwarded
/// through [`Receiver::set_panic`].
///
/// # Example
/// ```
/// use exec_core::{just, starts_on, sync_wait, InlineScheduler, SenderExt};
/// let work = starts_on(InlineScheduler, just(6).then(|x| x * 7));
/// assert_eq!(sync_wait(work), Ok(Some(42)));
/// ```
///
/// # See also
/// [`continues_on`](crate::SenderExt::continues_on), [`on`](crate::on).
pub fn starts_on<Sch, S>(scheduler: Sch, sender: S) -> StartsOn<Sch::Sender, S>
where
    Sch: Scheduler,
    S: Sender,
    <Sch::Sender as Sender>::Error: IntoError<S::Error>,
{
    StartsOn {
        schedule: scheduler.schedule(),
        sender,
    }
}

/// Sender for the [`starts_on`] function. `Sch` is the scheduler's
/// `schedule()` sender.
#[must_use = "senders do nothing unless connected and started"]
#[derive(Clone, Debug)]
pub struct StartsOn<Sch, S> {
    schedule: Sch,
    sender: S,
}

impl<Sch, S> Sender for StartsOn<Sch, S>
where
    Sch: Sender<Output = ()>,
    S: Sender,
    Sch::Error: IntoError<S::Error>,
{
    type Output = S::Output;
    type Error = S::Error;
    const SENDS_STOPPED: bool = Sch::SENDS_STOPPED || S::SENDS_STOPPED;
}

/// What the schedule operation's receiver reaches through its [`ParentRef`];
/// the work's receiver only reaches `receiver`.
struct Shared<S, R>
where
    S: SenderTo<StartsOnReceiver<R>>,
{
    /// Taken by the final completion. Structurally pinned: the work's
    /// receiver refers to it.
    receiver: ReceiverSlot<R>,
    /// Connected and started by the schedule operation's value completion.
    /// Structurally pinned.
    work: Child<S, S::Operation>,
}

/// Operation state of [`StartsOn`].
pub struct StartsOnOp<Sch, S, R>
where
    Sch: SenderTo<StartsOnScheduleReceiver<S, R>>,
    S: SenderTo<StartsOnReceiver<R>>,
{
    /// Structurally pinned: the schedule operation once started.
    schedule: Child<Sch, Sch::Operation>,
    /// Structurally pinned: children refer to it through `ParentRef`.
    shared: Shared<S, R>,
    _pin: PhantomPinned,
}

impl<Sch, S, R> fmt::Debug for StartsOnOp<Sch, S, R>
where
    Sch: SenderTo<StartsOnScheduleReceiver<S, R>>,
    S: SenderTo<StartsOnReceiver<R>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StartsOnOp").finish_non_exhaustive()
    }
}

impl<Sch, S, R> SenderTo<R> for StartsOn<Sch, S>
where
    Sch: SenderTo<StartsOnScheduleReceiver<S, R>, Output = ()>,
    S: SenderTo<StartsOnReceiver<R>>,
    Sch::Error: IntoError<S::Error>,
    R: Receiver<S::Output, S::Error>,
{
    type Operation = StartsOnOp<Sch, S, R>;
    fn connect(self, receiver: R) -> StartsOnOp<Sch, S, R> {
        StartsOnOp {
            schedule: Child::new(self.schedule),
            shared: Shared {
                receiver: ReceiverSlot::new(receiver),
                work: Child::new(self.sender),
            },
            _pin: PhantomPinned,
        }
    }
}

impl<Sch, S, R> OperationState for StartsOnOp<Sch, S, R>
where
    Sch: SenderTo<StartsOnScheduleReceiver<S, R>, Output = ()>,
    S: SenderTo<StartsOnReceiver<R>>,
    Sch::Error: IntoError<S::Error>,
    R: Receiver<S::Output, S::Error>,
{
    unsafe fn start(self: Pin<&mut Self>) {
        let this = self.into_ref();
        // SAFETY: projections of structurally pinned fields.
        let (schedule, shared) = unsafe {
            (
                this.map_unchecked(|t| &t.schedule),
                this.map_unchecked(|t| &t.shared),
            )
        };
        // SAFETY: we are started, so pinned and alive until we complete,
        // which happens only after the last child completed and consumed its
        // receiver (and the `ParentRef` in it).
        let parent = unsafe { ParentRef::new(shared) };
        // SAFETY: the only access to `schedule`; `start` is called once.
        unsafe { schedule.connect_and_start(StartsOnScheduleReceiver { parent }) };
    }
}

/// The receiver [`StartsOn`] connects the schedule operation to.
pub struct StartsOnScheduleReceiver<S, R>
where
    S: SenderTo<StartsOnReceiver<R>>,
{
    parent: ParentRef<Shared<S, R>>,
}

impl<S, R> fmt::Debug for StartsOnScheduleReceiver<S, R>
where
    S: SenderTo<StartsOnReceiver<R>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StartsOnScheduleReceiver")
            .finish_non_exhaustive()
    }
}

impl<S, R> StartsOnScheduleReceiver<S, R>
where
    S: SenderTo<StartsOnReceiver<R>>,
{
    /// The schedule operation did not produce a value: drop the work unrun
    /// and hand back the downstream receiver to complete.
    fn abandon(self) -> R {
        let shared = self.parent.get();
        // SAFETY: the schedule operation completes once, the work never
        // started, and no other child exists: exclusive access; no `env()`
        // borrow is alive (our receiver is consumed).
        unsafe {
            shared.work.discard();
            shared.receiver.take()
        }
    }
}

impl<S, R, SE> Receiver<(), SE> for StartsOnScheduleReceiver<S, R>
where
    S: SenderTo<StartsOnReceiver<R>>,
    SE: IntoError<S::Error>,
    R: Receiver<S::Output, S::Error>,
{
    fn set_value(self, (): ()) {
        let shared = self.parent.get_pin();
        // SAFETY: `receiver` is structurally pinned in the pinned shared
        // state, which outlives the work (the parent completes only from the
        // work's completion).
        let parent = unsafe { ParentRef::new(shared.map_unchecked(|s| &s.receiver)) };
        // SAFETY: structurally pinned field of the pinned shared state.
        let work = unsafe { shared.map_unchecked(|s| &s.work) };
        // SAFETY: started once (the schedule op completes once), nothing else
        // touches `work`, and the parent stays alive until the work completes.
        unsafe { work.connect_and_start(StartsOnReceiver { parent }) };
    }
    fn set_error(self, error: SE) {
        self.abandon().set_error(error.into_error())
    }
    fn set_stopped(self) {
        self.abandon().set_stopped()
    }
    fn set_panic(self, payload: PanicPayload) {
        self.abandon().set_panic(payload)
    }
    fn env(&self) -> impl Env + '_ {
        // SAFETY: the receiver is taken only by a completion, which consumes
        // the last child receiver; not while `&self` is borrowed.
        unsafe { self.parent.get().receiver.get() }.env()
    }
}

/// The receiver [`StartsOn`] connects the started sender to.
pub struct StartsOnReceiver<R> {
    parent: ParentRef<ReceiverSlot<R>>,
}

impl<R> fmt::Debug for StartsOnReceiver<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StartsOnReceiver").finish_non_exhaustive()
    }
}

impl<R> StartsOnReceiver<R> {
    fn take(self) -> R {
        // SAFETY: the work completes once and is the last child; no `env()`
        // borrow is alive (our receiver is consumed).
        unsafe { self.parent.get().take() }
    }
}

impl<R, T, E> Receiver<T, E> for StartsOnReceiver<R>
where
    R: Receiver<T, E>,
{
    fn set_value(self, value: T) {
        self.take().set_value(value)
    }
    fn set_error(self, error: E) {
        self.take().set_error(error)
    }
    fn set_stopped(self) {
        self.take().set_stopped()
    }
    fn set_panic(self, payload: PanicPayload) {
        self.take().set_panic(payload)
    }
    fn env(&self) -> impl Env + '_ {
        // SAFETY: taken only by this receiver's completion, which consumes it.
        unsafe { self.parent.get().get() }.env()
    }
}
