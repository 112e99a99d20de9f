//! Environments: what a receiver tells the operation it is connected to.

use crate::SchedulerRef;
use crate::stop::StopToken;

/// The queries an operation can ask of its receiver's environment.
///
/// Every query has a default answer, so adding a query never breaks an
/// existing environment. An environment is obtained with
/// [`Receiver::env`](crate::Receiver::env) and usually borrows the receiver.
///
/// The lifetime `'a` is how long the answers stay valid: a receiver's
/// [`env`](crate::Receiver::env) returns an `impl Env<'_>` whose answers
/// borrow the receiver (or something that outlives it), never the
/// environment value itself — the compiler checks it, because an answer of
/// type `StopToken<'a>` cannot borrow from `&self`. Operations rely on this
/// to keep the answers (a stop callback, a scheduler to hop back to) for as
/// long as the receiver is alive.
///
/// ```compile_fail
/// use exec_core::{Env, StopSource, StopToken};
/// // An environment that owns its stop source cannot hand out tokens that
/// // outlive it.
/// struct Owning(StopSource);
/// impl<'a> Env<'a> for Owning {
///     fn stop_token(&self) -> StopToken<'a> {
///         self.0.token()
///     }
/// }
/// ```
pub trait Env<'a> {
    /// The stop token operations should observe. Default: one on which stop
    /// is never requested.
    #[inline]
    fn stop_token(&self) -> StopToken<'a> {
        StopToken::never()
    }

    /// The scheduler of the execution context the operation runs on
    /// (P2300's `get_scheduler`), where work that hops away should come
    /// back to: [`on`](crate::on) and
    /// [`schedule_on_current`](crate::schedule_on_current) use it. Default:
    /// `None` (unknown; those algorithms then complete inline).
    ///
    /// [`sync_wait`](crate::sync_wait) answers its run loop;
    /// [`starts_on`](crate::starts_on) answers its scheduler's
    /// [`erased`](crate::Scheduler::erased) form.
    ///
    /// ```
    /// use exec_core::{read_env, starts_on, sync_wait, InlineScheduler, Scheduler};
    /// // sync_wait's environment reports its run loop.
    /// assert_eq!(sync_wait(read_env(|env| env.scheduler().is_some())), Ok(Some(true)));
    /// // starts_on reports its scheduler to the work it starts.
    /// let inline = InlineScheduler.erased().unwrap();
    /// let seen = starts_on(InlineScheduler, read_env(move |env| env.scheduler() == Some(inline)));
    /// assert_eq!(sync_wait(seen), Ok(Some(true)));
    /// ```
    #[inline]
    fn scheduler(&self) -> Option<SchedulerRef<'a>> {
        None
    }
}

/// The environment that answers every query with its default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EmptyEnv;

impl Env<'_> for EmptyEnv {}

impl<'a, E: Env<'a> + ?Sized> Env<'a> for &E {
    #[inline]
    fn stop_token(&self) -> StopToken<'a> {
        (**self).stop_token()
    }
    #[inline]
    fn scheduler(&self) -> Option<SchedulerRef<'a>> {
        (**self).scheduler()
    }
}

/// How many queries [`Env`] has.
///
/// Adding a query to `Env` means bumping this: every place that has to
/// answer or forward the new query asserts the count next to its code, so
/// the build fails right there until it is updated. Those places are the
/// `&E` impl above, [`CapturedEnv`], and `OverlayEnv`/`EnvOverlay` in
/// `adaptor/write_env.rs`; every other environment in the crate is one of
/// these or the downstream receiver's own.
pub(crate) const QUERIES: usize = 2;

const _: () = assert!(
    QUERIES == 2,
    "forward the new Env query in `impl Env for &E`"
);

/// The answers of a downstream receiver's environment, captured when a
/// parent starts, for child receivers that cannot name the downstream
/// receiver's type (`let_*`, `repeat_*`, `AnySender`: their receiver types
/// erase the parent).
#[derive(Clone, Copy, Debug)]
pub(crate) struct CapturedEnv {
    token: StopToken<'static>,
    scheduler: Option<SchedulerRef<'static>>,
}

const _: () = assert!(
    QUERIES == 2,
    "capture and answer the new Env query in `CapturedEnv`"
);

impl CapturedEnv {
    /// Answers every query with its default.
    pub(crate) const fn empty() -> Self {
        CapturedEnv {
            token: StopToken::never(),
            scheduler: None,
        }
    }

    /// Captures `env`'s answers.
    ///
    /// # Safety
    /// What the answers borrow (the stop token's source, the scheduler's
    /// context) outlives every use of the result. Holds when the receiver
    /// whose environment `env` is stays in the parent until every child
    /// holding the result has completed, and children drop their stop
    /// callbacks before completing (the [`StopToken::detach`] contract).
    pub(crate) unsafe fn capture<'a>(env: &impl Env<'a>) -> Self {
        CapturedEnv {
            // SAFETY: per the caller.
            token: unsafe { env.stop_token().detach() },
            // SAFETY: per the caller.
            scheduler: env.scheduler().map(|s| unsafe { s.detach() }),
        }
    }
}

impl<'a> Env<'a> for CapturedEnv {
    #[inline]
    fn stop_token(&self) -> StopToken<'a> {
        self.token
    }
    #[inline]
    fn scheduler(&self) -> Option<SchedulerRef<'a>> {
        self.scheduler
    }
}
