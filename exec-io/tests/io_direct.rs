//! io_uring direct descriptors (`IoContextBuilder::direct_descriptors`):
//! accept into the ring's file table, echo, shutdown and EOF, stop, the
//! close on drop (slots reused), the fallback to ordinary descriptors when
//! the table is full, the process's descriptor count, and dropping the
//! loop with operations in flight. Skipped (with a message) where io_uring
//! cannot start; run on every `EXEC_IO_BACKEND` (the contexts here ask for
//! io_uring explicitly), besides the readiness checks of the option.

// exec-core's shared fixtures (linted there, not here).
#[allow(clippy::collapsible_if, clippy::type_complexity)]
#[path = "../../exec-core/tests/common/mod.rs"]
mod common;
mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::time::Duration;

use common::{recorder_with_stop, start, start_with};
use exec_core::{Scheduler, SenderExt, StopSource, TimedScheduler, sync_wait};
use exec_io::{Backend, IoContext, IoScheduler, IoThread, TcpListener, TcpStream};
use support::{open_fds, wait_for};

/// The tests of this file run one at a time: one of them counts the
/// process's descriptors, which the others open and close.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn local() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// The builder of an io_uring loop with a table of `n` direct descriptors.
fn direct_builder(n: u32) -> exec_io::IoContextBuilder {
    IoContext::builder()
        .backend(Backend::IoUring)
        .direct_descriptors(n)
}

/// `Some` of what was built, or `None` (with a message) where io_uring
/// cannot start.
fn or_skip<T>(built: std::io::Result<T>) -> Option<T> {
    built
        .inspect_err(|e| {
            eprintln!("skipped: io_uring with direct descriptors cannot start here: {e}")
        })
        .ok()
}

/// An io_uring loop with a table of `n` direct descriptors (or a skip).
fn direct_ctx(n: u32) -> Option<IoContext> {
    or_skip(direct_builder(n).build())
}

/// As [`direct_ctx`], running on its own thread.
fn direct_thread(n: u32) -> Option<IoThread> {
    or_skip(direct_builder(n).spawn())
}

/// A blocking client connected to `addr`, its reads bounded in time.
fn client(addr: SocketAddr) -> std::net::TcpStream {
    let client = std::net::TcpStream::connect(addr).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    client
}

/// Slots of the loop's table taken, asked on the loop.
fn in_use(sch: &IoScheduler) -> usize {
    let s = sch.clone();
    sync_wait(sch.schedule().then(move |()| s.direct_descriptors_in_use()))
        .unwrap()
        .unwrap()
}

/// Connects a blocking client and accepts it (through the loop thread).
fn accept_one(listener: &TcpListener) -> (std::net::TcpStream, TcpStream, SocketAddr) {
    let client = client(listener.local_addr().unwrap());
    let (server, peer) = sync_wait(listener.accept()).unwrap().unwrap();
    (client, server, peer)
}

#[test]
fn readiness_backend_refuses_direct_descriptors() {
    let _serial = serial();
    let err = IoContext::builder()
        .backend(Backend::Readiness)
        .direct_descriptors(16)
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("io_uring"), "{err}");
    // Without the option the readiness backend builds, with no table.
    let ctx = IoContext::builder()
        .backend(Backend::Readiness)
        .build()
        .unwrap();
    assert_eq!(ctx.direct_descriptors(), 0);
}

#[test]
fn auto_backend_uses_the_table_only_on_io_uring() {
    let _serial = serial();
    let ctx = IoContext::builder().direct_descriptors(16).build().unwrap();
    match ctx.backend() {
        Backend::IoUring => assert_eq!(ctx.direct_descriptors(), 16),
        _ => assert_eq!(ctx.direct_descriptors(), 0),
    }
    // Streams work either way.
    let sch = ctx.scheduler();
    let listener = TcpListener::bind(&sch, local()).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut client = std::net::TcpStream::connect(addr).unwrap();
    let (server, _) = ctx.run_until(listener.accept()).unwrap().unwrap();
    assert_eq!(
        server.is_direct(),
        ctx.backend() == Backend::IoUring,
        "accepts go into the table exactly when there is one"
    );
    client.write_all(b"x").unwrap();
    let (n, buf) = ctx.run_until(server.read(vec![0; 4])).unwrap().unwrap();
    assert_eq!(&buf[..n], b"x");
}

