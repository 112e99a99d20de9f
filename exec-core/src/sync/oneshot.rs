//! A oneshot channel whose receiving half is a sender: [`channel`].
//!
//! # Protocol
//! One `Arc`-shared channel (the one allocation): under its lock, the value
//! slot, whether either half has gone, and the waiting receive operation (at
//! most one). `send` stores the value and takes the waiter in one critical
//! section, then wakes it outside the lock; the woken operation takes the
//! value under the lock. Dropping the sending half without sending marks it
//! gone and wakes the waiter the same way, which then finds no value.

use alloc::sync::Arc;
use core::fmt;
use core::pin::Pin;
use core::ptr;

use crate::sync::wait_list::{Lock, Node, Waiter};
use crate::{OperationState, Receiver, Sender, SenderTo};

struct ChanState<T> {
    value: Option<T>,
    sender_gone: bool,
    receiver_gone: bool,
    /// The waiting receive operation's node, or null.
    waiter: *const Node,
}

// SAFETY: the node pointer is only used under the lock (see the module
// docs); the receive operation requires a `Send` receiver. `T` moves
// between threads.
unsafe impl<T: Send> Send for ChanState<T> {}

struct Chan<T> {
    state: Lock<ChanState<T>>,
}

/// Creates a oneshot channel: a [`OneshotSender`] to send one value and a
/// [`OneshotReceiver`], a sender that completes with it.
///
/// One allocation for the channel. The receiving half completes:
/// - value: the sent value (on the sending thread if it was waiting);
/// - error [`RecvError`]: if the sending half was dropped without sending;
/// - stopped: if its receiver's stop token is triggered first.
///
/// # Example
/// ```
/// use exec_core::{oneshot, sync_wait};
/// let (tx, rx) = oneshot::channel();
/// std::thread::spawn(move || tx.send(42).unwrap());
/// assert_eq!(sync_wait(rx), Ok(Some(42)));
///
/// let (tx, rx) = oneshot::channel::<i32>();
/// drop(tx);
/// assert_eq!(sync_wait(rx), Err(oneshot::RecvError));
/// ```
pub fn channel<T>() -> (OneshotSender<T>, OneshotReceiver<T>) {
    let chan = Arc::new(Chan {
        state: Lock::new(ChanState {
            value: None,
            sender_gone: false,
            receiver_gone: false,
            waiter: ptr::null(),
        }),
    });
    (
        OneshotSender {
            chan: Some(chan.clone()),
        },
        OneshotReceiver { chan: Some(chan) },
    )
}

/// The receiving half was dropped (or is not going to receive).
///
/// Returned by [`OneshotSender::send`] together with the unsent value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecvError;

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the sending half of the oneshot channel was dropped without sending")
    }
}

impl core::error::Error for RecvError {}

/// The sending half of a [`channel`].
pub struct OneshotSender<T> {
    /// `None` once sent.
    chan: Option<Arc<Chan<T>>>,
}

impl<T> OneshotSender<T> {
    /// Sends `value`, completing the receiving half (on this thread, if it
    /// is waiting). Returns the value back if the receiving half is gone.
    ///
    /// ```
    /// use exec_core::oneshot;
    /// let (tx, rx) = oneshot::channel();
    /// drop(rx);
    /// assert!(tx.is_closed());
    /// assert_eq!(tx.send(1), Err(1));
    /// ```
    pub fn send(mut self, value: T) -> Result<(), T> {
        let chan = self.chan.take().expect("oneshot: sent twice");
        let waiter = chan.state.with(|s| {
            if s.receiver_gone {
                Err(value)
            } else {
                s.value = Some(value);
                s.sender_gone = true;
                Ok(core::mem::replace(&mut s.waiter, ptr::null()))
            }
        })?;
        if !waiter.is_null() {
            // SAFETY: taken out under the lock: we own its completion.
            unsafe { Node::wake(waiter) };
        }
        Ok(())
    }

    /// Whether the receiving half has been dropped.
    pub fn is_closed(&self) -> bool {
        self.chan
            .as_ref()
            .is_none_or(|c| c.state.with(|s| s.receiver_gone))
    }
}

impl<T> Drop for OneshotSender<T> {
    fn drop(&mut self) {
        if let Some(chan) = self.chan.take() {
            let waiter = chan.state.with(|s| {
                s.sender_gone = true;
                core::mem::replace(&mut s.waiter, ptr::null())
            });
            if !waiter.is_null() {
                // SAFETY: taken out under the lock: we own its completion.
                unsafe { Node::wake(waiter) };
            }
        }
    }
}

impl<T> fmt::Debug for OneshotSender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OneshotSender").finish_non_exhaustive()
    }
}

