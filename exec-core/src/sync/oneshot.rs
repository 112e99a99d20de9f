//! A oneshot channel whose receiving half is a sender: [`channel`].
//!
//! # Protocol
//! One `Arc`-shared channel (the one allocation): under its lock, the value
//! slot, whether either half has gone, and the waiting receive operation (at
//! most one). `send` either takes the waiter out (and hands it the value
//! outside the lock, through its `wake` function) or, if none waits, stores
//! the value — one critical section either way. Dropping the sending half
//! without sending marks it gone and wakes the waiter the same way, with no
//! value.
//!
//! A receive operation that finds a value (or the sending half gone) at
//! `start` completes at once. Only one that has to wait registers a stop
//! callback — its own first field, so the operation is its own callback
//! node — and it does so under the channel's lock, before linking itself.
//! Whoever unlinks the waiter (the sending half, or the stop callback)
//! owns its completion; see [`RecvOp`].

use alloc::sync::Arc;
use core::fmt;
use core::pin::Pin;
use core::ptr;

use crate::loom::cell::UnsafeCell;
use crate::stop::Node as StopNode;
use crate::sync::wait_list::Lock;
use crate::{Env, OperationState, Receiver, Sender, SenderTo, StopToken};

struct ChanState<T> {
    value: Option<T>,
    sender_gone: bool,
    receiver_gone: bool,
    /// The waiting receive operation, or null. Whoever takes it out (under
    /// the lock) owns its completion.
    waiter: *const Waiting<T>,
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
        // A waiting receiver gets the value handed over directly (one
        // critical section); otherwise it is stored for a later receive.
        let waiter = chan.state.with(|s| {
            if s.receiver_gone {
                return Err(value);
            }
            s.sender_gone = true;
            let waiter = core::mem::replace(&mut s.waiter, ptr::null());
            if waiter.is_null() {
                s.value = Some(value);
                Ok(None)
            } else {
                Ok(Some((waiter, value)))
            }
        })?;
        // Our handle goes first: the woken operation drops its own, and the
        // last one frees the channel.
        drop(chan);
        if let Some((waiter, value)) = waiter {
            // SAFETY: taken out under the lock: we own its completion.
            unsafe { ((*waiter).wake)(waiter, Some(value)) };
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
            drop(chan);
            if !waiter.is_null() {
                // SAFETY: taken out under the lock: we own its completion.
                unsafe { ((*waiter).wake)(waiter, None) };
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
            head: Waiting {
                stop: StopNode::new(StopToken::never(), RecvOp::<T, R>::cancel),
                wake: RecvOp::<T, R>::wake,
            },
            receiver: UnsafeCell::new(Some(receiver)),
            chan: UnsafeCell::new(Some(
                self.chan.take().expect("oneshot receiver already used"),
            )),
        }
    }
}

/// The type-erased front of a waiting [`RecvOp`], which the channel points
/// to while the operation waits.
#[repr(C)]
struct Waiting<T> {
    /// First: a `*const StopNode` is a `*const Waiting` is a `*const RecvOp`.
    /// Registered at `start` if the receiver's token can stop; runs
    /// `RecvOp::cancel`.
    stop: StopNode,
    /// Completes the operation with the value (`Some`) or, the sending half
    /// being gone, `RecvError` (`None`). Called by whoever took the waiter
    /// out of the channel, without the lock.
    wake: unsafe fn(*const Waiting<T>, Option<T>),
}

/// Operation state of [`OneshotReceiver`].
///
/// # Who completes it
/// Whoever takes its pointer out of the channel (`ChanState::waiter`, under
/// the lock) owns the completion: the sending half (`send` or its drop,
/// through `wake`) or the stop callback (`cancel`). Before completing, the
/// owner deregisters the stop callback (on the sending side this waits for a
/// callback running on another thread, which then finds the waiter gone and
/// does nothing) and drops the channel handle; then it completes the
/// receiver and touches nothing of the operation afterwards.
#[repr(C)]
pub struct RecvOp<T, R> {
    head: Waiting<T>,
    /// Taken by the owner of the completion.
    receiver: UnsafeCell<Option<R>>,
    /// Taken by the owner of the completion (or dropped with the op, which
    /// then closes the receiving side).
    chan: UnsafeCell<Option<Arc<Chan<T>>>>,
}

impl<T, R> fmt::Debug for RecvOp<T, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecvOp").finish_non_exhaustive()
    }
}

impl<T, R> Drop for RecvOp<T, R> {
    fn drop(&mut self) {
        // Present unless the op completed (which took it).
        // SAFETY: `&mut self`: no completion is in progress.
        if let Some(chan) = self.chan.with_mut(|c| unsafe { (*c).take() }) {
            close_receiver(&chan);
        }
    }
}

