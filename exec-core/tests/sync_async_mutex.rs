//! `AsyncMutex`: exclusion, FIFO hand-over, stop before/while waiting,
//! lock and unlock on other threads, value dropped with the mutex.
mod common;

use common::*;
use exec_core::{AsyncMutex, SenderExt, SenderTo, StopSource, sync_wait};
use std::sync::Arc;

/// The recording fixtures need `'static` values, and a guard borrows its
/// mutex: tests that record guards use a mutex leaked for `'static` and
/// reclaimed when this handle drops (declared first, so dropped after every
/// op and guard of the test).
struct Leaked<T: 'static>(*mut AsyncMutex<T>);

impl<T> Leaked<T> {
    fn get(&self) -> &'static AsyncMutex<T> {
        // SAFETY: alive until `self` drops, after every user (see above).
        unsafe { &*self.0 }
    }
}

impl<T> std::ops::Deref for Leaked<T> {
    type Target = AsyncMutex<T>;
    fn deref(&self) -> &AsyncMutex<T> {
        self.get()
    }
}

impl<T> Drop for Leaked<T> {
    fn drop(&mut self) {
        // SAFETY: leaked by `leaked`; every op and guard of the test that
        // borrows it was dropped before (they are declared after it).
        drop(unsafe { Box::from_raw(self.0) });
    }
}

fn leaked<T>(value: T) -> Leaked<T> {
    Leaked(Box::into_raw(Box::new(AsyncMutex::new(value))))
}

#[test]
fn lock_when_free_completes_inline() {
    let m = leaked(1);
    let (op, rec) = start(m.get().lock());
    let mut g = rec.expect_value();
    *g += 1;
    drop(g);
    op.finish();
    assert_eq!(*m.try_lock().unwrap(), 2);
}

#[test]
fn waiters_are_served_fifo_on_unlock() {
    let m = leaked(Vec::new());
    let first = m.try_lock().unwrap();
    let waiting: Vec<_> = (0..3).map(|_| start(m.get().lock())).collect();
    assert!(m.try_lock().is_none());
    for (_, rec) in &waiting {
        assert!(!rec.is_complete());
    }
    drop(first);
    // Only the oldest waiter got the lock; each unlock hands it on.
    let mut order = Vec::new();
    for (i, (op, rec)) in waiting.into_iter().enumerate() {
        let mut g = rec.expect_value();
        g.push(i);
        order.push(i);
        drop(g);
        op.finish();
    }
    assert_eq!(*m.try_lock().unwrap(), vec![0, 1, 2]);
    assert_eq!(order, vec![0, 1, 2]);
}

#[test]
fn stop_before_start_completes_stopped_even_if_free() {
    let m = leaked(());
    let source = Arc::new(StopSource::new());
    source.request_stop();
    let (r, rec) = recorder_with_stop(source);
    let op = start_with(m.get().lock(), r, &rec);
    rec.expect_stopped();
    op.finish();
    assert!(m.try_lock().is_some(), "not left locked");
}

#[test]
fn stop_while_waiting_deregisters() {
    let m = leaked(0);
    let held = m.try_lock().unwrap();
    let source = Arc::new(StopSource::new());
    let (r, rec) = recorder_with_stop(source.clone());
    let stopped_op = start_with(m.get().lock(), r, &rec);
    let (next_op, next_rec) = start(m.get().lock());
    source.request_stop();
    rec.expect_stopped();
    stopped_op.finish();
    drop(held);
    // The stopped waiter was skipped: the next one has the lock.
    let g = next_rec.expect_value();
    assert!(m.try_lock().is_none());
    drop(g);
    next_op.finish();
    assert!(m.try_lock().is_some());
}

#[test]
fn value_dropped_with_the_mutex() {
    let drops = DropCounter::new();
    let m = AsyncMutex::new(drops.track(5));
    assert_eq!(sync_wait(m.lock().then(|g| g.value)), Ok(Some(5)));
    assert_eq!(drops.alive(), 1);
    drop(m);
    assert_eq!(drops.alive(), 0);
}

#[test]
fn many_threads_increment_under_the_lock() {
    let threads = 4;
    let per = if cfg!(miri) { 5 } else { 500 };
    let m = Arc::new(AsyncMutex::new(0usize));
    let hs: Vec<_> = (0..threads)
        .map(|_| {
            let m = m.clone();
            std::thread::spawn(move || {
                for _ in 0..per {
                    sync_wait(m.lock().then(|mut g| {
                        let v = *g;
                        std::hint::black_box(());
                        *g = v + 1;
                    }))
                    .unwrap();
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    assert_eq!(*m.try_lock().unwrap(), threads * per);
}

#[test]
fn stop_races_unlock_from_other_threads() {
    let rounds = if cfg!(miri) { 3 } else { 300 };
    for _ in 0..rounds {
        let m = leaked(0);
        let held = m.try_lock().unwrap();
        let source = Arc::new(StopSource::new());
        let (r, rec) = recorder_with_stop(source.clone());
        let op = start_with(m.get().lock(), r, &rec);
        let stopper = std::thread::spawn(move || source.request_stop());
        drop(held);
        stopper.join().unwrap();
        match rec.take() {
            Seen::Value(g) => drop(g),
            Seen::Stopped => {}
            other => panic!("unexpected {other:?}"),
        }
        op.finish();
        assert!(m.try_lock().is_some(), "lock not lost");
    }
}

#[test]
fn lock_op_is_small() {
    // Queue node (prev, next, wake, cancel), embedded stop node (4 words),
    // receiver, mutex reference: with a one-word receiver (the recorder's
    // `Arc`), 10 words. It was 12 (a separate `StopCallback` and a
    // `linked` flag).
    let m = AsyncMutex::new(0u8);
    let (r, _rec) = recorder::<exec_core::AsyncMutexGuard<'_, u8>, core::convert::Infallible>();
    assert_eq!(size_of_val(&r), size_of::<usize>());
    let op = m.lock().connect(r);
    assert!(
        size_of_val(&op) <= 10 * size_of::<usize>(),
        "LockOp is {} B",
        size_of_val(&op)
    );
}
