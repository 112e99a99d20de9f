//! `then`: all three channels, the panic channel, eager drop of the closure.
mod common;

use common::*;
use exec_core::{Completion, SenderExt, just, sync_wait};
use std::sync::Arc;

#[test]
fn value_is_transformed() {
    assert_eq!(sync_wait(just(20).then(|x| x * 2 + 2)), Ok(Some(42)));
    let (op, rec) = start(just("a").then(|s| s.len()));
    assert_eq!(rec.expect_value(), 1);
    op.finish();
}

#[test]
fn error_skips_closure_and_drops_it_before_forwarding() {
    let drops = DropCounter::new();
    let held = drops.track(());
    let (op, rec) = start(
        Fixed::<i32, &str>(Completion::Error("boom")).then(move |x| {
            let _keep = &held;
            x + 1
        }),
    );
    assert_eq!(rec.expect_error(), "boom");
    assert_eq!(drops.alive(), 0, "closure dropped");
    op.finish();
}

#[test]
fn stopped_skips_closure() {
    let called = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let c = called.clone();
    let (op, rec) = start(Fixed::<i32, ()>(Completion::Stopped).then(move |x| {
        c.store(true, std::sync::atomic::Ordering::SeqCst);
        x > 0
    }));
    rec.expect_stopped();
    assert!(!called.load(std::sync::atomic::Ordering::SeqCst));
    op.finish();
}

#[test]
fn panic_is_delivered_with_payload() {
    let (op, rec) = start(just(1).then(|_: i32| -> i32 { panic!("then panicked") }));
    assert_eq!(rec.expect_panic(), "then panicked");
    op.finish();
}

#[test]
fn panic_resurfaces_in_sync_wait() {
    let r =
        std::panic::catch_unwind(|| sync_wait(just(1).then(|_: i32| -> i32 { panic!("boom 7") })));
    let payload = r.unwrap_err();
    assert_eq!(payload_message(payload.as_ref()), "boom 7");
}

#[test]
fn value_dropped_after_use() {
    let drops = DropCounter::new();
    let v = drops.track(5);
    assert_eq!(sync_wait(just(v).then(|t| t.value)), Ok(Some(5)));
    assert_eq!(drops.alive(), 0);
}

#[test]
fn borrows_the_stack() {
    let data = [1, 2, 3];
    let total = sync_wait(just(10).then(|x| x + data.iter().sum::<i32>()));
    assert_eq!(total, Ok(Some(16)));
}