// SAFETY: the receiver is `Send` (required by `connect`) and may be completed
// by the sending thread or the one requesting stop; `T` moves between threads.
unsafe impl<T: Send, R: Send> Send for RecvOp<T, R> {}

enum Next<T> {
    Value(T),
    Closed,
    /// With the value that was there, if any: never received.
    Stopped(Option<T>),
    Wait,
}

impl<T, R: Receiver<T, RecvError>> RecvOp<T, R> {
    /// Deregisters the stop callback, takes the receiver and the channel.
    ///
    /// # Safety
    /// Called by the owner of the completion, once; `this` is alive.
    unsafe fn finish(this: *const Self) -> (R, Arc<Chan<T>>) {
        // SAFETY: per the contract we own the completion: the other side of
        // the race (the stop callback, or the sender) found the waiter gone
        // and touches only the channel; the cells are ours.
        unsafe {
            (*this).head.stop.deregister();
            let receiver = (*this).receiver.with_mut(|r| (*r).take());
            let chan = (*this).chan.with_mut(|c| (*c).take());
            match (receiver, chan) {
                (Some(r), Some(c)) => (r, c),
                _ => unreachable!("oneshot: receive operation completed twice"),
            }
        }
    }

    /// # Safety
    /// `w` is the `Waiting` of a started `RecvOp<T, R>` (derived from the
    /// whole op) that `send` or the sending half's drop took out of the
    /// channel.
    unsafe fn wake(w: *const Waiting<T>, value: Option<T>) {
        // SAFETY: we own the completion, per the contract.
        let (receiver, chan) = unsafe { Self::finish(w.cast::<Self>()) };
        // Drop what we hold before completing (the sending half has let go
        // already, so this frees the channel).
        drop(chan);
        match value {
            Some(v) => receiver.set_value(v),
            None => receiver.set_error(RecvError),
        }
    }

    /// The stop callback.
    ///
    /// # Safety
    /// `node` is the stop node of a started `RecvOp<T, R>` (derived from the
    /// whole op), still registered.
    unsafe fn cancel(node: *const StopNode) {
        let this = node.cast::<Self>();
        let w = node.cast::<Waiting<T>>();
        // SAFETY: registered callback: the op is alive and its channel handle
        // present (only the owner of the completion takes it, after
        // deregistering, which waits for us).
        let won = unsafe {
            (*this).chan.with(|c| {
                let chan = (*c).as_ref().expect("oneshot: waiting without a channel");
                chan.state.with(|s| {
                    if ptr::eq(s.waiter, w) {
                        s.waiter = ptr::null();
                        s.receiver_gone = true;
                        true
                    } else {
                        false
                    }
                })
            })
        };
        if won {
            // SAFETY: we took the waiter out: we own the completion.
            let (receiver, chan) = unsafe { Self::finish(this) };
            drop(chan);
            receiver.set_stopped();
        }
    }
}

impl<T, R> RecvOp<T, R> {
    /// Registers the stop callback of an operation that is about to wait
    /// (only then: a receive that completes at once costs no registration).
    /// Returns `false` if stop has been requested meanwhile (nothing
    /// registered).
    ///
    /// Called with the channel's lock held, *before* the waiter is linked:
    /// a stop request from the registration on runs `cancel`, which needs
    /// that lock and so finds the waiter linked. (The stop source's lock is
    /// only ever taken inside the channel's, never the other way round:
    /// stop callbacks run without the source's lock held.)
    ///
    /// # Safety
    /// `this` is the started, pinned op (derived from the whole op), not
    /// registered; `token` is its receiver's, which the op keeps until the
    /// callback is deregistered.
    unsafe fn arm(this: *const Self, token: StopToken<'static>) -> bool {
        if !token.stop_possible() {
            return true;
        }
        // SAFETY: per the contract; the op's drop (or the owner of the
        // completion) deregisters before the memory goes away.
        unsafe {
            (*this).head.stop.set_token(token);
            StopNode::register(this.cast::<StopNode>())
        }
    }
}

