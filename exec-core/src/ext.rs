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

    /// Runs `self` again and again (a fresh clone each time) until `pred`
    /// returns `true` for an iteration's value, then completes with `()`.
    ///
    /// P2300's `repeat_effect_until` repeats a sender of `bool` until it
    /// sends `true`: that is `s.repeat_effect_until(|done| done)`. State
    /// carried across iterations lives in what the sender and `pred` share.
    /// Each iteration's operation is connected in place of the previous one
    /// (no allocation); iterations that complete inline run in a loop, so
    /// the stack does not grow with the number of iterations.
    ///
    /// # Completion
    /// - value: `()`, once `pred` returned `true` (on the context of the
    ///   last iteration).
    /// - error, stopped: the first iteration that fails or is stopped ends
    ///   the loop and is forwarded; `pred` is not called for it.
    ///
    /// # Cancellation
    /// Each iteration sees the receiver's stop token; a stop request is also
    /// checked between iterations and ends the loop with *stopped*.
    ///
    /// # Panics
    /// A panic in `pred`, in `clone`, or of an iteration ends the loop and is
    /// delivered through [`Receiver::set_panic`](crate::Receiver::set_panic).
    ///
    /// # Example
    /// ```
    /// use core::cell::Cell;
    /// use exec_core::{just, sync_wait, SenderExt};
    /// let n = Cell::new(0);
    /// let step = just(()).then(|()| { n.set(n.get() + 1); n.get() });
    /// assert_eq!(sync_wait(step.repeat_effect_until(|v| v == 5)), Ok(Some(())));
    /// assert_eq!(n.get(), 5);
    /// ```
    ///
    /// # See also
    /// [`repeat_n`](Self::repeat_n), [`let_value`](Self::let_value).
    fn repeat_effect_until<P>(self, pred: P) -> RepeatEffectUntil<Self, P>
    where
        Self: Clone,
        P: FnMut(Self::Output) -> bool,
    {
        RepeatEffectUntil::new(self, pred)
    }

    /// Runs `self` `n` times in a row (a fresh clone each time), discarding
    /// the values, then completes with `()`. `n == 0` completes at once.
    ///
    /// Same loop as [`repeat_effect_until`](Self::repeat_effect_until):
    /// no allocation, no stack growth for inline iterations.
    ///
    /// # Completion
    /// - value: `()` after the `n`-th iteration's value.
    /// - error, stopped: the first iteration that fails or is stopped ends
    ///   the loop and is forwarded.
    ///
    /// # Cancellation
    /// Each iteration sees the receiver's stop token; a stop request is also
    /// checked between iterations and ends the loop with *stopped*.
    ///
    /// # Panics
    /// A panic in `clone` or of an iteration ends the loop and is delivered
    /// through [`Receiver::set_panic`](crate::Receiver::set_panic).
    ///
    /// # Example
    /// ```
    /// use core::cell::Cell;
    /// use exec_core::{just, sync_wait, SenderExt};
    /// let n = Cell::new(0);
    /// assert_eq!(sync_wait(just(()).then(|()| n.set(n.get() + 1)).repeat_n(3)), Ok(Some(())));
    /// assert_eq!(n.get(), 3);
    /// ```
    ///
    /// # See also
    /// [`repeat_effect_until`](Self::repeat_effect_until).
    fn repeat_n(self, n: usize) -> RepeatN<Self>
    where
        Self: Clone,
    {
        RepeatN::new(self, n)
    }

    /// Erases the type of this sender: an [`AnySender`] (one allocation).
    ///
    /// # Completion
    /// As `self`.
    ///
    /// # Cancellation
    /// The receiver's stop token is forwarded to `self`.
    ///
    /// # Panics
    /// Panics of `self` are forwarded.
    ///
    /// # Example
    /// ```
    /// use exec_core::{just, sync_wait, AnySender, SenderExt};
    /// let senders: Vec<AnySender<i32, core::convert::Infallible>> =
    ///     vec![just(1).boxed(), just(2).then(|x| x * 10).boxed()];
    /// let got: Vec<_> = senders.into_iter().map(|s| sync_wait(s).unwrap().unwrap()).collect();
    /// assert_eq!(got, [1, 20]);
    /// ```
    ///
    /// # See also
    /// [`AnySender`].
    fn boxed<T, E>(self) -> AnySender<T, E>
    where
        Self: Sender<Output = T, Error = E> + SenderTo<AnyReceiver<T, E>> + Send + 'static,
        <Self as SenderTo<AnyReceiver<T, E>>>::Operation: Send + 'static,
        T: 'static,
        E: 'static,
    {
        AnySender::new(self)
    }

    /// Runs the sender `f` makes from the value, and completes as it does.
    ///
    /// `f` receives the value **by value**; whatever it needs from it, it
    /// moves into the sender it returns, so the values stay alive exactly
    /// until that sender has completed (P2300 keeps them alive by storing
    /// them in the operation; moving them gives the same guarantee). The
    /// second operation is connected in the storage of the finished first
    /// one: the operation is as large as the larger of the two. No
    /// allocation. If the first sender completes inline, the second is
    /// started after the first `start` returned, not nested inside it.
    ///
    /// # Completion
    /// - value: `f(value)` is connected to the receiver and started; its
    ///   completion is forwarded.
    /// - error, stopped: forwarded (the error converted with `Into`); `f` is
    ///   not called and is dropped before the completion is forwarded.
    ///
    /// # Cancellation
    /// The receiver's stop token is seen by both senders.
    ///
    /// # Panics
    /// A panic in `f` is caught and delivered through
    /// [`Receiver::set_panic`](crate::Receiver::set_panic).
    ///
    /// # Example
    /// ```
    /// use exec_core::{just, sync_wait, SenderExt};
    /// let s = just(String::from("forty-two")).let_value(|s| just(s.len()));
    /// assert_eq!(sync_wait(s), Ok(Some(9)));
    /// ```
    ///
    /// # See also
    /// [`then`](Self::then), [`let_error`](Self::let_error),
    /// [`let_stopped`](Self::let_stopped).
    fn let_value<F, N>(self, f: F) -> LetValue<Self, F>
    where
        F: FnOnce(Self::Output) -> N,
        N: Sender,
    {
        LetValue::new(self, f)
    }

    /// Runs the sender `f` makes from the error, and completes as it does.
    ///
    /// `f` receives the error by value (see [`let_value`](Self::let_value)
    /// for lifetimes and layout).
    ///
    /// # Completion
    /// - error: `f(error)` is connected to the receiver and started; its
    ///   completion is forwarded.
    /// - value, stopped: forwarded (the value converted with `Into`); `f` is
    ///   not called and is dropped before the completion is forwarded.
    ///
    /// # Cancellation
    /// The receiver's stop token is seen by both senders.
    ///
    /// # Panics
    /// A panic in `f` is caught and delivered through
    /// [`Receiver::set_panic`](crate::Receiver::set_panic). A panic of the
    /// first sender is forwarded, not handed to `f`.
    ///
    /// # Example
    /// ```
    /// use exec_core::{just, sync_wait, Completion, SenderExt};
    /// # use exec_core::{Receiver, Sender, SenderTo, OperationState};
    /// # struct Fail;
    /// # impl Sender for Fail { type Output = i32; type Error = &'static str; }
    /// # impl<R: Receiver<i32, &'static str>> SenderTo<R> for Fail {
    /// #     type Operation = FailOp<R>;
    /// #     fn connect(self, r: R) -> FailOp<R> { FailOp(Some(r)) }
    /// # }
    /// # struct FailOp<R>(Option<R>);
    /// # impl<R: Receiver<i32, &'static str>> OperationState for FailOp<R> {
    /// #     unsafe fn start(self: core::pin::Pin<&mut Self>) {
    /// #         let this = unsafe { self.get_unchecked_mut() };
    /// #         this.0.take().unwrap().set_error("no data");
    /// #     }
    /// # }
    /// let s = Fail.let_error(|e: &str| just(e.len() as i32));
    /// assert_eq!(sync_wait(s), Ok(Some(7)));
    /// ```
    ///
    /// # See also
    /// [`upon_error`](Self::upon_error), [`let_value`](Self::let_value).
    fn let_error<F, N>(self, f: F) -> LetError<Self, F>
    where
        F: FnOnce(Self::Error) -> N,
        N: Sender,
    {
        LetError::new(self, f)
    }

    /// Runs the sender `f` makes if `self` completes *stopped*, and
    /// completes as it does.
    ///
    /// See [`let_value`](Self::let_value) for layout.
    ///
    /// # Completion
    /// - stopped: `f()` is connected to the receiver and started; its
    ///   completion is forwarded.
    /// - value, error: forwarded (converted with `Into`); `f` is not called
    ///   and is dropped before the completion is forwarded.
    ///
    /// # Cancellation
    /// The receiver's stop token is seen by both senders; `f`'s sender still
    /// sees it triggered if that is what stopped the first one.
    ///
    /// # Panics
    /// A panic in `f` is caught and delivered through
    /// [`Receiver::set_panic`](crate::Receiver::set_panic).
    ///
    /// # Example
    /// ```
    /// use exec_core::{just, sync_wait, InlineScheduler, Scheduler, SenderExt, StopSource};
    /// // A sender that was stopped falls back to a default value.
    /// # use exec_core::{Receiver, Sender, SenderTo, OperationState};
    /// # struct Stopped;
    /// # impl Sender for Stopped { type Output = i32; type Error = core::convert::Infallible; }
    /// # impl<R: Receiver<i32, core::convert::Infallible>> SenderTo<R> for Stopped {
    /// #     type Operation = StopOp<R>;
    /// #     fn connect(self, r: R) -> StopOp<R> { StopOp(Some(r)) }
    /// # }
    /// # struct StopOp<R>(Option<R>);
    /// # impl<R: Receiver<i32, core::convert::Infallible>> OperationState for StopOp<R> {
    /// #     unsafe fn start(self: core::pin::Pin<&mut Self>) {
    /// #         let this = unsafe { self.get_unchecked_mut() };
    /// #         this.0.take().unwrap().set_stopped();
    /// #     }
    /// # }
    /// let s = Stopped.let_stopped(|| just(-1));
    /// assert_eq!(sync_wait(s), Ok(Some(-1)));
    /// ```
    ///
    /// # See also
    /// [`upon_stopped`](Self::upon_stopped), [`let_value`](Self::let_value).
    fn let_stopped<F, N>(self, f: F) -> LetStopped<Self, F>
    where
        F: FnOnce() -> N,
        N: Sender,
    {
        LetStopped::new(self, f)
    }
}

impl<S: Sender> SenderExt for S {}
