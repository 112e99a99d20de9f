//! `into_future`: every channel, the waker hand-off across threads, stop on
//! drop, panics resumed in the poller, and no leaks.
// The fixtures of exec-core (recorders, drop counters, manual scheduler).
#[path = "../../exec-core/tests/common/mod.rs"]
#[allow(clippy::collapsible_if, clippy::type_complexity)]
mod common;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use common::*;
use exec_adapters::{AwaitError, SenderFutureExt, from_future};
use exec_core::{Completion, Scheduler, SenderExt, just};
use futures::executor::block_on;

/// A waker that counts its wake-ups.
struct CountingWaker(AtomicUsize);
impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}
fn counting_waker() -> (Waker, Arc<CountingWaker>) {
    let c = Arc::new(CountingWaker(AtomicUsize::new(0)));
    (Waker::from(c.clone()), c)
}

/// A thread that waits until something is scheduled on `sch` (the future
/// has started its operation), runs it, and returns its own id.
fn run_when_started_on_another_thread(
    sch: &ManualScheduler,
) -> std::thread::JoinHandle<std::thread::ThreadId> {
    let sch = sch.clone();
    std::thread::spawn(move || {
        while sch.pending() == 0 {
            std::thread::yield_now();
        }
        sch.run_all();
        std::thread::current().id()
    })
}

fn poll_once<F: Future + Unpin>(fut: &mut F, waker: &Waker) -> Poll<F::Output> {
    Pin::new(fut).poll(&mut Context::from_waker(waker))
}

#[test]
fn value_becomes_ok() {
    assert_eq!(block_on(just(20).then(|x| x + 22).into_future()), Ok(42));
}

#[test]
fn error_becomes_err_error() {
    let r = block_on(Fixed::<i32, &str>(Completion::Error("bad")).into_future());
    assert_eq!(r, Err(AwaitError::Error("bad")));
    assert!(!r.unwrap_err().is_stopped());
}

#[test]
fn stopped_becomes_err_stopped() {
    let r = block_on(Fixed::<i32, &str>(Completion::Stopped).into_future());
    assert_eq!(r, Err(AwaitError::Stopped));
    assert!(r.unwrap_err().is_stopped());
}

#[test]
fn question_mark_propagates_both_failures() {
    async fn twice(c: Completion<i32, &'static str>) -> Result<i32, AwaitError<&'static str>> {
        let x = Fixed(c).into_future().await?;
        Ok(x * 2)
    }
    assert_eq!(block_on(twice(Completion::Value(4))), Ok(8));
    assert_eq!(
        block_on(twice(Completion::Error("e"))),
        Err(AwaitError::Error("e"))
    );
    assert_eq!(
        block_on(twice(Completion::Stopped)),
        Err(AwaitError::Stopped)
    );
}

#[test]
fn await_error_display_and_source() {
    let e: AwaitError<std::fmt::Error> = AwaitError::Error(std::fmt::Error);
    assert!(std::error::Error::source(&e).is_some());
    assert_eq!(
        AwaitError::<std::fmt::Error>::Stopped.to_string(),
        "the operation was stopped"
    );
}

#[test]
fn panic_is_resumed_in_the_poller_with_its_payload() {
    let fut = just(1)
        .then(|_: i32| -> i32 { panic!("sender panicked") })
        .into_future();
    let payload = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| block_on(fut)))
        .expect_err("the panic must reach the poller");
    assert_eq!(payload_message(payload.as_ref()), "sender panicked");
}

#[test]
fn nothing_runs_before_the_first_poll() {
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    let fut = just(())
        .then(move |()| r.store(true, Ordering::SeqCst))
        .into_future();
    assert!(!ran.load(Ordering::SeqCst));
    drop(fut);
    assert!(!ran.load(Ordering::SeqCst));
}

#[test]
fn dropping_an_unpolled_future_drops_the_sender() {
    let drops = DropCounter::new();
    let t = drops.track(1);
    let fut = just(t).into_future();
    assert_eq!(drops.alive(), 1);
    drop(fut);
    assert_eq!(drops.alive(), 0);
}

