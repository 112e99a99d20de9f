//! What must not compile: borrowed senders outliving their data, `!Send`
//! work sent to another thread's scheduler, starting an operation without
//! taking responsibility for keeping it alive.
#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
