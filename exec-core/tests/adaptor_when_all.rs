//! `when_all` over tuples: values in order, first error wins over stopped,
//! stop from outside, siblings stopped on error, panics delivered once after
//! every child completed, completions from other threads, eager drops, the
//! 12-ary form, and a two-thread stress test with random stop requests.
mod common;
mod nary_support;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::*;
use exec_core::{
    Completion, Env, PanicPayload, Receiver, Scheduler, SenderExt, StopSource, WhenAll, just,
    sync_wait, when_all,
};
use nary_support::*;

#[test]
fn values_in_order() {
    assert_eq!(
        sync_wait(when_all(just(1), just("two"))),
        Ok(Some((1, "two")))
    );
    let (op, rec) = start(exec_core::when_all!(just(1), just('b'), just(3u8)));
    assert_eq!(rec.expect_value(), (1, 'b', 3u8));
    op.finish();
}

#[test]
fn values_in_order_when_children_complete_in_reverse() {
    let (a, ha) = gate::<i32, &str>();
    let (b, hb) = gate::<&str, &str>();
    let (c, hc) = gate::<char, &str>();
    let (op, rec) = start(exec_core::when_all!(a, b, c));
    assert!(ha.is_started() && hb.is_started() && hc.is_started());
    assert!(hc.value('c'));
    assert!(hb.value("b"));
    assert_eq!(rec.completions(), 0, "not complete before the last child");
    assert!(ha.value(1));
    assert_eq!(rec.expect_value(), (1, "b", 'c'));
    op.finish();
}

#[test]
fn first_error_wins_over_stopped() {
    // stopped first, then an error: error.
    let (op, rec) = start(when_all(
        Fixed::<i32, &str>(Completion::Stopped),
        Fixed::<i32, &str>(Completion::Error("e")),
    ));
    assert_eq!(rec.expect_error(), "e");
    op.finish();

    // error first, then stopped: error.
    let (op, rec) = start(when_all(
        Fixed::<i32, &str>(Completion::Error("e")),
        Fixed::<i32, &str>(Completion::Stopped),
    ));
    assert_eq!(rec.expect_error(), "e");
    op.finish();

    // two errors: the first one.
    let (a, ha) = gate::<i32, &str>();
    let (b, hb) = gate::<i32, &str>();
    let (op, rec) = start(when_all(a, b));
    assert!(hb.complete(Delivery::Error("second child, first error")));
    // `a` was asked to stop and completed stopped from its stop callback.
    assert!(ha.stopped_by_request());
    assert_eq!(rec.expect_error(), "second child, first error");
    op.finish();
}

#[test]
fn stopped_when_a_child_stops_and_none_fails() {
    let (a, ha) = gate::<i32, &str>();
    let (op, rec) = start(when_all(a, Fixed::<i32, &str>(Completion::Stopped)));
    assert!(ha.stopped_by_request(), "the sibling was asked to stop");
    rec.expect_stopped();
    op.finish();
}

#[test]
fn values_win_even_if_stop_was_requested() {
    // Children that ignore stop requests: the outer stop is already
    // requested, yet every child sends a value, so the result is the values.
    let source = Arc::new(StopSource::new());
    source.request_stop();
    let (r, rec) = recorder_with_stop(source);
    let op = start_with(
        when_all(
            Fixed::<i32, &str>(Completion::Value(1)),
            Fixed::<i32, &str>(Completion::Value(2)),
        ),
        r,
        &rec,
    );
    assert_eq!(rec.expect_value(), (1, 2));
    op.finish();

    // A gate completed by hand after a sibling already sent its value.
    let (a, ha) = gate::<i32, &str>();
    let (op, rec) = start(when_all(a, Fixed::<i32, &str>(Completion::Value(2))));
    assert!(ha.value(1));
    assert_eq!(rec.expect_value(), (1, 2));
    op.finish();
}