#[test]
fn value_travels_and_block_is_freed() {
    let drops = DropCounter::new();
    let v = block_on(just(drops.track(7)).into_future()).unwrap();
    assert_eq!(v.value, 7);
    assert_eq!(drops.alive(), 1, "the value is the caller's now");
    drop(v);
    assert_eq!(drops.alive(), 0);
}

#[test]
fn completed_but_untaken_value_is_dropped_with_the_future() {
    let drops = DropCounter::new();
    let sch = ManualScheduler::new();
    let t = drops.track(3);
    let mut fut = sch.schedule().then(move |()| t).into_future();
    let (waker, count) = counting_waker();
    assert!(poll_once(&mut fut, &waker).is_pending());
    assert_eq!(sch.run_all(), 1);
    assert_eq!(count.0.load(Ordering::SeqCst), 1, "woken once");
    assert_eq!(drops.alive(), 1, "value waits in the block");
    drop(fut);
    assert_eq!(drops.alive(), 0);
}

#[test]
fn completion_on_another_thread_wakes_the_poller() {
    let sch = ManualScheduler::new();
    let fut = sch
        .schedule()
        .then(|()| std::thread::current().id())
        .into_future();
    let worker = run_when_started_on_another_thread(&sch);
    // `block_on` parks until woken: only the worker's wake-up gets us out.
    let completed_on = block_on(fut).unwrap();
    assert_eq!(completed_on, worker.join().unwrap());
}

#[test]
fn the_latest_waker_is_woken() {
    let sch = ManualScheduler::new();
    let mut fut = sch.schedule().then(|()| 1).into_future();
    let (w1, c1) = counting_waker();
    let (w2, c2) = counting_waker();
    assert!(poll_once(&mut fut, &w1).is_pending());
    assert!(poll_once(&mut fut, &w2).is_pending());
    sch.run_all();
    assert_eq!(c1.0.load(Ordering::SeqCst), 0);
    assert_eq!(c2.0.load(Ordering::SeqCst), 1);
    assert_eq!(poll_once(&mut fut, &w2), Poll::Ready(Ok(1)));
}

#[test]
fn dropping_the_future_requests_stop_and_the_op_frees_itself_later() {
    let drops = DropCounter::new();
    let sch = ManualScheduler::new();
    let called = Arc::new(AtomicBool::new(false));
    let (c, t) = (called.clone(), drops.track(()));
    let mut fut = sch
        .schedule()
        .then(move |()| {
            let _keep = &t;
            c.store(true, Ordering::SeqCst)
        })
        .into_future();
    let (waker, count) = counting_waker();
    assert!(poll_once(&mut fut, &waker).is_pending());
    drop(fut); // requests stop; must not block, must not free the queued op
    assert_eq!(drops.alive(), 1, "the running op still owns its state");
    // The operation completes later, on another thread, and sees the stop.
    let s2 = sch.clone();
    std::thread::spawn(move || s2.run_all()).join().unwrap();
    assert!(
        !called.load(Ordering::SeqCst),
        "stopped: the closure never ran"
    );
    assert_eq!(drops.alive(), 0, "the op freed its block when it completed");
    assert_eq!(count.0.load(Ordering::SeqCst), 0, "nobody left to wake");
}

#[test]
fn dropping_the_future_stops_an_inner_future_inline() {
    let drops = DropCounter::new();
    let t = drops.track(());
    let mut fut = from_future(async move {
        let _keep = t;
        std::future::pending::<()>().await
    })
    .into_future();
    let (waker, _) = counting_waker();
    assert!(poll_once(&mut fut, &waker).is_pending());
    assert_eq!(drops.alive(), 1);
    drop(fut);
    assert_eq!(
        drops.alive(),
        0,
        "stop reached the inner future and dropped it"
    );
}

#[test]
fn a_stop_raced_by_completion_completes_once_and_leaks_nothing() {
    let rounds = if cfg!(miri) { 4 } else { 200 };
    for _ in 0..rounds {
        let drops = DropCounter::new();
        let sch = ManualScheduler::new();
        let t = drops.track(());
        let mut fut = sch.schedule().then(move |()| t).into_future();
        let (waker, _) = counting_waker();
        assert!(poll_once(&mut fut, &waker).is_pending());
        let s2 = sch.clone();
        let th = std::thread::spawn(move || s2.run_all());
        drop(fut);
        th.join().unwrap();
        assert_eq!(drops.alive(), 0);
    }
}

