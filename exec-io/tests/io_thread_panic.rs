//! `IoContextBuilder::spawn` (a loop on its own thread) and panic
//! containment on the loop: a receiver that panics does not kill the loop
//! nor hang other waiters, and its payload is re-raised where documented.

mod support;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use exec_core::{
    PanicPayload, Receiver, Scheduler, SenderExt, SenderTo, TimedScheduler, sync_wait,
};
use exec_io::{Backend, IoContext, IoContextBuilder, TcpListener, TcpStream};

fn builders() -> Vec<IoContextBuilder> {
    [Backend::Readiness, Backend::IoUring]
        .into_iter()
        .filter(|&b| IoContext::builder().backend(b).build().is_ok())
        .map(|b| IoContext::builder().backend(b))
        .collect()
}

/// A receiver whose own `set_value` panics (not user code inside an
/// algorithm: that is caught by the algorithm).
struct PanickingReceiver(Arc<AtomicUsize>);
impl<T, E> Receiver<T, E> for PanickingReceiver {
    fn set_value(self, _: T) {
        self.0.fetch_add(1, Ordering::SeqCst);
        panic!("receiver panicked");
    }
    fn set_error(self, _: E) {
        self.0.fetch_add(100, Ordering::SeqCst);
    }
    fn set_stopped(self) {
        self.0.fetch_add(100, Ordering::SeqCst);
    }
    fn set_panic(self, _: PanicPayload) {
        self.0.fetch_add(100, Ordering::SeqCst);
    }
}

/// Starts `sender` connected to a [`PanickingReceiver`] on a boxed op,
/// which the caller keeps until the op has completed.
#[must_use = "keep the op alive until it completed"]
fn start_panicking<S: SenderTo<PanickingReceiver>>(
    sender: S,
    hits: &Arc<AtomicUsize>,
) -> Pin<Box<S::Operation>> {
    start_boxed(sender, PanickingReceiver(hits.clone()))
}

/// Starts `sender` on a boxed op; the caller keeps the box until the op
/// completed (every test checks the completion before dropping it).
fn start_boxed<S: SenderTo<R>, R>(sender: S, receiver: R) -> Pin<Box<S::Operation>> {
    let mut op = Box::pin(sender.connect(receiver));
    // SAFETY: the box is pinned and the caller keeps it until completion.
    unsafe { exec_core::OperationState::start(op.as_mut()) };
    op
}

fn payload_str(p: &PanicPayload) -> &str {
    p.downcast_ref::<&str>().copied().unwrap_or("<other>")
}

fn quiet<T>(f: impl FnOnce() -> T) -> T {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let r = f();
    std::panic::set_hook(hook);
    r
}

#[test]
fn spawned_loop_runs_work_and_stops_on_drop() {
    for b in builders() {
        let io = b.spawn().unwrap();
        let sch = io.scheduler();
        let name = sync_wait(
            sch.schedule()
                .then(|()| std::thread::current().name().map(String::from)),
        );
        assert_eq!(name, Ok(Some(Some("exec-io".into()))));
        // A timer on the loop thread, awaited from here.
        let t0 = std::time::Instant::now();
        sync_wait(sch.schedule_after(Duration::from_millis(5))).unwrap();
        assert!(t0.elapsed() >= Duration::from_millis(5));
        // A pending operation completes stopped when the thread is dropped.
        let listener = TcpListener::bind(&sch, "127.0.0.1:0".parse().unwrap()).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = std::thread::spawn(move || {
            tx.send(()).unwrap();
            sync_wait(listener.accept()).map(|o| o.is_none())
        });
        rx.recv().unwrap();
        std::thread::sleep(Duration::from_millis(20));
        drop(io);
        assert!(waiter.join().unwrap().unwrap(), "accept completed stopped");
        // Work started after the loop is gone completes stopped at once.
        assert_eq!(sync_wait(sch.schedule()), Ok(None));
    }
}

