//! A minimal HTTP/1.1 keep-alive server answering every request with
//! "Hello, World!" — enough for `wrk`.
//!
//! ```text
//! cargo run --release --example http_hello --features io -- 127.0.0.1:8080
//! wrk -t2 -c256 -d10s http://127.0.0.1:8080/
//! ```
//!
//! Requests are only framed (each ends with an empty line; bodies are not
//! supported), which is all a plaintext benchmark needs.

use std::net::SocketAddr;

use exec::io::{DetachedReceiver, IoContext, TcpListener, TcpStream, spawn_detached};
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

/// read → answer every complete request → (again), until close or error.
fn session(
    stream: TcpStream,
    buf: Vec<u8>,
    mut pending: Vec<u8>,
) -> impl SenderTo<DetachedReceiver, Operation: Send> + 'static {
    let s = stream.clone();
    stream.read(buf).then(move |(n, buf)| {
        if n == 0 {
            return;
        }
        pending.extend_from_slice(&buf[..n]);
        let requests = take_requests(&mut pending);
        if pending.len() > 64 << 10 {
            return; // not HTTP we understand: drop the connection
        }
        if requests == 0 {
            spawn_detached(session(s, buf, pending));
            return;
        }
        let mut out = Vec::with_capacity(RESPONSE.len() * requests);
        for _ in 0..requests {
            out.extend_from_slice(RESPONSE);
        }
        let s2 = s.clone();
        spawn_detached(
            s.write_all(out)
                .then(move |_| spawn_detached(session(s2, buf, pending))),
        );
    })
}

fn serve(listener: TcpListener) -> impl SenderTo<DetachedReceiver, Operation: Send> + 'static {
    listener.accept().then(move |(stream, _)| {
        let _ = stream.set_nodelay(true);
        spawn_detached(session(stream, vec![0; 4096], Vec::new()));
        spawn_detached(serve(listener));
    })
}

fn main() -> std::io::Result<()> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".into())
        .parse()
        .expect("usage: http_hello [ADDR:PORT]");
    let ctx = IoContext::new()?;
    let listener = TcpListener::bind(&ctx.scheduler(), addr)?;
    println!("http_hello listening on http://{}/", listener.local_addr()?);
    spawn_detached(serve(listener));
    ctx.run()
}
