use core::fmt;

use crate::{Env, PanicPayload, Receiver, SchedulerRef, Sender, SenderTo, StopSource, StopToken};

/// Answers some environment queries in place of the receiver's environment;
/// used with [`write_env`](crate::SenderExt::write_env).
///
/// Every method answers one [`Env`] query. Returning `None` (the default)
/// means "not answered here": the query goes on to the receiver's own
/// environment. So an overlay only names what it changes, and a query added
/// to `Env` later is forwarded by every existing overlay.
///
/// ```
/// use exec_core::{EnvOverlay, StopSource, StopToken};
///
/// /// Child work observes `source` instead of the outer token.
/// struct Scoped<'a>(&'a StopSource);
/// impl EnvOverlay for Scoped<'_> {
///     fn stop_token(&self) -> Option<StopToken<'_>> {
///         Some(self.0.token())
///     }
/// }
/// ```
pub trait EnvOverlay {
    /// The stop token to report, or `None` to forward the query.
    #[inline]
    fn stop_token(&self) -> Option<StopToken<'_>> {
        None
    }
    /// The current scheduler to report (`Some(None)`: report none), or
    /// `None` to forward the query.
    #[inline]
    fn scheduler(&self) -> Option<Option<SchedulerRef<'_>>> {
        None
    }
}

/// The overlay that answers nothing: every query is forwarded.
impl EnvOverlay for () {}

/// An [`EnvOverlay`] that replaces the stop token and forwards every other
/// query.
///
/// [`unstoppable`](crate::SenderExt::unstoppable) uses
/// [`WithStopToken::never`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WithStopToken<'a> {
    token: StopToken<'a>,
}

impl<'a> WithStopToken<'a> {
    /// Reports `token` as the stop token.
    pub fn new(token: StopToken<'a>) -> Self {
        WithStopToken { token }
    }

    /// Reports the token of `source`: stop is requested on the child work
    /// when `source.request_stop()` is called (and no longer when the outer
    /// token is triggered).
    pub fn source(source: &'a StopSource) -> Self {
        WithStopToken {
            token: source.token(),
        }
    }

    /// Reports a token on which stop is never requested.
    pub const fn never() -> WithStopToken<'static> {
        WithStopToken {
            token: StopToken::never(),
        }
    }
}

impl EnvOverlay for WithStopToken<'_> {
    #[inline]
    fn stop_token(&self) -> Option<StopToken<'_>> {
        Some(self.token)
    }
}

impl<O: EnvOverlay + ?Sized> EnvOverlay for &O {
    #[inline]
    fn stop_token(&self) -> Option<StopToken<'_>> {
        (**self).stop_token()
    }
    #[inline]
    fn scheduler(&self) -> Option<Option<SchedulerRef<'_>>> {
        (**self).scheduler()
    }
}

/// An [`EnvOverlay`] that replaces the current scheduler
/// ([`Env::scheduler`]) and forwards every other query.
///
/// ```
/// use exec_core::{read_env, sync_wait, InlineScheduler, Scheduler, SenderExt, WithScheduler};
/// let inline = InlineScheduler.erased().unwrap();
/// let seen = read_env(move |env| env.scheduler() == Some(inline))
///     .write_env(WithScheduler::new(Some(inline)));
/// assert_eq!(sync_wait(seen), Ok(Some(true)));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WithScheduler<'a> {
    scheduler: Option<SchedulerRef<'a>>,
}

impl<'a> WithScheduler<'a> {
    /// Reports `scheduler` (`None`: no current scheduler).
    pub fn new(scheduler: Option<SchedulerRef<'a>>) -> Self {
        WithScheduler { scheduler }
    }
}

impl EnvOverlay for WithScheduler<'_> {
    #[inline]
    fn scheduler(&self) -> Option<Option<SchedulerRef<'_>>> {
        Some(self.scheduler)
    }
}

/// The environment [`WriteEnv`]'s receiver reports: `overlay` over `base`.
///
/// Every `Env` query is forwarded here explicitly (a query added to `Env`
/// gets a line in this impl and a defaulted method in [`EnvOverlay`]; the
/// build points here through `env::QUERIES`).
#[derive(Debug)]
pub struct OverlayEnv<'a, O: ?Sized, B> {
    overlay: &'a O,
    base: B,
}

const _: () = assert!(
    crate::env::QUERIES == 2,
    "forward the new Env query in `OverlayEnv` and add it to `EnvOverlay`"
);

impl<'a, O: EnvOverlay + ?Sized, B: Env<'a>> Env<'a> for OverlayEnv<'a, O, B> {
    #[inline]
    fn stop_token(&self) -> StopToken<'a> {
        match self.overlay.stop_token() {
            Some(token) => token,
            None => self.base.stop_token(),
        }
    }
    #[inline]
    fn scheduler(&self) -> Option<SchedulerRef<'a>> {
        match self.overlay.scheduler() {
            Some(scheduler) => scheduler,
            None => self.base.scheduler(),
        }
    }
}

impl<'a, O: ?Sized, B> OverlayEnv<'a, O, B> {
    /// `overlay` over `base`.
    pub(crate) fn new(overlay: &'a O, base: B) -> Self {
        OverlayEnv { overlay, base }
    }
}

/// Sender for the [`write_env`](crate::SenderExt::write_env) method.
#[must_use = "senders do nothing unless connected and started"]
#[derive(Clone, Debug)]
pub struct WriteEnv<S, O> {
    sender: S,
    overlay: O,
}

impl<S, O> WriteEnv<S, O> {
    pub(crate) fn new(sender: S, overlay: O) -> Self {
        WriteEnv { sender, overlay }
    }
}

impl<S: Sender, O: EnvOverlay> Sender for WriteEnv<S, O> {
    type Output = S::Output;
    type Error = S::Error;
    const SENDS_STOPPED: bool = S::SENDS_STOPPED;
}

impl<S, O, R> SenderTo<R> for WriteEnv<S, O>
where
    S: SenderTo<WriteEnvReceiver<R, O>>,
    O: EnvOverlay,
    R: Receiver<S::Output, S::Error>,
{
    type Operation = S::Operation;
    fn connect(self, receiver: R) -> S::Operation {
        self.sender.connect(WriteEnvReceiver {
            receiver,
            overlay: self.overlay,
        })
    }
}

/// The receiver [`WriteEnv`] connects its predecessor to.
pub struct WriteEnvReceiver<R, O> {
    receiver: R,
    overlay: O,
}

impl<R: fmt::Debug, O> fmt::Debug for WriteEnvReceiver<R, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteEnvReceiver")
            .field("receiver", &self.receiver)
            .finish_non_exhaustive()
    }
}

impl<R, O, T, E> Receiver<T, E> for WriteEnvReceiver<R, O>
where
    R: Receiver<T, E>,
    O: EnvOverlay,
{
    fn set_value(self, value: T) {
        let WriteEnvReceiver { receiver, overlay } = self;
        drop(overlay);
        receiver.set_value(value)
    }
    fn set_error(self, error: E) {
        let WriteEnvReceiver { receiver, overlay } = self;
        drop(overlay);
        receiver.set_error(error)
    }
    fn set_stopped(self) {
        let WriteEnvReceiver { receiver, overlay } = self;
        drop(overlay);
        receiver.set_stopped()
    }
    fn set_panic(self, payload: PanicPayload) {
        let WriteEnvReceiver { receiver, overlay } = self;
        drop(overlay);
        receiver.set_panic(payload)
    }
    fn env(&self) -> impl Env<'_> {
        OverlayEnv {
            overlay: &self.overlay,
            base: self.receiver.env(),
        }
    }
}
