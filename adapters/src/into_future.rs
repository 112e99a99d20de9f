//! Sender → `Future`: [`SenderFutureExt::into_future`] and [`SenderFuture`].
//!
//! # Design
//! A started operation must stay pinned and alive until it completes, but a
//! `Future` may be dropped at any `.await` point. So the operation state does
//! not live inside the future: on the first poll the future allocates one
//! heap block holding the operation, a result slot, a waker slot and a
//! [`StopSource`], connects the sender inside it and starts it. The block has
//! two owners, the future and the running operation (through its receiver),
//! counted in the block's state word; whichever lets go last frees it.
//!
//! - The operation completes first (the usual case): its receiver stores
//!   the outcome, wakes the task and drops its reference; the future takes
//!   the outcome on its next poll and frees the block when dropped.
//! - The future is dropped first: it requests stop on the block's stop
//!   source and drops its reference, without waiting. The operation keeps
//!   running in its block until it completes (promptly if it honours the
//!   stop request), then its receiver frees the block — the operation
//!   "owns itself" from then on. No use-after-free, no blocking in `drop`.
//!
//! Because the operation may outlive the future (and a future may be
//! leaked with `mem::forget`), only `'static` senders can be turned into
//! futures: a borrowing sender must be run by a consumer that cannot be
//! forgotten ([`sync_wait`](exec_core::sync_wait), a scope).
//!
//! # The awaiting task as a scheduler
//! The operation's environment also answers the
//! [`scheduler`](exec_core::Env::scheduler) query, with the awaiting task:
//! a node scheduled there is queued in the block ([`TaskContext`]) and run
//! by the next poll of the future, on the thread polling it, so
//! `schedule_on_current()` or `on(pool, work)` inside an awaited sender come
//! back to the task that awaits it. The queue and a copy of the task's waker
//! sit behind a mutex, touched only by polls that would return `Pending`
//! and by `enqueue`, never on the inline fast path. The invariant that
//! prevents a lost wake-up: a poll returns `Pending` only after it stored its
//! waker and found the queue empty under the lock, and `enqueue` wakes the
//! stored waker after queueing under the same lock. Once the future is
//! dropped the queue is closed: queued nodes and every later one run at once
//! with `stopped = true`, so each node still executes exactly once.
//!
//! # The state word
//! `COMPLETE` (the outcome is written), `REGISTERING` (the poller is
//! writing the waker slot) and a reference count in the bits above. The
//! waker hand-off is the classic one: the poller writes the waker only
//! between setting and clearing `REGISTERING`, and only if `COMPLETE` was
//! not yet set; the completer takes the waker only if `REGISTERING` was
//! clear when it set `COMPLETE`; if it was set, the poller sees `COMPLETE`
//! when it clears `REGISTERING` and returns the outcome itself.

use core::alloc::Layout;
use core::fmt;
use core::future::Future;
use core::marker::PhantomPinned;
use core::pin::Pin;
use core::ptr::NonNull;
use core::task::{Context, Poll, Waker};

use exec_core::{
    DynScheduler, Env, OperationState, PanicPayload, Receiver, SchedulerRef, Sender, SenderTo,
    StopSource, StopToken, TaskNode,
};

use crate::loom::cell::UnsafeCell;
use crate::loom::sync::atomic::{AtomicUsize, Ordering};
use crate::loom::sync::{Mutex, MutexGuard};

const COMPLETE: usize = 0b01;
const REGISTERING: usize = 0b10;
const REF_ONE: usize = 0b100;
const REF_MASK: usize = !(REF_ONE - 1);

/// Why an awaited sender did not produce a value.
///
/// [`SenderFuture`] resolves to `Result<T, AwaitError<E>>`: the value channel
/// becomes `Ok(T)`, the error channel `Err(AwaitError::Error(e))` and the
/// stopped channel `Err(AwaitError::Stopped)`, so `?` propagates both
/// failures and a caller can still tell a cancellation from an error.
///
/// ```
/// use exec_adapters::{AwaitError, SenderFutureExt};
/// use exec_core::just;
///
/// let r: Result<i32, AwaitError<std::convert::Infallible>> =
///     futures::executor::block_on(just(1).into_future());
/// assert_eq!(r, Ok(1));
/// assert!(AwaitError::<()>::Stopped.is_stopped());
/// assert_eq!(AwaitError::Error(7).into_error(), Some(7));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AwaitError<E> {
    /// The sender completed on its error channel.
    Error(E),
    /// The sender completed *stopped* (it was cancelled).
    Stopped,
}

impl<E> AwaitError<E> {
    /// Whether the sender completed *stopped*.
    pub fn is_stopped(&self) -> bool {
        matches!(self, AwaitError::Stopped)
    }

    /// The error, if the sender failed (rather than stopped).
    pub fn into_error(self) -> Option<E> {
        match self {
            AwaitError::Error(e) => Some(e),
            AwaitError::Stopped => None,
        }
    }
}

