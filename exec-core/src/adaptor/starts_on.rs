use core::fmt;
use core::marker::PhantomPinned;
use core::pin::Pin;

use super::inplace::{Child, ReceiverSlot};
use super::write_env::{EnvOverlay, OverlayEnv};
use crate::{
    Env, IntoError, OperationState, PanicPayload, ParentRef, Receiver, Scheduler, SchedulerRef,
    Sender, SenderTo,
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
/// # Environment
/// `sender` sees `scheduler` as the current scheduler
/// ([`Env::scheduler`]): its [`erased`](Scheduler::erased) form, or none if
/// it has none. Every other query is the receiver's.
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
pub fn starts_on<Sch, S>(scheduler: Sch, sender: S) -> StartsOn<Sch, S>
where
    Sch: Scheduler,
    S: Sender,
    <Sch::Sender as Sender>::Error: IntoError<S::Error>,
{
    StartsOn { scheduler, sender }
}

/// Sender for the [`starts_on`] function.
#[must_use = "senders do nothing unless connected and started"]
#[derive(Clone, Debug)]
pub struct StartsOn<Sch, S> {
    scheduler: Sch,
    sender: S,
}

impl<Sch, S> Sender for StartsOn<Sch, S>
where
    Sch: Scheduler,
    S: Sender,
    <Sch::Sender as Sender>::Error: IntoError<S::Error>,
{
    type Output = S::Output;
    type Error = S::Error;
    const SENDS_STOPPED: bool = <Sch::Sender as Sender>::SENDS_STOPPED || S::SENDS_STOPPED;
}

/// What the work's receiver reaches through its [`ParentRef`]: the
/// downstream receiver and the scheduler it reports as current.
struct Downstream<R, Sch> {
    /// Taken by the final completion.
    receiver: ReceiverSlot<R>,
    /// Read-only after `connect`.
    scheduler: AsCurrent<Sch>,
}

/// Reports a scheduler as the current one ([`Env::scheduler`]).
struct AsCurrent<Sch>(Sch);

impl<Sch: Scheduler> EnvOverlay for AsCurrent<Sch> {
    #[inline]
    fn scheduler(&self) -> Option<Option<SchedulerRef<'_>>> {
        Some(self.0.erased())
    }
}

/// What the schedule operation's receiver reaches through its [`ParentRef`].
struct Shared<Sch, S, R>
where
    S: SenderTo<StartsOnReceiver<R, Sch>>,
{
    /// Structurally pinned: the work's receiver refers to it.
    downstream: Downstream<R, Sch>,
    /// Connected and started by the schedule operation's value completion.
    /// Structurally pinned.
    work: Child<S, S::Operation>,
}

/// The schedule operation inside [`StartsOnOp`].
type ScheduleOp<Sch, S, R> =
    <<Sch as Scheduler>::Sender as SenderTo<StartsOnScheduleReceiver<Sch, S, R>>>::Operation;

/// Operation state of [`StartsOn`].
pub struct StartsOnOp<Sch, S, R>
where
    Sch: Scheduler,
    Sch::Sender: SenderTo<StartsOnScheduleReceiver<Sch, S, R>>,
    S: SenderTo<StartsOnReceiver<R, Sch>>,
{
    /// Structurally pinned: the schedule operation once started.
    schedule: Child<Sch::Sender, ScheduleOp<Sch, S, R>>,
    /// Structurally pinned: children refer to it through `ParentRef`.
    shared: Shared<Sch, S, R>,
    _pin: PhantomPinned,
}

impl<Sch, S, R> fmt::Debug for StartsOnOp<Sch, S, R>
where
    Sch: Scheduler,
    Sch::Sender: SenderTo<StartsOnScheduleReceiver<Sch, S, R>>,
    S: SenderTo<StartsOnReceiver<R, Sch>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StartsOnOp").finish_non_exhaustive()
    }
}