#[test]
fn receiver_panic_does_not_kill_the_spawned_loop() {
    for b in builders() {
        let io = b.spawn().unwrap();
        let sch = io.scheduler();
        let hits = Arc::new(AtomicUsize::new(0));
        quiet(|| {
            let op = start_panicking(sch.schedule(), &hits);
            support::wait_for(5, || hits.load(Ordering::SeqCst) == 1);
            // The loop still serves other waiters, on the same thread.
            assert_eq!(sync_wait(sch.schedule().then(|()| 7)), Ok(Some(7)));
            let sch2 = sch.clone();
            let listener = TcpListener::bind(&sch, "127.0.0.1:0".parse().unwrap()).unwrap();
            let addr = listener.local_addr().unwrap();
            let (c, s) = sync_wait(exec_core::when_all(
                TcpStream::connect(&sch2, addr),
                listener.accept(),
            ))
            .unwrap()
            .unwrap();
            drop((c, s));
            // join re-raises the contained panic with its payload.
            let r = catch_unwind(AssertUnwindSafe(|| io.join()));
            assert_eq!(payload_str(&r.unwrap_err()), "receiver panicked");
            drop(op); // completed (hits == 1)
        });
        assert_eq!(hits.load(Ordering::SeqCst), 1, "completed exactly once");
    }
}

#[test]
fn run_reraises_after_the_turn_and_can_run_again() {
    for b in builders() {
        let ctx = b.build().unwrap();
        let sch = ctx.scheduler();
        let hits = Arc::new(AtomicUsize::new(0));
        let other = Arc::new(AtomicUsize::new(0));
        quiet(|| {
            let op = start_panicking(sch.schedule(), &hits);
            // Queued in the same turn: still completed.
            let o = other.clone();
            exec_io::spawn_detached(sch.schedule().then(move |()| {
                o.fetch_add(1, Ordering::SeqCst);
            }));
            let r = catch_unwind(AssertUnwindSafe(|| ctx.run()));
            assert_eq!(payload_str(&r.unwrap_err()), "receiver panicked");
            drop(op);
        });
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        assert_eq!(other.load(Ordering::SeqCst), 1, "the rest of the turn ran");
        // The context is intact.
        assert_eq!(ctx.run_until(sch.schedule().then(|()| 5)), Ok(Some(5)));
        ctx.stop();
        ctx.run().unwrap();
    }
}

#[test]
fn run_until_finishes_its_sender_then_reraises() {
    for b in builders() {
        let ctx = b.build().unwrap();
        let sch = ctx.scheduler();
        let hits = Arc::new(AtomicUsize::new(0));
        let finished = Arc::new(AtomicUsize::new(0));
        quiet(|| {
            let op = start_panicking(sch.schedule(), &hits);
            let f = finished.clone();
            let r = catch_unwind(AssertUnwindSafe(|| {
                ctx.run_until(
                    sch.schedule_after(Duration::from_millis(5))
                        .then(move |()| {
                            f.fetch_add(1, Ordering::SeqCst);
                        }),
                )
            }));
            assert_eq!(payload_str(&r.unwrap_err()), "receiver panicked");
            drop(op);
        });
        assert_eq!(
            finished.load(Ordering::SeqCst),
            1,
            "its own sender completed first"
        );
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        assert_eq!(ctx.run_until(sch.schedule().then(|()| 1)), Ok(Some(1)));
    }
}

#[test]
fn panic_on_drop_is_reraised_by_the_drop() {
    for b in builders() {
        let ctx = b.build().unwrap();
        let sch = ctx.scheduler();
        let hits = Arc::new(AtomicUsize::new(0));
        // Never run: completed (stopped) by the drop; this receiver panics
        // only in set_value, so use a pending timer that the drop stops.
        struct PanicOnStop;
        impl Receiver<(), core::convert::Infallible> for PanicOnStop {
            fn set_value(self, (): ()) {}
            fn set_error(self, e: core::convert::Infallible) {
                match e {}
            }
            fn set_stopped(self) {
                panic!("stopped receiver panicked");
            }
            fn set_panic(self, _: PanicPayload) {}
        }
        let op1 = start_boxed(sch.schedule_after(Duration::from_secs(60)), PanicOnStop);
        // Another pending op must still complete (exactly once).
        let op2 = start_panicking(sch.schedule_after(Duration::from_secs(60)), &hits);
        drop(sch);
        let r = quiet(|| catch_unwind(AssertUnwindSafe(move || drop(ctx))));
        assert_eq!(payload_str(&r.unwrap_err()), "stopped receiver panicked");
        assert_eq!(
            hits.load(Ordering::SeqCst),
            100,
            "the other op completed stopped"
        );
        drop((op1, op2));
    }
}
