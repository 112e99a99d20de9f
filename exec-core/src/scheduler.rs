//! Schedulers: handles to execution contexts.

use crate::SchedulerRef;
use crate::sender::Sender;

/// A handle to an execution context: [`schedule`](Self::schedule) returns a
/// sender that completes (with `()`) on that context.
pub trait Scheduler: Clone + PartialEq {
    /// The sender `schedule` returns.
    type Sender: Sender<Output = ()>;
    /// A sender that completes on this scheduler's execution context.
    fn schedule(&self) -> Self::Sender;
    /// This scheduler as a type-erased [`SchedulerRef`], if its context
    /// runs [`TaskNode`](crate::TaskNode)s. Default: `None`.
    ///
    /// This is what [`starts_on`](crate::starts_on) reports to the work it
    /// starts as the current scheduler ([`Env::scheduler`](crate::Env::scheduler)),
    /// so that [`on`](crate::on) inside it can come back. Answer with a
    /// reference to the execution context itself (the loop, the pool), not
    /// to this handle: the handle may live in an operation state that is
    /// freed while the context still runs.
    #[inline]
    fn erased(&self) -> Option<SchedulerRef<'_>> {
        None
    }
}

/// A scheduler that can also wait for a point in time.
pub trait TimedScheduler: Scheduler {
    /// Its clock's instant type.
    type Instant: Copy + Ord;
    /// Its duration type.
    type Duration: Copy;
    /// The sender `schedule_at`/`schedule_after` return.
    type TimedSender: Sender<Output = ()>;
    /// The current time on this scheduler's clock.
    fn now(&self) -> Self::Instant;
    /// A sender that completes on this scheduler at or after `at`.
    fn schedule_at(&self, at: Self::Instant) -> Self::TimedSender;
    /// A sender that completes on this scheduler after `after` elapsed.
    fn schedule_after(&self, after: Self::Duration) -> Self::TimedSender;
}

/// A sender that knows on which scheduler it completes (P2300's
/// `get_completion_scheduler<set_value_t>` attribute).
pub trait CompletionScheduler: Sender {
    /// That scheduler's type.
    type Scheduler: Scheduler;
    /// The scheduler on whose context the value completion happens.
    fn completion_scheduler(&self) -> Self::Scheduler;
}