impl<Sch, S, R> SenderTo<R> for StartsOn<Sch, S>
where
    Sch: Scheduler,
    Sch::Sender: SenderTo<StartsOnScheduleReceiver<Sch, S, R>, Output = ()>,
    S: SenderTo<StartsOnReceiver<R, Sch>>,
    <Sch::Sender as Sender>::Error: IntoError<S::Error>,
    R: Receiver<S::Output, S::Error>,
{
    type Operation = StartsOnOp<Sch, S, R>;
    fn connect(self, receiver: R) -> StartsOnOp<Sch, S, R> {
        StartsOnOp {
            schedule: Child::new(self.scheduler.schedule()),
            shared: Shared {
                downstream: Downstream {
                    receiver: ReceiverSlot::new(receiver),
                    scheduler: AsCurrent(self.scheduler),
                },
                work: Child::new(self.sender),
            },
            _pin: PhantomPinned,
        }
    }
}

impl<Sch, S, R> OperationState for StartsOnOp<Sch, S, R>
where
    Sch: Scheduler,
    Sch::Sender: SenderTo<StartsOnScheduleReceiver<Sch, S, R>, Output = ()>,
    S: SenderTo<StartsOnReceiver<R, Sch>>,
    <Sch::Sender as Sender>::Error: IntoError<S::Error>,
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
pub struct StartsOnScheduleReceiver<Sch, S, R>
where
    S: SenderTo<StartsOnReceiver<R, Sch>>,
{
    parent: ParentRef<Shared<Sch, S, R>>,
}

impl<Sch, S, R> fmt::Debug for StartsOnScheduleReceiver<Sch, S, R>
where
    S: SenderTo<StartsOnReceiver<R, Sch>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StartsOnScheduleReceiver")
            .finish_non_exhaustive()
    }
}

impl<Sch, S, R> StartsOnScheduleReceiver<Sch, S, R>
where
    S: SenderTo<StartsOnReceiver<R, Sch>>,
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
            shared.downstream.receiver.take()
        }
    }
}

impl<Sch, S, R, SE> Receiver<(), SE> for StartsOnScheduleReceiver<Sch, S, R>
where
    S: SenderTo<StartsOnReceiver<R, Sch>>,
    SE: IntoError<S::Error>,
    R: Receiver<S::Output, S::Error>,
{
    fn set_value(self, (): ()) {
        let shared = self.parent.get_pin();
        // SAFETY: `downstream` is structurally pinned in the pinned shared
        // state, which outlives the work (the parent completes only from the
        // work's completion).
        let parent = unsafe { ParentRef::new(shared.map_unchecked(|s| &s.downstream)) };
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
    fn env(&self) -> impl Env<'_> {
        // SAFETY: the receiver is taken only by a completion, which consumes
        // the last child receiver; not while `&self` is borrowed.
        unsafe { self.parent.get().downstream.receiver.get() }.env()
    }
}

/// The receiver [`StartsOn`] connects the started sender to.
pub struct StartsOnReceiver<R, Sch> {
    parent: ParentRef<Downstream<R, Sch>>,
}

impl<R, Sch> fmt::Debug for StartsOnReceiver<R, Sch> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StartsOnReceiver").finish_non_exhaustive()
    }
}

impl<R, Sch> StartsOnReceiver<R, Sch> {
    fn take(self) -> R {
        // SAFETY: the work completes once and is the last child; no `env()`
        // borrow is alive (our receiver is consumed).
        unsafe { self.parent.get().receiver.take() }
    }
}

impl<R, Sch, T, E> Receiver<T, E> for StartsOnReceiver<R, Sch>
where
    R: Receiver<T, E>,
    Sch: Scheduler,
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
    fn env(&self) -> impl Env<'_> {
        let downstream = self.parent.get();
        // SAFETY: taken only by this receiver's completion, which consumes it.
        let base = unsafe { downstream.receiver.get() }.env();
        OverlayEnv::new(&downstream.scheduler, base)
    }
}