impl<E: fmt::Display> fmt::Display for AwaitError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AwaitError::Error(e) => fmt::Display::fmt(e, f),
            AwaitError::Stopped => f.write_str("the operation was stopped"),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for AwaitError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            AwaitError::Error(e) => Some(e),
            AwaitError::Stopped => None,
        }
    }
}

/// Turns senders into futures, so that `sender.into_future().await` works
/// in any async runtime.
///
/// A blanket `impl IntoFuture for S: Sender` cannot be written outside the
/// crate that defines `IntoFuture` (coherence), hence this extension trait,
/// implemented for every [`Sender`].
pub trait SenderFutureExt: Sender + Sized {
    /// A future that starts this sender when first polled and resolves to
    /// its completion.
    ///
    /// # Completion
    /// - value `v` → `Ok(v)`;
    /// - error `e` → `Err(AwaitError::Error(e))`;
    /// - stopped → `Err(AwaitError::Stopped)`.
    ///
    /// The future is woken from whatever thread the sender completes on.
    ///
    /// # Environment
    /// - stop token: triggered when the future is dropped before it resolved;
    /// - scheduler: the awaiting task — work scheduled there (e.g. by
    ///   [`schedule_on_current`](exec_core::schedule_on_current), or by
    ///   [`on`](exec_core::on) coming back) runs inside a later poll of this
    ///   future, on the thread that polls it.
    ///
    /// # Cancellation
    /// The operation's environment carries a stop token. Dropping the future
    /// before it resolved requests stop on it and returns at once; the
    /// operation finishes on its own and frees its state (see
    /// [`SenderFuture`]'s design notes).
    ///
    /// # Panics
    /// A panic delivered by the sender ([`Receiver::set_panic`]) is resumed,
    /// with its original payload, in the task that polls the future.
    /// Polling again after the future resolved panics.
    ///
    /// # Allocation
    /// One heap block per future, on the first poll: it holds the operation
    /// state, so that the operation can outlive the future. It comes from
    /// [`exec_core::frame`]'s per-thread recycled blocks.
    ///
    /// # Example
    /// ```
    /// use exec_adapters::SenderFutureExt;
    /// use exec_core::{just, SenderExt};
    ///
    /// let fut = async {
    ///     let x = just(20).then(|x| x + 1).into_future().await.unwrap();
    ///     x * 2
    /// };
    /// assert_eq!(futures::executor::block_on(fut), 42);
    /// ```
    ///
    /// A borrowing sender cannot become a future (the future could be
    /// leaked while the operation still uses the borrow); run it with
    /// [`sync_wait`](exec_core::sync_wait) or inside another sender instead:
    /// ```compile_fail
    /// use exec_adapters::SenderFutureExt;
    /// use exec_core::{just, SenderExt};
    ///
    /// let data = vec![1, 2, 3];
    /// let fut = just(()).then(|()| data.len()).into_future(); // borrows `data`
    /// # drop(fut);
    /// ```
    ///
    /// # See also
    /// [`from_future`](crate::from_future) for the other direction,
    /// [`sync_wait`](exec_core::sync_wait) to block a thread instead.
    fn into_future(self) -> SenderFuture<Self>
    where
        Self: SenderTo<FutureReceiver<<Self as Sender>::Output, <Self as Sender>::Error>> + 'static,
        Self::Output: Send + 'static,
        Self::Error: Send + 'static,
        <Self as SenderTo<FutureReceiver<<Self as Sender>::Output, <Self as Sender>::Error>>>::Operation: Send + 'static,
    {
        SenderFuture {
            state: FutState::Unstarted(self),
            spin: core::time::Duration::ZERO,
        }
    }
}

impl<S: Sender> SenderFutureExt for S {}

/// Future for the [`into_future`](SenderFutureExt::into_future) method.
///
/// # Design
/// A started operation must stay pinned and alive until it completes, but a
/// future may be dropped at any `.await` point. So the operation state does
/// not live inside the future: on the first poll the future allocates one
/// heap block holding the operation, a result slot, a waker slot and a
/// stop source, connects the sender inside it and starts it. The block has
/// two owners, the future and the running operation (through its
/// receiver); whichever lets go last frees it.
///
/// - The operation completes first (the usual case): its receiver stores
///   the outcome, wakes the task and drops its reference; the future takes
///   the outcome on its next poll and frees the block.
/// - The future is dropped first: it requests stop and drops its reference
///   without waiting. The operation keeps running in its block until it
///   completes (promptly, if it honours the stop request); then its
///   receiver frees the block. No use-after-free, no blocking in `drop`.
///
/// Because the operation may outlive the future (and a future may be
/// leaked with `mem::forget`), only `'static` senders become futures.
///
/// When the future went first, the block (operation included) is freed
/// inside the operation's call to its receiver. That is what
/// [`OperationState::start`]'s contract allows ("does not touch its own
/// memory again"), and it is sound for operations that complete after
/// `start` returned because those are `!Unpin` (PROTOCOL.md rule 5): a
/// `&mut` to a `!Unpin` value does not assert uniqueness, so freeing under
/// a running `&mut self` method is allowed (miri-tested).
///
/// # Waiting without parking: [`spin_for`](SenderFuture::spin_for)
/// By default a poll that finds the operation running registers the waker
/// and returns `Pending`; the runtime then typically parks its thread, and
/// the completion has to wake it (a futex or eventfd round trip: 10–20 µs
/// on small machines, far more than a short hop to a CPU pool). For an
/// await of work known to be short, `spin_for(max)` makes the first poll
/// wait up to `max` for the completion before it registers the waker.
#[must_use = "futures do nothing unless polled"]
pub struct SenderFuture<S: Sender> {
    state: FutState<S>,
    /// Longest busy-wait of the first poll (zero: none).
    spin: core::time::Duration,
}

