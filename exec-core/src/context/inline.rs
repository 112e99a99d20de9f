use core::convert::Infallible;
use core::marker::PhantomPinned;
use core::pin::Pin;

use crate::{CompletionScheduler, Env, OperationState, Receiver, Scheduler, Sender, SenderTo};

/// A scheduler whose `schedule()` completes at once, on the thread that
/// starts it.
///
/// # Completion
/// `schedule()` completes with `()` inline in `start`, or *stopped* if the
/// receiver's stop token was already triggered.
///
/// # Cancellation
/// The receiver's stop token is checked once, in `start`.
///
/// # Panics
/// Never.
///
/// # Example
/// ```
/// use exec_core::{sync_wait, InlineScheduler, Scheduler, SenderExt};
/// assert_eq!(sync_wait(InlineScheduler.schedule().then(|()| 7)), Ok(Some(7)));
/// ```
///
/// # See also
/// [`TrampolineScheduler`](crate::TrampolineScheduler) (inline, but with a
/// bound on stack depth), [`RunLoop`](crate::RunLoop).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct InlineScheduler;

impl Scheduler for InlineScheduler {
    type Sender = InlineSender;
    fn schedule(&self) -> InlineSender {
        InlineSender
    }
}

/// Sender for [`InlineScheduler::schedule`].
#[must_use = "senders do nothing unless connected and started"]
#[derive(Clone, Copy, Debug, Default)]
pub struct InlineSender;

impl Sender for InlineSender {
    type Output = ();
    type Error = Infallible;
}

impl CompletionScheduler for InlineSender {
    type Scheduler = InlineScheduler;
    fn completion_scheduler(&self) -> InlineScheduler {
        InlineScheduler
    }
}

impl<R: Receiver<(), Infallible>> SenderTo<R> for InlineSender {
    type Operation = InlineOp<R>;
    fn connect(self, receiver: R) -> InlineOp<R> {
        InlineOp {
            receiver: Some(receiver),
            _pin: PhantomPinned,
        }
    }
}

/// Operation state of [`InlineSender`].
#[derive(Debug)]
pub struct InlineOp<R> {
    receiver: Option<R>,
    /// Never `Unpin`: see [`OperationState`]'s rule on `Unpin`.
    _pin: PhantomPinned,
}

impl<R: Receiver<(), Infallible>> OperationState for InlineOp<R> {
    unsafe fn start(self: Pin<&mut Self>) {
        // SAFETY: no field is structurally pinned.
        let this = unsafe { self.get_unchecked_mut() };
        if let Some(r) = this.receiver.take() {
            let stopped = r.env().stop_token().stop_requested();
            if stopped {
                r.set_stopped();
            } else {
                r.set_value(());
            }
        }
    }
}
