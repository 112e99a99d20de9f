//! `from_future`'s first poll: its waker points at the operation and the
//! wake cell is created only when needed (a clone, a stop request, a
//! `Pending` first poll). A future ready on its first poll allocates
//! nothing (a counting allocator proves it); futures that clone the
//! first poll's waker, wake it by reference, lend it to another thread,
//! or are stopped before, during or after the first poll behave as before.
// The fixtures of exec-core (recorders, drop counters).
#[path = "../../exec-core/tests/common/mod.rs"]
#[allow(clippy::collapsible_if, clippy::type_complexity)]
mod common;

#[path = "../../exec-core/tests/support/counting_alloc.rs"]
mod counting_alloc;

use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};

use common::*;
use counting_alloc::allocations_during;
use exec_adapters::{from_future, from_try_future};
use exec_core::{OperationState, SenderExt, SenderTo, StopSource, sync_wait};

#[global_allocator]
static GLOBAL: counting_alloc::Counting = counting_alloc::Counting;

/// Completes a receiver into a stack slot, for allocation counting (the
/// recorders of `common` allocate).
struct Store<'a, T>(
    &'a Mutex<Option<Result<T, &'static str>>>,
    Option<&'a StopSource>,
);
impl<T> exec_core::Receiver<T, std::convert::Infallible> for Store<'_, T> {
    fn set_value(self, v: T) {
        *self.0.lock().unwrap() = Some(Ok(v));
    }
    fn set_error(self, e: std::convert::Infallible) {
        match e {}
    }
    fn set_stopped(self) {
        *self.0.lock().unwrap() = Some(Err("stopped"));
    }
    fn set_panic(self, p: exec_core::PanicPayload) {
        std::panic::resume_unwind(p)
    }
    fn env(&self) -> impl exec_core::Env<'_> {
        StopEnv(self.1)
    }
}
struct StopEnv<'a>(Option<&'a StopSource>);
impl<'a> exec_core::Env<'a> for StopEnv<'a> {
    fn stop_token(&self) -> exec_core::StopToken<'a> {
        self.0.map_or(exec_core::StopToken::never(), |s| s.token())
    }
}

#[test]
fn a_future_ready_on_its_first_poll_allocates_nothing() {
    let (out, n) = allocations_during(|| sync_wait(from_future(async { 1 })));
    assert_eq!(out, Ok(Some(1)));
    assert_eq!(n, 0, "allocations for sync_wait(from_future(ready))");

    let (out, n) = allocations_during(|| sync_wait(from_future(async { 20 }).then(|x| x + 1)));
    assert_eq!(out, Ok(Some(21)));
    assert_eq!(n, 0);

    let (out, n) = allocations_during(|| sync_wait(from_try_future(async { Err::<i32, _>(7u8) })));
    assert_eq!(out, Err(7));
    assert_eq!(n, 0, "error channel");
}

#[test]
fn ready_with_a_stop_token_that_can_stop_allocates_nothing() {
    // The stop callback is registered (and deregistered) without a cell.
    let source = StopSource::new();
    let slot = Mutex::new(None);
    let ((), n) = allocations_during(|| {
        let mut op = pin!(from_future(async { 5 }).connect(Store(&slot, Some(&source))));
        // SAFETY: `op` stays on this frame, and it completes inside `start`.
        unsafe { op.as_mut().start() };
    });
    assert_eq!(*slot.lock().unwrap(), Some(Ok(5)));
    assert_eq!(n, 0);
    // A stop after completion finds the callback gone.
    source.request_stop();
    assert_eq!(*slot.lock().unwrap(), Some(Ok(5)));
}

#[test]
fn wake_by_ref_then_ready_on_the_first_poll_allocates_nothing() {
    let (out, n) = allocations_during(|| {
        sync_wait(from_future(std::future::poll_fn(|cx| {
            cx.waker().wake_by_ref();
            Poll::Ready(3)
        })))
    });
    assert_eq!(out, Ok(Some(3)));
    assert_eq!(n, 0);
}