enum FutState<S: Sender> {
    /// Not polled yet.
    Unstarted(S),
    /// Started: the future holds one reference to the block.
    Started(NonNull<Shared<S::Output, S::Error>>),
    /// Resolved (reference dropped) or poisoned.
    Done,
}

// SAFETY: before the first poll the future holds the sender (hence
// `S: Send`); afterwards a pointer to the block, whose outcome (`T`, `E`)
// may be taken and dropped on the future's thread and whose operation state
// may be dropped there (`into_future` requires the operation to be `Send`).
unsafe impl<S: Sender + Send> Send for SenderFuture<S>
where
    S::Output: Send,
    S::Error: Send,
{
}
// SAFETY: `&SenderFuture` gives access to nothing.
unsafe impl<S: Sender> Sync for SenderFuture<S> {}

// The sender is never pinned (it is moved into `connect`), and the block is
// on the heap.
impl<S: Sender> Unpin for SenderFuture<S> {}

impl<S: Sender> fmt::Debug for SenderFuture<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            FutState::Unstarted(_) => "unstarted",
            FutState::Started(_) => "started",
            FutState::Done => "done",
        };
        f.debug_struct("SenderFuture")
            .field("state", &state)
            .finish()
    }
}

impl<S: Sender> SenderFuture<S> {
    /// Lets the first poll busy-wait up to `max` for the operation to
    /// complete before it registers the waker and returns `Pending`.
    ///
    /// For awaiting short work on another execution context — a CPU hop
    /// to a thread pool, a lock hand-off — from a runtime whose idle
    /// threads park: if the work completes within `max`, the task resumes
    /// without its thread being parked and woken. The spinning thread runs
    /// nothing else meanwhile, so keep `max` near the cost of a park and
    /// wake-up (10–20 µs) and never use it for I/O or timers, which would
    /// burn `max` of CPU on every await. Zero (the default) disables it.
    /// Only the first poll spins; later polls are plain.
    ///
    /// ```
    /// use std::time::Duration;
    /// use exec_adapters::SenderFutureExt;
    /// use exec_core::{InlineScheduler, Scheduler, SenderExt};
    ///
    /// let fut = InlineScheduler
    ///     .schedule()
    ///     .then(|()| 6 * 7)
    ///     .into_future()
    ///     .spin_for(Duration::from_micros(20));
    /// assert_eq!(futures::executor::block_on(fut), Ok(42));
    /// ```
    pub fn spin_for(mut self, max: core::time::Duration) -> Self {
        self.spin = max;
        self
    }
}

impl<S> Future for SenderFuture<S>
where
    S: Sender + SenderTo<FutureReceiver<<S as Sender>::Output, <S as Sender>::Error>>,
{
    type Output = Result<S::Output, AwaitError<S::Error>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let shared = match this.state {
            FutState::Started(p) => p,
            FutState::Unstarted(_) => {
                let FutState::Unstarted(sender) =
                    core::mem::replace(&mut this.state, FutState::Done)
                else {
                    unreachable!()
                };
                let p = start_block(sender);
                this.state = FutState::Started(p);
                if !this.spin.is_zero() {
                    // SAFETY: we hold a reference to the block.
                    unsafe { Shared::spin_until_complete(p, this.spin) };
                }
                p
            }
            FutState::Done => panic!("SenderFuture polled after it resolved"),
        };
        let mut budget = TASK_BUDGET;
        let outcome = loop {
            // SAFETY: we hold a reference to the block, so it is alive.
            if let Some(outcome) = unsafe { Shared::poll_outcome(shared, cx.waker()) } {
                break outcome;
            }
            // Not complete: run what the operation scheduled on this task,
            // then look again; `Pending` only once the queue is empty.
            // SAFETY: as above; the context lives in the block.
            let tasks = unsafe { &(*shared.as_ptr()).tasks };
            match tasks.take_or_park(cx.waker()) {
                None => return Poll::Pending,
                Some(batch) => {
                    // SAFETY: nodes queued by `enqueue`, each taken once.
                    unsafe { TaskContext::run(batch, false) };
                }
            }
            budget -= 1;
            if budget == 0 {
                // Let the runtime run other tasks; come back soon.
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
        };
        this.state = FutState::Done;
        // SAFETY: our reference, released once.
        unsafe { Shared::release(shared) };
        match outcome {
            Outcome::Value(v) => Poll::Ready(Ok(v)),
            Outcome::Error(e) => Poll::Ready(Err(AwaitError::Error(e))),
            Outcome::Stopped => Poll::Ready(Err(AwaitError::Stopped)),
            Outcome::Panic(p) => std::panic::resume_unwind(p),
        }
    }
}

