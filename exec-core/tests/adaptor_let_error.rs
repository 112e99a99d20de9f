//! `let_error`: recovers from errors; value/stopped/panic forwarded without
//! calling the function.
mod common;

use common::*;
use exec_core::{Completion, Scheduler, SenderExt, StopSource, sync_wait};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

fn flag() -> (Arc<AtomicBool>, Arc<AtomicBool>) {
    let f = Arc::new(AtomicBool::new(false));
    (f.clone(), f)
}

#[test]
fn error_runs_the_next_sender() {
    let (op, rec) = start(
        Fixed::<i32, &str>(Completion::Error("four"))
            .let_error(|e| Fixed::<i32, ()>(Completion::Value(e.len() as i32))),
    );
    assert_eq!(rec.expect_value(), 4);
    op.finish();
    let s = Fixed::<i32, &str>(Completion::Error("x"))
        .let_error(|_| Fixed::<i32, String>(Completion::Error("again".into())));
    assert_eq!(sync_wait(s), Err(String::from("again")));
}

#[test]
fn value_skips_f_and_drops_it_first() {
    let drops = DropCounter::new();
    let held = drops.track(());
    let (called, c) = flag();
    let (op, rec) = start(
        Fixed::<i32, &str>(Completion::Value(3)).let_error(move |_| {
            let _keep = &held;
            c.store(true, Ordering::SeqCst);
            Fixed::<i32, ()>(Completion::Value(0))
        }),
    );
    assert_eq!(rec.expect_value(), 3);
    assert!(!called.load(Ordering::SeqCst));
    assert_eq!(drops.alive(), 0);
    op.finish();
}

#[test]
fn stopped_skips_f() {
    let (called, c) = flag();
    let (op, rec) = start(Fixed::<i32, &str>(Completion::Stopped).let_error(move |_| {
        c.store(true, Ordering::SeqCst);
        Fixed::<i32, ()>(Completion::Value(0))
    }));
    rec.expect_stopped();
    assert!(!called.load(Ordering::SeqCst));
    op.finish();
}

#[test]
fn panics_are_delivered() {
    let (op, rec) = start(
        Fixed::<i32, &str>(Completion::Error("e"))
            .let_error(|_| -> Fixed<i32, ()> { panic!("let_error f") }),
    );
    assert_eq!(rec.expect_panic(), "let_error f");
    op.finish();
    let (called, c) = flag();
    let (op, rec) = start(
        exec_core::just(1)
            .then(|_: i32| -> i32 { panic!("upstream") })
            .let_error(move |_: std::convert::Infallible| -> Fixed<i32, ()> {
                c.store(true, Ordering::SeqCst);
                unreachable!("an Infallible error cannot exist")
            }),
    );
    assert_eq!(rec.expect_panic(), "upstream");
    assert!(!called.load(Ordering::SeqCst));
    op.finish();
}

#[test]
fn error_dropped_once_the_recovery_completes() {
    let drops = DropCounter::new();
    let sch = ManualScheduler::new();
    let s2 = sch.clone();
    let (op, rec) = start(
        Fixed::<i32, Tracked<i32>>(Completion::Error(drops.track(9))).let_error(move |e| {
            s2.schedule().then(move |()| {
                let e = e;
                e.value
            })
        }),
    );
    assert_eq!(drops.alive(), 1, "the error is held by the recovery sender");
    sch.run_all();
    assert_eq!(rec.expect_value(), 9);
    assert_eq!(drops.alive(), 0);
    op.finish();
}

#[test]
fn cancellation_reaches_the_recovery_sender() {
    let source = Arc::new(StopSource::new());
    let sch = ManualScheduler::new();
    let s2 = sch.clone();
    let (r, rec) = recorder_with_stop::<(), std::convert::Infallible>(source.clone());
    let op = start_with(
        Fixed::<(), &str>(Completion::Error("e")).let_error(move |_| s2.schedule()),
        r,
        &rec,
    );
    source.request_stop();
    sch.run_all();
    rec.expect_stopped();
    op.finish();
}
