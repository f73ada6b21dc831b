//! Compile-fail cases of `#[kernel]`: each `ui_kernel/*.rs` must fail with the checked-in `.stderr`, one error
//! per mistake. Regenerate after a deliberate change with
//! `TRYBUILD=overwrite cargo test -p streamdsl-tests --test ui_kernel`, then read every changed `.stderr`.

#[test]
fn kernel_misuse_is_a_compile_error() {
    let have_cargo = std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let have_sources = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/ui_kernel")).is_dir();
    if !(have_cargo && have_sources) {
        streamdsl_tests::report(
            "skipped kernel_misuse_is_a_compile_error: trybuild needs cargo and the ui_kernel/ sources",
        );
        return;
    }
    let cases = trybuild::TestCases::new();
    cases.compile_fail("ui_kernel/*.rs");
}
