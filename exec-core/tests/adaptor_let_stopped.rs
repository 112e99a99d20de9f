//! `let_stopped`: replaces *stopped* with another sender; value/error/panic
//! forwarded without calling the function.
mod common;

use common::*;
use exec_core::{Completion, Scheduler, SenderExt, StopSource, just, sync_wait};
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[test]
fn stopped_runs_the_next_sender() {
    let (op, rec) = start(
        Fixed::<i32, ()>(Completion::Stopped)
            .let_stopped(|| Fixed::<i32, ()>(Completion::Value(-1))),
    );
    assert_eq!(rec.expect_value(), -1);
    op.finish();
    assert_eq!(
        sync_wait(StoppedScheduler.schedule().let_stopped(|| just(()))),
        Ok(Some(()))
    );
}

#[test]
fn value_and_error_skip_f_and_drop_it_first() {
    for c in [Completion::Value(1), Completion::Error("e")] {
        let drops = DropCounter::new();
        let held = drops.track(());
        let called = Arc::new(AtomicBool::new(false));
        let cl = called.clone();
        let (op, rec) = start(Fixed::<i32, &str>(c).let_stopped(move || {
            let _keep = &held;
            cl.store(true, Ordering::SeqCst);
            Fixed::<i32, &str>(Completion::Value(0))
        }));
        match c {
            Completion::Value(v) => assert_eq!(rec.expect_value(), v),
            Completion::Error(e) => assert_eq!(rec.expect_error(), e),
            Completion::Stopped => unreachable!(),
        }
        assert!(!called.load(Ordering::SeqCst));
        assert_eq!(drops.alive(), 0);
        op.finish();
    }
}

#[test]
fn panics_are_delivered() {
    let (op, rec) = start(
        Fixed::<i32, ()>(Completion::Stopped).let_stopped(|| -> Fixed<i32, ()> { panic!("ls") }),
    );
    assert_eq!(rec.expect_panic(), "ls");
    op.finish();
    let (op, rec) = start(
        just(1)
            .then(|_: i32| -> i32 { panic!("up") })
            .let_stopped(|| -> exec_core::Just<i32> { unreachable!() }),
    );
    assert_eq!(rec.expect_panic(), "up");
    op.finish();
}

#[test]
fn stop_request_stops_first_then_fallback_runs() {
    let source = Arc::new(StopSource::new());
    let sch = ManualScheduler::new();
    let (r, rec) = recorder_with_stop::<i32, Infallible>(source.clone());
    let op = start_with(sch.schedule().then(|()| 1).let_stopped(|| just(2)), r, &rec);
    source.request_stop();
    assert_eq!(sch.run_all(), 1);
    assert_eq!(
        rec.expect_value(),
        2,
        "fallback after the first was stopped"
    );
    op.finish();
}

#[test]
fn fallback_keeps_what_f_captured_until_it_completes() {
    let drops = DropCounter::new();
    let t = drops.track(5);
    let sch = ManualScheduler::new();
    let s2 = sch.clone();
    let (op, rec) = start(
        Fixed::<i32, Infallible>(Completion::Stopped).let_stopped(move || {
            s2.schedule().then(move |()| {
                let t = t;
                t.value
            })
        }),
    );
    assert_eq!(drops.alive(), 1);
    sch.run_all();
    assert_eq!(rec.expect_value(), 5);
    assert_eq!(drops.alive(), 0);
    op.finish();
}
