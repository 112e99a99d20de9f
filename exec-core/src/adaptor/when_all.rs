use core::marker::PhantomPinned;
use core::pin::Pin;

use crate::adaptor::nary::{
    ChildOp, Downstream, Failure, Join, JoinParent, Outcome, OutcomeParent, Slot, Verdict,
    arrive_without_value, uninhabited,
};
use crate::{Env, OperationState, PanicPayload, ParentRef, Receiver, Sender, SenderTo};

/// Runs `a` and `b` concurrently and completes with both values, `(A, B)`.
///
/// For 3 to 12 children use the [`when_all!`](crate::when_all!) macro (or
/// [`WhenAll::new`] with a tuple); the output is always one flat tuple.
/// For a number of children known only at run time, see
/// [`when_all_vec`](crate::when_all_vec). All children share one error
/// type: adapt a child's error first (with an error-mapping adaptor such as
/// `map_error`) if they differ.
///
/// Both children are connected and started when the `when_all` is started,
/// inside its (pinned) operation state: nothing is allocated.
///
/// # Completion
/// Once every child has completed, exactly once:
/// - value: `(a, b)` if every child sent a value — even if stop was requested
///   meanwhile.
/// - error: otherwise the first error (or panic, see below) wins; an error is
///   never hidden behind "stopped".
/// - stopped: if some child completed stopped and none failed.
///
/// Values of the other children are dropped before an error or stopped is
/// forwarded.
///
/// # Cancellation
/// The children observe a stop source inside the operation. It is triggered
/// by the first child that fails (error or panic) or stops — stopping its
/// siblings — and by the receiver's own stop token, to which it is chained
/// with a [`StopCallback`](crate::StopCallback) while the operation runs.
/// When no child can fail or be stopped (every child has
/// [`SENDS_STOPPED`](Sender::SENDS_STOPPED)` = false` and the error type is
/// uninhabited, like [`Infallible`](core::convert::Infallible)) that machinery
/// is skipped and the children observe the receiver's token directly. (Stable
/// Rust can only tell that a zero-sized error type is uninhabited, and
/// cannot drop the unused fields from the type.)
///
/// # Panics
/// A panic in a child (delivered to `when_all` through
/// [`Receiver::set_panic`]) counts like an error: the first failure wins and
/// stops the siblings; the panic is delivered with its original payload,
/// through `set_panic`, once every child has completed. A panic that loses
/// to an earlier error is dropped. When no child can fail or be stopped (see
/// above) a panic does not stop the siblings early.
///
/// # Example
/// ```
/// use exec_core::{just, sync_wait, when_all, SenderExt};
///
/// let both = when_all(just(20).then(|x| x + 1), just("answer"));
/// assert_eq!(sync_wait(both), Ok(Some((21, "answer"))));
///
/// // Any arity from 2 to 12, one flat tuple:
/// let three = exec_core::when_all!(just(1), just('b'), just(3.0));
/// assert_eq!(sync_wait(three), Ok(Some((1, 'b', 3.0))));
/// ```
///
/// # See also
/// [`when_all!`](crate::when_all!), [`when_all_vec`](crate::when_all_vec),
/// [`when_any`](fn@crate::when_any), [`stop_when`](crate::stop_when).
pub fn when_all<A, B>(a: A, b: B) -> WhenAll<(A, B)>
where
    A: Sender,
    B: Sender<Error = A::Error>,
{
    WhenAll::new((a, b))
}

/// Runs 2 to 12 senders concurrently and completes with all their values in
/// one flat tuple: `when_all!(a, b, c)` sends `(A, B, C)`.
///
/// Expands to [`WhenAll::new((a, b, c))`](crate::WhenAll::new); see
/// [`when_all`](fn@crate::when_all) for the semantics.
///
/// # Completion
/// As [`when_all`](fn@crate::when_all): all values, or the first error (or
/// panic), or stopped; exactly once, after every child completed.
///
/// # Cancellation
/// As [`when_all`](fn@crate::when_all).
///
/// # Panics
/// As [`when_all`](fn@crate::when_all). More than 12 children do not
/// compile.
///
/// # Example
/// ```
/// use exec_core::{just, sync_wait, when_all};
///
/// let s = when_all!(just(1), just(2), just(3), just(4));
/// assert_eq!(sync_wait(s), Ok(Some((1, 2, 3, 4))));
/// ```
///
/// # See also
/// [`when_all`](fn@crate::when_all), [`when_any!`](crate::when_any!).
#[macro_export]
macro_rules! when_all {
    ($($sender:expr),+ $(,)?) => {
        $crate::WhenAll::new(($($sender,)+))
    };
}

