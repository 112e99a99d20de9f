//! The loop's scheduler and timers: schedule, schedule_at/after, timeout,
//! cancellation, shutdown with timers pending.

// exec-core's shared fixtures (linted there, not here).
#[allow(clippy::collapsible_if, clippy::type_complexity)]
#[path = "../../exec-core/tests/common/mod.rs"]
mod common;
mod support;

use std::io;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::{Seen, recorder_with_stop, start, start_with};
use exec_core::{Scheduler, SenderExt, StopSource, TimedScheduler, sync_wait};
use exec_io::{IoContext, TcpListener, TimedOut, timeout};
use support::{BgLoop, wait_for};

#[test]
fn schedule_completes_on_the_loop_thread() {
    let ctx = IoContext::new().unwrap();
    let sch = ctx.scheduler();
    let me = thread::current().id();
    let id = ctx
        .run_until(sch.schedule().then(|()| thread::current().id()))
        .unwrap()
        .unwrap();
    assert_eq!(id, me);

    let bg = BgLoop::new();
    let s2 = bg.sch.clone();
    let (on_loop, tid) = sync_wait(
        bg.sch
            .schedule()
            .then(move |()| (s2.is_loop_thread(), thread::current().id())),
    )
    .unwrap()
    .unwrap();
    assert!(on_loop);
    assert_ne!(tid, me);
}

#[test]
fn scheduler_is_clone_eq_send_sync() {
    fn assert_traits<T: Clone + PartialEq + Send + Sync>() {}
    assert_traits::<exec_io::IoScheduler>();
    let a = IoContext::new().unwrap();
    let b = IoContext::new().unwrap();
    assert!(a.scheduler() == a.scheduler().clone());
    assert!(a.scheduler() != b.scheduler());
}

#[test]
fn schedule_with_stop_requested_completes_stopped() {
    let bg = BgLoop::new();
    let source = Arc::new(StopSource::new());
    source.request_stop();
    let (r, rec) = recorder_with_stop::<(), std::convert::Infallible>(source);
    let started = start_with(bg.sch.schedule(), r, &rec);
    wait_for(5, || rec.is_complete());
    rec.expect_stopped();
    started.finish();
}

#[test]
fn schedule_after_waits_and_timers_fire_in_order() {
    let ctx = IoContext::new().unwrap();
    let sch = ctx.scheduler();
    let t0 = Instant::now();
    ctx.run_until(sch.schedule_after(Duration::from_millis(30)))
        .unwrap()
        .unwrap();
    assert!(t0.elapsed() >= Duration::from_millis(30));

    // Three timers started out of order complete in deadline order.
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut started = Vec::new();
    let mut recs = Vec::new();
    for ms in [30u64, 10, 20] {
        let o = order.clone();
        let (s, r) = start(
            sch.schedule_after(Duration::from_millis(ms))
                .then(move |()| {
                    o.lock().unwrap().push(ms);
                }),
        );
        started.push(s);
        recs.push(r);
    }
    ctx.run_until(sch.schedule_after(Duration::from_millis(60)))
        .unwrap();
    // (Under miri starting them takes longer than their deadlines.)
    if !cfg!(miri) {
        assert_eq!(*order.lock().unwrap(), vec![10, 20, 30]);
    }
    for r in &recs {
        r.expect_value();
    }
    // schedule_at in the past completes at once.
    ctx.run_until(sch.schedule_at(sch.now() - Duration::from_millis(5)))
        .unwrap()
        .unwrap();
}

#[test]
fn stopping_a_timer_cancels_it() {
    let bg = BgLoop::new();
    let source = Arc::new(StopSource::new());
    let (r, rec) = recorder_with_stop::<(), std::convert::Infallible>(source.clone());
    let started = start_with(bg.sch.schedule_after(Duration::from_secs(3600)), r, &rec);
    thread::sleep(Duration::from_millis(20));
    assert!(!rec.is_complete());
    source.request_stop();
    wait_for(5, || rec.is_complete());
    rec.expect_stopped();
    started.finish();
    // The loop no longer holds the timer.
    let s2 = bg.sch.clone();
    let pending = sync_wait(bg.sch.schedule().then(move |()| s2.pending_timers()))
        .unwrap()
        .unwrap();
    assert_eq!(pending, 0);
}

