//! Nested n-ary algorithms chain their children's stop sources lazily: a
//! child source forwards its parent's stop request without registering
//! with the parent until one of its descendants registers a callback, and
//! its tokens report a stop requested anywhere up the chain. These tests
//! check what that must keep: a stop from outside reaches every descendant
//! (registered or polling, started before or after the request, nested
//! deeper than the chain bound), a failing child stops its own siblings but
//! not its parent's, and every operation completes exactly once.
mod common;
mod nary_support;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::*;
use exec_core::{AnySender, Scheduler, SenderExt, StopSource, just, stop_when, when_all, when_any};
use nary_support::*;

/// `just(v)` with the tests' error type.
fn j(v: i32) -> AnySender<i32, &'static str> {
    AnySender::new(just(v).map_error(|e: Infallible| -> &'static str { match e {} }))
}

#[test]
fn outside_stop_reaches_registered_grandchildren() {
    let source = Arc::new(StopSource::new());
    let (r, rec) = recorder_with_stop::<((i32, i32), (i32, (i32, i32))), &str>(source.clone());
    let (a, ha) = gate::<i32, &str>();
    let (b, hb) = gate::<i32, &str>();
    let (c, hc) = gate::<i32, &str>();
    let (d, hd) = gate::<i32, &str>();
    let op = start_with(
        when_all(when_all(a, b), when_all(c, when_all(d, j(5)))),
        r,
        &rec,
    );
    assert_eq!(rec.completions(), 0);
    source.request_stop();
    for h in [&ha, &hb, &hc, &hd] {
        assert!(h.stopped_by_request(), "every grandchild stopped");
    }
    rec.expect_stopped();
    op.finish();
}

#[test]
fn outside_stop_reaches_polling_grandchildren() {
    // Nobody registers a callback: the scheduled children see the request
    // by polling their token, which walks up the chain.
    let sch = ManualScheduler::new();
    let source = Arc::new(StopSource::new());
    let (r, rec) = recorder_with_stop::<((i32, i32), i32), Infallible>(source.clone());
    let ran = Arc::new(AtomicBool::new(false));
    let ran2 = ran.clone();
    let op = start_with(
        when_all(
            when_all(
                sch.schedule().then(move |()| {
                    ran2.store(true, Ordering::SeqCst);
                    1
                }),
                sch.schedule().then(|()| 2),
            ),
            sch.schedule().then(|()| 3),
        ),
        r,
        &rec,
    );
    source.request_stop();
    assert_eq!(rec.completions(), 0);
    assert_eq!(sch.run_all(), 3);
    rec.expect_stopped();
    assert!(
        !ran.load(Ordering::SeqCst),
        "closure not called when stopped"
    );
    op.finish();
}

#[test]
fn stop_requested_before_start_stops_registering_grandchildren() {
    // The grandchildren register with a chained source whose parent was
    // already stopped: the link fails and forwards the stop at once.
    let source = Arc::new(StopSource::new());
    source.request_stop();
    let (r, rec) = recorder_with_stop::<(i32, (i32, i32)), &str>(source.clone());
    let (a, ha) = gate::<i32, &str>();
    let (b, hb) = gate::<i32, &str>();
    let (c, hc) = gate::<i32, &str>();
    let op = start_with(when_all(a, when_all(b, c)), r, &rec);
    for h in [&ha, &hb, &hc] {
        assert!(h.stopped_by_request());
    }
    rec.expect_stopped();
    op.finish();
}

#[test]
fn inner_error_stops_inner_siblings_only() {
    let source = Arc::new(StopSource::new());
    let (r, rec) = recorder_with_stop::<((i32, i32), (i32, i32)), &str>(source.clone());
    let (e, he) = gate::<i32, &str>();
    let (g1, hg1) = gate::<i32, &str>();
    let (g2, hg2) = gate::<i32, &str>();
    let (g3, hg3) = gate::<i32, &str>();
    let inner = when_all(e, g1)
        .upon_error(|_| (0, 0))
        .map_error(|e: Infallible| -> &'static str { match e {} });
    let op = start_with(when_all(inner, when_all(g2, g3)), r, &rec);
    assert!(he.complete(Delivery::Error("boom")));
    assert!(hg1.stopped_by_request(), "inner sibling stopped");
    assert!(!hg2.stopped_by_request() && !hg3.stopped_by_request());
    assert_eq!(hg2.delivered(), 0, "the outer sibling still runs");
    assert!(hg2.value(2) && hg3.value(3));
    assert_eq!(rec.expect_value(), ((0, 0), (2, 3)));
    op.finish();
}

#[test]
fn outside_stop_after_an_inner_join_completed() {
    // The first inner join linked (its gates registered) and completed,
    // unlinking; a later outside stop still reaches the other branch.
    let source = Arc::new(StopSource::new());
    let (r, rec) = recorder_with_stop::<((i32, i32), (i32, i32)), &str>(source.clone());
    let (a, ha) = gate::<i32, &str>();
    let (b, hb) = gate::<i32, &str>();
    let (c, hc) = gate::<i32, &str>();
    let (d, hd) = gate::<i32, &str>();
    let op = start_with(when_all(when_all(a, b), when_all(c, d)), r, &rec);
    assert!(ha.value(1) && hb.value(2));
    source.request_stop();
    assert!(!ha.stopped_by_request() && !hb.stopped_by_request());
    assert!(hc.stopped_by_request() && hd.stopped_by_request());
    rec.expect_stopped();
    op.finish();
}

/// `when_all` nested `depth` deep, a gate at the bottom.
fn nest(depth: usize, bottom: Gate<i32, &'static str>) -> AnySender<i32, &'static str> {
    if depth == 0 {
        return AnySender::new(bottom);
    }
    AnySender::new(when_all(nest(depth - 1, bottom), j(1)).then(|(a, b)| a + b))
}

#[test]
fn stop_reaches_deeper_than_the_chain_bound() {
    // Deeper than the chain bound (32): some levels register eagerly, which
    // links the chain above them.
    for depth in [1, 31, 32, 33, 70] {
        let source = Arc::new(StopSource::new());
        let (r, rec) = recorder_with_stop::<(i32, i32), &str>(source.clone());
        let (g, hg) = gate::<i32, &str>();
        let (h, hh) = gate::<i32, &str>();
        let op = start_with(when_all(nest(depth, g), h), r, &rec);
        source.request_stop();
        assert!(hg.stopped_by_request(), "depth {depth}");
        assert!(hh.stopped_by_request());
        rec.expect_stopped();
        op.finish();
    }
    // And a value still gets through.
    let (g, hg) = gate::<i32, &str>();
    let (op, rec) = start(nest(70, g));
    assert!(hg.value(0));
    assert_eq!(rec.expect_value(), 70);
    op.finish();
}

#[test]
fn deep_polling_child_sees_outside_stop() {
    let sch = ManualScheduler::new();
    let source = Arc::new(StopSource::new());
    let (r, rec) = recorder_with_stop::<i32, Infallible>(source.clone());
    fn deep(depth: usize, sch: &ManualScheduler) -> AnySender<i32, Infallible> {
        if depth == 0 {
            return AnySender::new(sch.schedule().then(|()| 0));
        }
        AnySender::new(when_all(deep(depth - 1, sch), just(1)).then(|(a, b)| a + b))
    }
    let op = start_with(deep(40, &sch), r, &rec);
    source.request_stop();
    assert_eq!(sch.run_all(), 1);
    rec.expect_stopped();
    op.finish();
}

#[test]
fn when_any_and_stop_when_chain_too() {
    let source = Arc::new(StopSource::new());
    let (r, rec) = recorder_with_stop::<(i32, i32), &str>(source.clone());
    let (a, ha) = gate::<i32, &str>();
    let (b, hb) = gate::<i32, &str>();
    let (t, ht) = gate::<(), Infallible>();
    let (c, hc) = gate::<i32, &str>();
    let op = start_with(when_all(when_any(a, b), stop_when(c, t)), r, &rec);
    source.request_stop();
    for h in [&ha, &hb, &hc] {
        assert!(h.stopped_by_request());
    }
    assert!(ht.stopped_by_request());
    rec.expect_stopped();
    op.finish();
}
