use core::marker::PhantomPinned;
use core::pin::Pin;

use crate::adaptor::nary::{ChildOp, Downstream, Failure, Join, JoinParent, Slot};
use crate::loom::sync::atomic::{AtomicBool, Ordering};
use crate::{Env, OperationState, PanicPayload, ParentRef, Receiver, Sender, SenderTo};

/// Runs `a` and `b` concurrently; the first to send a value or an error
/// completes the whole, and the other is asked to stop.
///
/// For 3 to 12 children use the [`when_any!`](crate::when_any!) macro (or
/// [`WhenAny::new`] with a tuple). All children share one output type and
/// one error type. No allocation: the children are connected and started
/// inside the pinned operation state.
///
/// # Completion
/// Exactly once, after every child has completed:
/// - value: the first value sent by a child,
/// - error: or the first error, if it came before any value,
/// - stopped: if every child completed stopped.
///
/// Later values and errors are dropped (before the completion is forwarded).
///
/// # Cancellation
/// The first value, error or panic requests stop of the other children
/// through a stop source in the operation, which is also chained to the
/// receiver's stop token (a stop request from outside reaches every child).
/// A child that completes stopped does not stop its siblings.
///
/// # Panics
/// A child's panic counts like an error: if it comes first it wins, stops
/// the siblings, and is delivered through [`Receiver::set_panic`] once every
/// child has completed; after a value or error it is dropped.
///
/// # Example
/// ```
/// use exec_core::{just, sync_wait, when_any};
///
/// // The first value wins (here the first child completes inline).
/// assert_eq!(sync_wait(when_any(just(1), just(2))), Ok(Some(1)));
/// ```
///
/// # See also
/// [`when_any!`](crate::when_any!), [`when_all`](fn@crate::when_all),
/// [`stop_when`](crate::stop_when).
pub fn when_any<A, B>(a: A, b: B) -> WhenAny<(A, B)>
where
    A: Sender,
    B: Sender<Output = A::Output, Error = A::Error>,
{
    WhenAny::new((a, b))
}

/// Races 2 to 12 senders with one output and one error type: the first
/// value or error wins, the others are stopped.
///
/// Expands to [`WhenAny::new((a, b, c))`](crate::WhenAny::new); see
/// [`when_any`](fn@crate::when_any) for the semantics.
///
/// # Completion
/// As [`when_any`](fn@crate::when_any): the first value or error (or
/// panic), or stopped if every child stopped; once, after every child
/// completed.
///
/// # Cancellation
/// As [`when_any`](fn@crate::when_any).
///
/// # Panics
/// As [`when_any`](fn@crate::when_any).
///
/// # Example
/// ```
/// use exec_core::{just, sync_wait, when_any};
/// assert_eq!(sync_wait(when_any!(just(1), just(2), just(3))), Ok(Some(1)));
/// ```
///
/// # See also
/// [`when_all!`](crate::when_all!).
#[macro_export]
macro_rules! when_any {
    ($($sender:expr),+ $(,)?) => {
        $crate::WhenAny::new(($($sender,)+))
    };
}

/// Sender for the [`when_any`](fn@when_any) function and the
/// [`when_any!`](crate::when_any!) macro: a tuple of 2 to 12 children.
#[must_use = "senders do nothing unless connected and started"]
#[derive(Clone, Debug)]
pub struct WhenAny<C> {
    children: C,
}

impl<C> WhenAny<C> {
    /// Races a tuple of 2 to 12 senders with one output and one error type.
    /// See [`when_any`](fn@when_any).
    ///
    /// ```
    /// use exec_core::{just, sync_wait, WhenAny};
    /// assert_eq!(sync_wait(WhenAny::new((just(1), just(2)))), Ok(Some(1)));
    /// ```
    pub fn new(children: C) -> Self {
        WhenAny { children }
    }
}

/// The winning completion.
enum Won<T, E> {
    Value(T),
    Failed(Failure<E>),
}

