//! The per-connection echo loop, written both ways DESIGN.md asks for: as a
//! sender over owned state (`loop_with_state`, as in
//! `examples/echo_server.rs`) and as an `async` block awaiting senders
//! through exec-adapters. Both backends. Also `loop_with_state` on its own:
//! every channel, panics, drops, cancellation, deep inline iteration.

mod support;

use std::cell::Cell;
use std::io;
use std::ops::ControlFlow::{self, Break, Continue};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use exec_adapters::{AwaitError, SenderFutureExt, from_try_future};
use exec_core::{SenderExt, StopSource, just, just_error, just_stopped, sync_wait, when_all};
use exec_io::{Backend, IoContext, TcpListener, TcpStream, loop_with_state};

fn contexts() -> Vec<IoContext> {
    [Backend::Readiness, Backend::IoUring]
        .into_iter()
        .filter_map(|b| IoContext::builder().backend(b).build().ok())
        .collect()
}

fn pair(ctx: &IoContext) -> (TcpStream, TcpStream) {
    let sch = ctx.scheduler();
    let listener = TcpListener::bind(&sch, "127.0.0.1:0".parse().unwrap()).unwrap();
    let client = ctx
        .run_until(TcpStream::connect(&sch, listener.local_addr().unwrap()))
        .unwrap()
        .unwrap();
    let (server, _) = ctx.run_until(listener.accept()).unwrap().unwrap();
    (client, server)
}

#[test]
fn echo_loop_as_a_sender() {
    for ctx in contexts() {
        let (client, server) = pair(&ctx);
        let both = when_all(
            echo_session!(server, vec![0; 4096]),
            echo_client!(client, 300, vec![5u8; 64], vec![0; 64]),
        );
        let (buf, (msg, inb)) = ctx.run_until(both).unwrap().unwrap();
        assert_eq!(
            (buf.len(), msg.len(), inb.len()),
            (4096, 64, 64),
            "{:?}",
            ctx.backend()
        );
    }
}

#[test]
fn echo_loop_as_an_async_block() {
    for ctx in contexts() {
        let (client, server) = pair(&ctx);
        // The same loop as `echo_session!`, awaiting each sender.
        let session = async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let (n, mut got) = server.read(buf).into_future().await?;
                if n == 0 {
                    return Ok::<_, AwaitError<io::Error>>(got);
                }
                got.truncate(n);
                buf = server.write_all(got).into_future().await?;
                buf.resize(4096, 0);
            }
        };
        let both = when_all(
            from_try_future(session),
            echo_client!(client, 100, vec![9u8; 64], vec![0; 64]).map_error(AwaitError::Error),
        );
        let (buf, _) = ctx.run_until(both).unwrap().unwrap();
        assert_eq!(
            buf.len(),
            4096,
            "{:?}: the buffer of the last read (EOF)",
            ctx.backend()
        );
    }
}

#[test]
fn peer_reset_ends_the_loop_with_an_error() {
    for ctx in contexts() {
        let (client, server) = pair(&ctx);
        client.set_linger_zero().unwrap();
        drop(client);
        let res = ctx.run_until(echo_session!(server, vec![0; 64]));
        // Either the reset is reported, or the read saw EOF first.
        match res {
            Err(e) => assert_eq!(e.kind(), io::ErrorKind::ConnectionReset),
            Ok(Some(buf)) => assert_eq!(buf.len(), 64),
            Ok(None) => panic!("stopped"),
        }
    }
}

#[test]
fn stop_ends_an_idle_echo_loop_stopped() {
    for ctx in contexts() {
        let (_client, server) = pair(&ctx);
        let sch = ctx.scheduler();
        use exec_core::TimedScheduler;
        let res = ctx.run_until(exec_core::stop_when(
            echo_session!(server, vec![0; 64]),
            sch.schedule_after(std::time::Duration::from_millis(5)),
        ));
        assert!(matches!(res, Ok(None)), "{:?}", ctx.backend());
    }
}

// --- loop_with_state on its own -------------------------------------------

fn step(n: u32) -> ControlFlow<u32, u32> {
    if n >= 10 {
        Break(n * 100)
    } else {
        Continue(n + 1)
    }
}

#[test]
fn value_after_the_last_iteration() {
    let calls = Cell::new(0);
    let s = loop_with_state(0u32, |n| {
        calls.set(calls.get() + 1);
        just(n).then(step)
    });
    assert_eq!(sync_wait(s), Ok(Some(1000)));
    assert_eq!(calls.get(), 11);
}

