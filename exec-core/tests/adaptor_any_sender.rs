//! `AnySender`: all channels, panics, drops, cancellation, exactly one
//! allocation, and a 100,000-deep recursive `let_value` chain on small stacks.
mod common;

use common::*;
use exec_core::{AnySender, Completion, Scheduler, SenderExt, StopSource, just, sync_wait};
use std::convert::Infallible;
use std::sync::Arc;

#[path = "support/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::allocations_in;

#[global_allocator]
static GLOBAL: counting_alloc::Counting = counting_alloc::Counting;

#[test]
fn forwards_every_channel() {
    assert_eq!(sync_wait(just(4).then(|x| x + 1).boxed()), Ok(Some(5)));
    let (op, rec) = start(Fixed::<i32, &str>(Completion::Error("e")).boxed());
    assert_eq!(rec.expect_error(), "e");
    op.finish();
    let (op, rec) = start(Fixed::<i32, &str>(Completion::Stopped).boxed());
    rec.expect_stopped();
    op.finish();
    let (op, rec) = start(just(1).then(|_: i32| -> i32 { panic!("erased") }).boxed());
    assert_eq!(rec.expect_panic(), "erased");
    op.finish();
}

#[test]
fn asynchronous_inner_completion() {
    let sch = ManualScheduler::new();
    let (op, rec) = start(sch.schedule().then(|()| 8).boxed());
    assert!(!rec.is_complete());
    sch.run_all();
    assert_eq!(rec.expect_value(), 8);
    op.finish();
}

#[test]
fn cancellation_is_forwarded() {
    let source = Arc::new(StopSource::new());
    let sch = ManualScheduler::new();
    let (r, rec) = recorder_with_stop::<(), Infallible>(source.clone());
    let op = start_with(sch.schedule().boxed(), r, &rec);
    source.request_stop();
    sch.run_all();
    rec.expect_stopped();
    op.finish();
}

#[test]
fn drops_the_sender_if_never_connected_and_values_after_completion() {
    let drops = DropCounter::new();
    let s = just(drops.track(1)).boxed();
    drop(s);
    assert_eq!(drops.alive(), 0);
    let t = drops.track(2);
    let (op, rec) = start(
        just(())
            .then(move |()| {
                let t = t;
                t.value
            })
            .boxed(),
    );
    assert_eq!(rec.expect_value(), 2);
    assert_eq!(
        drops.alive(),
        0,
        "closure state dropped when the inner op completed"
    );
    op.finish();
}

/// A receiver that holds a tracked value and records nothing: for
/// operations dropped without being started.
struct Holding(#[allow(dead_code)] Tracked<u8>);
impl exec_core::Receiver<i32, Infallible> for Holding {
    fn set_value(self, _: i32) {
        panic!("not started: no completion expected")
    }
    fn set_error(self, e: Infallible) {
        match e {}
    }
    fn set_stopped(self) {
        panic!("not started: no completion expected")
    }
    fn set_panic(self, _: exec_core::PanicPayload) {
        panic!("not started: no completion expected")
    }
    fn env(&self) -> impl exec_core::Env<'_> {
        exec_core::EmptyEnv
    }
}

#[test]
fn an_operation_dropped_unstarted_drops_its_sender_and_receiver() {
    use exec_core::SenderTo;
    let drops = DropCounter::new();
    let t = drops.track(5);
    let s = just(())
        .then(move |()| {
            let t = t;
            t.value
        })
        .boxed();
    let op = s.connect(Holding(drops.track(0)));
    assert_eq!(drops.alive(), 2);
    drop(op);
    assert_eq!(drops.alive(), 0, "the frame's sender and the receiver");
    // Started and completed: the receiver was consumed, the frame freed;
    // dropping the operation afterwards drops nothing twice.
    let t = drops.track(6);
    let (op, rec) = start(
        just(())
            .then(move |()| {
                let t = t;
                t.value
            })
            .boxed(),
    );
    assert_eq!(rec.expect_value(), 6);
    op.finish();
    assert_eq!(drops.alive(), 0);
    assert_eq!(drops.created(), drops.dropped());
}

