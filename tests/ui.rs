//! Compile-fail cases of `gpu_scope!`: each `ui/*.rs` must fail with the checked-in `.stderr`.
//! Regenerate after a deliberate change with `TRYBUILD=overwrite cargo test -p streamdsl-tests --test ui`,
//! then read every changed `.stderr` for clarity.

#[test]
fn gpu_scope_misuse_is_a_compile_error() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("ui/*.rs");
}
