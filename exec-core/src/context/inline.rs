use core::convert::Infallible;
use core::marker::PhantomPinned;
use core::pin::Pin;
use core::ptr::NonNull;

use crate::{
    CompletionScheduler, DynScheduler, Env, OperationState, Receiver, Scheduler, SchedulerRef,
    Sender, SenderTo, TaskNode,
};

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
    /// A context that executes a node at once, inside `enqueue`.
    fn erased(&self) -> Option<SchedulerRef<'_>> {
        Some(SchedulerRef::new(&INLINE_CONTEXT))
    }
}

/// What [`InlineScheduler::erased`] refers to: one byte, so that it has an
/// address of its own (a context is identified by its address).
struct InlineContext(#[allow(dead_code)] u8);

static INLINE_CONTEXT: InlineContext = InlineContext(0);

// SAFETY: executes the node once, inline, and touches nothing afterwards.
unsafe impl DynScheduler for InlineContext {
    unsafe fn enqueue(_this: NonNull<Self>, node: NonNull<TaskNode>) {
        // SAFETY: the caller hands over a live node, executed only here.
        unsafe { TaskNode::execute(node, false) }
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