impl<S> futures_core::FusedFuture for SenderFuture<S>
where
    S: Sender + SenderTo<FutureReceiver<<S as Sender>::Output, <S as Sender>::Error>>,
{
    /// `true` once the future has resolved (so `select!` skips it).
    fn is_terminated(&self) -> bool {
        matches!(self.state, FutState::Done)
    }
}

impl<S: Sender> Drop for SenderFuture<S> {
    fn drop(&mut self) {
        if let FutState::Started(p) = self.state {
            // Close the task queue: what the operation scheduled on this
            // task, and schedules later, completes stopped.
            // SAFETY: we hold a reference, so the block is alive.
            let batch = unsafe { (*p.as_ptr()).tasks.close() };
            // SAFETY: nodes queued by `enqueue`, each taken once.
            unsafe { TaskContext::run(batch, true) };
            // SAFETY: we hold a reference; the stop source lives in the block.
            unsafe { Shared::cancel(p) };
            // SAFETY: our reference, released once; `p` is not used again.
            unsafe { Shared::release(p) };
        }
    }
}

/// Allocates the block, connects `sender` inside it and starts it. Returns
/// the future's reference (the operation holds the other).
fn start_block<S>(sender: S) -> NonNull<Shared<S::Output, S::Error>>
where
    S: Sender + SenderTo<FutureReceiver<<S as Sender>::Output, <S as Sender>::Error>>,
{
    type B<S> = Block<
        <S as Sender>::Output,
        <S as Sender>::Error,
        <S as SenderTo<FutureReceiver<<S as Sender>::Output, <S as Sender>::Error>>>::Operation,
    >;
    let block: B<S> = Block {
        shared:
            Shared {
                state: AtomicUsize::new(2 * REF_ONE),
                waker: UnsafeCell::new(None),
                outcome: UnsafeCell::new(None),
                stop: StopSource::new(),
                tasks: TaskContext::new(),
                free:
                    free_block::<
                        S::Output,
                        S::Error,
                        <S as SenderTo<
                            FutureReceiver<<S as Sender>::Output, <S as Sender>::Error>,
                        >>::Operation,
                    >,
                _pin: PhantomPinned,
            },
        op: core::cell::UnsafeCell::new(None),
    };
    // The block comes from exec-core's recycled operation-state blocks (a
    // per-thread cache: an await that completes on another thread frees it
    // there, for that thread's next one). From here on it is only reached
    // through this raw pointer, which carries the provenance of the whole
    // allocation, needed to free it.
    let raw = exec_core::frame::alloc(Layout::new::<B<S>>()).cast::<B<S>>();
    // SAFETY: `raw` is a fresh block with `B<S>`'s layout.
    unsafe { raw.as_ptr().write(block) };
    // `shared` is the first field of the `#[repr(C)]` block.
    let shared = raw.cast::<Shared<S::Output, S::Error>>();
    let raw = raw.as_ptr();

    // If `connect` panics, the block is leaked, not freed: a `connect` could
    // have stashed the receiver somewhere before panicking, and a receiver
    // must never point at freed memory.
    let op = sender.connect(FutureReceiver { shared });

    // SAFETY: nobody else knows about the block yet (the receiver is inside
    // `op`, not started), so writing the slot is exclusive. The op is then
    // pinned in the heap block, which is freed only after both references
    // are released — the operation's only once its receiver has completed —
    // so `start`'s contract (alive and in place until completion) holds.
    unsafe {
        let slot = (*raw).op.get();
        slot.write(Some(op));
        let op = Pin::new_unchecked((*slot).as_mut().unwrap_unchecked());
        op.start();
    }
    shared
}

/// # Safety
/// `p` points at the `shared` field of a `Block<T, E, O>` allocated by
/// `start_block`, no reference to which is held any more.
unsafe fn free_block<T, E, O>(p: NonNull<Shared<T, E>>) {
    let block = p.cast::<Block<T, E, O>>();
    // SAFETY: per the contract, `p` is the (whole-allocation) pointer that
    // `frame::alloc` returned for a `Block<T, E, O>`, cast to its first
    // field, initialised by `start_block` and no longer referenced: drop
    // the block in place, then give its memory back with the same layout.
    unsafe {
        core::ptr::drop_in_place(block.as_ptr());
        exec_core::frame::dealloc(block.cast(), Layout::new::<Block<T, E, O>>());
    }
}

/// The heap block: shared state first (the receiver points at it), then
/// the operation state.
#[repr(C)]
struct Block<T, E, O> {
    shared: Shared<T, E>,
    /// Written once before `start`; afterwards only the operation itself
    /// touches it, until the block is freed.
    op: core::cell::UnsafeCell<Option<O>>,
}

