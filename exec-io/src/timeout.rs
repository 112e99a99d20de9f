//! [`timeout`]: run a sender against a deadline on the loop.

use core::fmt;
use core::marker::PhantomPinned;
use core::pin::Pin;
use std::io;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use exec_core::{
    Env, OnStop, OperationState, PanicPayload, ParentRef, Receiver, Sender, SenderTo, StopCallback,
    StopSource, StopToken,
};

use crate::context::IoScheduler;
use crate::op::IoOp;
use crate::sender::{IoSender, TimerAction};

/// The error of a [`timeout`] whose deadline passed first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimedOut;

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("operation timed out")
    }
}

impl std::error::Error for TimedOut {}

impl From<TimedOut> for io::Error {
    fn from(e: TimedOut) -> io::Error {
        io::Error::new(io::ErrorKind::TimedOut, e)
    }
}

/// Runs `sender` with a deadline `after` from now, kept by the loop of
/// `sch`.
///
/// # Completion
/// - value / error / panic: what `sender` completed with, if it completed
///   before the deadline (or completed with a value or error even though
///   the deadline had passed meanwhile).
/// - error: `TimedOut` (converted into `S::Error`, for example an
///   [`io::Error`] of kind `TimedOut`) when the deadline passed first and
///   `sender` then completed *stopped*.
/// - stopped: when the receiver's stop token fired first.
///
/// The combined operation completes after both the sender and the timer
/// have completed (the loser is stopped).
///
/// # Cancellation
/// A stop request from the receiver stops both the sender and the timer.
///
/// # Panics
/// Never; a panic delivered by `sender` is forwarded.
///
/// # Example
/// ```
/// use std::time::Duration;
/// use exec_io::{IoContext, TcpListener, timeout};
///
/// let ctx = IoContext::new()?;
/// let sch = ctx.scheduler();
/// let listener = TcpListener::bind(&sch, "127.0.0.1:0".parse().unwrap())?;
/// // Nobody connects: the accept is stopped and the result is a timeout.
/// let res = ctx.run_until(timeout(&sch, listener.accept(), Duration::from_millis(10)));
/// assert_eq!(res.unwrap_err().kind(), std::io::ErrorKind::TimedOut);
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # See also
/// [`TimedScheduler::schedule_after`](exec_core::TimedScheduler::schedule_after).
pub fn timeout<S: Sender>(sch: &IoScheduler, sender: S, after: Duration) -> Timeout<S> {
    Timeout {
        sender,
        sch: sch.clone(),
        at: Instant::now() + after,
    }
}

/// Sender for the [`timeout`] function.
#[must_use = "senders do nothing unless connected and started"]
pub struct Timeout<S> {
    sender: S,
    sch: IoScheduler,
    at: Instant,
}

impl<S> fmt::Debug for Timeout<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timeout")
            .field("at", &self.at)
            .finish_non_exhaustive()
    }
}

impl<S> Sender for Timeout<S>
where
    S: Sender,
    S::Error: From<TimedOut>,
{
    type Output = S::Output;
    type Error = S::Error;
}

enum Outcome<T, E> {
    Value(T),
    Error(E),
    Stopped,
    Panic(PanicPayload),
}

/// The upstream stop callback: stops both children. A named type, so the
/// callback is stored inline in the op (no allocation).
struct ForwardStops(crate::op::SendPtr<Stops>);

impl OnStop for ForwardStops {
    fn on_stop(self) {
        // SAFETY: the shared state outlives this callback (dropped, waiting
        // for a running callback, before the op completes).
        let s = unsafe { &*self.0.get() };
        s.child.request_stop();
        s.timer.request_stop();
    }
}

type UpstreamCallback = StopCallback<'static, ForwardStops>;

/// What the child, the timer and the upstream stop callback share.
struct Stops {
    child: StopSource,
    timer: StopSource,
}

struct Shared<T, E, R> {
    stops: Stops,
    /// Children still running (2 → 0); the one reaching 0 delivers.
    remaining: AtomicU8,
    timed_out: AtomicBool,
    outcome: Mutex<Option<Outcome<T, E>>>,
    /// Taken by whoever brings `remaining` to zero.
    receiver: Mutex<Option<R>>,
    /// Forwards the receiver's stop request to both children. Pinned in
    /// place (the op is); dropped in place before the receiver is completed.
    upstream: Mutex<Option<UpstreamCallback>>,
}

