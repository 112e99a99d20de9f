//! `bulk` (serial): f(i, &mut v) for i in 0..n, then the value.
mod common;

use common::*;
use exec_core::{Completion, SenderExt, just, sync_wait};
use std::cell::Cell;

#[test]
fn calls_f_for_every_index_in_order() {
    let s = just(Vec::new()).bulk(5, |i, v: &mut Vec<usize>| v.push(i));
    assert_eq!(sync_wait(s), Ok(Some(vec![0, 1, 2, 3, 4])));
    let s = just(7).bulk(0, |_, _: &mut i32| panic!("n = 0"));
    assert_eq!(sync_wait(s), Ok(Some(7)));
}

#[test]
fn error_and_stopped_skip_f_and_drop_it() {
    let drops = DropCounter::new();
    let held = drops.track(());
    let called = Cell::new(false);
    let c = &called;
    let (op, rec) = start(
        Fixed::<i32, &str>(Completion::Error("e")).bulk(3, move |_, _| {
            let _keep = &held;
            c.set(true)
        }),
    );
    assert_eq!(rec.expect_error(), "e");
    assert_eq!(
        drops.alive(),
        0,
        "closure dropped before the error was forwarded"
    );
    op.finish();
    let (op, rec) = start(Fixed::<i32, &str>(Completion::Stopped).bulk(3, |_, _| called.set(true)));
    rec.expect_stopped();
    op.finish();
    assert!(!called.get());
}

#[test]
fn panic_stops_the_loop_drops_the_value_and_is_delivered() {
    let drops = DropCounter::new();
    let count = Cell::new(0);
    let (op, rec) = start(just(drops.track(0)).bulk(10, |i, _| {
        count.set(count.get() + 1);
        if i == 3 {
            panic!("bulk body {i}")
        }
    }));
    assert_eq!(rec.expect_panic(), "bulk body 3");
    assert_eq!(count.get(), 4);
    assert_eq!(drops.alive(), 0, "value dropped");
    op.finish();
}

#[test]
fn upstream_panic_forwarded() {
    let (op, rec) = start(
        just(1)
            .then(|_| -> i32 { panic!("up") })
            .bulk(2, |_, _| panic!("not called")),
    );
    assert_eq!(rec.expect_panic(), "up");
    op.finish();
}