#[test]
fn at_most_one_allocation_per_any_sender_and_frames_are_recycled() {
    assert_eq!(
        allocations_in(|| drop(Box::new(1u64))),
        1,
        "the counter counts"
    );
    let _ = sync_wait(just(0));
    let n = allocations_in(|| {
        assert_eq!(sync_wait(just(20).then(|x| x + 1).boxed()), Ok(Some(21)));
    });
    assert_eq!(n, 1);
    let n = allocations_in(|| {
        let s = just(1)
            .boxed()
            .let_value(|x| just(x + 1).boxed())
            .then(|x| x * 2)
            .boxed();
        assert_eq!(sync_wait(s), Ok(Some(4)));
    });
    assert!(n <= 3, "three AnySenders, at most three allocations: {n}");
    // The frames freed by the runs above are reused by the next ones on
    // this thread: steady use allocates nothing.
    let n = allocations_in(|| {
        for _ in 0..100 {
            let s = just(1)
                .boxed()
                .let_value(|x| just(x + 1).boxed())
                .then(|x| x * 2)
                .boxed();
            assert_eq!(sync_wait(s), Ok(Some(4)));
        }
    });
    assert_eq!(n, 0, "frames recycled");
}

fn count(n: u64) -> AnySender<u64, Infallible> {
    if n == 0 {
        just(0).boxed()
    } else {
        just(n)
            .let_value(move |n| count(n - 1).then(move |acc| acc + n))
            .boxed()
    }
}

fn deep_chain_on(stack: usize) {
    let n: u64 = if cfg!(miri) { 200 } else { 100_000 };
    let h = std::thread::Builder::new()
        .stack_size(stack)
        .spawn(move || sync_wait(count(n)))
        .unwrap();
    assert_eq!(h.join().unwrap(), Ok(Some(n * (n + 1) / 2)));
}

#[test]
fn recursive_let_value_chain_on_an_8_mib_stack() {
    deep_chain_on(8 << 20);
}

#[test]
fn recursive_let_value_chain_on_a_2_mib_stack() {
    deep_chain_on(2 << 20);
}

#[test]
fn is_send() {
    fn send<T: Send>(_: &T) {}
    send(&just(1).boxed());
}