impl<T, R: Receiver<T, RecvError>> OperationState for RecvOp<T, R> {
    unsafe fn start(self: Pin<&mut Self>) {
        // SAFETY: nothing is moved out; every later access goes through this
        // pointer (derived from the whole op) or the cells.
        let this: *const Self = unsafe { self.get_unchecked_mut() };
        // SAFETY: not started yet: nobody else reaches the op.
        let token = unsafe {
            (*this).receiver.with(|r| {
                let r = (*r).as_ref().expect("oneshot: started twice");
                // The receiver, whose env produced the token, stays in the op
                // until the stop callback has been deregistered.
                r.env().stop_token().detach()
            })
        };
        let w = this.cast::<Waiting<T>>();
        // SAFETY: not linked: the channel cell is ours.
        let next = unsafe {
            (*this).chan.with(|c| {
                let chan = (*c).as_ref().expect("oneshot: started twice");
                chan.state.with(|s| {
                    if token.stop_requested() {
                        s.receiver_gone = true;
                        Next::Stopped(s.value.take())
                    } else if let Some(v) = s.value.take() {
                        Next::Value(v)
                    } else if s.sender_gone {
                        Next::Closed
                    } else if Self::arm(this, token) {
                        s.waiter = w;
                        Next::Wait
                    } else {
                        // Stop was requested since the check above.
                        s.receiver_gone = true;
                        Next::Stopped(None)
                    }
                })
            })
        };
        if let Next::Wait = next {
            return;
        }
        // SAFETY: not linked: we own the completion.
        let (receiver, chan) = unsafe { Self::finish(this) };
        drop(chan);
        match next {
            Next::Value(v) => receiver.set_value(v),
            Next::Closed => receiver.set_error(RecvError),
            Next::Stopped(unreceived) => {
                // Dropped before completing (a value's destructor is user code,
                // run outside the lock).
                drop(unreceived);
                receiver.set_stopped()
            }
            Next::Wait => unreachable!(),
        }
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    //! The hand-over of a waiting receive operation: `send` (or the sending
    //! half's drop) racing a stop request; exactly one of them completes it.
    use super::*;
    use crate::loom::sync::atomic::{AtomicUsize, Ordering};
    use crate::{PanicPayload, StopSource};
    use ::loom::sync::Arc as LoomArc;
    use alloc::boxed::Box;

    /// 0: nothing yet; 1: value 7; 2: error; 3: stopped.
    struct Rec {
        outcome: LoomArc<AtomicUsize>,
        completions: LoomArc<AtomicUsize>,
        stop: LoomArc<StopSource>,
    }
    impl Rec {
        fn record(&self, what: usize) {
            self.completions.fetch_add(1, Ordering::Relaxed);
            self.outcome.store(what, Ordering::Release);
        }
    }
    struct RecEnv<'a>(&'a StopSource);
    impl<'a> crate::Env<'a> for RecEnv<'a> {
        fn stop_token(&self) -> StopToken<'a> {
            self.0.token()
        }
    }
    impl Receiver<u32, RecvError> for Rec {
        fn set_value(self, v: u32) {
            assert_eq!(v, 7);
            self.record(1);
        }
        fn set_error(self, _: RecvError) {
            self.record(2);
        }
        fn set_stopped(self) {
            self.record(3);
        }
        fn set_panic(self, _: PanicPayload) {
            panic!("no panic expected");
        }
        fn env(&self) -> impl crate::Env<'_> {
            RecEnv(&self.stop)
        }
    }

    /// `send`: send (else drop the sending half, or, with `race_start`,
    /// keep it: only the stop request can complete the op); `race_start`:
    /// the stop request also races `start` (else the op waits before it is
    /// made).
    fn model(send: bool, race_start: bool) {
        ::loom::model(move || {
            let stop = LoomArc::new(StopSource::new());
            let outcome = LoomArc::new(AtomicUsize::new(0));
            let completions = LoomArc::new(AtomicUsize::new(0));
            let (tx, rx) = channel::<u32>();
            let mut op = Box::pin(rx.connect(Rec {
                outcome: outcome.clone(),
                completions: completions.clone(),
                stop: stop.clone(),
            }));
            let s2 = stop.clone();
            let spawn_stopper = move || {
                ::loom::thread::spawn(move || {
                    s2.request_stop();
                })
            };
            let stopper = if race_start {
                let t = spawn_stopper();
                // SAFETY: `op` is dropped only after both threads were
                // joined and it has completed (asserted below).
                unsafe { op.as_mut().start() };
                t
            } else {
                // SAFETY: as above.
                unsafe { op.as_mut().start() };
                spawn_stopper()
            };
            let (delivered, tx) = match (send, race_start) {
                (true, _) => (tx.send(7).is_ok(), None),
                // The stop request alone must complete the op.
                (false, true) => (false, Some(tx)),
                (false, false) => {
                    drop(tx);
                    (true, None)
                }
            };
            stopper.join().unwrap();
            assert_eq!(completions.load(Ordering::Relaxed), 1);
            let got = outcome.load(Ordering::Acquire);
            if send {
                // `send` succeeds exactly when the value was delivered.
                assert_eq!(delivered, got == 1, "outcome {got}");
            } else if race_start {
                assert_eq!(got, 3, "not stopped");
            } else {
                assert!(got == 2 || got == 3, "outcome {got}");
            }
            drop(tx);
            drop(op);
        });
    }

    #[test]
    fn loom_oneshot_send_races_stop() {
        model(true, false);
    }

    #[test]
    fn loom_oneshot_stop_races_start_and_send() {
        model(true, true);
    }

    #[test]
    fn loom_oneshot_stop_races_start() {
        model(false, true);
    }

    #[test]
    fn loom_oneshot_sender_drop_races_stop() {
        model(false, false);
    }
}