/// Sender for the [`when_all`](fn@when_all) function and the
/// [`when_all!`](crate::when_all!) macro: a tuple of 2 to 12 children.
#[must_use = "senders do nothing unless connected and started"]
#[derive(Clone, Debug)]
pub struct WhenAll<C> {
    children: C,
}

impl<C> WhenAll<C> {
    /// Joins a tuple of 2 to 12 senders with one error type. It is a
    /// [`Sender`] only for such tuples. See [`when_all`](fn@when_all).
    ///
    /// ```
    /// use exec_core::{just, sync_wait, WhenAll};
    /// assert_eq!(sync_wait(WhenAll::new((just(1), just(2)))), Ok(Some((1, 2))));
    /// ```
    pub fn new(children: C) -> Self {
        WhenAll { children }
    }
}

/// What the children of a `when_all` share: join state, outcome, their
/// value slots and the downstream receiver.
pub struct WhenAllState<V, E, R> {
    join: Join<Self>,
    outcome: Outcome<E>,
    /// A tuple of [`Slot`]s, slot `i` written only by child `i`.
    values: V,
    receiver: Downstream<R>,
}

impl<V, E, R> core::fmt::Debug for WhenAllState<V, E, R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("WhenAllState")
            .field("join", &self.join)
            .finish_non_exhaustive()
    }
}

// SAFETY: children on other threads touch the state only through atomics
// and through cells the join protocol makes exclusive (each value slot is
// written by its own child, the failure by the child that claimed it, the
// receiver taken by the completer). Values, errors and the receiver move
// across threads, hence `Send`.
unsafe impl<V: Send, E: Send, R: Send> Sync for WhenAllState<V, E, R> {}

impl<V: Slots, E, R: Receiver<V::Values, E>> OutcomeParent for WhenAllState<V, E, R> {
    type Error = E;
    fn outcome(&self) -> &Outcome<E> {
        &self.outcome
    }
}

impl<V: Slots, E, R: Receiver<V::Values, E>> JoinParent for WhenAllState<V, E, R> {
    fn join(&self) -> &Join<Self> {
        &self.join
    }

    unsafe fn complete(this: ParentRef<Self>) {
        let state = this.get();
        // SAFETY: we are the completer (contract of `complete`): every child
        // has arrived, so the cells are ours.
        let (receiver, values, verdict) = unsafe {
            (
                state.receiver.take(),
                state.values.take(),
                state.outcome.take(),
            )
        };
        // `state` is not touched below: the receiver may free it.
        match verdict {
            Verdict::Values => {
                receiver.set_value(values.expect("exec: when_all child sent no value"))
            }
            Verdict::Stopped => {
                drop(values);
                receiver.set_stopped()
            }
            Verdict::Failed(failure) => {
                drop(values);
                failure.deliver(receiver)
            }
        }
    }
}

/// Operation state of [`WhenAll`]: the shared state and, in separate
/// structurally pinned fields, the children's operation states.
pub struct WhenAllOp<P, C> {
    state: P,
    children: C,
    _pin: PhantomPinned,
}

impl<P, C> core::fmt::Debug for WhenAllOp<P, C> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("WhenAllOp").finish_non_exhaustive()
    }
}

/// The receiver child `I` of a [`WhenAll`] is connected to.
pub struct WhenAllReceiver<P, const I: usize> {
    state: ParentRef<P>,
}

impl<P, const I: usize> core::fmt::Debug for WhenAllReceiver<P, I> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("WhenAllReceiver")
            .field("index", &I)
            .finish_non_exhaustive()
    }
}

