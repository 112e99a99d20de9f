//! `write_env`: the overlay answers what it knows, the rest is forwarded;
//! the overlay is dropped before the completion is forwarded.
mod common;

use common::*;
use exec_core::{
    Completion, Env, EnvOverlay, Scheduler, SenderExt, StopSource, StopToken, WithStopToken, just,
    read_env, sync_wait,
};
use std::sync::Arc;

fn stop_state(env: &dyn Env<'_>) -> (bool, bool) {
    let t = env.stop_token();
    (t.stop_possible(), t.stop_requested())
}

#[test]
fn overlay_replaces_the_stop_token() {
    let inner = StopSource::new();
    inner.request_stop();
    let s = read_env(stop_state).write_env(WithStopToken::source(&inner));
    assert_eq!(sync_wait(s), Ok(Some((true, true))));
}

#[test]
fn unanswered_queries_are_forwarded() {
    let outer = Arc::new(StopSource::new());
    outer.request_stop();
    let (r, rec) = recorder_with_stop(outer.clone());
    let op = start_with(read_env(stop_state).write_env(()), r, &rec);
    assert_eq!(rec.expect_value(), (true, true), "receiver's token seen");
    op.finish();

    struct Silent;
    impl EnvOverlay for Silent {}
    let (r, rec) = recorder_with_stop(outer.clone());
    let op = start_with(read_env(stop_state).write_env(Silent), r, &rec);
    assert_eq!(rec.expect_value(), (true, true));
    op.finish();
}

#[test]
fn custom_overlay_with_optional_source() {
    struct Maybe<'a>(Option<&'a StopSource>);
    impl EnvOverlay for Maybe<'_> {
        fn stop_token(&self) -> Option<StopToken<'_>> {
            self.0.map(|s| s.token())
        }
    }
    let mine = StopSource::new();
    assert_eq!(
        sync_wait(read_env(stop_state).write_env(Maybe(Some(&mine)))),
        Ok(Some((true, false)))
    );
    assert_eq!(
        sync_wait(read_env(stop_state).write_env(Maybe(None))),
        Ok(Some((false, false)))
    );
}

#[test]
fn stop_through_the_overlay_cancels_the_child() {
    let sched = ManualScheduler::new();
    let mine = Arc::new(StopSource::new());
    struct Owned(Arc<StopSource>);
    impl EnvOverlay for Owned {
        fn stop_token(&self) -> Option<StopToken<'_>> {
            Some(self.0.token())
        }
    }
    let (op, rec) = start(sched.schedule().write_env(Owned(mine.clone())));
    mine.request_stop();
    sched.run_all();
    rec.expect_stopped();
    op.finish();
}

#[test]
fn all_channels_forwarded_and_overlay_dropped() {
    let drops = DropCounter::new();
    struct Held(#[allow(dead_code)] Tracked<()>);
    impl EnvOverlay for Held {}
    for c in [
        Completion::Value(1),
        Completion::Error("e"),
        Completion::Stopped,
    ] {
        let expect = c;
        let (op, rec) = start(Fixed(c).write_env(Held(drops.track(()))));
        match expect {
            Completion::Value(v) => assert_eq!(rec.expect_value(), v),
            Completion::Error(e) => assert_eq!(rec.expect_error(), e),
            Completion::Stopped => rec.expect_stopped(),
        }
        assert_eq!(drops.alive(), 0);
        op.finish();
    }
    let (op, rec) = start(
        just(1)
            .then(|_| -> i32 { panic!("p") })
            .write_env(Held(drops.track(()))),
    );
    assert_eq!(rec.expect_panic(), "p");
    assert_eq!(drops.alive(), 0);
    op.finish();
}