/// Live fork operations of `fork_join` (created, not yet dropped), and the
/// most seen at once.
static LIVE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static PEAK: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Held by each fork's `then` closure: alive from the fork's creation until
/// its completion.
struct Live;
impl Live {
    fn new() -> Self {
        use std::sync::atomic::Ordering::Relaxed;
        let n = LIVE.fetch_add(1, Relaxed) + 1;
        PEAK.fetch_max(n, Relaxed);
        Live
    }
}
impl Drop for Live {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// `fib` by recursive `when_all`, every level inline (no scheduler hop).
fn fork_join(n: u64) -> AnySender<u64, Infallible> {
    if n < 2 {
        return just(n).boxed();
    }
    let live = Live::new();
    let left = just(()).let_value(move |()| fork_join(n - 1));
    exec_core::when_all(left, fork_join(n - 2))
        .then(move |(a, b)| {
            drop(live);
            a + b
        })
        .boxed()
}

/// A recursion deeper than the trampoline bound runs depth-first: once a
/// start is deferred, the frames unwinding to the outermost one defer their
/// remaining starts too, instead of expanding every pending subtree up to
/// the bound (a breadth-first frontier of thousands of live operations).
#[test]
fn deep_fork_join_keeps_few_operations_alive() {
    let n = if cfg!(miri) { 12 } else { 24 };
    let fib = |n: u64| -> u64 { (0..n).fold((0u64, 1u64), |(a, b), _| (b, a + b)).0 };
    std::thread::spawn(move || {
        assert_eq!(sync_wait(fork_join(n)), Ok(Some(fib(n))));
    })
    .join()
    .unwrap();
    assert_eq!(LIVE.load(std::sync::atomic::Ordering::Relaxed), 0);
    let peak = PEAK.load(std::sync::atomic::Ordering::Relaxed);
    // Depth-first: about 1,500 for n = 24 (the levels on the stack times
    // the right spines made eagerly); breadth-first it was about 62,000.
    assert!(peak < 5_000, "{peak} fork operations alive at once");
}

/// `s` boxed again `levels` times: starting it nests `levels` erased starts,
/// and its completion `levels` erased deliveries.
fn rebox<T: Send + 'static, E: Send + 'static>(
    s: AnySender<T, E>,
    levels: usize,
) -> AnySender<T, E> {
    (0..levels).fold(s, |s, _| s.boxed())
}

/// Deeper than the trampoline bound (16): the starts and the deliveries
/// beyond it are queued on the trampoline (a queued delivery keeps the
/// outcome in the operation until it runs). Every channel arrives once,
/// unchanged; a value is dropped once, after it was taken.
#[test]
fn deliveries_beyond_the_trampoline_bound_on_every_channel() {
    const LEVELS: usize = 40;
    let drops = DropCounter::new();
    let (op, rec) = start(rebox(just(drops.track(7)).boxed(), LEVELS));
    let v = rec.expect_value();
    assert_eq!(v.value, 7);
    assert_eq!(
        drops.alive(),
        1,
        "the value is alive until its owner drops it"
    );
    drop(v);
    assert_eq!(drops.alive(), 0);
    op.finish();

    let (op, rec) = start(rebox(
        Fixed::<i32, &str>(Completion::Error("e")).boxed(),
        LEVELS,
    ));
    assert_eq!(rec.expect_error(), "e");
    op.finish();
    let (op, rec) = start(rebox(
        Fixed::<i32, &str>(Completion::Stopped).boxed(),
        LEVELS,
    ));
    rec.expect_stopped();
    op.finish();
    let deep_panic = just(1).then(|_: i32| -> i32 { panic!("deep") }).boxed();
    let (op, rec) = start(rebox(deep_panic, LEVELS));
    assert_eq!(rec.expect_panic(), "deep");
    op.finish();

    // Asynchronous inner completion, delivered through 40 erased levels.
    let sch = ManualScheduler::new();
    let (op, rec) = start(rebox(sch.schedule().then(|()| 9).boxed(), LEVELS));
    assert!(!rec.is_complete());
    sch.run_all();
    assert_eq!(rec.expect_value(), 9);
    op.finish();
}

/// A stop request reaches an operation started beyond the trampoline bound.
#[test]
fn cancellation_reaches_beyond_the_trampoline_bound() {
    let source = Arc::new(StopSource::new());
    let sch = ManualScheduler::new();
    let (r, rec) = recorder_with_stop::<(), Infallible>(source.clone());
    let op = start_with(rebox(sch.schedule().boxed(), 40), r, &rec);
    source.request_stop();
    sch.run_all();
    rec.expect_stopped();
    op.finish();
}

/// A `sync_wait` called from inside erased work while the trampoline is
/// unwinding towards queued starts (here: the first branch of the
/// `when_all` went deeper than the bound) runs its own work on a fresh
/// trampoline instead of queueing it behind the blocked outer frame.
#[test]
fn nested_sync_wait_while_the_trampoline_unwinds() {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let s = exec_core::when_all(
            rebox(just(1).boxed(), 40),
            just(()).then(|()| sync_wait(just(2).boxed()).unwrap().unwrap()),
        )
        .boxed();
        tx.send(sync_wait(s)).unwrap();
    });
    let got = rx
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("nested sync_wait deadlocked");
    assert_eq!(got, Ok(Some((1, 2))));
}
