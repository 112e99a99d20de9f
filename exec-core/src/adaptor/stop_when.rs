use core::marker::PhantomPinned;
use core::pin::Pin;

use crate::adaptor::nary::{ChildOp, Downstream, Join, JoinParent, Slot};
use crate::{Env, OperationState, PanicPayload, ParentRef, Receiver, Sender, SenderTo};

/// Runs `sender` and races it against `trigger`: when the trigger completes
/// first (on any channel) the work is asked to stop; when the work completes
/// first the trigger is asked to stop. The result is the work's completion.
///
/// A stop token from the receiver's environment already reaches the work
/// without any algorithm; `stop_when` adds a second source of cancellation
/// that is itself a sender (a timer, an event, a signal). Also available as
/// the method [`SenderExt::stop_when`](crate::SenderExt::stop_when). No
/// allocation.
///
/// # Completion
/// Once both the work and the trigger have completed, exactly once, with the
/// work's completion: its value, its error, or stopped (typically because
/// the trigger fired). The trigger's own value or error is dropped.
///
/// # Cancellation
/// Both children observe a stop source in the operation, requested by
/// whichever completes first and chained to the receiver's stop token (a
/// stop request from outside reaches both).
///
/// # Panics
/// A panic in the work is delivered through [`Receiver::set_panic`] like its
/// other completions. A panic in the trigger stops the work and is delivered
/// instead of the work's completion (a panic is never lost), unless the work
/// panicked too, in which case the work's panic is delivered.
///
/// # Example
/// ```
/// use exec_core::{just, stop_when, sync_wait, SenderExt};
///
/// // The work completes inline, before the trigger even starts.
/// assert_eq!(sync_wait(stop_when(just(7), just(()))), Ok(Some(7)));
/// assert_eq!(sync_wait(just(7).stop_when(just(()))), Ok(Some(7)));
/// ```
///
/// # See also
/// [`when_any`](fn@crate::when_any), [`when_all`](fn@crate::when_all).
pub fn stop_when<S: Sender, T: Sender>(sender: S, trigger: T) -> StopWhen<S, T> {
    StopWhen { sender, trigger }
}

/// Sender for the [`stop_when`] function and
/// [`SenderExt::stop_when`](crate::SenderExt::stop_when).
#[must_use = "senders do nothing unless connected and started"]
#[derive(Clone, Debug)]
pub struct StopWhen<S, T> {
    sender: S,
    trigger: T,
}

impl<S: Sender, T: Sender> Sender for StopWhen<S, T> {
    type Output = S::Output;
    type Error = S::Error;
    const SENDS_STOPPED: bool = S::SENDS_STOPPED;
}

/// The work's completion.
enum Done<T, E> {
    Value(T),
    Error(E),
    Stopped,
    Panic(PanicPayload),
}

/// What the work and the trigger of a [`StopWhen`] share.
pub struct StopWhenState<T, E, R> {
    join: Join<Self>,
    /// Written by the work's receiver, read by the completer.
    work: Slot<Done<T, E>>,
    /// Written by the trigger's receiver if the trigger panicked.
    trigger_panic: Slot<PanicPayload>,
    receiver: Downstream<R>,
}

impl<T, E, R> core::fmt::Debug for StopWhenState<T, E, R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("StopWhenState")
            .field("join", &self.join)
            .finish_non_exhaustive()
    }
}

// SAFETY: atomics, plus cells each written by one child before it arrives
// and read by the completer after both arrived; the receiver is taken by the
// completer. What crosses threads is `Send`.
unsafe impl<T: Send, E: Send, R: Send> Sync for StopWhenState<T, E, R> {}

impl<T, E, R: Receiver<T, E>> JoinParent for StopWhenState<T, E, R> {
    fn join(&self) -> &Join<Self> {
        &self.join
    }

    unsafe fn complete(this: ParentRef<Self>) {
        let state = this.get();
        // SAFETY: we are the completer: both children have arrived.
        let (receiver, work, trigger_panic) = unsafe {
            (
                state.receiver.take(),
                state.work.take(),
                state.trigger_panic.take(),
            )
        };
        match (work, trigger_panic) {
            (Some(Done::Panic(p)), _) => receiver.set_panic(p),
            (work, Some(p)) => {
                drop(work);
                receiver.set_panic(p)
            }
            (Some(Done::Value(v)), None) => receiver.set_value(v),
            (Some(Done::Error(e)), None) => receiver.set_error(e),
            (Some(Done::Stopped), None) => receiver.set_stopped(),
            (None, None) => unreachable!("exec: stop_when work completed without a result"),
        }
    }
}

/// Operation state of [`StopWhen`].
pub struct StopWhenOp<P, W, G> {
    state: P,
    work: W,
    trigger: G,
    _pin: PhantomPinned,
}

impl<P, W, G> core::fmt::Debug for StopWhenOp<P, W, G> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("StopWhenOp").finish_non_exhaustive()
    }
}

/// The receiver the work of a [`StopWhen`] is connected to.
pub struct StopWhenReceiver<P> {
    state: ParentRef<P>,
}

/// The receiver the trigger of a [`StopWhen`] is connected to.
pub struct StopWhenTriggerReceiver<P> {
    state: ParentRef<P>,
}

