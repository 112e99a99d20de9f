//! `repeat_n`: runs exactly n times, 0 means not at all, ends early on
//! error/stopped/panic, and is stack-safe.
mod common;

use common::*;
use exec_core::{Completion, Scheduler, SenderExt, StopSource, just, sync_wait};
use std::cell::Cell;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

#[test]
fn runs_exactly_n_times() {
    for n in [0usize, 1, 2, 10] {
        let runs = Cell::new(0);
        let s = just(()).then(|()| runs.set(runs.get() + 1));
        assert_eq!(sync_wait(s.repeat_n(n)), Ok(Some(())));
        assert_eq!(runs.get(), n);
    }
}

#[test]
fn many_inline_iterations() {
    let n = if cfg!(miri) { 1_000 } else { 10_000_000 };
    let runs = Cell::new(0usize);
    let s = just(()).then(|()| runs.set(runs.get() + 1));
    assert_eq!(sync_wait(s.repeat_n(n)), Ok(Some(())));
    assert_eq!(runs.get(), n);
}

#[test]
fn error_stopped_panic_end_early() {
    let (op, rec) = start(Fixed::<(), &str>(Completion::Error("e")).repeat_n(5));
    assert_eq!(rec.expect_error(), "e");
    op.finish();
    let (op, rec) = start(Fixed::<(), &str>(Completion::Stopped).repeat_n(5));
    rec.expect_stopped();
    op.finish();
    let runs = Arc::new(AtomicUsize::new(0));
    let r2 = runs.clone();
    let (op, rec) = start(
        just(())
            .then(move |()| {
                if r2.fetch_add(1, Ordering::SeqCst) == 2 {
                    panic!("third")
                }
            })
            .repeat_n(5),
    );
    assert_eq!(rec.expect_panic(), "third");
    assert_eq!(runs.load(Ordering::SeqCst), 3);
    op.finish();
}

#[test]
fn zero_does_not_start_the_sender_and_drops_it() {
    let drops = DropCounter::new();
    let held = Arc::new(drops.track(()));
    let h2 = held.clone();
    drop(held);
    let (op, rec) = start(just(()).then(move |()| drop(h2.clone())).repeat_n(0));
    rec.expect_value();
    assert_eq!(drops.alive(), 0);
    op.finish();
}

#[test]
fn asynchronous_iterations_and_cancellation() {
    let sch = ManualScheduler::new();
    let (op, rec) = start(sch.schedule().repeat_n(3));
    assert_eq!(sch.run_all(), 3);
    rec.expect_value();
    op.finish();

    let source = Arc::new(StopSource::new());
    let (r, rec) = recorder_with_stop::<(), Infallible>(source.clone());
    let op = start_with(sch.schedule().repeat_n(3), r, &rec);
    assert!(sch.run_one());
    source.request_stop();
    assert_eq!(sch.run_all(), 1, "the running iteration completes stopped");
    rec.expect_stopped();
    op.finish();
}

#[test]
fn iterations_completing_after_start_returned_end_once() {
    // Every iteration here completes after its `start` returned (the loop's
    // hand-over without the stash): a stopped or panicking iteration ends
    // the loop exactly once, and what the loop holds is dropped.
    let sch = ManualScheduler::new();
    let (op, rec) = start(sch.schedule().repeat_n(5));
    assert!(sch.run_one());
    assert_eq!(sch.stop_all(), 1);
    rec.expect_stopped();
    assert_eq!(rec.completions(), 1);
    assert_eq!(sch.pending(), 0, "no iteration after the stopped one");
    op.finish();

    let drops = DropCounter::new();
    let held = Arc::new(drops.track(()));
    let runs = Arc::new(AtomicUsize::new(0));
    let r2 = runs.clone();
    let (op, rec) = start(
        sch.schedule()
            .then(move |()| {
                let _ = &held;
                if r2.fetch_add(1, Ordering::SeqCst) == 1 {
                    panic!("second")
                }
            })
            .repeat_n(5),
    );
    assert_eq!(sch.run_all(), 2);
    assert_eq!(rec.expect_panic(), "second");
    assert_eq!(rec.completions(), 1);
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    assert_eq!(drops.alive(), 0, "the loop dropped its body when it ended");
    op.finish();
}
