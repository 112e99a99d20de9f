//! [`AsyncMutex`]: a FIFO mutex whose `lock()` is a sender.
//!
//! # Protocol
//! `locked` and the waiter list live under the internal lock. Unlocking with
//! waiters present hands the mutex over directly: `locked` stays `true`, the
//! oldest waiter is unlinked and woken with a guard. A waiter whose stop is
//! requested unlinks itself (if still linked) and completes *stopped*; if the
//! hand-over unlinked it first, it gets the guard instead.

use core::fmt;
use core::marker::PhantomData;
use core::ops::{Deref, DerefMut};
use core::pin::Pin;

use crate::loom::cell::UnsafeCell;
use crate::sync::wait_list::{Lock, Node, WaitList, Waiter};
use crate::{OperationState, Receiver, Sender, SenderTo};

struct MutexState {
    locked: bool,
    waiters: WaitList,
}

/// A mutual-exclusion lock for asynchronous code: [`lock`](Self::lock)
/// returns a sender that completes with a guard once the lock is acquired.
///
/// Waiters are served in FIFO order and wait as intrusive nodes inside their
/// own operation states: locking allocates nothing. Unlocking (dropping the
/// guard) completes the next waiter on the unlocking thread.
///
/// # Example
/// ```
/// use exec_core::{sync_wait, AsyncMutex, SenderExt};
/// let counter = AsyncMutex::new(0);
/// for _ in 0..3 {
///     sync_wait(counter.lock().then(|mut guard| *guard += 1)).unwrap();
/// }
/// assert_eq!(counter.into_inner(), 3);
/// ```
pub struct AsyncMutex<T> {
    state: Lock<MutexState>,
    /// Accessed only through a guard (one exists while `locked`).
    data: UnsafeCell<T>,
}

// SAFETY: the value is reached only through the single guard that exists
// while `locked`; guards may be created on one thread and used on another,
// so `T: Send` suffices (as for `std::sync::Mutex`).
unsafe impl<T: Send> Send for AsyncMutex<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for AsyncMutex<T> {}

impl<T> AsyncMutex<T> {
    /// An unlocked mutex holding `value`.
    pub fn new(value: T) -> Self {
        AsyncMutex {
            state: Lock::new(MutexState {
                locked: false,
                waiters: WaitList::new(),
            }),
            data: UnsafeCell::new(value),
        }
    }

    /// A sender that completes with an [`AsyncMutexGuard`] once the lock is
    /// acquired.
    ///
    /// # Completion
    /// - value: the guard; inline in `start` if the mutex is free, otherwise
    ///   on the thread that drops the previous guard (FIFO order).
    /// - stopped: if the receiver's stop token is triggered before the lock
    ///   is acquired (the waiter leaves the queue).
    ///
    /// # Cancellation
    /// See *stopped*.
    ///
    /// # Panics
    /// Never.
    ///
    /// # Example
    /// ```
    /// use exec_core::{sync_wait, AsyncMutex};
    /// let m = AsyncMutex::new(String::from("a"));
    /// sync_wait(m.lock()).unwrap().unwrap().push('b');
    /// assert_eq!(*m.try_lock().unwrap(), "ab");
    /// ```
    ///
    /// # See also
    /// [`try_lock`](Self::try_lock).
    pub fn lock(&self) -> LockSender<'_, T> {
        LockSender { mutex: self }
    }

    /// Acquires the lock if it is free right now.
    ///
    /// ```
    /// use exec_core::AsyncMutex;
    /// let m = AsyncMutex::new(1);
    /// let g = m.try_lock().unwrap();
    /// assert!(m.try_lock().is_none());
    /// drop(g);
    /// assert!(m.try_lock().is_some());
    /// ```
    pub fn try_lock(&self) -> Option<AsyncMutexGuard<'_, T>> {
        let acquired = self
            .state
            .with(|s| !core::mem::replace(&mut s.locked, true));
        acquired.then(|| AsyncMutexGuard::new(self))
    }

    /// The value, without locking (`&mut self` proves exclusivity).
    ///
    /// ```
    /// let mut m = exec_core::AsyncMutex::new(1);
    /// *m.get_mut() += 1;
    /// assert_eq!(m.into_inner(), 2);
    /// ```
    pub fn get_mut(&mut self) -> &mut T {
        // SAFETY: `&mut self`: no guard exists.
        self.data.with_mut(|p| unsafe { &mut *p })
    }

    /// Consumes the mutex, returning the value.
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }

    fn unlock(&self) {
        let next = self.state.with(|s| {
            let next = s.waiters.pop_front();
            if next.is_none() {
                s.locked = false;
            }
            next
        });
        if let Some(node) = next {
            // SAFETY: unlinked under the lock for waking: the lock is now
            // this waiter's.
            unsafe { Node::wake(node) };
        }
    }
}

