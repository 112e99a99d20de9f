//! Fixtures for the n-ary algorithms: a [`Gate`] sender completed by hand
//! (from any thread), which also completes *stopped* from inside its stop
//! callback, like a cancellable timer does; and a small PRNG for stress
//! tests.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::marker::PhantomPinned;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use exec_core::{
    Completion, Env, OperationState, PanicPayload, Receiver, Sender, SenderTo, StopCallback,
};

/// How a gate completes.
pub enum Delivery<T, E> {
    Value(T),
    Error(E),
    Stopped,
    Panic(&'static str),
}

type CompleteFn<T, E> = Box<dyn FnOnce(Delivery<T, E>) + Send>;
type StopCb = StopCallback<'static, Box<dyn FnOnce() + Send>>;

struct GateShared<T, E> {
    /// The completion, published once the op is fully started; whoever
    /// takes it completes the op.
    complete: Mutex<Option<CompleteFn<T, E>>>,
    started: AtomicBool,
    /// Set by the stop callback (which may run before `complete` is
    /// published; `start` then completes the op itself).
    stop_pending: AtomicBool,
    /// Set when the gate completed because stop was requested.
    stopped_by_request: AtomicBool,
    /// Which channel it completed on: 0 none, 1 value, 2 error, 3 stopped, 4 panic.
    delivered: AtomicUsize,
}

impl<T, E> GateShared<T, E> {
    /// Completes the gate unless it already completed; returns whether this
    /// call did it.
    fn fire(&self, d: Delivery<T, E>) -> bool {
        let f = self.complete.lock().unwrap().take();
        match f {
            Some(f) => {
                let code = match &d {
                    Delivery::Value(_) => 1,
                    Delivery::Error(_) => 2,
                    Delivery::Stopped => 3,
                    Delivery::Panic(_) => 4,
                };
                if code == 3 && self.stop_pending.load(Ordering::SeqCst) {
                    self.stopped_by_request.store(true, Ordering::SeqCst);
                }
                self.delivered.store(code, Ordering::SeqCst);
                f(d);
                true
            }
            None => false,
        }
    }
}

/// A sender completed through its [`GateHandle`]; completes stopped from
/// its stop callback when stop is requested first.
pub struct Gate<T, E> {
    shared: Arc<GateShared<T, E>>,
}

/// Completes a [`Gate`], from any thread.
#[derive(Clone)]
pub struct GateHandle<T, E> {
    shared: Arc<GateShared<T, E>>,
}

pub fn gate<T, E>() -> (Gate<T, E>, GateHandle<T, E>) {
    let shared = Arc::new(GateShared {
        complete: Mutex::new(None),
        started: AtomicBool::new(false),
        stop_pending: AtomicBool::new(false),
        stopped_by_request: AtomicBool::new(false),
        delivered: AtomicUsize::new(0),
    });
    (
        Gate {
            shared: shared.clone(),
        },
        GateHandle { shared },
    )
}

impl<T: Send + 'static, E: Send + 'static> GateHandle<T, E> {
    /// Completes the gate (if started and not yet complete). Returns whether
    /// this call completed it.
    pub fn complete(&self, d: Delivery<T, E>) -> bool {
        self.shared.fire(d)
    }
    pub fn value(&self, v: T) -> bool {
        self.complete(Delivery::Value(v))
    }
    pub fn is_started(&self) -> bool {
        self.shared.started.load(Ordering::SeqCst)
    }
    /// Whether the gate completed stopped because stop was requested.
    pub fn stopped_by_request(&self) -> bool {
        self.shared.stopped_by_request.load(Ordering::SeqCst)
    }
    /// 0 pending, 1 value, 2 error, 3 stopped, 4 panic.
    pub fn delivered(&self) -> usize {
        self.shared.delivered.load(Ordering::SeqCst)
    }
}

impl<T, E> Sender for Gate<T, E> {
    type Output = T;
    type Error = E;
}

impl<T, E, R> SenderTo<R> for Gate<T, E>
where
    T: Send + 'static,
    E: Send + 'static,
    R: Receiver<T, E> + Send + 'static,
{
    type Operation = GateOp<T, E, R>;
    fn connect(self, receiver: R) -> GateOp<T, E, R> {
        GateOp {
            shared: self.shared,
            receiver: Some(receiver),
            callback: None,
            _pin: PhantomPinned,
        }
    }
}

pub struct GateOp<T, E, R> {
    shared: Arc<GateShared<T, E>>,
    receiver: Option<R>,
    /// Registered on the receiver's token; dropped in place before the
    /// receiver is completed.
    callback: Option<StopCb>,
    _pin: PhantomPinned,
}

struct OpPtr<O>(*mut O);
// SAFETY: the pointee is only accessed by the one caller that takes the
// completion closure, while the op is alive (it has not completed yet).
unsafe impl<O> Send for OpPtr<O> {}

impl<T, E, R> OperationState for GateOp<T, E, R>
where
    T: Send + 'static,
    E: Send + 'static,
    R: Receiver<T, E> + Send + 'static,
{
    unsafe fn start(self: Pin<&mut Self>) {
        // SAFETY: we never move out; `callback` is pinned in place below.
        let this: *mut Self = unsafe { self.get_unchecked_mut() };
        // SAFETY: `this` is valid until the op completes, which cannot
        // happen before `complete` is published below.
        let shared = unsafe { (*this).shared.clone() };
        // SAFETY: the callback is dropped before the receiver is completed,
        // and the receiver's env outlives the receiver.
        let token = unsafe {
            (*this)
                .receiver
                .as_ref()
                .unwrap()
                .env()
                .stop_token()
                .detach()
        };
        let weak = Arc::downgrade(&shared);
        // SAFETY: as above; the callback is registered in place and never moved.
        unsafe {
            (*this).callback = Some(StopCallback::new(
                token,
                Box::new(move || {
                    if let Some(shared) = weak.upgrade() {
                        shared.stop_pending.store(true, Ordering::SeqCst);
                        shared.fire(Delivery::Stopped);
                    }
                }) as Box<dyn FnOnce() + Send>,
            ));
            Pin::new_unchecked((*this).callback.as_mut().unwrap()).register();
        }
        let op = OpPtr(this);
        let complete: CompleteFn<T, E> = Box::new(move |d| {
            let op = op;
            // SAFETY: whoever took this closure is the only one completing
            // the op, which is alive until then.
            let receiver = unsafe {
                (*op.0).callback = None; // deregister (waits for a running callback)
                (*op.0).receiver.take().unwrap()
            };
            match d {
                Delivery::Value(v) => receiver.set_value(v),
                Delivery::Error(e) => receiver.set_error(e),
                Delivery::Stopped => receiver.set_stopped(),
                Delivery::Panic(msg) => receiver.set_panic(Box::new(msg) as PanicPayload),
            }
        });
        *shared.complete.lock().unwrap() = Some(complete);
        shared.started.store(true, Ordering::SeqCst);
        // From here on the op may complete at any time: only `shared` is used.
        if shared.stop_pending.load(Ordering::SeqCst) {
            shared.fire(Delivery::Stopped);
        }
    }
}

/// Values of [`Completion`] as a [`Delivery`].
impl<T, E> From<Completion<T, E>> for Delivery<T, E> {
    fn from(c: Completion<T, E>) -> Self {
        match c {
            Completion::Value(v) => Delivery::Value(v),
            Completion::Error(e) => Delivery::Error(e),
            Completion::Stopped => Delivery::Stopped,
        }
    }
}

/// xorshift64*: deterministic pseudo-random numbers for stress tests.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// An `Env` with no stop token (for receivers written in tests).
pub struct NoEnv;
impl<'a> Env<'a> for NoEnv {}