impl<V, E, R, T, const I: usize> Receiver<T, E> for WhenAllReceiver<WhenAllState<V, E, R>, I>
where
    V: Slots + SlotAt<I, Value = T>,
    R: Receiver<V::Values, E>,
{
    fn set_value(self, value: T) {
        // SAFETY: slot `I` belongs to this child, written once, before it
        // arrives.
        unsafe { self.state.get().values.slot().put(value) };
        // SAFETY: this child holds a reference until now.
        unsafe { Join::arrive(self.state) };
    }
    fn set_error(self, error: E) {
        // SAFETY: this child holds a reference until now.
        unsafe { arrive_without_value(self.state, Some(Failure::Error(error))) };
    }
    fn set_stopped(self) {
        // SAFETY: this child holds a reference until now.
        unsafe { arrive_without_value(self.state, None) };
    }
    fn set_panic(self, payload: PanicPayload) {
        // SAFETY: this child holds a reference until now.
        unsafe { arrive_without_value(self.state, Some(Failure::Panic(payload))) };
    }
    fn env(&self) -> impl Env<'_> {
        self.state.get().join.child_env()
    }
}

/// A tuple of value slots, one per child.
pub trait Slots {
    /// The tuple of values.
    type Values;
    /// Empty slots.
    fn empty() -> Self;
    /// All values if every slot is filled; otherwise drops what is there.
    ///
    /// # Safety
    /// Only the completer calls this.
    unsafe fn take(&self) -> Option<Self::Values>;
}

/// Slot `I` of a tuple of value slots.
pub trait SlotAt<const I: usize> {
    /// The value type of slot `I`.
    type Value;
    /// Slot `I`.
    fn slot(&self) -> &Slot<Self::Value>;
}

/// The state type of a `when_all` over the senders listed.
macro_rules! state_ty {
    ([$($S:ident),+], $E:ty, $R:ty) => {
        WhenAllState<($(Slot<<$S as Sender>::Output>,)+), $E, $R>
    };
}

macro_rules! slot_at {
    ($all:tt; $($i:tt $T:ident),+) => {
        $( slot_at!(@one $all $i $T); )+
    };
    (@one [$($U:ident),+] $i:tt $T:ident) => {
        impl<$($U),+> SlotAt<$i> for ($(Slot<$U>,)+) {
            type Value = $T;
            #[inline]
            fn slot(&self) -> &Slot<$T> {
                &self.$i
            }
        }
    };
}

macro_rules! when_all_tuple {
    ($n:literal; $($i:tt $S:ident $O:ident $T:ident),+) => {
        when_all_tuple!(@impl $n [$($S),+]; $($i $S $O $T),+);
    };
    (@impl $n:literal $all:tt; $($i:tt $S:ident $O:ident $T:ident),+) => {
        impl<$($T),+> Slots for ($(Slot<$T>,)+) {
            type Values = ($($T,)+);
            fn empty() -> Self {
                ($(Slot::<$T>::new(),)+)
            }
            #[allow(non_snake_case)]
            unsafe fn take(&self) -> Option<Self::Values> {
                // SAFETY: forwarded from the caller.
                let all = unsafe { ($(self.$i.take(),)+) };
                match all {
                    ($(Some($T),)+) => Some(($($T,)+)),
                    _ => None,
                }
            }
        }

        slot_at!([$($T),+]; $($i $T),+);

        impl<$($S: Sender<Error = E>,)+ E> Sender for WhenAll<($($S,)+)> {
            type Output = ($($S::Output,)+);
            type Error = E;
            const SENDS_STOPPED: bool = false $(|| $S::SENDS_STOPPED)+;
        }

        impl<$($S,)+ E, R> SenderTo<R> for WhenAll<($($S,)+)>
        where
            $($S: Sender<Error = E>
                + SenderTo<WhenAllReceiver<state_ty!($all, E, R), $i>>,)+
            R: Receiver<($($S::Output,)+), E>,
        {
            type Operation = WhenAllOp<
                state_ty!($all, E, R),
                ($(ChildOp<$S, <$S as SenderTo<
                    WhenAllReceiver<state_ty!($all, E, R), $i>,
                >>::Operation>,)+),
            >;

            fn connect(self, receiver: R) -> Self::Operation {
                let stoppable = <Self as Sender>::SENDS_STOPPED || !uninhabited::<E>();
                WhenAllOp {
                    state: WhenAllState {
                        join: Join::new($n, stoppable),
                        outcome: Outcome::new(),
                        values: Slots::empty(),
                        receiver: Downstream::new(receiver),
                    },
                    children: ($(ChildOp::new(self.children.$i),)+),
                    _pin: PhantomPinned,
                }
            }
        }

        impl<$($S, $O,)+ E, R> OperationState
            for WhenAllOp<state_ty!($all, E, R), ($(ChildOp<$S, $O>,)+)>
        where
            $($S: Sender<Error = E>
                + SenderTo<WhenAllReceiver<state_ty!($all, E, R), $i>, Operation = $O>,
            $O: OperationState,)+
            R: Receiver<($($S::Output,)+), E>,
        {
            unsafe fn start(self: Pin<&mut Self>) {
                // SAFETY: we never move out of the op: `state` is only
                // shared (children refer to it), each child op is pinned in
                // its own field.
                let this: *mut Self = unsafe { self.get_unchecked_mut() };
                // SAFETY: `this` is valid; `state` is never moved.
                let state = unsafe { Pin::new_unchecked(&(*this).state) };
                // SAFETY: called once, before any child starts; the token
                // comes from the receiver we will complete.
                unsafe {
                    state
                        .receiver
                        .with(|r| state.join.start(state, &r.env()))
                };
                $(
                    // SAFETY: the op is started, so pinned and kept alive
                    // until it completes, which is after this child
                    // completed (it holds a reference). After the last
                    // child's `start` we touch nothing: it may complete us.
                    unsafe {
                        let receiver = WhenAllReceiver::<_, $i> {
                            state: ParentRef::new(state),
                        };
                        Pin::new_unchecked(&mut (*this).children.$i).start(receiver);
                    }
                )+
            }
        }
    };
}

