//! `on(sched, work, back)`: starts on `sched`, delivers on `back`.
mod common;

use common::*;
use exec_core::{Completion, SenderExt, StopSource, just, on, sync_wait};
use std::sync::Arc;

#[test]
fn runs_on_one_and_completes_on_the_other() {
    let there = ManualScheduler::new();
    let back = ManualScheduler::new();
    let (op, rec) = start(on(there.clone(), just(20).then(|x| x + 1), back.clone()));
    assert_eq!((there.pending(), back.pending()), (1, 0));
    there.run_all();
    assert_eq!(
        (there.pending(), back.pending()),
        (0, 1),
        "work done, hop back queued"
    );
    assert!(!rec.is_complete());
    back.run_all();
    assert_eq!(rec.expect_value(), 21);
    op.finish();
}

#[test]
fn channels_forwarded_after_hopping_back() {
    let there = ManualScheduler::new();
    let back = ManualScheduler::new();
    let (op, rec) = start(on(
        there.clone(),
        Fixed::<i32, &str>(Completion::Error("e")),
        back.clone(),
    ));
    there.run_all();
    assert!(!rec.is_complete());
    back.run_all();
    assert_eq!(rec.expect_error(), "e");
    op.finish();
    let (op, rec) = start(on(
        there.clone(),
        just(1).then(|_| -> i32 { panic!("p") }),
        back.clone(),
    ));
    there.run_all();
    back.run_all();
    assert_eq!(rec.expect_panic(), "p");
    op.finish();
    let (op, rec) = start(on(StoppedScheduler, just(1), back.clone()));
    back.run_all();
    rec.expect_stopped();
    op.finish();
}

#[test]
fn stop_while_returning_drops_the_result() {
    let there = ManualScheduler::new();
    let back = ManualScheduler::new();
    let drops = DropCounter::new();
    let source = Arc::new(StopSource::new());
    let (r, rec) = recorder_with_stop(source.clone());
    let op = start_with(
        on(there.clone(), just(drops.track(1)), back.clone()),
        r,
        &rec,
    );
    there.run_all();
    assert_eq!(drops.alive(), 1);
    source.request_stop();
    back.run_all();
    rec.expect_stopped();
    assert_eq!(drops.alive(), 0);
    op.finish();
}

#[test]
fn with_sync_wait() {
    let s = on(
        exec_core::InlineScheduler,
        just(2),
        exec_core::InlineScheduler,
    )
    .then(|x| x * 21);
    assert_eq!(sync_wait(s), Ok(Some(42)));
}
