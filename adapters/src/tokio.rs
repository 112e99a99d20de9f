//! A tokio runtime as an exec scheduler: [`TokioScheduler`].

use core::cell::UnsafeCell;
use core::convert::Infallible;
use core::fmt;
use core::future::Future;
use core::marker::PhantomPinned;
use core::mem::ManuallyDrop;
use core::pin::Pin;
use core::task::{Context, Poll};
use std::time::Duration;

use ::tokio::runtime::Handle;
use ::tokio::time::{Instant, Sleep};
use exec_core::{
    CompletionScheduler, Env, NonBlockingGuard, OperationState, Receiver, Scheduler, Sender,
    SenderTo, TimedScheduler,
};

use crate::from_future::{FromFuture, FromFutureOp, from_future, from_future_where_woken};

/// A tokio runtime, seen through a [`Handle`], as an exec [`Scheduler`] and
/// [`TimedScheduler`].
///
/// - [`schedule`](Scheduler::schedule) completes on a tokio worker thread
///   (the thread running the runtime, for a `current_thread` runtime): it
///   spawns one small task on the runtime, so tokio allocates one task per
///   `schedule`.
/// - [`schedule_at`](TimedScheduler::schedule_at) /
///   [`schedule_after`](TimedScheduler::schedule_after) wait with
///   `tokio::time` and complete on a runtime thread; a stop request
///   cancels the timer at once. The runtime needs its time driver
///   (`enable_time`/`enable_all`).
/// - [`from_future`](Self::from_future) runs a tokio future (I/O, timers,
///   channels) as a sender from anywhere, with the runtime entered around
///   every poll.
///
/// Two schedulers are equal when they refer to the same runtime.
///
/// If the runtime shuts down before a scheduled operation ran, the
/// operation completes *stopped*. Work continuing on a tokio worker must not
/// block it: [`sync_wait`](exec_core::sync_wait) there panics with advice
/// instead of deadlocking.
///
/// # Example
/// ```
/// use exec_adapters::{SenderFutureExt, TokioScheduler};
/// use exec_core::{sync_wait, Scheduler, SenderExt};
///
/// let rt = tokio::runtime::Builder::new_multi_thread()
///     .worker_threads(1)
///     .thread_name("my-worker")
///     .build()
///     .unwrap();
/// let sch = TokioScheduler::new(rt.handle().clone());
/// // Driven by exec:
/// let name = sync_wait(sch.schedule().then(|()| std::thread::current().name().map(String::from)));
/// assert_eq!(name, Ok(Some(Some("my-worker".to_string()))));
/// // Awaited from tokio:
/// let x = rt.block_on(sch.schedule().then(|()| 42).into_future());
/// assert_eq!(x, Ok(42));
/// ```
#[derive(Clone)]
pub struct TokioScheduler {
    handle: Handle,
}

impl TokioScheduler {
    /// A scheduler for the runtime behind `handle`.
    pub fn new(handle: Handle) -> Self {
        TokioScheduler { handle }
    }

    /// A scheduler for the runtime this thread is in.
    ///
    /// # Panics
    /// Outside a tokio runtime context (as [`Handle::current`]).
    ///
    /// ```
    /// use exec_adapters::{SenderFutureExt, TokioScheduler};
    /// use exec_core::{Scheduler, SenderExt};
    ///
    /// #[tokio::main(flavor = "current_thread")]
    /// async fn main() {
    ///     let sch = TokioScheduler::current();
    ///     assert_eq!(sch.schedule().then(|()| 1).into_future().await, Ok(1));
    /// }
    /// ```
    pub fn current() -> Self {
        Self::new(Handle::current())
    }

    /// The runtime's handle.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Wraps `future` so that every poll (and its drop) happens with this
    /// runtime entered, as tokio's I/O and timer types need.
    ///
    /// ```
    /// use exec_adapters::TokioScheduler;
    ///
    /// let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// let sch = TokioScheduler::new(rt.handle().clone());
    /// // Polled outside the runtime, yet `Handle::current()` works inside:
    /// let fut = sch.enter(async { tokio::runtime::Handle::current().id() });
    /// assert_eq!(futures::executor::block_on(fut), rt.handle().id());
    /// ```
    pub fn enter<F: Future>(&self, future: F) -> Entered<F> {
        Entered {
            handle: self.handle.clone(),
            future: ManuallyDrop::new(future),
        }
    }

