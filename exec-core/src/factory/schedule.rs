use crate::Scheduler;

/// A sender that completes on `scheduler`'s execution context: P2300's
/// `schedule(sch)` as a free function, the same as
/// [`scheduler.schedule()`](Scheduler::schedule).
///
/// # Completion
/// - value: `()`, on the scheduler's context.
/// - error: whatever the scheduler's sender may send (most cannot fail).
/// - stopped: if the receiver's stop token is triggered before the context
///   runs it, or the context shuts down (for schedulers that check).
///
/// # Cancellation
/// Up to the scheduler: the bundled ones check the receiver's stop token
/// when the work comes up.
///
/// # Panics
/// Never itself.
///
/// # Example
/// ```
/// use exec_core::{schedule, sync_wait, InlineScheduler, SenderExt};
/// assert_eq!(sync_wait(schedule(&InlineScheduler).then(|()| 5)), Ok(Some(5)));
/// ```
///
/// # See also
/// [`starts_on`](crate::starts_on), [`continues_on`](crate::SenderExt::continues_on).
pub fn schedule<Sch: Scheduler>(scheduler: &Sch) -> Sch::Sender {
    scheduler.schedule()
}