/// An op has one inbox link for its start and its cancel: a stop request
/// while its start is still queued (the loop has not run yet), or before
/// it was started at all (the cancel is queued first, then the start),
/// leaves one entry, and the op completes stopped exactly once.
#[test]
fn stop_while_the_start_is_queued_completes_stopped_once() {
    let ctx = IoContext::new().unwrap();
    let sch = ctx.scheduler();
    // Started from this thread while the loop is not running: queued.
    let source = Arc::new(StopSource::new());
    let (r, rec) = recorder_with_stop::<(), std::convert::Infallible>(source.clone());
    let a = start_with(sch.schedule_after(Duration::from_secs(3600)), r, &rec);
    source.request_stop();
    assert!(!rec.is_complete(), "completes on the loop");
    // Stop requested before start: the cancel is queued by the stop
    // callback's registration, then the start takes that entry over.
    let source2 = Arc::new(StopSource::new());
    source2.request_stop();
    let (r2, rec2) = recorder_with_stop::<(), std::convert::Infallible>(source2.clone());
    let b = start_with(sch.schedule_after(Duration::from_secs(3600)), r2, &rec2);
    assert!(!rec2.is_complete(), "completes on the loop");
    ctx.run_until(sch.schedule()).unwrap().unwrap();
    assert_eq!((rec.completions(), rec2.completions()), (1, 1));
    rec.expect_stopped();
    rec2.expect_stopped();
    a.finish();
    b.finish();
    // No timer was registered, and the loop carries on.
    let s2 = sch.clone();
    let pending = ctx
        .run_until(sch.schedule().then(move |()| s2.pending_timers()))
        .unwrap()
        .unwrap();
    assert_eq!(pending, 0);
    ctx.run_until(sch.schedule_after(Duration::from_millis(1)))
        .unwrap()
        .unwrap();
}

/// 10,000 timers whose stop requests race their expiry: every one
/// completes exactly once, with a value or stopped.
#[test]
fn ten_thousand_cancellations_race_expiry() {
    let n = if cfg!(miri) { 50 } else { 10_000 };
    let bg = BgLoop::new();
    let sources: Vec<Arc<StopSource>> = (0..n).map(|_| Arc::new(StopSource::new())).collect();
    let mut ops = Vec::with_capacity(n);
    let base = Instant::now() + Duration::from_millis(20);
    for (i, s) in sources.iter().enumerate() {
        let (r, rec) = recorder_with_stop::<(), std::convert::Infallible>(s.clone());
        let at = base + Duration::from_micros((i % 2000) as u64);
        ops.push((start_with(bg.sch.schedule_at(at), r, &rec), rec));
    }
    // Stop them all from another thread while they expire.
    let srcs = sources.clone();
    let stopper = thread::spawn(move || {
        while Instant::now() < base {
            std::hint::spin_loop();
        }
        for s in srcs.iter().rev() {
            s.request_stop();
        }
    });
    stopper.join().unwrap();
    let (mut values, mut stopped) = (0, 0);
    for (started, rec) in ops {
        wait_for(10, || rec.is_complete());
        assert_eq!(rec.completions(), 1);
        match rec.take() {
            Seen::Value(()) => values += 1,
            Seen::Stopped => stopped += 1,
            _ => panic!("unexpected completion"),
        }
        started.finish();
    }
    assert_eq!(values + stopped, n);
    eprintln!("race: {values} expired, {stopped} stopped");
}

/// Adding and cancelling many pending timers is cheap; prints the cost.
#[test]
fn many_timers_add_and_cancel() {
    let n: usize = if cfg!(miri) {
        200
    } else if cfg!(debug_assertions) {
        100_000
    } else {
        1_000_000
    };
    let ctx = IoContext::new().unwrap();
    let sch = ctx.scheduler();
    let source = Arc::new(StopSource::new());
    let mut ops = Vec::with_capacity(n);
    let t0 = Instant::now();
    for _ in 0..n {
        let (r, rec) = recorder_with_stop::<(), std::convert::Infallible>(source.clone());
        ops.push((
            start_with(sch.schedule_after(Duration::from_secs(3600)), r, &rec),
            rec,
        ));
    }
    let add = t0.elapsed();
    // One turn registers all timers.
    let t1 = Instant::now();
    let s3 = sch.clone();
    let pending = ctx
        .run_until(sch.schedule().then(move |()| s3.pending_timers()))
        .unwrap()
        .unwrap();
    let register = t1.elapsed();
    assert_eq!(pending, n);
    let t2 = Instant::now();
    source.request_stop();
    ctx.run_until(sch.schedule()).unwrap();
    let cancel = t2.elapsed();
    let s4 = sch.clone();
    let pending = ctx
        .run_until(sch.schedule().then(move |()| s4.pending_timers()))
        .unwrap()
        .unwrap();
    assert_eq!(pending, 0);
    for (started, rec) in ops {
        rec.expect_stopped();
        started.finish();
    }
    eprintln!(
        "{n} timers: start {:?} ({:.0} ns/timer), register {:?} ({:.0} ns/timer), cancel {:?} ({:.0} ns/timer)",
        add,
        add.as_nanos() as f64 / n as f64,
        register,
        register.as_nanos() as f64 / n as f64,
        cancel,
        cancel.as_nanos() as f64 / n as f64
    );
}

