//! `just_stopped`: stopped channel, inline completion.
mod common;

use common::*;
use exec_core::{SenderExt, just_stopped, sync_wait};
use std::convert::Infallible;

#[test]
fn completes_stopped_inline() {
    let (op, rec) = start(just_stopped::<i32, &str>());
    assert!(rec.is_complete());
    rec.expect_stopped();
    op.finish();
    assert_eq!(sync_wait(just_stopped::<i32, Infallible>()), Ok(None));
}

#[test]
fn then_and_upon_error_are_skipped() {
    let called = std::cell::Cell::new(0);
    let s = just_stopped::<i32, &str>()
        .then(|x| {
            called.set(1);
            x
        })
        .upon_error(|_| {
            called.set(2);
            0
        });
    assert_eq!(sync_wait(s), Ok(None));
    assert_eq!(called.get(), 0);
}

#[test]
fn is_copy() {
    let s = just_stopped::<String, String>();
    let t = s;
    assert_eq!(sync_wait(s), Ok(None));
    assert_eq!(sync_wait(t), Ok(None));
}
