//! `upon_stopped`: recovers stopped; value/error/panic forwarded.
mod common;

use common::*;
use exec_core::{Completion, Sender, SenderExt, just, sync_wait};
use std::cell::Cell;
use std::sync::Arc;

#[test]
fn stopped_becomes_value() {
    let (op, rec) = start(Fixed::<i32, &str>(Completion::Stopped).upon_stopped(|| -1));
    assert_eq!(rec.expect_value(), -1);
    op.finish();
}

#[test]
fn never_sends_stopped() {
    fn sends_stopped<S: Sender>(_: &S) -> bool {
        S::SENDS_STOPPED
    }
    assert!(!sends_stopped(
        &Fixed::<i32, ()>(Completion::Stopped).upon_stopped(|| 0)
    ));
}

#[test]
fn value_and_error_forwarded_closure_dropped_unused() {
    let drops = DropCounter::new();
    let held = drops.track(());
    let (op, rec) = start(
        Fixed::<i32, &str>(Completion::Value(3)).upon_stopped(move || {
            let _keep = &held;
            0
        }),
    );
    assert_eq!(rec.expect_value(), 3);
    assert_eq!(drops.alive(), 0);
    op.finish();

    let called = Cell::new(false);
    let s = Fixed::<i32, &str>(Completion::Error("e")).upon_stopped(|| {
        called.set(true);
        0
    });
    assert_eq!(sync_wait(s), Err("e"));
    assert!(!called.get());
}

#[test]
fn panic_in_closure_is_delivered() {
    let (op, rec) =
        start(Fixed::<i32, ()>(Completion::Stopped).upon_stopped(|| -> i32 { panic!("nope") }));
    assert_eq!(rec.expect_panic(), "nope");
    op.finish();
}

#[test]
fn upstream_panic_forwarded() {
    let (op, rec) = start(just(0).then(|_| -> i32 { panic!("up") }).upon_stopped(|| 1));
    assert_eq!(rec.expect_panic(), "up");
    op.finish();
}

#[test]
fn cancelled_schedule_recovers() {
    let sched = ManualScheduler::new();
    let source = Arc::new(exec_core::StopSource::new());
    let (r, rec) = recorder_with_stop(source.clone());
    use exec_core::Scheduler;
    let op = start_with(sched.schedule().then(|()| 1).upon_stopped(|| 2), r, &rec);
    source.request_stop();
    assert_eq!(sched.run_all(), 1);
    assert_eq!(rec.expect_value(), 2);
    op.finish();
}
