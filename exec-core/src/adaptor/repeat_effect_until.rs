//! `repeat_effect_until` and the loop `repeat_n` shares: run a clone of a
//! sender again and again in one operation state, without growing the stack.
//!
//! # The loop
//! Each iteration's operation is connected in `child` (dropping the previous
//! one in place) and started. An iteration that completes inside its own
//! `start` only stashes its outcome; the loop, once `start` has returned,
//! picks it up and goes round again — so a sender that always completes
//! inline iterates in a loop, not by recursion. An iteration that completes
//! later runs the loop from its completion. `phase` decides which of the two
//! continues, exactly as in `let_value` (see `let_value.rs`).

use core::fmt;
use core::marker::{PhantomData, PhantomPinned};
use core::pin::Pin;

use crate::adaptor::probe::SendProbe;
use crate::env::CapturedEnv;
use crate::loom::cell::UnsafeCell;
use crate::loom::sync::atomic::{AtomicU8, Ordering};
use crate::{
    Env, ErasedParentRef, Notify, OperationState, PanicPayload, ParentRef, Receiver, Sender,
    SenderTo, catch_unwind,
};

/// Sender for the [`repeat_effect_until`](crate::SenderExt::repeat_effect_until) method.
#[must_use = "senders do nothing unless connected and started"]
#[derive(Clone, Debug)]
pub struct RepeatEffectUntil<S, P> {
    sender: S,
    pred: P,
}

impl<S, P> RepeatEffectUntil<S, P> {
    pub(crate) fn new(sender: S, pred: P) -> Self {
        RepeatEffectUntil { sender, pred }
    }
}

impl<S: Sender, P: FnMut(S::Output) -> bool> Sender for RepeatEffectUntil<S, P> {
    type Output = ();
    type Error = S::Error;
    const SENDS_STOPPED: bool = true;
}

impl<S, P, R> SenderTo<R> for RepeatEffectUntil<S, P>
where
    S: Sender
        + Clone
        + SenderTo<RepeatReceiver<<S as Sender>::Output, <S as Sender>::Error, (S, Until<P>, R)>>,
    P: FnMut(S::Output) -> bool,
    R: Receiver<(), S::Error>,
{
    type Operation = RepeatOp<S, Until<P>, R>;
    fn connect(self, receiver: R) -> Self::Operation {
        RepeatOp::new(self.sender, Until(self.pred), receiver)
    }
}

/// When a repeat loop ends. Implemented by [`Until`]
/// (`repeat_effect_until`) and [`Times`](crate::Times) (`repeat_n`); public
/// only because it appears in their operation types.
pub trait RepeatControl<T> {
    /// Whether to finish before running the sender at all.
    fn done_before_first(&mut self) -> bool;
    /// An iteration sent `value`: whether to finish now.
    fn done_after(&mut self, value: T) -> bool;
}

/// The [`RepeatControl`] of `repeat_effect_until`: finish once the predicate
/// returns `true` for an iteration's value.
#[derive(Clone, Debug)]
pub struct Until<P>(P);

impl<T, P: FnMut(T) -> bool> RepeatControl<T> for Until<P> {
    fn done_before_first(&mut self) -> bool {
        false
    }
    fn done_after(&mut self, value: T) -> bool {
        (self.0)(value)
    }
}

/// How an iteration completed.
enum Iteration<T, E> {
    Value(T),
    Error(E),
    Stopped,
    Panic(PanicPayload),
}

/// How the whole loop completes.
enum Finish<E> {
    Value,
    Error(E),
    Stopped,
    Panic(PanicPayload),
}

const IDLE: u8 = 0;
const IN_START: u8 = 1;
const DEFERRED: u8 = 2;

/// The receiver each iteration is connected to.
///
/// `M` is `(S, C, R)` and only decides when it may cross threads.
pub struct RepeatReceiver<T, E, M> {
    parent: ErasedParentRef<Iteration<T, E>>,
    env: CapturedEnv,
    _marker: PhantomData<M>,
}

impl<T, E, M> fmt::Debug for RepeatReceiver<T, E, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RepeatReceiver").finish_non_exhaustive()
    }
}

// SAFETY: completing an iteration on another thread moves `T`/`E` there,
// runs the control (`C`), drops the iteration's operation, clones `S`,
// connects and starts the next iteration and may complete `R` there: all
// `Send` by the bounds. The iteration's operation cannot be named here (it
// contains this receiver: a cycle through `SenderTo`), so, as for
// `LetReceiver`, the bound asks whether the operation `S` makes for a
// `SendProbe` is `Send` (see `adaptor/probe.rs`).
unsafe impl<T, E, S, C, R> Send for RepeatReceiver<T, E, (S, C, R)>
where
    T: Send,
    E: Send,
    S: Send + SenderTo<SendProbe<T, E>>,
    <S as SenderTo<SendProbe<T, E>>>::Operation: Send,
    C: Send,
    R: Send,
{
}
// SAFETY: through `&RepeatReceiver` only the captured environment (a `Sync`
// stop token) is reachable.
unsafe impl<T, E, M> Sync for RepeatReceiver<T, E, M> {}

