//! `AsyncManualResetEvent`: set/reset, waiters woken by `set`, stop before
//! and while waiting, set from another thread.
mod common;

use common::*;
use exec_core::{AsyncManualResetEvent, SenderExt, SenderTo, StopSource, sync_wait};
use std::sync::Arc;

#[test]
fn wait_on_a_set_event_completes_inline() {
    let ev = AsyncManualResetEvent::new(true);
    let (op, rec) = start(ev.wait());
    rec.expect_value();
    op.finish();
}

#[test]
fn set_wakes_every_waiter_once_and_reset_makes_them_wait_again() {
    let ev = AsyncManualResetEvent::new(false);
    let waiting: Vec<_> = (0..4).map(|_| start(ev.wait())).collect();
    for (_, rec) in &waiting {
        assert!(!rec.is_complete());
    }
    ev.set();
    ev.set(); // idempotent: nobody completes twice (the recorder checks)
    for (op, rec) in waiting {
        rec.expect_value();
        op.finish();
    }
    ev.reset();
    assert!(!ev.is_set());
    let (op, rec) = start(ev.wait());
    assert!(!rec.is_complete());
    ev.set();
    rec.expect_value();
    op.finish();
}

#[test]
fn stop_before_start_and_while_waiting() {
    let ev = AsyncManualResetEvent::new(true);
    let source = Arc::new(StopSource::new());
    source.request_stop();
    let (r, rec) = recorder_with_stop(source);
    let op = start_with(ev.wait(), r, &rec);
    rec.expect_stopped();
    op.finish();

    let ev = AsyncManualResetEvent::new(false);
    let source = Arc::new(StopSource::new());
    let (r, rec) = recorder_with_stop(source.clone());
    let op = start_with(ev.wait(), r, &rec);
    let (other_op, other_rec) = start(ev.wait());
    source.request_stop();
    rec.expect_stopped();
    op.finish();
    ev.set();
    other_rec.expect_value();
    other_op.finish();
}

#[test]
fn closure_after_wait_is_dropped_when_stopped() {
    let drops = DropCounter::new();
    let held = drops.track(());
    let ev = AsyncManualResetEvent::new(false);
    let source = Arc::new(StopSource::new());
    let (r, rec) = recorder_with_stop(source.clone());
    let op = start_with(
        ev.wait().then(move |()| {
            let _keep = &held;
        }),
        r,
        &rec,
    );
    source.request_stop();
    rec.expect_stopped();
    op.finish();
    assert_eq!(drops.alive(), 0);
}

#[test]
fn set_from_another_thread_wakes_sync_wait() {
    let rounds = if cfg!(miri) { 3 } else { 200 };
    for _ in 0..rounds {
        let ev = Arc::new(AsyncManualResetEvent::new(false));
        let setter = {
            let ev = ev.clone();
            std::thread::spawn(move || ev.set())
        };
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let ev = ev.clone();
                std::thread::spawn(move || sync_wait(ev.wait().then(|()| 1)))
            })
            .collect();
        setter.join().unwrap();
        for w in waiters {
            assert_eq!(w.join().unwrap(), Ok(Some(1)));
        }
    }
}

#[test]
fn stop_races_set() {
    let rounds = if cfg!(miri) { 3 } else { 300 };
    for _ in 0..rounds {
        let ev = Arc::new(AsyncManualResetEvent::new(false));
        let source = Arc::new(StopSource::new());
        let (r, rec) = recorder_with_stop(source.clone());
        let op = start_with(ev.wait(), r, &rec);
        let stopper = std::thread::spawn(move || source.request_stop());
        ev.set();
        stopper.join().unwrap();
        assert_eq!(rec.completions(), 1);
        op.finish();
    }
}

#[test]
fn wait_op_is_small() {
    // As `LockOp` (see sync_async_mutex.rs): 10 words with a one-word
    // receiver. It was 12.
    let ev = AsyncManualResetEvent::new(false);
    let (r, _rec) = recorder::<(), core::convert::Infallible>();
    let op = ev.wait().connect(r);
    assert!(
        size_of_val(&op) <= 10 * size_of::<usize>(),
        "WaitOp is {} B",
        size_of_val(&op)
    );
}
