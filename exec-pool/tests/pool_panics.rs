//! Panics are contained: a panicking task does not kill its worker, and the
//! panic reaches whoever awaits the result.
#[path = "../../exec-core/tests/common/mod.rs"]
#[allow(clippy::collapsible_if, clippy::type_complexity)]
mod common;
mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::payload_message;
use exec_core::{Scheduler, SenderExt, sync_wait};
use exec_pool::ThreadPool;
use support::{Counts, spawn};

/// Tests that swap the panic hook run one at a time.
static HOOK: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn a_panic_in_then_reaches_sync_wait_with_its_payload() {
    let pool = ThreadPool::builder().threads(2).build().unwrap();
    let r = std::panic::catch_unwind(|| {
        sync_wait(
            pool.scheduler()
                .schedule()
                .then(|()| -> i32 { panic!("boom 42") }),
        )
    });
    assert_eq!(payload_message(r.unwrap_err().as_ref()), "boom 42");
    assert_eq!(
        sync_wait(pool.scheduler().schedule().then(|()| 1)),
        Ok(Some(1))
    );
    assert_eq!(pool.contained_panics(), 0, "delivered, not contained");
}

#[test]
fn panics_delivered_through_set_panic_then_normal_work() {
    let pool = ThreadPool::builder().threads(2).build().unwrap();
    let n = if cfg!(miri) { 10 } else { 10_000 };
    let _serial = HOOK.lock().unwrap_or_else(|e| e.into_inner());
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {})); // keep the output readable
    for i in 0..n {
        let r = std::panic::catch_unwind(|| {
            sync_wait(
                pool.scheduler()
                    .schedule()
                    .then(move |()| -> usize { panic!("p{i}") }),
            )
        });
        assert_eq!(payload_message(r.unwrap_err().as_ref()), format!("p{i}"));
    }
    std::panic::set_hook(prev);
    for i in 0..n {
        assert_eq!(
            sync_wait(pool.scheduler().schedule().then(move |()| i)),
            Ok(Some(i))
        );
    }
}

#[test]
fn panics_escaping_a_completion_are_contained_on_the_worker() {
    // `spawn`'s receiver runs the closure inside its completion with no
    // catch: the worker's own `catch_unwind` contains it.
    let pool = ThreadPool::builder().threads(2).build().unwrap();
    let sched = pool.scheduler();
    let counts = Counts::new();
    let n = if cfg!(miri) { 10 } else { 10_000 };
    let _serial = HOOK.lock().unwrap_or_else(|e| e.into_inner());
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    for _ in 0..n {
        spawn(&sched, &counts, None, || panic!("escaped"));
    }
    counts.wait_all(Duration::from_secs(60));
    // The count is bumped before the closure panics: wait for the worker.
    support::wait_until(|| pool.contained_panics() == n);
    std::panic::set_hook(prev);
    let ok = Counts::new();
    for _ in 0..n {
        spawn(&sched, &ok, None, || {});
    }
    ok.wait_all(Duration::from_secs(60));
    assert_eq!(ok.values.load(Ordering::SeqCst), n);
    assert_eq!(pool.contained_panics(), n);
    assert_eq!(sched.num_threads(), 2);
}