/// The receiving half of a [`channel`]: a sender of the value.
///
/// # Completion
/// - value: the sent value.
/// - error: [`RecvError`] if the sending half was dropped without sending.
/// - stopped: if the receiver's stop token is triggered before a value
///   arrives (the waiter deregisters; a value sent later is dropped with
///   the channel).
///
/// # Cancellation
/// See *stopped*.
///
/// # Panics
/// Never.
///
/// # Example
/// ```
/// use exec_core::{oneshot, sync_wait, SenderExt};
/// let (tx, rx) = oneshot::channel();
/// tx.send("hi").unwrap();
/// assert_eq!(sync_wait(rx.then(|s| s.len())), Ok(Some(2)));
/// ```
///
/// # See also
/// [`AsyncManualResetEvent`](crate::AsyncManualResetEvent).
#[must_use = "senders do nothing unless connected and started"]
pub struct OneshotReceiver<T> {
    /// `None` once moved into an operation.
    chan: Option<Arc<Chan<T>>>,
}

fn close_receiver<T>(chan: &Chan<T>) {
    let value = chan.state.with(|s| {
        s.receiver_gone = true;
        s.value.take()
    });
    // Dropped outside the lock: a value's destructor is user code.
    drop(value);
}

impl<T> Drop for OneshotReceiver<T> {
    fn drop(&mut self) {
        if let Some(chan) = self.chan.take() {
            close_receiver(&chan);
        }
    }
}

impl<T> fmt::Debug for OneshotReceiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OneshotReceiver").finish_non_exhaustive()
    }
}

impl<T> Sender for OneshotReceiver<T> {
    type Output = T;
    type Error = RecvError;
}

impl<T, R> SenderTo<R> for OneshotReceiver<T>
where
    R: Receiver<T, RecvError> + Send,
{
    type Operation = RecvOp<T, R>;
    fn connect(mut self, receiver: R) -> RecvOp<T, R> {
        RecvOp {
            waiter: Waiter::new(receiver, RecvOp::<T, R>::wake, RecvOp::<T, R>::cancel),
            chan: self.chan.take().expect("oneshot receiver already used"),
        }
    }
}

/// Operation state of [`OneshotReceiver`].
#[repr(C)]
pub struct RecvOp<T, R> {
    /// First field: a `*const Node` is a `*const RecvOp`.
    waiter: Waiter<R>,
    chan: Arc<Chan<T>>,
}

impl<T, R> fmt::Debug for RecvOp<T, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecvOp").finish_non_exhaustive()
    }
}

impl<T, R> Drop for RecvOp<T, R> {
    fn drop(&mut self) {
        close_receiver(&self.chan);
    }
}

// SAFETY: the receiver is `Send` (required by `connect`) and may be completed
// by the sending thread or the one requesting stop; `T` moves between threads.
unsafe impl<T: Send, R: Send> Send for RecvOp<T, R> {}

enum Next<T> {
    Value(T),
    Closed,
    Stopped,
    Wait,
}

impl<T, R: Receiver<T, RecvError>> RecvOp<T, R> {
    fn deliver(chan: &Chan<T>, receiver: R) {
        match chan.state.with(|s| s.value.take()) {
            Some(v) => receiver.set_value(v),
            None => receiver.set_error(RecvError),
        }
    }

    /// # Safety
    /// `node` is the node of a started `RecvOp` that `send` or the sending
    /// half's drop took out of the channel.
    unsafe fn wake(node: *const Node) {
        let this = node as *const Self;
        // SAFETY: we own the completion; the channel is kept alive by our
        // own clone of the `Arc` during delivery.
        unsafe {
            (*this).waiter.disarm();
            let receiver = (*this).waiter.take_receiver();
            let chan = (*this).chan.clone();
            Self::deliver(&chan, receiver);
        }
    }

    /// # Safety
    /// Called from the stop callback of a started `RecvOp`.
    unsafe fn cancel(node: *const Node) {
        let this = node as *const Self;
        // SAFETY: registered callback: the op is alive.
        let chan = unsafe { &(*this).chan };
        let won = chan.state.with(|s| {
            if s.waiter == node {
                s.waiter = ptr::null();
                true
            } else {
                false
            }
        });
        if won {
            // SAFETY: we took the node out: we own the completion.
            unsafe {
                (*this).waiter.disarm();
                (*this).waiter.take_receiver().set_stopped();
            }
        }
    }
}

impl<T, R: Receiver<T, RecvError>> OperationState for RecvOp<T, R> {
    unsafe fn start(self: Pin<&mut Self>) {
        let this: &Self = self.into_ref().get_ref();
        let node = Waiter::<R>::node_of(this);
        // SAFETY: not linked, not armed: the receiver is ours.
        let token = unsafe { this.waiter.token() };
        if !token.stop_requested() {
            // SAFETY: pinned, not linked, armed once.
            unsafe { this.waiter.arm(node, token) };
        }
        let next = this.chan.state.with(|s| {
            if token.stop_requested() {
                Next::Stopped
            } else if let Some(v) = s.value.take() {
                Next::Value(v)
            } else if s.sender_gone {
                Next::Closed
            } else {
                s.waiter = node;
                Next::Wait
            }
        });
        if let Next::Wait = next {
            return;
        }
        // SAFETY: not linked: we own the completion.
        unsafe { this.waiter.disarm() };
        // SAFETY: as above.
        let receiver = unsafe { this.waiter.take_receiver() };
        match next {
            Next::Value(v) => receiver.set_value(v),
            Next::Closed => receiver.set_error(RecvError),
            Next::Stopped => receiver.set_stopped(),
            Next::Wait => unreachable!(),
        }
    }
}
