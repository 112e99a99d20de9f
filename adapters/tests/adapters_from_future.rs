//! `from_future` / `from_try_future`: every channel, stop (before start,
//! while pending, from another thread, racing completion), wakers from
//! other threads, self-wakes, a panicking future, and no leaks.
// The fixtures of exec-core (recorders, drop counters, manual scheduler).
#[path = "../../exec-core/tests/common/mod.rs"]
#[allow(clippy::collapsible_if, clippy::type_complexity)]
mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use common::*;
use exec_adapters::{from_future, from_try_future};
use exec_core::{SenderExt, StopSource, sync_wait};
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
