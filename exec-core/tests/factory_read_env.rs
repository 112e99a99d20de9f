//! `read_env`: queries the receiver's environment at start, panics, drops.
mod common;

use common::*;
use exec_core::{Env, SenderExt, SenderTo, StopSource, read_env, sync_wait};
use std::sync::Arc;

#[test]
fn reads_the_receivers_stop_token() {
    let source = Arc::new(StopSource::new());
    let (r, rec) = recorder_with_stop(source.clone());
    let op = start_with(
        read_env(|env: &dyn Env| {
            let t = env.stop_token();
            (t.stop_possible(), t.stop_requested())
        }),
        r,
        &rec,
    );
    assert_eq!(rec.expect_value(), (true, false));
    op.finish();

    source.request_stop();
    let (r, rec) = recorder_with_stop(source.clone());
    let op = start_with(
        read_env(|env: &dyn Env| env.stop_token().stop_requested()),
        r,
        &rec,
    );
    assert!(rec.expect_value());
    op.finish();
}

#[test]
fn default_env_never_stops() {
    let (op, rec) = start(read_env(|env| env.stop_token().stop_possible()));
    assert!(!rec.expect_value());
    op.finish();
    assert_eq!(
        sync_wait(read_env(|env| env.stop_token().stop_possible())),
        Ok(Some(false))
    );
}

#[test]
fn query_happens_at_start_not_at_connect() {
    let source = Arc::new(StopSource::new());
    let (r, rec) = recorder_with_stop(source.clone());
    let mut op = Box::pin(read_env(|env: &dyn Env| env.stop_token().stop_requested()).connect(r));
    source.request_stop();
    // SAFETY: the op completes inline and the box outlives it.
    unsafe { exec_core::OperationState::start(op.as_mut()) };
    assert!(rec.expect_value());
}

#[test]
fn panic_is_delivered_and_closure_dropped() {
    let drops = DropCounter::new();
    let held = drops.track(());
    let (op, rec) = start(read_env(move |_env| -> i32 {
        let _keep = &held;
        panic!("read_env panicked")
    }));
    assert_eq!(rec.expect_panic(), "read_env panicked");
    assert_eq!(drops.alive(), 0);
    op.finish();
}

#[test]
fn composes() {
    let s = read_env(|env| env.stop_token().stop_possible()).then(|p| if p { 1 } else { 2 });
    assert_eq!(sync_wait(s), Ok(Some(2)));
}