impl<T, E: From<TimedOut>, R: Receiver<T, E>> Shared<T, E, R> {
    /// Takes a raw pointer, not `&self`: the last call completes the
    /// receiver, which may free this state, and no reference argument may
    /// be live across that.
    ///
    /// # Safety
    /// `this` is alive (a child that has not finished completing holds it).
    unsafe fn child_done(this: *const Self) {
        let (outcome, receiver, timed_out) = {
            // SAFETY: per the contract; not used after this block.
            let me = unsafe { &*this };
            if me.remaining.fetch_sub(1, Ordering::AcqRel) != 1 {
                return;
            }
            me.take_all()
        };
        // From here on the state may be freed by the receiver's owner.
        if let Some(r) = receiver {
            match outcome {
                Some(Outcome::Value(v)) => r.set_value(v),
                Some(Outcome::Error(e)) => r.set_error(e),
                Some(Outcome::Panic(p)) => r.set_panic(p),
                Some(Outcome::Stopped) | None if timed_out => r.set_error(TimedOut.into()),
                Some(Outcome::Stopped) | None => r.set_stopped(),
            }
        }
    }

    /// Drops the upstream callback and takes what is delivered.
    #[allow(clippy::type_complexity)]
    fn take_all(&self) -> (Option<Outcome<T, E>>, Option<R>, bool) {
        // Dropped in place (it is pinned there): deregisters, waiting for a
        // running callback.
        *self.upstream.lock().unwrap_or_else(|e| e.into_inner()) = None;
        let outcome = self
            .outcome
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let receiver = self
            .receiver
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        (outcome, receiver, self.timed_out.load(Ordering::Acquire))
    }
}

/// The receiver [`Timeout`] connects its sender to.
pub struct TimeoutReceiver<T, E, R> {
    shared: ParentRef<Shared<T, E, R>>,
}

impl<T, E, R> fmt::Debug for TimeoutReceiver<T, E, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimeoutReceiver").finish_non_exhaustive()
    }
}

impl<T, E: From<TimedOut>, R: Receiver<T, E>> TimeoutReceiver<T, E, R> {
    fn complete(self, o: Outcome<T, E>) {
        let s = self.shared.get();
        *s.outcome.lock().unwrap_or_else(|e| e.into_inner()) = Some(o);
        s.stops.timer.request_stop();
        // SAFETY: this child has not finished completing, so the parent
        // (which waits for it) is alive.
        unsafe { Shared::child_done(s) };
    }
}

impl<T, E: From<TimedOut>, R: Receiver<T, E>> Receiver<T, E> for TimeoutReceiver<T, E, R> {
    fn set_value(self, value: T) {
        self.complete(Outcome::Value(value));
    }
    fn set_error(self, error: E) {
        self.complete(Outcome::Error(error));
    }
    fn set_stopped(self) {
        self.complete(Outcome::Stopped);
    }
    fn set_panic(self, payload: PanicPayload) {
        self.complete(Outcome::Panic(payload));
    }
    fn env(&self) -> impl Env<'_> {
        StopEnv(&self.shared.get().stops.child)
    }
}

struct StopEnv<'a>(&'a StopSource);
impl<'a> Env<'a> for StopEnv<'a> {
    fn stop_token(&self) -> StopToken<'a> {
        self.0.token()
    }
}

/// The receiver of the deadline timer inside a [`Timeout`].
pub struct TimerReceiver<T, E, R> {
    shared: ParentRef<Shared<T, E, R>>,
}

impl<T, E, R> fmt::Debug for TimerReceiver<T, E, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimerReceiver").finish_non_exhaustive()
    }
}

impl<T, E: From<TimedOut>, R: Receiver<T, E>> Receiver<(), core::convert::Infallible>
    for TimerReceiver<T, E, R>
{
    fn set_value(self, (): ()) {
        let s = self.shared.get();
        s.timed_out.store(true, Ordering::Release);
        s.stops.child.request_stop();
        // SAFETY: this child has not finished completing, so the parent
        // (which waits for it) is alive.
        unsafe { Shared::child_done(s) };
    }
    fn set_error(self, e: core::convert::Infallible) {
        match e {}
    }
    fn set_stopped(self) {
        // SAFETY: as in `set_value`.
        unsafe { Shared::child_done(self.shared.get()) };
    }
    fn set_panic(self, _: PanicPayload) {
        // SAFETY: as in `set_value`.
        unsafe { Shared::child_done(self.shared.get()) };
    }
    fn env(&self) -> impl Env<'_> {
        StopEnv(&self.shared.get().stops.timer)
    }
}