when_all_tuple!(2; 0 S0 O0 T0, 1 S1 O1 T1);
when_all_tuple!(3; 0 S0 O0 T0, 1 S1 O1 T1, 2 S2 O2 T2);
when_all_tuple!(4; 0 S0 O0 T0, 1 S1 O1 T1, 2 S2 O2 T2, 3 S3 O3 T3);
when_all_tuple!(5; 0 S0 O0 T0, 1 S1 O1 T1, 2 S2 O2 T2, 3 S3 O3 T3, 4 S4 O4 T4);
when_all_tuple!(6; 0 S0 O0 T0, 1 S1 O1 T1, 2 S2 O2 T2, 3 S3 O3 T3, 4 S4 O4 T4, 5 S5 O5 T5);
when_all_tuple!(7; 0 S0 O0 T0, 1 S1 O1 T1, 2 S2 O2 T2, 3 S3 O3 T3, 4 S4 O4 T4, 5 S5 O5 T5,
    6 S6 O6 T6);
when_all_tuple!(8; 0 S0 O0 T0, 1 S1 O1 T1, 2 S2 O2 T2, 3 S3 O3 T3, 4 S4 O4 T4, 5 S5 O5 T5,
    6 S6 O6 T6, 7 S7 O7 T7);
when_all_tuple!(9; 0 S0 O0 T0, 1 S1 O1 T1, 2 S2 O2 T2, 3 S3 O3 T3, 4 S4 O4 T4, 5 S5 O5 T5,
    6 S6 O6 T6, 7 S7 O7 T7, 8 S8 O8 T8);
when_all_tuple!(10; 0 S0 O0 T0, 1 S1 O1 T1, 2 S2 O2 T2, 3 S3 O3 T3, 4 S4 O4 T4, 5 S5 O5 T5,
    6 S6 O6 T6, 7 S7 O7 T7, 8 S8 O8 T8, 9 S9 O9 T9);
when_all_tuple!(11; 0 S0 O0 T0, 1 S1 O1 T1, 2 S2 O2 T2, 3 S3 O3 T3, 4 S4 O4 T4, 5 S5 O5 T5,
    6 S6 O6 T6, 7 S7 O7 T7, 8 S8 O8 T8, 9 S9 O9 T9, 10 S10 O10 T10);
when_all_tuple!(12; 0 S0 O0 T0, 1 S1 O1 T1, 2 S2 O2 T2, 3 S3 O3 T3, 4 S4 O4 T4, 5 S5 O5 T5,
    6 S6 O6 T6, 7 S7 O7 T7, 8 S8 O8 T8, 9 S9 O9 T9, 10 S10 O10 T10, 11 S11 O11 T11);