impl<P> core::fmt::Debug for StopWhenReceiver<P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("StopWhenReceiver").finish_non_exhaustive()
    }
}

impl<P> core::fmt::Debug for StopWhenTriggerReceiver<P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("StopWhenTriggerReceiver")
            .finish_non_exhaustive()
    }
}

impl<T, E, R: Receiver<T, E>> StopWhenReceiver<StopWhenState<T, E, R>> {
    fn finish(self, done: Done<T, E>) {
        let state = self.state.get();
        // SAFETY: only the work writes this slot, once, before arriving.
        unsafe { state.work.put(done) };
        // Stop the trigger, while our reference keeps the source alive.
        // SAFETY: the work holds a reference until now.
        unsafe { Join::stop_siblings_and_arrive(self.state) };
    }
}

impl<T, E, R: Receiver<T, E>> Receiver<T, E> for StopWhenReceiver<StopWhenState<T, E, R>> {
    fn set_value(self, value: T) {
        self.finish(Done::Value(value))
    }
    fn set_error(self, error: E) {
        self.finish(Done::Error(error))
    }
    fn set_stopped(self) {
        self.finish(Done::Stopped)
    }
    fn set_panic(self, payload: PanicPayload) {
        self.finish(Done::Panic(payload))
    }
    fn env(&self) -> impl Env<'_> {
        self.state.get().join.child_env()
    }
}

impl<T, E, R: Receiver<T, E>> StopWhenTriggerReceiver<StopWhenState<T, E, R>> {
    fn fire(self) {
        // Stop the work, while our reference keeps the source alive.
        // SAFETY: the trigger holds a reference until now.
        unsafe { Join::stop_siblings_and_arrive(self.state) };
    }
}

impl<U, F, T, E, R> Receiver<U, F> for StopWhenTriggerReceiver<StopWhenState<T, E, R>>
where
    R: Receiver<T, E>,
{
    fn set_value(self, value: U) {
        drop(value);
        self.fire()
    }
    fn set_error(self, error: F) {
        drop(error);
        self.fire()
    }
    fn set_stopped(self) {
        self.fire()
    }
    fn set_panic(self, payload: PanicPayload) {
        // SAFETY: only the trigger writes this slot, once, before arriving.
        unsafe { self.state.get().trigger_panic.put(payload) };
        self.fire()
    }
    fn env(&self) -> impl Env<'_> {
        self.state.get().join.child_env()
    }
}

type StateOf<S, R> = StopWhenState<<S as Sender>::Output, <S as Sender>::Error, R>;

impl<S, T, R> SenderTo<R> for StopWhen<S, T>
where
    S: SenderTo<StopWhenReceiver<StateOf<S, R>>>,
    T: SenderTo<StopWhenTriggerReceiver<StateOf<S, R>>>,
    R: Receiver<S::Output, S::Error>,
{
    type Operation = StopWhenOp<
        StateOf<S, R>,
        ChildOp<S, <S as SenderTo<StopWhenReceiver<StateOf<S, R>>>>::Operation>,
        ChildOp<T, <T as SenderTo<StopWhenTriggerReceiver<StateOf<S, R>>>>::Operation>,
    >;

    fn connect(self, receiver: R) -> Self::Operation {
        StopWhenOp {
            state: StopWhenState {
                join: Join::new(2, true),
                work: Slot::new(),
                trigger_panic: Slot::new(),
                receiver: Downstream::new(receiver),
            },
            work: ChildOp::new(self.sender),
            trigger: ChildOp::new(self.trigger),
            _pin: PhantomPinned,
        }
    }
}

impl<S, OS, T, OT, U, E, R> OperationState
    for StopWhenOp<StopWhenState<U, E, R>, ChildOp<S, OS>, ChildOp<T, OT>>
where
    S: SenderTo<StopWhenReceiver<StopWhenState<U, E, R>>, Operation = OS>,
    T: SenderTo<StopWhenTriggerReceiver<StopWhenState<U, E, R>>, Operation = OT>,
    OS: OperationState,
    OT: OperationState,
    R: Receiver<U, E>,
{
    unsafe fn start(self: Pin<&mut Self>) {
        // SAFETY: we never move out of the op: `state` is only shared, each
        // child op is pinned in its own field.
        let this: *mut Self = unsafe { self.get_unchecked_mut() };
        // SAFETY: `this` is valid; `state` is never moved.
        let state = unsafe { Pin::new_unchecked(&(*this).state) };
        // SAFETY: called once, before any child starts.
        unsafe { state.receiver.with(|r| state.join.start(state, &r.env())) };
        // SAFETY: the op is started and outlives both children (each holds a
        // reference); the trigger has not started, so the op is alive when
        // we connect it. After its `start` we touch nothing.
        unsafe {
            let work = StopWhenReceiver {
                state: ParentRef::new(state),
            };
            Pin::new_unchecked(&mut (*this).work).start(work);
            let trigger = StopWhenTriggerReceiver {
                state: ParentRef::new(state),
            };
            Pin::new_unchecked(&mut (*this).trigger).start(trigger);
        }
    }
}