#[test]
fn a_clone_of_the_first_poll_waker_works_after_a_ready_completion() {
    // The clone creates the cell; the op (and its reference to the cell) is
    // gone when the clone is woken and dropped: no use-after-free (miri).
    let kept: Arc<Mutex<Option<Waker>>> = Arc::default();
    let k = kept.clone();
    {
        let (op, rec) = start(from_future(std::future::poll_fn(move |cx| {
            *k.lock().unwrap() = Some(cx.waker().clone());
            Poll::Ready(1)
        })));
        assert_eq!(rec.expect_value(), 1);
        op.finish();
    }
    let w = kept.lock().unwrap().take().unwrap();
    w.wake_by_ref();
    w.wake();
}

#[test]
fn clone_during_the_first_poll_then_woken_from_another_thread() {
    let drops = DropCounter::new();
    let t = drops.track(());
    let kept: Arc<Mutex<Option<Waker>>> = Arc::default();
    let k = kept.clone();
    let polls = Arc::new(AtomicUsize::new(0));
    let p = polls.clone();
    let (op, rec) = start(from_future(std::future::poll_fn(move |cx| {
        let _keep = &t;
        if p.fetch_add(1, Ordering::SeqCst) == 0 {
            *k.lock().unwrap() = Some(cx.waker().clone());
            Poll::Pending
        } else {
            Poll::Ready(std::thread::current().id())
        }
    })));
    assert!(!rec.is_complete());
    let woke_on = std::thread::spawn(move || {
        kept.lock().unwrap().take().unwrap().wake();
        std::thread::current().id()
    })
    .join()
    .unwrap();
    assert_eq!(rec.expect_value(), woke_on, "polled by the waking thread");
    assert_eq!(polls.load(Ordering::SeqCst), 2);
    assert_eq!(drops.alive(), 0, "future dropped at completion");
    op.finish();
}

#[test]
fn clone_during_the_first_poll_under_sync_wait() {
    let kept: Arc<Mutex<Option<Waker>>> = Arc::default();
    let k = kept.clone();
    let mut first = true;
    let waker_thread = std::thread::spawn(move || {
        loop {
            if let Some(w) = kept.lock().unwrap().take() {
                w.wake();
                return;
            }
            std::thread::yield_now();
        }
    });
    let out = sync_wait(from_future(std::future::poll_fn(move |cx| {
        if first {
            first = false;
            *k.lock().unwrap() = Some(cx.waker().clone());
            Poll::Pending
        } else {
            Poll::Ready(std::thread::current().id())
        }
    })));
    waker_thread.join().unwrap();
    assert_eq!(
        out,
        Ok(Some(std::thread::current().id())),
        "repolled on the sync_wait thread"
    );
}

#[test]
fn wake_by_ref_during_the_first_poll_then_pending_is_polled_again() {
    let polls = Arc::new(AtomicUsize::new(0));
    let p = polls.clone();
    let (op, rec) = start(from_future(std::future::poll_fn(move |cx| {
        if p.fetch_add(1, Ordering::SeqCst) == 0 {
            cx.waker().wake_by_ref();
            Poll::Pending
        } else {
            Poll::Ready(9)
        }
    })));
    assert_eq!(
        rec.expect_value(),
        9,
        "repolled inline, no one else can wake it"
    );
    assert_eq!(polls.load(Ordering::SeqCst), 2);
    op.finish();

    // Under sync_wait (a scheduler): re-enqueued and polled by its loop.
    let mut n = 0;
    let out = sync_wait(from_future(std::future::poll_fn(move |cx| {
        n += 1;
        if n < 3 {
            cx.waker().wake_by_ref();
            Poll::Pending
        } else {
            Poll::Ready(n)
        }
    })));
    assert_eq!(out, Ok(Some(3)));
}

