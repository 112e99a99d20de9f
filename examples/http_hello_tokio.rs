//! The tokio counterpart of `http_hello.rs`, for `benches/http_wrk.sh`: the
//! same minimal HTTP/1.1 keep-alive server (same framing, same response),
//! on a multi-thread runtime with one worker per core (as many threads as
//! `http_hello.rs` runs loops), one task per connection.
//!
//! ```text
//! cargo run --release --example http_hello_tokio -- 127.0.0.1:8081
//! ```
//!
//! Uses only tokio (a dev-dependency of `exec`), so it needs no feature.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

const RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nHello, World!";

/// Counts the complete requests at the front of `pending` and removes them
/// (the same function as in `http_hello.rs`).
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

async fn session(mut stream: tokio::net::TcpStream) {
    let (mut buf, mut pending, mut out) = (vec![0u8; 4096], Vec::new(), Vec::new());
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        pending.extend_from_slice(&buf[..n]);
        out.clear();
        for _ in 0..take_requests(&mut pending) {
            out.extend_from_slice(RESPONSE);
        }
        if pending.len() > 64 << 10 {
            return;
        }
        if !out.is_empty() && stream.write_all(&out).await.is_err() {
            return;
        }
    }
}

fn main() -> std::io::Result<()> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8081".into())
        .parse()
        .expect("usage: http_hello_tokio [ADDR:PORT]");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .enable_all()
        .build()?;
    // The accept loop runs as a task on the workers too (not on this
    // thread, which only waits): `cores` threads serve, as many as
    // `http_hello.rs` runs loops.
    let server = rt.spawn(async move {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        println!(
            "http_hello_tokio listening on http://{}/ ({cores} workers)",
            listener.local_addr()?
        );
        loop {
            let (stream, _) = listener.accept().await?;
            let _ = stream.set_nodelay(true);
            tokio::spawn(session(stream));
        }
    });
    rt.block_on(server).map_err(std::io::Error::other)?
}
