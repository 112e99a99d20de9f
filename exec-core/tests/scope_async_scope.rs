//! `AsyncScope`: spawn, spawn_future, associate, request_stop, close, join,
//! the closure-scoped form, panics, drops, other threads.
mod common;

use common::*;
use exec_core::RunLoop;
use exec_core::{
    AsyncScope, Completion, OperationState, Receiver, Scheduler, Sender, SenderExt, SenderTo,
    StopSource, just, sync_wait,
};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

#[test]
fn spawned_work_runs_and_join_waits_for_it() {
    let scope = AsyncScope::new();
    let sch = ManualScheduler::new();
    let hits = Arc::new(AtomicUsize::new(0));
    for _ in 0..3 {
        let h = hits.clone();
        assert!(scope.spawn(sch.schedule().then(move |()| {
            h.fetch_add(1, Ordering::SeqCst);
        })));
    }
    let (join_op, join_rec) = start(scope.join());
    assert!(!join_rec.is_complete(), "work still pending");
    sch.run_one();
    sch.run_one();
    assert!(!join_rec.is_complete());
    sch.run_one();
    join_rec.expect_value();
    join_op.finish();
    assert_eq!(hits.load(Ordering::SeqCst), 3);
}

#[test]
fn join_on_an_empty_scope_completes_inline_and_closes() {
    let scope = AsyncScope::new();
    assert_eq!(sync_wait(scope.join()), Ok(Some(())));
    assert!(!scope.spawn(just(())), "closed");
    assert_eq!(sync_wait(scope.spawn_future(just(1))), Ok(None));
    assert_eq!(sync_wait(scope.associate(just(1))), Ok(None));
}

#[test]
fn close_refuses_and_drops_the_sender() {
    let drops = DropCounter::new();
    let scope = AsyncScope::new();
    scope.close();
    let held = drops.track(());
    assert!(!scope.spawn(just(held).then(|_| ())));
    assert_eq!(drops.alive(), 0);
}

#[test]
fn spawned_work_is_freed_when_it_completes() {
    let drops = DropCounter::new();
    let scope = AsyncScope::new();
    let sch = ManualScheduler::new();
    let held = drops.track(());
    let value = drops.track(1);
    scope.spawn(sch.schedule().then(move |()| {
        let _keep = &held;
        value
    }));
    assert_eq!(drops.alive(), 2);
    sch.run_all();
    assert_eq!(drops.alive(), 0, "closure, value and op dropped");
    sync_wait(scope.join()).unwrap();
}

#[test]
fn panic_of_spawned_work_is_reraised_by_join() {
    let scope = AsyncScope::new();
    scope.spawn(just(()).then(|()| -> () { panic!("first") }));
    scope.spawn(just(()).then(|()| -> () { panic!("second") }));
    let (op, rec) = start(scope.join());
    assert_eq!(rec.expect_panic(), "first");
    op.finish();
    // Delivered once: a second join completes normally.
    assert_eq!(sync_wait(scope.join()), Ok(Some(())));
}

#[test]
fn request_stop_reaches_spawned_work() {
    let scope = AsyncScope::new();
    let sch = ManualScheduler::new();
    let called = Arc::new(AtomicBool::new(false));
    let c = called.clone();
    scope.spawn(
        sch.schedule()
            .then(move |()| c.store(true, Ordering::SeqCst)),
    );
    scope.request_stop();
    sch.run_all(); // the schedule op sees the scope's stop token
    assert!(!called.load(Ordering::SeqCst));
    assert_eq!(sync_wait(scope.join()), Ok(Some(())));
}

#[test]
fn join_honours_its_own_stop_token() {
    let scope = AsyncScope::new();
    let sch = ManualScheduler::new();
    scope.spawn(sch.schedule());
    let source = Arc::new(StopSource::new());
    let (r, rec) = recorder_with_stop(source.clone());
    let op = start_with(scope.join(), r, &rec);
    assert!(!rec.is_complete());
    source.request_stop();
    rec.expect_stopped();
    op.finish();
    sch.run_all();
    assert_eq!(sync_wait(scope.join()), Ok(Some(())));
}

#[test]
fn spawn_future_delivers_all_channels() {
    let scope = AsyncScope::new();
    assert_eq!(
        sync_wait(scope.spawn_future(just(21).then(|x| x * 2))),
        Ok(Some(42))
    );
    assert_eq!(
        sync_wait(scope.spawn_future(Fixed::<i32, &str>(Completion::Error("e")))),
        Err("e")
    );
    assert_eq!(
        sync_wait(scope.spawn_future(Fixed::<i32, ()>(Completion::Stopped))),
        Ok(None)
    );
    let (op, rec) = start(scope.spawn_future(just(1).then(|_: i32| -> i32 { panic!("sf") })));
    assert_eq!(rec.expect_panic(), "sf");
    op.finish();
    assert_eq!(
        sync_wait(scope.join()),
        Ok(Some(())),
        "panic went to the consumer"
    );
}

