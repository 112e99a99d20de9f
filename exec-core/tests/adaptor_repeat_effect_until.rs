//! `repeat_effect_until`: loops until the predicate holds, ends on
//! error/stopped/panic, stops between iterations, and never grows the stack.
mod common;

use common::*;
use exec_core::{Completion, Scheduler, SenderExt, StopSource, just, sync_wait};
use std::cell::Cell;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// 10,000,000 inline iterations (the figure; ~2 s in debug),
/// 1,000 under miri.
fn many() -> usize {
    if cfg!(miri) { 1_000 } else { 10_000_000 }
}

#[test]
fn repeats_until_the_predicate_holds() {
    let runs = Cell::new(0u32);
    let s = just(()).then(|()| {
        runs.set(runs.get() + 1);
        runs.get()
    });
    assert_eq!(sync_wait(s.repeat_effect_until(|v| v == 7)), Ok(Some(())));
    assert_eq!(runs.get(), 7);
}

#[test]
fn p2300_shape_sender_of_bool() {
    let n = Cell::new(0);
    let s = just(()).then(|()| {
        n.set(n.get() + 1);
        n.get() >= 3
    });
    assert_eq!(sync_wait(s.repeat_effect_until(|done| done)), Ok(Some(())));
    assert_eq!(n.get(), 3);
}

#[test]
fn many_inline_iterations_do_not_grow_the_stack() {
    let target = many();
    let (result, count) = std::thread::Builder::new()
        .stack_size(256 << 10)
        .spawn(move || {
            let count = Cell::new(0usize);
            let s = just(()).then(|()| {
                count.set(count.get() + 1);
            });
            let r = sync_wait(s.repeat_effect_until(|()| count.get() == target));
            (r, count.get())
        })
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(result, Ok(Some(())));
    assert_eq!(count, target);
}

#[test]
fn error_ends_the_loop_without_calling_pred() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let (op, rec) = start(
        Fixed::<i32, &str>(Completion::Error("e")).repeat_effect_until(move |_| {
            c.fetch_add(1, Ordering::SeqCst);
            false
        }),
    );
    assert_eq!(rec.expect_error(), "e");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    op.finish();
}

#[test]
fn stopped_ends_the_loop() {
    let (op, rec) = start(Fixed::<i32, ()>(Completion::Stopped).repeat_effect_until(|_| false));
    rec.expect_stopped();
    op.finish();
}

#[test]
fn panics_end_the_loop() {
    let (op, rec) = start(just(1).repeat_effect_until(|_| -> bool { panic!("pred") }));
    assert_eq!(rec.expect_panic(), "pred");
    op.finish();
    let (op, rec) = start(
        just(1)
            .then(|_: i32| -> i32 { panic!("iteration") })
            .repeat_effect_until(|_| false),
    );
    assert_eq!(rec.expect_panic(), "iteration");
    op.finish();
}

#[test]
fn asynchronous_iterations_and_exactly_once() {
    let sch = ManualScheduler::new();
    let n = Arc::new(AtomicUsize::new(0));
    let n2 = n.clone();
    let (op, rec) = start(
        sch.schedule()
            .repeat_effect_until(move |()| n2.fetch_add(1, Ordering::SeqCst) + 1 == 4),
    );
    for i in 1..4 {
        assert!(!rec.is_complete());
        assert!(sch.run_one(), "iteration {i}");
    }
    assert!(!rec.is_complete());
    assert!(sch.run_one());
    assert_eq!(rec.completions(), 1);
    rec.expect_value();
    assert_eq!(n.load(Ordering::SeqCst), 4);
    assert_eq!(sch.pending(), 0, "no iteration after the last");
    op.finish();
}

#[test]
fn stop_request_between_iterations_ends_with_stopped() {
    let source = Arc::new(StopSource::new());
    let s2 = source.clone();
    let n = Arc::new(AtomicUsize::new(0));
    let n2 = n.clone();
    let (r, rec) = recorder_with_stop::<(), Infallible>(source.clone());
    let op = start_with(
        just(()).repeat_effect_until(move |()| {
            if n2.fetch_add(1, Ordering::SeqCst) + 1 == 3 {
                s2.request_stop();
            }
            false
        }),
        r,
        &rec,
    );
    rec.expect_stopped();
    assert_eq!(
        n.load(Ordering::SeqCst),
        3,
        "no iteration after the stop request"
    );
    op.finish();
}

#[test]
fn held_values_dropped_when_the_loop_ends() {
    let drops = DropCounter::new();
    let held = Arc::new(drops.track(()));
    let h2 = held.clone();
    let iter_value = drops.clone();
    drop(held);
    let (op, rec) = start(
        just(())
            .then(move |()| {
                let _ = &h2;
                iter_value.track(1)
            })
            .repeat_effect_until(|t| t.value == 1),
    );
    rec.expect_value();
    assert_eq!(
        drops.alive(),
        0,
        "template sender, iteration values dropped"
    );
    op.finish();
}
