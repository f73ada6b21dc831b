//! Compile-fail cases of `gpu_scope!`: each `ui/*.rs` must fail with the checked-in `.stderr`.
//! Regenerate after a deliberate change with `TRYBUILD=overwrite cargo test -p streamdsl-tests --test ui`,
//! then read every changed `.stderr` for clarity.

#[test]
fn gpu_scope_misuse_is_a_compile_error() {
    // A bundled test binary on a GPU machine has neither cargo nor the sources; CI and `./scripts/test` do.
    let have_cargo = std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let have_sources = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/ui")).is_dir();
    if !(have_cargo && have_sources) {
        streamdsl_tests::report(
            "skipped gpu_scope_misuse_is_a_compile_error: trybuild needs cargo and the ui/ sources",
        );
        return;
    }
    let cases = trybuild::TestCases::new();
    cases.compile_fail("ui/*.rs");
}