impl<T, E, O> Drop for Block<T, E, O> {
    fn drop(&mut self) {
        // Drop the (completed) operation before the stop source it may have
        // observed.
        *self.op.get_mut() = None;
        // Drop the slots through the cells, so that loom sees these accesses
        // (and checks they are ordered after the other owner's).
        // SAFETY: `&mut self`: no other reference to the block exists.
        unsafe {
            drop(self.shared.outcome.with_mut(|o| (*o).take()));
            drop(self.shared.waker.with_mut(|w| (*w).take()));
        }
    }
}

enum Outcome<T, E> {
    Value(T),
    Error(E),
    Stopped,
    Panic(PanicPayload),
}

/// What the future and the operation's receiver share.
struct Shared<T, E> {
    /// `COMPLETE | REGISTERING | refs * REF_ONE`, see the module docs.
    state: AtomicUsize,
    /// The poller's waker. Written by the poller only while it holds
    /// `REGISTERING` and `COMPLETE` is clear; taken by the completer only if
    /// `REGISTERING` was clear when it set `COMPLETE`.
    waker: UnsafeCell<Option<Waker>>,
    /// Written once by the completer before it sets `COMPLETE`; taken by the
    /// poller after it observed `COMPLETE`.
    outcome: UnsafeCell<Option<Outcome<T, E>>>,
    /// The stop source whose token the operation's environment carries.
    stop: StopSource,
    /// The awaiting task as a scheduler (the environment's answer).
    tasks: TaskContext,
    /// Frees the whole block (knows the operation's type).
    free: unsafe fn(NonNull<Shared<T, E>>),
    _pin: PhantomPinned,
}

impl<T, E> Shared<T, E> {
    /// Registers `waker` or returns the outcome.
    ///
    /// # Safety
    /// The caller holds the future's reference to the live block `this`.
    unsafe fn poll_outcome(this: NonNull<Self>, waker: &Waker) -> Option<Outcome<T, E>> {
        // SAFETY: alive per the caller; only shared access to atomics/cells.
        let sh = unsafe { this.as_ref() };
        // Fast path (e.g. the sender completed inline in `start`): no waker
        // to register.
        let prev = match sh.state.load(Ordering::Acquire) {
            s if s & COMPLETE != 0 => s,
            _ => sh.state.fetch_or(REGISTERING, Ordering::Acquire),
        };
        if prev & COMPLETE == 0 {
            sh.waker.with_mut(|w| {
                // SAFETY: we hold `REGISTERING` and `COMPLETE` was clear, so
                // the completer does not touch the slot (module docs).
                let w = unsafe { &mut *w };
                match w {
                    Some(old) if old.will_wake(waker) => {}
                    _ => *w = Some(waker.clone()),
                }
            });
            // Release: publish the waker to a completer that sees
            // `REGISTERING` clear. Acquire: see the outcome if `COMPLETE`.
            let prev = sh.state.fetch_and(!REGISTERING, Ordering::AcqRel);
            if prev & COMPLETE == 0 {
                return None;
            }
        }
        // SAFETY: `COMPLETE` observed with Acquire: the outcome was written
        // before it and nobody touches the slot again.
        sh.outcome.with_mut(|o| unsafe { (*o).take() })
    }

    /// Busy-waits until the outcome is written or `max` has passed.
    ///
    /// # Safety
    /// The caller holds a reference to the live block `this`.
    unsafe fn spin_until_complete(this: NonNull<Self>, max: core::time::Duration) {
        // Under loom a busy-wait is an unbounded model; the plain poll path
        // (which follows) is what the models check.
        #[cfg(not(loom))]
        {
            // SAFETY: alive per the caller; only the atomic is read.
            let sh = unsafe { this.as_ref() };
            let start = std::time::Instant::now();
            // Read the clock every 32 pause hints (~1 µs), not every hint.
            while sh.state.load(Ordering::Relaxed) & COMPLETE == 0 {
                for _ in 0..32 {
                    core::hint::spin_loop();
                }
                if start.elapsed() >= max {
                    return;
                }
            }
        }
        #[cfg(loom)]
        let _ = (this, max);
    }

    /// Requests stop if the operation has not completed.
    ///
    /// # Safety
    /// The caller holds a reference to the live block `this`.
    unsafe fn cancel(this: NonNull<Self>) {
        // SAFETY: alive per the caller.
        let sh = unsafe { this.as_ref() };
        // Take the waker back first (as a poll would register one), so the
        // dropped task is neither woken nor kept alive by the operation.
        let prev = sh.state.fetch_or(REGISTERING, Ordering::Acquire);
        if prev & COMPLETE == 0 {
            // SAFETY: we hold `REGISTERING` and `COMPLETE` was clear.
            let waker = sh.waker.with_mut(|w| unsafe { (*w).take() });
            sh.state.fetch_and(!REGISTERING, Ordering::Release);
            drop(waker);
            // May complete the operation inline, on this thread; the
            // completer then drops its reference, not ours.
            sh.stop.request_stop();
        }
    }