#[test]
fn dropping_spawn_future_requests_stop_of_the_work() {
    let scope = AsyncScope::new();
    let sch = ManualScheduler::new();
    let called = Arc::new(AtomicBool::new(false));
    let c = called.clone();
    let fut = scope.spawn_future(
        sch.schedule()
            .then(move |()| c.store(true, Ordering::SeqCst)),
    );
    drop(fut);
    let (jop, jrec) = start(scope.join());
    assert!(!jrec.is_complete(), "work still counted");
    sch.run_all();
    assert!(!called.load(Ordering::SeqCst), "stopped");
    jrec.expect_value();
    jop.finish();
}

#[test]
fn spawn_future_sees_scope_stop() {
    let scope = AsyncScope::new();
    let sch = ManualScheduler::new();
    let fut = scope.spawn_future(sch.schedule().then(|()| 5));
    scope.request_stop();
    sch.run_all();
    assert_eq!(sync_wait(fut), Ok(None));
    assert_eq!(sync_wait(scope.join()), Ok(Some(())));
}

/// A sender that completes with `()` when the test opens it, ignoring stop.
type Opener = Arc<Mutex<Option<Box<dyn FnOnce() + Send>>>>;

struct Gate(Opener);

impl Sender for Gate {
    type Output = ();
    type Error = std::convert::Infallible;
}

impl<R: Receiver<(), std::convert::Infallible> + Send + 'static> SenderTo<R> for Gate {
    type Operation = GateOp<R>;
    fn connect(self, receiver: R) -> GateOp<R> {
        GateOp(self.0, Some(receiver))
    }
}

struct GateOp<R>(Opener, Option<R>);

impl<R: Receiver<(), std::convert::Infallible> + Send + 'static> OperationState for GateOp<R> {
    unsafe fn start(self: std::pin::Pin<&mut Self>) {
        // SAFETY: nothing is structurally pinned.
        let this = unsafe { self.get_unchecked_mut() };
        let r = this.1.take().unwrap();
        *this.0.lock().unwrap() = Some(Box::new(move || r.set_value(())));
    }
}

#[test]
fn orphaned_spawn_future_panic_is_reraised_by_join() {
    let scope = AsyncScope::new();
    let gate = Arc::new(Mutex::new(None));
    let fut = scope.spawn_future(Gate(gate.clone()).then(|()| -> i32 { panic!("orphan") }));
    drop(fut); // detached; asks for stop, which the gate ignores
    let open = gate.lock().unwrap().take().unwrap();
    open();
    let (op, rec) = start(scope.join());
    assert_eq!(rec.expect_panic(), "orphan");
    op.finish();
}

#[test]
fn associate_counts_until_completion_and_forwards() {
    let scope = AsyncScope::new();
    let sch = ManualScheduler::new();
    let (op, rec) = start(scope.associate(sch.schedule().then(|()| 3)));
    let (jop, jrec) = start(scope.join());
    assert!(!jrec.is_complete(), "associated work counted");
    sch.run_all();
    assert_eq!(rec.expect_value(), 3);
    jrec.expect_value();
    op.finish();
    jop.finish();
}

#[test]
fn dropping_an_unstarted_associate_leaves_the_scope() {
    let scope = AsyncScope::new();
    let a = scope.associate(just(1));
    let (r, _rec) = recorder::<i32, std::convert::Infallible>();
    let op = scope.associate(just(2)).connect(r);
    drop(a);
    drop(op);
    assert_eq!(sync_wait(scope.join()), Ok(Some(())));
}

#[test]
fn with_lets_work_borrow_and_joins_before_returning() {
    let data = vec![1usize, 2, 3, 4];
    let sum = AtomicUsize::new(0);
    let run_loop = RunLoop::new();
    std::thread::scope(|threads| {
        threads.spawn(|| run_loop.run());
        let out = AsyncScope::with(|scope| {
            for x in &data {
                let sum = &sum;
                scope.spawn(run_loop.scheduler().schedule().then(move |()| {
                    sum.fetch_add(*x, Ordering::SeqCst);
                }));
            }
            "closure result"
        });
        assert_eq!(out, "closure result");
        assert_eq!(
            sum.load(Ordering::SeqCst),
            10,
            "all work done before with returned"
        );
        run_loop.finish();
    });
}

#[test]
fn with_reraises_a_work_panic_after_joining() {
    let r = std::panic::catch_unwind(|| {
        AsyncScope::with(|scope| {
            scope.spawn(just(()).then(|()| -> () { panic!("in scope") }));
        })
    });
    assert_eq!(payload_message(r.unwrap_err().as_ref()), "in scope");
}

#[test]
fn with_joins_even_if_the_closure_panics() {
    let drops = DropCounter::new();
    let run_loop = RunLoop::new();
    std::thread::scope(|threads| {
        threads.spawn(|| run_loop.run());
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            AsyncScope::with(|scope| {
                let held = drops.track(());
                // Completes with a value or stopped (stop is requested when
                // the closure panics); either way its op is freed.
                scope.spawn(run_loop.scheduler().schedule().then(move |()| {
                    let _keep = &held;
                }));
                panic!("closure");
            })
        }));
        assert_eq!(payload_message(r.unwrap_err().as_ref()), "closure");
        assert_eq!(drops.alive(), 0, "the work finished before with returned");
        run_loop.finish();
    });
}

