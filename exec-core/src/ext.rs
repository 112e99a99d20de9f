//! [`SenderExt`]: the adaptors as methods.

use crate::Sender;
use crate::adaptor::*;

/// Adaptor methods for every [`Sender`].
///
/// n-ary algorithms are free functions instead ([`when_all`](fn@crate::when_all), …).
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

    /// Races `self` against `trigger`: the work is asked to stop when the
    /// trigger completes first; the result is the work's completion.
    ///
    /// # Completion
    /// The work's value, error or stopped, once both have completed.
    ///
    /// # Cancellation
    /// Whichever completes first stops the other; a stop request from the
    /// receiver reaches both.
    ///
    /// # Panics
    /// A panic in the work or the trigger is delivered through
    /// [`Receiver::set_panic`](crate::Receiver::set_panic) (the work's wins).
    ///
    /// # Example
    /// ```
    /// use exec_core::{just, sync_wait, SenderExt};
    /// assert_eq!(sync_wait(just(1).stop_when(just(()))), Ok(Some(1)));
    /// ```
    ///
    /// # See also
    /// [`stop_when`](crate::stop_when) (the free function, with details).
    fn stop_when<T: crate::Sender>(self, trigger: T) -> StopWhen<Self, T> {
        crate::stop_when(self, trigger)
    }
}

impl<S: Sender> SenderExt for S {}