    /// Drops one reference; the last one frees the block.
    ///
    /// # Safety
    /// The caller owns one reference to the live block `this` and does not
    /// use `this` afterwards.
    unsafe fn release(this: NonNull<Self>) {
        // SAFETY: alive, we still hold a reference. AcqRel: whoever frees
        // sees everything the other owner did to the block.
        let prev = unsafe { (*this.as_ptr()).state.fetch_sub(REF_ONE, Ordering::AcqRel) };
        if prev & REF_MASK == REF_ONE {
            // SAFETY: that was the last reference; nothing else can reach the
            // block. `free` was set at allocation and is `Copy`.
            unsafe {
                let free = (*this.as_ptr()).free;
                free(this)
            }
        }
    }

    /// Stores the outcome, wakes the poller and drops the operation's
    /// reference.
    ///
    /// # Safety
    /// Called once, by the operation's receiver, which owns one reference.
    unsafe fn complete(this: NonNull<Self>, outcome: Outcome<T, E>) {
        let waker = {
            // SAFETY: alive: we hold a reference.
            let sh = unsafe { this.as_ref() };
            // SAFETY: the only write; the poller reads only after `COMPLETE`.
            sh.outcome.with_mut(|o| unsafe { *o = Some(outcome) });
            let prev = sh.state.fetch_or(COMPLETE, Ordering::AcqRel);
            if prev & REGISTERING == 0 {
                // SAFETY: the poller is not registering, and any later poll
                // sees `COMPLETE` and leaves the slot alone.
                sh.waker.with_mut(|w| unsafe { (*w).take() })
            } else {
                None
            }
        };
        // Drop our reference before waking: the woken task may run at once
        // on another thread, and a waker's `wake` must not find the block
        // being freed under it anyway (the waker is ours now).
        // SAFETY: the operation's reference, released once.
        unsafe { Self::release(this) };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// The receiver an awaited sender is connected to: it stores the completion
/// in the future's heap block and wakes the awaiting task.
///
/// Its environment carries the stop token that dropping the
/// [`SenderFuture`] triggers.
pub struct FutureReceiver<T, E> {
    /// The operation's reference to the block.
    shared: NonNull<Shared<T, E>>,
}

// SAFETY: completing from another thread moves `T`/`E` into the block, to be
// taken by the future's thread; the block's fields are atomics, cells guarded
// by the state protocol, and a thread-safe stop source.
unsafe impl<T: Send, E: Send> Send for FutureReceiver<T, E> {}
// SAFETY: `&FutureReceiver` only reads the stop source (thread-safe).
unsafe impl<T: Send, E: Send> Sync for FutureReceiver<T, E> {}

impl<T, E> fmt::Debug for FutureReceiver<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FutureReceiver").finish_non_exhaustive()
    }
}

impl<T, E> FutureReceiver<T, E> {
    fn complete(self, outcome: Outcome<T, E>) {
        // SAFETY: the receiver owns the operation's reference and is
        // consumed here, so this runs once.
        unsafe { Shared::complete(self.shared, outcome) }
    }
}

impl<T, E> Receiver<T, E> for FutureReceiver<T, E> {
    fn set_value(self, value: T) {
        self.complete(Outcome::Value(value))
    }
    fn set_error(self, error: E) {
        self.complete(Outcome::Error(error))
    }
    fn set_stopped(self) {
        self.complete(Outcome::Stopped)
    }
    fn set_panic(self, payload: PanicPayload) {
        self.complete(Outcome::Panic(payload))
    }
    fn env(&self) -> impl Env<'_> {
        // SAFETY: the block outlives the receiver (it holds a reference).
        let shared = unsafe { self.shared.as_ref() };
        FutureEnv {
            stop: &shared.stop,
            tasks: &shared.tasks,
        }
    }
}

struct FutureEnv<'a> {
    stop: &'a StopSource,
    tasks: &'a TaskContext,
}

impl<'a> Env<'a> for FutureEnv<'a> {
    fn stop_token(&self) -> StopToken<'a> {
        self.stop.token()
    }
    fn scheduler(&self) -> Option<SchedulerRef<'a>> {
        Some(SchedulerRef::new(self.tasks))
    }
}

/// How many batches of scheduled nodes one poll runs before it yields.
const TASK_BUDGET: u32 = 32;

/// The awaiting task as an execution context: nodes scheduled on it wait
/// here until the future's next poll runs them (module docs).
struct TaskContext {
    queue: Mutex<TaskQueue>,
}

/// A FIFO of nodes, linked through their [`TaskNode`] links, and the
/// waker of the last poll that found it empty.
struct TaskQueue {
    head: *mut TaskNode,
    tail: *mut TaskNode,
    waker: Option<Waker>,
    /// The future is gone: nodes run at once, stopped.
    closed: bool,
}

// SAFETY: the raw pointers are nodes handed over by `enqueue`, which are
// `Send` work by `DynScheduler`'s contract (the context is `Send + Sync`);
// they are only touched under the mutex and then executed once.
unsafe impl Send for TaskQueue {}

/// Nodes taken out of the queue, to be executed in order.
struct Batch(*mut TaskNode);