impl<T, E, M> Receiver<T, E> for RepeatReceiver<T, E, M> {
    fn set_value(self, value: T) {
        self.parent.notify(Iteration::Value(value))
    }
    fn set_error(self, error: E) {
        self.parent.notify(Iteration::Error(error))
    }
    fn set_stopped(self) {
        self.parent.notify(Iteration::Stopped)
    }
    fn set_panic(self, payload: PanicPayload) {
        self.parent.notify(Iteration::Panic(payload))
    }
    fn env(&self) -> impl Env<'_> {
        self.env
    }
}

type Recv<S, C, R> = RepeatReceiver<<S as Sender>::Output, <S as Sender>::Error, (S, C, R)>;

/// Operation state of [`RepeatEffectUntil`] and [`RepeatN`](crate::RepeatN).
pub struct RepeatOp<S, C, R>
where
    S: SenderTo<Recv<S, C, R>>,
{
    inner: RepeatInner<S, C, R>,
    _pin: PhantomPinned,
}

impl<S: SenderTo<Recv<S, C, R>>, C, R> fmt::Debug for RepeatOp<S, C, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RepeatOp").finish_non_exhaustive()
    }
}

struct RepeatInner<S, C, R>
where
    S: SenderTo<Recv<S, C, R>>,
{
    /// `IDLE`/`IN_START`/`DEFERRED`: who continues after an iteration.
    phase: AtomicU8,
    /// The downstream environment, captured at `start`.
    env: UnsafeCell<CapturedEnv>,
    /// The sender cloned for every iteration; dropped when the loop ends.
    sender: UnsafeCell<Option<S>>,
    control: UnsafeCell<Option<C>>,
    receiver: UnsafeCell<Option<R>>,
    /// An inline iteration's outcome, handed to the loop by `phase`.
    stash: UnsafeCell<Option<Iteration<S::Output, S::Error>>>,
    /// Structurally pinned: the current iteration's operation.
    child: UnsafeCell<Option<S::Operation>>,
}

impl<S, C, R> RepeatOp<S, C, R>
where
    S: SenderTo<Recv<S, C, R>>,
{
    pub(crate) fn new(sender: S, control: C, receiver: R) -> Self {
        RepeatOp {
            inner: RepeatInner {
                phase: AtomicU8::new(IDLE),
                env: UnsafeCell::new(CapturedEnv::empty()),
                sender: UnsafeCell::new(Some(sender)),
                control: UnsafeCell::new(Some(control)),
                receiver: UnsafeCell::new(Some(receiver)),
                stash: UnsafeCell::new(None),
                child: UnsafeCell::new(None),
            },
            _pin: PhantomPinned,
        }
    }
}

