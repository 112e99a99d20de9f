//! `from_future` / `from_try_future`: every channel, stop (before start,
//! while pending, from another thread, racing completion), wakers from
//! other threads, self-wakes, a panicking future, and no leaks; and where
//! polls run: where woken without a scheduler in the environment, on the
//! environment's scheduler with one (a hand-stepped context, `sync_wait`'s
//! run loop, exec-pool, the inline context).
// The fixtures of exec-core (recorders, drop counters, manual scheduler).
#[path = "../../exec-core/tests/common/mod.rs"]
#[allow(clippy::collapsible_if, clippy::type_complexity)]
mod common;

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::thread::ThreadId;

use common::*;
use exec_adapters::{from_future, from_try_future};
use exec_core::{
    DynScheduler, InlineScheduler, SchedulerRef, SenderExt, StopSource, TaskNode, WithScheduler,
    WithStopToken, starts_on, sync_wait,
};
use futures::channel::oneshot;

/// A future that is pending until `Gate::open`, counting its polls.
#[derive(Clone, Default)]
struct Gate {
    inner: Arc<GateInner>,
}
#[derive(Default)]
struct GateInner {
    open: AtomicBool,
    waker: Mutex<Option<Waker>>,
    polls: AtomicUsize,
}
impl Gate {
    fn open(&self) {
        self.inner.open.store(true, Ordering::SeqCst);
        let w = self.inner.waker.lock().unwrap().take();
        if let Some(w) = w {
            w.wake();
        }
    }
    fn polls(&self) -> usize {
        self.inner.polls.load(Ordering::SeqCst)
    }
    fn wait(&self) -> GateFuture {
        GateFuture { gate: self.clone() }
    }
}
struct GateFuture {
    gate: Gate,
}
impl Future for GateFuture {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let g = &self.gate.inner;
        g.polls.fetch_add(1, Ordering::SeqCst);
        *g.waker.lock().unwrap() = Some(cx.waker().clone());
        if g.open.load(Ordering::SeqCst) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

#[test]
fn output_becomes_the_value() {
    assert_eq!(
        sync_wait(from_future(async { 40 }).then(|x| x + 2)),
        Ok(Some(42))
    );
    let (op, rec) = start(from_future(async { "v" }));
    assert_eq!(rec.expect_value(), "v");
    op.finish();
}

#[test]
fn try_future_maps_ok_to_value_and_err_to_error() {
    let (op, rec) = start(from_try_future(async { Ok::<_, String>(5) }));
    assert_eq!(rec.expect_value(), 5);
    op.finish();
    let (op, rec) = start(from_try_future(async { Err::<i32, _>("nope") }));
    assert_eq!(rec.expect_error(), "nope");
    op.finish();
}

#[test]
fn a_stop_request_drops_the_future_and_completes_stopped() {
    let drops = DropCounter::new();
    let t = drops.track(());
    let gate = Gate::default();
    let g = gate.clone();
    let source = Arc::new(StopSource::new());
    let (r, rec) = recorder_with_stop::<(), std::convert::Infallible>(source.clone());
    let op = start_with(
        from_future(async move {
            let _keep = t;
            g.wait().await
        }),
        r,
        &rec,
    );
    assert!(!rec.is_complete());
    assert_eq!(gate.polls(), 1);
    source.request_stop();
    rec.expect_stopped();
    assert_eq!(drops.alive(), 0, "future dropped");
    gate.open(); // a late wake-up must not touch the completed op
    assert_eq!(gate.polls(), 1);
    op.finish();
}

#[test]
fn stop_requested_before_start_never_polls() {
    let gate = Gate::default();
    let source = Arc::new(StopSource::new());
    source.request_stop();
    let (r, rec) = recorder_with_stop::<(), std::convert::Infallible>(source.clone());
    let op = start_with(from_future(gate.wait()), r, &rec);
    rec.expect_stopped();
    assert_eq!(gate.polls(), 0);
    op.finish();
}

#[test]
fn stop_from_another_thread_while_pending() {
    let drops = DropCounter::new();
    let t = drops.track(());
    let gate = Gate::default();
    let g = gate.clone();
    let source = Arc::new(StopSource::new());
    let (r, rec) = recorder_with_stop::<(), std::convert::Infallible>(source.clone());
    let op = start_with(
        from_future(async move {
            let _keep = t;
            g.wait().await
        }),
        r,
        &rec,
    );
    let s2 = source.clone();
    std::thread::spawn(move || s2.request_stop())
        .join()
        .unwrap();
    rec.expect_stopped();
    assert_eq!(drops.alive(), 0);
    op.finish();
}

#[test]
fn a_wake_from_another_thread_polls_and_completes_there() {
    let (tx, rx) = oneshot::channel::<u32>();
    let (op, rec) = start(from_future(async move {
        (rx.await.unwrap(), std::thread::current().id())
    }));
    assert!(!rec.is_complete());
    let sender_thread = std::thread::spawn(move || {
        tx.send(9).unwrap();
        std::thread::current().id()
    })
    .join()
    .unwrap();
    let (v, polled_on) = rec.expect_value();
    assert_eq!(v, 9);
    assert_eq!(polled_on, sender_thread, "polled by the waking thread");
    op.finish();
}

#[test]
fn sync_wait_on_a_future_woken_elsewhere() {
    let (tx, rx) = oneshot::channel::<&str>();
    let th = std::thread::spawn(move || tx.send("hi").unwrap());
    assert_eq!(
        sync_wait(from_future(rx).then(|r| r.unwrap())),
        Ok(Some("hi"))
    );
    th.join().unwrap();
}

#[test]
fn self_wake_during_poll_repolls_without_recursion() {
    let n = if cfg!(miri) { 20 } else { 10_000 };
    let mut left = n;
    let fut = std::future::poll_fn(move |cx| {
        if left == 0 {
            return Poll::Ready("done");
        }
        left -= 1;
        cx.waker().wake_by_ref();
        Poll::Pending
    });
    assert_eq!(sync_wait(from_future(fut)), Ok(Some("done")));
}

#[test]
fn wakes_from_many_threads_complete_exactly_once() {
    let rounds = if cfg!(miri) { 2 } else { 50 };
    for _ in 0..rounds {
        let target = 64;
        let hits = Arc::new(AtomicUsize::new(0));
        let waker_slot: Arc<Mutex<Option<Waker>>> = Arc::default();
        let (h, w) = (hits.clone(), waker_slot.clone());
        let fut = std::future::poll_fn(move |cx| {
            *w.lock().unwrap() = Some(cx.waker().clone());
            if h.load(Ordering::SeqCst) >= target {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        });
        let (op, rec) = start(from_future(fut));
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let (h, w) = (hits.clone(), waker_slot.clone());
                std::thread::spawn(move || {
                    for _ in 0..target / 2 {
                        h.fetch_add(1, Ordering::SeqCst);
                        let waker = w.lock().unwrap().clone();
                        if let Some(waker) = waker {
                            waker.wake();
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // Every increment was followed by a wake-up, so the last one saw
        // `hits == target` in a poll.
        rec.expect_value();
        assert_eq!(rec.completions(), 1);
        drop(waker_slot);
        op.finish();
    }
}

#[test]
fn stop_racing_a_wake_completes_once_and_leaks_nothing() {
    let rounds = if cfg!(miri) { 4 } else { 200 };
    let mut values = 0;
    for _ in 0..rounds {
        let drops = DropCounter::new();
        let t = drops.track(());
        let gate = Gate::default();
        let g = gate.clone();
        let source = Arc::new(StopSource::new());
        let (r, rec) = recorder_with_stop::<(), std::convert::Infallible>(source.clone());
        let op = start_with(
            from_future(async move {
                let _keep = t;
                g.wait().await
            }),
            r,
            &rec,
        );
        let s2 = source.clone();
        let stopper = std::thread::spawn(move || s2.request_stop());
        gate.open();
        stopper.join().unwrap();
        match rec.take() {
            Seen::Value(()) => values += 1,
            Seen::Stopped => {}
            other => panic!("unexpected completion {other:?}"),
        }
        assert_eq!(drops.alive(), 0);
        op.finish();
    }
    let _ = values; // either outcome is fine; exactly one was delivered
}

#[test]
fn a_panicking_future_is_delivered_through_set_panic_and_dropped() {
    let drops = DropCounter::new();
    let t = drops.track(());
    let (op, rec) = start(from_future(async move {
        let _keep = t;
        if true {
            panic!("future panicked");
        }
    }));
    assert_eq!(rec.expect_panic(), "future panicked");
    assert_eq!(drops.alive(), 0);
    op.finish();
}

#[test]
fn a_panic_after_a_wake_on_another_thread_reaches_sync_wait() {
    let (tx, rx) = oneshot::channel::<()>();
    let th = std::thread::spawn(move || tx.send(()).unwrap());
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        sync_wait(from_future(async move {
            rx.await.unwrap();
            panic!("late panic");
        }))
    }));
    th.join().unwrap();
    assert_eq!(payload_message(r.unwrap_err().as_ref()), "late panic");
}

#[test]
fn futures_may_borrow_the_stack() {
    let data = vec![1, 2, 3];
    let r = &data;
    assert_eq!(
        sync_wait(from_future(async move { r.iter().sum::<i32>() })),
        Ok(Some(6))
    );
}

#[test]
fn value_is_dropped_by_the_receiver_only() {
    let drops = DropCounter::new();
    let t = drops.track(5);
    let v = sync_wait(from_future(async move { t })).unwrap().unwrap();
    assert_eq!(drops.alive(), 1);
    drop(v);
    assert_eq!(drops.alive(), 0);
}

#[test]
fn a_waker_kept_past_the_operation_is_harmless() {
    // The future leaves its waker with the gate and completes; the op is
    // freed; then the gate wakes the stale waker (miri checks no
    // use-after-free: wakers point at a separately owned cell).
    let gate = Gate::default();
    let g = gate.clone();
    {
        let (op, rec) = start(from_future(std::future::poll_fn(move |cx| {
            *g.inner.waker.lock().unwrap() = Some(cx.waker().clone());
            Poll::Ready(1)
        })));
        assert_eq!(rec.expect_value(), 1);
        op.finish();
    }
    gate.open();
    assert_eq!(gate.polls(), 0);
}

// ------------------------------------------- polls on the receiver's scheduler

/// A context stepped by hand: `enqueue` only queues (and counts); `step`
/// executes the oldest node on the calling thread.
#[derive(Default)]
struct ManualContext {
    queue: Mutex<VecDeque<QueuedNode>>,
    enqueued: AtomicUsize,
}

struct QueuedNode(NonNull<TaskNode>);
// SAFETY: a queued node is handed to whichever thread steps the context;
// `DynScheduler` nodes are executed on the context's thread by contract.
unsafe impl Send for QueuedNode {}

// SAFETY: executes every node once, through `TaskNode::execute`, when
// stepped; `enqueue` touches the context only before it publishes the node
// (the unlock is its last action).
unsafe impl DynScheduler for ManualContext {
    unsafe fn enqueue(this: NonNull<Self>, node: NonNull<TaskNode>) {
        // SAFETY: alive when called (the contract); the borrow ends with
        // the unlock, after which the node may run.
        let this = unsafe { this.as_ref() };
        this.enqueued.fetch_add(1, Ordering::SeqCst);
        this.queue.lock().unwrap().push_back(QueuedNode(node));
    }
}

impl ManualContext {
    fn enqueued(&self) -> usize {
        self.enqueued.load(Ordering::SeqCst)
    }
    fn queued(&self) -> usize {
        self.queue.lock().unwrap().len()
    }
    /// Executes the oldest queued node (`stopped`: as a context shutting
    /// down does); `false` if none was queued.
    fn step(&self, stopped: bool) -> bool {
        let node = self.queue.lock().unwrap().pop_front();
        match node {
            // SAFETY: queued by `enqueue`, executed once, here.
            Some(QueuedNode(node)) => unsafe {
                TaskNode::execute(node, stopped);
                true
            },
            None => false,
        }
    }
}

/// The thread of every poll of a future, in order.
#[derive(Clone, Default)]
struct PollLog(Arc<Mutex<Vec<ThreadId>>>);
impl PollLog {
    fn record(&self) {
        self.0.lock().unwrap().push(std::thread::current().id());
    }
    fn threads(&self) -> Vec<ThreadId> {
        self.0.lock().unwrap().clone()
    }
}

/// Waits (yielding) until `ready()`: a handshake, so that a wake-up or stop
/// from another thread comes after the first poll however slow the run
/// (miri) is.
fn wait_until(ready: impl Fn() -> bool) {
    while !ready() {
        std::thread::yield_now();
    }
}

/// `fut`, logging the thread of each of its polls (once the poll is done,
/// so that a handshake on the log sees a waker in place).
fn logged<F: Future>(log: PollLog, fut: F) -> impl Future<Output = F::Output> {
    let mut fut = Box::pin(fut);
    std::future::poll_fn(move |cx| {
        let polled = fut.as_mut().poll(cx);
        log.record();
        polled
    })
}

#[test]
fn with_a_scheduler_a_wake_enqueues_and_the_context_polls() {
    let ctx = ManualContext::default();
    let gate = Gate::default();
    let log = PollLog::default();
    let (op, rec) = start(
        from_future(logged(log.clone(), gate.wait()))
            .then(|()| std::thread::current().id())
            .write_env(WithScheduler::new(Some(SchedulerRef::new(&ctx)))),
    );
    // The first poll is inline in `start`; nothing queued.
    assert_eq!((gate.polls(), ctx.enqueued()), (1, 0));
    let g = gate.clone();
    std::thread::spawn(move || g.open()).join().unwrap();
    // The wake-up enqueued the operation instead of polling it.
    assert_eq!((gate.polls(), ctx.enqueued(), ctx.queued()), (1, 1, 1));
    assert!(!rec.is_complete());
    // A second wake-up while queued is absorbed (the node is queued once).
    gate.open();
    assert_eq!((gate.polls(), ctx.enqueued()), (1, 1));
    assert!(ctx.step(false));
    let here = std::thread::current().id();
    assert_eq!(rec.expect_value(), here, "completed on the context");
    assert_eq!(log.threads(), vec![here, here], "polled on the context");
    assert!(!ctx.step(false));
    op.finish();
}

#[test]
fn with_a_scheduler_a_self_wake_goes_to_the_back_of_the_queue() {
    let ctx = ManualContext::default();
    let polls = Arc::new(AtomicUsize::new(0));
    let p = polls.clone();
    let fut = std::future::poll_fn(move |cx| {
        if p.fetch_add(1, Ordering::SeqCst) == 3 {
            return Poll::Ready("done");
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    });
    let (op, rec) =
        start(from_future(fut).write_env(WithScheduler::new(Some(SchedulerRef::new(&ctx)))));
    // Each self-wake re-enqueues once the poll returns; no inline re-poll.
    for n in 1..=3 {
        assert_eq!(polls.load(Ordering::SeqCst), n);
        assert_eq!((ctx.enqueued(), ctx.queued()), (n, 1));
        assert!(!rec.is_complete());
        assert!(ctx.step(false));
    }
    assert_eq!(rec.expect_value(), "done");
    assert_eq!(polls.load(Ordering::SeqCst), 4);
    op.finish();
}

#[test]
fn with_a_scheduler_a_stop_request_drops_the_future_on_the_context() {
    let ctx = ManualContext::default();
    let drops = DropCounter::new();
    let t = drops.track(());
    let gate = Gate::default();
    let g = gate.clone();
    let source = Arc::new(StopSource::new());
    let (r, rec) = recorder_with_stop::<(), std::convert::Infallible>(source.clone());
    let op = start_with(
        from_future(async move {
            let _keep = t;
            g.wait().await
        })
        .write_env(WithScheduler::new(Some(SchedulerRef::new(&ctx)))),
        r,
        &rec,
    );
    let s2 = source.clone();
    std::thread::spawn(move || s2.request_stop())
        .join()
        .unwrap();
    // The request enqueued the operation; the future is still alive.
    assert_eq!(ctx.enqueued(), 1);
    assert_eq!(drops.alive(), 1);
    assert!(!rec.is_complete());
    assert!(ctx.step(false));
    rec.expect_stopped();
    assert_eq!(drops.alive(), 0);
    assert_eq!(gate.polls(), 1, "stopped without polling again");
    gate.open(); // a late wake-up must not touch the completed op
    assert_eq!(ctx.enqueued(), 1);
    op.finish();
}

#[test]
fn a_context_that_shuts_down_with_the_poll_queued_completes_stopped() {
    let ctx = ManualContext::default();
    let drops = DropCounter::new();
    let t = drops.track(());
    let gate = Gate::default();
    let g = gate.clone();
    let (op, rec) = start(
        from_future(async move {
            let _keep = t;
            g.wait().await
        })
        .write_env(WithScheduler::new(Some(SchedulerRef::new(&ctx)))),
    );
    gate.open();
    assert_eq!(ctx.queued(), 1);
    assert!(ctx.step(true));
    rec.expect_stopped();
    assert_eq!(drops.alive(), 0);
    assert_eq!(gate.polls(), 1);
    op.finish();
}

#[test]
fn sync_wait_repolls_a_future_woken_elsewhere_on_its_own_thread() {
    let (tx, rx) = oneshot::channel::<u32>();
    let log = PollLog::default();
    let polled = log.clone();
    let waker_thread = std::thread::spawn(move || {
        wait_until(|| !polled.threads().is_empty());
        tx.send(7).unwrap();
        std::thread::current().id()
    });
    let (v, completed_on) = sync_wait(
        from_future(logged(log.clone(), rx)).then(|r| (r.unwrap(), std::thread::current().id())),
    )
    .unwrap()
    .unwrap();
    let waker_thread = waker_thread.join().unwrap();
    let here = std::thread::current().id();
    assert_eq!(v, 7);
    assert_eq!(completed_on, here);
    let threads = log.threads();
    assert_eq!(threads.len(), 2, "pending, then woken: {threads:?}");
    assert!(
        threads.iter().all(|t| *t == here && *t != waker_thread),
        "every poll on the sync_wait thread: {threads:?}"
    );
}

#[test]
fn sync_wait_drops_a_stopped_future_on_its_own_thread() {
    struct Probe(Arc<Mutex<Option<ThreadId>>>);
    impl Drop for Probe {
        fn drop(&mut self) {
            *self.0.lock().unwrap() = Some(std::thread::current().id());
        }
    }
    let dropped_on = Arc::new(Mutex::new(None));
    let probe = Probe(dropped_on.clone());
    let source = StopSource::new();
    let log = PollLog::default();
    let r = std::thread::scope(|s| {
        let polled = log.clone();
        s.spawn(|| {
            wait_until(move || !polled.threads().is_empty());
            source.request_stop();
        });
        sync_wait(
            from_future(logged(log.clone(), async move {
                let _p = probe;
                std::future::pending::<()>().await
            }))
            .write_env(WithStopToken::source(&source)),
        )
    });
    assert_eq!(log.threads().len(), 1, "stopped while pending");
    assert_eq!(r, Ok(None));
    assert_eq!(
        *dropped_on.lock().unwrap(),
        Some(std::thread::current().id())
    );
}

#[test]
fn started_on_the_pool_a_future_woken_elsewhere_is_repolled_on_a_worker() {
    let pool = exec_pool::ThreadPool::builder().threads(2).build().unwrap();
    let sch = pool.scheduler();
    let (tx, rx) = oneshot::channel::<u32>();
    let on_worker = Arc::new(Mutex::new(Vec::new()));
    let (probe, seen) = (sch.clone(), on_worker.clone());
    let fut = {
        let mut rx = rx;
        std::future::poll_fn(move |cx| {
            let polled = Pin::new(&mut rx).poll(cx);
            seen.lock().unwrap().push(probe.is_worker_thread());
            polled
        })
    };
    let polled = on_worker.clone();
    let waker = std::thread::spawn(move || {
        wait_until(|| !polled.lock().unwrap().is_empty());
        tx.send(5).unwrap();
    });
    let probe = sch.clone();
    let r = sync_wait(starts_on(
        sch.clone(),
        from_future(fut).then(move |r| (r.unwrap(), probe.is_worker_thread())),
    ));
    waker.join().unwrap();
    assert_eq!(r, Ok(Some((5, true))), "completed on a worker");
    let seen = on_worker.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "pending, then woken: {seen:?}");
    assert!(seen.iter().all(|w| *w), "every poll on a worker: {seen:?}");
}

#[test]
fn on_the_inline_context_polls_run_where_woken_without_recursion() {
    // A self-waking future: every re-enqueue runs inline inside `enqueue`,
    // is handed back, and the poll loop iterates (a recursion would
    // overflow the stack).
    let n = if cfg!(miri) { 20 } else { 200_000 };
    let mut left = n;
    let fut = std::future::poll_fn(move |cx| {
        if left == 0 {
            return Poll::Ready("done");
        }
        left -= 1;
        cx.waker().wake_by_ref();
        Poll::Pending
    });
    assert_eq!(
        sync_wait(starts_on(InlineScheduler, from_future(fut))),
        Ok(Some("done"))
    );
    // A wake-up from another thread polls on that thread.
    let (tx, rx) = oneshot::channel::<u32>();
    let log = PollLog::default();
    let (op, rec) = start(starts_on(
        InlineScheduler,
        from_future(logged(log.clone(), rx)),
    ));
    let waker_thread = std::thread::spawn(move || {
        tx.send(3).unwrap();
        std::thread::current().id()
    })
    .join()
    .unwrap();
    assert_eq!(rec.expect_value(), Ok(3));
    assert_eq!(
        log.threads(),
        vec![std::thread::current().id(), waker_thread]
    );
    op.finish();
}
