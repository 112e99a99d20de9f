//! `Future` → sender: [`from_future`], [`from_try_future`].
//!
//! # Where the future is polled
//! The first poll happens inline in `start`. After that it depends on the
//! receiver's environment:
//! - **It reports a scheduler** ([`Env::scheduler`]: `sync_wait`'s run
//!   loop, the scheduler of `starts_on`/`on`, a pool): a wake-up that finds
//!   the future idle enqueues the operation's [`TaskNode`] on that
//!   scheduler, and the context polls it. A wake-up during a poll makes the
//!   poller re-enqueue the node when the poll returns `Pending` (to the
//!   back of the queue: a future that keeps waking itself does not starve
//!   the context's other work). So every poll after the first, and the
//!   receiver's completion, run on the scheduler. If the context executes
//!   the node inline, inside `enqueue` (an inline context), the enqueuing
//!   thread polls instead of recursing (the `Dispatching` hand-back below).
//! - **It reports none**: the future is polled by whichever thread wakes
//!   it: `wake()` polls it right there if no one else is polling, and
//!   otherwise marks it notified so that the thread that is polling polls
//!   once more before it lets go. So the future runs where its wake-up
//!   comes from (an I/O driver, a timer thread, the thread that sent on a
//!   channel), with no queue and no extra thread.
//!
//! # The state word
//! One `Arc`-allocated [`WakeCell`] per started operation is what the
//! wakers point at (wakers may outlive the operation; the cell never
//! refers to the operation once `DONE` is set). It is created on demand
//! ([`LazyCell`]): the first poll's waker points at the operation itself
//! and creates the cell when it is cloned (a clone may outlive the
//! operation), a stop request creates it, and a first poll that returns
//! `Pending` creates it before letting go of `POLLING`. Until it exists,
//! the thread running `start` holds `POLLING` implicitly, and a
//! `wake_by_ref` of the first poll's waker (which cannot outlive the poll)
//! is recorded in the operation and read after the poll. So a future
//! ready on its first poll costs no allocation. Its state bits:
//! - `POLLING`: someone holds the exclusive right to touch the operation
//!   (poll the future, complete the receiver). `start` holds it first. A
//!   queued [`TaskNode`] holds it on behalf of the context that will run
//!   it: the thread that enqueues keeps `POLLING` set, and the context's
//!   execution of the node is the next holder (the context's queue orders
//!   the enqueuer's writes before the execution).
//! - `NOTIFIED`: a wake-up arrived while `POLLING` was held; the holder
//!   polls again before releasing.
//! - `STOP`: stop was requested; the holder drops the future and completes
//!   *stopped* instead of polling.
//! - `DONE`: completed. Set by the holder (which keeps `POLLING` set for
//!   ever), so no one reaches the operation again.
//!
//! A wake-up either takes `POLLING` (from idle, Acquire: it sees what the
//! previous poller did) and polls, or sets `NOTIFIED` (Release: the poller
//! that clears it with Acquire sees what the waker did before waking). The
//! holder releases by swapping exactly `POLLING` for idle (Release), which
//! fails, and makes it poll again (or, with a scheduler and no `STOP`,
//! re-enqueue), if `NOTIFIED` or `STOP` arrived.

use core::cell::Cell;
use core::convert::Infallible;
use core::fmt;
use core::future::Future;
use core::marker::PhantomPinned;
use core::mem::ManuallyDrop;
use core::pin::Pin;
use core::ptr::{self, NonNull};
use core::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};
use std::sync::Arc;
use std::task::Wake;

use exec_core::{
    Env, OnStop, OperationState, PanicPayload, Receiver, Scheduler, SchedulerRef, Sender, SenderTo,
    StopCallback, StopToken, TaskNode, catch_unwind,
};

use crate::loom::cell::UnsafeCell;
use crate::loom::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

const POLLING: usize = 0b0001;
const NOTIFIED: usize = 0b0010;
const STOP: usize = 0b0100;
const DONE: usize = 0b1000;

/// Makes a sender out of a future.
///
/// # Completion
/// - value: the future's output, on the thread that polled it to
///   completion: inline in `start`, or the receiver's scheduler, or
///   (without one) the thread that woke it (see *Where the future is
///   polled* below).
/// - error: never (`Error = Infallible`); see [`from_try_future`] to map a
///   `Result` onto the error channel.
/// - stopped: when stop is requested on the receiver's stop token before
///   the future is ready; or if the receiver's scheduler shuts down with
///   the future's next poll queued.
///
/// # Where the future is polled
/// The first poll is inline in `start` (which, by the environment's
/// contract, already runs on the receiver's current scheduler). Afterwards:
/// - if the receiver's environment reports a scheduler
///   ([`Env::scheduler`]: `sync_wait` reports its run loop, `starts_on(sch,
///   …)` reports `sch`), a wake-up reschedules the future there: it
///   enqueues the operation itself (an intrusive [`TaskNode`], no
///   allocation) and the scheduler's context polls it. A future woken from
///   an I/O thread under `sync_wait` is re-polled on the `sync_wait`
///   thread; one started on a pool is re-polled on a pool worker. A
///   wake-up during a poll re-enqueues it once that poll returns.
/// - if it reports none, the future is polled on the thread that wakes
///   it, right inside `wake()` (a wake-up that arrives while another
///   thread polls makes that thread poll again instead). No queue, no
///   extra thread.
///
/// Wrap the future to give it a context it needs
/// (`TokioScheduler::from_future` enters a tokio runtime around every
/// poll), use [`from_future_on`] to poll it on a scheduler of your choice,
/// and continue on a scheduler after it to move the continuation.
///
/// # Cancellation
/// A stop request drops the future and completes *stopped*: on the
/// receiver's scheduler if it has one (the request enqueues the operation
/// like a wake-up), otherwise on the requesting thread; if the future is
/// being polled, right after the current poll.
///
/// # Panics
/// A panic while polling is caught; the future is dropped and the panic is
/// delivered through [`Receiver::set_panic`].
///
/// # Allocation
/// None if the future is ready on its first poll without cloning its
/// waker. Otherwise one `Arc` per start: the cell the wakers point at,
/// which must outlive the operation because a waker may be kept (and
/// woken) after it completed; it is created by the first clone of the
/// waker, by a stop request, or after a `Pending` first poll.
/// Rescheduling allocates nothing (the operation is the node).
///
/// # Lifetimes
/// The future need not be `'static`: it lives inside the operation state,
/// which its consumer keeps alive until completion. It must be `Send`
/// because a wake-up may poll it on another thread.
///
/// # Example
/// ```
/// use exec_adapters::from_future;
/// use exec_core::{sync_wait, SenderExt};
///
/// let data = vec![1, 2, 3];
/// let sum = sync_wait(from_future(async { data.iter().sum::<i32>() }).then(|s| s * 2));
/// assert_eq!(sum, Ok(Some(12)));
/// ```
///
/// # See also
/// [`from_try_future`], [`SenderFutureExt::into_future`](crate::SenderFutureExt::into_future)
/// for the other direction.
pub fn from_future<F: Future>(future: F) -> FromFuture<F> {
    FromFuture {
        future,
        on_env_scheduler: true,
    }
}

/// [`from_future`] that ignores the receiver's scheduler: after the first
/// poll the future is always polled where it is woken. For futures whose
/// wake-up already comes from the context their completion must run on
/// (`TokioScheduler`'s timers complete on a runtime thread).
#[cfg_attr(not(feature = "tokio"), allow(dead_code))]
pub(crate) fn from_future_where_woken<F: Future>(future: F) -> FromFuture<F> {
    FromFuture {
        future,
        on_env_scheduler: false,
    }
}

/// Makes a sender out of a future that outputs a `Result`: `Ok(v)` is sent
/// as a value, `Err(e)` as an error.
///
/// # Completion
/// - value: `v` for `Ok(v)`; error: `e` for `Err(e)`;
/// - stopped, panics, where it is polled: as [`from_future`].
///
/// # Cancellation
/// As [`from_future`]: a stop request drops the future and completes
/// *stopped*.
///
/// # Panics
/// A panic while polling is delivered through [`Receiver::set_panic`].
///
/// # Example
/// ```
/// use exec_adapters::from_try_future;
/// use exec_core::sync_wait;
///
/// assert_eq!(sync_wait(from_try_future(async { "7".parse::<i32>() })), Ok(Some(7)));
/// assert!(sync_wait(from_try_future(async { "x".parse::<i32>() })).is_err());
/// ```
///
/// # See also
/// [`from_future`].
pub fn from_try_future<F, T, E>(future: F) -> FromTryFuture<F>
where
    F: Future<Output = Result<T, E>>,
{
    FromTryFuture {
        inner: from_future(future),
    }
}

