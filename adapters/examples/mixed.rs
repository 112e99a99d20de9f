//! One pipeline, two drivers: a tokio application awaits it, and a plain
//! thread runs the very same pipeline with `sync_wait`, no async anywhere.
//!
//! The pipeline is a `when_all` of CPU work on an exec-pool worker and a
//! tokio TCP round-trip (a tokio I/O future run as a sender through
//! `TokioScheduler::from_future`, the runtime entered around its polls).
//! exec-io reads join it once exec-io is in `main`.
//!
//! `cargo run -p exec-adapters --features tokio --example mixed`
use std::net::SocketAddr;

use exec_adapters::{SenderFutureExt, TokioScheduler};
use exec_core::{Scheduler, SenderExt, sync_wait, when_all};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Sum of squares: the "CPU work".
fn crunch(n: u64) -> u64 {
    (1..=n).map(|i| i * i).sum()
}

fn on_pool_worker() -> bool {
    std::thread::current()
        .name()
        .is_some_and(|n| n.starts_with("exec-pool"))
}

/// A tokio echo round-trip of `msg` to `addr`; the length echoed back.
async fn echo(addr: SocketAddr, msg: &'static [u8]) -> std::io::Result<usize> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(msg).await?;
    let mut buf = vec![0; msg.len()];
    s.read_exact(&mut buf).await?;
    assert_eq!(buf, msg);
    Ok(buf.len())
}

/// An echo server on loopback that serves `clients` connections.
async fn serve(listener: tokio::net::TcpListener, clients: usize) -> std::io::Result<()> {
    for _ in 0..clients {
        let (mut s, _) = listener.accept().await?;
        tokio::spawn(async move {
            let mut buf = [0u8; 64];
            let n = s.read(&mut buf).await?;
            s.write_all(&buf[..n]).await
        });
    }
    Ok(())
}

fn main() -> std::io::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let tokio_sch = TokioScheduler::new(rt.handle().clone());
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    rt.spawn(serve(listener, 2));

    let pool = exec_pool::ThreadPool::builder().threads(2).build()?;

    // The pipeline, built fresh for each driver.
    let cpu = pool.scheduler();
    let pipeline = || {
        when_all(
            cpu.schedule().then(|()| (crunch(1_000), on_pool_worker())),
            tokio_sch
                .from_future(echo(addr, b"hello, exec"))
                .then(|r| r.expect("echo")),
        )
        .then(|((sum, thread), echoed)| {
            format!("sum of squares {sum} (on a pool worker: {thread}), echoed {echoed} bytes")
        })
    };

    // 1. Inside a tokio application: await it.
    let from_tokio = rt.block_on(async { pipeline().into_future().await });
    println!("tokio:     {}", from_tokio.as_deref().unwrap());

    // 2. From a plain thread, without async: sync_wait drives it.
    let from_sync = std::thread::scope(|s| s.spawn(|| sync_wait(pipeline())).join().unwrap());
    println!(
        "sync_wait: {}",
        from_sync.as_ref().unwrap().as_deref().unwrap()
    );

    assert_eq!(from_tokio.ok(), from_sync.unwrap());
    Ok(())
}