    /// A sender that runs a tokio future, with this runtime entered around
    /// every poll: `from_future(self.enter(future))`.
    ///
    /// # Completion
    /// - value: the future's output; on the thread that polled it to
    ///   completion: inline in `start`, the receiver's scheduler if its
    ///   environment reports one (`sync_wait`'s thread, the pool of a
    ///   `starts_on(pool, …)`), otherwise the runtime thread whose driver
    ///   woke it (see [`from_future`](crate::from_future)).
    /// - stopped: on a stop request; the future is dropped.
    ///
    /// # Cancellation
    /// As [`from_future`](crate::from_future).
    ///
    /// # Panics
    /// A panic while polling is delivered through
    /// [`Receiver::set_panic`](exec_core::Receiver::set_panic).
    ///
    /// # Example
    /// ```
    /// use exec_adapters::TokioScheduler;
    /// use exec_core::{sync_wait, SenderExt};
    ///
    /// let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    /// let sch = TokioScheduler::new(rt.handle().clone());
    /// // A tokio timer future, driven by exec's `sync_wait` from a plain thread.
    /// let slept = sch.from_future(async {
    ///     tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    ///     "slept"
    /// });
    /// assert_eq!(sync_wait(slept.then(|s| s.len())), Ok(Some(5)));
    /// ```
    ///
    /// # See also
    /// [`from_future`](crate::from_future), [`enter`](Self::enter).
    pub fn from_future<F: Future>(&self, future: F) -> FromFuture<Entered<F>> {
        from_future(self.enter(future))
    }
}

impl PartialEq for TokioScheduler {
    fn eq(&self, other: &Self) -> bool {
        self.handle.id() == other.handle.id()
    }
}
impl Eq for TokioScheduler {}

impl fmt::Debug for TokioScheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokioScheduler")
            .field("runtime", &self.handle.id())
            .finish()
    }
}

impl Scheduler for TokioScheduler {
    type Sender = TokioScheduleSender;
    fn schedule(&self) -> TokioScheduleSender {
        TokioScheduleSender {
            handle: self.handle.clone(),
        }
    }
}

impl TimedScheduler for TokioScheduler {
    type Instant = Instant;
    type Duration = Duration;
    type TimedSender = TokioTimedSender;
    fn now(&self) -> Instant {
        let _entered = self.handle.enter();
        Instant::now()
    }
    fn schedule_at(&self, at: Instant) -> TokioTimedSender {
        TokioTimedSender {
            inner: from_future_where_woken(TokioSleep {
                handle: self.handle.clone(),
                deadline: at,
                sleep: None,
                fired: false,
            }),
        }
    }
    fn schedule_after(&self, after: Duration) -> TokioTimedSender {
        self.schedule_at(self.now() + after)
    }
}

/// Sender of [`TokioScheduler::schedule`].
///
/// # Completion
/// - value: `()`, on a tokio worker thread (tokio allocates one task).
/// - stopped: if stop was requested by the time the task runs, or the
///   runtime shut down before it ran.
#[must_use = "senders do nothing unless connected and started"]
#[derive(Clone)]
pub struct TokioScheduleSender {
    handle: Handle,
}

impl fmt::Debug for TokioScheduleSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokioScheduleSender")
            .finish_non_exhaustive()
    }
}

impl Sender for TokioScheduleSender {
    type Output = ();
    type Error = Infallible;
}

impl CompletionScheduler for TokioScheduleSender {
    type Scheduler = TokioScheduler;
    fn completion_scheduler(&self) -> TokioScheduler {
        TokioScheduler::new(self.handle.clone())
    }
}

impl<R: Receiver<(), Infallible> + Send> SenderTo<R> for TokioScheduleSender {
    type Operation = TokioScheduleOp<R>;
    fn connect(self, receiver: R) -> TokioScheduleOp<R> {
        TokioScheduleOp {
            handle: self.handle,
            receiver: UnsafeCell::new(Some(receiver)),
            _pin: PhantomPinned,
        }
    }
}

/// Operation state of [`TokioScheduleSender`].
pub struct TokioScheduleOp<R> {
    handle: Handle,
    /// Taken once, by the spawned task when it runs or is dropped unrun.
    receiver: UnsafeCell<Option<R>>,
    _pin: PhantomPinned,
}

impl<R> fmt::Debug for TokioScheduleOp<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokioScheduleOp").finish_non_exhaustive()
    }
}

// SAFETY: the receiver is `Send` (required by `connect`) and touched only by
// the spawned task, once.
unsafe impl<R: Send> Send for TokioScheduleOp<R> {}
// SAFETY: `&TokioScheduleOp` exposes nothing.
unsafe impl<R> Sync for TokioScheduleOp<R> {}

impl<R: Receiver<(), Infallible> + Send> OperationState for TokioScheduleOp<R> {
    unsafe fn start(self: Pin<&mut Self>) {
        // SAFETY: nothing is moved out of the pinned op.
        let op: *mut Self = unsafe { self.get_unchecked_mut() };
        // A clone: once spawned, the task may complete the op, and its owner
        // free it, before `spawn` returns.
        // SAFETY: the op is alive and nobody else touches `handle`.
        let handle = unsafe { (*op).handle.clone() };
        let task = ScheduledTask {
            op: op as *const (),
            complete: Self::complete,
            pending: true,
        };
        drop(handle.spawn(task));
    }
}

impl<R: Receiver<(), Infallible>> TokioScheduleOp<R> {
    /// # Safety
    /// `op` is this type's live, started op; called once.
    unsafe fn complete(op: *const (), ran: bool) {
        let op = op as *const Self;
        // SAFETY: alive per the contract; only this call touches the slot.
        let receiver = unsafe { (*(*op).receiver.get()).take() };
        // The op may be freed once the receiver is completed.
        if let Some(r) = receiver {
            if ran && !r.env().stop_token().stop_requested() {
                r.set_value(())
            } else {
                r.set_stopped()
            }
        }
    }
}