#[test]
fn stop_request_from_outside_reaches_children() {
    let source = Arc::new(StopSource::new());
    let (r, rec) = recorder_with_stop::<(i32, i32), &str>(source.clone());
    let (a, ha) = gate::<i32, &str>();
    let (b, hb) = gate::<i32, &str>();
    let op = start_with(when_all(a, b), r, &rec);
    assert_eq!(rec.completions(), 0);
    // Both gates complete stopped inside the forwarded request: the whole
    // completes from inside `request_stop`, exactly once.
    source.request_stop();
    assert!(ha.stopped_by_request() && hb.stopped_by_request());
    rec.expect_stopped();
    op.finish();
}

/// The last child to arrive finds the reference count at 1 and completes
/// without decrementing it, while the forwarder is registered with the
/// outer source (the gates register stop callbacks, which links it): a stop
/// request after the completion finds the forwarder gone and completes
/// nothing again.
#[test]
fn last_arrival_unlinks_the_forwarder_before_completing() {
    let source = Arc::new(StopSource::new());
    let (r, rec) = recorder_with_stop::<(i32, i32), &str>(source.clone());
    let (a, ha) = gate::<i32, &str>();
    let (b, hb) = gate::<i32, &str>();
    let op = start_with(when_all(a, b), r, &rec);
    assert!(ha.value(1));
    assert_eq!(rec.completions(), 0);
    assert!(hb.value(2));
    assert_eq!(rec.expect_value(), (1, 2));
    assert!(source.request_stop());
    assert_eq!(rec.completions(), 1, "completed once");
    assert!(!ha.stopped_by_request() && !hb.stopped_by_request());
    op.finish();
}

/// The forwarder, holding its own reference, is the last to arrive: one
/// child sent a value, the outer stop request stops the other inside the
/// forwarder, and the forwarder completes the whole, stopped, once.
#[test]
fn forwarder_arriving_last_completes_once() {
    let source = Arc::new(StopSource::new());
    let (r, rec) = recorder_with_stop::<(i32, i32), &str>(source.clone());
    let (a, ha) = gate::<i32, &str>();
    let (b, hb) = gate::<i32, &str>();
    let op = start_with(when_all(a, b), r, &rec);
    assert!(ha.value(1));
    assert_eq!(rec.completions(), 0);
    source.request_stop();
    assert!(hb.stopped_by_request());
    rec.expect_stopped();
    assert!(!hb.value(2), "already complete");
    op.finish();
}

#[test]
fn stop_request_from_outside_with_manual_scheduler() {
    let sch = ManualScheduler::new();
    let source = Arc::new(StopSource::new());
    let (r, rec) = recorder_with_stop::<(i32, i32), Infallible>(source.clone());
    let ran = Arc::new(AtomicBool::new(false));
    let ran2 = ran.clone();
    let op = start_with(
        when_all(
            sch.schedule().then(move |()| {
                ran2.store(true, Ordering::SeqCst);
                1
            }),
            sch.schedule().then(|()| 2),
        ),
        r,
        &rec,
    );
    source.request_stop();
    assert_eq!(
        rec.completions(),
        0,
        "children complete when the scheduler runs"
    );
    assert_eq!(sch.run_all(), 2);
    rec.expect_stopped();
    assert!(
        !ran.load(Ordering::SeqCst),
        "closure not called when stopped"
    );
    op.finish();
}

#[test]
fn siblings_stopped_on_error() {
    let sch = ManualScheduler::new();
    let (g, hg) = gate::<i32, &str>();
    let (e, he) = gate::<i32, &str>();
    let called = Arc::new(AtomicBool::new(false));
    let c = called.clone();
    // A third child on the manual scheduler, retyped to the common error.
    let (op, rec) = start(exec_core::when_all!(
        g,
        e,
        InfallibleAs::<_, &str>::new(
            sch.schedule()
                .then(move |()| c.store(true, Ordering::SeqCst))
        )
    ));
    assert!(he.complete(Delivery::Error("boom")));
    assert!(hg.stopped_by_request(), "sibling stopped at once");
    assert_eq!(rec.completions(), 0, "waits for the scheduled sibling");
    sch.run_all();
    assert_eq!(rec.expect_error(), "boom");
    assert!(
        !called.load(Ordering::SeqCst),
        "stopped sibling's closure not run"
    );
    op.finish();
}