#[cfg(all(test, loom))]
mod loom_tests {
    //! The completion race: two children completing on two threads while a
    //! stop request arrives from a third (through the forwarding callback).
    use super::*;
    use crate::{StopSource, StopToken};
    use ::loom::sync::atomic::AtomicUsize;
    use ::loom::sync::{Arc, Mutex};
    use alloc::boxed::Box;
    use core::convert::Infallible;

    type Complete<T> = Box<dyn FnOnce(Option<T>) + Send>;

    /// A child completed by hand: `Some(v)` = value, `None` = stopped.
    struct Remote<T> {
        slot: Arc<Mutex<Option<Complete<T>>>>,
    }
    struct RemoteOp<T, R> {
        slot: Arc<Mutex<Option<Complete<T>>>>,
        receiver: Option<R>,
        _pin: PhantomPinned,
    }
    impl<T> Sender for Remote<T> {
        type Output = T;
        type Error = Infallible;
    }
    impl<T: 'static, R: Receiver<T, Infallible> + Send + 'static> SenderTo<R> for Remote<T> {
        type Operation = RemoteOp<T, R>;
        fn connect(self, receiver: R) -> RemoteOp<T, R> {
            RemoteOp {
                slot: self.slot,
                receiver: Some(receiver),
                _pin: PhantomPinned,
            }
        }
    }
    impl<T: 'static, R: Receiver<T, Infallible> + Send + 'static> OperationState for RemoteOp<T, R> {
        unsafe fn start(self: Pin<&mut Self>) {
            // SAFETY: nothing is structurally pinned.
            let this = unsafe { self.get_unchecked_mut() };
            let r = this.receiver.take().unwrap();
            *this.slot.lock().unwrap() = Some(Box::new(move |v| match v {
                Some(v) => r.set_value(v),
                None => r.set_stopped(),
            }));
        }
    }

    #[derive(Debug, PartialEq)]
    enum Seen {
        Value((u32, u32)),
        Stopped,
        Other,
    }

