use super::finally::Finally;
use super::starts_on::{StartsOn, starts_on};
use crate::{IntoError, Scheduler, Sender};

/// Sender for the [`on`] function: [`starts_on`] followed by
/// [`continues_on`](crate::SenderExt::continues_on).
pub type On<Sch, S, B> = Finally<StartsOn<<Sch as Scheduler>::Sender, S>, <B as Scheduler>::Sender>;

/// Runs `sender` on `scheduler`, then comes back to `back`: the completion
/// of `sender` is delivered on `back`'s execution context.
///
/// **Deviation from P2300.** P2300's `on(sch, sndr)` returns to the
/// scheduler found in the receiver's environment (`get_scheduler`). A Rust
/// `Env` query for "the current scheduler" would have to return a
/// type-erased scheduler, whose `schedule()` operation cannot be stored in
/// a statically sized operation state without allocating. exec-core does
/// not allocate on that path, so `on` takes the scheduler to return to
/// explicitly. `on(sch, s, back)` is exactly
/// `starts_on(sch, s).continues_on(back)`.
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
/// use exec_core::{just, on, sync_wait, InlineScheduler, SenderExt};
/// let work = on(InlineScheduler, just(20).then(|x| x + 1), InlineScheduler);
/// assert_eq!(sync_wait(work.then(|x| x * 2)), Ok(Some(42)));
/// ```
///
/// # See also
/// [`starts_on`], [`continues_on`](crate::SenderExt::continues_on).
pub fn on<Sch, S, B>(scheduler: Sch, sender: S, back: B) -> On<Sch, S, B>
where
    Sch: Scheduler,
    B: Scheduler,
    S: Sender,
    <Sch::Sender as Sender>::Error: IntoError<S::Error>,
    <B::Sender as Sender>::Error: IntoError<S::Error>,
{
    Finally::new(starts_on(scheduler, sender), back.schedule())
}