/// Sender for the [`from_future`] function.
#[must_use = "senders do nothing unless connected and started"]
#[derive(Clone, Debug)]
pub struct FromFuture<F> {
    future: F,
    /// Re-poll on the receiver's scheduler, if its environment reports one.
    on_env_scheduler: bool,
}

impl<F: Future> Sender for FromFuture<F> {
    type Output = F::Output;
    type Error = Infallible;
}

impl<F, R> SenderTo<R> for FromFuture<F>
where
    F: Future + Send,
    R: Receiver<F::Output, Infallible> + Send,
{
    type Operation = FromFutureOp<F, R>;
    fn connect(self, receiver: R) -> FromFutureOp<F, R> {
        FromFutureOp {
            node: TaskNode::new(FromFutureOp::<F, R>::execute),
            future: UnsafeCell::new(Some(self.future)),
            receiver: UnsafeCell::new(Some(receiver)),
            stop_cb: UnsafeCell::new(None),
            lazy: LazyCell::new(),
            scheduler: None,
            on_env_scheduler: self.on_env_scheduler,
            _pin: PhantomPinned,
        }
    }
}

/// Sender for the [`from_try_future`] function.
#[must_use = "senders do nothing unless connected and started"]
#[derive(Clone, Debug)]
pub struct FromTryFuture<F> {
    inner: FromFuture<F>,
}

impl<F, T, E> Sender for FromTryFuture<F>
where
    F: Future<Output = Result<T, E>>,
{
    type Output = T;
    type Error = E;
}

impl<F, T, E, R> SenderTo<R> for FromTryFuture<F>
where
    F: Future<Output = Result<T, E>> + Send,
    R: Receiver<T, E> + Send,
{
    type Operation = FromFutureOp<F, TryReceiver<R>>;
    fn connect(self, receiver: R) -> Self::Operation {
        self.inner.connect(TryReceiver { receiver })
    }
}

/// The receiver [`FromTryFuture`] connects its future to: splits the
/// `Result` onto the value and error channels.
#[derive(Debug)]
pub struct TryReceiver<R> {
    receiver: R,
}

impl<R, T, E> Receiver<Result<T, E>, Infallible> for TryReceiver<R>
where
    R: Receiver<T, E>,
{
    fn set_value(self, value: Result<T, E>) {
        match value {
            Ok(v) => self.receiver.set_value(v),
            Err(e) => self.receiver.set_error(e),
        }
    }
    fn set_error(self, error: Infallible) {
        match error {}
    }
    fn set_stopped(self) {
        self.receiver.set_stopped()
    }
    fn set_panic(self, payload: PanicPayload) {
        self.receiver.set_panic(payload)
    }
    fn env(&self) -> impl Env<'_> {
        self.receiver.env()
    }
}

/// The stop callback: a stop request is a wake-up with `STOP` set. It
/// points at the op's [`LazyCell`] (creating the cell if the first poll
/// has not), which is alive while the callback is registered: `finish`
/// deregisters it (waiting for a running call) before completing.
struct StopNotify(*const LazyCell);

// SAFETY: the `LazyCell` is `Sync` and alive while the callback can run
// (see above).
unsafe impl Send for StopNotify {}

impl OnStop for StopNotify {
    fn on_stop(self) {
        // SAFETY: the op (and its `LazyCell`) is alive while this callback
        // is registered; the `Arc` keeps the cell alive through `notify`,
        // whose `run` may complete (and free) the op.
        let cell = unsafe { (*self.0).cell_arc() };
        cell.notify(STOP)
    }
}

/// Operation state of [`FromFuture`].
///
/// The future and the receiver live here; wakers point at a small shared
/// cell whose state word grants one thread at a time the right to poll the
/// future or complete the receiver (see [`from_future`] for where polls
/// happen). The operation is also the node it enqueues on the receiver's
/// scheduler.
// Fields marked "holder" are touched only by the thread holding `POLLING`
// in the `WakeCell`'s state (module docs); the others are written in
// `start` before any waker or stop callback exists and only read after.
#[repr(C)]
pub struct FromFutureOp<F, R> {
    /// First field (`#[repr(C)]`): a pointer to the op is a pointer to the
    /// node. Enqueued on `scheduler` by the `POLLING` holder only, so it is
    /// queued at most once at a time; the context's execution of it is the
    /// next holder.
    node: TaskNode,
    /// Holder. Structurally pinned; `None` once dropped.
    future: UnsafeCell<Option<F>>,
    /// Holder. Taken to complete.
    receiver: UnsafeCell<Option<R>>,
    /// Holder. Registered in `start`, dropped (deregistered) before
    /// completing. Structurally pinned.
    stop_cb: UnsafeCell<Option<StopCallback<'static, StopNotify>>>,
    /// What wakers point at, created lazily (by the first poll's waker's
    /// `clone`, a stop request, or a first poll that returns `Pending`).
    lazy: LazyCell,
    /// The receiver's scheduler, where polls after the first run; `None`:
    /// polled where woken. Written in `start`; the receiver (whose
    /// environment answered it) stays in the op until the op completes, and
    /// it is only used before that (by `POLLING` holders).
    scheduler: Option<SchedulerRef<'static>>,
    /// Whether `start` asks the environment for `scheduler`.
    on_env_scheduler: bool,
    _pin: PhantomPinned,
}

impl<F, R> fmt::Debug for FromFutureOp<F, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FromFutureOp").finish_non_exhaustive()
    }
}

// SAFETY: the future and receiver are `Send` (the `SenderTo` impl requires
// it) and are touched by one thread at a time (the `POLLING` holder); the
// cell, waker, node and scheduler handle are thread-safe.
unsafe impl<F: Send, R: Send> Send for FromFutureOp<F, R> {}
// SAFETY: `&FromFutureOp` exposes nothing.
unsafe impl<F, R> Sync for FromFutureOp<F, R> {}

impl<F, R> OperationState for FromFutureOp<F, R>
where
    F: Future + Send,
    R: Receiver<F::Output, Infallible> + Send,
{
    unsafe fn start(self: Pin<&mut Self>) {
        // SAFETY: we never move out of the pinned op; from here on it is
        // reached only through this pointer (and, by wakers, through copies
        // of it in the cell).
        let op: *mut Self = unsafe { self.get_unchecked_mut() };
        // SAFETY: not shared yet: no waker, no stop callback, no node
        // queued. The answer borrows from the receiver (or outlives it),
        // which stays in the op until it completes; the handle is used only
        // by `POLLING` holders, before completion.
        let scheduler = unsafe {
            if (*op).on_env_scheduler {
                (*op).receiver.with(|r| {
                    (*r).as_ref()
                        .and_then(|r| r.env().scheduler().map(|s| s.detach()))
                })
            } else {
                None
            }
        };
        // SAFETY: as above; read-only from now on.
        unsafe { (*op).scheduler = scheduler };
        // Wake-ups that take `POLLING` reschedule on the scheduler, or poll
        // right there without one.
        let wake: unsafe fn(*const ()) = if scheduler.is_some() {
            Self::reschedule
        } else {
            Self::run
        };
        // SAFETY: pinned, alive, not shared yet.
        unsafe { Self::prepare(op, op as *const (), wake, false) };
        // SAFETY: we hold `POLLING`, no cell-less release happened; the op
        // is alive (start's contract).
        unsafe { Self::run_first(op) };
    }
}