#[test]
fn awaiting_inline_senders_in_a_loop_does_not_grow_the_stack() {
    let n = if cfg!(miri) { 50 } else { 100_000 };
    let total = block_on(async {
        let mut acc = 0u64;
        for i in 0..n {
            acc += just(i).into_future().await.unwrap();
        }
        acc
    });
    assert_eq!(total, (0..n).sum());
}

#[test]
#[should_panic(expected = "polled after it resolved")]
fn polling_after_completion_panics() {
    let mut fut = just(1).into_future();
    let (waker, _) = counting_waker();
    assert_eq!(
        poll_once(&mut fut, &waker),
        Poll::Ready(Ok::<_, AwaitError<Infallible>>(1))
    );
    let _ = poll_once(&mut fut, &waker);
}

#[test]
fn sender_futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let fut = just(1).then(|x| x + 1).into_future();
    assert_send(&fut);
    let sch = ManualScheduler::new();
    assert_send(&sch.schedule().into_future());
}

#[test]
fn is_terminated_once_resolved() {
    use futures::future::FusedFuture;
    let mut fut = just(1).into_future();
    assert!(!fut.is_terminated());
    let (waker, _) = counting_waker();
    assert_eq!(
        poll_once(&mut fut, &waker),
        Poll::Ready(Ok::<_, AwaitError<Infallible>>(1))
    );
    assert!(fut.is_terminated());
}

mod self_completing {
    //! An operation that completes later from its own `&mut self` method,
    //! after the future was dropped: the receiver frees the block (and the
    //! op in it) inside that call. Sound because the op is `!Unpin`
    //! (PROTOCOL.md rule 5: `&mut` to a `!Unpin` value asserts no
    //! uniqueness); miri checks it. (With an `Unpin` op, miri reports the
    //! free as a violation of the protected `&mut self`.)
    use super::*;
    use exec_core::{OperationState, Receiver, Sender, SenderTo};
    use std::marker::PhantomPinned;
    use std::sync::Mutex;

    struct Ptr(*mut ());
    // SAFETY: test-only hand-off of the op's address to the test body.
    unsafe impl Send for Ptr {}
    type Fire = unsafe fn(*mut ());
    type Slot = Arc<Mutex<Option<(Ptr, Fire)>>>;

    struct Later(Slot);
    impl Sender for Later {
        type Output = u32;
        type Error = ();
    }
    impl<R: Receiver<u32, ()> + Send + 'static> SenderTo<R> for Later {
        type Operation = LaterOp<R>;
        fn connect(self, r: R) -> LaterOp<R> {
            LaterOp {
                slot: self.0,
                r: Some(r),
                _pin: PhantomPinned,
            }
        }
    }
    struct LaterOp<R> {
        slot: Slot,
        r: Option<R>,
        _pin: PhantomPinned,
    }
    impl<R: Receiver<u32, ()>> LaterOp<R> {
        fn fire(&mut self) {
            let r = self.r.take().unwrap();
            r.set_value(1); // may free `self`: touch nothing afterwards
        }
        /// # Safety
        /// `p` is a started, not yet completed `LaterOp<R>`.
        unsafe fn fire_erased(p: *mut ()) {
            // SAFETY: per the contract.
            unsafe { (*(p as *mut Self)).fire() }
        }
    }
    impl<R: Receiver<u32, ()>> OperationState for LaterOp<R> {
        unsafe fn start(self: Pin<&mut Self>) {
            // SAFETY: nothing is moved out.
            let this = unsafe { self.get_unchecked_mut() };
            let p = this as *mut Self as *mut ();
            *this.slot.lock().unwrap() = Some((Ptr(p), Self::fire_erased as Fire));
        }
    }

    #[test]
    fn op_frees_its_block_from_inside_its_own_method() {
        let slot: Slot = Arc::default();
        let mut fut = Later(slot.clone()).into_future();
        let (waker, _) = counting_waker();
        assert!(poll_once(&mut fut, &waker).is_pending());
        drop(fut);
        let (p, fire) = slot.lock().unwrap().take().unwrap();
        // SAFETY: the op was started and has not completed.
        unsafe { fire(p.0) };
    }
}