#[test]
fn error_ends_the_loop_and_f_is_not_called_again() {
    let calls = AtomicUsize::new(0);
    let s = loop_with_state(0u32, |n| {
        calls.fetch_add(1, Ordering::SeqCst);
        if n == 3 {
            just_error::<ControlFlow<(), u32>, &str>("boom").boxed()
        } else {
            just(Continue(n + 1)).map_error(|e| match e {}).boxed()
        }
    });
    assert_eq!(sync_wait(s), Err("boom"));
    assert_eq!(calls.load(Ordering::SeqCst), 4);
}

#[test]
fn stopped_iteration_ends_the_loop_stopped() {
    let calls = AtomicUsize::new(0);
    let s = loop_with_state(0u32, |n| {
        calls.fetch_add(1, Ordering::SeqCst);
        if n == 2 {
            just_stopped().boxed::<ControlFlow<(), u32>, core::convert::Infallible>()
        } else {
            just(Continue(n + 1)).boxed()
        }
    });
    assert_eq!(sync_wait(s), Ok(None));
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[test]
fn stop_request_is_checked_between_iterations() {
    let source = StopSource::new();
    let calls = Cell::new(0);
    let s = loop_with_state(0u32, |n| {
        calls.set(calls.get() + 1);
        if n == 5 {
            source.request_stop();
        }
        just(Continue::<(), u32>(n + 1))
    });
    let s = s.write_env(exec_core::WithStopToken::source(&source));
    assert_eq!(sync_wait(s), Ok(None));
    assert_eq!(calls.get(), 6);
}

#[test]
fn panic_in_f_is_delivered() {
    let s = loop_with_state(0u32, |n| {
        assert!(n < 2, "f panicked");
        just(Continue::<(), u32>(n + 1))
    });
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sync_wait(s)));
    let p = r.unwrap_err();
    assert_eq!(p.downcast_ref::<&str>(), Some(&"f panicked"));
}

#[test]
fn panic_of_an_iteration_is_delivered() {
    let s = loop_with_state(0u32, |n| {
        just(n).then(|n| -> ControlFlow<(), u32> {
            assert!(n < 2, "iteration panicked");
            Continue(n + 1)
        })
    });
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sync_wait(s)));
    assert_eq!(
        r.unwrap_err().downcast_ref::<&str>(),
        Some(&"iteration panicked")
    );
}

/// Counts live instances.
struct Tracked(Arc<AtomicUsize>);
impl Tracked {
    fn new(live: &Arc<AtomicUsize>) -> Self {
        live.fetch_add(1, Ordering::SeqCst);
        Tracked(live.clone())
    }
}
impl Drop for Tracked {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[test]
fn state_and_f_are_dropped_when_the_loop_ends() {
    let live = Arc::new(AtomicUsize::new(0));
    let in_f = Tracked::new(&live);
    let l = live.clone();
    let s = loop_with_state((0u32, Tracked::new(&live)), move |(n, t)| {
        let _keep = &in_f;
        // At most: the state in hand, `f`'s capture.
        assert!(l.load(Ordering::SeqCst) <= 2);
        just(()).then(move |()| {
            if n == 3 {
                drop(t);
                Break(n)
            } else {
                Continue((n + 1, t))
            }
        })
    })
    .then(|n| n);
    let live2 = live.clone();
    let s = s.then(move |n| {
        assert_eq!(
            live2.load(Ordering::SeqCst),
            0,
            "f and state dropped before completing"
        );
        n
    });
    assert_eq!(sync_wait(s), Ok(Some(3)));
    assert_eq!(live.load(Ordering::SeqCst), 0);
}

#[test]
fn state_is_dropped_on_error() {
    let live = Arc::new(AtomicUsize::new(0));
    let s = loop_with_state(Tracked::new(&live), |t| {
        just_error::<ControlFlow<(), Tracked>, _>(7).then(move |c| {
            drop(t);
            c
        })
    });
    assert_eq!(sync_wait(s), Err(7));
    assert_eq!(live.load(Ordering::SeqCst), 0);
}

#[test]
fn a_million_inline_iterations_do_not_grow_the_stack() {
    let n = if cfg!(miri) { 1_000 } else { 1_000_000 };
    let s = loop_with_state(0usize, move |i| {
        just(i).then(move |i| if i == n { Break(i) } else { Continue(i + 1) })
    });
    assert_eq!(sync_wait(s), Ok(Some(n)));
}
