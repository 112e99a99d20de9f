//! `schedule()` allocates nothing: the operation state is the queue node.
//! A counting global allocator sees no allocation on any thread while
//! operations go through the pool (injector, LIFO slot, local queues).
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use exec_core::{Scheduler, SenderExt, sync_wait};
use exec_pool::ThreadPool;

struct Counting;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);
static COUNTING: AtomicBool = AtomicBool::new(false);

std::thread_local! {
    /// Whether allocations on this thread count: the pool's workers and the
    /// test's thread, not the test harness's own threads.
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
fn schedule_round_trips_allocate_nothing() {
    let pool = ThreadPool::builder()
        .threads(2)
        .on_thread_start(|| WATCHED.with(|w| w.set(true)))
        .build()
        .unwrap();
    WATCHED.with(|w| w.set(true));
    let sched = pool.scheduler();
    let n = if cfg!(miri) { 5 } else { 2_000 };
    // Warm up (thread-locals, lazily initialised runtime state).
    for _ in 0..10 {
        sync_wait(sched.schedule().then(|()| ())).unwrap();
    }
    COUNTING.store(true, Ordering::SeqCst);
    for i in 0..n {
        // A chain that runs on the pool and schedules again from a worker
        // (through the LIFO slot) before completing.
        let s2 = sched.clone();
        let r = sync_wait(
            sched
                .schedule()
                .then(move |()| i + 1)
                .let_value(move |x| s2.schedule().then(move |()| x * 2)),
        );
        assert_eq!(r, Ok(Some((i + 1) * 2)));
    }
    COUNTING.store(false, Ordering::SeqCst);
    WATCHED.with(|w| w.set(false));
    assert_eq!(
        ALLOCS.load(Ordering::SeqCst),
        0,
        "allocations during schedule round trips"
    );
}

#[test]
fn a_schedule_operation_is_small() {
    struct Unit;
    impl exec_core::Receiver<(), std::convert::Infallible> for Unit {
        fn set_value(self, (): ()) {}
        fn set_error(self, e: std::convert::Infallible) {
            match e {}
        }
        fn set_stopped(self) {}
    }
    let size = size_of::<exec_pool::ops::ScheduleOp<Unit>>();
    // Queue link + execute fn + payload tag + pool reference.
    assert!(size <= 4 * size_of::<usize>(), "{size} bytes");
}
