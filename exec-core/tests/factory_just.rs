//! `just`: value channel, inline completion, eager drop of the value.
mod common;

use common::*;
use exec_core::{Sender, SenderTo, just, sync_wait};

#[test]
fn sends_the_value_inline() {
    let (op, rec) = start(just((1, "two")));
    assert!(rec.is_complete(), "completes inside start");
    assert_eq!(rec.expect_value(), (1, "two"));
    op.finish();
    assert_eq!(sync_wait(just(5u8)), Ok(Some(5)));
}

#[test]
fn never_stops_or_fails() {
    fn sends_stopped<S: Sender>(_: &S) -> bool {
        S::SENDS_STOPPED
    }
    assert!(!sends_stopped(&just(1)));
    let _: Result<Option<i32>, std::convert::Infallible> = sync_wait(just(1));
}

#[test]
fn value_moves_to_the_receiver_and_nothing_else_is_kept() {
    let drops = DropCounter::new();
    let (op, rec) = start(just(drops.track(3)));
    assert_eq!(drops.alive(), 1, "the value now lives in the recorder");
    let v = rec.expect_value();
    assert_eq!(v.value, 3);
    drop(v);
    assert_eq!(drops.alive(), 0);
    op.finish();
}

#[test]
fn unstarted_op_drops_the_value() {
    let drops = DropCounter::new();
    let (r, rec) = recorder::<Tracked<i32>, std::convert::Infallible>();
    let op = just(drops.track(1)).connect(r);
    assert_eq!(drops.alive(), 1);
    drop(op);
    assert_eq!(drops.alive(), 0);
    assert_eq!(rec.completions(), 0);
}

#[test]
fn clones_are_independent() {
    let s = just(String::from("x"));
    let t = s.clone();
    assert_eq!(sync_wait(s), Ok(Some("x".to_string())));
    assert_eq!(sync_wait(t), Ok(Some("x".to_string())));
}
