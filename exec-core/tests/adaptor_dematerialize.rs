//! `dematerialize`: a `Completion` value completes on its channel.
mod common;

use common::*;
use exec_core::{Completion, IntoError, SenderExt, just, sync_wait};

#[test]
fn each_completion_value_picks_its_channel() {
    assert_eq!(
        sync_wait(just(Completion::<i32, &str>::Value(1)).dematerialize()),
        Ok(Some(1))
    );
    assert_eq!(
        sync_wait(just(Completion::<i32, &str>::Error("e")).dematerialize()),
        Err("e")
    );
    assert_eq!(
        sync_wait(just(Completion::<i32, &str>::Stopped).dematerialize()),
        Ok(None)
    );
}

#[derive(Debug, PartialEq)]
struct Outer(u8);
impl IntoError<Outer> for Outer {
    fn into_error(self) -> Outer {
        self
    }
}

#[test]
fn predecessor_channels_forwarded() {
    let (op, rec) =
        start(Fixed::<Completion<i32, Outer>, Outer>(Completion::Error(Outer(3))).dematerialize());
    assert_eq!(rec.expect_error(), Outer(3));
    op.finish();
    let (op, rec) =
        start(Fixed::<Completion<i32, Outer>, Outer>(Completion::Stopped).dematerialize());
    rec.expect_stopped();
    op.finish();
    let (op, rec) = start(
        just(1)
            .then(|_| -> Completion<i32, Outer> { panic!("p") })
            .dematerialize(),
    );
    assert_eq!(rec.expect_panic(), "p");
    op.finish();
}

#[test]
fn values_moved_through() {
    let drops = DropCounter::new();
    let (op, rec) =
        start(just(Completion::<Tracked<i32>, ()>::Value(drops.track(4))).dematerialize());
    let v = rec.expect_value();
    assert_eq!(v.value, 4);
    drop(v);
    assert_eq!(drops.alive(), 0);
    op.finish();
}
