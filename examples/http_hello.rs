//! A minimal HTTP/1.1 keep-alive server answering every request with
//! "Hello, World!" — enough for `wrk`.
//!
//! ```text
//! cargo run --release --example http_hello --features io -- 127.0.0.1:8080
//! wrk -t2 -c256 -d10s http://127.0.0.1:8080/
//! ```
//!
//! `benches/http_wrk.sh` runs it against the same server on tokio
//! (`examples/http_hello_tokio.rs`) under wrk and prints the ratio.
//!
//! Every core serves: one `IoContext` per core (this thread runs one, the
//! others run on threads of their own), each with its own listener bound
//! to the same address with `SO_REUSEPORT`; the kernel spreads
//! connections over them and each connection stays on its loop.
//!
//! Requests are only framed (each ends with an empty line; bodies are not
//! supported), which is all a plaintext benchmark needs.

use std::net::SocketAddr;

use std::ops::ControlFlow::{Break, Continue};

use exec::io::{
    DetachedReceiver, IoContext, TcpListener, TcpStream, loop_with_state, spawn_detached,
};
use exec::{SenderExt, SenderTo};

const RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nHello, World!";

/// Counts the complete requests at the front of `pending` and removes them.
fn take_requests(pending: &mut Vec<u8>) -> usize {
    let mut n = 0;
    let mut start = 0;
    while let Some(end) = pending[start..].windows(4).position(|w| w == b"\r\n\r\n") {
        start += end + 4;
        n += 1;
    }
    pending.drain(..start);
    n
}

/// read → answer every complete request → again, until close or error.
/// One operation state per connection; its buffers are reused.
fn session(stream: TcpStream) -> impl SenderTo<DetachedReceiver, Operation: Send> + 'static {
    // (read buffer, bytes not yet framed, responses to write)
    let state = (vec![0u8; 4096], Vec::new(), Vec::new());
    loop_with_state(
        state,
        move |(buf, mut pending, mut out): (Vec<u8>, Vec<u8>, Vec<u8>)| {
            let s = stream.clone();
            stream.read(buf).let_value(move |(n, buf)| {
                pending.extend_from_slice(&buf[..n]);
                out.clear();
                for _ in 0..take_requests(&mut pending) {
                    out.extend_from_slice(RESPONSE);
                }
                // Closed, or not HTTP we understand: write nothing, then stop.
                let done = n == 0 || pending.len() > 64 << 10;
                if done {
                    out.clear();
                }
                s.write_all(out).then(move |out| {
                    if done {
                        Break(())
                    } else {
                        Continue((buf, pending, out))
                    }
                })
            })
        },
    )
}

/// accept → spawn a session on this listener's loop → again.
fn serve(listener: TcpListener) -> impl SenderTo<DetachedReceiver, Operation: Send> + 'static {
    loop_with_state((), move |()| {
        listener.accept().then(|(stream, _)| {
            let _ = stream.set_nodelay(true);
            spawn_detached(session(stream));
            Continue::<(), ()>(())
        })
    })
}

fn main() -> std::io::Result<()> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".into())
        .parse()
        .expect("usage: http_hello [ADDR:PORT]");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let ctx = IoContext::new()?; // the loop of this thread
    let others = (1..cores)
        .map(|_| IoContext::builder().spawn())
        .collect::<std::io::Result<Vec<_>>>()?;
    let schedulers = std::iter::once(ctx.scheduler()).chain(others.iter().map(|t| t.scheduler()));
    // One SO_REUSEPORT listener per loop, each serving on its own loop.
    let addr = TcpListener::serve_on_each(schedulers, addr, serve)?;
    println!("http_hello listening on http://{addr}/ ({cores} loops)");
    ctx.run()
}
