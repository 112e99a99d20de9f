//! `when_any`: first value or error wins, the others are stopped; stopped
//! only if every child stopped; exactly once, after every child completed.
mod common;
mod nary_support;

use std::sync::Arc;

use common::*;
use exec_core::{Completion, Scheduler, SenderExt, StopSource, just, sync_wait, when_any};
use nary_support::*;

#[test]
fn first_value_wins_and_others_are_stopped() {
    let (a, ha) = gate::<i32, &str>();
    let (b, hb) = gate::<i32, &str>();
    let (c, hc) = gate::<i32, &str>();
    let (op, rec) = start(exec_core::when_any!(a, b, c));
    assert!(hb.value(2));
    assert!(ha.stopped_by_request() && hc.stopped_by_request());
    assert_eq!(rec.expect_value(), 2);
    op.finish();
    assert_eq!(sync_wait(when_any(just(1), just(2))), Ok(Some(1)));
}

#[test]
fn first_error_wins() {
    let (a, ha) = gate::<i32, &str>();
    let (op, rec) = start(when_any(a, Fixed::<i32, &str>(Completion::Error("e"))));
    assert!(ha.stopped_by_request());
    assert_eq!(rec.expect_error(), "e");
    op.finish();
}

#[test]
fn a_stopped_child_does_not_win_or_stop_siblings() {
    let (a, ha) = gate::<i32, &str>();
    let (op, rec) = start(when_any(Fixed::<i32, &str>(Completion::Stopped), a));
    assert!(!ha.stopped_by_request());
    assert_eq!(rec.completions(), 0);
    assert!(ha.value(5));
    assert_eq!(rec.expect_value(), 5);
    op.finish();
}

#[test]
fn stopped_only_if_all_stop() {
    let (op, rec) = start(when_any(
        Fixed::<i32, &str>(Completion::Stopped),
        Fixed::<i32, &str>(Completion::Stopped),
    ));
    rec.expect_stopped();
    op.finish();
}

#[test]
fn stop_from_outside() {
    let source = Arc::new(StopSource::new());
    let (r, rec) = recorder_with_stop::<i32, &str>(source.clone());
    let (a, ha) = gate::<i32, &str>();
    let (b, hb) = gate::<i32, &str>();
    let op = start_with(when_any(a, b), r, &rec);
    source.request_stop();
    assert!(ha.stopped_by_request() && hb.stopped_by_request());
    rec.expect_stopped();
    op.finish();
}

#[test]
fn completes_after_every_child_completed() {
    let sch = ManualScheduler::new();
    let (op, rec) = start(when_any(
        just(1),
        sch.schedule()
            .then(|()| -> i32 { unreachable!("stopped before it ran") }),
    ));
    assert_eq!(rec.completions(), 0, "waits for the stopped sibling");
    sch.run_all();
    assert_eq!(rec.expect_value(), 1);
    op.finish();
}

#[test]
fn panic_first_wins_delivered_once() {
    let sch = ManualScheduler::new();
    let (op, rec) = start(when_any(
        sch.schedule().then(|()| 1),
        just(()).then(|()| -> i32 { panic!("any panicked") }),
    ));
    assert_eq!(rec.completions(), 0);
    sch.run_all();
    assert_eq!(rec.expect_panic(), "any panicked");
    op.finish();
}

#[test]
fn losing_values_dropped() {
    let drops = DropCounter::new();
    let (a, ha) = gate::<Tracked<i32>, &str>();
    let (b, hb) = gate::<Tracked<i32>, &str>();
    let (op, rec) = start(when_any(a, b));
    // Both race on other threads; one wins, the other's value (if it got in
    // before the stop) is dropped.
    let d1 = drops.clone();
    let d2 = drops.clone();
    let t1 = std::thread::spawn(move || ha.value(d1.track(1)));
    let t2 = std::thread::spawn(move || hb.value(d2.track(2)));
    t1.join().unwrap();
    t2.join().unwrap();
    let v = rec.expect_value();
    assert!(v.value == 1 || v.value == 2);
    drop(v);
    op.finish();
    assert_eq!(drops.alive(), 0);
}

#[test]
fn stress_two_threads() {
    let iterations = if cfg!(miri) { 20 } else { 2_000 };
    let mut rng = Rng::new(7);
    for i in 0..iterations {
        let source = Arc::new(StopSource::new());
        let (r, rec) = recorder_with_stop::<u64, u64>(source.clone());
        let (a, ha) = gate::<u64, u64>();
        let (b, hb) = gate::<u64, u64>();
        let op = start_with(when_any(a, b), r, &rec);
        let stop = rng.below(3) == 0;
        let t1 = std::thread::spawn(move || ha.value(1));
        let t2 = std::thread::spawn(move || hb.complete(Delivery::Error(2)));
        if stop {
            source.request_stop();
        }
        let (w1, w2) = (t1.join().unwrap(), t2.join().unwrap());
        assert_eq!(rec.completions(), 1, "iteration {i}");
        match rec.take() {
            Seen::Value(1) => assert!(w1),
            Seen::Error(2) => assert!(w2),
            Seen::Stopped => assert!(stop && !w1 && !w2),
            other => panic!("unexpected {other:?}"),
        }
        op.finish();
    }
}
