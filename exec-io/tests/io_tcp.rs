//! TCP on the loop: every operation, half-close, stop during accept and
//! read, many connections at once.

// exec-core's shared fixtures (linted there, not here).
#[allow(clippy::collapsible_if, clippy::type_complexity)]
#[path = "../../exec-core/tests/common/mod.rs"]
mod common;
mod support;

use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::{recorder_with_stop, start_with};
use exec_core::{Scheduler, SenderExt, StopSource, sync_wait};
use exec_io::{IoContext, TcpListener, TcpStream};
use support::{BgLoop, wait_for};

fn local() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn pair(bg: &BgLoop) -> (TcpListener, TcpStream, TcpStream) {
    let listener = TcpListener::bind(&bg.sch, local()).unwrap();
    let addr = listener.local_addr().unwrap();
    let (accepting, accepted) = common::start(listener.accept());
    let client = sync_wait(TcpStream::connect(&bg.sch, addr))
        .unwrap()
        .unwrap();
    wait_for(5, || accepted.is_complete());
    let (server, peer) = accepted.expect_value();
    accepting.finish();
    assert_eq!(peer, client.local_addr().unwrap());
    (listener, client, server)
}

#[test]
fn connect_accept_read_write_addrs_nodelay() {
    let bg = BgLoop::new();
    let (listener, client, server) = pair(&bg);
    assert_eq!(client.peer_addr().unwrap(), listener.local_addr().unwrap());
    assert_eq!(server.local_addr().unwrap(), listener.local_addr().unwrap());
    assert_eq!(server.peer_addr().unwrap(), client.local_addr().unwrap());
    client.set_nodelay(true).unwrap();
    assert!(client.nodelay().unwrap());
    client.set_nodelay(false).unwrap();
    assert!(!client.nodelay().unwrap());

    let (n, buf) = sync_wait(client.write(b"hello".to_vec())).unwrap().unwrap();
    assert_eq!((n, &buf[..]), (5, &b"hello"[..]));
    let buf = sync_wait(client.write_all(b" world".to_vec()))
        .unwrap()
        .unwrap();
    assert_eq!(buf, b" world");
    let mut got = Vec::new();
    while got.len() < 11 {
        let (n, buf) = sync_wait(server.read(vec![0; 4])).unwrap().unwrap();
        assert!(n > 0 && n <= 4);
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, b"hello world");
}

#[test]
fn half_close_reads_eof_while_writing_still_works() {
    let bg = BgLoop::new();
    let (_l, client, server) = pair(&bg);
    client.shutdown(Shutdown::Write).unwrap();
    let (n, _) = sync_wait(server.read(vec![0; 16])).unwrap().unwrap();
    assert_eq!(n, 0, "EOF after the peer's half-close");
    sync_wait(server.write_all(b"still here".to_vec()))
        .unwrap()
        .unwrap();
    let (n, buf) = sync_wait(client.read(vec![0; 16])).unwrap().unwrap();
    assert_eq!(&buf[..n], b"still here");
}

#[test]
fn large_write_all_waits_for_writability() {
    let bg = BgLoop::new();
    let (_l, client, server) = pair(&bg);
    let len = 8 << 20;
    let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    let expected = data.clone();
    let writer = thread::spawn(move || sync_wait(client.write_all(data)).unwrap().unwrap().len());
    let mut got = Vec::with_capacity(len);
    let mut buf = vec![0; 64 << 10];
    while got.len() < len {
        let (n, b) = sync_wait(server.read(buf)).unwrap().unwrap();
        assert!(n > 0);
        got.extend_from_slice(&b[..n]);
        buf = b;
    }
    assert_eq!(writer.join().unwrap(), len);
    assert!(got == expected);
}

#[test]
fn stop_during_accept_then_listener_still_serves() {
    let bg = BgLoop::new();
    let listener = TcpListener::bind(&bg.sch, local()).unwrap();
    let source = Arc::new(StopSource::new());
    let (r, rec) = recorder_with_stop(source.clone());
    let started = start_with(listener.accept(), r, &rec);
    thread::sleep(Duration::from_millis(20));
    assert!(!rec.is_complete());
    source.request_stop();
    wait_for(5, || rec.is_complete());
    rec.expect_stopped();
    started.finish();
    // A new accept on the same listener works.
    let addr = listener.local_addr().unwrap();
    let c = thread::spawn(move || std::net::TcpStream::connect(addr).unwrap());
    let (_s, _) = sync_wait(listener.accept()).unwrap().unwrap();
    c.join().unwrap();
}