#[test]
fn table_size_is_capped_at_the_descriptor_limit() {
    let _serial = serial();
    let Some(ctx) = direct_ctx(u32::MAX) else {
        return;
    };
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscall writing into a live local.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    let want = lim.rlim_cur.min(1 << 20) as usize;
    assert_eq!(ctx.direct_descriptors(), want);
}

#[test]
fn accept_into_direct_slot_then_echo_with_addresses() {
    let _serial = serial();
    let Some(io) = direct_thread(8) else {
        return;
    };
    let sch = io.scheduler();
    let listener = TcpListener::bind(&sch, local()).unwrap();
    listener.set_nodelay(true).unwrap();
    let (mut client, server, peer) = accept_one(&listener);
    assert!(server.is_direct());
    assert_eq!(in_use(&sch), 1);
    // Addresses: the accept's peer, the listener's own address.
    assert_eq!(peer, client.local_addr().unwrap());
    assert_eq!(server.peer_addr().unwrap(), client.local_addr().unwrap());
    assert_eq!(server.local_addr().unwrap(), listener.local_addr().unwrap());
    // Options: setting is queued on the loop; reading needs a descriptor.
    server.set_nodelay(true).unwrap();
    let e = server.nodelay().unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::Unsupported);
    assert!(e.to_string().contains("direct"), "{e}");
    assert!(format!("{server:?}").contains("direct_slot: Some("));

    // Echo: several round trips through the slot, from this thread (the
    // operations are handed to the loop).
    for round in 0..20u8 {
        client.write_all(&[round; 32]).unwrap();
        let mut got = 0;
        let mut buf = vec![0; 64];
        while got < 32 {
            let (n, b) = sync_wait(server.read(buf)).unwrap().unwrap();
            assert!(n > 0);
            assert!(b[..n].iter().all(|&x| x == round));
            got += n;
            buf = b;
        }
        let (n, _) = sync_wait(server.write(vec![round; 10])).unwrap().unwrap();
        assert_eq!(n, 10);
        let back = sync_wait(server.write_all(vec![round; 22]))
            .unwrap()
            .unwrap();
        assert_eq!(back.len(), 22);
        let mut inb = [0u8; 32];
        client.read_exact(&mut inb).unwrap();
        assert!(inb.iter().all(|&x| x == round));
    }
    drop(server);
    // The close of the last handle reaches the peer as end of stream.
    let mut rest = [0u8; 4];
    assert_eq!(client.read(&mut rest).unwrap(), 0);
    wait_for(5, || in_use(&sch) == 0);
}

#[test]
fn accepted_streams_inherit_nodelay_from_the_listener() {
    let _serial = serial();
    // Ordinary streams on either backend: what a direct stream relies on.
    let ctx = IoContext::new().unwrap();
    let sch = ctx.scheduler();
    let listener = TcpListener::bind(&sch, local()).unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nodelay(true).unwrap();
    let _c1 = std::net::TcpStream::connect(addr).unwrap();
    let (s1, _) = ctx.run_until(listener.accept()).unwrap().unwrap();
    assert!(s1.nodelay().unwrap());
    listener.set_nodelay(false).unwrap();
    let _c2 = std::net::TcpStream::connect(addr).unwrap();
    let (s2, _) = ctx.run_until(listener.accept()).unwrap().unwrap();
    assert!(!s2.nodelay().unwrap());
}

#[test]
fn shutdown_sends_eof_and_read_sees_the_peers_eof() {
    let _serial = serial();
    let Some(io) = direct_thread(8) else {
        return;
    };
    let sch = io.scheduler();
    let listener = TcpListener::bind(&sch, local()).unwrap();
    let (mut client, server, _) = accept_one(&listener);
    assert!(server.is_direct());
    sync_wait(server.write_all(b"bye".to_vec()))
        .unwrap()
        .unwrap();
    // From this thread: queued on the loop, after the write.
    server.shutdown(Shutdown::Write).unwrap();
    let mut got = Vec::new();
    client.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"bye");
    // The other half still works.
    client.write_all(b"late").unwrap();
    let (n, buf) = sync_wait(server.read(vec![0; 8])).unwrap().unwrap();
    assert_eq!(&buf[..n], b"late");
    client.shutdown(Shutdown::Write).unwrap();
    let (n, _) = sync_wait(server.read(vec![0; 8])).unwrap().unwrap();
    assert_eq!(n, 0, "end of stream");
}