impl TaskContext {
    fn new() -> Self {
        TaskContext {
            queue: Mutex::new(TaskQueue {
                head: core::ptr::null_mut(),
                tail: core::ptr::null_mut(),
                waker: None,
                closed: false,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, TaskQueue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the queued nodes, or, if there are none, stores `waker` for
    /// `enqueue` to wake and returns `None` (the caller returns `Pending`).
    fn take_or_park(&self, waker: &Waker) -> Option<Batch> {
        let mut q = self.lock();
        if q.head.is_null() {
            match &q.waker {
                Some(old) if old.will_wake(waker) => {}
                _ => q.waker = Some(waker.clone()),
            }
            return None;
        }
        let head = core::mem::replace(&mut q.head, core::ptr::null_mut());
        q.tail = core::ptr::null_mut();
        Some(Batch(head))
    }

    /// Closes the queue (the future is gone) and takes what it holds.
    fn close(&self) -> Batch {
        let mut q = self.lock();
        q.closed = true;
        let waker = q.waker.take();
        let head = core::mem::replace(&mut q.head, core::ptr::null_mut());
        q.tail = core::ptr::null_mut();
        drop(q);
        drop(waker);
        Batch(head)
    }

    /// Executes every node of `batch`, in order.
    ///
    /// # Safety
    /// `batch` came from this context's queue (each node was given to
    /// `enqueue` and is executed only here).
    unsafe fn run(batch: Batch, stopped: bool) {
        let mut node = batch.0;
        while let Some(n) = NonNull::new(node) {
            // Read the link before executing: execution may free the node.
            // SAFETY: `n` is live until executed; we hold it exclusively.
            node = unsafe { TaskNode::next(n, Ordering::Relaxed) };
            // SAFETY: the node's one execution; not touched afterwards.
            unsafe { TaskNode::execute(n, stopped) };
        }
    }
}

// SAFETY: `enqueue` (below) executes every node exactly once: queued nodes
// are run by a poll (`take_or_park`) or by the future's drop (`close`), and
// once the queue is closed new nodes run at once, stopped. It touches the
// context only under the lock and before executing or publishing the node
// (the unlock publishes it; afterwards only the waker, which it owns, is
// used). The mutex makes it `Send + Sync`.
unsafe impl DynScheduler for TaskContext {
    unsafe fn enqueue(this: NonNull<Self>, node: NonNull<TaskNode>) {
        // SAFETY: the context is alive when `enqueue` is called (contract).
        let ctx = unsafe { this.as_ref() };
        let mut q = ctx.lock();
        if q.closed {
            drop(q);
            // SAFETY: the node's one execution (the future is gone).
            unsafe { TaskNode::execute(node, true) };
            return;
        }
        // SAFETY: the node is ours until executed; it is not queued
        // elsewhere (contract), so its link is free.
        unsafe { TaskNode::set_next(node, core::ptr::null_mut(), Ordering::Relaxed) };
        match NonNull::new(q.tail) {
            // SAFETY: the tail is a queued node, owned by this queue.
            Some(tail) => unsafe { TaskNode::set_next(tail, node.as_ptr(), Ordering::Relaxed) },
            None => q.head = node.as_ptr(),
        }
        q.tail = node.as_ptr();
        let waker = q.waker.clone();
        // Publishes the node: from here on a poll may run it, complete the
        // operation and let the block be freed. Nothing of `ctx` is touched
        // after this.
        drop(q);
        if let Some(w) = waker {
            w.wake();
        }
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use ::loom::sync::atomic::AtomicUsize as LAtomicUsize;
    use ::loom::sync::{Arc as LArc, Mutex as LMutex};
    use exec_core::SenderExt;
    use std::sync::Arc;
    use std::task::Wake;

    type Completer<T> = Box<dyn FnOnce(T) + Send>;

    /// A sender whose operation hands its completion to whoever takes it
    /// from `slot` (another loom thread).
    struct Remote<T>(LArc<LMutex<Option<Completer<T>>>>);

    impl<T> Sender for Remote<T> {
        type Output = T;
        type Error = ();
    }

    impl<T: 'static, R: Receiver<T, ()> + Send + 'static> SenderTo<R> for Remote<T> {
        type Operation = RemoteOp<T, R>;
        fn connect(self, receiver: R) -> RemoteOp<T, R> {
            RemoteOp(self.0, Some(receiver))
        }
    }

    struct RemoteOp<T, R>(LArc<LMutex<Option<Completer<T>>>>, Option<R>);

    impl<T: 'static, R: Receiver<T, ()> + Send + 'static> OperationState for RemoteOp<T, R> {
        unsafe fn start(self: Pin<&mut Self>) {
            // SAFETY: nothing is structurally pinned.
            let this = unsafe { self.get_unchecked_mut() };
            let r = this.1.take().unwrap();
            *this.0.lock().unwrap() = Some(Box::new(move |v| r.set_value(v)));
        }
    }

    struct CountingWaker(LAtomicUsize);
    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn complete_from_slot<T>(slot: &LMutex<Option<Completer<T>>>, value: T) {
        let f = slot.lock().unwrap().take().expect("started");
        f(value);
    }

    /// The waker hand-off: a completion on another thread racing the
    /// second poll's registration. Either that poll sees the outcome, or
    /// the completer wakes the registered waker (no lost wake-up), and the
    /// outcome written on the other thread is visible to the poller.
    #[test]
    fn completion_racing_registration() {
        ::loom::model(|| {
            let slot = LArc::new(LMutex::new(None));
            let mut fut = Remote::<u32>(slot.clone()).into_future();
            let counter = Arc::new(CountingWaker(LAtomicUsize::new(0)));
            let waker = Waker::from(counter.clone());
            let mut cx = Context::from_waker(&waker);
            assert!(Pin::new(&mut fut).poll(&mut cx).is_pending());
            let completer = {
                let slot = slot.clone();
                ::loom::thread::spawn(move || complete_from_slot(&slot, 7))
            };
            let second = Pin::new(&mut fut).poll(&mut cx);
            completer.join().unwrap();
            match second {
                Poll::Ready(r) => assert_eq!(r, Ok(7)),
                Poll::Pending => {
                    assert!(counter.0.load(Ordering::SeqCst) >= 1, "lost wake-up");
                    assert_eq!(Pin::new(&mut fut).poll(&mut cx), Poll::Ready(Ok(7)));
                }
            }
        });
    }

    /// A node scheduled on the awaiting task from another thread, racing
    /// the poll that would park: either that poll runs it, or it stored its
    /// waker first and the enqueuer wakes it (no lost wake-up); the node
    /// runs exactly once, in a poll.
    #[test]
    fn task_enqueue_racing_a_parking_poll() {
        ::loom::model(|| {
            let slot = LArc::new(LMutex::new(None));
            let mut fut = Remote::<()>(slot.clone())
                .let_value(|()| {
                    exec_core::schedule_on_current()
                        .then(|()| 5u32)
                        .with_error::<()>()
                })
                .into_future();
            let counter = Arc::new(CountingWaker(LAtomicUsize::new(0)));
            let waker = Waker::from(counter.clone());
            let mut cx = Context::from_waker(&waker);
            assert!(Pin::new(&mut fut).poll(&mut cx).is_pending());
            let enqueuer = {
                let slot = slot.clone();
                ::loom::thread::spawn(move || complete_from_slot(&slot, ()))
            };
            let second = Pin::new(&mut fut).poll(&mut cx);
            enqueuer.join().unwrap();
            match second {
                Poll::Ready(r) => assert_eq!(r, Ok(5)),
                Poll::Pending => {
                    assert!(counter.0.load(Ordering::SeqCst) >= 1, "lost wake-up");
                    assert_eq!(Pin::new(&mut fut).poll(&mut cx), Poll::Ready(Ok(5)));
                }
            }
        });
    }

    /// A node scheduled on the task racing the future's drop: it is run
    /// stopped exactly once — by the drop (queued first) or by `enqueue`
    /// (closed first) — and the block is freed once, outcome dropped.
    #[test]
    fn task_enqueue_racing_drop() {
        ::loom::model(|| {
            let slot = LArc::new(LMutex::new(None));
            let payload = LArc::new(());
            let completions = LArc::new(LAtomicUsize::new(0));
            let (p2, c2, c3) = (payload.clone(), completions.clone(), completions.clone());
            let mut fut = Remote::<()>(slot.clone())
                .let_value(move |()| {
                    exec_core::schedule_on_current()
                        .then(move |()| {
                            c2.fetch_add(1, Ordering::SeqCst);
                            p2
                        })
                        .with_error::<()>()
                })
                .upon_stopped(move || {
                    c3.fetch_add(100, Ordering::SeqCst);
                    LArc::new(())
                })
                .into_future();
            let waker = Waker::from(Arc::new(CountingWaker(LAtomicUsize::new(0))));
            assert!(
                Pin::new(&mut fut)
                    .poll(&mut Context::from_waker(&waker))
                    .is_pending()
            );
            let enqueuer = {
                let slot = slot.clone();
                ::loom::thread::spawn(move || complete_from_slot(&slot, ()))
            };
            drop(fut);
            enqueuer.join().unwrap();
            assert_eq!(completions.load(Ordering::SeqCst), 100, "stopped, once");
            assert_eq!(
                LArc::strong_count(&payload),
                1,
                "block freed, closure dropped"
            );
        });
    }

    /// Dropping the future while the operation completes on another thread:
    /// whoever lets go last frees the block, and the outcome is dropped.
    #[test]
    fn drop_racing_completion_frees_once() {
        ::loom::model(|| {
            let slot = LArc::new(LMutex::new(None));
            let payload = LArc::new(());
            let mut fut = Remote::<LArc<()>>(slot.clone()).into_future();
            let waker = Waker::from(Arc::new(CountingWaker(LAtomicUsize::new(0))));
            assert!(
                Pin::new(&mut fut)
                    .poll(&mut Context::from_waker(&waker))
                    .is_pending()
            );
            let completer = {
                let (slot, payload) = (slot.clone(), payload.clone());
                ::loom::thread::spawn(move || complete_from_slot(&slot, payload))
            };
            drop(fut);
            completer.join().unwrap();
            assert_eq!(
                LArc::strong_count(&payload),
                1,
                "outcome dropped, block freed"
            );
        });
    }
}
