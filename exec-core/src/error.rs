//! [`IntoError`]: how an algorithm merges a second error channel into the
//! first.

use core::convert::Infallible;

/// Converts the error of a helper sender (a scheduler's `schedule()` sender,
/// a `finally` clean-up) into the error type of the main sender.
///
/// Algorithms that run two senders in sequence and complete with the error
/// type of the main one ([`finally`](crate::SenderExt::finally),
/// [`continues_on`](crate::SenderExt::continues_on),
/// [`starts_on`](crate::starts_on), [`on`](crate::on)) require the helper's
/// error to implement `IntoError<MainError>`.
///
/// It is implemented for [`Infallible`] into every error type, which covers
/// the usual case: schedulers and clean-up senders that cannot fail. Rust's
/// coherence rules do not allow a blanket identity impl next to that one, so
/// a helper whose error type is the *same* as the main sender's needs a
/// one-line impl for that type:
///
/// ```
/// use exec_core::IntoError;
///
/// #[derive(Debug, PartialEq)]
/// struct MyError;
/// impl IntoError<MyError> for MyError {
///     fn into_error(self) -> MyError {
///         self
///     }
/// }
/// ```
pub trait IntoError<E> {
    /// Converts `self` into `E`.
    fn into_error(self) -> E;
}

impl<E> IntoError<E> for Infallible {
    #[inline(always)]
    fn into_error(self) -> E {
        match self {}
    }
}
