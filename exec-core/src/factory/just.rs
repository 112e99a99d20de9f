use core::convert::Infallible;
use core::marker::PhantomPinned;
use core::pin::Pin;

use crate::{OperationState, Receiver, Sender, SenderTo};

/// A sender that completes at once with `value`.
///
/// # Completion
/// - value: `value`, inline in `start`.
/// - error: never (`Error = Infallible`).
/// - stopped: never.
///
/// # Cancellation
/// None: it completes before a stop request could matter.
///
/// # Panics
/// Never.
///
/// # Example
/// ```
/// use exec_core::{just, sync_wait};
/// assert_eq!(sync_wait(just((1, "two"))), Ok(Some((1, "two"))));
/// ```
///
/// # See also
/// [`just_error`](crate::just_error), [`just_stopped`](crate::just_stopped).
pub fn just<T>(value: T) -> Just<T> {
    Just { value }
}

/// Sender for the [`just`] function.
#[must_use = "senders do nothing unless connected and started"]
#[derive(Clone, Debug)]
pub struct Just<T> {
    value: T,
}

impl<T> Sender for Just<T> {
    type Output = T;
    type Error = Infallible;
    const SENDS_STOPPED: bool = false;
}

impl<T, R: Receiver<T, Infallible>> SenderTo<R> for Just<T> {
    type Operation = JustOp<T, R>;
    fn connect(self, receiver: R) -> JustOp<T, R> {
        JustOp {
            inner: Some((self.value, receiver)),
            _pin: PhantomPinned,
        }
    }
}

/// Operation state of [`Just`].
#[derive(Debug)]
pub struct JustOp<T, R> {
    inner: Option<(T, R)>,
    /// Never `Unpin`: see [`OperationState`]'s rule on `Unpin`.
    _pin: PhantomPinned,
}

impl<T, R: Receiver<T, Infallible>> OperationState for JustOp<T, R> {
    unsafe fn start(self: Pin<&mut Self>) {
        // SAFETY: nothing here is structurally pinned; we only take the
        // option's contents out.
        let this = unsafe { self.get_unchecked_mut() };
        if let Some((value, receiver)) = this.inner.take() {
            receiver.set_value(value);
        }
    }
}