/// What the children of a [`WhenAny`] share.
pub struct WhenAnyState<T, E, R> {
    join: Join<Self>,
    /// Set by the first child that sends a value, an error or a panic.
    claimed: AtomicBool,
    /// Written by the claimer; read by the completer.
    won: Slot<Won<T, E>>,
    receiver: Downstream<R>,
}

impl<T, E, R> core::fmt::Debug for WhenAnyState<T, E, R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("WhenAnyState")
            .field("join", &self.join)
            .finish_non_exhaustive()
    }
}

// SAFETY: atomics, plus the `won` cell written only by the child that set
// `claimed` and read by the completer after every child arrived; the
// receiver is taken by the completer. What crosses threads is `Send`.
unsafe impl<T: Send, E: Send, R: Send> Sync for WhenAnyState<T, E, R> {}

impl<T, E, R> WhenAnyState<T, E, R> {
    /// Claims the win for `won` (or drops it), stops the siblings if it won.
    fn offer(&self, won: Won<T, E>) {
        // Relaxed: the slot is read after the `AcqRel` of `arrive`.
        if !self.claimed.swap(true, Ordering::Relaxed) {
            // SAFETY: only the claimer writes, once, before arriving.
            unsafe { self.won.put(won) };
            self.join.stop_siblings();
        }
    }
}

impl<T, E, R: Receiver<T, E>> JoinParent for WhenAnyState<T, E, R> {
    fn join(&self) -> &Join<Self> {
        &self.join
    }

    unsafe fn complete(this: ParentRef<Self>) {
        let state = this.get();
        // SAFETY: we are the completer: every child has arrived.
        let (receiver, won) = unsafe { (state.receiver.take(), state.won.take()) };
        match won {
            Some(Won::Value(v)) => receiver.set_value(v),
            Some(Won::Failed(f)) => f.deliver(receiver),
            None => receiver.set_stopped(),
        }
    }
}

/// Operation state of [`WhenAny`].
pub struct WhenAnyOp<P, C> {
    state: P,
    children: C,
    _pin: PhantomPinned,
}

impl<P, C> core::fmt::Debug for WhenAnyOp<P, C> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("WhenAnyOp").finish_non_exhaustive()
    }
}

/// The receiver every child of a [`WhenAny`] is connected to.
pub struct WhenAnyReceiver<P> {
    state: ParentRef<P>,
}

impl<P> core::fmt::Debug for WhenAnyReceiver<P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("WhenAnyReceiver").finish_non_exhaustive()
    }
}

impl<T, E, R: Receiver<T, E>> Receiver<T, E> for WhenAnyReceiver<WhenAnyState<T, E, R>> {
    fn set_value(self, value: T) {
        self.state.get().offer(Won::Value(value));
        // SAFETY: this child holds a reference until now.
        unsafe { Join::arrive(self.state) };
    }
    fn set_error(self, error: E) {
        self.state.get().offer(Won::Failed(Failure::Error(error)));
        // SAFETY: this child holds a reference until now.
        unsafe { Join::arrive(self.state) };
    }
    fn set_stopped(self) {
        // SAFETY: this child holds a reference until now.
        unsafe { Join::arrive(self.state) };
    }
    fn set_panic(self, payload: PanicPayload) {
        self.state.get().offer(Won::Failed(Failure::Panic(payload)));
        // SAFETY: this child holds a reference until now.
        unsafe { Join::arrive(self.state) };
    }
    fn env(&self) -> impl Env<'_> {
        self.state.get().join.child_env()
    }
}

