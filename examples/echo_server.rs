//! The canonical echo server: one "coroutine" per connection that reads
//! some bytes and writes them back, until the peer closes.
//!
//! Every core serves: one `IoContext` per core (this thread runs one, the
//! others run on threads of their own), each with its own listener bound
//! to the same address with `SO_REUSEPORT`. The kernel spreads incoming
//! connections over the listeners, and a connection stays on the loop
//! that accepted it (no cross-thread hand-off, no locks on the hot path).
//!
//! ```text
//! cargo run --release --example echo_server --features io -- 127.0.0.1:7000
//! ```
//!
//! Each step is a sender that owns its buffer (`read(buf)` hands it back
//! with the count); `loop_with_state` passes the buffer from one round trip
//! to the next in one operation state (no allocation per round trip). The
//! same loop as an `async` block: `exec-io/tests/io_echo_loops.rs`.

use std::net::SocketAddr;
use std::ops::ControlFlow::{Break, Continue};

use exec::io::{
    DetachedReceiver, IoContext, TcpListener, TcpStream, loop_with_state, spawn_detached,
};
use exec::{SenderExt, SenderTo};

/// read → write back → again, until the peer closes (or an error).
fn echo(stream: TcpStream) -> impl SenderTo<DetachedReceiver, Operation: Send> + 'static {
    loop_with_state(vec![0u8; 4096], move |buf| {
        let s = stream.clone();
        stream
            .read(buf)
            .let_value(move |(n, mut buf)| {
                buf.truncate(n); // n == 0: the peer closed; writing nothing is instant
                s.write_all(buf)
            })
            .then(|mut buf| match buf.len() {
                0 => Break(()),
                _ => Continue({
                    buf.resize(4096, 0);
                    buf
                }),
            })
    })
}

/// accept → spawn a session on this listener's loop → again.
fn serve(listener: TcpListener) -> impl SenderTo<DetachedReceiver, Operation: Send> + 'static {
    loop_with_state((), move |()| {
        listener.accept().then(|(stream, _peer)| {
            let _ = stream.set_nodelay(true);
            spawn_detached(echo(stream));
            Continue::<(), ()>(())
        })
    })
}

fn main() -> std::io::Result<()> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7000".into())
        .parse()
        .expect("usage: echo_server [ADDR:PORT]");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let ctx = IoContext::new()?; // the loop of this thread
    let others = (1..cores)
        .map(|_| IoContext::builder().spawn())
        .collect::<std::io::Result<Vec<_>>>()?;
    let schedulers = std::iter::once(ctx.scheduler()).chain(others.iter().map(|t| t.scheduler()));
    // One SO_REUSEPORT listener per loop, each serving on its own loop.
    let addr = TcpListener::serve_on_each(schedulers, addr, serve)?;
    println!("echo server listening on {addr} ({cores} loops)");
    ctx.run()
}
