//! `materialize`: every channel becomes a `Completion` value.
mod common;

use common::*;
use exec_core::{Completion, Sender, SenderExt, just, sync_wait};

#[test]
fn all_channels_become_values() {
    for c in [
        Completion::Value(1),
        Completion::Error("e"),
        Completion::Stopped,
    ] {
        let (op, rec) = start(Fixed(c).materialize());
        assert_eq!(rec.expect_value(), c);
        op.finish();
    }
    assert_eq!(
        sync_wait(just(2).materialize()),
        Ok(Some(Completion::Value(2)))
    );
}

#[test]
fn panic_stays_a_panic() {
    let (op, rec) = start(just(1).then(|_| -> i32 { panic!("p") }).materialize());
    assert_eq!(rec.expect_panic(), "p");
    op.finish();
}

#[test]
fn never_sends_stopped() {
    fn sends_stopped<S: Sender>(_: &S) -> bool {
        S::SENDS_STOPPED
    }
    assert!(!sends_stopped(
        &Fixed::<i32, ()>(Completion::Stopped).materialize()
    ));
}

#[test]
fn round_trip() {
    for c in [
        Completion::Value(1),
        Completion::Error("e"),
        Completion::Stopped,
    ] {
        let (op, rec) = start(Fixed(c).materialize().dematerialize());
        match c {
            Completion::Value(v) => assert_eq!(rec.expect_value(), v),
            Completion::Error(e) => assert_eq!(rec.expect_error(), e),
            Completion::Stopped => rec.expect_stopped(),
        }
        op.finish();
    }
}
