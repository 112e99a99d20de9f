//! `upon_error`: recovers errors; value/stopped/panic forwarded, closure not
//! called and dropped early.
mod common;

use common::*;
use exec_core::{Completion, SenderExt, just, just_error, sync_wait};
use std::cell::Cell;
use std::convert::Infallible;

#[test]
fn error_becomes_value() {
    let (op, rec) = start(Fixed::<usize, &str>(Completion::Error("four")).upon_error(|e| e.len()));
    assert_eq!(rec.expect_value(), 4);
    op.finish();
    let r: Result<Option<usize>, Infallible> =
        sync_wait(just_error::<usize, _>("abc").upon_error(|e: &str| e.len()));
    assert_eq!(r, Ok(Some(3)));
}

#[test]
fn value_is_forwarded_and_closure_dropped_unused() {
    let drops = DropCounter::new();
    let held = drops.track(());
    let (op, rec) = start(
        Fixed::<i32, &str>(Completion::Value(1)).upon_error(move |_| {
            let _keep = &held;
            panic!("must not be called")
        }),
    );
    assert_eq!(rec.expect_value(), 1);
    assert_eq!(drops.alive(), 0, "closure dropped");
    op.finish();
}

#[test]
fn stopped_is_forwarded_and_closure_not_called() {
    let called = Cell::new(false);
    let s = Fixed::<i32, &str>(Completion::Stopped).upon_error(|_| {
        called.set(true);
        0
    });
    assert_eq!(sync_wait(s), Ok(None));
    assert!(!called.get());
}

#[test]
fn panic_in_closure_is_delivered() {
    let (op, rec) = start(
        Fixed::<i32, &str>(Completion::Error("e"))
            .upon_error(|_| -> i32 { panic!("recovery failed") }),
    );
    assert_eq!(rec.expect_panic(), "recovery failed");
    op.finish();
}

#[test]
fn upstream_panic_is_forwarded_without_calling_closure() {
    let called = Cell::new(false);
    let s = just(1)
        .then(|_| -> i32 { panic!("upstream") })
        .with_error::<&str>()
        .upon_error(|_| {
            called.set(true);
            0
        });
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sync_wait(s)));
    assert_eq!(payload_message(r.unwrap_err().as_ref()), "upstream");
    assert!(!called.get());
}

#[test]
fn error_value_is_dropped_after_recovery() {
    let drops = DropCounter::new();
    let (op, rec) = start(
        Fixed::<i32, Tracked<i32>>(Completion::Error(drops.track(7))).upon_error(|e| e.value * 2),
    );
    assert_eq!(rec.expect_value(), 14);
    assert_eq!(drops.alive(), 0);
    op.finish();
}