#[test]
fn panic_is_delivered_once_after_siblings_complete() {
    let sch = ManualScheduler::new();
    let (op, rec) = start(when_all(
        sch.schedule().then(|()| 1),
        just(()).then(|()| -> i32 { panic!("child panicked") }),
    ));
    assert_eq!(rec.completions(), 0, "the sibling has not completed yet");
    assert_eq!(sch.run_all(), 1);
    assert_eq!(rec.expect_panic(), "child panicked");
    op.finish();
}

#[test]
fn panic_first_wins_over_later_error() {
    let (a, ha) = gate::<i32, &str>();
    let (b, hb) = gate::<i32, &str>();
    let (op, rec) = start(when_all(a, b));
    assert!(ha.complete(Delivery::Panic("first")));
    // b was stopped by the panic
    assert_eq!(hb.delivered(), 3);
    assert_eq!(rec.expect_panic(), "first");
    op.finish();
}

#[test]
fn panic_resurfaces_in_sync_wait() {
    let r = std::panic::catch_unwind(|| {
        sync_wait(when_all(
            just(1),
            just(2).then(|_: i32| -> i32 { panic!("boom in when_all") }),
        ))
    });
    assert_eq!(payload_message(r.unwrap_err().as_ref()), "boom in when_all");
}

#[test]
fn completions_from_other_threads() {
    for _ in 0..if cfg!(miri) { 4 } else { 50 } {
        let s1 = ManualScheduler::new();
        let s2 = ManualScheduler::new();
        let (op, rec) = start(when_all(
            s1.schedule().then(|()| 1),
            s2.schedule().then(|()| "two".to_string()),
        ));
        let t1 = std::thread::spawn(move || s1.run_all());
        let t2 = std::thread::spawn(move || s2.run_all());
        assert_eq!(t1.join().unwrap(), 1);
        assert_eq!(t2.join().unwrap(), 1);
        assert_eq!(rec.expect_value(), (1, "two".to_string()));
        op.finish();
    }
}

#[test]
fn sync_wait_with_children_on_other_threads() {
    let (a, ha) = gate::<i32, Infallible>();
    let (b, hb) = gate::<i32, Infallible>();
    let t = std::thread::spawn(move || {
        while !(ha.is_started() && hb.is_started()) {
            std::thread::yield_now();
        }
        let t2 = std::thread::spawn(move || hb.value(2));
        ha.value(1);
        t2.join().unwrap();
    });
    assert_eq!(sync_wait(when_all(a, b).then(|(a, b)| a + b)), Ok(Some(3)));
    t.join().unwrap();
}

#[test]
fn values_dropped_before_error_is_forwarded() {
    let drops = DropCounter::new();
    let v = drops.track(1);
    let (r, rec) = checking_receiver(drops.clone());
    let mut op = Box::pin(exec_core::SenderTo::connect(
        when_all(
            Fixed::<Tracked<i32>, &str>(Completion::Value(v)),
            Fixed::<Tracked<i32>, &str>(Completion::Error("e")),
        ),
        r,
    ));
    // SAFETY: the children complete inline; `op` outlives the completion.
    unsafe { exec_core::OperationState::start(op.as_mut()) };
    assert_eq!(rec.expect_error(), "e");
    drop(op);
    assert_eq!(drops.alive(), 0);
}

