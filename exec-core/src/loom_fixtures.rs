//! Fixtures shared by the loom models of the adaptors and sync primitives:
//! a sender that completes on a loom thread it spawns in `start`, a
//! receiver that records what arrives, and the bookkeeping of a receiver
//! whose environment carries a stop source.
#![allow(unreachable_pub, missing_debug_implementations)]

use alloc::vec::Vec;
use core::convert::Infallible;
use core::marker::PhantomPinned;
use core::pin::Pin;

use ::loom::sync::{Arc, Mutex};
use ::loom::thread::JoinHandle;

use crate::loom::cell::UnsafeCell;
use crate::loom::sync::atomic::{AtomicUsize, Ordering};
use crate::{Env, OperationState, PanicPayload, Receiver, Sender, SenderTo, StopSource, StopToken};

/// The completing threads a model joins before it checks its outcome.
pub type Handles = Arc<Mutex<Vec<JoinHandle<()>>>>;

/// New, empty [`Handles`].
pub fn handles() -> Handles {
    Arc::new(Mutex::new(Vec::new()))
}

/// Joins every completing thread spawned so far (and those they spawn).
pub fn join_all(handles: &Handles) {
    loop {
        let h = handles.lock().unwrap().pop();
        match h {
            Some(h) => h.join().unwrap(),
            None => break,
        }
    }
}

/// Completes with `value` from a loom thread it spawns in `start`.
///
/// With `touch_after_spawn`, `start` then writes a mark into the operation,
/// which the operation's drop checks: for consumers that promise not to
/// free an operation before its `start` returned (the model fails if the
/// drop does not see the write). Without it, `start` touches nothing of the
/// operation after the spawn (PROTOCOL.md rule 5), for consumers that free
/// an operation inside its completion.
#[derive(Clone)]
pub struct OnThread<T> {
    pub handles: Handles,
    pub value: T,
    pub touch_after_spawn: bool,
}

pub struct OnThreadOp<T, R> {
    handles: Handles,
    value: Option<T>,
    receiver: Option<R>,
    touch_after_spawn: bool,
    mark: UnsafeCell<u32>,
    _pin: PhantomPinned,
}

impl<T> Sender for OnThread<T> {
    type Output = T;
    type Error = Infallible;
}

impl<T: Send + 'static, R: Receiver<T, Infallible> + Send + 'static> SenderTo<R> for OnThread<T> {
    type Operation = OnThreadOp<T, R>;
    fn connect(self, receiver: R) -> OnThreadOp<T, R> {
        OnThreadOp {
            handles: self.handles,
            value: Some(self.value),
            receiver: Some(receiver),
            touch_after_spawn: self.touch_after_spawn,
            mark: UnsafeCell::new(0),
            _pin: PhantomPinned,
        }
    }
}

impl<T: Send + 'static, R: Receiver<T, Infallible> + Send + 'static> OperationState
    for OnThreadOp<T, R>
{
    unsafe fn start(self: Pin<&mut Self>) {
        // SAFETY: nothing is structurally pinned.
        let this = unsafe { self.get_unchecked_mut() };
        let (r, v) = (this.receiver.take().unwrap(), this.value.take().unwrap());
        let (handles, touch) = (this.handles.clone(), this.touch_after_spawn);
        let h = ::loom::thread::spawn(move || r.set_value(v));
        handles.lock().unwrap().push(h);
        if touch {
            // SAFETY: only `start` and the op's drop touch the cell, and
            // with `touch_after_spawn` the consumer drops the op only after
            // `start` returned.
            this.mark.with_mut(|m| unsafe { *m = 1 });
        }
    }
}

impl<T, R> Drop for OnThreadOp<T, R> {
    fn drop(&mut self) {
        if self.touch_after_spawn && self.receiver.is_none() {
            // SAFETY: the op is being dropped: nobody else touches it.
            assert_eq!(self.mark.with(|m| unsafe { *m }), 1);
        }
    }
}

/// Records the value delivered and counts completions on every channel.
pub struct Out<T> {
    pub seen: Arc<Mutex<Option<T>>>,
    pub completions: Arc<AtomicUsize>,
}

impl<T> Out<T> {
    /// A receiver and the two places it records into.
    pub fn new() -> (Self, Arc<Mutex<Option<T>>>, Arc<AtomicUsize>) {
        let (seen, completions) = (Arc::new(Mutex::new(None)), Arc::new(AtomicUsize::new(0)));
        let out = Out {
            seen: seen.clone(),
            completions: completions.clone(),
        };
        (out, seen, completions)
    }
}

impl<T> Receiver<T, Infallible> for Out<T> {
    fn set_value(self, v: T) {
        self.completions.fetch_add(1, Ordering::Relaxed);
        *self.seen.lock().unwrap() = Some(v);
    }
    fn set_error(self, e: Infallible) {
        match e {}
    }
    fn set_stopped(self) {
        self.completions.fetch_add(1, Ordering::Relaxed);
    }
    fn set_panic(self, _: PanicPayload) {
        self.completions.fetch_add(1, Ordering::Relaxed);
    }
}

/// What a stoppable receiver of a sync primitive's model records: which
/// channel completed it (a code chosen by the model), how many times, and
/// the stop source its environment carries. Each model implements
/// `Receiver` for it with its own value type, calling [`record`](Self::record)
/// and answering `env` with [`env`](Self::env).
pub struct Rec {
    pub outcome: Arc<AtomicUsize>,
    pub completions: Arc<AtomicUsize>,
    pub stop: Arc<StopSource>,
}

impl Rec {
    /// Counts a completion and stores its code (Release: the model reads
    /// it after joining).
    pub fn record(&self, what: usize) {
        self.completions.fetch_add(1, Ordering::Relaxed);
        self.outcome.store(what, Ordering::Release);
    }

    /// An environment whose stop token is `stop`'s.
    pub fn env(&self) -> impl Env<'_> {
        RecEnv(&self.stop)
    }
}

struct RecEnv<'a>(&'a StopSource);

impl<'a> Env<'a> for RecEnv<'a> {
    fn stop_token(&self) -> StopToken<'a> {
        self.0.token()
    }
}