impl<F, R> FromFutureOp<F, R>
where
    F: Future + Send,
    R: Receiver<F::Output, Infallible> + Send,
{
    /// Records what the cell's wake-ups run (`run(cell_op)` when they take
    /// `POLLING`), creates the cell now if `eager` (otherwise it is created
    /// on demand, see [`LazyCell`]), and registers the stop callback. The
    /// caller holds `POLLING` afterwards (the initial state, in the cell or,
    /// while there is none, implicitly).
    ///
    /// # Safety
    /// `op` is pinned, alive until it completes, and not yet shared;
    /// `run(cell_op)` may be called by any thread that takes `POLLING`.
    unsafe fn prepare(op: *mut Self, cell_op: *const (), run: unsafe fn(*const ()), eager: bool) {
        // SAFETY: nothing else refers to the op yet: no waker exists and the
        // stop callback is not registered. These fields are read-only from
        // now on.
        unsafe {
            (*op).lazy.op = cell_op;
            (*op).lazy.run = run;
        }
        if eager {
            // SAFETY: we hold `POLLING`, the state a new cell starts in.
            unsafe { (*op).lazy.cell() };
        }
        // SAFETY: we hold `POLLING`, so the receiver slot is ours. `detach`
        // (here and below): the callback holding the token is dropped in
        // `finish` before the receiver, whose environment gave the token, is
        // completed (PROTOCOL.md rule 6).
        let token = unsafe {
            (*op).receiver.with(|r| {
                (*r).as_ref().map(|r| {
                    let env = r.env();
                    env.stop_token().detach()
                })
            })
        };
        if let Some(token) = token.filter(StopToken::stop_possible) {
            // SAFETY: the lazy cell is pinned in the op, which outlives the
            // callback (dropped in `finish`).
            let cb = StopCallback::new(token, StopNotify(unsafe { ptr::addr_of!((*op).lazy) }));
            // SAFETY: holder (we hold `POLLING`); the callback is pinned
            // inside the pinned op and dropped in place in `finish`. If stop
            // was already requested, `register` runs it inline: it creates
            // the cell if needed (in state `POLLING`: ours) and only sets
            // `STOP | NOTIFIED`, as we hold `POLLING`.
            unsafe {
                (*op).stop_cb.with_mut(|slot| {
                    *slot = Some(cb);
                    Pin::new_unchecked((*slot).as_mut().unwrap_unchecked()).register();
                });
            }
        }
    }

    /// The first poll, inline in `start`, with a waker that points at the
    /// op's [`LazyCell`] instead of a cell: if the future is ready and
    /// never cloned its waker (and no stop came in), nothing is allocated.
    /// Otherwise the cell exists when this returns to the poll loop.
    ///
    /// # Safety
    /// `op` is this type's live, started op, prepared with `eager ==
    /// false`; the caller holds `POLLING` and has never released it.
    unsafe fn run_first(op: *const Self) {
        // SAFETY: the op is alive; `lazy` is pinned in it.
        let lazy: *const LazyCell = unsafe { ptr::addr_of!((*op).lazy) };
        // A cell already: a stop requested before `start` ran the callback
        // inline in `register`. The poll loop stops without polling.
        // SAFETY: as above; we hold `POLLING`.
        if unsafe { (*lazy).get().is_some() } {
            // SAFETY: holder; the cell exists.
            return unsafe { Self::run(op as *const ()) };
        }
        // SAFETY: `lazy` outlives this poll; the vtable's contract is met
        // (see `FIRST_POLL_VTABLE`). Not dropped: its `drop` does nothing.
        let waker = ManuallyDrop::new(unsafe {
            Waker::from_raw(RawWaker::new(lazy as *const (), &FIRST_POLL_VTABLE))
        });
        let mut cx = Context::from_waker(&waker);
        // SAFETY: holder; the future is structurally pinned in the pinned op
        // and present until `finish`.
        let polled = unsafe {
            (*op).future.with_mut(|f| {
                let fut = Pin::new_unchecked((*f).as_mut().unwrap_unchecked());
                catch_unwind(|| fut.poll(&mut cx))
            })
        };
        match polled {
            // Not `STOP`-checked, as in the poll loop: the value wins over a
            // stop that arrived during the poll.
            // SAFETY: holder.
            Ok(Poll::Ready(v)) => unsafe { Self::finish(op, Done::Value(v)) },
            // SAFETY: holder.
            Err(payload) => unsafe { Self::finish(op, Done::Panic(payload)) },
            Ok(Poll::Pending) => {
                // Every use of the borrowed waker happened before `poll`
                // returned (it cannot outlive the borrow), so its wake-ups
                // are all in `notified` now. From here on the cell holds the
                // state: create it if no clone or stop did (in state
                // `POLLING`, which we hold; a stop request racing us may
                // create it too: one of the two wins the exchange).
                // SAFETY: we hold `POLLING` and have not released it.
                let cell = unsafe { (*lazy).cell_arc() };
                // SAFETY: as above.
                if unsafe { (*lazy).notified.load(Ordering::Acquire) } != 0 {
                    // We hold `POLLING`: this makes the release below fail
                    // and poll again (or re-enqueue).
                    cell.state.fetch_or(NOTIFIED, Ordering::Relaxed);
                }
                // SAFETY: holder, with the op's cell.
                unsafe { Self::poll_loop(op, cell, true) }
            }
        }
    }

    /// Polls until pending-and-released or complete.
    ///
    /// # Safety
    /// `op` is this type's live, started operation state whose cell exists,
    /// and the caller holds `POLLING` on it (and with it the right to touch
    /// the holder fields).
    unsafe fn run(op: *const ()) {
        let op = op as *const Self;
        // SAFETY: the cell exists (per the caller) and the op keeps it
        // alive; a clone, because completing may free the op.
        let cell = unsafe { (*op).lazy.cell_arc() };
        // SAFETY: per the caller.
        unsafe { Self::poll_loop(op, cell, false) }
    }

    /// The poll loop of [`run`](Self::run); with `pending`, starts by
    /// releasing after a poll that returned `Pending`.
    ///
    /// # Safety
    /// As [`run`](Self::run); `cell` is the op's cell.
    unsafe fn poll_loop(op: *const Self, cell: Arc<WakeCell>, mut pending: bool) {
        let waker = Waker::from(cell.clone());
        // SAFETY: written in `start`, read-only since.
        let scheduler = unsafe { (*op).scheduler };
        let mut cx = Context::from_waker(&waker);
        loop {
            if pending {
                // Release: the next holder (on another thread) sees our
                // writes to the future. Fails if a wake-up or stop came in.
                let released =
                    cell.state
                        .compare_exchange(POLLING, 0, Ordering::Release, Ordering::Relaxed);
                match released {
                    Ok(_) => return,
                    // Woken during the poll, on a scheduler: go to the
                    // back of its queue rather than polling again here
                    // (a stop is handled right away, by the loop).
                    Err(state) if state & STOP == 0 && scheduler.is_some() => {
                        // SAFETY: holder; `scheduler` is `Some`.
                        match unsafe { Self::enqueue(op) } {
                            // Queued: the context's execution holds
                            // `POLLING` now; the op may be gone.
                            None => return,
                            // Executed inline (an inline context): still
                            // ours; poll here.
                            Some(false) => {}
                            // The context is shutting down.
                            Some(true) => {
                                // SAFETY: holder.
                                unsafe { Self::finish(op, Done::Stopped) };
                                return;
                            }
                        }
                    }
                    Err(_) => {}
                }
            }
            // Acquire: see what a waker did before setting `NOTIFIED`.
            let prev = cell.state.fetch_and(!NOTIFIED, Ordering::Acquire);
            if prev & STOP != 0 {
                // SAFETY: holder.
                unsafe { Self::finish(op, Done::Stopped) };
                return;
            }
            // SAFETY: holder; the future is structurally pinned in the
            // pinned op and present until `finish`.
            let polled = unsafe {
                (*op).future.with_mut(|f| {
                    let fut = Pin::new_unchecked((*f).as_mut().unwrap_unchecked());
                    catch_unwind(|| fut.poll(&mut cx))
                })
            };
            match polled {
                Ok(Poll::Ready(v)) => {
                    // SAFETY: holder.
                    unsafe { Self::finish(op, Done::Value(v)) };
                    return;
                }
                Err(payload) => {
                    // SAFETY: holder.
                    unsafe { Self::finish(op, Done::Panic(payload)) };
                    return;
                }
                Ok(Poll::Pending) => pending = true,
            }
        }
    }

    /// What a wake-up that took `POLLING` runs when the receiver has a
    /// scheduler: enqueue the poll there.
    ///
    /// # Safety
    /// As [`run`](Self::run); `scheduler` is `Some`.
    unsafe fn reschedule(op: *const ()) {
        let op = op as *const Self;
        // SAFETY: holder, per the caller.
        match unsafe { Self::enqueue(op) } {
            None => {}
            // Executed inline: still ours. A `stopped` execution from a
            // context that shuts down is a stop.
            // SAFETY: holder.
            Some(false) => unsafe { Self::run(op as *const ()) },
            // SAFETY: holder.
            Some(true) => unsafe { Self::finish(op, Done::Stopped) },
        }
    }

    /// Enqueues the node on the scheduler. Returns `None` if it was queued
    /// (the caller holds nothing any more and must not touch the op), or
    /// `Some(stopped)` if the context executed it inline, inside `enqueue`,
    /// in which case the caller still holds `POLLING` and does the work
    /// (so an inline context neither recurses nor loses the poll).
    ///
    /// # Safety
    /// The caller holds `POLLING` on the live, started op, whose
    /// `scheduler` is `Some`.
    unsafe fn enqueue(op: *const Self) -> Option<bool> {
        // SAFETY: written in `start`, read-only since; `Some` per the caller.
        let scheduler = unsafe { (*op).scheduler.unwrap_unchecked() };
        // Derived from the pointer to the whole op (`#[repr(C)]`, `node`
        // first), so `execute` may reach the op through it.
        // SAFETY: not null: it points to the live op.
        let node = unsafe { NonNull::new_unchecked(op as *mut TaskNode) };
        let mut parked: Option<Deferred> = None;
        let dispatching = Dispatching::enter(op as *const (), &mut parked);
        // SAFETY: the node is the first field of the pinned op, derived from
        // a pointer to all of it, alive until the op completes (start's
        // contract), which only a holder can make happen; it is not queued
        // elsewhere: only the `POLLING` holder enqueues it, and the holder
        // that executes it enqueues it again only after it was taken off
        // the queue. The context is alive: its handle came from the
        // receiver, which stays in the op until completion.
        unsafe { scheduler.enqueue(node) };
        drop(dispatching);
        parked.map(|d| matches!(d, Deferred::Stopped))
    }

    /// The node's `execute`: the context runs the poll loop (or, shutting
    /// down, stops the operation).
    ///
    /// # Safety
    /// `node` is the node of a live `FromFutureOp<F, R>`, derived from a
    /// pointer to the whole op, enqueued by a `POLLING` holder; executed
    /// once per enqueue.
    unsafe fn execute(node: NonNull<TaskNode>, stopped: bool) {
        let op = node.as_ptr() as *const Self;
        let completion = if stopped {
            Deferred::Stopped
        } else {
            Deferred::Value
        };
        // Inside our own `enqueue` on this thread (an inline context): hand
        // it back to the enqueuer, which acts on it once `enqueue` returned.
        match Dispatching::park(op as *const (), completion) {
            None => {}
            // SAFETY: the enqueuer handed `POLLING` over with the node; the
            // op is alive until it completes.
            Some(Deferred::Stopped) => unsafe { Self::finish(op, Done::Stopped) },
            // SAFETY: as above.
            Some(_) => unsafe { Self::run(op as *const ()) },
        }
    }

    /// Drops the future and the stop callback, marks the cell (if any)
    /// done and completes the receiver.
    ///
    /// # Safety
    /// As [`run`](Self::run), except that the cell need not exist (the
    /// first poll). Called once.
    unsafe fn finish(op: *const Self, done: Done<F::Output>) {
        // SAFETY: holder. Dropping in place honours the pin; a panic in the
        // future's destructor is caught so the receiver still completes.
        // Dropping the stop callback waits for a running call of it, so a
        // cell it created is seen below.
        let receiver = unsafe {
            let dropped = catch_unwind(|| (*op).future.with_mut(|f| *f = None));
            (*op).stop_cb.with_mut(|c| *c = None);
            ((*op).receiver.with_mut(|r| (*r).take()), dropped)
        };
        // No one reaches the op through the cell any more. Without a cell,
        // no one can reach it at all: the first poll's waker is gone and
        // the stop callback is deregistered.
        // SAFETY: the op is alive and owns a reference to its cell.
        if let Some(cell) = unsafe { (*op).lazy.get() } {
            cell.state.fetch_or(DONE, Ordering::Relaxed);
        }
        let (Some(receiver), dropped) = receiver else {
            return;
        };
        // After this call the op may be freed: touch nothing of it.
        match (done, dropped) {
            (Done::Panic(p), _) | (_, Err(p)) => receiver.set_panic(p),
            (Done::Value(v), Ok(())) => receiver.set_value(v),
            (Done::Stopped, Ok(())) => receiver.set_stopped(),
        }
    }
}