#[test]
fn drop_counters_return_to_zero() {
    let drops = DropCounter::new();
    {
        let (op, rec) = start(when_all(just(drops.track(1)), just(drops.track(2))));
        let (a, b) = rec.expect_value();
        assert_eq!((a.value, b.value), (1, 2));
        op.finish();
    }
    // Unstarted: children and their values dropped with the sender.
    drop(when_all(just(drops.track(3)), just(drops.track(4))));
    // Connected but never started.
    {
        let (r, _rec) = recorder::<(Tracked<i32>, Tracked<i32>), Infallible>();
        let op =
            exec_core::SenderTo::connect(when_all(just(drops.track(5)), just(drops.track(6))), r);
        drop(op);
    }
    // Stopped run.
    {
        let (g, hg) = gate::<Tracked<i32>, &str>();
        let (op, rec) = start(when_all(
            g,
            Fixed::<Tracked<i32>, &str>(Completion::Stopped),
        ));
        rec.expect_stopped();
        assert_eq!(hg.delivered(), 3);
        op.finish();
    }
    assert_eq!(drops.alive(), 0, "created {}", drops.created());
}

#[test]
fn twelve_children() {
    let s = exec_core::when_all!(
        just(0u8),
        just(1u16),
        just(2u32),
        just(3u64),
        just(4i8),
        just(5i16),
        just(6i32),
        just(7i64),
        just('8'),
        just("9"),
        just(10usize),
        just(11isize),
    );
    assert_eq!(
        sync_wait(s),
        Ok(Some((
            0u8, 1u16, 2u32, 3u64, 4i8, 5i16, 6i32, 7i64, '8', "9", 10usize, 11isize
        )))
    );

    // With one failing child among twelve, the others are stopped.
    let gates: Vec<_> = (0..11).map(|_| gate::<i32, &str>()).collect();
    let mut it = gates.into_iter();
    let mut handles = Vec::new();
    let mut next = || {
        let (g, h) = it.next().unwrap();
        handles.push(h);
        g
    };
    let s = WhenAll::new((
        next(),
        next(),
        next(),
        next(),
        next(),
        next(),
        Fixed::<i32, &str>(Completion::Error("seven")),
        next(),
        next(),
        next(),
        next(),
        next(),
    ));
    let (op, rec) = start(s);
    assert_eq!(rec.expect_error(), "seven");
    assert!(handles.iter().all(|h| h.delivered() == 3));
    op.finish();
}

#[test]
fn sends_stopped_reflects_children() {
    use exec_core::Sender;
    fn sends_stopped<S: Sender>(_: &S) -> bool {
        S::SENDS_STOPPED
    }
    assert!(!sends_stopped(&when_all(just(1), just(2))));
    assert!(sends_stopped(&when_all(
        just(1),
        ManualScheduler::new().schedule()
    )));
}

#[test]
fn infallible_children_observe_the_receivers_token() {
    // No child can fail or stop: no stop source of its own; the children
    // see the downstream token itself.
    let source = Arc::new(StopSource::new());
    let (r, rec) = recorder_with_stop::<((), ()), Infallible>(source.clone());
    let seen = Arc::new(AtomicBool::new(false));
    let op = start_with(
        when_all(just(()), TokenProbe(source.clone(), seen.clone())),
        r,
        &rec,
    );
    rec.expect_value();
    assert!(seen.load(Ordering::SeqCst));
    op.finish();
}

#[test]
fn stress_two_threads_random_stop() {
    let iterations = if cfg!(miri) { 20 } else { 2_000 };
    let mut rng = Rng::new(0x5eed);
    for i in 0..iterations {
        let source = Arc::new(StopSource::new());
        let (r, rec) = recorder_with_stop::<(u64, u64), u64>(source.clone());
        let (a, ha) = gate::<u64, u64>();
        let (b, hb) = gate::<u64, u64>();
        let op = start_with(when_all(a, b), r, &rec);
        let error_a = rng.below(4) == 0;
        let stop_at = rng.below(3);
        let t1 = std::thread::spawn(move || {
            if error_a {
                ha.complete(Delivery::Error(7));
            } else {
                ha.value(1);
            }
            ha
        });
        let t2 = std::thread::spawn(move || {
            hb.value(2);
            hb
        });
        if stop_at == 0 {
            source.request_stop();
        }
        let ha = t1.join().unwrap();
        if stop_at == 1 {
            source.request_stop();
        }
        let hb = t2.join().unwrap();
        assert_eq!(rec.completions(), 1, "iteration {i}");
        let (da, db) = (ha.delivered(), hb.delivered());
        match rec.take() {
            Seen::Value(v) => {
                assert_eq!(v, (1, 2));
                assert_eq!((da, db), (1, 1), "iteration {i}");
            }
            Seen::Error(e) => {
                assert_eq!(e, 7);
                assert_eq!(da, 2, "iteration {i}");
            }
            Seen::Stopped => {
                assert!(da == 3 || db == 3, "iteration {i}");
                assert!(da != 2, "an error is never hidden behind stopped");
            }
            Seen::Panic(_) => panic!("unexpected panic"),
        }
        op.finish();
    }
}