/// Starts `read` with a stop source, checks it still waits after 20 ms,
/// then requests stop: it completes stopped, exactly once.
fn stop_a_pending_read<S>(read: S)
where
    S: exec_core::SenderTo<common::RecordingReceiver<(usize, Vec<u8>), std::io::Error>>,
{
    let source = Arc::new(StopSource::new());
    let (r, rec) = recorder_with_stop(source.clone());
    let started = start_with(read, r, &rec);
    thread::sleep(Duration::from_millis(20));
    assert!(!rec.is_complete());
    source.request_stop();
    wait_for(5, || rec.is_complete());
    rec.expect_stopped();
    assert_eq!(rec.completions(), 1);
    started.finish();
}

#[test]
fn stop_during_read_then_stream_still_works() {
    let bg = BgLoop::new();
    let (_l, client, server) = pair(&bg);
    stop_a_pending_read(server.read(vec![0; 8]));
    sync_wait(client.write_all(b"after".to_vec()))
        .unwrap()
        .unwrap();
    let (n, buf) = sync_wait(server.read(vec![0; 8])).unwrap().unwrap();
    assert_eq!(&buf[..n], b"after");
}

#[test]
fn second_concurrent_read_is_refused_with_resource_busy() {
    let bg = BgLoop::new();
    let (_l, client, server) = pair(&bg);
    let (s1, r1) = common::start(server.read(vec![0; 8]));
    thread::sleep(Duration::from_millis(20));
    let err = sync_wait(server.read(vec![0; 8])).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ResourceBusy);
    sync_wait(client.write_all(b"x".to_vec())).unwrap();
    wait_for(5, || r1.is_complete());
    assert_eq!(r1.expect_value().0, 1);
    s1.finish();
}