enum Done<T> {
    Value(T),
    Stopped,
    Panic(PanicPayload),
}

/// What the wakers of a [`FromFutureOp`] point at. See the module docs for
/// the state protocol.
struct WakeCell {
    /// `POLLING | NOTIFIED | STOP | DONE`.
    state: AtomicUsize,
    /// The operation (type-erased). Dereferenced only by the `POLLING`
    /// holder, never once `DONE` is set.
    op: *const (),
    /// What a wake-up that took `POLLING` runs: the poll loop
    /// (`FromFutureOp::run`), the enqueue on the receiver's scheduler
    /// (`FromFutureOp::reschedule`), or `FromFutureOn`'s dispatch.
    run: unsafe fn(*const ()),
}

// SAFETY: `op` is only dereferenced by the `POLLING` holder while the
// operation is alive (not `DONE`); the operation's future and receiver are
// `Send` (required by `FromFuture`'s `SenderTo`), so whichever thread takes
// `POLLING` may touch them.
unsafe impl Send for WakeCell {}
// SAFETY: as above; the state is atomic.
unsafe impl Sync for WakeCell {}

impl WakeCell {
    /// A wake-up (`extra == 0`) or a stop request (`extra == STOP`).
    fn notify(&self, extra: usize) {
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            if state & DONE != 0 {
                return;
            }
            if state & POLLING != 0 {
                let next = state | NOTIFIED | extra;
                if next == state {
                    return;
                }
                // Release: the holder's Acquire when it clears `NOTIFIED`
                // sees what we did before waking.
                match self.state.compare_exchange_weak(
                    state,
                    next,
                    Ordering::Release,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return,
                    Err(actual) => state = actual,
                }
            } else {
                // Acquire: see what the previous holder did.
                match self.state.compare_exchange_weak(
                    state,
                    state | POLLING | extra,
                    Ordering::Acquire,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        // SAFETY: we took `POLLING` while not `DONE`, so the
                        // op has not completed and is alive (start's
                        // contract); `run` is its own.
                        unsafe { (self.run)(self.op) };
                        return;
                    }
                    Err(actual) => state = actual,
                }
            }
        }
    }
}

impl Wake for WakeCell {
    fn wake(self: Arc<Self>) {
        self.notify(0)
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.notify(0)
    }
}

/// Where a [`FromFutureOp`]'s [`WakeCell`] is found, inside the op, and
/// what the waker of the first poll points at.
///
/// The cell is created on demand, in state `POLLING`, which is only right
/// while the thread that started the op still holds `POLLING` without a
/// cell: so it may be created only during the first poll (by a `clone` of
/// the first poll's waker, possibly on another thread the future lent the
/// `&Waker` to), by a stop request (whose callback is registered in
/// `start`, before the first poll), or by the first poller itself after a
/// `Pending` poll (before it lets go of `POLLING`, so no creation can come
/// later: from then on the cell exists). A stop request after a `Ready`
/// first poll may create a cell while `finish` drops the callback; it only
/// sets `STOP | NOTIFIED` there and `finish` then sets `DONE`.
pub(crate) struct LazyCell {
    /// The cell (`Arc::into_raw`, one reference owned here, released when
    /// the op is dropped), or null. Set once, by compare-exchange.
    cell: AtomicPtr<WakeCell>,
    /// Non-zero once the first poll's (borrowed) waker was woken.
    notified: AtomicUsize,
    /// `WakeCell::op` of the cell. Written in `start`, before any waker or
    /// stop callback exists.
    op: *const (),
    /// `WakeCell::run` of the cell. Written in `start`, as `op`.
    run: unsafe fn(*const ()),
}

// SAFETY: `op` and `run` are written before the op is shared and only read
// after; the rest is atomic; the cell is `Send + Sync`.
unsafe impl Send for LazyCell {}
// SAFETY: as above.
unsafe impl Sync for LazyCell {}

/// Placeholder `run` until `start` writes the real one (never called: no
/// cell exists before `start`).
unsafe fn not_started(_: *const ()) {}

impl LazyCell {
    fn new() -> Self {
        LazyCell {
            cell: AtomicPtr::new(ptr::null_mut()),
            notified: AtomicUsize::new(0),
            op: ptr::null(),
            run: not_started,
        }
    }

    /// The cell, if it was created.
    fn get(&self) -> Option<&WakeCell> {
        // Acquire: see the creator's initialisation of the cell.
        let cell = self.cell.load(Ordering::Acquire);
        // SAFETY: created by `cell`, kept alive by the reference we own.
        unsafe { cell.as_ref() }
    }

    /// The cell, created if there is none yet.
    ///
    /// # Safety
    /// `POLLING` is held and, if no cell exists yet, it is held by the
    /// thread that started the op, which has not let it go (see the type's
    /// docs): the call is made during the first poll, by the stop
    /// callback, or by the first poller before it releases.
    unsafe fn cell(&self) -> *const WakeCell {
        // Acquire: see the creator's initialisation of the cell.
        let current = self.cell.load(Ordering::Acquire);
        if !current.is_null() {
            return current;
        }
        let new = Arc::into_raw(Arc::new(WakeCell {
            state: AtomicUsize::new(POLLING),
            op: self.op,
            run: self.run,
        })) as *mut WakeCell;
        // AcqRel: publish our cell, or see the winner's.
        match self
            .cell
            .compare_exchange(ptr::null_mut(), new, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => new,
            Err(winner) => {
                // SAFETY: ours, from `into_raw` above, never shared.
                drop(unsafe { Arc::from_raw(new) });
                winner
            }
        }
    }