#[test]
fn dropping_a_non_empty_scope_panics_and_stops_the_work() {
    let sch = ManualScheduler::new();
    let called = Arc::new(AtomicBool::new(false));
    let c = called.clone();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let scope = AsyncScope::new();
        scope.spawn(
            sch.schedule()
                .then(move |()| c.store(true, Ordering::SeqCst)),
        );
        drop(scope);
    }));
    assert!(payload_message(r.unwrap_err().as_ref()).contains("still running"));
    sch.run_all(); // the detached work still completes, safely, stopped
    assert!(!called.load(Ordering::SeqCst));
}

#[test]
fn spawn_from_many_threads_and_complete_on_others() {
    let rounds = if cfg!(miri) { 2 } else { 50 };
    for _ in 0..rounds {
        let scope = Arc::new(AsyncScope::new());
        let sch = ManualScheduler::new();
        let hits = Arc::new(AtomicUsize::new(0));
        let spawners: Vec<_> = (0..3)
            .map(|_| {
                let scope = scope.clone();
                let sch = sch.clone();
                let hits = hits.clone();
                std::thread::spawn(move || {
                    for _ in 0..10 {
                        let h = hits.clone();
                        assert!(scope.spawn(sch.schedule().then(move |()| {
                            h.fetch_add(1, Ordering::SeqCst);
                        })));
                    }
                })
            })
            .collect();
        let runner = {
            let sch = sch.clone();
            std::thread::spawn(move || {
                let mut n = 0;
                while n < 30 {
                    n += sch.run_all();
                    std::thread::yield_now();
                }
            })
        };
        for s in spawners {
            s.join().unwrap();
        }
        let joiner = {
            let scope = scope.clone();
            std::thread::spawn(move || sync_wait(scope.join()))
        };
        assert_eq!(joiner.join().unwrap(), Ok(Some(())));
        runner.join().unwrap();
        assert_eq!(hits.load(Ordering::SeqCst), 30);
    }
}

/// A sender whose `connect` panics (dropping the tracked value it holds).
struct PanicsOnConnect(#[allow(dead_code)] Tracked<()>);

/// Never made: `PanicsOnConnect::connect` panics first.
struct NeverOp;

impl OperationState for NeverOp {
    unsafe fn start(self: std::pin::Pin<&mut Self>) {
        unreachable!("never connected")
    }
}

impl Sender for PanicsOnConnect {
    type Output = ();
    type Error = std::convert::Infallible;
}

impl<R: Receiver<(), std::convert::Infallible>> SenderTo<R> for PanicsOnConnect {
    type Operation = NeverOp;
    fn connect(self, _receiver: R) -> NeverOp {
        panic!("connect failed")
    }
}

#[test]
fn a_panicking_connect_unwinds_out_of_spawn_and_leaves_the_scope() {
    let scope = AsyncScope::new();
    let drops = DropCounter::new();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        scope.spawn(PanicsOnConnect(drops.track(())))
    }));
    assert!(
        r.is_err(),
        "the panic of connect reaches the caller of spawn"
    );
    assert_eq!(drops.dropped(), 1, "the sender was dropped");
    // The work left the scope (and its block was freed: miri checks leaks).
    assert_eq!(sync_wait(scope.join()), Ok(Some(())));
}

#[test]
fn recycled_spawn_blocks_of_every_size_run_and_drop_their_state_once() {
    // Blocks come from a per-thread cache by size class: small, class-sized
    // and over-sized (bypassing the cache) op states, spawned and finished
    // repeatedly on one thread, each run once and dropped once.
    fn round<const N: usize>(
        scope: &AsyncScope<'static>,
        drops: &DropCounter,
        hits: &Arc<AtomicUsize>,
    ) {
        for _ in 0..20 {
            let d = drops.track([7u8; N]);
            let h = hits.clone();
            assert!(scope.spawn(just(()).then(move |()| {
                assert!(d.value.iter().all(|&b| b == 7), "state intact");
                h.fetch_add(1, Ordering::SeqCst);
            })));
        }
    }
    let scope = AsyncScope::new();
    let drops = DropCounter::new();
    let hits = Arc::new(AtomicUsize::new(0));
    round::<1>(&scope, &drops, &hits);
    round::<100>(&scope, &drops, &hits);
    round::<1000>(&scope, &drops, &hits);
    round::<5000>(&scope, &drops, &hits);
    round::<100>(&scope, &drops, &hits);
    assert_eq!(hits.load(Ordering::SeqCst), 100);
    assert_eq!(drops.created(), 100);
    assert_eq!(drops.dropped(), 100, "every closure state dropped once");
    assert_eq!(sync_wait(scope.join()), Ok(Some(())));
}
