//! Signals as senders.

#[allow(clippy::collapsible_if, clippy::type_complexity)]
#[path = "../../exec-core/tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::Duration;

use exec_core::{StopSource, TimedScheduler};
use exec_io::{IoContext, signal};

fn kill_self_later(sig: i32, ms: u64) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(ms));
        // SAFETY: sends a signal to this process, whose handler is installed.
        unsafe { libc::kill(libc::getpid(), sig) };
    })
}

#[test]
fn signal_completes_after_delivery_and_stop_cancels() {
    let ctx = IoContext::new().unwrap();
    let sch = ctx.scheduler();
    // Two waiters on the same signal both complete.
    let (s1, r1) = common::start(signal(&sch, libc::SIGUSR1));
    let (s2, r2) = common::start(signal(&sch, libc::SIGUSR1));
    ctx.run_until(sch.schedule_after(Duration::from_millis(5)))
        .unwrap();
    assert!(!r1.is_complete() && !r2.is_complete());
    let t = kill_self_later(libc::SIGUSR1, 10);
    for _ in 0..200 {
        ctx.run_until(sch.schedule_after(Duration::from_millis(5)))
            .unwrap();
        if r1.is_complete() && r2.is_complete() {
            break;
        }
    }
    t.join().unwrap();
    r1.expect_value();
    r2.expect_value();
    s1.finish();
    s2.finish();
    // A stopped waiter completes stopped.
    let source = Arc::new(StopSource::new());
    let (r, rec) = common::recorder_with_stop(source.clone());
    let op = common::start_with(signal(&sch, libc::SIGUSR1), r, &rec);
    ctx.run_until(sch.schedule_after(Duration::from_millis(5)))
        .unwrap();
    source.request_stop();
    ctx.run_until(sch.schedule_after(Duration::from_millis(5)))
        .unwrap();
    rec.expect_stopped();
    op.finish();
    // An invalid signal number is an error value.
    let err = ctx.run_until(signal(&sch, 1000)).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
}
