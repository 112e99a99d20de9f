//! `sync_wait`: value/error/stopped/panic, borrowing, completion from other
//! threads, and the misuse check inside a run loop.
mod common;

use common::*;
use exec_core::{
    Completion, RunLoop, Scheduler, SenderExt, just, just_error, just_stopped, starts_on, sync_wait,
};
use std::convert::Infallible;
use std::thread;

#[test]
fn value_error_stopped() {
    assert_eq!(sync_wait(just(1)), Ok(Some(1)));
    assert_eq!(sync_wait(just_error::<i32, _>("e")), Err("e"));
    assert_eq!(sync_wait(just_stopped::<i32, Infallible>()), Ok(None));
    assert_eq!(sync_wait(Fixed::<i32, u8>(Completion::Error(2))), Err(2));
}

#[test]
fn panic_is_resumed_with_its_payload() {
    let r =
        std::panic::catch_unwind(|| sync_wait(just(1).then(|_| -> i32 { panic!("payload 9") })));
    assert_eq!(payload_message(r.unwrap_err().as_ref()), "payload 9");
}

#[test]
fn value_is_dropped_exactly_once() {
    let drops = DropCounter::new();
    let v = sync_wait(just(drops.track(1))).unwrap().unwrap();
    assert_eq!(drops.alive(), 1);
    drop(v);
    assert_eq!(drops.alive(), 0);
}

#[test]
fn borrows_the_callers_stack() {
    let mut data = vec![1, 2, 3];
    let r = sync_wait(just(()).then(|()| {
        data.push(4);
        data.len()
    }));
    assert_eq!(r, Ok(Some(4)));
    assert_eq!(data, [1, 2, 3, 4]);
}

#[test]
fn waits_for_completion_on_another_thread() {
    let run_loop = RunLoop::new();
    thread::scope(|s| {
        let driver = s.spawn(|| run_loop.run());
        let r = sync_wait(run_loop.scheduler().schedule().then(|()| 5));
        assert_eq!(r, Ok(Some(5)));
        run_loop.finish();
        driver.join().unwrap();
    });
}

#[test]
fn sync_wait_inside_a_run_loop_task_panics_with_advice() {
    let run_loop = RunLoop::new();
    let (op, rec) = start(
        run_loop
            .scheduler()
            .schedule()
            .then(|()| sync_wait(just(1)).unwrap().unwrap()),
    );
    run_loop.finish();
    run_loop.run();
    let msg = rec.expect_panic();
    assert!(
        msg.contains("sync_wait called on a thread that is driving a RunLoop"),
        "{msg}"
    );
    assert!(msg.contains("let_value"), "says what to do instead: {msg}");
    op.finish();
}

#[test]
fn sync_wait_in_work_on_a_loop_driven_elsewhere_panics_not_deadlocks() {
    // The outer sync_wait starts work on a loop driven by another thread;
    // that work calls sync_wait on the driving thread. The panic travels
    // back through the panic channel and is resumed by the outer sync_wait.
    let run_loop = RunLoop::new();
    thread::scope(|s| {
        let driver = s.spawn(|| run_loop.run());
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            sync_wait(starts_on(
                run_loop.scheduler(),
                just(()).then(|()| sync_wait(just(2))),
            ))
        }));
        let msg = payload_message(r.unwrap_err().as_ref());
        assert!(
            msg.contains("sync_wait called on a thread that is driving"),
            "{msg}"
        );
        run_loop.finish();
        driver.join().unwrap();
    });
}