    /// [`cell`](Self::cell), as a new reference.
    ///
    /// # Safety
    /// As [`cell`](Self::cell).
    unsafe fn cell_arc(&self) -> Arc<WakeCell> {
        // SAFETY: per the caller.
        let cell = unsafe { self.cell() };
        // SAFETY: `cell` came from `Arc::into_raw` and we own a reference.
        unsafe {
            Arc::increment_strong_count(cell);
            Arc::from_raw(cell)
        }
    }
}

impl Drop for LazyCell {
    fn drop(&mut self) {
        let cell = self.cell.load(Ordering::Acquire);
        if !cell.is_null() {
            // SAFETY: the reference owned here, from `Arc::into_raw`.
            drop(unsafe { Arc::from_raw(cell) });
        }
    }
}

/// The waker of the first poll: its data is the op's [`LazyCell`]. It is
/// only ever lent (`&Waker`, inside the first poll's `Context`), never
/// owned by anyone but `run_first`, which does not drop it; so every call
/// below happens during the first poll, while `run_first` holds `POLLING`
/// and the op is alive. `clone` hands out a waker of the (created on
/// demand) cell; `wake_by_ref` records the wake-up for `run_first`, which
/// reads it after the poll returned.
static FIRST_POLL_VTABLE: RawWakerVTable = RawWakerVTable::new(
    first_poll_clone,
    first_poll_wake,
    first_poll_wake,
    first_poll_drop,
);

unsafe fn first_poll_clone(data: *const ()) -> RawWaker {
    // SAFETY: `data` is the live op's `LazyCell`, and we are inside the
    // first poll (see `FIRST_POLL_VTABLE`).
    let cell = unsafe { (*(data as *const LazyCell)).cell_arc() };
    let waker = ManuallyDrop::new(Waker::from(cell));
    RawWaker::new(waker.data(), waker.vtable())
}

unsafe fn first_poll_wake(data: *const ()) {
    // SAFETY: as in `first_poll_clone`. Release: `run_first`'s Acquire
    // sees what the waker did before waking.
    unsafe {
        (*(data as *const LazyCell))
            .notified
            .store(1, Ordering::Release)
    }
}

unsafe fn first_poll_drop(_: *const ()) {}

/// Makes a sender out of a future that is polled on `scheduler`: every
/// poll, the first included, runs in the completion of a
/// `scheduler.schedule()` operation, so the future and the receiver's
/// completion run on the scheduler's execution context.
///
/// This is [`from_future`] with a different answer to "where is it
/// polled": instead of the receiver's scheduler (or the thread that wakes
/// it), a wake-up (when the future
/// is not being polled) schedules one poll on `scheduler`. A wake-up that
/// arrives during a poll makes that poll loop again, on the scheduler.
///
/// # Completion
/// - value: the future's output, on `scheduler`'s context.
/// - error: never.
/// - stopped: on a stop request (handled by the next scheduled poll, which
///   drops the future instead of polling it), or if a `schedule()`
///   operation completes *stopped* (say, the context shut down).
///
/// # Cancellation
/// A stop request is a wake-up that asks for stop: the next scheduled run
/// drops the future and completes *stopped*. The `schedule()` operations
/// see a never-stop token (stop is handled here).
///
/// # Panics
/// A panic while polling, or one delivered by a `schedule()` operation, is
/// delivered through [`Receiver::set_panic`].
///
/// # Allocation
/// One `Arc` per start (the wakers' target) and whatever `schedule()`
/// costs, once per poll that follows an idle period (the schedule
/// operation is connected in place, in the operation state).
///
/// # Example
/// ```
/// use exec_adapters::from_future_on;
/// use exec_core::{sync_wait, RunLoop, Scheduler, SenderExt};
///
/// // Poll a future on a run loop driven by another thread.
/// let run_loop = RunLoop::new();
/// let here = std::thread::current().id();
/// let polled_on = std::thread::scope(|s| {
///     s.spawn(|| run_loop.run());
///     let r = sync_wait(from_future_on(run_loop.scheduler(), async {
///         std::thread::current().id()
///     }));
///     run_loop.finish();
///     r
/// });
/// assert_ne!(polled_on, Ok(Some(here)));
/// ```
///
/// # See also
/// [`from_future`] (polled on the receiver's scheduler, or where woken); with the `tokio` feature,
/// `TokioScheduler::enter` for tokio futures that need the runtime entered.
pub fn from_future_on<Sch: Scheduler, F: Future>(
    scheduler: Sch,
    future: F,
) -> FromFutureOn<Sch, F> {
    FromFutureOn { scheduler, future }
}

/// Sender for the [`from_future_on`] function.
#[must_use = "senders do nothing unless connected and started"]
#[derive(Clone, Debug)]
pub struct FromFutureOn<Sch, F> {
    scheduler: Sch,
    future: F,
}

impl<Sch, F: Future> Sender for FromFutureOn<Sch, F> {
    type Output = F::Output;
    type Error = Infallible;
}

impl<Sch, F, R> SenderTo<R> for FromFutureOn<Sch, F>
where
    Sch: Scheduler,
    Sch::Sender: SenderTo<PollOn> + Sender<Error = Infallible>,
    F: Future + Send,
    R: Receiver<F::Output, Infallible> + Send,
{
    type Operation = FromFutureOnOp<Sch, F, R>;
    fn connect(self, receiver: R) -> Self::Operation {
        FromFutureOnOp {
            core: from_future(self.future).connect(receiver),
            scheduler: self.scheduler,
            scheduled: UnsafeCell::new(None),
            _pin: PhantomPinned,
        }
    }
}

/// Operation state of [`FromFutureOn`]: a [`FromFutureOp`] whose wake-ups
/// schedule a poll instead of polling.
pub struct FromFutureOnOp<Sch, F, R>
where
    Sch: Scheduler,
    Sch::Sender: SenderTo<PollOn>,
{
    /// The future, the receiver and the wake cell; its `run` is the poll
    /// loop, called from `PollOn::set_value`.
    core: FromFutureOp<F, R>,
    scheduler: Sch,
    /// Holder. The `schedule()` operation of the pending (or last) poll;
    /// replaced, in place, by the holder that schedules the next one (the
    /// previous one has completed by then: it gave up `POLLING` from inside
    /// its completion).
    scheduled: UnsafeCell<Option<<Sch::Sender as SenderTo<PollOn>>::Operation>>,
    _pin: PhantomPinned,
}

impl<Sch, F, R> fmt::Debug for FromFutureOnOp<Sch, F, R>
where
    Sch: Scheduler,
    Sch::Sender: SenderTo<PollOn>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FromFutureOnOp").finish_non_exhaustive()
    }
}

// SAFETY: as for `FromFutureOp`; the scheduler and the schedule operation
// are touched by the `POLLING` holder only and must be `Send` themselves.
unsafe impl<Sch, F, R> Send for FromFutureOnOp<Sch, F, R>
where
    Sch: Scheduler + Send,
    Sch::Sender: SenderTo<PollOn>,
    <Sch::Sender as SenderTo<PollOn>>::Operation: Send,
    F: Send,
    R: Send,
{
}
// SAFETY: `&FromFutureOnOp` exposes nothing.
unsafe impl<Sch, F, R> Sync for FromFutureOnOp<Sch, F, R>
where
    Sch: Scheduler,
    Sch::Sender: SenderTo<PollOn>,
{
}

impl<Sch, F, R> OperationState for FromFutureOnOp<Sch, F, R>
where
    Sch: Scheduler,
    Sch::Sender: SenderTo<PollOn> + Sender<Error = Infallible>,
    F: Future + Send,
    R: Receiver<F::Output, Infallible> + Send,
{
    unsafe fn start(self: Pin<&mut Self>) {
        // SAFETY: nothing is moved out of the pinned op; from here on it is
        // reached through raw pointers only.
        let op: *mut Self = unsafe { self.get_unchecked_mut() };
        // SAFETY: `core` is structurally pinned inside the pinned op.
        let core: *mut FromFutureOp<F, R> = unsafe { ptr::addr_of_mut!((*op).core) };
        // SAFETY: we hold `POLLING` (the cell's initial state); wake-ups
        // reach `dispatch` with the outer op. Eager: every poll runs in
        // `run`, with the cell's waker.
        unsafe { FromFutureOp::<F, R>::prepare(core, op as *const (), Self::dispatch, true) };
        // SAFETY: holder; the op is alive (start's contract).
        unsafe { Self::dispatch(op as *const ()) };
    }
}

