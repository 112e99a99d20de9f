//! Pool test helpers: a detached `spawn` whose heap operation is freed by
//! its own completion (what a scope's `spawn` does), with counters that let
//! a test check every operation completed exactly once.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use exec_core::{
    Env, OperationState, PanicPayload, Receiver, Scheduler, SenderTo, StopSource, StopToken,
};
use exec_pool::PoolScheduler;
use exec_pool::ops::ScheduleOp;

/// Counts completions of spawned operations by channel.
#[derive(Default, Debug)]
pub struct Counts {
    pub started: AtomicUsize,
    pub values: AtomicUsize,
    pub stopped: AtomicUsize,
}

impl Counts {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }
    pub fn completed(&self) -> usize {
        self.values.load(Ordering::SeqCst) + self.stopped.load(Ordering::SeqCst)
    }
    /// Waits (bounded) until every started operation completed.
    pub fn wait_all(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.completed() < self.started.load(Ordering::SeqCst) {
            assert!(
                Instant::now() < deadline,
                "timed out: {} of {} completed",
                self.completed(),
                self.started.load(Ordering::SeqCst)
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

pub struct SpawnReceiver<F> {
    f: Option<F>,
    counts: Arc<Counts>,
    stop: Option<Arc<StopSource>>,
    /// The boxed operation this receiver lives in, set before `start`.
    me: Arc<AtomicPtr<()>>,
}

struct SpawnEnv<'a>(Option<&'a StopSource>);
impl<'a> Env<'a> for SpawnEnv<'a> {
    fn stop_token(&self) -> StopToken<'a> {
        self.0.map_or(StopToken::never(), |s| s.token())
    }
}

impl<F: FnOnce() + Send + 'static> SpawnReceiver<F> {
    fn free(&self) {
        let raw = self.me.load(Ordering::Acquire) as *mut ScheduleOp<SpawnReceiver<F>>;
        assert!(!raw.is_null());
        // SAFETY: `raw` came from `Box::into_raw` in `spawn`; the operation
        // has called our completion and no longer touches its memory.
        drop(unsafe { Box::from_raw(raw) });
    }
}

impl<F: FnOnce() + Send + 'static> Receiver<(), Infallible> for SpawnReceiver<F> {
    fn set_value(mut self, (): ()) {
        self.free();
        let f = self.f.take().unwrap();
        let counts = self.counts.clone();
        drop(self);
        // Counted once `f` returned or unwound, so that work `f` spawns is
        // counted as started before its parent counts as completed.
        struct CountOnDrop(Arc<Counts>);
        impl Drop for CountOnDrop {
            fn drop(&mut self) {
                self.0.values.fetch_add(1, Ordering::SeqCst);
            }
        }
        let _count = CountOnDrop(counts);
        f();
    }
    fn set_error(self, e: Infallible) {
        match e {}
    }
    fn set_stopped(self) {
        self.free();
        let counts = self.counts.clone();
        drop(self);
        counts.stopped.fetch_add(1, Ordering::SeqCst);
    }
    fn set_panic(self, _payload: PanicPayload) {
        unreachable!("schedule never delivers a panic")
    }
    fn env(&self) -> impl Env<'_> {
        SpawnEnv(self.stop.as_deref())
    }
}

/// Runs `f` on the pool, detached. The operation (on the heap) is freed by
/// its own completion; `counts` records which channel completed it.
pub fn spawn<F: FnOnce() + Send + 'static>(
    sched: &PoolScheduler,
    counts: &Arc<Counts>,
    stop: Option<Arc<StopSource>>,
    f: F,
) {
    let me = Arc::new(AtomicPtr::new(std::ptr::null_mut()));
    let op = Box::new(sched.schedule().connect(SpawnReceiver {
        f: Some(f),
        counts: counts.clone(),
        stop,
        me: me.clone(),
    }));
    let raw = Box::into_raw(op);
    me.store(raw as *mut (), Ordering::Release);
    counts.started.fetch_add(1, Ordering::SeqCst);
    // SAFETY: the box is freed only by the completion (which happens once).
    unsafe { Pin::new_unchecked(&mut *raw).start() };
}

/// Spins (yielding) until `f()` holds; fails after 30 s.
pub fn wait_until(mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "timed out");
        std::thread::yield_now();
    }
}