mod spin_for {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn completion_within_the_spin_resolves_on_the_first_poll_without_a_wake() {
        let sch = ManualScheduler::new();
        let mut fut = sch
            .schedule()
            .then(|()| 7)
            .into_future()
            .spin_for(Duration::from_secs(10));
        let s2 = sch.clone();
        let worker = std::thread::spawn(move || {
            while s2.pending() == 0 {
                std::thread::yield_now();
            }
            s2.run_all();
        });
        let (waker, count) = counting_waker();
        // The first poll starts the op and waits for the worker's completion.
        assert_eq!(poll_once(&mut fut, &waker), Poll::Ready(Ok(7)));
        worker.join().unwrap();
        assert_eq!(count.0.load(Ordering::SeqCst), 0, "no waker was needed");
    }

    #[test]
    fn a_completion_after_the_spin_is_awaited_normally() {
        let sch = ManualScheduler::new();
        let mut fut = sch
            .schedule()
            .then(|()| 8)
            .into_future()
            .spin_for(Duration::from_millis(2));
        let (waker, count) = counting_waker();
        let t0 = Instant::now();
        assert!(poll_once(&mut fut, &waker).is_pending());
        assert!(t0.elapsed() >= Duration::from_millis(2), "it did spin");
        sch.run_all();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert_eq!(poll_once(&mut fut, &waker), Poll::Ready(Ok(8)));
    }

    #[test]
    fn only_the_first_poll_spins() {
        let sch = ManualScheduler::new();
        let mut fut = sch
            .schedule()
            .then(|()| 9)
            .into_future()
            .spin_for(Duration::from_millis(200));
        let (waker, _count) = counting_waker();
        assert!(poll_once(&mut fut, &waker).is_pending());
        let t0 = Instant::now();
        assert!(poll_once(&mut fut, &waker).is_pending());
        assert!(
            t0.elapsed() < Duration::from_millis(200),
            "a later poll returns at once"
        );
        sch.run_all();
        assert_eq!(poll_once(&mut fut, &waker), Poll::Ready(Ok(9)));
    }

    #[test]
    fn error_stopped_and_drop_mid_flight_behave_as_without_spin() {
        let spin = Duration::from_micros(50);
        assert_eq!(
            block_on(
                exec_core::just_error::<(), i32>(3)
                    .into_future()
                    .spin_for(spin)
            ),
            Err(AwaitError::Error(3))
        );
        assert_eq!(
            block_on(
                exec_core::just_stopped::<(), Infallible>()
                    .into_future()
                    .spin_for(spin)
            ),
            Err(AwaitError::Stopped)
        );
        let drops = DropCounter::new();
        let sch = ManualScheduler::new();
        let t = drops.track(());
        let mut fut = sch
            .schedule()
            .then(move |()| drop(t))
            .into_future()
            .spin_for(spin);
        let (waker, _count) = counting_waker();
        assert!(poll_once(&mut fut, &waker).is_pending());
        drop(fut);
        assert_eq!(drops.alive(), 1);
        sch.run_all();
        assert_eq!(drops.alive(), 0, "stopped op freed its block");
    }
}

// ---- The awaiting task as the environment's scheduler ----

#[test]
fn schedule_on_current_comes_back_to_the_polling_thread() {
    use exec_core::schedule_on_current;
    let sch = ManualScheduler::new();
    let fut = sch
        .schedule()
        .then(|()| std::thread::current().id())
        .let_value(|hop| schedule_on_current().then(move |()| (hop, std::thread::current().id())))
        .into_future();
    let worker = run_when_started_on_another_thread(&sch);
    let (hop, back) = block_on(fut).unwrap();
    assert_eq!(hop, worker.join().unwrap(), "the hop ran on the worker");
    assert_eq!(
        back,
        std::thread::current().id(),
        "and came back to the task"
    );
}

#[test]
fn on_returns_to_the_awaiting_task() {
    let pool = exec_pool::ThreadPool::builder().threads(1).build().unwrap();
    let here = std::thread::current().id();
    let fut = exec_core::on(
        pool.scheduler(),
        just(()).then(|()| std::thread::current().id()),
    )
    .then(|there| (there, std::thread::current().id()))
    .into_future();
    let (there, back) = block_on(fut).unwrap();
    assert_ne!(there, here, "the work ran on the pool");
    assert_eq!(back, here, "the continuation runs in the awaiting task");
}

