//! One pipeline, two drivers: a plain thread runs it with `sync_wait`, no
//! async runtime anywhere, and a tokio application awaits the very same
//! pipeline.
//!
//! The pipeline is a `when_all` of CPU work on an exec-pool worker and an
//! exec-io read: accept a loopback TCP connection and read from it until
//! the peer closes, on the exec-io loop (which runs on a thread of its own).
//! The peer is a plain `std::net` thread for the `sync_wait` run, and a
//! tokio task (tokio's own I/O) inside the tokio application.
//!
//! `cargo run -p exec-adapters --features tokio --example mixed`
use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::Arc;

use exec_adapters::SenderFutureExt;
use exec_core::{AnySender, Scheduler, SenderExt, just, sync_wait, when_all};
use exec_io::{IoContext, IoScheduler, TcpListener, TcpStream};
use tokio::io::AsyncWriteExt;

const MESSAGE: &[u8] = b"hello from the peer, read by exec-io";

/// Sum of squares: the "CPU work".
fn crunch(n: u64) -> u64 {
    (1..=n).map(|i| i * i).sum()
}

fn on_pool_worker() -> bool {
    std::thread::current()
        .name()
        .is_some_and(|n| n.starts_with("exec-pool"))
}

/// Reads from `stream` until the peer closes it; sends everything read.
/// Each read is an exec-io sender completing on the loop; the next one is
/// started from its completion (type-erased, since the chain is recursive).
fn read_to_end(stream: Arc<TcpStream>, mut got: Vec<u8>) -> AnySender<Vec<u8>, io::Error> {
    stream
        .read(vec![0; 16])
        .let_value(move |(n, buf)| {
            if n == 0 {
                return just(got).with_error::<io::Error>().boxed();
            }
            got.extend_from_slice(&buf[..n]);
            read_to_end(stream, got)
        })
        .boxed()
}

fn main() -> io::Result<()> {
    let pool = exec_pool::ThreadPool::builder().threads(2).build()?;
    let io_ctx = IoContext::new()?;
    let io: IoScheduler = io_ctx.scheduler();
    let listener = Arc::new(TcpListener::bind(&io, "127.0.0.1:0".parse().unwrap())?);
    let addr: SocketAddr = listener.local_addr()?;

    // The pipeline, built fresh for each driver.
    let pipeline = || {
        let (cpu, io, listener) = (pool.scheduler(), io.clone(), listener.clone());
        when_all(
            cpu.schedule()
                .then(|()| (crunch(1_000), on_pool_worker()))
                .with_error::<io::Error>(),
            listener
                .accept()
                .let_value(|(stream, _peer)| read_to_end(Arc::new(stream), Vec::new()))
                .then(move |bytes| (bytes, io.is_loop_thread())),
        )
        .then(|((sum, on_pool), (bytes, on_loop))| {
            format!(
                "sum of squares {sum} (on a pool worker: {on_pool}); read {} bytes {:?} \
                 (on the I/O loop: {on_loop})",
                bytes.len(),
                String::from_utf8_lossy(&bytes)
            )
        })
    };

    std::thread::scope(|s| -> io::Result<()> {
        s.spawn(|| io_ctx.run().expect("exec-io loop"));

        // 1. No async runtime: sync_wait drives the pipeline from this
        //    thread; the peer is a plain thread with a std socket.
        let peer = s.spawn(move || -> io::Result<()> {
            let mut conn = std::net::TcpStream::connect(addr)?;
            conn.write_all(MESSAGE)
        });
        let from_sync = sync_wait(pipeline())?.expect("not stopped");
        peer.join().unwrap()?;
        println!("sync_wait: {from_sync}");

        // 2. Inside a tokio application: a task awaits the same pipeline;
        //    the peer is a tokio task with a tokio socket.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let from_tokio = rt.block_on(async {
            let peer = tokio::spawn(async move {
                let mut conn = tokio::net::TcpStream::connect(addr).await?;
                conn.write_all(MESSAGE).await?;
                conn.shutdown().await
            });
            let awaited = tokio::spawn(pipeline().into_future()).await.unwrap();
            peer.await.unwrap()?;
            awaited.map_err(|e| {
                e.into_error()
                    .unwrap_or_else(|| io::Error::other("stopped"))
            })
        })?;
        println!("tokio:     {from_tokio}");

        assert_eq!(from_sync, from_tokio);
        assert!(from_sync.contains("on a pool worker: true"));
        assert!(from_sync.contains("on the I/O loop: true"));
        io_ctx.stop();
        Ok(())
    })
}
