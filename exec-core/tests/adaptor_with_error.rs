//! `with_error`: retypes an infallible sender's error channel, zero-cost.
mod common;

use common::*;
use exec_core::{Completion, Sender, SenderExt, just, just_stopped, sync_wait};
use std::convert::Infallible;

#[derive(Debug, PartialEq)]
struct MyError;

#[test]
fn value_stopped_panic_forwarded() {
    let (op, rec) = start(just(1).with_error::<MyError>());
    assert_eq!(rec.expect_value(), 1);
    op.finish();
    let (op, rec) = start(just_stopped::<i32, Infallible>().with_error::<MyError>());
    rec.expect_stopped();
    op.finish();
    let (op, rec) = start(
        just(1)
            .then(|_| -> i32 { panic!("p") })
            .with_error::<MyError>(),
    );
    assert_eq!(rec.expect_panic(), "p");
    op.finish();
}

#[test]
fn lets_senders_share_an_error_type() {
    fn expects_my_error<S: Sender<Error = MyError>>(_: &S) {}
    let s = just(2).with_error::<MyError>();
    expects_my_error(&s);
    expects_my_error(&Fixed::<i32, MyError>(Completion::Error(MyError)));
    let r: Result<Option<i32>, MyError> = sync_wait(s);
    assert_eq!(r, Ok(Some(2)));
}

#[test]
fn zero_cost() {
    let s = just(1u64);
    assert_eq!(
        std::mem::size_of_val(&s),
        std::mem::size_of_val(&just(1u64).with_error::<String>())
    );
}
