//! The per-connection echo loop, written both ways DESIGN.md asks for: as a
//! sender over owned state (`loop_with_state`, as in
//! `examples/echo_server.rs`) and as an `async` block awaiting senders
//! through exec-adapters. Both backends. (`loop_with_state` on its own is
//! tested in exec-core, `tests/factory_loop_with_state.rs`.)

mod support;

use std::io;
use std::ops::ControlFlow::{Break, Continue};

use exec_adapters::{AwaitError, SenderFutureExt, from_try_future};
use exec_core::{SenderExt, just, sync_wait, when_all};
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

#[test]
fn exec_io_reexports_exec_cores_loop_with_state() {
    let s = loop_with_state(0u32, |n| {
        just(n).then(|n| if n == 3 { Break(n) } else { Continue(n + 1) })
    });
    let _: &exec_core::LoopWithState<_, _> = &s;
    assert_eq!(sync_wait(s), Ok(Some(3)));
}