impl<Sch, F, R> FromFutureOnOp<Sch, F, R>
where
    Sch: Scheduler,
    Sch::Sender: SenderTo<PollOn> + Sender<Error = Infallible>,
    F: Future + Send,
    R: Receiver<F::Output, Infallible> + Send,
{
    /// Schedules one run of the poll loop.
    ///
    /// # Safety
    /// `op` is this type's live, started op; the caller holds `POLLING`.
    unsafe fn dispatch(op: *const ()) {
        let op = op as *const Self;
        let receiver = PollOn {
            op: op as *const (),
            run: Self::scheduled_run,
            stopped: Self::scheduled_stopped,
            panicked: Self::scheduled_panicked,
        };
        // A schedule operation that completes inline, inside its `start`,
        // parks its completion here and we act on it after `start` returned:
        // completing may free the op and the schedule operation in it,
        // which must not happen while its `start` is still running (an
        // `Unpin` operation's `Pin<&mut Self>` is a protected reference),
        // and it keeps the stack flat.
        let mut parked: Option<Deferred> = None;
        let _dispatching = Dispatching::enter(op as *const (), &mut parked);
        // SAFETY: holder: the slot is ours; the previous schedule operation
        // (if any) has completed, so dropping it is allowed. The new one is
        // pinned in the pinned op and, by the same rule, kept until it
        // completes (it is replaced only by a later holder, after it ran).
        unsafe {
            let sender = (*op).scheduler.schedule();
            (*op).scheduled.with_mut(|slot| {
                *slot = Some(sender.connect(receiver));
                Pin::new_unchecked((*slot).as_mut().unwrap_unchecked()).start();
            });
        }
        drop(_dispatching);
        // If nothing was parked, the schedule operation completes (or has
        // completed) elsewhere: do not touch the op. If something was, we
        // still hold `POLLING` and the op is alive.
        // SAFETY: as just said.
        unsafe {
            match parked {
                None => {}
                Some(Deferred::Value) => Self::scheduled_run(op as *const ()),
                Some(Deferred::Stopped) => Self::scheduled_stopped(op as *const ()),
                Some(Deferred::Panic(p)) => Self::scheduled_panicked(op as *const (), p),
            }
        }
    }

    /// # Safety
    /// Called once per dispatch, by the schedule operation's receiver.
    unsafe fn scheduled_run(op: *const ()) {
        let op = op as *const Self;
        // SAFETY: the pending poll holds `POLLING`; the op is alive.
        unsafe { FromFutureOp::<F, R>::run(ptr::addr_of!((*op).core) as *const ()) }
    }

    /// # Safety
    /// As `scheduled_run`.
    unsafe fn scheduled_stopped(op: *const ()) {
        let op = op as *const Self;
        // SAFETY: as `scheduled_run`.
        unsafe { FromFutureOp::<F, R>::finish(ptr::addr_of!((*op).core), Done::Stopped) }
    }

    /// # Safety
    /// As `scheduled_run`.
    unsafe fn scheduled_panicked(op: *const (), payload: PanicPayload) {
        let op = op as *const Self;
        // SAFETY: as `scheduled_run`.
        unsafe { FromFutureOp::<F, R>::finish(ptr::addr_of!((*op).core), Done::Panic(payload)) }
    }
}

/// The receiver of the `schedule()` operations of [`FromFutureOn`]: runs
/// one poll loop of the future on the scheduler's context.
pub struct PollOn {
    op: *const (),
    run: unsafe fn(*const ()),
    stopped: unsafe fn(*const ()),
    panicked: unsafe fn(*const (), PanicPayload),
}

// SAFETY: it only calls back into the op it belongs to, whose future and
// receiver are `Send` (required by `FromFutureOn`'s `SenderTo`).
unsafe impl Send for PollOn {}

impl fmt::Debug for PollOn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PollOn").finish_non_exhaustive()
    }
}

impl Receiver<(), Infallible> for PollOn {
    fn set_value(self, (): ()) {
        if let Some(Deferred::Value) = Dispatching::park(self.op, Deferred::Value) {
            // SAFETY: the op is alive and we hold its `POLLING` (see `dispatch`).
            unsafe { (self.run)(self.op) }
        }
    }
    fn set_error(self, error: Infallible) {
        match error {}
    }
    fn set_stopped(self) {
        if let Some(Deferred::Stopped) = Dispatching::park(self.op, Deferred::Stopped) {
            // SAFETY: as above.
            unsafe { (self.stopped)(self.op) }
        }
    }
    fn set_panic(self, payload: PanicPayload) {
        if let Some(Deferred::Panic(p)) = Dispatching::park(self.op, Deferred::Panic(payload)) {
            // SAFETY: as above.
            unsafe { (self.panicked)(self.op, p) }
        }
    }
}

/// A completion parked while its `start` (or `enqueue`) runs: a schedule
/// operation's (`FromFutureOn`), or a node execution (`from_future` on an
/// inline context: `Value` polls, `Stopped` stops).
enum Deferred {
    Value,
    Stopped,
    Panic(PanicPayload),
}

std::thread_local! {
    /// The op whose schedule operation this thread is starting
    /// (`FromFutureOnOp::dispatch`) or whose node it is enqueueing
    /// (`FromFutureOp::enqueue`), and where an inline completion of it is
    /// parked. The two cannot be confused even when a `FromFutureOnOp` and
    /// its `core` share an address: the core of a `FromFutureOn` never
    /// enqueues its node (it has no `scheduler`).
    static DISPATCHING: Cell<(*const (), *mut Option<Deferred>)> =
        const { Cell::new((ptr::null(), ptr::null_mut())) };
}

/// Marks this thread as inside `dispatch(op)` until dropped (restoring an
/// outer dispatch of another op, if any).
struct Dispatching {
    previous: (*const (), *mut Option<Deferred>),
}

impl Dispatching {
    fn enter(op: *const (), slot: &mut Option<Deferred>) -> Self {
        let previous = DISPATCHING.with(|d| d.replace((op, slot as *mut _)));
        Dispatching { previous }
    }

    /// Parks `completion` if this thread is inside `dispatch(op)`;
    /// otherwise hands it back to be acted on now.
    fn park(op: *const (), completion: Deferred) -> Option<Deferred> {
        let (current, slot) = DISPATCHING.with(|d| d.get());
        if current == op && !op.is_null() {
            // SAFETY: `slot` is the `parked` local of the `dispatch` frame
            // below us on this very thread, alive until it returns.
            unsafe { *slot = Some(completion) };
            None
        } else {
            Some(completion)
        }
    }
}

