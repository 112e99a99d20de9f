use super::finally::Finally;
use super::starts_on::{StartsOn, starts_on};
use crate::{IntoError, ScheduleOnCurrent, Scheduler, Sender, schedule_on_current};

/// Sender for the [`on`] function: [`starts_on`] followed by a hop back to
/// the receiver's current scheduler ([`schedule_on_current`]).
pub type On<Sch, S> = Finally<StartsOn<Sch, S>, ScheduleOnCurrent>;

/// Sender for the [`on_returning_to`] function: [`starts_on`] followed by
/// [`continues_on`](crate::SenderExt::continues_on).
pub type OnReturningTo<Sch, S, B> = Finally<StartsOn<Sch, S>, <B as Scheduler>::Sender>;

/// Runs `sender` on `scheduler`, then comes back to the scheduler the
/// receiver's environment reports as current (P2300's `on(sch, sndr)`).
///
/// The scheduler to come back to is asked for when the hop back starts
/// ([`Env::scheduler`](crate::Env::scheduler)), and the hop is an intrusive
/// node inside the operation state: nothing is allocated. Under
/// [`sync_wait`](crate::sync_wait) it comes back to `sync_wait`'s thread;
/// inside [`starts_on`]`(other, …)` to `other` (if `other` has an
/// [`erased`](Scheduler::erased) form).
///
/// **If the environment reports no scheduler**, there is nowhere defined to
/// return to: the result is delivered inline, on whatever context `sender`
/// completed on (typically `scheduler`'s). Use [`on_returning_to`] to name
/// the scheduler to come back to explicitly.
///
/// `sender` sees `scheduler` as its current scheduler.
///
/// # Completion
/// - value, error, stopped: those of `sender`, delivered on the current
///   scheduler.
/// - If scheduling on `scheduler` fails or is stopped, that completion is
///   delivered (also after hopping back); if the hop back is stopped (a
///   stop request while it is queued, or the context shutting down), the
///   result is *stopped* and `sender`'s result is dropped (see
///   [`finally`](crate::SenderExt::finally)). Errors of the schedule
///   operation are converted with [`IntoError`].
///
/// # Cancellation
/// The receiver's environment (stop token) is forwarded to all three
/// operations.
///
/// # Panics
/// A panic delivered by any of the operations is forwarded through
/// [`Receiver::set_panic`](crate::Receiver::set_panic) after the hop back.
///
/// # Example
/// ```
/// use exec_core::{just, on, sync_wait, RunLoop, SenderExt};
/// let elsewhere = RunLoop::new();
/// std::thread::scope(|s| {
///     s.spawn(|| elsewhere.run());
///     let here = std::thread::current().id();
///     let work = just(20).then(|x| (x + 1, std::thread::current().id()));
///     let (value, ran_on, back_on) = sync_wait(
///         on(elsewhere.scheduler(), work).then(|(x, t)| (x * 2, t, std::thread::current().id())),
///     )
///     .unwrap()
///     .unwrap();
///     elsewhere.finish();
///     assert_eq!(value, 42);
///     assert_ne!(ran_on, here);
///     assert_eq!(back_on, here);
/// });
/// ```
///
/// # See also
/// [`starts_on`], [`on_returning_to`],
/// [`continues_on`](crate::SenderExt::continues_on),
/// [`schedule_on_current`].
pub fn on<Sch, S>(scheduler: Sch, sender: S) -> On<Sch, S>
where
    Sch: Scheduler,
    S: Sender,
    <Sch::Sender as Sender>::Error: IntoError<S::Error>,
{
    Finally::new(starts_on(scheduler, sender), schedule_on_current())
}

/// Runs `sender` on `scheduler`, then comes back to `back`: the completion
/// of `sender` is delivered on `back`'s execution context. Exactly
/// `starts_on(scheduler, sender).continues_on(back)`.
///
/// Unlike [`on`], the scheduler to return to is named, so this works with
/// any [`Scheduler`] (not only those with an
/// [`erased`](Scheduler::erased) form) and with receivers whose environment
/// reports no scheduler.
///
/// # Completion
/// - value, error, stopped: those of `sender`, delivered on `back`.
/// - If scheduling on `scheduler` fails or is stopped, that completion is
///   delivered (also after hopping to `back`); if scheduling on `back`
///   fails or is stopped, that completion wins and `sender`'s result is
///   dropped (see [`finally`](crate::SenderExt::finally)). Errors of the
///   schedule operations are converted with [`IntoError`].
///
/// # Cancellation
/// The receiver's environment is forwarded to all three operations.
///
/// # Panics
/// A panic delivered by any of the three operations is forwarded through
/// [`Receiver::set_panic`](crate::Receiver::set_panic) after the hop back.
///
/// # Example
/// ```
/// use exec_core::{just, on_returning_to, sync_wait, InlineScheduler, SenderExt};
/// let work = on_returning_to(InlineScheduler, just(20).then(|x| x + 1), InlineScheduler);
/// assert_eq!(sync_wait(work.then(|x| x * 2)), Ok(Some(42)));
/// ```
///
/// # See also
/// [`on`], [`starts_on`], [`continues_on`](crate::SenderExt::continues_on).
pub fn on_returning_to<Sch, S, B>(scheduler: Sch, sender: S, back: B) -> OnReturningTo<Sch, S, B>
where
    Sch: Scheduler,
    B: Scheduler,
    S: Sender,
    <Sch::Sender as Sender>::Error: IntoError<S::Error>,
    <B::Sender as Sender>::Error: IntoError<S::Error>,
{
    Finally::new(starts_on(scheduler, sender), back.schedule())
}
