//! Unix sockets and pipes on the loop.

// exec-core's shared fixtures (linted there, not here).
#[allow(clippy::collapsible_if, clippy::type_complexity)]
#[path = "../../exec-core/tests/common/mod.rs"]
mod common;
mod support;

use std::net::Shutdown;

use exec_core::sync_wait;
use exec_io::{UnixListener, UnixStream, pipe};
use support::BgLoop;

#[test]
fn unix_listener_stream_roundtrip() {
    let bg = BgLoop::new();
    let dir = std::env::temp_dir().join(format!("exec-io-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("sock");
    let _ = std::fs::remove_file(&path);
    let l = UnixListener::bind(&bg.sch, &path).unwrap();
    assert_eq!(l.local_addr().unwrap().as_pathname(), Some(path.as_path()));
    let c = sync_wait(UnixStream::connect(&bg.sch, &path))
        .unwrap()
        .unwrap();
    let (s, _) = sync_wait(l.accept()).unwrap().unwrap();
    assert_eq!(c.peer_addr().unwrap().as_pathname(), Some(path.as_path()));
    sync_wait(c.write_all(b"over unix".to_vec())).unwrap();
    let (n, buf) = sync_wait(s.read(vec![0; 32])).unwrap().unwrap();
    assert_eq!(&buf[..n], b"over unix");
    c.shutdown(Shutdown::Write).unwrap();
    let (n, _) = sync_wait(s.read(vec![0; 32])).unwrap().unwrap();
    assert_eq!(n, 0);
    let (n, _) = sync_wait(s.write(b"back".to_vec())).unwrap().unwrap();
    assert_eq!(n, 4);
    let (n, buf) = sync_wait(c.read(vec![0; 32])).unwrap().unwrap();
    assert_eq!(&buf[..n], b"back");
    // Connecting to a missing socket fails with an error value.
    let err = sync_wait(UnixStream::connect(&bg.sch, dir.join("missing"))).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    drop((l, s, c));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn unix_pair_and_pipe() {
    let bg = BgLoop::new();
    let (a, b) = UnixStream::pair(&bg.sch).unwrap();
    sync_wait(a.write_all(vec![1, 2, 3])).unwrap();
    let (n, buf) = sync_wait(b.read(vec![0; 8])).unwrap().unwrap();
    assert_eq!(&buf[..n], &[1, 2, 3]);

    let (r, w) = pipe(&bg.sch).unwrap();
    let big = vec![5u8; 1 << 20]; // larger than the pipe buffer
    let writer = std::thread::spawn(move || {
        let buf = sync_wait(w.write_all(big)).unwrap().unwrap();
        buf.len()
    });
    let mut total = 0;
    let mut buf = vec![0; 1 << 16];
    while total < 1 << 20 {
        let (n, b) = sync_wait(r.read(buf)).unwrap().unwrap();
        assert!(b[..n].iter().all(|&x| x == 5));
        total += n;
        buf = b;
    }
    assert_eq!(writer.join().unwrap(), 1 << 20);
    // Writer gone (dropped with its thread): EOF.
    let (n, _) = sync_wait(r.read(vec![0; 8])).unwrap().unwrap();
    assert_eq!(n, 0);
}

/// A fresh directory for socket files, removed by the caller.
fn temp_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("exec-io-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `ctx` for a few milliseconds (a timer), so started operations
/// reach the kernel (on io_uring: their entries are submitted).
fn turn(ctx: &exec_io::IoContext) {
    use exec_core::TimedScheduler;
    ctx.run_until(
        ctx.scheduler()
            .schedule_after(std::time::Duration::from_millis(5)),
    )
    .unwrap();
}

#[test]
fn connect_errors_are_io_errors() {
    let ctx = exec_io::IoContext::new().unwrap();
    eprintln!("backend: {:?}", ctx.backend());
    let sch = ctx.scheduler();
    let dir = temp_dir("connect-err");
    // No such file.
    let err = ctx
        .run_until(UnixStream::connect(&sch, dir.join("missing")))
        .unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
    // A socket file nobody listens on any more.
    let path = dir.join("dead");
    drop(UnixListener::bind(&sch, &path).unwrap());
    let err = ctx.run_until(UnixStream::connect(&sch, &path)).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ECONNREFUSED));
    // A file that is not a socket.
    let file = dir.join("plain");
    std::fs::write(&file, b"").unwrap();
    let err = ctx.run_until(UnixStream::connect(&sch, &file)).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ECONNREFUSED));
    // A path too long for an address: the same error as std's.
    let long = dir.join("x".repeat(200));
    let want = std::os::unix::net::UnixStream::connect(&long).unwrap_err();
    let err = ctx.run_until(UnixStream::connect(&sch, &long)).unwrap_err();
    assert_eq!(err.kind(), want.kind());
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn accept_reports_the_peer_address() {
    use std::os::unix::net::UnixStream as StdStream;
    let ctx = exec_io::IoContext::new().unwrap();
    let sch = ctx.scheduler();
    let dir = temp_dir("accept-addr");
    let path = dir.join("l");
    let l = UnixListener::bind(&sch, &path).unwrap();
    // An unbound client: an unnamed address.
    let c = StdStream::connect(&path).unwrap();
    let (s, addr) = ctx.run_until(l.accept()).unwrap().unwrap();
    assert!(addr.is_unnamed(), "{addr:?}");
    drop((c, s));
    // Accept waiting before the client connects; the client bound to a
    // path first (so the peer address is that path).
    let (op, rec) = common::start(l.accept());
    turn(&ctx);
    assert!(!rec.is_complete());
    let client_path = dir.join("client");
    let c = bound_client(&client_path, &path);
    for _ in 0..200 {
        if rec.is_complete() {
            break;
        }
        turn(&ctx);
    }
    let (s, addr) = rec.expect_value();
    op.finish();
    assert_eq!(addr.as_pathname(), Some(client_path.as_path()));
    // The accepted stream works.
    ctx.run_until(s.write_all(b"hi".to_vec())).unwrap();
    let mut got = [0u8; 2];
    std::io::Read::read_exact(&mut &c, &mut got).unwrap();
    assert_eq!(&got, b"hi");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A blocking Unix stream bound to `own` and connected to `to` (std cannot
/// bind a stream before connecting it).
fn bound_client(own: &std::path::Path, to: &std::path::Path) -> std::os::unix::net::UnixStream {
    use std::os::fd::FromRawFd;
    use std::os::unix::ffi::OsStrExt;
    fn addr(p: &std::path::Path) -> (libc::sockaddr_un, libc::socklen_t) {
        // SAFETY: all-zero is a valid `sockaddr_un`.
        let mut a: libc::sockaddr_un = unsafe { std::mem::zeroed() };
        a.sun_family = libc::AF_UNIX as libc::sa_family_t;
        let b = p.as_os_str().as_bytes();
        assert!(b.len() < a.sun_path.len());
        for (d, s) in a.sun_path.iter_mut().zip(b) {
            *d = *s as libc::c_char;
        }
        let len = std::mem::offset_of!(libc::sockaddr_un, sun_path) + b.len() + 1;
        (a, len as libc::socklen_t)
    }
    // SAFETY: plain syscall; checked below.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0);
    // SAFETY: a fresh descriptor we own.
    let s = unsafe { std::os::unix::net::UnixStream::from_raw_fd(fd) };
    let (a, len) = addr(own);
    // SAFETY: `a` is a valid address of `len` bytes, alive across the call.
    let r = unsafe { libc::bind(fd, (&a as *const libc::sockaddr_un).cast(), len) };
    assert_eq!(r, 0, "{}", std::io::Error::last_os_error());
    let (a, len) = addr(to);
    // SAFETY: as above.
    let r = unsafe { libc::connect(fd, (&a as *const libc::sockaddr_un).cast(), len) };
    assert_eq!(r, 0, "{}", std::io::Error::last_os_error());
    s
}

#[test]
fn stopped_accept_loses_no_connection() {
    use std::os::unix::net::UnixStream as StdStream;
    let ctx = exec_io::IoContext::new().unwrap();
    let sch = ctx.scheduler();
    let dir = temp_dir("accept-stop");
    let path = dir.join("l");
    let l = UnixListener::bind(&sch, &path).unwrap();
    for _ in 0..3 {
        let source = std::sync::Arc::new(exec_core::StopSource::new());
        let (r, rec) = common::recorder_with_stop(source.clone());
        let op = common::start_with(l.accept(), r, &rec);
        turn(&ctx);
        assert!(!rec.is_complete());
        source.request_stop();
        turn(&ctx);
        rec.expect_stopped();
        assert_eq!(rec.completions(), 1);
        op.finish();
        // The next connection goes to the next accept.
        let mut c = StdStream::connect(&path).unwrap();
        let (s, _) = ctx.run_until(l.accept()).unwrap().unwrap();
        std::io::Write::write_all(&mut c, b"z").unwrap();
        let (n, buf) = ctx.run_until(s.read(vec![0; 4])).unwrap().unwrap();
        assert_eq!(&buf[..n], b"z");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn connect_to_a_full_backlog_is_an_error() {
    use std::os::fd::AsRawFd;
    let ctx = exec_io::IoContext::new().unwrap();
    let sch = ctx.scheduler();
    let dir = temp_dir("backlog");
    let path = dir.join("l");
    // A listener nobody accepts on, with the smallest backlog.
    let l = std::os::unix::net::UnixListener::bind(&path).unwrap();
    // SAFETY: plain syscall on a live descriptor (re-listening sets the
    // backlog).
    assert_eq!(unsafe { libc::listen(l.as_raw_fd(), 0) }, 0);
    // Fill the backlog (connects that succeed until it is full).
    let mut clients = Vec::new();
    let err = loop {
        match ctx.run_until(UnixStream::connect(&sch, &path)) {
            Ok(s) => clients.push(s.unwrap()),
            Err(e) => break e,
        }
        assert!(clients.len() < 64, "the backlog never filled");
    };
    // The same error on both backends: `EAGAIN`, at once (no waiting).
    assert_eq!(err.raw_os_error(), Some(libc::EAGAIN));
    let t = std::time::Instant::now();
    let err = ctx.run_until(UnixStream::connect(&sch, &path)).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EAGAIN));
    assert!(t.elapsed() < std::time::Duration::from_secs(2));
    // Accepting one makes room again.
    drop(l.accept().unwrap());
    ctx.run_until(UnixStream::connect(&sch, &path))
        .unwrap()
        .unwrap();
    drop(clients);
    std::fs::remove_dir_all(&dir).unwrap();
}