impl<S, C, R> RepeatInner<S, C, R>
where
    S: Clone + SenderTo<Recv<S, C, R>>,
    C: RepeatControl<S::Output>,
    R: Receiver<(), S::Error>,
{
    /// Drops what the loop holds, then completes downstream. Touches nothing
    /// afterwards. (Takes a raw pointer: a `&Self` argument would assert the
    /// op is alive for the whole call, but completing may free it.)
    fn finish(this: *const Self, how: Finish<S::Error>) {
        // SAFETY: `this` is the started op (alive until this completion).
        let this = unsafe { &*this };
        // SAFETY: only the single runner of the loop gets here; no iteration
        // is running (the last one completed).
        let receiver = unsafe {
            this.child.with_mut(|c| *c = None);
            this.sender.with_mut(|s| *s = None);
            this.control.with_mut(|c| *c = None);
            this.receiver.with_mut(|r| (*r).take())
        };
        let receiver = receiver.expect("repeat: completed twice");
        match how {
            Finish::Value => receiver.set_value(()),
            Finish::Error(e) => receiver.set_error(e),
            Finish::Stopped => receiver.set_stopped(),
            Finish::Panic(p) => receiver.set_panic(p),
        }
    }

    /// Runs the loop: handles `done` (the outcome of the iteration that just
    /// completed, if any), then starts iterations until one completes later
    /// or the loop finishes.
    fn run(this: ParentRef<Self>, mut done: Option<Iteration<S::Output, S::Error>>) {
        let inner = this.get();
        loop {
            if let Some(it) = done.take() {
                // SAFETY: the loop runner owns `child` and `control` between
                // iterations; the finished iteration no longer touches itself.
                unsafe { inner.child.with_mut(|c| *c = None) };
                match it {
                    Iteration::Value(v) => {
                        let control = inner.control.with_mut(|c| c);
                        // SAFETY: as above.
                        let r = catch_unwind(|| unsafe {
                            (*control).as_mut().expect("repeat: control").done_after(v)
                        });
                        match r {
                            Ok(true) => return Self::finish(inner, Finish::Value),
                            Ok(false) => {}
                            Err(p) => return Self::finish(inner, Finish::Panic(p)),
                        }
                    }
                    Iteration::Error(e) => return Self::finish(inner, Finish::Error(e)),
                    Iteration::Stopped => return Self::finish(inner, Finish::Stopped),
                    Iteration::Panic(p) => return Self::finish(inner, Finish::Panic(p)),
                }
            }
            // SAFETY: written once at start, before any iteration.
            let env = inner.env.with(|e| unsafe { *e });
            if env.stop_token().stop_requested() {
                return Self::finish(inner, Finish::Stopped);
            }
            let sender = inner.sender.with(|s| s);
            // SAFETY: the loop runner owns the template between iterations.
            let next = match catch_unwind(|| unsafe { (*sender).as_ref().expect("repeat").clone() })
            {
                Ok(s) => s,
                Err(p) => return Self::finish(inner, Finish::Panic(p)),
            };
            // SAFETY: the op is started and completes only after this
            // iteration has completed (consuming the receiver).
            let parent = unsafe { ErasedParentRef::new(this.get_pin()) };
            let op = next.connect(RepeatReceiver {
                parent,
                env,
                _marker: PhantomData,
            });
            // SAFETY: no iteration is running: `child` is ours; the new
            // operation stays pinned there until the next round drops it,
            // after it has completed.
            let child: *mut S::Operation = unsafe {
                inner.child.with_mut(|c| {
                    *c = Some(op);
                    (*c).as_mut().expect("just written") as *mut _
                })
            };
            inner.phase.store(IN_START, Ordering::Relaxed);
            // SAFETY: started once, kept pinned and alive as said above.
            unsafe { OperationState::start(Pin::new_unchecked(&mut *child)) };
            if inner
                .phase
                .compare_exchange(IN_START, IDLE, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                // Completes later; its completion runs the loop. The op may
                // be gone from here on.
                return;
            }
            // SAFETY: completed inline; `phase` handed the stash to us.
            done = inner.stash.with_mut(|s| unsafe { (*s).take() });
            debug_assert!(done.is_some());
        }
    }
}

impl<S, C, R> Notify<Iteration<S::Output, S::Error>> for RepeatInner<S, C, R>
where
    S: Clone + SenderTo<Recv<S, C, R>>,
    C: RepeatControl<S::Output>,
    R: Receiver<(), S::Error>,
{
    fn notify(this: ParentRef<Self>, it: Iteration<S::Output, S::Error>) {
        let inner = this.get();
        // SAFETY: an iteration completes once; until `phase` hands over this
        // is the only access to the stash.
        inner.stash.with_mut(|s| unsafe { *s = Some(it) });
        if inner
            .phase
            .compare_exchange(IN_START, DEFERRED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            return;
        }
        // SAFETY: the loop is not running (`IDLE`): the stash is ours.
        let it = inner.stash.with_mut(|s| unsafe { (*s).take() });
        Self::run(this, it);
    }
}

impl<S, C, R> OperationState for RepeatOp<S, C, R>
where
    S: Clone + SenderTo<Recv<S, C, R>>,
    C: RepeatControl<S::Output>,
    R: Receiver<(), S::Error>,
{
    unsafe fn start(self: Pin<&mut Self>) {
        // SAFETY: projecting to `inner`, which is never moved.
        let inner: Pin<&RepeatInner<S, C, R>> =
            unsafe { self.map_unchecked_mut(|op| &mut op.inner) }.into_ref();
        let i = inner.get_ref();
        // The downstream receiver stays in this op until the loop finishes,
        // after the last iteration completed; iterations drop their stop
        // callbacks before completing: that is what `detach` asks.
        // SAFETY: see above; nothing else runs yet, the cells are ours.
        unsafe {
            let env = i.receiver.with(|r| match &*r {
                Some(r) => CapturedEnv::capture(&r.env()),
                None => CapturedEnv::empty(),
            });
            i.env.with_mut(|e| *e = env);
        }
        let control = i.control.with_mut(|c| c);
        // SAFETY: nothing else runs yet.
        let first = catch_unwind(|| unsafe {
            (*control)
                .as_mut()
                .expect("repeat: control")
                .done_before_first()
        });
        match first {
            Ok(true) => return RepeatInner::finish(i, Finish::Value),
            Ok(false) => {}
            Err(p) => return RepeatInner::finish(i, Finish::Panic(p)),
        }
        // SAFETY: started, so pinned and alive until the loop finishes.
        let this = unsafe { ParentRef::new(inner) };
        RepeatInner::run(this, None);
    }
}