#[test]
fn the_first_poll_waker_lent_to_another_thread() {
    // The future lends `&Waker` to a scoped thread, which clones it and
    // wakes it by reference during the poll; the clone is woken later, from
    // yet another thread.
    let kept: Arc<Mutex<Option<Waker>>> = Arc::default();
    let k = kept.clone();
    let polls = Arc::new(AtomicUsize::new(0));
    let p = polls.clone();
    let (op, rec) = start(from_future(std::future::poll_fn(move |cx| {
        match p.fetch_add(1, Ordering::SeqCst) {
            0 => {
                let waker = cx.waker();
                std::thread::scope(|s| {
                    s.spawn(|| {
                        *k.lock().unwrap() = Some(waker.clone());
                        waker.wake_by_ref();
                    });
                    s.spawn(|| drop(waker.clone()));
                });
                Poll::Pending
            }
            // Polled again for the wake_by_ref.
            1 => Poll::Pending,
            _ => Poll::Ready("woken"),
        }
    })));
    assert!(!rec.is_complete());
    assert_eq!(polls.load(Ordering::SeqCst), 2);
    std::thread::spawn(move || kept.lock().unwrap().take().unwrap().wake())
        .join()
        .unwrap();
    assert_eq!(rec.expect_value(), "woken");
    op.finish();
}

#[test]
fn stop_after_a_pending_first_poll_that_kept_no_waker() {
    // Nobody can wake this future; a stop request still completes it.
    let drops = DropCounter::new();
    let t = drops.track(());
    let source = Arc::new(StopSource::new());
    let (r, rec) = recorder_with_stop::<(), std::convert::Infallible>(source.clone());
    let op = start_with(
        from_future(std::future::poll_fn(move |_| {
            let _keep = &t;
            Poll::Pending
        })),
        r,
        &rec,
    );
    assert!(!rec.is_complete());
    let s2 = source.clone();
    std::thread::spawn(move || s2.request_stop())
        .join()
        .unwrap();
    rec.expect_stopped();
    assert_eq!(drops.alive(), 0);
    op.finish();
}

#[test]
fn stop_during_the_first_poll() {
    // Pending: completes stopped right after the poll, without a second.
    let source = Arc::new(StopSource::new());
    let (r, rec) = recorder_with_stop::<u8, std::convert::Infallible>(source.clone());
    let s2 = source.clone();
    let polls = Arc::new(AtomicUsize::new(0));
    let p = polls.clone();
    let op = start_with(
        from_future(std::future::poll_fn(move |_| {
            p.fetch_add(1, Ordering::SeqCst);
            s2.request_stop();
            Poll::Pending
        })),
        r,
        &rec,
    );
    rec.expect_stopped();
    assert_eq!(polls.load(Ordering::SeqCst), 1);
    op.finish();

    // Ready: the value wins (as for a stop during any poll).
    let source = Arc::new(StopSource::new());
    let (r, rec) = recorder_with_stop::<u8, std::convert::Infallible>(source.clone());
    let s2 = source.clone();
    let op = start_with(
        from_future(std::future::poll_fn(move |_| {
            s2.request_stop();
            Poll::Ready(4)
        })),
        r,
        &rec,
    );
    assert_eq!(rec.expect_value(), 4);
    op.finish();
}

#[test]
fn stop_before_start_never_polls_and_after_completion_is_ignored() {
    let source = Arc::new(StopSource::new());
    source.request_stop();
    let (r, rec) = recorder_with_stop::<u8, std::convert::Infallible>(source.clone());
    let op = start_with(
        from_future(std::future::poll_fn(|_| -> Poll<u8> { panic!("polled") })),
        r,
        &rec,
    );
    rec.expect_stopped();
    op.finish();

    let source = Arc::new(StopSource::new());
    let (r, rec) = recorder_with_stop::<u8, std::convert::Infallible>(source.clone());
    let op = start_with(from_future(async { 2 }), r, &rec);
    assert_eq!(rec.expect_value(), 2);
    source.request_stop();
    assert_eq!(rec.completions(), 1);
    op.finish();
}

#[test]
fn a_panic_on_the_first_poll_is_delivered_once() {
    let drops = DropCounter::new();
    let t = drops.track(());
    let (op, rec) = start(from_future(std::future::poll_fn(move |_| -> Poll<u8> {
        let _keep = &t;
        panic!("first poll")
    })));
    assert_eq!(rec.expect_panic(), "first poll");
    assert_eq!(rec.completions(), 1);
    assert_eq!(drops.alive(), 0);
    op.finish();
}
