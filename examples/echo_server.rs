//! The canonical echo server: one "coroutine" per connection that reads
//! some bytes and writes them back, forever.
//!
//! ```text
//! cargo run --release --example echo_server --features io -- 127.0.0.1:7000
//! ```
//!
//! Each step is a sender that owns its buffer (`read(buf)` hands it back
//! with the count). Until exec-core's `repeat_effect_until`/`let_value`
//! land, the loop is written as a sender that spawns its next step.

use std::net::SocketAddr;

use exec::io::{DetachedReceiver, IoContext, TcpListener, TcpStream, spawn_detached};
use exec::{SenderExt, SenderTo};

/// read → write_all → (again), until the peer closes or an error occurs.
fn echo(
    stream: TcpStream,
    buf: Vec<u8>,
) -> impl SenderTo<DetachedReceiver, Operation: Send> + 'static {
    let s = stream.clone();
    stream.read(buf).then(move |(n, mut buf)| {
        if n == 0 {
            return; // peer closed: drop the stream
        }
        buf.truncate(n);
        let s2 = s.clone();
        spawn_detached(s.write_all(buf).then(move |mut buf| {
            buf.resize(4096, 0);
            spawn_detached(echo(s2, buf));
        }));
    })
}

/// accept → spawn a session → (again).
fn serve(listener: TcpListener) -> impl SenderTo<DetachedReceiver, Operation: Send> + 'static {
    listener.accept().then(move |(stream, _peer)| {
        let _ = stream.set_nodelay(true);
        spawn_detached(echo(stream, vec![0; 4096]));
        spawn_detached(serve(listener));
    })
}

fn main() -> std::io::Result<()> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7000".into())
        .parse()
        .expect("usage: echo_server [ADDR:PORT]");
    let ctx = IoContext::new()?;
    let listener = TcpListener::bind(&ctx.scheduler(), addr)?;
    println!("echo server listening on {}", listener.local_addr()?);
    spawn_detached(serve(listener));
    ctx.run()
}
