//! Faults arrive as `io::Error` values in the error channel: refused,
//! address in use, peer reset, broken pipe without SIGPIPE, EMFILE on
//! accept with the listener serving again afterwards.

mod support;

use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::process::Command;
use std::thread;
use std::time::Duration;

use exec_core::sync_wait;
use exec_io::{TcpListener, TcpStream, UdpSocket, pipe};
use support::BgLoop;

fn local() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// Runs the test `name` of this binary in a child process (with
/// `EXEC_IO_CHILD=name`), for faults that need process-wide settings.
fn run_in_child(name: &str) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env("EXEC_IO_CHILD", name)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "child failed: {:?}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn is_child(name: &str) -> bool {
    std::env::var("EXEC_IO_CHILD").as_deref() == Ok(name)
}

#[test]
fn connection_refused() {
    let bg = BgLoop::new();
    // A port that was just free: bind, note it, close.
    let addr = std::net::TcpListener::bind(local())
        .unwrap()
        .local_addr()
        .unwrap();
    let err = sync_wait(TcpStream::connect(&bg.sch, addr)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
}

#[test]
fn address_in_use() {
    let bg = BgLoop::new();
    let l = TcpListener::bind(&bg.sch, local()).unwrap();
    let err = TcpListener::bind(&bg.sch, l.local_addr().unwrap()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AddrInUse);
    let u = UdpSocket::bind(&bg.sch, local()).unwrap();
    let err = UdpSocket::bind(&bg.sch, u.local_addr().unwrap()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AddrInUse);
}

fn connected(bg: &BgLoop) -> (TcpStream, TcpStream) {
    let l = TcpListener::bind(&bg.sch, local()).unwrap();
    let addr = l.local_addr().unwrap();
    let c = sync_wait(TcpStream::connect(&bg.sch, addr))
        .unwrap()
        .unwrap();
    let (s, _) = sync_wait(l.accept()).unwrap().unwrap();
    (c, s)
}

#[test]
fn peer_reset_is_an_error_on_read() {
    let bg = BgLoop::new();
    let (c, s) = connected(&bg);
    s.set_linger_zero().unwrap();
    drop(s);
    let err = sync_wait(c.read(vec![0; 16])).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionReset);
}

/// Writing to a reset connection fails with `BrokenPipe` or
/// `ConnectionReset`; the process gets no `SIGPIPE` even with the default
/// disposition restored (checked in a child process).
#[test]
fn broken_pipe_without_sigpipe() {
    const NAME: &str = "broken_pipe_without_sigpipe";
    if !is_child(NAME) {
        return run_in_child(NAME);
    }
    // SAFETY: restoring the default disposition of SIGPIPE in this child
    // process: a SIGPIPE would now kill it.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let bg = BgLoop::new();
    let (c, s) = connected(&bg);
    drop(s);
    let mut errors = Vec::new();
    for _ in 0..100 {
        match sync_wait(c.write_all(vec![7; 64 << 10])) {
            Ok(_) => thread::sleep(Duration::from_millis(1)),
            Err(e) => {
                errors.push(e.kind());
                if e.kind() == ErrorKind::BrokenPipe {
                    break;
                }
            }
        }
    }
    assert!(
        errors.contains(&ErrorKind::BrokenPipe),
        "expected EPIPE, got {errors:?}"
    );
}

/// A pipe whose reader is gone: `BrokenPipe` as an error value (a pipe
/// cannot suppress `SIGPIPE` per call; Rust programs ignore it by default).
#[test]
fn pipe_reader_gone_is_broken_pipe() {
    let bg = BgLoop::new();
    let (r, w) = pipe(&bg.sch).unwrap();
    drop(r);
    let err = sync_wait(w.write(vec![1; 8])).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BrokenPipe);
}

/// With the descriptor limit reached, accept fails with EMFILE (as an
/// error value) and the listener serves again once descriptors are free.
#[test]
fn emfile_on_accept_then_listener_keeps_serving() {
    const NAME: &str = "emfile_on_accept_then_listener_keeps_serving";
    if !is_child(NAME) {
        return run_in_child(NAME);
    }
    let bg = BgLoop::new();
    let l = TcpListener::bind(&bg.sch, local()).unwrap();
    let addr = l.local_addr().unwrap();
    // Clients connect from another process-free place: std sockets created
    // before the limit is lowered.
    let clients: Vec<_> = (0..4)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect();
    // Fill the descriptor table up to a low limit.
    let used = support::open_fds() as u64;
    let limit = used + 8;
    let lim = libc::rlimit {
        rlim_cur: limit,
        rlim_max: limit.max(1 << 16),
    };
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls with valid pointers.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut old), 0);
        assert_eq!(
            libc::setrlimit(
                libc::RLIMIT_NOFILE,
                &libc::rlimit {
                    rlim_cur: lim.rlim_cur,
                    rlim_max: old.rlim_max
                }
            ),
            0
        );
    }
    let mut hogs = Vec::new();
    loop {
        match std::fs::File::open("/dev/null") {
            Ok(f) => hogs.push(f),
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(libc::EMFILE));
                break;
            }
        }
    }
    let err: io::Error = sync_wait(l.accept()).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EMFILE), "{err}");
    // Free descriptors: the same listener accepts the pending clients.
    hogs.truncate(hogs.len().saturating_sub(4));
    let (s, peer) = sync_wait(l.accept()).unwrap().unwrap();
    assert!(clients.iter().any(|c| c.local_addr().unwrap() == peer));
    drop(s);
    drop(hogs);
}
