//! `into_variant`: the identity on a Rust sender (one value type already).
mod common;

use common::*;
use exec_core::{Completion, SenderExt, just, sync_wait};

#[test]
fn every_channel_is_unchanged() {
    assert_eq!(sync_wait(just((1, 'a')).into_variant()), Ok(Some((1, 'a'))));
    let (op, rec) = start(Fixed::<i32, &str>(Completion::Error("e")).into_variant());
    assert_eq!(rec.expect_error(), "e");
    op.finish();
    let (op, rec) = start(Fixed::<i32, &str>(Completion::Stopped).into_variant());
    rec.expect_stopped();
    op.finish();
    let (op, rec) = start(just(1).then(|_| -> i32 { panic!("p") }).into_variant());
    assert_eq!(rec.expect_panic(), "p");
    op.finish();
}

#[test]
fn is_the_same_type() {
    fn same<T>(_: &T, _: &T) {}
    let a = just(1);
    let b = just(2).into_variant();
    same(&a, &b);
}
