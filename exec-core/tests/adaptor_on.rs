//! `on(sched, work)`: starts on `sched`, delivers on the receiver's current
//! scheduler; `on_returning_to(sched, work, back)`: delivers on `back`.
mod common;

use common::*;
use exec_core::{
    Completion, SenderExt, StopSource, WithScheduler, just, on, on_returning_to, read_env,
    sync_wait,
};
use std::sync::Arc;

// ------------------------------------------------------------------- on

#[test]
fn runs_there_and_completes_on_the_current_scheduler() {
    static BACK: ManualContext = ManualContext::new();
    let there = ManualScheduler::new();
    let (op, rec) = start(
        on(there.clone(), just(20).then(|x| x + 1))
            .write_env(WithScheduler::new(Some(BACK.handle()))),
    );
    assert_eq!((there.pending(), BACK.pending()), (1, 0));
    there.run_all();
    assert_eq!(
        (there.pending(), BACK.pending()),
        (0, 1),
        "work done, hop back queued on the current scheduler"
    );
    assert!(!rec.is_complete());
    BACK.run_all();
    assert_eq!(rec.expect_value(), 21);
    op.finish();
}

#[test]
fn channels_forwarded_after_hopping_back() {
    static BACK: ManualContext = ManualContext::new();
    let there = ManualScheduler::new();
    let current = WithScheduler::new(Some(BACK.handle()));
    let (op, rec) =
        start(on(there.clone(), Fixed::<i32, &str>(Completion::Error("e"))).write_env(current));
    there.run_all();
    assert!(!rec.is_complete());
    assert_eq!(BACK.run_all(), 1);
    assert_eq!(rec.expect_error(), "e");
    op.finish();

    let (op, rec) =
        start(on(there.clone(), Fixed::<i32, &str>(Completion::Stopped)).write_env(current));
    there.run_all();
    assert!(!rec.is_complete());
    assert_eq!(BACK.run_all(), 1);
    rec.expect_stopped();
    op.finish();

    let (op, rec) =
        start(on(there.clone(), just(1).then(|_| -> i32 { panic!("p") })).write_env(current));
    there.run_all();
    assert!(!rec.is_complete());
    assert_eq!(BACK.run_all(), 1);
    assert_eq!(rec.expect_panic(), "p");
    op.finish();

    // Scheduling there is stopped: the work never runs; still comes back.
    let (op, rec) = start(on(StoppedScheduler, just(1)).write_env(current));
    assert_eq!(BACK.run_all(), 1);
    rec.expect_stopped();
    op.finish();
}

#[test]
fn closure_not_called_when_scheduling_there_fails() {
    static BACK: ManualContext = ManualContext::new();
    #[derive(Clone, Debug, PartialEq)]
    struct SchedErr;
    impl exec_core::IntoError<SchedErr> for SchedErr {
        fn into_error(self) -> SchedErr {
            self
        }
    }
    let (op, rec) = start(
        on(
            ErrorScheduler(SchedErr),
            just(1)
                .with_error::<SchedErr>()
                .then(|_| -> i32 { panic!("must not run") }),
        )
        .write_env(WithScheduler::new(Some(BACK.handle()))),
    );
    assert!(!rec.is_complete());
    BACK.run_all();
    assert_eq!(rec.expect_error(), SchedErr);
    op.finish();
}

#[test]
fn stop_while_the_hop_back_is_queued_drops_the_result() {
    static BACK: ManualContext = ManualContext::new();
    let there = ManualScheduler::new();
    let drops = DropCounter::new();
    let source = Arc::new(StopSource::new());
    let (r, rec) = recorder_with_stop(source.clone());
    let op = start_with(
        on(there.clone(), just(drops.track(1))).write_env(WithScheduler::new(Some(BACK.handle()))),
        r,
        &rec,
    );
    there.run_all();
    assert_eq!(BACK.pending(), 1);
    assert_eq!(drops.alive(), 1, "result held while the hop is queued");
    source.request_stop();
    BACK.run_all();
    rec.expect_stopped();
    assert_eq!(drops.alive(), 0);
    op.finish();
}