/// 64 connections echoing concurrently on one loop thread.
#[test]
fn many_connections_echo() {
    let bg = BgLoop::new();
    let listener = TcpListener::bind(&bg.sch, local()).unwrap();
    let addr = listener.local_addr().unwrap();
    let clients: Vec<_> = (0..4)
        .map(|_| {
            thread::spawn(move || {
                use std::io::{Read, Write};
                let mut conns: Vec<_> = (0..16)
                    .map(|_| std::net::TcpStream::connect(addr).unwrap())
                    .collect();
                for round in 0..20u8 {
                    for c in &mut conns {
                        c.write_all(&[round; 64]).unwrap();
                    }
                    for c in &mut conns {
                        let mut b = [0u8; 64];
                        c.read_exact(&mut b).unwrap();
                        assert_eq!(b, [round; 64]);
                    }
                }
            })
        })
        .collect();
    // Server side: accept 64, then serve echoes by polling each stream
    // with sequential read → write_all senders run on the loop.
    let mut servers = Vec::new();
    for _ in 0..64 {
        servers.push(sync_wait(listener.accept()).unwrap().unwrap().0);
    }
    // One thread per connection, each running read → write_all senders
    // that complete on the single loop thread.
    let workers: Vec<_> = servers
        .into_iter()
        .map(|s| {
            thread::spawn(move || {
                let mut left = 20 * 64;
                let mut buf = vec![0; 64];
                while left > 0 {
                    let (n, mut b) = sync_wait(s.read(buf)).unwrap().unwrap();
                    assert!(n > 0);
                    left -= n;
                    b.truncate(n);
                    let mut b = sync_wait(s.write_all(b)).unwrap().unwrap();
                    b.resize(64, 0);
                    buf = b;
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    for w in workers {
        w.join().unwrap();
    }
}

#[test]
fn run_until_drives_a_client_and_server_on_one_thread() {
    let ctx = IoContext::new().unwrap();
    let sch = ctx.scheduler();
    let listener = TcpListener::bind(&sch, local()).unwrap();
    let addr = listener.local_addr().unwrap();
    let client = ctx
        .run_until(TcpStream::connect(&sch, addr))
        .unwrap()
        .unwrap();
    let (server, _) = ctx.run_until(listener.accept()).unwrap().unwrap();
    ctx.run_until(client.write_all(b"ping".to_vec())).unwrap();
    let (n, buf) = ctx.run_until(server.read(vec![0; 8])).unwrap().unwrap();
    assert_eq!(&buf[..n], b"ping");
}

/// Two listeners on one port (one per loop, as a server per core would
/// have): the kernel spreads connections and each accepts.
/// `serve_on_each`: one listener per loop on one port, each serving on its
/// own loop; every client is accepted, and both loops take connections.
#[test]
fn serve_on_each_serves_on_every_loop() {
    use exec_core::{Scheduler, SenderExt};
    use std::io::Read;
    use std::ops::ControlFlow::Continue;
    use std::sync::Mutex;
    let (a, b) = (BgLoop::new(), BgLoop::new());
    let loop_thread = |sch: &exec_io::IoScheduler| {
        sync_wait(sch.schedule().then(|()| thread::current().id()))
            .unwrap()
            .unwrap()
    };
    let loops = [loop_thread(&a.sch), loop_thread(&b.sch)];
    let served = Arc::new(Mutex::new(Vec::new()));
    let s = served.clone();
    let addr = TcpListener::serve_on_each([a.sch.clone(), b.sch.clone()], local(), |l| {
        let s = s.clone();
        exec_io::loop_with_state((), move |()| {
            let s = s.clone();
            l.accept().then(move |(stream, _)| {
                s.lock().unwrap().push(thread::current().id());
                drop(stream); // the client reads EOF
                Continue::<(), ()>(())
            })
        })
    })
    .unwrap();
    assert_ne!(
        addr.port(),
        0,
        "port 0 resolved to the first listener's port"
    );
    const CLIENTS: usize = 64;
    for _ in 0..CLIENTS {
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert_eq!(c.read(&mut [0u8; 1]).unwrap(), 0, "accepted and closed");
    }
    let served = served.lock().unwrap();
    assert_eq!(served.len(), CLIENTS);
    assert!(
        served.iter().all(|t| loops.contains(t)),
        "served on a loop thread"
    );
    // The kernel hashes connections over the two listeners: 64 clients all
    // on one of them has probability 2^-63.
    assert!(
        loops.iter().all(|l| served.contains(l)),
        "both loops served"
    );
}

#[test]
fn bind_reuseport_lets_two_loops_share_a_port() {
    let a = BgLoop::new();
    let b = BgLoop::new();
    let la = TcpListener::bind_reuseport(&a.sch, local()).unwrap();
    let addr = la.local_addr().unwrap();
    let lb = TcpListener::bind_reuseport(&b.sch, addr).unwrap();
    assert_eq!(lb.local_addr().unwrap(), addr);
    // A plain bind on the same port is refused.
    assert_eq!(
        TcpListener::bind(&a.sch, addr).unwrap_err().kind(),
        std::io::ErrorKind::AddrInUse
    );
    let (sa, ra) = common::start(la.accept());
    let (sb, rb) = common::start(lb.accept());
    let mut clients = Vec::new();
    for _ in 0..64 {
        clients.push(std::net::TcpStream::connect(addr).unwrap());
        if ra.is_complete() && rb.is_complete() {
            break;
        }
    }
    wait_for(5, || ra.is_complete() && rb.is_complete());
    ra.expect_value();
    rb.expect_value();
    sa.finish();
    sb.finish();
}

#[test]
fn ipv6_connect_accept_addrs() {
    // io_uring connects and accepts natively with socket addresses written
    // into the operation: check both families round-trip.
    let bg = BgLoop::new();
    let Ok(listener) = TcpListener::bind(&bg.sch, "[::1]:0".parse().unwrap()) else {
        eprintln!("no IPv6 loopback here: skipped");
        return;
    };
    let addr = listener.local_addr().unwrap();
    let (accepting, accepted) = common::start(listener.accept());
    let client = sync_wait(TcpStream::connect(&bg.sch, addr))
        .unwrap()
        .unwrap();
    wait_for(5, || accepted.is_complete());
    let (server, peer) = accepted.expect_value();
    accepting.finish();
    assert!(peer.is_ipv6());
    assert_eq!(peer, client.local_addr().unwrap());
    assert_eq!(client.peer_addr().unwrap(), addr);
    let buf = sync_wait(client.write_all(b"v6".to_vec()))
        .unwrap()
        .unwrap();
    assert_eq!(buf, b"v6");
    let (n, buf) = sync_wait(server.read(vec![0; 8])).unwrap().unwrap();
    assert_eq!(&buf[..n], b"v6");
}

/// On io_uring a receive that follows one that emptied the socket waits
/// for data before it tries (`IORING_RECVSEND_POLL_FIRST`); one that
/// follows a receive that filled its buffer tries at once. Either way it
/// must see data already queued, data that arrives later, a stop, and the
/// end of the stream (the readiness backend runs the same steps).
#[test]
fn reads_after_a_draining_read_see_queued_data_later_data_stop_and_eof() {
    let bg = BgLoop::new();
    let (_l, client, server) = pair(&bg);
    let read = |len: usize| {
        let (n, buf) = sync_wait(server.read(vec![0; len])).unwrap().unwrap();
        buf[..n].to_vec()
    };
    sync_wait(client.write_all(b"abcdefgh".to_vec()))
        .unwrap()
        .unwrap();
    thread::sleep(Duration::from_millis(20));
    // Fills its buffer: more may be queued.
    assert_eq!(read(4), b"abcd");
    // Gets less than it asked for: the socket is empty afterwards.
    assert_eq!(read(16), b"efgh");

    // Data queued before the next (poll-first) read is submitted.
    sync_wait(client.write_all(b"ijk".to_vec()))
        .unwrap()
        .unwrap();
    thread::sleep(Duration::from_millis(20));
    assert_eq!(read(16), b"ijk");

    // Data that arrives while the read waits; a write in the other
    // direction meanwhile is not blocked by it.
    let (reading, got) = common::start(server.read(vec![0; 16]));
    thread::sleep(Duration::from_millis(20));
    assert!(!got.is_complete());
    sync_wait(server.write_all(b"pong".to_vec()))
        .unwrap()
        .unwrap();
    let (n, buf) = sync_wait(client.read(vec![0; 16])).unwrap().unwrap();
    assert_eq!(&buf[..n], b"pong");
    assert!(!got.is_complete());
    sync_wait(client.write_all(b"lmn".to_vec()))
        .unwrap()
        .unwrap();
    wait_for(5, || got.is_complete());
    let (n, buf) = got.expect_value();
    assert_eq!(&buf[..n], b"lmn");
    reading.finish();

    // A stop while the read waits for data.
    stop_a_pending_read(server.read(vec![0; 16]));

    // Then the end of the stream.
    sync_wait(client.write_all(b"op".to_vec()))
        .unwrap()
        .unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read(16), b"op");
    assert_eq!(read(16), b"", "EOF after the peer's half-close");
}

/// A sender that completes on the loop with `()` (and the error type of
/// the stream operations, so they can follow it).
macro_rules! on_loop {
    ($bg:expr) => {
        $bg.sch.schedule().with_error::<std::io::Error>()
    };
}

/// Operations started on the loop thread itself (by the completion of
/// another, as in a server) take a shortcut on io_uring: their entry is
/// submitted at once instead of a turn later. Every outcome still arrives
/// exactly once: a value, a refusal (another read pending), a stop
/// requested before the start, and a stop while waiting.
#[test]
fn reads_started_on_the_loop_complete_with_value_busy_error_and_stop() {
    let bg = BgLoop::new();
    let (_l, client, server) = pair(&bg);
    let server = Arc::new(server);

    // Value: a read started by a completion on the loop.
    let s = server.clone();
    let (reading, got) = common::start(on_loop!(bg).let_value(move |()| s.read(vec![0; 16])));
    thread::sleep(Duration::from_millis(20));
    assert!(!got.is_complete());
    sync_wait(client.write_all(b"on loop".to_vec()))
        .unwrap()
        .unwrap();
    wait_for(5, || got.is_complete());
    let (n, buf) = got.expect_value();
    assert_eq!(&buf[..n], b"on loop");
    reading.finish();

    // Refused: another read is pending on the same stream.
    let (first, first_got) = common::start(server.read(vec![0; 16]));
    thread::sleep(Duration::from_millis(20));
    let s = server.clone();
    let err = sync_wait(on_loop!(bg).let_value(move |()| s.read(vec![0; 16]))).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ResourceBusy);
    assert!(!first_got.is_complete(), "the pending read is untouched");
    sync_wait(client.write_all(b"first".to_vec()))
        .unwrap()
        .unwrap();
    wait_for(5, || first_got.is_complete());
    let (n, buf) = first_got.expect_value();
    assert_eq!(&buf[..n], b"first");
    first.finish();

    // Stopped: the stop is requested (on the loop) before the read starts.
    let source = Arc::new(StopSource::new());
    let (r, rec) = recorder_with_stop(source.clone());
    let (s, src) = (server.clone(), source.clone());
    let started = start_with(
        on_loop!(bg).let_value(move |()| {
            src.request_stop();
            s.read(vec![0; 16])
        }),
        r,
        &rec,
    );
    wait_for(5, || rec.is_complete());
    rec.expect_stopped();
    started.finish();

    // Stopped while waiting for data; the stream still works afterwards.
    let s = server.clone();
    stop_a_pending_read(on_loop!(bg).let_value(move |()| s.read(vec![0; 16])));
    sync_wait(client.write_all(b"after".to_vec()))
        .unwrap()
        .unwrap();
    let (n, buf) = sync_wait(server.read(vec![0; 16])).unwrap().unwrap();
    assert_eq!(&buf[..n], b"after");
}