type TimerOp<T, E, R> = IoOp<TimerAction, TimerReceiver<T, E, R>>;

/// Operation state of [`Timeout`].
pub struct TimeoutOp<S, R>
where
    S: SenderTo<TimeoutReceiver<<S as Sender>::Output, <S as Sender>::Error, R>>,
{
    shared: Shared<S::Output, S::Error, R>,
    sender: Option<S>,
    timer: Option<IoSender<TimerAction>>,
    /// Connected at `start`, inside the pinned op; structurally pinned.
    child: Option<S::Operation>,
    /// Same.
    timer_op: Option<TimerOp<S::Output, S::Error, R>>,
    _pin: PhantomPinned,
}

impl<S, R> fmt::Debug for TimeoutOp<S, R>
where
    S: SenderTo<TimeoutReceiver<<S as Sender>::Output, <S as Sender>::Error, R>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimeoutOp").finish_non_exhaustive()
    }
}

impl<S, R> SenderTo<R> for Timeout<S>
where
    S: SenderTo<TimeoutReceiver<<S as Sender>::Output, <S as Sender>::Error, R>>,
    S::Error: From<TimedOut>,
    S::Output: Send,
    S::Error: Send,
    R: Receiver<S::Output, S::Error> + Send,
{
    type Operation = TimeoutOp<S, R>;
    fn connect(self, receiver: R) -> TimeoutOp<S, R> {
        use exec_core::TimedScheduler;
        TimeoutOp {
            shared: Shared {
                stops: Stops {
                    child: StopSource::new(),
                    timer: StopSource::new(),
                },
                remaining: AtomicU8::new(2),
                timed_out: AtomicBool::new(false),
                outcome: Mutex::new(None),
                receiver: Mutex::new(Some(receiver)),
                upstream: Mutex::new(None),
            },
            sender: Some(self.sender),
            timer: Some(self.sch.schedule_at(self.at)),
            child: None,
            timer_op: None,
            _pin: PhantomPinned,
        }
    }
}

impl<S, R> OperationState for TimeoutOp<S, R>
where
    S: SenderTo<TimeoutReceiver<<S as Sender>::Output, <S as Sender>::Error, R>>,
    S::Error: From<TimedOut>,
    S::Output: Send,
    S::Error: Send,
    R: Receiver<S::Output, S::Error> + Send,
{
    unsafe fn start(self: Pin<&mut Self>) {
        // SAFETY: we never move out of the pinned op; `child` and
        // `timer_op` are written once here and then only used pinned.
        let this = unsafe { self.get_unchecked_mut() };
        let shared = &this.shared;
        // SAFETY: the op is started (pinned, alive until it completes) and
        // completes only after both children completed.
        let child_ref = unsafe { ParentRef::new(Pin::new_unchecked(shared)) };
        // SAFETY: as above.
        let timer_ref = unsafe { ParentRef::new(Pin::new_unchecked(shared)) };
        let (Some(sender), Some(timer)) = (this.sender.take(), this.timer.take()) else {
            return;
        };
        this.child = Some(sender.connect(TimeoutReceiver { shared: child_ref }));
        this.timer_op = Some(timer.connect(TimerReceiver { shared: timer_ref }));
        // Forward the receiver's stop request.
        let token = {
            let r = shared.receiver.lock().unwrap_or_else(|e| e.into_inner());
            // SAFETY: the callback is dropped in `child_done` before the
            // receiver is completed.
            r.as_ref().map(|r| unsafe { r.env().stop_token().detach() })
        };
        if let Some(token) = token.filter(|t| t.stop_possible()) {
            let f = ForwardStops(crate::op::SendPtr::new(&shared.stops as *const Stops));
            let mut slot = shared.upstream.lock().unwrap_or_else(|e| e.into_inner());
            let cb = slot.insert(StopCallback::new(token, f));
            // SAFETY: the callback lives in the pinned op and is only ever
            // dropped in place (`take_all`). If stop was already requested
            // it runs inline here; it does not touch `upstream`.
            unsafe { Pin::new_unchecked(cb) }.register();
        }
        // SAFETY: both children live in this pinned op, which outlives them.
        unsafe {
            if let Some(t) = this.timer_op.as_mut() {
                Pin::new_unchecked(t).start();
            }
            if let Some(c) = this.child.as_mut() {
                Pin::new_unchecked(c).start();
            }
        }
    }
}
