//! [`AsyncManualResetEvent`]: a flag whose `wait()` is a sender.
//!
//! # Protocol
//! `set` and the waiter list live under the internal lock. `set()` sets the
//! flag, then unlinks and wakes waiters one at a time (outside the lock).
//! A waiter arriving while the flag is set completes at once.

use core::fmt;
use core::pin::Pin;

use crate::sync::wait_list::{Lock, Node, WaitList, Waiter};
use crate::{OperationState, Receiver, Sender, SenderTo};

struct EventState {
    set: bool,
    waiters: WaitList,
}

/// An event that stays set until reset: [`wait`](Self::wait) returns a
/// sender that completes once the event is set.
///
/// Waiting allocates nothing (waiters are intrusive nodes in their own
/// operation states). [`set`](Self::set) completes every waiter on the
/// calling thread.
///
/// # Example
/// ```
/// use exec_core::{sync_wait, AsyncManualResetEvent};
/// let ready = AsyncManualResetEvent::new(false);
/// ready.set();
/// assert_eq!(sync_wait(ready.wait()), Ok(Some(())));
/// ready.reset();
/// assert!(!ready.is_set());
/// ```
pub struct AsyncManualResetEvent {
    state: Lock<EventState>,
}

impl AsyncManualResetEvent {
    /// An event, initially set or not.
    pub fn new(set: bool) -> Self {
        AsyncManualResetEvent {
            state: Lock::new(EventState {
                set,
                waiters: WaitList::new(),
            }),
        }
    }

    /// Sets the event and completes every waiting operation (on this thread).
    ///
    /// ```
    /// use exec_core::{sync_wait, AsyncManualResetEvent};
    /// use std::sync::Arc;
    /// let ev = Arc::new(AsyncManualResetEvent::new(false));
    /// let setter = { let ev = ev.clone(); std::thread::spawn(move || ev.set()) };
    /// assert_eq!(sync_wait(ev.wait()), Ok(Some(())));
    /// setter.join().unwrap();
    /// ```
    pub fn set(&self) {
        self.state.with(|s| s.set = true);
        while let Some(node) = self.state.with(|s| s.waiters.pop_front()) {
            // SAFETY: unlinked under the lock for waking.
            unsafe { Node::wake(node) };
        }
    }

    /// Clears the event: later `wait`s wait again.
    ///
    /// ```
    /// use exec_core::AsyncManualResetEvent;
    /// let ev = AsyncManualResetEvent::new(true);
    /// ev.reset();
    /// assert!(!ev.is_set());
    /// ```
    pub fn reset(&self) {
        self.state.with(|s| s.set = false);
    }

    /// Whether the event is set.
    pub fn is_set(&self) -> bool {
        self.state.with(|s| s.set)
    }

    /// A sender that completes once the event is set.
    ///
    /// # Completion
    /// - value `()`: inline in `start` if the event is set, otherwise on the
    ///   thread that calls [`set`](Self::set).
    /// - stopped: if the receiver's stop token is triggered first (the
    ///   waiter leaves the queue).
    ///
    /// # Cancellation
    /// See *stopped*.
    ///
    /// # Panics
    /// Never.
    ///
    /// # Example
    /// ```
    /// use exec_core::{sync_wait, AsyncManualResetEvent, SenderExt};
    /// let ev = AsyncManualResetEvent::new(true);
    /// assert_eq!(sync_wait(ev.wait().then(|()| 1)), Ok(Some(1)));
    /// ```
    ///
    /// # See also
    /// [`AsyncMutex`](crate::AsyncMutex), [`oneshot`](crate::oneshot).
    pub fn wait(&self) -> WaitSender<'_> {
        WaitSender { event: self }
    }
}

impl Default for AsyncManualResetEvent {
    fn default() -> Self {
        Self::new(false)
    }
}

impl fmt::Debug for AsyncManualResetEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncManualResetEvent")
            .field("set", &self.is_set())
            .finish_non_exhaustive()
    }
}

/// Sender for the [`wait`](AsyncManualResetEvent::wait) method.
#[must_use = "senders do nothing unless connected and started"]
#[derive(Debug)]
pub struct WaitSender<'a> {
    event: &'a AsyncManualResetEvent,
}

impl Sender for WaitSender<'_> {
    type Output = ();
    type Error = core::convert::Infallible;
}

impl<'a, R> SenderTo<R> for WaitSender<'a>
where
    R: Receiver<(), core::convert::Infallible> + Send,
{
    type Operation = WaitOp<'a, R>;
    fn connect(self, receiver: R) -> WaitOp<'a, R> {
        WaitOp {
            waiter: Waiter::new(receiver, WaitOp::<R>::wake, WaitOp::<R>::cancel),
            event: self.event,
        }
    }
}

/// Operation state of [`WaitSender`]: the queue node itself.
#[repr(C)]
pub struct WaitOp<'a, R> {
    /// First field: a `*const Node` is a `*const WaitOp`.
    waiter: Waiter<R>,
    event: &'a AsyncManualResetEvent,
}

impl<R> fmt::Debug for WaitOp<'_, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitOp").finish_non_exhaustive()
    }
}

// SAFETY: the receiver is `Send` (required by `connect`) and may be completed
// by whichever thread sets the event or requests stop.
unsafe impl<R: Send> Send for WaitOp<'_, R> {}

enum Next {
    Set,
    Stopped,
    Wait,
}

impl<R> WaitOp<'_, R>
where
    R: Receiver<(), core::convert::Infallible>,
{
    /// # Safety
    /// `node` is the node of a started `WaitOp` that `set` unlinked.
    unsafe fn wake(node: *const Node) {
        let this = node as *const Self;
        // SAFETY: we own the completion.
        unsafe {
            (*this).waiter.disarm();
            (*this).waiter.take_receiver().set_value(());
        }
    }

    /// # Safety
    /// Called from the stop callback of a started `WaitOp`.
    unsafe fn cancel(node: *const Node) {
        let this = node as *const Self;
        // SAFETY: registered callback: the op is alive.
        let event = unsafe { (*this).event };
        // SAFETY: lock held; the node is alive.
        let won = event.state.with(|s| unsafe { s.waiters.remove(node) });
        if won {
            // SAFETY: we unlinked it: we own the completion.
            unsafe {
                (*this).waiter.disarm();
                (*this).waiter.take_receiver().set_stopped();
            }
        }
    }
}

impl<R> OperationState for WaitOp<'_, R>
where
    R: Receiver<(), core::convert::Infallible>,
{
    unsafe fn start(self: Pin<&mut Self>) {
        let this: &Self = self.into_ref().get_ref();
        let node = Waiter::<R>::node_of(this);
        // SAFETY: not linked, not armed: the receiver is ours.
        let token = unsafe { this.waiter.token() };
        if !token.stop_requested() {
            // SAFETY: pinned, not linked, armed once.
            unsafe { this.waiter.arm(node, token) };
        }
        let next = this.event.state.with(|s| {
            if token.stop_requested() {
                Next::Stopped
            } else if s.set {
                Next::Set
            } else {
                // SAFETY: lock held; pinned op, alive until unlinked.
                unsafe { s.waiters.push_back(node) };
                Next::Wait
            }
        });
        match next {
            Next::Wait => {}
            // SAFETY: not linked: we own the completion.
            Next::Set => unsafe {
                this.waiter.disarm();
                this.waiter.take_receiver().set_value(());
            },
            // SAFETY: not linked: we own the completion.
            Next::Stopped => unsafe {
                this.waiter.disarm();
                this.waiter.take_receiver().set_stopped();
            },
        }
    }
}