#[test]
fn stop_during_a_read_on_a_direct_stream() {
    let _serial = serial();
    let Some(io) = direct_thread(8) else {
        return;
    };
    let sch = io.scheduler();
    let listener = TcpListener::bind(&sch, local()).unwrap();
    let (mut client, server, _) = accept_one(&listener);
    assert!(server.is_direct());
    let source = std::sync::Arc::new(StopSource::new());
    let (r, rec) = recorder_with_stop(source.clone());
    let started = start_with(server.read(vec![0; 8]), r, &rec);
    std::thread::sleep(Duration::from_millis(20));
    assert!(!rec.is_complete());
    source.request_stop();
    wait_for(5, || rec.is_complete());
    rec.expect_stopped();
    assert_eq!(rec.completions(), 1);
    started.finish();
    // The slot is still the stream's: the next read gets the data.
    client.write_all(b"after").unwrap();
    let (n, buf) = sync_wait(server.read(vec![0; 8])).unwrap().unwrap();
    assert_eq!(&buf[..n], b"after");
    assert_eq!(in_use(&sch), 1);
}

#[test]
fn stopping_a_direct_accept_gives_its_slot_back() {
    let _serial = serial();
    let Some(io) = direct_thread(2) else {
        return;
    };
    let sch = io.scheduler();
    let listener = TcpListener::bind(&sch, local()).unwrap();
    for _ in 0..3 {
        let source = std::sync::Arc::new(StopSource::new());
        let (r, rec) = recorder_with_stop(source.clone());
        let started = start_with(listener.accept(), r, &rec);
        // In flight, holding a slot.
        wait_for(5, || in_use(&sch) == 1);
        source.request_stop();
        wait_for(5, || rec.is_complete());
        rec.expect_stopped();
        started.finish();
        assert_eq!(in_use(&sch), 0);
    }
}

#[test]
fn full_table_falls_back_to_ordinary_descriptors_and_frees_again() {
    let _serial = serial();
    const SLOTS: usize = 4;
    let Some(io) = direct_thread(SLOTS as u32) else {
        return;
    };
    let sch = io.scheduler();
    let listener = TcpListener::bind(&sch, local()).unwrap();
    for cycle in 0..3 {
        let mut direct = Vec::new();
        for _ in 0..SLOTS {
            let (client, server, _) = accept_one(&listener);
            assert!(server.is_direct(), "cycle {cycle}: a slot was free");
            direct.push((client, server));
        }
        assert_eq!(in_use(&sch), SLOTS);
        // The table is full: the next connections get ordinary descriptors
        // and work the same.
        let mut ordinary = Vec::new();
        for _ in 0..2 {
            let (mut client, server, _) = accept_one(&listener);
            assert!(!server.is_direct(), "cycle {cycle}: the table is full");
            assert!(server.nodelay().is_ok(), "an ordinary descriptor");
            client.write_all(b"fb").unwrap();
            let (n, buf) = sync_wait(server.read(vec![0; 4])).unwrap().unwrap();
            assert_eq!(&buf[..n], b"fb");
            ordinary.push((client, server));
        }
        assert_eq!(in_use(&sch), SLOTS);
        // Every direct stream still works.
        for (client, server) in &mut direct {
            sync_wait(server.write_all(b"ok".to_vec()))
                .unwrap()
                .unwrap();
            let mut b = [0u8; 2];
            client.read_exact(&mut b).unwrap();
            assert_eq!(&b, b"ok");
        }
        // Dropping them closes the slots (the peers see end of stream)...
        for (mut client, server) in direct {
            drop(server);
            let mut b = [0u8; 1];
            assert_eq!(client.read(&mut b).unwrap(), 0);
        }
        // ...and frees them for the next cycle's accepts.
        wait_for(5, || in_use(&sch) == 0);
        drop(ordinary);
    }
}

#[test]
fn dropping_a_direct_stream_on_the_loop_closes_its_slot() {
    let _serial = serial();
    // A single-threaded loop: accept, echo and drop all happen on it.
    let Some(ctx) = direct_ctx(4) else {
        return;
    };
    let sch = ctx.scheduler();
    let listener = TcpListener::bind(&sch, local()).unwrap();
    let addr = listener.local_addr().unwrap();
    for _ in 0..10 {
        let mut client = client(addr);
        client.write_all(b"on loop").unwrap();
        let s = sch.clone();
        let echoed = ctx
            .run_until(listener.accept().let_value(move |(stream, _)| {
                assert!(stream.is_direct());
                assert_eq!(s.direct_descriptors_in_use(), 1);
                let w = stream.clone();
                stream
                    .read(vec![0; 16])
                    .let_value(move |(n, mut buf)| {
                        buf.truncate(n);
                        w.write_all(buf)
                    })
                    // `stream` and `w` are dropped here, on the loop.
                    .then(|buf| buf.len())
            }))
            .unwrap()
            .unwrap();
        assert_eq!(echoed, 7);
        let mut got = Vec::new();
        client.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"on loop");
        // The close completes on a later turn.
        let s = sch.clone();
        let left = ctx
            .run_until(
                sch.schedule_after(Duration::from_millis(5))
                    .then(move |()| s.direct_descriptors_in_use()),
            )
            .unwrap()
            .unwrap();
        assert_eq!(left, 0);
    }
}