    struct Outer {
        source: Arc<StopSource>,
        seen: Arc<Mutex<Option<Seen>>>,
        completions: Arc<AtomicUsize>,
    }
    struct OuterEnv<'a>(&'a StopSource);
    impl<'a> Env<'a> for OuterEnv<'a> {
        fn stop_token(&self) -> StopToken<'a> {
            self.0.token()
        }
    }
    impl Outer {
        fn record(self, s: Seen) {
            self.completions.fetch_add(1, Ordering::Relaxed);
            *self.seen.lock().unwrap() = Some(s);
        }
    }
    use crate::loom::sync::atomic::Ordering;
    impl Receiver<(u32, u32), Infallible> for Outer {
        fn set_value(self, v: (u32, u32)) {
            self.record(Seen::Value(v))
        }
        fn set_error(self, e: Infallible) {
            match e {}
        }
        fn set_stopped(self) {
            self.record(Seen::Stopped)
        }
        fn set_panic(self, _: PanicPayload) {
            self.record(Seen::Other)
        }
        fn env(&self) -> impl Env<'_> {
            OuterEnv(&self.source)
        }
    }

    fn race(a_value: bool) {
        ::loom::model(move || {
            let source = Arc::new(StopSource::new());
            let seen = Arc::new(Mutex::new(None));
            let completions = Arc::new(AtomicUsize::new(0));
            let sa = Arc::new(Mutex::new(None));
            let sb = Arc::new(Mutex::new(None));
            let s = when_all(Remote { slot: sa.clone() }, Remote { slot: sb.clone() });
            let mut op = Box::pin(s.connect(Outer {
                source: source.clone(),
                seen: seen.clone(),
                completions: completions.clone(),
            }));
            // SAFETY: `op` is dropped only after every thread joined, when
            // the operation has completed.
            unsafe { op.as_mut().start() };
            let ta = ::loom::thread::spawn(move || {
                let f = sa.lock().unwrap().take().unwrap();
                f(if a_value { Some(1) } else { None });
            });
            let tb = ::loom::thread::spawn(move || {
                let f = sb.lock().unwrap().take().unwrap();
                f(Some(2));
            });
            source.request_stop();
            ta.join().unwrap();
            tb.join().unwrap();
            assert_eq!(completions.load(Ordering::Relaxed), 1);
            let expected = if a_value {
                Seen::Value((1, 2))
            } else {
                Seen::Stopped
            };
            assert_eq!(seen.lock().unwrap().take(), Some(expected));
            drop(op);
        });
    }

    /// Values win over a concurrent stop request; exactly one completion.
    #[test]
    fn loom_values_race_stop_request() {
        race(true);
    }

    /// A stopped child, a value and a stop request: stopped, once.
    #[test]
    fn loom_stopped_races_value_and_stop_request() {
        race(false);
    }

    /// A child that completes (stopped) only when stop is requested on its
    /// token, through a stop callback it registers at start.
    struct OnRequest;
    struct OnRequestOp<R: Receiver<u32, Infallible>> {
        receiver: Arc<Mutex<Option<R>>>,
        callback: Option<crate::StopCallback<'static, StopIt<R>>>,
        _pin: PhantomPinned,
    }
    struct StopIt<R>(Arc<Mutex<Option<R>>>);
    impl<R: Receiver<u32, Infallible>> crate::OnStop for StopIt<R> {
        fn on_stop(self) {
            let r = self.0.lock().unwrap().take();
            if let Some(r) = r {
                r.set_stopped();
            }
        }
    }
    impl Sender for OnRequest {
        type Output = u32;
        type Error = Infallible;
    }
    impl<R: Receiver<u32, Infallible> + Send + 'static> SenderTo<R> for OnRequest {
        type Operation = OnRequestOp<R>;
        fn connect(self, receiver: R) -> OnRequestOp<R> {
            OnRequestOp {
                receiver: Arc::new(Mutex::new(Some(receiver))),
                callback: None,
                _pin: PhantomPinned,
            }
        }
    }
    impl<R: Receiver<u32, Infallible> + Send + 'static> OperationState for OnRequestOp<R> {
        unsafe fn start(self: Pin<&mut Self>) {
            // SAFETY: `callback` is pinned in place once written (never
            // moved; dropped in place with the op).
            let this = unsafe { self.get_unchecked_mut() };
            let token = {
                let r = this.receiver.lock().unwrap();
                // SAFETY: the token's source (the parent's) outlives this
                // op's callback: the op is dropped after it completed.
                unsafe { r.as_ref().unwrap().env().stop_token().detach() }
            };
            this.callback = Some(crate::StopCallback::new(
                token,
                StopIt(this.receiver.clone()),
            ));
            // SAFETY: as above.
            let cb = unsafe { Pin::new_unchecked(this.callback.as_mut().unwrap()) };
            cb.register();
        }
    }

    /// Does nothing when stop is requested.
    struct Ignore;
    impl crate::OnStop for Ignore {
        fn on_stop(self) {}
    }
    type Registration = core::pin::Pin<Box<crate::StopCallback<'static, Ignore>>>;

    /// A child that registers a (no-op) stop callback at start — linking
    /// the `when_all`'s forwarder to the outer source — and completes by
    /// hand with a value, dropping its registration first.
    struct Registering {
        slot: Arc<Mutex<Option<Complete<u32>>>>,
    }
    impl Sender for Registering {
        type Output = u32;
        type Error = Infallible;
    }
    impl<R: Receiver<u32, Infallible> + Send + 'static> SenderTo<R> for Registering {
        type Operation = RegisteringOp<R>;
        fn connect(self, receiver: R) -> Self::Operation {
            RegisteringOp {
                slot: self.slot,
                receiver: Some(RegisteringReceiver {
                    receiver,
                    registration: None,
                }),
                _pin: PhantomPinned,
            }
        }
    }
    struct RegisteringOp<R> {
        slot: Arc<Mutex<Option<Complete<u32>>>>,
        receiver: Option<RegisteringReceiver<R>>,
        _pin: PhantomPinned,
    }
    /// Holds the registration until completion drops it.
    struct RegisteringReceiver<R> {
        receiver: R,
        registration: Option<Registration>,
    }
    impl<R: Receiver<u32, Infallible>> RegisteringReceiver<R> {
        fn finish(mut self) -> R {
            drop(self.registration.take());
            self.receiver
        }
    }
    impl<R: Receiver<u32, Infallible>> Receiver<u32, Infallible> for RegisteringReceiver<R> {
        fn set_value(self, v: u32) {
            self.finish().set_value(v)
        }
        fn set_error(self, e: Infallible) {
            match e {}
        }
        fn set_stopped(self) {
            self.finish().set_stopped()
        }
        fn set_panic(self, p: PanicPayload) {
            self.finish().set_panic(p)
        }
        fn env(&self) -> impl Env<'_> {
            self.receiver.env()
        }
    }
    impl<R: Receiver<u32, Infallible> + Send + 'static> OperationState for RegisteringOp<R> {
        unsafe fn start(self: Pin<&mut Self>) {
            // SAFETY: nothing is structurally pinned.
            let this = unsafe { self.get_unchecked_mut() };
            let mut r = this.receiver.take().unwrap();
            // SAFETY: the token's source (the `when_all`'s) outlives the
            // registration: the receiver drops it before completing.
            let token = unsafe { r.receiver.env().stop_token().detach() };
            let mut cb = Box::pin(crate::StopCallback::new(token, Ignore));
            cb.as_mut().register();
            r.registration = Some(cb);
            *this.slot.lock().unwrap() = Some(Box::new(move |v| match v {
                Some(v) => r.set_value(v),
                None => r.set_stopped(),
            }));
        }
    }

    /// The last child to arrive may complete without decrementing the
    /// count (it finds it at 1) while a stop request on the outer source
    /// runs the forwarder, which a registration made a real callback:
    /// values win, exactly one completion, and the value slots are read
    /// after both children wrote them (loom checks the cells).
    #[test]
    fn loom_last_arrival_races_forwarder() {
        ::loom::model(|| {
            let source = Arc::new(StopSource::new());
            let seen = Arc::new(Mutex::new(None));
            let completions = Arc::new(AtomicUsize::new(0));
            let sa = Arc::new(Mutex::new(None));
            let sb = Arc::new(Mutex::new(None));
            let s = when_all(
                Registering { slot: sa.clone() },
                Remote { slot: sb.clone() },
            );
            let mut op = Box::pin(s.connect(Outer {
                source: source.clone(),
                seen: seen.clone(),
                completions: completions.clone(),
            }));
            // SAFETY: `op` is dropped only after every thread joined, when
            // the operation has completed.
            unsafe { op.as_mut().start() };
            let fa = sa.lock().unwrap().take().unwrap();
            let fb = sb.lock().unwrap().take().unwrap();
            let ta = ::loom::thread::spawn(move || fa(Some(1)));
            let ts = ::loom::thread::spawn(move || {
                source.request_stop();
            });
            fb(Some(2));
            ta.join().unwrap();
            ts.join().unwrap();
            assert_eq!(completions.load(Ordering::Relaxed), 1);
            assert_eq!(seen.lock().unwrap().take(), Some(Seen::Value((1, 2))));
            drop(op);
        });
    }

    /// A nested child registers with its `when_all`'s chained stop source
    /// (linking it to the outer source) while stop is requested on the
    /// outer source from another thread and the other child completes on
    /// a third: the stop reaches the registered child either through the
    /// forwarder or, if the request came first, at once; the `when_all`
    /// completes stopped, exactly once.
    #[test]
    fn loom_link_races_outer_stop() {
        ::loom::model(|| {
            let source = Arc::new(StopSource::new());
            let seen = Arc::new(Mutex::new(None));
            let completions = Arc::new(AtomicUsize::new(0));
            let sb = Arc::new(Mutex::new(None));
            let s = when_all(OnRequest, Remote { slot: sb.clone() });
            let mut op = Box::pin(s.connect(Outer {
                source: source.clone(),
                seen: seen.clone(),
                completions: completions.clone(),
            }));
            let s2 = source.clone();
            let ts = ::loom::thread::spawn(move || {
                s2.request_stop();
            });
            // SAFETY: `op` is dropped only after every thread joined, when
            // the operation has completed.
            unsafe { op.as_mut().start() };
            let f = sb.lock().unwrap().take().unwrap();
            let tb = ::loom::thread::spawn(move || f(Some(2)));
            ts.join().unwrap();
            tb.join().unwrap();
            assert_eq!(completions.load(Ordering::Relaxed), 1);
            assert_eq!(seen.lock().unwrap().take(), Some(Seen::Stopped));
            drop(op);
        });
    }
}