#[test]
fn context_shutting_down_completes_stopped() {
    static BACK: ManualContext = ManualContext::new();
    let there = ManualScheduler::new();
    let drops = DropCounter::new();
    let (op, rec) = start(
        on(there.clone(), just(drops.track(1))).write_env(WithScheduler::new(Some(BACK.handle()))),
    );
    there.run_all();
    assert_eq!(BACK.stop_all(), 1);
    rec.expect_stopped();
    assert_eq!(drops.alive(), 0);
    op.finish();
}

#[test]
fn result_dropped_as_soon_as_delivered() {
    static BACK: ManualContext = ManualContext::new();
    let there = ManualScheduler::new();
    let drops = DropCounter::new();
    let (op, rec) = start(
        on(there.clone(), just(drops.track(1))).write_env(WithScheduler::new(Some(BACK.handle()))),
    );
    there.run_all();
    BACK.run_all();
    assert_eq!(rec.expect_value().value, 1);
    assert_eq!((drops.created(), drops.dropped()), (1, 1));
    op.finish();
}

#[test]
fn no_current_scheduler_completes_where_the_work_completed() {
    let there = ManualScheduler::new();
    // The recorder's environment reports no scheduler.
    let (op, rec) = start(on(there.clone(), just(5)));
    assert!(!rec.is_complete());
    there.run_all();
    assert_eq!(rec.expect_value(), 5, "delivered inline, on `there`");
    op.finish();
    let (op, rec) = start(on(there.clone(), just(5)).write_env(WithScheduler::new(None)));
    there.run_all();
    assert_eq!(rec.expect_value(), 5);
    op.finish();
}

#[test]
fn work_sees_its_scheduler_as_current() {
    static BACK: ManualContext = ManualContext::new();
    static THERE: ManualContext = ManualContext::new();
    let (op, rec) = start(
        on(
            THERE.handle(),
            read_env(|env| env.scheduler() == Some(THERE.handle())),
        )
        .write_env(WithScheduler::new(Some(BACK.handle()))),
    );
    assert_eq!(THERE.run_all(), 1);
    assert_eq!(BACK.run_all(), 1);
    assert!(rec.expect_value());
    op.finish();
}

#[test]
fn with_sync_wait() {
    let s = on(exec_core::InlineScheduler, just(2)).then(|x| x * 21);
    assert_eq!(sync_wait(s), Ok(Some(42)));
}

// ------------------------------------------------------ on_returning_to

#[test]
fn returning_to_runs_on_one_and_completes_on_the_other() {
    let there = ManualScheduler::new();
    let back = ManualScheduler::new();
    let (op, rec) = start(on_returning_to(
        there.clone(),
        just(20).then(|x| x + 1),
        back.clone(),
    ));
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
fn returning_to_forwards_channels_after_hopping_back() {
    let there = ManualScheduler::new();
    let back = ManualScheduler::new();
    let (op, rec) = start(on_returning_to(
        there.clone(),
        Fixed::<i32, &str>(Completion::Error("e")),
        back.clone(),
    ));
    there.run_all();
    assert!(!rec.is_complete());
    back.run_all();
    assert_eq!(rec.expect_error(), "e");
    op.finish();
    let (op, rec) = start(on_returning_to(
        there.clone(),
        just(1).then(|_| -> i32 { panic!("p") }),
        back.clone(),
    ));
    there.run_all();
    back.run_all();
    assert_eq!(rec.expect_panic(), "p");
    op.finish();
    let (op, rec) = start(on_returning_to(StoppedScheduler, just(1), back.clone()));
    back.run_all();
    rec.expect_stopped();
    op.finish();
}

#[test]
fn returning_to_stop_while_returning_drops_the_result() {
    let there = ManualScheduler::new();
    let back = ManualScheduler::new();
    let drops = DropCounter::new();
    let source = Arc::new(StopSource::new());
    let (r, rec) = recorder_with_stop(source.clone());
    let op = start_with(
        on_returning_to(there.clone(), just(drops.track(1)), back.clone()),
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
fn returning_to_with_sync_wait() {
    let s = on_returning_to(
        exec_core::InlineScheduler,
        just(2),
        exec_core::InlineScheduler,
    )
    .then(|x| x * 21);
    assert_eq!(sync_wait(s), Ok(Some(42)));
}
