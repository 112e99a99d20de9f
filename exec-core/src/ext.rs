//! [`SenderExt`]: the adaptors as methods.

use crate::Sender;
use crate::adaptor::*;

/// Adaptor methods for every [`Sender`].
///
/// n-ary algorithms are free functions instead ([`when_all`](crate::when_all), …).
pub trait SenderExt: Sender + Sized {
    /// Transforms the value with `f`.
    ///
    /// # Completion
    /// - value: `f(value)`, on the context where `self` completed.
    /// - error, stopped: forwarded; `f` is not called and is dropped before
    ///   the completion is forwarded.
    ///
    /// # Cancellation
    /// Forwards the receiver's stop token to `self`.
    ///
    /// # Panics
    /// A panic in `f` is caught and delivered through
    /// [`Receiver::set_panic`](crate::Receiver::set_panic).
    ///
    /// # Example
    /// ```
    /// use exec_core::{just, sync_wait, SenderExt};
    /// assert_eq!(sync_wait(just(2).then(|x| x * 21)), Ok(Some(42)));
    /// ```
    ///
    /// # See also
    /// [`upon_error`](Self::upon_error), [`let_value`](Self::let_value).
    fn then<F, U>(self, f: F) -> Then<Self, F>
    where
        F: FnOnce(Self::Output) -> U,
    {
        Then::new(self, f)
    }

    // -- further adaptors are added below this line, one block each --
}

impl<S: Sender> SenderExt for S {}
