//! `schedule()` on the loop allocates nothing (counting global allocator),
//! on both backends. Alone in its binary: the allocator counts globally.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use exec_core::Scheduler;
use exec_io::{Backend, IoContext};

struct Counting;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);
static COUNT: AtomicBool = AtomicBool::new(false);

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if COUNT.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded contract.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: forwarded contract.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn schedule_allocates_nothing(backend: Backend) {
    let Ok(ctx) = IoContext::builder().backend(backend).build() else {
        return;
    };
    let sch = ctx.scheduler();
    for _ in 0..100 {
        ctx.run_until(sch.schedule()).unwrap();
    }
    ALLOCS.store(0, Ordering::SeqCst);
    COUNT.store(true, Ordering::SeqCst);
    for _ in 0..1000 {
        ctx.run_until(sch.schedule()).unwrap();
    }
    COUNT.store(false, Ordering::SeqCst);
    assert_eq!(ALLOCS.load(Ordering::SeqCst), 0, "{backend:?}");
}

#[test]
fn schedule_does_not_allocate() {
    // The counter sees allocations (so the assertion below can fail).
    COUNT.store(true, Ordering::SeqCst);
    drop(std::hint::black_box(Box::new(1u64)));
    COUNT.store(false, Ordering::SeqCst);
    assert_eq!(ALLOCS.swap(0, Ordering::SeqCst), 1);
    schedule_allocates_nothing(Backend::Readiness);
    schedule_allocates_nothing(Backend::IoUring);
}
