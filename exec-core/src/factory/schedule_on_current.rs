use core::convert::Infallible;

use crate::{DynScheduleOp, Receiver, Sender, SenderTo};

/// A sender that hops to the receiver's current scheduler
/// ([`Env::scheduler`](crate::Env::scheduler)): when started, it asks the
/// environment for the scheduler and queues its own
/// [`TaskNode`](crate::TaskNode) there. If the environment reports no
/// scheduler, it completes at once, inline.
///
/// Allocates nothing and needs no `'static`: the node is part of the
/// operation state, and the scheduler is asked at `start`, when the
/// receiver (which the answer borrows) is pinned in the operation.
///
/// # Completion
/// - value: `()`, on the current scheduler's context (inline in `start` if
///   there is none).
/// - error: never (`Error = Infallible`).
/// - stopped: if the receiver's stop token is triggered by the time the
///   context runs it (or, with no scheduler, already at `start`), or if the
///   context shuts down without running it.
///
/// # Cancellation
/// The stop token is checked when the context runs the operation; a stop
/// request does not remove it from the context's queue early.
///
/// # Panics
/// Never itself.
///
/// # Example
/// ```
/// use exec_core::{schedule_on_current, sync_wait, SenderExt};
/// // Under sync_wait, this runs on sync_wait's own run loop.
/// let here = std::thread::current().id();
/// let there = sync_wait(schedule_on_current().then(|()| std::thread::current().id()));
/// assert_eq!(there, Ok(Some(here)));
/// ```
///
/// # See also
/// [`on`](crate::on) (uses it to come back), [`read_env`](crate::read_env),
/// [`SchedulerRef`](crate::SchedulerRef).
pub fn schedule_on_current() -> ScheduleOnCurrent {
    ScheduleOnCurrent { _private: () }
}

/// Sender for the [`schedule_on_current`] function.
#[must_use = "senders do nothing unless connected and started"]
#[derive(Clone, Copy, Debug, Default)]
pub struct ScheduleOnCurrent {
    _private: (),
}

impl Sender for ScheduleOnCurrent {
    type Output = ();
    type Error = Infallible;
}

impl<R: Receiver<(), Infallible> + Send> SenderTo<R> for ScheduleOnCurrent {
    type Operation = DynScheduleOp<'static, R>;
    fn connect(self, receiver: R) -> DynScheduleOp<'static, R> {
        DynScheduleOp::new(None, receiver)
    }
}
