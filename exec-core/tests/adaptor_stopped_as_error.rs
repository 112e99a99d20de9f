//! `stopped_as_error`: stopped -> the given error; held error dropped early.
mod common;

use common::*;
use exec_core::{Completion, Sender, SenderExt, just, sync_wait};

#[test]
fn stopped_becomes_error() {
    let (op, rec) = start(Fixed::<i32, &str>(Completion::Stopped).stopped_as_error("cancelled"));
    assert_eq!(rec.expect_error(), "cancelled");
    op.finish();
}

#[test]
fn value_error_panic_forwarded_and_replacement_dropped_first() {
    let drops = DropCounter::new();
    let (op, rec) =
        start(Fixed::<i32, Tracked<&str>>(Completion::Value(1)).stopped_as_error(drops.track("x")));
    assert_eq!(rec.expect_value(), 1);
    assert_eq!(drops.alive(), 0, "replacement error dropped");
    op.finish();

    let (op, rec) = start(
        Fixed::<i32, Tracked<&str>>(Completion::Error(drops.track("real")))
            .stopped_as_error(drops.track("x")),
    );
    let e = rec.expect_error();
    assert_eq!(e.value, "real");
    assert_eq!(drops.alive(), 1, "only the real error is alive");
    drop(e);
    op.finish();

    let (op, rec) = start(
        just(1)
            .then(|_| -> i32 { panic!("p") })
            .with_error::<Tracked<&str>>()
            .stopped_as_error(drops.track("x")),
    );
    assert_eq!(rec.expect_panic(), "p");
    assert_eq!(drops.alive(), 0);
    op.finish();
}

#[test]
fn never_sends_stopped() {
    fn sends_stopped<S: Sender>(_: &S) -> bool {
        S::SENDS_STOPPED
    }
    assert!(!sends_stopped(
        &Fixed::<i32, ()>(Completion::Stopped).stopped_as_error(())
    ));
    assert_eq!(
        sync_wait(Fixed::<i32, u8>(Completion::Stopped).stopped_as_error(9)),
        Err(9)
    );
}