/// The task [`TokioScheduleOp`] spawns: completes the op when polled, or
/// *stopped* when dropped unpolled (runtime shutdown).
struct ScheduledTask {
    op: *const (),
    complete: unsafe fn(*const (), bool),
    pending: bool,
}

// SAFETY: the op's receiver is `Send` (required by `connect`); the pointer
// is used once, by whichever thread runs or drops the task.
unsafe impl Send for ScheduledTask {}

impl Future for ScheduledTask {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        if self.pending {
            self.pending = false;
            let _guard = NonBlockingGuard::enter("a tokio worker");
            // SAFETY: the op is started and not complete (only this task
            // completes it, once: `pending` is now false).
            unsafe { (self.complete)(self.op, true) };
        }
        Poll::Ready(())
    }
}

impl Drop for ScheduledTask {
    fn drop(&mut self) {
        if self.pending {
            // SAFETY: as in `poll`; the task never ran.
            unsafe { (self.complete)(self.op, false) };
        }
    }
}

/// A future run with a tokio runtime entered around every poll and its
/// drop; from [`TokioScheduler::enter`].
#[must_use = "futures do nothing unless polled"]
pub struct Entered<F> {
    handle: Handle,
    /// Structurally pinned; dropped in place in `Drop`.
    future: ManuallyDrop<F>,
}

impl<F> fmt::Debug for Entered<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entered").finish_non_exhaustive()
    }
}

impl<F: Future> Future for Entered<F> {
    type Output = F::Output;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: `future` is structurally pinned: never moved, dropped in
        // place.
        let this = unsafe { self.get_unchecked_mut() };
        let _entered = this.handle.enter();
        // SAFETY: see above.
        unsafe { Pin::new_unchecked(&mut *this.future) }.poll(cx)
    }
}

impl<F> Drop for Entered<F> {
    fn drop(&mut self) {
        let _entered = self.handle.enter();
        // SAFETY: dropped once, here, in place.
        unsafe { ManuallyDrop::drop(&mut self.future) };
    }
}

/// Sender of [`TokioScheduler::schedule_at`] and
/// [`schedule_after`](TimedScheduler::schedule_after).
///
/// # Completion
/// - value: `()` at or after the deadline, on a runtime thread: the one
///   driving tokio's timer, or, when the deadline is found passed on a
///   thread outside the runtime (inline in `start`, say), a worker reached
///   by spawning one small task.
/// - stopped: on a stop request before the deadline; the timer is dropped
///   at once.
///
/// # Panics
/// If the runtime has no time driver or is shutting down, the tokio panic
/// is delivered through [`Receiver::set_panic`].
#[must_use = "senders do nothing unless connected and started"]
pub struct TokioTimedSender {
    inner: FromFuture<TokioSleep>,
}

impl fmt::Debug for TokioTimedSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokioTimedSender").finish_non_exhaustive()
    }
}

impl Sender for TokioTimedSender {
    type Output = ();
    type Error = Infallible;
}

impl<R: Receiver<(), Infallible> + Send> SenderTo<R> for TokioTimedSender {
    type Operation = FromFutureOp<TokioSleep, R>;
    fn connect(self, receiver: R) -> Self::Operation {
        self.inner.connect(receiver)
    }
}

/// The future behind [`TokioTimedSender`]: a `tokio::time::Sleep` created
/// lazily inside the runtime.
#[must_use = "futures do nothing unless polled"]
pub struct TokioSleep {
    handle: Handle,
    deadline: Instant,
    /// Structurally pinned; created on the first poll.
    sleep: Option<Sleep>,
    /// The deadline has passed; a spawned wake-up is on its way to a
    /// worker (we were polled off the runtime).
    fired: bool,
}

impl fmt::Debug for TokioSleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokioSleep")
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

impl TokioSleep {
    /// Whether this thread runs (or is inside `block_on` of) our runtime.
    fn on_runtime(&self) -> bool {
        Handle::try_current().is_ok_and(|h| h.id() == self.handle.id())
    }
}

impl Future for TokioSleep {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // SAFETY: `sleep` is structurally pinned (only ever set from `None`
        // and dropped in place with `self`); the other fields are not.
        let this = unsafe { self.get_unchecked_mut() };
        let ready = this.fired || {
            if this.sleep.is_none() {
                let _entered = this.handle.enter();
                this.sleep = Some(::tokio::time::sleep_until(this.deadline));
            }
            // SAFETY: see above; just set to `Some`.
            let sleep = unsafe { Pin::new_unchecked(this.sleep.as_mut().unwrap_unchecked()) };
            sleep.poll(cx).is_ready()
        };
        if !ready {
            return Poll::Pending;
        }
        if this.on_runtime() {
            return Poll::Ready(());
        }
        // Due, but polled off the runtime: inline in `start`, or by the
        // thread that was polling when the timer's wake-up arrived. Hop to a
        // worker so the completion happens on the runtime.
        this.fired = true;
        let waker = cx.waker().clone();
        drop(this.handle.spawn(async move { waker.wake() }));
        Poll::Pending
    }
}