#[test]
fn a_node_scheduled_on_the_task_runs_only_in_a_poll() {
    use exec_core::schedule_on_current;
    let sch = ManualScheduler::new();
    let ran = Arc::new(AtomicBool::new(false));
    let r2 = ran.clone();
    let mut fut = sch
        .schedule()
        .let_value(move |()| schedule_on_current().then(move |()| r2.store(true, Ordering::SeqCst)))
        .into_future();
    let (waker, count) = counting_waker();
    assert!(poll_once(&mut fut, &waker).is_pending());
    sch.run_all(); // the hop completes: the node is queued on the task
    assert_eq!(count.0.load(Ordering::SeqCst), 1, "queueing woke the task");
    assert!(!ran.load(Ordering::SeqCst), "not run by the enqueuer");
    assert_eq!(poll_once(&mut fut, &waker), Poll::Ready(Ok(())));
    assert!(ran.load(Ordering::SeqCst));
}

#[test]
fn dropping_the_future_runs_queued_nodes_stopped_once() {
    use exec_core::schedule_on_current;
    let drops = DropCounter::new();
    let sch = ManualScheduler::new();
    let (ran, stopped) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (r2, s2, t) = (ran.clone(), stopped.clone(), drops.track(()));
    let mut fut = sch
        .schedule()
        .let_value(move |()| {
            schedule_on_current().then(move |()| {
                let _keep = &t;
                r2.fetch_add(1, Ordering::SeqCst);
            })
        })
        .upon_stopped(move || {
            s2.fetch_add(1, Ordering::SeqCst);
        })
        .into_future();
    let (waker, _count) = counting_waker();
    assert!(poll_once(&mut fut, &waker).is_pending());
    sch.run_all(); // node queued on the task
    drop(fut); // closes the queue: the node completes stopped, here
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    assert_eq!(stopped.load(Ordering::SeqCst), 1, "completed stopped, once");
    assert_eq!(drops.alive(), 0, "the op completed and freed its block");
}

#[test]
fn scheduling_on_a_dropped_task_completes_stopped_at_once() {
    use exec_core::schedule_on_current;
    let sch = ManualScheduler::new();
    let stopped = Arc::new(AtomicUsize::new(0));
    let s2 = stopped.clone();
    // `unstoppable`: the hop itself ignores the stop request, so the node
    // really is scheduled on the (closed) task after the drop.
    let mut fut = sch
        .schedule()
        .unstoppable()
        .let_value(|()| schedule_on_current())
        .upon_stopped(move || {
            s2.fetch_add(1, Ordering::SeqCst);
        })
        .into_future();
    let (waker, count) = counting_waker();
    assert!(poll_once(&mut fut, &waker).is_pending());
    drop(fut);
    let s3 = sch.clone();
    std::thread::spawn(move || s3.run_all()).join().unwrap();
    assert_eq!(stopped.load(Ordering::SeqCst), 1);
    assert_eq!(count.0.load(Ordering::SeqCst), 0, "nobody left to wake");
}

#[test]
fn a_task_that_keeps_rescheduling_itself_yields_to_the_runtime() {
    use exec_core::schedule_on_current;
    let n = Arc::new(AtomicUsize::new(0));
    let n2 = n.clone();
    let mut fut = schedule_on_current()
        .then(move |()| {
            n2.fetch_add(1, Ordering::SeqCst);
        })
        .repeat_n(1000)
        .into_future();
    let (waker, count) = counting_waker();
    let mut polls = 0;
    while poll_once(&mut fut, &waker).is_pending() {
        polls += 1;
        assert!(polls < 1000, "every poll makes progress");
    }
    assert_eq!(n.load(Ordering::SeqCst), 1000);
    // One node at a time here; a poll runs at most 32 batches.
    assert!(
        polls >= 1000 / 32,
        "a long run of nodes is split over polls: {polls}"
    );
    // Each yield woke the task (and the final completion, which happened
    // inside the last poll, woke its registered waker once more).
    assert!(count.0.load(Ordering::SeqCst) >= polls, "no lost wake-up");
}
