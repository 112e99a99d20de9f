//! `stopped_as_optional`: value -> Some, stopped -> None.
mod common;

use common::*;
use exec_core::{Completion, Scheduler, Sender, SenderExt, StopSource, just, sync_wait};
use std::sync::Arc;

#[test]
fn all_channels() {
    assert_eq!(sync_wait(just(3).stopped_as_optional()), Ok(Some(Some(3))));
    let (op, rec) = start(Fixed::<i32, &str>(Completion::Stopped).stopped_as_optional());
    assert_eq!(rec.expect_value(), None);
    op.finish();
    let (op, rec) = start(Fixed::<i32, &str>(Completion::Error("e")).stopped_as_optional());
    assert_eq!(rec.expect_error(), "e");
    op.finish();
    let (op, rec) = start(
        just(1)
            .then(|_| -> i32 { panic!("p") })
            .stopped_as_optional(),
    );
    assert_eq!(rec.expect_panic(), "p");
    op.finish();
}

#[test]
fn never_sends_stopped() {
    fn sends_stopped<S: Sender>(_: &S) -> bool {
        S::SENDS_STOPPED
    }
    assert!(!sends_stopped(
        &Fixed::<i32, ()>(Completion::Stopped).stopped_as_optional()
    ));
}

#[test]
fn cancellation_arrives_as_none() {
    let sched = ManualScheduler::new();
    let source = Arc::new(StopSource::new());
    let (r, rec) = recorder_with_stop(source.clone());
    let op = start_with(sched.schedule().stopped_as_optional(), r, &rec);
    source.request_stop();
    sched.run_all();
    assert_eq!(rec.expect_value(), None);
    op.finish();
}
