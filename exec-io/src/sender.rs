//! [`IoSender`]: the one sender type of every loop operation, and the
//! actions of `schedule()` and the timers.

use core::convert::Infallible;
use core::fmt;
use std::io;
use std::sync::Arc;
use std::time::Instant;

use exec_core::{CompletionScheduler, Receiver, Sender, SenderTo};

use crate::context::{IoScheduler, Shared};
use crate::op::{Action, Interest, IoOp, Step};

/// The sender of every operation of this crate: `schedule()`, the timers,
/// and each socket, pipe and file operation. What it sends depends on the
/// operation (`A` is an internal action type).
///
/// # Completion
/// - value: the operation's result, on the loop thread.
/// - error: the operation's error (an [`io::Error`] for I/O).
/// - stopped: if the receiver's stop token fires before the operation
///   finished, or the context is dropped first.
///
/// # Cancellation
/// A stop request removes the pending registration (readiness interest or
/// timer) on the loop and completes *stopped*; the owned buffer is dropped.
///
/// # Panics
/// Never; panics of the receiver propagate on the loop thread.
#[must_use = "senders do nothing unless connected and started"]
pub struct IoSender<A> {
    action: A,
}

impl<A> fmt::Debug for IoSender<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IoSender").finish_non_exhaustive()
    }
}

impl<A> IoSender<A> {
    pub(crate) fn new(action: A) -> Self {
        IoSender { action }
    }
}

impl<A: Action> Sender for IoSender<A> {
    type Output = A::Output;
    type Error = A::Error;
}

impl<A, R> SenderTo<R> for IoSender<A>
where
    A: Action,
    R: Receiver<A::Output, A::Error> + Send,
{
    type Operation = IoOp<A, R>;
    fn connect(self, receiver: R) -> IoOp<A, R> {
        IoOp::new(self.action, receiver)
    }
}

impl<A: Action> CompletionScheduler for IoSender<A> {
    type Scheduler = IoScheduler;
    fn completion_scheduler(&self) -> IoScheduler {
        IoScheduler {
            shared: self.action.ctx().clone(),
        }
    }
}

/// Action of `schedule()`: completes on its first run on the loop.
pub struct ScheduleAction {
    pub(crate) ctx: Arc<Shared>,
}

impl Action for ScheduleAction {
    type Output = ();
    type Error = Infallible;
    const CANCELLABLE: bool = false;
    fn ctx(&self) -> &Arc<Shared> {
        &self.ctx
    }
    fn attempt(&mut self) -> Step<(), Infallible> {
        Step::Done(Ok(()))
    }
    fn wait_failed(_: io::Error) -> Infallible {
        unreachable!("schedule() never waits")
    }
}

/// Action of `schedule_at`/`schedule_after`.
pub struct TimerAction {
    pub(crate) ctx: Arc<Shared>,
    pub(crate) at: Instant,
}

impl Action for TimerAction {
    type Output = ();
    type Error = Infallible;
    fn ctx(&self) -> &Arc<Shared> {
        &self.ctx
    }
    fn attempt(&mut self) -> Step<(), Infallible> {
        if Instant::now() >= self.at {
            Step::Done(Ok(()))
        } else {
            Step::Wait(Interest::Until(self.at))
        }
    }
    fn wait_failed(_: io::Error) -> Infallible {
        unreachable!("registering a timer cannot fail")
    }
}

impl std::fmt::Debug for ScheduleAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScheduleAction").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for TimerAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimerAction").finish_non_exhaustive()
    }
}
