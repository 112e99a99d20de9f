//! `starts_on`: the sender is connected and started from the scheduler.
mod common;

use common::*;
use exec_core::{
    Completion, IntoError, Scheduler, SenderExt, StopSource, just, starts_on, sync_wait,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[test]
fn work_runs_only_once_scheduled() {
    let sched = ManualScheduler::new();
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    let (op, rec) = start(starts_on(
        sched.clone(),
        just(6).then(move |x| {
            r.store(true, Ordering::SeqCst);
            x * 7
        }),
    ));
    assert!(!ran.load(Ordering::SeqCst));
    sched.run_all();
    assert!(ran.load(Ordering::SeqCst));
    assert_eq!(rec.expect_value(), 42);
    op.finish();
}

#[test]
fn work_channels_forwarded() {
    let sched = ManualScheduler::new();
    let (op, rec) = start(starts_on(
        sched.clone(),
        Fixed::<i32, &str>(Completion::Error("e")),
    ));
    sched.run_all();
    assert_eq!(rec.expect_error(), "e");
    op.finish();
    let (op, rec) = start(starts_on(
        sched.clone(),
        Fixed::<i32, &str>(Completion::Stopped),
    ));
    sched.run_all();
    rec.expect_stopped();
    op.finish();
    let (op, rec) = start(starts_on(
        sched.clone(),
        just(1).then(|_| -> i32 { panic!("work") }),
    ));
    sched.run_all();
    assert_eq!(rec.expect_panic(), "work");
    op.finish();
}

#[test]
fn stop_before_scheduling_drops_the_work_unrun() {
    let sched = ManualScheduler::new();
    let drops = DropCounter::new();
    let held = drops.track(());
    let source = Arc::new(StopSource::new());
    let (r, rec) = recorder_with_stop(source.clone());
    let op = start_with(
        starts_on(
            sched.clone(),
            just(1).then(move |x| {
                let _keep = &held;
                panic!("must not run {x}")
            }),
        ),
        r,
        &rec,
    );
    assert_eq!(drops.alive(), 1);
    source.request_stop();
    sched.run_all();
    rec.expect_stopped();
    assert_eq!(drops.alive(), 0, "work dropped without running");
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
fn scheduler_error_and_stopped() {
    let drops = DropCounter::new();
    let (op, rec) = start(starts_on(
        ErrorScheduler(SchedErr(1)),
        just(drops.track(0)).with_error::<SchedErr>(),
    ));
    assert_eq!(rec.expect_error(), SchedErr(1));
    assert_eq!(drops.alive(), 0);
    op.finish();
    let (op, rec) = start(starts_on(StoppedScheduler, just(drops.track(0))));
    rec.expect_stopped();
    assert_eq!(drops.alive(), 0);
    op.finish();
}

#[test]
fn work_sees_the_receivers_stop_token() {
    let source = Arc::new(StopSource::new());
    let (r, rec) = recorder_with_stop(source.clone());
    let op = start_with(
        starts_on(
            exec_core::InlineScheduler,
            exec_core::read_env(|env| env.stop_token().stop_possible()),
        ),
        r,
        &rec,
    );
    assert!(rec.expect_value());
    op.finish();
}

#[test]
fn on_the_run_loop_of_sync_wait_elsewhere() {
    let run_loop = exec_core::RunLoop::new();
    std::thread::scope(|s| {
        let driver = s.spawn(|| {
            run_loop.run();
            std::thread::current().id()
        });
        let got = sync_wait(starts_on(
            run_loop.scheduler(),
            just(()).then(|()| std::thread::current().id()),
        ))
        .unwrap()
        .unwrap();
        run_loop.finish();
        assert_eq!(got, driver.join().unwrap());
    });
    let _ = ManualScheduler::new().schedule();
}

#[test]
fn work_sees_the_scheduler_as_current() {
    let sched = exec_core::InlineScheduler;
    let expected = sched.erased();
    assert!(expected.is_some());
    let got = sync_wait(starts_on(
        sched,
        exec_core::read_env(move |env| env.scheduler() == expected),
    ));
    assert_eq!(got, Ok(Some(true)));
    // A scheduler without an erased form: the work sees no current
    // scheduler (not the outer one, sync_wait's loop).
    let manual = ManualScheduler::new();
    let (op, rec) = start(starts_on(
        manual.clone(),
        exec_core::read_env(|env| env.scheduler().is_none()),
    ));
    manual.run_all();
    assert!(rec.expect_value());
    op.finish();
    // The schedule operation itself sees the receiver's environment.
    static OUTER: ManualContext = ManualContext::new();
    let (op, rec) = start(
        starts_on(OUTER.handle(), just(1))
            .write_env(exec_core::WithScheduler::new(Some(OUTER.handle()))),
    );
    assert_eq!(OUTER.run_all(), 1, "scheduled through the SchedulerRef");
    assert_eq!(rec.expect_value(), 1);
    op.finish();
}