// ------------------------------------------------------------- helpers

/// Retypes the (impossible) error of an `Infallible`-error sender.
struct InfallibleAs<S, E>(S, std::marker::PhantomData<fn() -> E>);
impl<S, E> InfallibleAs<S, E> {
    fn new(s: S) -> Self {
        InfallibleAs(s, std::marker::PhantomData)
    }
}
impl<S: exec_core::Sender<Error = Infallible>, E> exec_core::Sender for InfallibleAs<S, E> {
    type Output = S::Output;
    type Error = E;
    const SENDS_STOPPED: bool = S::SENDS_STOPPED;
}
struct InfallibleRx<R, E>(R, std::marker::PhantomData<fn() -> E>);
impl<R: Receiver<T, E>, T, E> Receiver<T, Infallible> for InfallibleRx<R, E> {
    fn set_value(self, v: T) {
        self.0.set_value(v)
    }
    fn set_error(self, e: Infallible) {
        match e {}
    }
    fn set_stopped(self) {
        self.0.set_stopped()
    }
    fn set_panic(self, p: PanicPayload) {
        self.0.set_panic(p)
    }
    fn env(&self) -> impl Env<'_> {
        self.0.env()
    }
}
impl<S, E, R> exec_core::SenderTo<R> for InfallibleAs<S, E>
where
    S: exec_core::SenderTo<InfallibleRx<R, E>, Error = Infallible>,
    R: Receiver<S::Output, E>,
{
    type Operation = S::Operation;
    fn connect(self, r: R) -> S::Operation {
        self.0.connect(InfallibleRx(r, std::marker::PhantomData))
    }
}

/// A receiver recording like `recorder()`, that also asserts, when it gets
/// an error, that every tracked value has already been dropped.
fn checking_receiver<T: 'static, E: 'static>(
    drops: DropCounter,
) -> (Checking<RecordingReceiver<T, E>>, Recorder<T, E>) {
    let (r, rec) = recorder();
    (Checking(r, drops), rec)
}
struct Checking<R>(R, DropCounter);
impl<R: Receiver<T, E>, T, E> Receiver<T, E> for Checking<R> {
    fn set_value(self, v: T) {
        self.0.set_value(v)
    }
    fn set_error(self, e: E) {
        assert_eq!(self.1.alive(), 0, "values dropped before the error");
        self.0.set_error(e)
    }
    fn set_stopped(self) {
        assert_eq!(self.1.alive(), 0, "values dropped before stopped");
        self.0.set_stopped()
    }
    fn set_panic(self, p: PanicPayload) {
        self.0.set_panic(p)
    }
}

/// Completes with `()` after checking its env's token is `source`'s.
struct TokenProbe(Arc<StopSource>, Arc<AtomicBool>);
impl exec_core::Sender for TokenProbe {
    type Output = ();
    type Error = Infallible;
    const SENDS_STOPPED: bool = false;
}
impl<R: Receiver<(), Infallible>> exec_core::SenderTo<R> for TokenProbe {
    type Operation = FixedOp<(), Infallible, R>;
    fn connect(self, r: R) -> Self::Operation {
        let same = r.env().stop_token() == self.0.token();
        self.1.store(same, Ordering::SeqCst);
        Fixed::<(), Infallible>(Completion::Value(())).connect(r)
    }
}
