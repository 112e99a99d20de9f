//! `stop_when`: the trigger stops the work; the work's completion stops the
//! trigger; the result is the work's completion.
mod common;
mod nary_support;

use std::convert::Infallible;
use std::sync::Arc;

use common::*;
use exec_core::{Completion, Scheduler, SenderExt, StopSource, just, stop_when, sync_wait};
use nary_support::*;

#[test]
fn work_first_stops_the_trigger() {
    let (w, hw) = gate::<i32, &str>();
    let (t, ht) = gate::<(), Infallible>();
    let (op, rec) = start(stop_when(w, t));
    assert!(hw.value(3));
    assert!(ht.stopped_by_request(), "trigger asked to stop");
    assert_eq!(rec.expect_value(), 3);
    op.finish();
    assert_eq!(sync_wait(just(7).stop_when(just(()))), Ok(Some(7)));
}

#[test]
fn trigger_first_stops_the_work() {
    for trigger in [
        Completion::Value(()),
        Completion::Error("trigger error"),
        Completion::Stopped,
    ] {
        let (w, hw) = gate::<i32, &str>();
        let (t, ht) = gate::<(), &str>();
        let (op, rec) = start(stop_when(w, t));
        assert!(ht.complete(trigger.into()));
        assert!(hw.stopped_by_request(), "work asked to stop");
        rec.expect_stopped();
        op.finish();
    }
}

#[test]
fn work_error_is_forwarded() {
    let (t, ht) = gate::<(), Infallible>();
    let (op, rec) = start(stop_when(Fixed::<i32, &str>(Completion::Error("e")), t));
    assert!(ht.stopped_by_request());
    assert_eq!(rec.expect_error(), "e");
    op.finish();
}

#[test]
fn trigger_first_then_work_runs_or_ignores_stop() {
    // The trigger fires first (inline); the scheduled work then sees the
    // stop request when the scheduler runs it, and its closure never runs.
    let sch = ManualScheduler::new();
    let called = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let c = called.clone();
    let (op, rec) = start(stop_when(
        sch.schedule()
            .then(move |()| c.store(true, std::sync::atomic::Ordering::SeqCst)),
        just(()),
    ));
    assert_eq!(rec.completions(), 0);
    sch.run_all();
    rec.expect_stopped();
    assert!(!called.load(std::sync::atomic::Ordering::SeqCst));
    op.finish();

    // A work that completes with a value even though stop was requested.
    let (op, rec) = start(stop_when(
        Fixed::<i32, &str>(Completion::Value(5)),
        just(()),
    ));
    assert_eq!(rec.expect_value(), 5);
    op.finish();
}

#[test]
fn stop_from_outside_reaches_both() {
    let source = Arc::new(StopSource::new());
    let (r, rec) = recorder_with_stop::<i32, &str>(source.clone());
    let (w, hw) = gate::<i32, &str>();
    let (t, ht) = gate::<(), Infallible>();
    let op = start_with(stop_when(w, t), r, &rec);
    source.request_stop();
    assert!(hw.stopped_by_request() && ht.stopped_by_request());
    rec.expect_stopped();
    op.finish();
}

#[test]
fn panics() {
    // In the work.
    let (t, _ht) = gate::<(), Infallible>();
    let (op, rec) = start(stop_when(
        just(1).then(|_: i32| -> i32 { panic!("work panicked") }),
        t,
    ));
    assert_eq!(rec.expect_panic(), "work panicked");
    op.finish();
    // In the trigger: stops the work, delivered instead of its result.
    let (w, hw) = gate::<i32, &str>();
    let (t, ht) = gate::<(), &str>();
    let (op, rec) = start(stop_when(w, t));
    assert!(ht.complete(Delivery::Panic("trigger panicked")));
    assert!(hw.stopped_by_request());
    assert_eq!(rec.expect_panic(), "trigger panicked");
    op.finish();
}

#[test]
fn drops() {
    let drops = DropCounter::new();
    {
        let (op, rec) = start(stop_when(just(drops.track(1)), just(drops.track(2))));
        assert_eq!(rec.expect_value().value, 1);
        op.finish();
    }
    {
        let (w, hw) = gate::<Tracked<i32>, &str>();
        let (op, rec) = start(stop_when(w, just(drops.track(3))));
        assert_eq!(hw.delivered(), 3);
        rec.expect_stopped();
        op.finish();
    }
    drop(stop_when(just(drops.track(4)), just(drops.track(5))));
    assert_eq!(drops.alive(), 0);
}

#[test]
fn stress_race_on_two_threads() {
    let iterations = if cfg!(miri) { 20 } else { 2_000 };
    let mut rng = Rng::new(99);
    for i in 0..iterations {
        let source = Arc::new(StopSource::new());
        let (r, rec) = recorder_with_stop::<u32, Infallible>(source.clone());
        let (w, hw) = gate::<u32, Infallible>();
        let (t, ht) = gate::<(), Infallible>();
        let op = start_with(stop_when(w, t), r, &rec);
        let stop = rng.below(4) == 0;
        let t1 = std::thread::spawn(move || hw.value(1));
        let t2 = std::thread::spawn(move || ht.value(()));
        if stop {
            source.request_stop();
        }
        let work_won = t1.join().unwrap();
        t2.join().unwrap();
        assert_eq!(rec.completions(), 1, "iteration {i}");
        match rec.take() {
            Seen::Value(1) => assert!(work_won),
            Seen::Stopped => assert!(!work_won),
            other => panic!("unexpected {other:?}"),
        }
        op.finish();
    }
}