#[test]
#[cfg_attr(miri, ignore = "binds a TCP listener: miri has no sockets")]
fn timeout_fires_with_timed_out_error() {
    let ctx = IoContext::new().unwrap();
    let sch = ctx.scheduler();
    let listener = TcpListener::bind(&sch, "127.0.0.1:0".parse().unwrap()).unwrap();
    let t0 = Instant::now();
    let err = ctx
        .run_until(timeout(&sch, listener.accept(), Duration::from_millis(20)))
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    assert!(err.get_ref().unwrap().is::<TimedOut>());
    assert!(t0.elapsed() >= Duration::from_millis(20));
    // The listener still works afterwards (the accept was deregistered).
    let err = ctx
        .run_until(timeout(&sch, listener.accept(), Duration::from_millis(5)))
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::TimedOut);
}

#[test]
fn timeout_passes_value_and_error_through() {
    let ctx = IoContext::new().unwrap();
    let sch = ctx.scheduler();
    let fast = sch
        .schedule_after(Duration::from_millis(1))
        .then(|()| Ok::<_, io::Error>(5))
        .then(|r| r.unwrap());
    // A sender with io::Error: map the Infallible error.
    let v = ctx.run_until(timeout(&sch, IoErr(fast), Duration::from_secs(10)));
    assert_eq!(v.unwrap(), Some(5));
    // The timer was cancelled: nothing pending.
    let s2 = sch.clone();
    assert_eq!(
        ctx.run_until(sch.schedule().then(move |()| s2.pending_timers()))
            .unwrap(),
        Some(0)
    );
    let err = ctx
        .run_until(timeout(
            &sch,
            common::Fixed::<u8, io::Error>(exec_core::Completion::Error(io::Error::other("boom"))),
            Duration::from_secs(10),
        ))
        .unwrap_err();
    assert_eq!(err.to_string(), "boom");
}

#[test]
#[cfg_attr(miri, ignore = "binds a TCP listener: miri has no sockets")]
fn timeout_stopped_from_outside_completes_stopped() {
    let bg = BgLoop::new();
    let listener = TcpListener::bind(&bg.sch, "127.0.0.1:0".parse().unwrap()).unwrap();
    let source = Arc::new(StopSource::new());
    let (r, rec) = recorder_with_stop(source.clone());
    let started = start_with(
        timeout(&bg.sch, listener.accept(), Duration::from_secs(3600)),
        r,
        &rec,
    );
    thread::sleep(Duration::from_millis(10));
    source.request_stop();
    wait_for(5, || rec.is_complete());
    rec.expect_stopped();
    started.finish();
}

#[test]
fn dropping_the_context_completes_pending_timers_stopped() {
    let ctx = IoContext::new().unwrap();
    let sch = ctx.scheduler();
    let (s1, r1) = start(sch.schedule_after(Duration::from_secs(3600)));
    let (s2, r2) = start(sch.schedule());
    // Register the first timer on the loop, leave the second queued.
    ctx.run_until(sch.schedule()).unwrap();
    let (s3, r3) = start(sch.schedule_after(Duration::from_secs(3600)));
    assert!(!r1.is_complete());
    drop(ctx);
    r1.expect_stopped();
    r2.expect_value();
    r3.expect_stopped();
    // Started after the drop: stopped at once.
    let (s4, r4) = start(sch.schedule_after(Duration::from_secs(1)));
    r4.expect_stopped();
    for s in [s1, s3, s4] {
        s.finish();
    }
    s2.finish();
}

#[test]
fn stop_ends_run_and_run_until_requests_stop() {
    let ctx = IoContext::new().unwrap();
    let h = ctx.handle();
    let t = thread::spawn(move || {
        thread::sleep(Duration::from_millis(20));
        h.stop();
    });
    ctx.run().unwrap();
    t.join().unwrap();

    let h = ctx.handle();
    let sch = ctx.scheduler();
    let t = thread::spawn(move || {
        thread::sleep(Duration::from_millis(20));
        h.stop();
    });
    let r = ctx.run_until(sch.schedule_after(Duration::from_secs(3600)));
    assert_eq!(r, Ok(None));
    t.join().unwrap();
}

/// Wraps an `Infallible`-error sender as one with `io::Error`.
struct IoErr<S>(S);
mod io_err {
    use super::IoErr;
    use exec_core::{Env, PanicPayload, Receiver, Sender, SenderTo};
    use std::convert::Infallible;
    use std::io;

    impl<S: Sender<Error = Infallible>> Sender for IoErr<S> {
        type Output = S::Output;
        type Error = io::Error;
    }
    pub(crate) struct R<R0>(R0);
    impl<T, R0: Receiver<T, io::Error>> Receiver<T, Infallible> for R<R0> {
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
    impl<S, R0> SenderTo<R0> for IoErr<S>
    where
        S: Sender<Error = Infallible> + SenderTo<R<R0>>,
    {
        type Operation = S::Operation;
        fn connect(self, r: R0) -> S::Operation {
            self.0.connect(R(r))
        }
    }
}
