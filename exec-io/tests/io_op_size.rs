//! Sizes of per-connection operation states (memory per connection).
use std::ops::ControlFlow::{Break, Continue};
use exec_core::{SenderExt, SenderTo};
use exec_io::{DetachedReceiver, IoContext, TcpListener, TcpStream, loop_with_state};

fn size<S: SenderTo<DetachedReceiver>>(_: &S) -> usize { core::mem::size_of::<S::Operation>() }

#[test]
fn print_sizes() {
    let ctx = IoContext::new().unwrap();
    let sch = ctx.scheduler();
    let l = TcpListener::bind(&sch, "127.0.0.1:0".parse().unwrap()).unwrap();
    let stream = ctx.run_until(TcpStream::connect(&sch, l.local_addr().unwrap())).unwrap().unwrap();
    eprintln!("read op {}", size(&stream.read(vec![])));
    eprintln!("write_all op {}", size(&stream.write_all(vec![])));
    let s2 = stream.clone();
    let echo = loop_with_state(vec![0u8; 64], move |buf| {
        let s = s2.clone();
        s2.read(buf)
            .let_value(move |(n, mut buf): (usize, Vec<u8>)| { buf.truncate(n); s.write_all(buf) })
            .then(|mut buf| match buf.len() { 0 => Break(()), _ => Continue({ buf.resize(64, 0); buf }) })
    });
    eprintln!("echo loop op {}", size(&echo));
}
