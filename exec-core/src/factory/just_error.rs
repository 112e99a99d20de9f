use core::fmt;
use core::marker::{PhantomData, PhantomPinned};
use core::pin::Pin;

use crate::{OperationState, Receiver, Sender, SenderTo};

/// A sender that completes at once with the error `error`.
///
/// Rust senders have exactly one value type, so `JustError` names the value
/// type `T` it would send (it never does), like `Err::<T, E>(e)` names the
/// `Ok` type. `T` is usually inferred from where the sender is used.
///
/// # Completion
/// - value: never.
/// - error: `error`, inline in `start`.
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
/// use exec_core::{just_error, sync_wait};
/// assert_eq!(sync_wait(just_error::<i32, _>("boom")), Err("boom"));
/// ```
///
/// # See also
/// [`just`](crate::just), [`just_stopped`](crate::just_stopped),
/// [`upon_error`](crate::SenderExt::upon_error).
pub fn just_error<T, E>(error: E) -> JustError<T, E> {
    JustError {
        error,
        _value: PhantomData,
    }
}

/// Sender for the [`just_error`] function.
#[must_use = "senders do nothing unless connected and started"]
pub struct JustError<T, E> {
    error: E,
    _value: PhantomData<fn() -> T>,
}

impl<T, E: Clone> Clone for JustError<T, E> {
    fn clone(&self) -> Self {
        just_error(self.error.clone())
    }
}

impl<T, E: fmt::Debug> fmt::Debug for JustError<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JustError")
            .field("error", &self.error)
            .finish()
    }
}

impl<T, E> Sender for JustError<T, E> {
    type Output = T;
    type Error = E;
    const SENDS_STOPPED: bool = false;
}

impl<T, E, R: Receiver<T, E>> SenderTo<R> for JustError<T, E> {
    type Operation = JustErrorOp<T, E, R>;
    fn connect(self, receiver: R) -> JustErrorOp<T, E, R> {
        JustErrorOp {
            inner: Some((self.error, receiver)),
            _value: PhantomData,
            _pin: PhantomPinned,
        }
    }
}

/// Operation state of [`JustError`].
pub struct JustErrorOp<T, E, R> {
    inner: Option<(E, R)>,
    _value: PhantomData<fn() -> T>,
    /// Never `Unpin`: see [`OperationState`]'s rule on `Unpin`.
    _pin: PhantomPinned,
}

impl<T, E, R> fmt::Debug for JustErrorOp<T, E, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JustErrorOp")
            .field("started", &self.inner.is_none())
            .finish_non_exhaustive()
    }
}

impl<T, E, R: Receiver<T, E>> OperationState for JustErrorOp<T, E, R> {
    unsafe fn start(self: Pin<&mut Self>) {
        // SAFETY: nothing here is structurally pinned; we only take the
        // option's contents out.
        let this = unsafe { self.get_unchecked_mut() };
        if let Some((error, receiver)) = this.inner.take() {
            receiver.set_error(error);
        }
    }
}
