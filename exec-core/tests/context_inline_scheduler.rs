//! `InlineScheduler`: completes inside `start`, on the starting thread;
//! stopped if stop was already requested.
mod common;

use common::*;
use exec_core::{
    CompletionScheduler, InlineScheduler, Scheduler, SenderExt, StopSource, sync_wait,
};
use std::sync::Arc;

#[test]
fn completes_inline_on_the_calling_thread() {
    let me = std::thread::current().id();
    let (op, rec) = start(
        InlineScheduler
            .schedule()
            .then(move |()| std::thread::current().id()),
    );
    assert!(rec.is_complete(), "completed inside start");
    assert_eq!(rec.expect_value(), me);
    op.finish();
    assert_eq!(
        sync_wait(InlineScheduler.schedule().then(|()| 7)),
        Ok(Some(7))
    );
}

#[test]
fn stopped_when_stop_already_requested() {
    let source = Arc::new(StopSource::new());
    source.request_stop();
    let (r, rec) = recorder_with_stop(source);
    let op = start_with(InlineScheduler.schedule(), r, &rec);
    rec.expect_stopped();
    op.finish();
}

#[test]
fn not_stopped_when_stop_possible_but_not_requested() {
    let source = Arc::new(StopSource::new());
    let (r, rec) = recorder_with_stop(source);
    let op = start_with(InlineScheduler.schedule(), r, &rec);
    rec.expect_value();
    op.finish();
}

#[test]
fn scheduler_identity() {
    assert!(InlineScheduler == InlineScheduler);
    assert!(InlineScheduler.schedule().completion_scheduler() == InlineScheduler);
    assert_eq!(std::mem::size_of::<InlineScheduler>(), 0);
}
