//! [`SenderExt`]: the adaptors as methods.

use crate::adaptor::op_types::*;
use crate::adaptor::*;
use crate::{Sender, SenderTo};

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
    /// The first operation is dropped on the thread that completes it, so a
    /// first sender that completes on another thread must make a `Send`
    /// operation (see [`LetReceiver`](crate::ops::LetReceiver)).
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
    /// use exec_core::{just, just_error, sync_wait, SenderExt};
    /// let fail = just_error::<i32, &str>("no data");
    /// let s = fail.let_error(|e| just(e.len() as i32));
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
    /// use core::convert::Infallible;
    /// use exec_core::{just, just_stopped, sync_wait, SenderExt};
    /// // A sender that was stopped falls back to a default value.
    /// let s = just_stopped::<i32, Infallible>().let_stopped(|| just(-1));
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

    /// Recovers from an error: turns the error into a value with `f`.
    ///
    /// # Completion
    /// - value: forwarded; `f` is not called and is dropped before the
    ///   value is forwarded.
    /// - error: `f(error)` is sent as the value, on the context where `self`
    ///   completed. The result cannot fail any more: `Error = Infallible`
    ///   (use [`with_error`](Self::with_error) to give it an error type
    ///   again, e.g. to share one with siblings).
    /// - stopped: forwarded; `f` is not called and is dropped first.
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
    /// use exec_core::{just_error, sync_wait, SenderExt};
    /// let recovered = just_error::<usize, _>("four").upon_error(|e: &str| e.len());
    /// assert_eq!(sync_wait(recovered), Ok(Some(4)));
    /// ```
    ///
    /// # See also
    /// [`map_error`](Self::map_error), [`upon_stopped`](Self::upon_stopped),
    /// [`then`](Self::then).
    fn upon_error<F>(self, f: F) -> UponError<Self, F>
    where
        F: FnOnce(Self::Error) -> Self::Output,
    {
        UponError::new(self, f)
    }

    /// Recovers from *stopped*: sends `f()` as the value instead.
    ///
    /// # Completion
    /// - value, error: forwarded; `f` is not called and is dropped first.
    /// - stopped: `f()` is sent as the value. The result never completes
    ///   stopped (`SENDS_STOPPED = false`).
    ///
    /// # Cancellation
    /// Forwards the receiver's stop token to `self`; if `self` honours a
    /// stop request by completing stopped, the result is `f()`.
    ///
    /// # Panics
    /// A panic in `f` is caught and delivered through
    /// [`Receiver::set_panic`](crate::Receiver::set_panic).
    ///
    /// # Example
    /// ```
    /// use core::convert::Infallible;
    /// use exec_core::{just_stopped, sync_wait, SenderExt};
    /// let s = just_stopped::<i32, Infallible>().upon_stopped(|| -1);
    /// assert_eq!(sync_wait(s), Ok(Some(-1)));
    /// ```
    ///
    /// # See also
    /// [`stopped_as_optional`](Self::stopped_as_optional),
    /// [`stopped_as_error`](Self::stopped_as_error),
    /// [`upon_error`](Self::upon_error).
    fn upon_stopped<F>(self, f: F) -> UponStopped<Self, F>
    where
        F: FnOnce() -> Self::Output,
    {
        UponStopped::new(self, f)
    }

    /// Transforms the error with `f` (not in P2300; it lets senders with
    /// different error types share one, as `when_all` children must).
    ///
    /// # Completion
    /// - value, stopped: forwarded; `f` is not called and is dropped first.
    /// - error: `f(error)` is sent as the error.
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
    /// use exec_core::{just_error, sync_wait, SenderExt};
    /// let s = just_error::<(), _>(7u8).map_error(|code| format!("code {code}"));
    /// assert_eq!(sync_wait(s), Err("code 7".to_string()));
    /// ```
    ///
    /// # See also
    /// [`upon_error`](Self::upon_error), [`with_error`](Self::with_error).
    fn map_error<F, E2>(self, f: F) -> MapError<Self, F>
    where
        F: FnOnce(Self::Error) -> E2,
    {
        MapError::new(self, f)
    }

    /// Gives a sender that cannot fail (`Error = Infallible`) the error type
    /// `E`, so it can be combined with senders that fail with `E`.
    /// Zero-cost: no value of `E` is ever made.
    ///
    /// # Completion
    /// - value, stopped: forwarded unchanged.
    /// - error: never.
    ///
    /// # Cancellation
    /// Forwards the receiver's stop token to `self`.
    ///
    /// # Panics
    /// Forwards a panic of `self` through
    /// [`Receiver::set_panic`](crate::Receiver::set_panic).
    ///
    /// # Example
    /// ```
    /// use exec_core::{just, sync_wait, SenderExt};
    /// let s = just(1).with_error::<std::io::Error>();
    /// assert_eq!(sync_wait(s).unwrap(), Some(1));
    /// ```
    ///
    /// # See also
    /// [`map_error`](Self::map_error).
    fn with_error<E>(self) -> WithError<Self, E>
    where
        Self: Sender<Error = core::convert::Infallible>,
    {
        WithError::new(self)
    }

    /// Moves the error onto the value channel: the value becomes
    /// `Ok(value)`, the error `Err(error)`.
    ///
    /// # Completion
    /// - value: `Ok(value)`.
    /// - error: `Err(error)`, as the value; `Error = Infallible`.
    /// - stopped: forwarded.
    ///
    /// # Cancellation
    /// Forwards the receiver's stop token to `self`.
    ///
    /// # Panics
    /// Forwards a panic of `self` through
    /// [`Receiver::set_panic`](crate::Receiver::set_panic) (a panic is not an
    /// error value).
    ///
    /// # Example
    /// ```
    /// use exec_core::{just_error, sync_wait, SenderExt};
    /// let s = just_error::<i32, _>("bad").into_result();
    /// assert_eq!(sync_wait(s), Ok(Some(Err("bad"))));
    /// ```
    ///
    /// # See also
    /// [`materialize`](Self::materialize), [`into_variant`](Self::into_variant).
    fn into_result(self) -> IntoResult<Self> {
        IntoResult::new(self)
    }

    /// P2300's `into_variant`; here the identity, returning `self`.
    ///
    /// In C++ a sender may complete with several value signatures and
    /// `into_variant` folds them into one `variant<tuple<...>...>`. A Rust
    /// sender already has exactly one [`Output`](Sender::Output) type (a
    /// tuple, or an enum of the sender's choice), so there is nothing to
    /// fold. The method exists so that code ported from C++ reads the same
    /// and keeps compiling; it costs nothing. It deliberately does *not*
    /// touch the error channel: to fold the error into the value, use
    /// [`into_result`](Self::into_result) (or [`materialize`](Self::materialize)
    /// for all three channels).
    ///
    /// # Completion
    /// Exactly that of `self`.
    ///
    /// # Cancellation
    /// That of `self`.
    ///
    /// # Panics
    /// That of `self`.
    ///
    /// # Example
    /// ```
    /// use exec_core::{just, sync_wait, SenderExt};
    /// assert_eq!(sync_wait(just((1, 'a')).into_variant()), Ok(Some((1, 'a'))));
    /// ```
    ///
    /// # See also
    /// [`into_result`](Self::into_result), [`materialize`](Self::materialize).
    #[inline(always)]
    fn into_variant(self) -> Self {
        self
    }

    /// Moves *stopped* onto the value channel: the value becomes
    /// `Some(value)`, stopped becomes `None`.
    ///
    /// # Completion
    /// - value: `Some(value)`.
    /// - error: forwarded.
    /// - stopped: `None`, as the value; never completes stopped.
    ///
    /// # Cancellation
    /// Forwards the receiver's stop token to `self`; a stop honoured by
    /// `self` arrives as `None`.
    ///
    /// # Panics
    /// Forwards a panic of `self` through
    /// [`Receiver::set_panic`](crate::Receiver::set_panic).
    ///
    /// # Example
    /// ```
    /// use core::convert::Infallible;
    /// use exec_core::{just, just_stopped, sync_wait, SenderExt};
    /// assert_eq!(sync_wait(just(3).stopped_as_optional()), Ok(Some(Some(3))));
    /// let s = just_stopped::<i32, Infallible>().stopped_as_optional();
    /// assert_eq!(sync_wait(s), Ok(Some(None)));
    /// ```
    ///
    /// # See also
    /// [`stopped_as_error`](Self::stopped_as_error),
    /// [`upon_stopped`](Self::upon_stopped).
    fn stopped_as_optional(self) -> StoppedAsOptional<Self> {
        StoppedAsOptional::new(self)
    }

    /// Turns *stopped* into the error `error`.
    ///
    /// # Completion
    /// - value, error: forwarded; `error` is dropped first.
    /// - stopped: `error` is sent as the error; never completes stopped.
    ///
    /// # Cancellation
    /// Forwards the receiver's stop token to `self`; a stop honoured by
    /// `self` arrives as `error`.
    ///
    /// # Panics
    /// Forwards a panic of `self` through
    /// [`Receiver::set_panic`](crate::Receiver::set_panic).
    ///
    /// # Example
    /// ```
    /// use exec_core::{just_stopped, sync_wait, SenderExt};
    /// let s = just_stopped::<i32, &str>().stopped_as_error("cancelled");
    /// assert_eq!(sync_wait(s), Err("cancelled"));
    /// ```
    ///
    /// # See also
    /// [`stopped_as_optional`](Self::stopped_as_optional),
    /// [`upon_stopped`](Self::upon_stopped).
    fn stopped_as_error(self, error: Self::Error) -> StoppedAsError<Self, Self::Error> {
        StoppedAsError::new(self, error)
    }

    /// Layers `overlay` over the receiver's environment for `self`: queries
    /// the overlay answers ([`EnvOverlay`](crate::EnvOverlay)) get its
    /// answer, every other query goes to the receiver's environment.
    ///
    /// # Completion
    /// Exactly that of `self`; the overlay is dropped before the completion
    /// is forwarded.
    ///
    /// # Cancellation
    /// `self` sees the overlay's stop token if it has one
    /// ([`WithStopToken`](crate::WithStopToken)), else the receiver's.
    ///
    /// # Panics
    /// Forwards a panic of `self` through
    /// [`Receiver::set_panic`](crate::Receiver::set_panic).
    ///
    /// # Example
    /// ```
    /// use exec_core::{read_env, sync_wait, SenderExt, StopSource, WithStopToken};
    /// let source = StopSource::new();
    /// source.request_stop();
    /// let s = read_env(|env| env.stop_token().stop_requested())
    ///     .write_env(WithStopToken::source(&source));
    /// assert_eq!(sync_wait(s), Ok(Some(true)));
    /// ```
    ///
    /// # See also
    /// [`unstoppable`](Self::unstoppable), [`read_env`](crate::read_env).
    fn write_env<O>(self, overlay: O) -> WriteEnv<Self, O>
    where
        O: EnvOverlay,
    {
        WriteEnv::new(self, overlay)
    }

    /// Shields `self` from cancellation: it sees a stop token on which stop
    /// is never requested. (`write_env(WithStopToken::never())`.)
    ///
    /// # Completion
    /// Exactly that of `self` (which may still complete stopped on its own).
    ///
    /// # Cancellation
    /// None reaches `self`: stop requests on the receiver's token are not
    /// seen by it.
    ///
    /// # Panics
    /// Forwards a panic of `self` through
    /// [`Receiver::set_panic`](crate::Receiver::set_panic).
    ///
    /// # Example
    /// ```
    /// use exec_core::{read_env, sync_wait, SenderExt};
    /// let s = read_env(|env| env.stop_token().stop_possible()).unstoppable();
    /// assert_eq!(sync_wait(s), Ok(Some(false)));
    /// ```
    ///
    /// # See also
    /// [`write_env`](Self::write_env).
    fn unstoppable(self) -> Unstoppable<Self> {
        WriteEnv::new(self, crate::WithStopToken::never())
    }

    /// Runs `second` after `self` completes, on whichever channel, then
    /// delivers `self`'s completion (P2300-adjacent: stdexec's
    /// `exec::finally`).
    ///
    /// `self`'s result is stored in the operation state while `second`
    /// runs; `second` is connected at that moment, inside the pinned
    /// operation (no allocation). `second` sends `()`; its error type must
    /// convert into `self`'s ([`IntoError`](crate::IntoError), implemented
    /// for `Infallible`).
    ///
    /// # Completion
    /// - If `second` completes with a value: `self`'s completion (value,
    ///   error, stopped or panic), delivered where `second` completed.
    /// - If `second` completes with an error, stopped or a panic, that
    ///   completion **wins**: `self`'s stored result is dropped and the
    ///   second's completion is delivered. (A failing clean-up is never
    ///   silently lost.)
    ///
    /// # Cancellation
    /// Both senders see the receiver's stop token; a stop request while
    /// `second` runs can therefore turn the result into *stopped*. Use
    /// `second.unstoppable()` for a clean-up that must run to completion.
    ///
    /// # Panics
    /// A panic of `self` is stored like any completion and re-delivered
    /// through [`Receiver::set_panic`](crate::Receiver::set_panic) after
    /// `second` completed with a value.
    ///
    /// # Example
    /// ```
    /// use std::cell::Cell;
    /// use exec_core::{just, sync_wait, SenderExt};
    /// let cleaned = Cell::new(false);
    /// let s = just(5).finally(just(()).then(|()| cleaned.set(true)));
    /// assert_eq!(sync_wait(s), Ok(Some(5)));
    /// assert!(cleaned.get());
    /// ```
    ///
    /// # See also
    /// [`continues_on`](Self::continues_on), [`unstoppable`](Self::unstoppable).
    fn finally<S2>(self, second: S2) -> Finally<Self, S2>
    where
        S2: Sender<Output = ()>,
        S2::Error: crate::IntoError<Self::Error>,
    {
        Finally::new(self, second)
    }

    /// After `self` completes, hops to `scheduler` and delivers the
    /// completion from there (P2300's `continues_on`, formerly `transfer`).
    ///
    /// `self`'s result is stored in the operation state while the schedule
    /// operation runs; that operation is connected at that moment, inside
    /// the pinned operation state (no allocation). It is
    /// [`finally`](Self::finally) with `scheduler.schedule()`.
    ///
    /// # Completion
    /// - value, error, stopped, panic of `self`: delivered on `scheduler`'s
    ///   context once the schedule operation completes with a value.
    /// - If the schedule operation fails or completes stopped, that wins
    ///   and `self`'s result is dropped. Its error converts with
    ///   [`IntoError`](crate::IntoError) (implemented for `Infallible`).
    ///
    /// # Cancellation
    /// `self` and the schedule operation see the receiver's stop token: a
    /// stop request while the hop is queued typically ends the whole
    /// *stopped*, dropping `self`'s result.
    ///
    /// # Panics
    /// Forwards a panic of `self` (after the hop) or of the schedule
    /// operation through [`Receiver::set_panic`](crate::Receiver::set_panic).
    ///
    /// # Example
    /// ```
    /// use exec_core::{just, sync_wait, InlineScheduler, SenderExt};
    /// let s = just(41).continues_on(InlineScheduler).then(|x| x + 1);
    /// assert_eq!(sync_wait(s), Ok(Some(42)));
    /// ```
    ///
    /// # See also
    /// [`starts_on`](crate::starts_on), [`on`](crate::on),
    /// [`finally`](Self::finally).
    fn continues_on<Sch>(self, scheduler: Sch) -> ContinuesOn<Self, Sch>
    where
        Sch: crate::Scheduler,
        <Sch::Sender as Sender>::Error: crate::IntoError<Self::Error>,
    {
        Finally::new(self, scheduler.schedule())
    }

    /// Makes every completion a value: `Completion::Value(v)`,
    /// `Completion::Error(e)` or `Completion::Stopped`.
    ///
    /// # Completion
    /// - value, error, stopped: as a [`Completion`](crate::Completion) on
    ///   the value channel. The result never fails (`Error = Infallible`)
    ///   and never completes stopped.
    ///
    /// # Cancellation
    /// Forwards the receiver's stop token to `self`; a stop honoured by
    /// `self` arrives as `Completion::Stopped`.
    ///
    /// # Panics
    /// A panic is not a completion value: it is forwarded through
    /// [`Receiver::set_panic`](crate::Receiver::set_panic).
    ///
    /// # Example
    /// ```
    /// use exec_core::{just_error, sync_wait, Completion, SenderExt};
    /// let s = just_error::<i32, _>("e").materialize();
    /// assert_eq!(sync_wait(s), Ok(Some(Completion::Error("e"))));
    /// ```
    ///
    /// # See also
    /// [`dematerialize`](Self::dematerialize), [`into_result`](Self::into_result).
    fn materialize(self) -> Materialize<Self> {
        Materialize::new(self)
    }

    /// The inverse of [`materialize`](Self::materialize): a sender of
    /// [`Completion<T, E>`](crate::Completion) completes on the channel the
    /// value names.
    ///
    /// # Completion
    /// - value `Completion::Value(v)` / `Error(e)` / `Stopped`: completes
    ///   with value `v` / error `e` / stopped.
    /// - error of `self`: forwarded, converted with
    ///   [`IntoError`](crate::IntoError) (`Infallible` for a materialized
    ///   sender).
    /// - stopped of `self`: forwarded.
    ///
    /// # Cancellation
    /// Forwards the receiver's stop token to `self`.
    ///
    /// # Panics
    /// Forwards a panic of `self` through
    /// [`Receiver::set_panic`](crate::Receiver::set_panic).
    ///
    /// # Example
    /// ```
    /// use exec_core::{just, sync_wait, Completion, SenderExt};
    /// let s = just(Completion::<i32, &str>::Error("e")).dematerialize();
    /// assert_eq!(sync_wait(s), Err("e"));
    /// ```
    ///
    /// # See also
    /// [`materialize`](Self::materialize).
    fn dematerialize<T, E>(self) -> Dematerialize<Self>
    where
        Self: Sender<Output = crate::Completion<T, E>>,
        Self::Error: crate::IntoError<E>,
    {
        Dematerialize::new(self)
    }

    /// Calls `f(i, &mut value)` for every `i` in `0..n`, in order on the
    /// completing thread, then sends the value. (exec-pool provides the
    /// parallel `bulk`.)
    ///
    /// # Completion
    /// - value: the value after `n` calls of `f`.
    /// - error, stopped: forwarded; `f` is not called and is dropped first.
    ///
    /// # Cancellation
    /// Forwards the receiver's stop token to `self`. Once started, the `n`
    /// calls are not interrupted.
    ///
    /// # Panics
    /// A panic in `f` stops the loop; the value is dropped and the payload is
    /// delivered through [`Receiver::set_panic`](crate::Receiver::set_panic).
    ///
    /// # Example
    /// ```
    /// use exec_core::{just, sync_wait, SenderExt};
    /// let s = just(vec![0; 4]).bulk(4, |i, v: &mut Vec<usize>| v[i] = i * i);
    /// assert_eq!(sync_wait(s), Ok(Some(vec![0, 1, 4, 9])));
    /// ```
    ///
    /// # See also
    /// [`then`](Self::then).
    fn bulk<F>(self, n: usize, f: F) -> Bulk<Self, F>
    where
        F: FnMut(usize, &mut Self::Output),
    {
        Bulk::new(self, n, f)
    }

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
