//! `ensure_started`: eager start, all channels, stop on drop, stop before
//! and while waiting, completion from other threads, nothing leaks.
mod common;

use common::*;
use exec_core::{Completion, Scheduler, SenderExt, SenderTo, StopSource, just, sync_wait};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

#[test]
fn starts_eagerly_and_delivers_the_value() {
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    let started = just(6)
        .then(move |x| {
            r.store(true, Ordering::SeqCst);
            x * 7
        })
        .ensure_started();
    assert!(ran.load(Ordering::SeqCst), "ran before anyone waited");
    assert_eq!(sync_wait(started), Ok(Some(42)));
}

#[test]
fn value_arrives_later_from_a_manual_scheduler() {
    let sch = ManualScheduler::new();
    let started = sch
        .schedule()
        .then(|()| String::from("late"))
        .ensure_started();
    assert_eq!(sch.pending(), 1, "scheduled at ensure_started()");
    let (op, rec) = start(started);
    assert!(!rec.is_complete());
    sch.run_all();
    assert_eq!(rec.expect_value(), "late");
    op.finish();
}

#[test]
fn error_and_stopped_are_forwarded() {
    let (op, rec) = start(Fixed::<i32, &str>(Completion::Error("e")).ensure_started());
    assert_eq!(rec.expect_error(), "e");
    op.finish();
    let (op, rec) = start(Fixed::<i32, ()>(Completion::Stopped).ensure_started());
    rec.expect_stopped();
    op.finish();
}

#[test]
fn panic_is_delivered_with_the_original_payload() {
    let sch = ManualScheduler::new();
    let started = sch
        .schedule()
        .then(|()| -> u8 { panic!("eager boom") })
        .ensure_started();
    let (op, rec) = start(started);
    sch.run_all();
    assert_eq!(rec.expect_panic(), "eager boom");
    op.finish();
}

#[test]
fn dropping_the_sender_requests_stop_and_frees_after_completion() {
    let drops = DropCounter::new();
    let held = drops.track(());
    let called = Arc::new(AtomicBool::new(false));
    let c = called.clone();
    let sch = ManualScheduler::new();
    let started = sch
        .schedule()
        .then(move |()| {
            let _keep = &held;
            c.store(true, Ordering::SeqCst);
        })
        .ensure_started();
    drop(started);
    assert_eq!(drops.alive(), 1, "the work is still running");
    sch.run_all(); // the schedule op sees its stop token triggered
    assert!(!called.load(Ordering::SeqCst), "work was asked to stop");
    assert_eq!(drops.alive(), 0, "freed when the work completed");
}

#[test]
fn dropping_a_connected_unstarted_op_also_detaches() {
    let sch = ManualScheduler::new();
    let started = sch.schedule().then(|()| 1).ensure_started();
    let (r, rec) = recorder::<i32, std::convert::Infallible>();
    let op = started.connect(r);
    drop(op);
    sch.run_all();
    assert_eq!(rec.completions(), 0);
}

#[test]
fn result_is_dropped_when_nobody_takes_it() {
    let drops = DropCounter::new();
    let v = drops.track(3);
    let started = just(v).ensure_started();
    assert_eq!(drops.alive(), 1, "result stored");
    drop(started);
    assert_eq!(drops.alive(), 0);
}

#[test]
fn held_value_moves_to_the_consumer() {
    let drops = DropCounter::new();
    let v = drops.track(3);
    let got = sync_wait(just(v).ensure_started()).unwrap().unwrap();
    assert_eq!(drops.alive(), 1);
    assert_eq!(got.value, 3);
    drop(got);
    assert_eq!(drops.alive(), 0);
}

#[test]
fn stop_before_start_completes_stopped_and_stops_the_work() {
    let sch = ManualScheduler::new();
    let called = Arc::new(AtomicBool::new(false));
    let c = called.clone();
    let started = sch
        .schedule()
        .then(move |()| c.store(true, Ordering::SeqCst))
        .ensure_started();
    let source = Arc::new(StopSource::new());
    source.request_stop();
    let (r, rec) = recorder_with_stop(source);
    let op = start_with(started, r, &rec);
    rec.expect_stopped();
    op.finish();
    sch.run_all();
    assert!(!called.load(Ordering::SeqCst));
}

#[test]
fn stop_while_waiting_completes_stopped_at_once() {
    let sch = ManualScheduler::new();
    let drops = DropCounter::new();
    let held = drops.track(());
    let started = sch
        .schedule()
        .then(move |()| {
            let _keep = &held;
        })
        .ensure_started();
    let source = Arc::new(StopSource::new());
    let (r, rec) = recorder_with_stop(source.clone());
    let op = start_with(started, r, &rec);
    assert!(!rec.is_complete());
    source.request_stop();
    rec.expect_stopped();
    op.finish();
    assert_eq!(drops.alive(), 1, "work still pending on the scheduler");
    sch.run_all();
    assert_eq!(drops.alive(), 0);
}

#[test]
fn completion_on_another_thread_races_drop_and_start() {
    let rounds = if cfg!(miri) { 3 } else { 300 };
    let count = Arc::new(AtomicUsize::new(0));
    for i in 0..rounds {
        let sch = ManualScheduler::new();
        let c = count.clone();
        let started = sch
            .schedule()
            .then(move |()| {
                c.fetch_add(1, Ordering::SeqCst);
                7
            })
            .ensure_started();
        let runner = std::thread::spawn(move || sch.run_all());
        if i % 2 == 0 {
            drop(started);
        } else {
            let r = std::thread::spawn(move || sync_wait(started))
                .join()
                .unwrap();
            assert_eq!(r, Ok(Some(7)));
        }
        runner.join().unwrap();
    }
}
