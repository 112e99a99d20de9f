//! [`SenderExt`]: the adaptors as methods.

use crate::adaptor::*;
use crate::{Sender, SenderTo};

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

    /// Makes this sender multi-shot: every connected copy of the returned
    /// (cloneable) sender shares **one** run of `self`, started when the
    /// first copy starts, and receives a clone of its result.
    ///
    /// `split` allocates once (the shared block holding `self`, its
    /// operation state and the result); consumers wait as intrusive nodes in
    /// their own operation states.
    ///
    /// # Completion
    /// - value, error: a clone of the predecessor's value or error, for every
    ///   consumer, on the thread that completed the predecessor (consumers
    ///   that start later complete inline in `start`).
    /// - stopped: if the predecessor completed stopped, or if this consumer
    ///   was stopped (see below).
    ///
    /// # Cancellation
    /// - A consumer whose stop token is triggered before it starts completes
    ///   *stopped*, even if the shared value is ready.
    /// - A consumer whose stop is requested while it waits leaves the queue
    ///   and completes *stopped* at once.
    /// - The predecessor sees a stop token of its own, which is triggered
    ///   only when the last waiting consumer has left that way. Consumers
    ///   that start after that wait for the (probably stopped) result.
    ///
    /// # Panics
    /// A panic of the predecessor is delivered to every consumer through
    /// [`Receiver::set_panic`](crate::Receiver::set_panic): the first
    /// consumer to receive it gets the original payload, every other one a
    /// `String` payload with the same message (payloads cannot be cloned).
    /// A panic in `Clone` is delivered to that consumer only.
    ///
    /// # Example
    /// ```
    /// use exec_core::{just, sync_wait, SenderExt};
    /// let shared = just(21).then(|x| x * 2).split();
    /// assert_eq!(sync_wait(shared.clone()), Ok(Some(42)));
    /// assert_eq!(sync_wait(shared.then(|x| x + 1)), Ok(Some(43)));
    /// ```
    ///
    /// # See also
    /// [`ensure_started`](Self::ensure_started) (eager, single consumer).
    fn split(self) -> Split<Self>
    where
        Self: SenderTo<SplitReceiver<<Self as Sender>::Output, <Self as Sender>::Error>>,
    {
        Split::new(self)
    }

    /// Starts this sender **now** and returns a single-shot sender for its
    /// result.
    ///
    /// One allocation holds the running operation state and the result.
    /// Dropping the returned sender without connecting and starting it
    /// requests stop of the work and detaches it: the allocation is freed
    /// when the work completes, and its result is dropped.
    ///
    /// # Completion
    /// - value, error, stopped: what the work completed with, moved to the
    ///   consumer; on the thread that completed the work, or inline in
    ///   `start` if it had already completed.
    ///
    /// # Cancellation
    /// The work sees a stop token of its own. It is triggered when the
    /// returned sender is dropped unstarted, when the consumer's stop token
    /// is triggered before or while it waits (the consumer then completes
    /// *stopped* at once; the work finishes detached).
    ///
    /// # Panics
    /// A panic of the work is delivered to the consumer with its original
    /// payload. If there is no consumer any more (detached), it is dropped.
    ///
    /// # Example
    /// ```
    /// use exec_core::{just, sync_wait, SenderExt};
    /// let running = just(6).then(|x| x * 7).ensure_started(); // runs here
    /// assert_eq!(sync_wait(running), Ok(Some(42)));
    /// ```
    ///
    /// # See also
    /// [`split`](Self::split) (lazy, many consumers),
    /// `AsyncScope::spawn_future` (counted in a scope).
    fn ensure_started(self) -> EnsureStarted<Self::Output, Self::Error>
    where
        Self: SenderTo<EnsureStartedReceiver<<Self as Sender>::Output, <Self as Sender>::Error>>,
        <Self as SenderTo<
            EnsureStartedReceiver<<Self as Sender>::Output, <Self as Sender>::Error>,
        >>::Operation: Send,
    {
        EnsureStarted::from_ref(crate::adaptor::start_eagerly(self, ()))
    }
}

impl<S: Sender> SenderExt for S {}
