//! `into_result`: value -> Ok, error -> Err on the value channel.
mod common;

use common::*;
use exec_core::{Completion, SenderExt, just, sync_wait};
use std::convert::Infallible;

#[test]
fn value_and_error_become_results() {
    let (op, rec) = start(Fixed::<i32, &str>(Completion::Value(1)).into_result());
    assert_eq!(rec.expect_value(), Ok(1));
    op.finish();
    let (op, rec) = start(Fixed::<i32, &str>(Completion::Error("e")).into_result());
    assert_eq!(rec.expect_value(), Err("e"));
    op.finish();
    let r: Result<Option<Result<i32, &str>>, Infallible> =
        sync_wait(Fixed::<i32, &str>(Completion::Error("x")).into_result());
    assert_eq!(r, Ok(Some(Err("x"))));
}

#[test]
fn stopped_and_panic_forwarded() {
    let (op, rec) = start(Fixed::<i32, &str>(Completion::Stopped).into_result());
    rec.expect_stopped();
    op.finish();
    let (op, rec) = start(just(1).then(|_| -> i32 { panic!("p") }).into_result());
    assert_eq!(rec.expect_panic(), "p");
    op.finish();
}

#[test]
fn values_are_moved_not_kept() {
    let drops = DropCounter::new();
    let (op, rec) =
        start(Fixed::<(), Tracked<i32>>(Completion::Error(drops.track(1))).into_result());
    let v = rec.expect_value();
    assert_eq!(drops.alive(), 1);
    drop(v);
    assert_eq!(drops.alive(), 0);
    op.finish();
}
