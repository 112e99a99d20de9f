use core::fmt;
use core::pin::pin;

use crate::context::assert_may_block;
use crate::loom::cell::UnsafeCell;
use crate::{
    Env, PanicPayload, ParentRef, Receiver, RunLoop, SchedulerRef, Sender, SenderTo, StopToken,
};

/// Starts `sender` and blocks the calling thread until it completes, running
/// a [`RunLoop`] meanwhile.
///
/// Returns `Ok(Some(value))`, `Err(error)`, or `Ok(None)` if the sender
/// completed *stopped*. The sender may borrow from the caller's stack: it is
/// complete before `sync_wait` returns.
///
/// # Completion
/// Returns once the sender has completed, on whatever thread it completed.
///
/// # Cancellation
/// The sender sees a stop token on which stop is never requested.
///
/// # Environment
/// The sender's environment reports the run loop as the current scheduler
/// ([`Env::scheduler`]): [`on`](crate::on) comes back to this thread.
///
/// # Panics
/// - If the sender delivers a panic ([`Receiver::set_panic`]), `sync_wait`
///   resumes it on this thread with the original payload.
/// - If called on a thread that drives an execution context (a [`RunLoop`],
///   a pool worker, an I/O loop): that would deadlock, so it panics with a
///   message saying what to do instead.
///
/// # Example
/// ```
/// use exec_core::{just, sync_wait, SenderExt};
/// let data = vec![1, 2, 3];
/// let sum = sync_wait(just(()).then(|()| data.iter().sum::<i32>()));
/// assert_eq!(sum, Ok(Some(6)));
/// ```
///
/// # See also
/// [`RunLoop`] (the loop it drives),
/// [`stopped_as_optional`](crate::SenderExt::stopped_as_optional) and
/// [`into_result`](crate::SenderExt::into_result) (the same shapes as a
/// sender).
pub fn sync_wait<S>(sender: S) -> Result<Option<S::Output>, S::Error>
where
    S: Sender + SenderTo<SyncWaitReceiver<<S as Sender>::Output, <S as Sender>::Error>>,
{
    assert_may_block("sync_wait");
    let state = pin!(State::<S::Output, S::Error> {
        outcome: UnsafeCell::new(None),
        run_loop: RunLoop::new(),
    });
    // SAFETY: `state` is pinned on this frame and outlives the operation:
    // we do not return (or unwind, see `Bomb`) before the operation has
    // completed, which is what ends `run_loop.run()`.
    let parent = unsafe { ParentRef::new(state.as_ref()) };
    let mut op = pin!(sender.connect(SyncWaitReceiver { state: parent }));
    {
        // If anything below unwinds before the operation completed, the
        // operation (or our state) could still be referenced from another
        // thread: we cannot return, so abort.
        let bomb = Bomb;
        // On a fresh trampoline: work started here must not be queued on
        // an enclosing trampolined frame, which waits for us.
        let fresh = crate::context::trampoline::Fresh::enter();
        // SAFETY: started once; `op` lives on this frame until after
        // `run()` returns, i.e. until the receiver has been completed.
        unsafe { crate::OperationState::start(op.as_mut()) };
        state.run_loop.run();
        drop(fresh);
        core::mem::forget(bomb);
    }
    // SAFETY: the completion wrote the outcome before `finish()`, whose
    // mutex release synchronizes with `run()` returning; no one else
    // touches the cell any more.
    let outcome = state.outcome.with_mut(|o| unsafe { (*o).take() });
    match outcome {
        Some(Outcome::Value(v)) => Ok(Some(v)),
        Some(Outcome::Error(e)) => Err(e),
        Some(Outcome::Stopped) => Ok(None),
        Some(Outcome::Panic(p)) => std::panic::resume_unwind(p),
        None => unreachable!("sync_wait: the run loop finished without a completion"),
    }
}

struct Bomb;
impl Drop for Bomb {
    fn drop(&mut self) {
        std::eprintln!(
            "exec: sync_wait unwound while its operation was still running; aborting \
             to avoid a use-after-free"
        );
        std::process::abort();
    }
}

enum Outcome<T, E> {
    Value(T),
    Error(E),
    Stopped,
    Panic(PanicPayload),
}

struct State<T, E> {
    /// Written once by the receiver, read by `sync_wait` after the loop ends.
    outcome: UnsafeCell<Option<Outcome<T, E>>>,
    run_loop: RunLoop,
}

// SAFETY: the outcome cell is written by exactly one completion (the
// receiver is consumed) and read only after the run loop's mutex hands it
// over; moving `T`/`E` across that hand-off needs `Send`.
unsafe impl<T: Send, E: Send> Sync for State<T, E> {}

/// The receiver [`sync_wait`] connects the sender to.
pub struct SyncWaitReceiver<T, E> {
    state: ParentRef<State<T, E>>,
}

impl<T, E> fmt::Debug for SyncWaitReceiver<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SyncWaitReceiver").finish_non_exhaustive()
    }
}

impl<T, E> SyncWaitReceiver<T, E> {
    fn complete(self, outcome: Outcome<T, E>) {
        let state = self.state.get();
        // SAFETY: this receiver is consumed, so this is the only write; the
        // waiter reads only after `finish`.
        state.outcome.with_mut(|o| unsafe { *o = Some(outcome) });
        // Last touch of `state`: afterwards `sync_wait` may return.
        let run_loop: *const RunLoop = &state.run_loop;
        // SAFETY: the loop is alive until `run` returns, which needs this
        // call's unlock; `finish_raw` keeps no reference past it.
        unsafe { RunLoop::finish_raw(run_loop) };
    }
}

impl<T, E> Receiver<T, E> for SyncWaitReceiver<T, E> {
    fn set_value(self, value: T) {
        self.complete(Outcome::Value(value));
    }
    fn set_error(self, error: E) {
        self.complete(Outcome::Error(error));
    }
    fn set_stopped(self) {
        self.complete(Outcome::Stopped);
    }
    fn set_panic(self, payload: PanicPayload) {
        self.complete(Outcome::Panic(payload));
    }
    fn env(&self) -> impl Env<'_> {
        SyncWaitEnv {
            run_loop: &self.state.get().run_loop,
        }
    }
}

struct SyncWaitEnv<'a> {
    run_loop: &'a RunLoop,
}
impl<'a> Env<'a> for SyncWaitEnv<'a> {
    fn stop_token(&self) -> StopToken<'a> {
        StopToken::never()
    }
    fn scheduler(&self) -> Option<SchedulerRef<'a>> {
        Some(SchedulerRef::new(self.run_loop))
    }
}
