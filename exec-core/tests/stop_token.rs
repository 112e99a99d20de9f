//! Stop tokens: request/observe, callbacks run once, inline when already
//! stopped, deregistration waits for a callback running on another thread.
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use exec_core::{NeverStopToken, StopCallback, StopSource, StopToken};

#[test]
fn never_token_is_never_stopped() {
    let t = StopToken::never();
    assert!(!t.stop_possible());
    assert!(!t.stop_requested());
    let n = NeverStopToken;
    assert!(!n.stop_possible() && !n.stop_requested());
    assert_eq!(StopToken::from(n), StopToken::never());
    assert_eq!(std::mem::size_of::<NeverStopToken>(), 0);
}

#[test]
fn first_request_wins() {
    let s = StopSource::new();
    let t = s.token();
    assert!(t.stop_possible());
    assert!(!t.stop_requested());
    assert!(s.request_stop());
    assert!(!s.request_stop());
    assert!(t.stop_requested() && s.stop_requested());
}

#[test]
fn callbacks_run_once_in_any_order_of_registration() {
    let s = StopSource::new();
    let hits = AtomicUsize::new(0);
    let mut a = pin!(StopCallback::new(s.token(), || {
        hits.fetch_add(1, Ordering::SeqCst);
    }));
    let mut b = pin!(StopCallback::new(s.token(), || {
        hits.fetch_add(10, Ordering::SeqCst);
    }));
    a.as_mut().register();
    b.as_mut().register();
    b.as_mut().register(); // registering twice does nothing
    assert_eq!(hits.load(Ordering::SeqCst), 0);
    s.request_stop();
    s.request_stop();
    assert_eq!(hits.load(Ordering::SeqCst), 11);
}

#[test]
fn register_after_request_runs_inline() {
    let s = StopSource::new();
    s.request_stop();
    let hit = AtomicBool::new(false);
    let mut cb = pin!(StopCallback::new(s.token(), || hit.store(true, Ordering::SeqCst)));
    cb.as_mut().register();
    assert!(hit.load(Ordering::SeqCst));
    assert!(!cb.is_registered());
}

#[test]
fn dropped_callback_never_runs_and_its_capture_is_dropped() {
    let s = StopSource::new();
    let hit = Arc::new(AtomicBool::new(false));
    {
        let h = hit.clone();
        let mut cb = pin!(StopCallback::new(s.token(), move || h.store(true, Ordering::SeqCst)));
        cb.as_mut().register();
    }
    assert_eq!(
        Arc::strong_count(&hit),
        1,
        "closure dropped with the callback"
    );
    s.request_stop();
    assert!(!hit.load(Ordering::SeqCst));
}

#[test]
fn unregistered_middle_of_list_is_unlinked() {
    let s = StopSource::new();
    let hits = AtomicUsize::new(0);
    let mut a = pin!(StopCallback::new(s.token(), || {
        hits.fetch_add(1, Ordering::SeqCst);
    }));
    a.as_mut().register();
    {
        let mut b = pin!(StopCallback::new(s.token(), || {
            hits.fetch_add(100, Ordering::SeqCst);
        }));
        b.as_mut().register();
        let mut c = pin!(StopCallback::new(s.token(), || {
            hits.fetch_add(10, Ordering::SeqCst);
        }));
        c.as_mut().register();
        // b is in the middle of the list; it goes first (declared last drops first: c, then b)
    }
    s.request_stop();
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[test]
fn drop_waits_for_callback_running_on_other_thread() {
    let rounds = if cfg!(miri) { 3 } else { 200 };
    for _ in 0..rounds {
        let s = StopSource::new();
        let in_callback = AtomicBool::new(false);
        let finished = AtomicBool::new(false);
        std::thread::scope(|scope| {
            let mut cb = Box::pin(StopCallback::new(s.token(), || {
                in_callback.store(true, Ordering::SeqCst);
                std::thread::sleep(Duration::from_micros(200));
                finished.store(true, Ordering::SeqCst);
            }));
            cb.as_mut().register();
            scope.spawn(|| {
                s.request_stop();
            });
            while !in_callback.load(Ordering::SeqCst) {
                std::hint::spin_loop();
            }
            drop(cb);
            // The drop returned: the callback must have finished.
            assert!(finished.load(Ordering::SeqCst));
        });
    }
}

#[test]
fn callback_may_drop_its_own_registration() {
    // A callback that frees the memory holding itself (as an operation that
    // completes from its stop callback does) must not deadlock.
    let s = StopSource::new();
    let slot: std::sync::Mutex<Option<std::pin::Pin<Box<dyn Send>>>> = std::sync::Mutex::new(None);
    // Heap-allocated so the callback can name it with a `'static` borrow;
    // freed at the end of the test (miri checks for leaks).
    let raw = Box::into_raw(Box::new(slot));
    // SAFETY: `raw` is valid until it is freed at the end, after the last use.
    let slot_ref: &'static std::sync::Mutex<Option<std::pin::Pin<Box<dyn Send>>>> =
        unsafe { &*raw };
    // SAFETY: the callback is dropped (by itself) before `s` goes away.
    let token = unsafe { s.token().detach() };
    let mut cb = Box::pin(StopCallback::new(token, move || {
        // Drop ourselves.
        let me = slot_ref.lock().unwrap().take();
        drop(me);
    }));
    cb.as_mut().register();
    *slot_ref.lock().unwrap() = Some(cb);
    s.request_stop();
    assert!(slot_ref.lock().unwrap().is_none());
    // SAFETY: from `Box::into_raw` above; the callback (the only other user
    // of `slot_ref`) is gone.
    drop(unsafe { Box::from_raw(raw) });
}

#[test]
fn concurrent_register_deregister_and_request() {
    let rounds = if cfg!(miri) { 4 } else { 2_000 };
    for _ in 0..rounds {
        let s = StopSource::new();
        let hits = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..2 {
                scope.spawn(|| {
                    let mut cb = pin!(StopCallback::new(s.token(), || {
                        hits.fetch_add(1, Ordering::SeqCst);
                    }));
                    cb.as_mut().register();
                    std::hint::spin_loop();
                });
            }
            scope.spawn(|| s.request_stop());
        });
        assert!(hits.load(Ordering::SeqCst) <= 2);
        assert!(s.stop_requested());
    }
}
