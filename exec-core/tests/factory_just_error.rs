//! `just_error`: error channel, inline completion, eager drop.
mod common;

use common::*;
use exec_core::{Sender, SenderExt, SenderTo, just_error, sync_wait};

#[test]
fn sends_the_error_inline() {
    let (op, rec) = start(just_error::<i32, _>("boom"));
    assert!(rec.is_complete());
    assert_eq!(rec.expect_error(), "boom");
    op.finish();
    assert_eq!(sync_wait(just_error::<(), _>(7)), Err(7));
}

#[test]
fn never_stops() {
    fn sends_stopped<S: Sender>(_: &S) -> bool {
        S::SENDS_STOPPED
    }
    assert!(!sends_stopped(&just_error::<(), _>(1)));
}

#[test]
fn then_is_skipped() {
    let called = std::cell::Cell::new(false);
    let s = just_error::<i32, _>("e").then(|x| {
        called.set(true);
        x
    });
    assert_eq!(sync_wait(s), Err("e"));
    assert!(!called.get());
}

#[test]
fn error_moves_to_the_receiver_and_unstarted_op_drops_it() {
    let drops = DropCounter::new();
    let (op, rec) = start(just_error::<(), _>(drops.track("e")));
    let e = rec.expect_error();
    assert_eq!(e.value, "e");
    drop(e);
    assert_eq!(drops.alive(), 0);
    op.finish();

    let (r, rec) = recorder::<(), Tracked<&str>>();
    let op = just_error(drops.track("f")).connect(r);
    assert_eq!(drops.alive(), 1);
    drop(op);
    assert_eq!(drops.alive(), 0);
    assert_eq!(rec.completions(), 0);
}
