//! `map_error`: transforms the error; value/stopped/panic forwarded.
mod common;

use common::*;
use exec_core::{Completion, SenderExt, just, just_error, sync_wait};
use std::cell::Cell;

#[test]
fn error_is_transformed() {
    let (op, rec) = start(Fixed::<(), u8>(Completion::Error(7)).map_error(|c| format!("code {c}")));
    assert_eq!(rec.expect_error(), "code 7");
    op.finish();
    assert_eq!(
        sync_wait(just_error::<(), _>(1).map_error(|x: i32| x + 1)),
        Err(2)
    );
}

#[test]
fn value_and_stopped_skip_closure_and_drop_it() {
    let drops = DropCounter::new();
    let held = drops.track(());
    let (op, rec) = start(Fixed::<i32, u8>(Completion::Value(5)).map_error(move |e| {
        let _keep = &held;
        e as u32
    }));
    assert_eq!(rec.expect_value(), 5);
    assert_eq!(drops.alive(), 0);
    op.finish();

    let called = Cell::new(false);
    let s = Fixed::<i32, u8>(Completion::Stopped).map_error(|e| {
        called.set(true);
        e
    });
    assert_eq!(sync_wait(s), Ok(None));
    assert!(!called.get());
}

#[test]
fn panic_in_closure_and_upstream_panic() {
    let (op, rec) =
        start(Fixed::<i32, u8>(Completion::Error(1)).map_error(|_| -> u8 { panic!("map") }));
    assert_eq!(rec.expect_panic(), "map");
    op.finish();

    let called = Cell::new(false);
    let (op, rec) = start(just(1).then(|_| -> i32 { panic!("up") }).map_error(|e| {
        called.set(true);
        e
    }));
    assert_eq!(rec.expect_panic(), "up");
    assert!(!called.get());
    op.finish();
}