impl Drop for Dispatching {
    fn drop(&mut self) {
        DISPATCHING.with(|d| d.set(self.previous));
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use ::loom::sync::atomic::AtomicUsize as LAtomicUsize;
    use ::loom::sync::{Arc as LArc, Mutex as LMutex};
    use exec_core::DynScheduler;
    use std::boxed::Box;

    /// A one-shot channel whose receiving future reads the payload without
    /// a lock once it has been woken: only `from_future`'s hand-off orders
    /// the producer's write before that read.
    struct Chan {
        data: UnsafeCell<u32>,
        /// (sent, waker)
        slot: LMutex<(bool, Option<Waker>)>,
    }

    // SAFETY: `data` is written once by the producer before it publishes
    // `sent` / wakes, and read only after that (the property under test).
    unsafe impl Sync for Chan {}
    // SAFETY: as above.
    unsafe impl Send for Chan {}

    struct RecvFuture {
        chan: LArc<Chan>,
        polls: usize,
        /// Written by the first poll after it published its waker, read by
        /// the second: whichever thread polls second must see it.
        scratch: UnsafeCell<usize>,
    }

    fn recv(chan: &LArc<Chan>) -> RecvFuture {
        RecvFuture {
            chan: chan.clone(),
            polls: 0,
            scratch: UnsafeCell::new(0),
        }
    }

    impl Future for RecvFuture {
        type Output = u32;
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u32> {
            self.polls += 1;
            if self.polls == 1 {
                let mut slot = self.chan.slot.lock().unwrap();
                if !slot.0 {
                    slot.1 = Some(cx.waker().clone());
                    drop(slot);
                    // SAFETY: the poller owns the future.
                    self.scratch.with_mut(|s| unsafe { *s = 1 });
                    return Poll::Pending;
                }
            } else {
                // SAFETY: the poller owns the future (ordered after the
                // previous poll by `from_future`).
                assert_eq!(self.scratch.with(|s| unsafe { *s }), 1);
            }
            // Sent (seen under the lock), or woken: the only wake-up comes
            // from the producer after it wrote `data`.
            // SAFETY: written once by the producer before it woke us.
            Poll::Ready(self.chan.data.with(|d| unsafe { *d }))
        }
    }

    struct Recv {
        values: LArc<LAtomicUsize>,
        stopped: LArc<LAtomicUsize>,
    }

    impl Receiver<u32, Infallible> for Recv {
        fn set_value(self, value: u32) {
            assert_eq!(value, 42);
            self.values.fetch_add(1, Ordering::SeqCst);
        }
        fn set_error(self, error: Infallible) {
            match error {}
        }
        fn set_stopped(self) {
            self.stopped.fetch_add(1, Ordering::SeqCst);
        }
        fn set_panic(self, payload: PanicPayload) {
            std::panic::resume_unwind(payload)
        }
    }

    /// The waker register/wake race: the producer's wake-up arrives before,
    /// during or after the first poll's hand-back. Either the waking thread
    /// polls (and must see the first poll's writes to the future: Release on
    /// the hand-back, Acquire on the take-over) or the polling thread polls
    /// again (and must see the producer's write: Release on `NOTIFIED`,
    /// Acquire when clearing it). Loom reports a causality violation on the
    /// cells if the `NOTIFIED` edge is weakened to `Relaxed` (checked). The
    /// take-over's Acquire is also provided by the Acquire `fetch_and` at
    /// the top of the poll loop, which reads from the hand-back's release
    /// sequence: weakening only the take-over is (correctly) not caught.
    #[test]
    fn wake_racing_the_first_poll() {
        ::loom::model(|| {
            let chan = LArc::new(Chan {
                data: UnsafeCell::new(0),
                slot: LMutex::new((false, None)),
            });
            let values = LArc::new(LAtomicUsize::new(0));
            let stopped = LArc::new(LAtomicUsize::new(0));
            let mut op = Box::pin(from_future(recv(&chan)).connect(Recv {
                values: values.clone(),
                stopped: stopped.clone(),
            }));
            let producer = {
                let chan = chan.clone();
                ::loom::thread::spawn(move || {
                    // SAFETY: the consumer reads only after `sent` or a wake.
                    chan.data.with_mut(|d| unsafe { *d = 42 });
                    let waker = {
                        let mut slot = chan.slot.lock().unwrap();
                        slot.0 = true;
                        slot.1.take()
                    };
                    if let Some(w) = waker {
                        w.wake();
                    }
                })
            };
            // SAFETY: `op` stays pinned in its box until after the join and
            // the completion check below.
            unsafe { op.as_mut().start() };
            producer.join().unwrap();
            assert_eq!(values.load(Ordering::SeqCst), 1);
            assert_eq!(stopped.load(Ordering::SeqCst), 0);
            drop(op);
        });
    }

    /// What the lending future's helper thread does with the first poll's
    /// borrowed waker.
    #[derive(Clone, Copy, PartialEq)]
    enum Lend {
        /// Clones it (racing the poller's own clone: both may create the
        /// cell) and wakes the clone after the borrow ended, racing the
        /// first poll's release.
        CloneThenWake,
        /// Calls `wake_by_ref` on the borrowed waker during the poll.
        WakeByRef,
    }

    struct SendPtr(*const Waker);
    // SAFETY: the waker is `Sync`; the poller waits for the helper to be
    // done with the borrow before the poll returns.
    unsafe impl Send for SendPtr {}

    /// A future whose first poll lends its `&Waker` to another thread
    /// (waiting, inside the poll, until that thread is done with the
    /// borrow), which writes `data` and then wakes it; the second poll
    /// reads `data`.
    struct LendingFuture {
        chan: LArc<Chan>,
        lend: Lend,
        polls: usize,
        own: Option<Waker>,
        helper: LArc<LMutex<Option<::loom::thread::JoinHandle<()>>>>,
        scratch: UnsafeCell<usize>,
    }

    impl Future for LendingFuture {
        type Output = u32;
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u32> {
            self.polls += 1;
            if self.polls > 1 {
                // SAFETY: the poller owns the future (ordered after the
                // first poll by `from_future`).
                assert_eq!(self.scratch.with(|s| unsafe { *s }), 1);
                // SAFETY: written by the helper before it woke us.
                return Poll::Ready(self.chan.data.with(|d| unsafe { *d }));
            }
            let lent = LArc::new(LAtomicUsize::new(0));
            let ptr = SendPtr(cx.waker() as *const Waker);
            let (chan, lend, lent2) = (self.chan.clone(), self.lend, lent.clone());
            let handle = ::loom::thread::spawn(move || {
                let ptr = ptr;
                // SAFETY: the poll that lent it waits for `lent` below.
                let borrowed = unsafe { &*ptr.0 };
                let clone = match lend {
                    Lend::CloneThenWake => Some(borrowed.clone()),
                    Lend::WakeByRef => {
                        // SAFETY: read after a wake-up only.
                        chan.data.with_mut(|d| unsafe { *d = 42 });
                        borrowed.wake_by_ref();
                        None
                    }
                };
                lent2.store(1, Ordering::Release);
                if let Some(w) = clone {
                    // SAFETY: read after a wake-up only.
                    chan.data.with_mut(|d| unsafe { *d = 42 });
                    w.wake();
                }
            });
            *self.helper.lock().unwrap() = Some(handle);
            if self.lend == Lend::CloneThenWake {
                self.own = Some(cx.waker().clone());
            }
            while lent.load(Ordering::Acquire) == 0 {
                ::loom::thread::yield_now();
            }
            // SAFETY: the poller owns the future.
            self.scratch.with_mut(|s| unsafe { *s = 1 });
            Poll::Pending
        }
    }

    fn lending_first_poll(lend: Lend) {
        ::loom::model(move || {
            let chan = LArc::new(Chan {
                data: UnsafeCell::new(0),
                slot: LMutex::new((false, None)),
            });
            let helper = LArc::new(LMutex::new(None));
            let values = LArc::new(LAtomicUsize::new(0));
            let stopped = LArc::new(LAtomicUsize::new(0));
            let future = LendingFuture {
                chan: chan.clone(),
                lend,
                polls: 0,
                own: None,
                helper: helper.clone(),
                scratch: UnsafeCell::new(0),
            };
            let mut op = Box::pin(from_future(future).connect(Recv {
                values: values.clone(),
                stopped: stopped.clone(),
            }));
            // SAFETY: `op` stays pinned in its box until after the join.
            unsafe { op.as_mut().start() };
            let handle = helper.lock().unwrap().take().unwrap();
            handle.join().unwrap();
            assert_eq!(values.load(Ordering::SeqCst), 1);
            assert_eq!(stopped.load(Ordering::SeqCst), 0);
            drop(op);
            // The future (and its handles) was dropped at completion.
            assert_eq!(LArc::strong_count(&chan), 1);
        });
    }

    /// The first poll's waker cloned on another thread (racing the
    /// poller's own clone: one cell is created, the loser's freed), and
    /// the clone woken there after the borrow ended, racing the first
    /// poll's release: exactly one completion, every poll sees the
    /// helper's write and the previous poll's. Fails (concurrent access to
    /// the future) if a cell is created in state 0 instead of `POLLING`
    /// (checked).
    #[test]
    fn clone_racing_the_first_poll() {
        lending_first_poll(Lend::CloneThenWake);
    }

    /// `wake_by_ref` on the first poll's borrowed waker from another
    /// thread, during the poll, then `Pending`: the poller polls again and
    /// sees the helper's write. Fails (no completion) if `run_first`
    /// ignores `notified` (checked).
    #[test]
    fn borrowed_wake_by_ref_during_the_first_poll() {
        lending_first_poll(Lend::WakeByRef);
    }

    /// A stop request racing a wake-up: exactly one completion, and the
    /// future is dropped exactly once, before it.
    #[test]
    fn stop_racing_a_wake() {
        ::loom::model(|| {
            let chan = LArc::new(Chan {
                data: UnsafeCell::new(0),
                slot: LMutex::new((false, None)),
            });
            let values = LArc::new(LAtomicUsize::new(0));
            let stopped = LArc::new(LAtomicUsize::new(0));
            let source = LArc::new(exec_core::StopSource::new());
            struct WithStop(Recv, LArc<exec_core::StopSource>);
            impl Receiver<u32, Infallible> for WithStop {
                fn set_value(self, value: u32) {
                    self.0.set_value(value)
                }
                fn set_error(self, error: Infallible) {
                    match error {}
                }
                fn set_stopped(self) {
                    self.0.set_stopped()
                }
                fn set_panic(self, payload: PanicPayload) {
                    self.0.set_panic(payload)
                }
                fn env(&self) -> impl Env<'_> {
                    StopEnv(&self.1)
                }
            }
            struct StopEnv<'a>(&'a exec_core::StopSource);
            impl<'a> Env<'a> for StopEnv<'a> {
                fn stop_token(&self) -> StopToken<'a> {
                    self.0.token()
                }
            }
            let mut op = Box::pin(from_future(recv(&chan)).connect(WithStop(
                Recv {
                    values: values.clone(),
                    stopped: stopped.clone(),
                },
                source.clone(),
            )));
            // SAFETY: pinned in the box until after the join.
            unsafe { op.as_mut().start() };
            let stopper = {
                let source = source.clone();
                ::loom::thread::spawn(move || {
                    source.request_stop();
                })
            };
            // SAFETY: the consumer reads only after `sent` or a wake.
            chan.data.with_mut(|d| unsafe { *d = 42 });
            let waker = {
                let mut slot = chan.slot.lock().unwrap();
                slot.0 = true;
                slot.1.take()
            };
            if let Some(w) = waker {
                w.wake();
            }
            stopper.join().unwrap();
            let done = values.load(Ordering::SeqCst) + stopped.load(Ordering::SeqCst);
            assert_eq!(done, 1);
            drop(op);
            // The future (and its channel handle) was dropped at completion.
            assert_eq!(LArc::strong_count(&chan), 1);
        });
    }

    /// A context whose nodes the model's main thread executes by hand.
    struct LoomCtx {
        queue: LMutex<std::collections::VecDeque<QueuedNode>>,
    }

    struct QueuedNode(NonNull<TaskNode>);
    // SAFETY: nodes are executed by whichever thread steps the context.
    unsafe impl Send for QueuedNode {}

    // SAFETY: each accepted node is executed once, by `step`; `enqueue`
    // publishes the node as its last touch of the context.
    unsafe impl DynScheduler for LoomCtx {
        unsafe fn enqueue(this: NonNull<Self>, node: NonNull<TaskNode>) {
            // SAFETY: alive when called; the borrow ends with the unlock.
            let this = unsafe { this.as_ref() };
            this.queue.lock().unwrap().push_back(QueuedNode(node));
        }
    }

    impl LoomCtx {
        fn new() -> Self {
            LoomCtx {
                queue: LMutex::new(std::collections::VecDeque::new()),
            }
        }
        /// Executes one queued node; `false` if there was none.
        fn step(&self) -> bool {
            let node = self.queue.lock().unwrap().pop_front();
            match node {
                // SAFETY: queued by `enqueue`, executed once, here.
                Some(QueuedNode(node)) => unsafe {
                    TaskNode::execute(node, false);
                    true
                },
                None => false,
            }
        }
        /// Runs nodes until `done()`. `finished` is set by the other
        /// thread after its last wake-up or stop request: once it is seen,
        /// an empty queue without completion is a lost wake-up.
        fn drive(&self, done: impl Fn() -> bool, finished: &LAtomicUsize) {
            loop {
                let other_finished = finished.load(Ordering::Acquire) == 1;
                let ran = self.step();
                if done() {
                    return;
                }
                if !ran {
                    assert!(
                        !other_finished,
                        "lost wake-up: nothing queued, not complete"
                    );
                    ::loom::thread::yield_now();
                }
            }
        }
    }

    /// `Recv` whose environment reports `ctx` as its scheduler (and, if
    /// given, `stop`'s token).
    struct OnCtx {
        recv: Recv,
        ctx: LArc<LoomCtx>,
        stop: Option<LArc<exec_core::StopSource>>,
    }
    impl Receiver<u32, Infallible> for OnCtx {
        fn set_value(self, value: u32) {
            self.recv.set_value(value)
        }
        fn set_error(self, error: Infallible) {
            match error {}
        }
        fn set_stopped(self) {
            self.recv.set_stopped()
        }
        fn set_panic(self, payload: PanicPayload) {
            self.recv.set_panic(payload)
        }
        fn env(&self) -> impl Env<'_> {
            CtxEnv {
                ctx: &self.ctx,
                stop: self.stop.as_deref(),
            }
        }
    }
    struct CtxEnv<'a> {
        ctx: &'a LoomCtx,
        stop: Option<&'a exec_core::StopSource>,
    }
    impl<'a> Env<'a> for CtxEnv<'a> {
        fn stop_token(&self) -> StopToken<'a> {
            self.stop.map_or(StopToken::never(), |s| s.token())
        }
        fn scheduler(&self) -> Option<SchedulerRef<'a>> {
            Some(SchedulerRef::new(self.ctx))
        }
    }

    /// The register/wake race with a scheduler: the producer's wake-up
    /// arrives during the first poll (the poller must re-enqueue, not drop
    /// it) or after (the waker takes `POLLING` and enqueues); a second
    /// wake-up while the node is queued must not queue it twice. Every poll
    /// runs on the context (this thread) and sees the producer's write.
    #[test]
    fn wake_racing_the_first_poll_on_a_scheduler() {
        ::loom::model(|| {
            let chan = LArc::new(Chan {
                data: UnsafeCell::new(0),
                slot: LMutex::new((false, None)),
            });
            let ctx = LArc::new(LoomCtx::new());
            let values = LArc::new(LAtomicUsize::new(0));
            let stopped = LArc::new(LAtomicUsize::new(0));
            let finished = LArc::new(LAtomicUsize::new(0));
            let mut op = Box::pin(from_future(recv(&chan)).connect(OnCtx {
                recv: Recv {
                    values: values.clone(),
                    stopped: stopped.clone(),
                },
                ctx: ctx.clone(),
                stop: None,
            }));
            let producer = {
                let (chan, finished) = (chan.clone(), finished.clone());
                ::loom::thread::spawn(move || {
                    // SAFETY: the consumer reads only after `sent` or a wake.
                    chan.data.with_mut(|d| unsafe { *d = 42 });
                    let waker = {
                        let mut slot = chan.slot.lock().unwrap();
                        slot.0 = true;
                        slot.1.clone()
                    };
                    if let Some(w) = waker {
                        // Twice: the second finds the node queued or done.
                        w.wake_by_ref();
                        w.wake();
                    }
                    finished.store(1, Ordering::Release);
                })
            };
            // SAFETY: `op` stays pinned in its box until after it completed
            // and the producer was joined.
            unsafe { op.as_mut().start() };
            ctx.drive(
                || values.load(Ordering::SeqCst) + stopped.load(Ordering::SeqCst) == 1,
                &finished,
            );
            producer.join().unwrap();
            assert_eq!(values.load(Ordering::SeqCst), 1);
            assert_eq!(stopped.load(Ordering::SeqCst), 0);
            assert!(!ctx.step(), "nothing left queued");
            drop(op);
        });
    }

    /// A stop request (another thread) racing a wake-up (this thread), with
    /// a scheduler: one completion, the future dropped once, nothing left
    /// queued.
    #[test]
    fn stop_racing_a_wake_on_a_scheduler() {
        ::loom::model(|| {
            let chan = LArc::new(Chan {
                data: UnsafeCell::new(0),
                slot: LMutex::new((false, None)),
            });
            let ctx = LArc::new(LoomCtx::new());
            let values = LArc::new(LAtomicUsize::new(0));
            let stopped = LArc::new(LAtomicUsize::new(0));
            let finished = LArc::new(LAtomicUsize::new(0));
            let source = LArc::new(exec_core::StopSource::new());
            let mut op = Box::pin(from_future(recv(&chan)).connect(OnCtx {
                recv: Recv {
                    values: values.clone(),
                    stopped: stopped.clone(),
                },
                ctx: ctx.clone(),
                stop: Some(source.clone()),
            }));
            // SAFETY: pinned in the box until after it completed.
            unsafe { op.as_mut().start() };
            let stopper = {
                let (source, finished) = (source.clone(), finished.clone());
                ::loom::thread::spawn(move || {
                    source.request_stop();
                    finished.store(1, Ordering::Release);
                })
            };
            // SAFETY: the consumer reads only after `sent` or a wake.
            chan.data.with_mut(|d| unsafe { *d = 42 });
            let waker = {
                let mut slot = chan.slot.lock().unwrap();
                slot.0 = true;
                slot.1.take()
            };
            if let Some(w) = waker {
                w.wake();
            }
            ctx.drive(
                || values.load(Ordering::SeqCst) + stopped.load(Ordering::SeqCst) == 1,
                &finished,
            );
            stopper.join().unwrap();
            assert_eq!(
                values.load(Ordering::SeqCst) + stopped.load(Ordering::SeqCst),
                1
            );
            assert!(!ctx.step(), "nothing left queued");
            drop(op);
            assert_eq!(LArc::strong_count(&chan), 1);
        });
    }
}