impl<T: Default> Default for AsyncMutex<T> {
    fn default() -> Self {
        Self::new(T::default())
    }
}

impl<T> fmt::Debug for AsyncMutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let locked = self.state.with(|s| s.locked);
        f.debug_struct("AsyncMutex")
            .field("locked", &locked)
            .finish_non_exhaustive()
    }
}

/// Exclusive access to the value of an [`AsyncMutex`]; dropping it unlocks
/// (and completes the next waiter, on this thread).
pub struct AsyncMutexGuard<'a, T> {
    mutex: &'a AsyncMutex<T>,
    /// `Send`/`Sync` like `&mut T`.
    _marker: PhantomData<&'a mut T>,
}

impl<'a, T> AsyncMutexGuard<'a, T> {
    fn new(mutex: &'a AsyncMutex<T>) -> Self {
        AsyncMutexGuard {
            mutex,
            _marker: PhantomData,
        }
    }
}

impl<T> Deref for AsyncMutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard is the only access while it exists.
        self.mutex.data.with(|p| unsafe { &*p })
    }
}

impl<T> DerefMut for AsyncMutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard is the only access while it exists.
        self.mutex.data.with_mut(|p| unsafe { &mut *p })
    }
}

impl<T> Drop for AsyncMutexGuard<'_, T> {
    fn drop(&mut self) {
        self.mutex.unlock();
    }
}

impl<T: fmt::Debug> fmt::Debug for AsyncMutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// Sender for the [`lock`](AsyncMutex::lock) method.
#[must_use = "senders do nothing unless connected and started"]
pub struct LockSender<'a, T> {
    mutex: &'a AsyncMutex<T>,
}

impl<T> fmt::Debug for LockSender<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockSender").finish_non_exhaustive()
    }
}

impl<'a, T> Sender for LockSender<'a, T> {
    type Output = AsyncMutexGuard<'a, T>;
    type Error = core::convert::Infallible;
}

impl<'a, T, R> SenderTo<R> for LockSender<'a, T>
where
    R: Receiver<AsyncMutexGuard<'a, T>, core::convert::Infallible> + Send,
{
    type Operation = LockOp<'a, T, R>;
    fn connect(self, receiver: R) -> LockOp<'a, T, R> {
        LockOp {
            waiter: Waiter::new(receiver, LockOp::<T, R>::wake, LockOp::<T, R>::cancel),
            mutex: self.mutex,
        }
    }
}

/// Operation state of [`LockSender`]: the queue node itself.
#[repr(C)]
pub struct LockOp<'a, T, R> {
    /// First field: a `*const Node` is a `*const LockOp`.
    waiter: Waiter<R>,
    mutex: &'a AsyncMutex<T>,
}

impl<T, R> fmt::Debug for LockOp<'_, T, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockOp").finish_non_exhaustive()
    }
}

// SAFETY: the receiver is `Send` (required by `connect`) and may be
// completed by whichever thread unlocks or requests stop; the mutex is `Sync`.
unsafe impl<T: Send, R: Send> Send for LockOp<'_, T, R> {}

enum Next {
    Acquired,
    Stopped,
    Wait,
}

impl<'a, T, R> LockOp<'a, T, R>
where
    R: Receiver<AsyncMutexGuard<'a, T>, core::convert::Infallible>,
{
    /// # Safety
    /// `node` is the node of a started `LockOp` that `unlock` unlinked: the
    /// lock was handed to it.
    unsafe fn wake(node: *const Node) {
        let this = node as *const Self;
        // SAFETY: we own the completion; read the mutex before completing.
        unsafe {
            let mutex = (*this).mutex;
            (*this).waiter.disarm();
            let receiver = (*this).waiter.take_receiver();
            receiver.set_value(AsyncMutexGuard::new(mutex));
        }
    }

    /// # Safety
    /// Called from the stop callback of a started `LockOp`.
    unsafe fn cancel(node: *const Node) {
        let this = node as *const Self;
        // SAFETY: registered callback: the op is alive.
        let mutex = unsafe { (*this).mutex };
        // SAFETY: lock held; the node is alive.
        let won = mutex.state.with(|s| unsafe { s.waiters.remove(node) });
        if won {
            // SAFETY: we unlinked it: we own the completion.
            unsafe {
                (*this).waiter.disarm();
                (*this).waiter.take_receiver().set_stopped();
            }
        }
    }
}

