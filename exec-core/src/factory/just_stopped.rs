use core::fmt;
use core::marker::{PhantomData, PhantomPinned};
use core::pin::Pin;

use crate::{OperationState, Receiver, Sender, SenderTo};

/// A sender that completes at once with *stopped*.
///
/// Rust senders have exactly one value type and one error type, so
/// `JustStopped` names both (it sends neither); they are usually inferred
/// from where the sender is used.
///
/// # Completion
/// - value: never.
/// - error: never.
/// - stopped: inline in `start`.
///
/// # Cancellation
/// Not applicable: it always completes stopped.
///
/// # Panics
/// Never.
///
/// # Example
/// ```
/// use core::convert::Infallible;
/// use exec_core::{just_stopped, sync_wait};
/// assert_eq!(sync_wait(just_stopped::<i32, Infallible>()), Ok(None));
/// ```
///
/// # See also
/// [`just`](crate::just), [`just_error`](crate::just_error),
/// [`upon_stopped`](crate::SenderExt::upon_stopped),
/// [`stopped_as_optional`](crate::SenderExt::stopped_as_optional).
pub fn just_stopped<T, E>() -> JustStopped<T, E> {
    JustStopped {
        _types: PhantomData,
    }
}

/// Sender for the [`just_stopped`] function.
#[must_use = "senders do nothing unless connected and started"]
pub struct JustStopped<T, E> {
    _types: PhantomData<fn() -> (T, E)>,
}

impl<T, E> Clone for JustStopped<T, E> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T, E> Copy for JustStopped<T, E> {}

impl<T, E> fmt::Debug for JustStopped<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JustStopped")
    }
}

impl<T, E> Sender for JustStopped<T, E> {
    type Output = T;
    type Error = E;
}

impl<T, E, R: Receiver<T, E>> SenderTo<R> for JustStopped<T, E> {
    type Operation = JustStoppedOp<T, E, R>;
    fn connect(self, receiver: R) -> JustStoppedOp<T, E, R> {
        JustStoppedOp {
            receiver: Some(receiver),
            _types: PhantomData,
            _pin: PhantomPinned,
        }
    }
}

/// Operation state of [`JustStopped`].
pub struct JustStoppedOp<T, E, R> {
    receiver: Option<R>,
    _types: PhantomData<fn() -> (T, E)>,
    /// Never `Unpin`: see [`OperationState`]'s rule on `Unpin`.
    _pin: PhantomPinned,
}

impl<T, E, R> fmt::Debug for JustStoppedOp<T, E, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JustStoppedOp")
            .field("started", &self.receiver.is_none())
            .finish()
    }
}

impl<T, E, R: Receiver<T, E>> OperationState for JustStoppedOp<T, E, R> {
    unsafe fn start(self: Pin<&mut Self>) {
        // SAFETY: nothing here is structurally pinned; we only take the
        // option's contents out.
        let this = unsafe { self.get_unchecked_mut() };
        if let Some(receiver) = this.receiver.take() {
            receiver.set_stopped();
        }
    }
}
