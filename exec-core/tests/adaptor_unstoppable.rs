//! `unstoppable`: children see a never-stop token.
mod common;

use common::*;
use exec_core::{Completion, Env, Scheduler, SenderExt, StopSource, just, read_env};
use std::sync::Arc;

#[test]
fn child_sees_a_never_stop_token() {
    let outer = Arc::new(StopSource::new());
    outer.request_stop();
    let (r, rec) = recorder_with_stop(outer.clone());
    let op = start_with(
        read_env(|env: &dyn Env| env.stop_token().stop_possible()).unstoppable(),
        r,
        &rec,
    );
    assert!(!rec.expect_value());
    op.finish();
}

#[test]
fn stop_request_does_not_cancel_the_child() {
    let sched = ManualScheduler::new();
    let outer = Arc::new(StopSource::new());
    let (r, rec) = recorder_with_stop(outer.clone());
    let op = start_with(sched.schedule().then(|()| 5).unstoppable(), r, &rec);
    outer.request_stop();
    assert_eq!(sched.run_all(), 1);
    assert_eq!(rec.expect_value(), 5);
    op.finish();

    // Without `unstoppable` the same setup ends stopped.
    let (r, rec) = recorder_with_stop(outer.clone());
    let op = start_with(sched.schedule().then(|()| 5), r, &rec);
    sched.run_all();
    rec.expect_stopped();
    op.finish();
}

#[test]
fn channels_forwarded() {
    let (op, rec) = start(Fixed::<i32, &str>(Completion::Error("e")).unstoppable());
    assert_eq!(rec.expect_error(), "e");
    op.finish();
    let (op, rec) = start(Fixed::<i32, &str>(Completion::Stopped).unstoppable());
    rec.expect_stopped();
    op.finish();
    let (op, rec) = start(just(1).then(|_| -> i32 { panic!("p") }).unstoppable());
    assert_eq!(rec.expect_panic(), "p");
    op.finish();
}
