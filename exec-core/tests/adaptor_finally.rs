//! `finally`: runs a second sender after the first on every channel, then
//! delivers the first's completion; the second's failure wins.
mod common;

use common::*;
use exec_core::{Completion, IntoError, Scheduler, SenderExt, StopSource, just, sync_wait};
use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Debug, PartialEq)]
struct Oops(&'static str);
impl IntoError<Oops> for Oops {
    fn into_error(self) -> Oops {
        self
    }
}

#[test]
fn second_runs_after_first_on_every_channel() {
    for c in [
        Completion::Value(1),
        Completion::Error(Oops("e")),
        Completion::Stopped,
    ] {
        let ran = Cell::new(0);
        let expected = match &c {
            Completion::Value(_) => 0,
            Completion::Error(_) => 1,
            Completion::Stopped => 2,
        };
        let s = Fixed::<i32, Oops>(c).finally(just(()).then(|()| ran.set(ran.get() + 1)));
        let r = sync_wait(s);
        assert_eq!(ran.get(), 1, "second ran once");
        match expected {
            0 => assert_eq!(r, Ok(Some(1))),
            1 => assert_eq!(r, Err(Oops("e"))),
            _ => assert_eq!(r, Ok(None)),
        }
    }
}

#[test]
fn first_panic_is_held_then_delivered() {
    let ran = Arc::new(AtomicUsize::new(0));
    let r2 = ran.clone();
    let (op, rec) = start(
        just(1)
            .then(|_| -> i32 { panic!("first") })
            .finally(just(()).then(move |()| {
                r2.fetch_add(1, Ordering::SeqCst);
            })),
    );
    assert_eq!(rec.expect_panic(), "first");
    assert_eq!(ran.load(Ordering::SeqCst), 1);
    op.finish();
}

#[test]
fn second_starts_only_after_first_and_result_is_held_meanwhile() {
    let sched = ManualScheduler::new();
    let drops = DropCounter::new();
    let second_ran = Arc::new(AtomicUsize::new(0));
    let sr = second_ran.clone();
    let tracked = drops.track(9);
    let (op, rec) = start(
        sched
            .schedule()
            .then(move |()| tracked)
            .finally(just(()).then(move |()| {
                sr.fetch_add(1, Ordering::SeqCst);
            })),
    );
    assert_eq!(second_ran.load(Ordering::SeqCst), 0, "first not done yet");
    assert!(!rec.is_complete());
    sched.run_one();
    assert_eq!(second_ran.load(Ordering::SeqCst), 1);
    assert_eq!(rec.expect_value().value, 9);
    assert_eq!(drops.alive(), 0);
    op.finish();
}

#[test]
fn second_error_wins_and_first_result_is_dropped() {
    let drops = DropCounter::new();
    let sched = ManualScheduler::new();
    let (op, rec) = start(
        just(drops.track(1)).with_error::<Oops>().finally(
            sched
                .schedule()
                .then(|()| Completion::<(), Oops>::Error(Oops("cleanup")))
                .dematerialize(),
        ),
    );
    assert_eq!(drops.alive(), 1, "first value held while second runs");
    assert!(!rec.is_complete());
    sched.run_one();
    assert_eq!(rec.expect_error(), Oops("cleanup"));
    assert_eq!(drops.alive(), 0, "first value dropped");
    op.finish();
}

#[test]
fn second_stopped_or_panic_wins() {
    let (op, rec) =
        start(just(1).finally(Fixed::<(), std::convert::Infallible>(Completion::Stopped)));
    rec.expect_stopped();
    op.finish();
    let (op, rec) = start(just(1).finally(just(()).then(|()| panic!("cleanup panicked"))));
    assert_eq!(rec.expect_panic(), "cleanup panicked");
    op.finish();
}

#[test]
fn stop_request_reaches_the_second() {
    let sched = ManualScheduler::new();
    let source = Arc::new(StopSource::new());
    let (r, rec) = recorder_with_stop(source.clone());
    let op = start_with(just(1).finally(sched.schedule()), r, &rec);
    source.request_stop();
    sched.run_all();
    rec.expect_stopped();
    op.finish();

    // ...unless the clean-up is unstoppable.
    let (r, rec) = recorder_with_stop(source.clone());
    let op = start_with(just(1).finally(sched.schedule().unstoppable()), r, &rec);
    sched.run_all();
    assert_eq!(rec.expect_value(), 1);
    op.finish();
}

#[test]
fn borrows_the_stack() {
    let mut log = Vec::new();
    let cell = std::cell::RefCell::new(&mut log);
    let s = just(2)
        .then(|x| {
            cell.borrow_mut().push("work");
            x
        })
        .finally(just(()).then(|()| cell.borrow_mut().push("cleanup")));
    assert_eq!(sync_wait(s), Ok(Some(2)));
    assert_eq!(log, ["work", "cleanup"]);
}
