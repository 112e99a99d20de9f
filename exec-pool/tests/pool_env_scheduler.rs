//! The pool as the environment's current scheduler: `starts_on(pool, …)`
//! reports it, `on(…)` inside comes back to it (through a `TaskNode` queued
//! like any job), and a shut-down pool cancels the hop back. A counting
//! allocator watches the pool's workers and the test thread.
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use exec_core::{
    InlineScheduler, RunLoop, Scheduler, SenderExt, WithScheduler, just, on, read_env, starts_on,
    sync_wait,
};
use exec_pool::ThreadPool;

struct Counting;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);
static COUNTING: AtomicBool = AtomicBool::new(false);

std::thread_local! {
    /// Whether allocations on this thread count (pool workers and the
    /// allocation test's thread).
    static WATCHED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) && WATCHED.with(|w| w.get()) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn starts_on_the_pool_reports_the_pool() {
    let pool = ThreadPool::builder().threads(2).build().unwrap();
    let sched = pool.scheduler();
    let other = pool.scheduler();
    let expected = other.erased();
    assert!(expected.is_some());
    assert_eq!(expected, sched.erased(), "same pool, same context");
    let seen = sync_wait(starts_on(
        sched,
        read_env(move |env| env.scheduler() == expected),
    ));
    assert_eq!(seen, Ok(Some(true)));
}

#[test]
fn on_inside_the_pool_comes_back_to_the_pool() {
    let pool = ThreadPool::builder().threads(2).build().unwrap();
    let sched = pool.scheduler();
    let probe = pool.scheduler();
    let probe2 = pool.scheduler();
    let elsewhere = RunLoop::new();
    std::thread::scope(|s| {
        s.spawn(|| elsewhere.run());
        let got = sync_wait(starts_on(
            sched,
            on(
                elsewhere.scheduler(),
                just(()).then(move |()| probe.is_worker_thread()),
            )
            .then(move |on_worker| (on_worker, probe2.is_worker_thread())),
        ));
        elsewhere.finish();
        assert_eq!(
            got,
            Ok(Some((false, true))),
            "work ran off the pool, then came back to a worker"
        );
    });
}

#[test]
fn on_the_pool_comes_back_to_sync_wait() {
    let pool = ThreadPool::builder().threads(2).build().unwrap();
    let probe = pool.scheduler();
    let main = std::thread::current().id();
    let got = sync_wait(
        on(
            pool.scheduler(),
            just(()).then(move |()| probe.is_worker_thread()),
        )
        .then(|w| (w, std::thread::current().id())),
    );
    assert_eq!(got, Ok(Some((true, main))));
}

#[test]
fn hop_back_to_a_shut_down_pool_is_stopped() {
    let pool = ThreadPool::builder().threads(1).build().unwrap();
    let sched = pool.scheduler();
    drop(pool);
    let current = WithScheduler::new(sched.erased());
    let got = sync_wait(on(InlineScheduler, just(1)).write_env(current));
    assert_eq!(got, Ok(None), "cancelled by the pool: stopped");
}

#[test]
fn hopping_back_to_the_pool_allocates_nothing() {
    let pool = ThreadPool::builder()
        .threads(2)
        .on_thread_start(|| WATCHED.with(|w| w.set(true)))
        .build()
        .unwrap();
    let sched = pool.scheduler();
    let elsewhere = RunLoop::new();
    let n = if cfg!(miri) { 3 } else { 500 };
    std::thread::scope(|s| {
        s.spawn(|| elsewhere.run());
        let run = |i: u32| {
            sync_wait(starts_on(
                sched.clone(),
                on(elsewhere.scheduler(), just(i)).then(|x| x + 1),
            ))
        };
        // Warm up thread-locals and lazily initialised runtime state.
        for i in 0..5 {
            assert_eq!(run(i), Ok(Some(i + 1)));
        }
        WATCHED.with(|w| w.set(true));
        COUNTING.store(true, Ordering::SeqCst);
        for i in 0..n {
            assert_eq!(run(i), Ok(Some(i + 1)));
        }
        COUNTING.store(false, Ordering::SeqCst);
        WATCHED.with(|w| w.set(false));
        elsewhere.finish();
    });
    assert_eq!(ALLOCS.load(Ordering::SeqCst), 0);
}
