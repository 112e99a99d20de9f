//! `continues_on`: the predecessor's completion is held while the hop runs,
//! then delivered from the scheduler; the hop's stop/error wins.
mod common;

use common::*;
use exec_core::{
    Completion, CompletionScheduler, IntoError, RunLoop, SenderExt, StopSource, just, sync_wait,
};
use std::convert::Infallible;
use std::sync::Arc;

#[test]
fn value_is_delivered_after_the_hop() {
    let sched = ManualScheduler::new();
    let (op, rec) = start(just(41).continues_on(sched.clone()).then(|x| x + 1));
    assert!(!rec.is_complete(), "waits for the scheduler");
    assert_eq!(sched.pending(), 1);
    assert_eq!(sched.run_all(), 1);
    assert_eq!(rec.expect_value(), 42);
    op.finish();
}

#[test]
fn error_stopped_panic_are_delivered_after_the_hop() {
    let sched = ManualScheduler::new();
    let (op, rec) = start(Fixed::<i32, &str>(Completion::Error("e")).continues_on(sched.clone()));
    assert!(!rec.is_complete());
    sched.run_all();
    assert_eq!(rec.expect_error(), "e");
    op.finish();

    let (op, rec) = start(Fixed::<i32, &str>(Completion::Stopped).continues_on(sched.clone()));
    assert!(!rec.is_complete());
    sched.run_all();
    rec.expect_stopped();
    op.finish();

    let (op, rec) = start(
        just(1)
            .then(|_| -> i32 { panic!("before hop") })
            .continues_on(sched.clone()),
    );
    assert!(!rec.is_complete(), "the panic hops too");
    sched.run_all();
    assert_eq!(rec.expect_panic(), "before hop");
    op.finish();
}

#[test]
fn value_is_held_while_hop_queued_and_dropped_on_stop() {
    let sched = ManualScheduler::new();
    let drops = DropCounter::new();
    let source = Arc::new(StopSource::new());
    let (r, rec) = recorder_with_stop(source.clone());
    let op = start_with(just(drops.track(5)).continues_on(sched.clone()), r, &rec);
    assert_eq!(drops.alive(), 1, "held in the operation");
    source.request_stop();
    assert_eq!(sched.run_all(), 1);
    rec.expect_stopped();
    assert_eq!(drops.alive(), 0, "dropped when the op completed");
    op.finish();
}

#[test]
fn scheduler_that_stops() {
    let drops = DropCounter::new();
    let (op, rec) = start(just(drops.track(1)).continues_on(StoppedScheduler));
    rec.expect_stopped();
    assert_eq!(drops.alive(), 0);
    op.finish();
}

#[derive(Clone, Debug, PartialEq)]
struct SchedErr(u32);
impl IntoError<SchedErr> for SchedErr {
    fn into_error(self) -> SchedErr {
        self
    }
}

#[test]
fn scheduler_that_fails() {
    let drops = DropCounter::new();
    let (op, rec) = start(
        just(drops.track(1))
            .with_error::<SchedErr>()
            .continues_on(ErrorScheduler(SchedErr(3))),
    );
    assert_eq!(rec.expect_error(), SchedErr(3));
    assert_eq!(drops.alive(), 0);
    op.finish();
}

#[test]
fn infallible_scheduler_with_any_predecessor_error() {
    let r: Result<Option<i32>, String> = sync_wait(
        Fixed::<i32, String>(Completion::Error("x".into()))
            .continues_on(exec_core::InlineScheduler),
    );
    assert_eq!(r, Err("x".to_string()));
    let _: Completion<(), Infallible> = Completion::Value(());
}

#[test]
fn completes_on_the_run_loop_thread() {
    let run_loop = RunLoop::new();
    std::thread::scope(|s| {
        let driver = s.spawn(|| {
            run_loop.run();
            std::thread::current().id()
        });
        let sched = run_loop.scheduler();
        let s = just(1).continues_on(sched);
        assert!(s.completion_scheduler() == run_loop.scheduler());
        let ran_on = sync_wait(s.then(|x| (x, std::thread::current().id())))
            .unwrap()
            .unwrap();
        run_loop.finish();
        let loop_thread = driver.join().unwrap();
        assert_eq!(ran_on, (1, loop_thread));
        assert_ne!(loop_thread, std::thread::current().id());
    });
}

#[test]
fn chained_hops_each_wait_for_their_scheduler() {
    let a = ManualScheduler::new();
    let b = ManualScheduler::new();
    let (op, rec) = start(just(1).continues_on(a.clone()).continues_on(b.clone()));
    assert_eq!((a.pending(), b.pending()), (1, 0));
    a.run_all();
    assert_eq!((a.pending(), b.pending()), (0, 1));
    assert!(!rec.is_complete());
    b.run_all();
    assert_eq!(rec.expect_value(), 1);
    op.finish();
}
