//! `schedule(&sch)`: completes on the scheduler's context; stopped when the
//! receiver's stop was requested first.
mod common;

use std::sync::Arc;

use common::*;
use exec_core::{InlineScheduler, RunLoop, SenderExt, StopSource, schedule, sync_wait};

#[test]
fn value_on_the_scheduler() {
    assert_eq!(
        sync_wait(schedule(&InlineScheduler).then(|()| 1)),
        Ok(Some(1))
    );
    let run_loop = RunLoop::new();
    let driver = std::thread::current().id();
    std::thread::scope(|s| {
        let rl = &run_loop;
        let t = s.spawn(move || {
            let on = sync_wait(schedule(&rl.scheduler()).then(|()| std::thread::current().id()));
            rl.finish();
            on
        });
        run_loop.run();
        assert_eq!(t.join().unwrap(), Ok(Some(driver)));
    });
}

#[test]
fn stopped_when_stop_was_requested() {
    let source = Arc::new(StopSource::new());
    source.request_stop();
    let sched = ManualScheduler::new();
    let (r, rec) = recorder_with_stop::<(), std::convert::Infallible>(source);
    let op = start_with(schedule(&sched), r, &rec);
    assert_eq!(sched.run_all(), 1);
    rec.expect_stopped();
    op.finish();
}