#[test]
fn direct_streams_take_no_process_descriptors() {
    let _serial = serial();
    const N: usize = 64;
    let Some(io) = direct_thread(N as u32) else {
        return;
    };
    let sch = io.scheduler();
    let listener = TcpListener::bind(&sch, local()).unwrap();
    let addr = listener.local_addr().unwrap();
    let clients: Vec<_> = (0..N)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect();
    let before = open_fds();
    let mut servers = Vec::new();
    for _ in 0..N {
        let (s, _) = sync_wait(listener.accept()).unwrap().unwrap();
        assert!(s.is_direct());
        servers.push(s);
    }
    assert_eq!(open_fds(), before, "direct streams hold no descriptor");
    assert_eq!(in_use(&sch), N);
    drop(servers);
    wait_for(5, || in_use(&sch) == 0);
    assert_eq!(open_fds(), before);
    drop(clients);
}

#[test]
fn dropping_the_loop_completes_direct_operations_once() {
    let _serial = serial();
    let Some(ctx) = direct_ctx(8) else {
        return;
    };
    let sch = ctx.scheduler();
    let listener = TcpListener::bind(&sch, local()).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut client = client(addr);
    let (server, _) = ctx.run_until(listener.accept()).unwrap().unwrap();
    assert!(server.is_direct());
    // A read on the direct stream and a direct accept, both in flight in
    // the ring when the loop goes.
    let (read_op, read_rec) = start(server.read(vec![0; 8]));
    let (acc_op, acc_rec) = start(listener.accept());
    ctx.run_until(sch.schedule_after(Duration::from_millis(20)))
        .unwrap();
    assert!(!read_rec.is_complete() && !acc_rec.is_complete());
    drop(ctx);
    read_rec.expect_stopped();
    acc_rec.expect_stopped();
    assert_eq!((read_rec.completions(), acc_rec.completions()), (1, 1));
    read_op.finish();
    acc_op.finish();
    // Later operations on the stream complete stopped at once; dropping it
    // after its loop is harmless (the table went with the ring).
    let (op, rec) = start(server.write(vec![1; 4]));
    rec.expect_stopped();
    op.finish();
    assert!(server.shutdown(Shutdown::Both).is_ok());
    drop(server);
    drop(listener);
    drop(sch);
    // All handles gone: the ring, its table and the socket are closed.
    let mut b = [0u8; 1];
    assert_eq!(client.read(&mut b).unwrap_or(0), 0);
}

#[test]
fn linger_zero_on_a_direct_stream_resets_the_connection() {
    let _serial = serial();
    let Some(io) = direct_thread(4) else {
        return;
    };
    let sch = io.scheduler();
    let listener = TcpListener::bind(&sch, local()).unwrap();
    if !kernel_at_least(6, 7) {
        eprintln!("skipped: socket options through io_uring need Linux 6.7");
        return;
    }
    let (mut client, server, _) = accept_one(&listener);
    assert!(server.is_direct());
    // A socket option set through io_uring (`URING_CMD`, Linux 6.7+),
    // queued on the loop; the close on drop then resets the connection.
    server.set_linger_zero().unwrap();
    // Make sure the option went in before the close (a round trip on the
    // loop: slot operations are submitted at once, in order).
    assert_eq!(in_use(&sch), 1);
    drop(server);
    let mut b = [0u8; 4];
    match client.read(&mut b) {
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset),
        Ok(n) => panic!("expected a reset, read {n} bytes (an orderly close?)"),
    }
    wait_for(5, || in_use(&sch) == 0);
}

/// Whether the running kernel's version is at least `major.minor`.
fn kernel_at_least(major: u32, minor: u32) -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut parts = release
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (a, b) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (a, b) >= (major, minor)
}