macro_rules! when_any_tuple {
    ($n:literal; $($i:tt $S:ident $O:ident),+) => {
        impl<$($S: Sender<Output = T, Error = E>,)+ T, E> Sender for WhenAny<($($S,)+)> {
            type Output = T;
            type Error = E;
            const SENDS_STOPPED: bool = true $(&& $S::SENDS_STOPPED)+;
        }

        impl<$($S,)+ T, E, R> SenderTo<R> for WhenAny<($($S,)+)>
        where
            $($S: Sender<Output = T, Error = E>
                + SenderTo<WhenAnyReceiver<WhenAnyState<T, E, R>>>,)+
            R: Receiver<T, E>,
        {
            type Operation = WhenAnyOp<
                WhenAnyState<T, E, R>,
                ($(ChildOp<$S, <$S as SenderTo<WhenAnyReceiver<WhenAnyState<T, E, R>>>>::Operation>,)+),
            >;

            fn connect(self, receiver: R) -> Self::Operation {
                WhenAnyOp {
                    state: WhenAnyState {
                        join: Join::new($n, true),
                        claimed: AtomicBool::new(false),
                        won: Slot::new(),
                        receiver: Downstream::new(receiver),
                    },
                    children: ($(ChildOp::new(self.children.$i),)+),
                    _pin: PhantomPinned,
                }
            }
        }

        impl<$($S, $O,)+ T, E, R> OperationState
            for WhenAnyOp<WhenAnyState<T, E, R>, ($(ChildOp<$S, $O>,)+)>
        where
            $($S: SenderTo<WhenAnyReceiver<WhenAnyState<T, E, R>>, Operation = $O>,
            $O: OperationState,)+
            R: Receiver<T, E>,
        {
            unsafe fn start(self: Pin<&mut Self>) {
                // SAFETY: we never move out of the op: `state` is only
                // shared, each child op is pinned in its own field.
                let this: *mut Self = unsafe { self.get_unchecked_mut() };
                // SAFETY: `this` is valid; `state` is never moved.
                let state = unsafe { Pin::new_unchecked(&(*this).state) };
                // SAFETY: called once, before any child starts.
                unsafe {
                    state
                        .receiver
                        .with(|r| state.join.start(state, &r.env()))
                };
                $(
                    // SAFETY: the op is started and outlives this child (it
                    // holds a reference). After the last child's `start` we
                    // touch nothing.
                    unsafe {
                        let receiver = WhenAnyReceiver { state: ParentRef::new(state) };
                        Pin::new_unchecked(&mut (*this).children.$i).start(receiver);
                    }
                )+
            }
        }
    };
}

when_any_tuple!(2; 0 S0 O0, 1 S1 O1);
when_any_tuple!(3; 0 S0 O0, 1 S1 O1, 2 S2 O2);
when_any_tuple!(4; 0 S0 O0, 1 S1 O1, 2 S2 O2, 3 S3 O3);
when_any_tuple!(5; 0 S0 O0, 1 S1 O1, 2 S2 O2, 3 S3 O3, 4 S4 O4);
when_any_tuple!(6; 0 S0 O0, 1 S1 O1, 2 S2 O2, 3 S3 O3, 4 S4 O4, 5 S5 O5);
when_any_tuple!(7; 0 S0 O0, 1 S1 O1, 2 S2 O2, 3 S3 O3, 4 S4 O4, 5 S5 O5, 6 S6 O6);
when_any_tuple!(8; 0 S0 O0, 1 S1 O1, 2 S2 O2, 3 S3 O3, 4 S4 O4, 5 S5 O5, 6 S6 O6, 7 S7 O7);
when_any_tuple!(9; 0 S0 O0, 1 S1 O1, 2 S2 O2, 3 S3 O3, 4 S4 O4, 5 S5 O5, 6 S6 O6, 7 S7 O7,
    8 S8 O8);
when_any_tuple!(10; 0 S0 O0, 1 S1 O1, 2 S2 O2, 3 S3 O3, 4 S4 O4, 5 S5 O5, 6 S6 O6, 7 S7 O7,
    8 S8 O8, 9 S9 O9);
when_any_tuple!(11; 0 S0 O0, 1 S1 O1, 2 S2 O2, 3 S3 O3, 4 S4 O4, 5 S5 O5, 6 S6 O6, 7 S7 O7,
    8 S8 O8, 9 S9 O9, 10 S10 O10);
when_any_tuple!(12; 0 S0 O0, 1 S1 O1, 2 S2 O2, 3 S3 O3, 4 S4 O4, 5 S5 O5, 6 S6 O6, 7 S7 O7,
    8 S8 O8, 9 S9 O9, 10 S10 O10, 11 S11 O11);