impl<'a, T, R> OperationState for LockOp<'a, T, R>
where
    R: Receiver<AsyncMutexGuard<'a, T>, core::convert::Infallible>,
{
    unsafe fn start(self: Pin<&mut Self>) {
        let this: &Self = self.into_ref().get_ref();
        let node = Waiter::<R>::node_of(this);
        let mutex = this.mutex;
        // SAFETY: not linked, not armed: the receiver is ours.
        let token = unsafe { this.waiter.token() };
        if !token.stop_requested() {
            // SAFETY: pinned, not linked, armed once.
            unsafe { this.waiter.arm(node, token) };
        }
        let next = mutex.state.with(|s| {
            if token.stop_requested() {
                Next::Stopped
            } else if !s.locked {
                s.locked = true;
                Next::Acquired
            } else {
                // SAFETY: lock held; pinned op, alive until unlinked.
                unsafe { s.waiters.push_back(node) };
                Next::Wait
            }
        });
        match next {
            Next::Wait => {}
            // SAFETY: not linked: we own the completion.
            Next::Acquired => unsafe {
                this.waiter.disarm();
                this.waiter
                    .take_receiver()
                    .set_value(AsyncMutexGuard::new(mutex));
            },
            // SAFETY: not linked: we own the completion.
            Next::Stopped => unsafe {
                this.waiter.disarm();
                this.waiter.take_receiver().set_stopped();
            },
        }
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    //! A waiting lock operation (its stop node embedded in the waiter)
    //! handed the lock by `unlock` while a stop request races it: exactly
    //! one of them completes it, and the lock is never lost.
    use super::*;
    use crate::loom::sync::atomic::{AtomicUsize, Ordering};
    use crate::loom_fixtures::Rec;
    use crate::{PanicPayload, StopSource};
    use ::loom::sync::Arc as LoomArc;
    use alloc::boxed::Box;
    use core::convert::Infallible;

    // Outcome codes: 1: got the lock (and released it); 3: stopped.
    impl<'m> Receiver<AsyncMutexGuard<'m, u32>, Infallible> for Rec {
        fn set_value(self, mut g: AsyncMutexGuard<'m, u32>) {
            *g += 1;
            drop(g);
            self.record(1);
        }
        fn set_error(self, e: Infallible) {
            match e {}
        }
        fn set_stopped(self) {
            self.record(3);
        }
        fn set_panic(self, _: PanicPayload) {
            panic!("no panic expected");
        }
        fn env(&self) -> impl crate::Env<'_> {
            Rec::env(self)
        }
    }

    #[test]
    fn loom_unlock_races_stop_of_a_waiter() {
        ::loom::model(|| {
            let mutex = AsyncMutex::new(0u32);
            let stop = LoomArc::new(StopSource::new());
            let outcome = LoomArc::new(AtomicUsize::new(0));
            let completions = LoomArc::new(AtomicUsize::new(0));
            let held = mutex.try_lock().unwrap();
            let mut op = Box::pin(mutex.lock().connect(Rec {
                outcome: outcome.clone(),
                completions: completions.clone(),
                stop: stop.clone(),
            }));
            // SAFETY: `op` is dropped only after the stopper was joined and
            // it has completed (asserted below).
            unsafe { op.as_mut().start() };
            let s2 = stop.clone();
            let stopper = ::loom::thread::spawn(move || {
                s2.request_stop();
            });
            drop(held);
            stopper.join().unwrap();
            assert_eq!(completions.load(Ordering::Relaxed), 1);
            let got = outcome.load(Ordering::Acquire);
            assert!(got == 1 || got == 3, "outcome {got}");
            drop(op);
            // Not left locked either way; the waiter's increment is seen.
            let g = mutex.try_lock().expect("lock lost");
            assert_eq!(*g, u32::from(got == 1));
        });
    }
}
