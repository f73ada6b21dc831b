//! The process-wide runtime never dereferences a bad address, whatever the environment holds: a program that
//! uses streamdsl and then re-executes itself (same pid, inherited environment) and a made-up
//! `STREAMDSL_RUNTIME_*` variable both run normally. Each case runs in a child process (this test binary, in
//! the ignored `child` test), because the runtime is found once per process.

use std::process::Command;

use streamdsl::prelude::*;

const STAGE: &str = "STREAMDSL_TEST_RUNTIME_STAGE";

/// Runs `child` below in a new process of this binary with `envs`; its stdout, or a panic with its output.
fn run_child(stage: &str, envs: &[(&str, String)]) -> String {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--ignored", "--exact", "child", "--nocapture", "--test-threads=1"]).env(STAGE, stage);
    cmd.env_remove("EVCXR_IS_RUNTIME");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "stage {stage} failed ({:?}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Some work through the runtime, checked by value.
fn use_streamdsl() {
    let s = Stream::new(&Device::cpu()).unwrap();
    let x = ops::full_on(&s, [3], 2.0f32).unwrap();
    assert_eq!(ops::mul_scalar_on(&s, &x, 3.0).unwrap().to_vec().unwrap(), vec![6.0; 3]);
    assert_eq!(ones::<f64>([2]).unwrap().sum().unwrap().item().unwrap(), 2.0);
}

#[test]
#[ignore = "a child process of the tests below"]
fn child() {
    let stage = std::env::var(STAGE).expect("run by the tests in this file");
    let variable = streamdsl::__private::runtime_variable();
    match stage.as_str() {
        "exec" => {
            use std::os::unix::process::CommandExt;
            use_streamdsl();
            // Under evcxr the runtime is now published in the environment, with this pid; `exec` keeps both.
            let published = std::env::var(&variable).is_ok();
            let evcxr = std::env::var_os("EVCXR_IS_RUNTIME").is_some();
            assert_eq!(published, evcxr, "the runtime is published exactly when running inside evcxr");
            let err = Command::new(std::env::current_exe().unwrap())
                .args(["--ignored", "--exact", "child", "--nocapture", "--test-threads=1"])
                .env(STAGE, "after-exec")
                .exec();
            panic!("exec failed: {err}");
        }
        "after-exec" => {
            use_streamdsl();
            println!("after exec: ok");
        }
        garbage => {
            let pid = std::process::id();
            let stack_value = [0u64; 2];
            let value = match garbage {
                "address-1" => format!("{pid}:1:00000000000000010000000000000001"),
                "unmapped" => format!("{pid}:7ffffffff000:0123456789abcdef0123456789abcdef"),
                "stack" => format!("{pid}:{:x}:00000000000000000000000000000000", &stack_value as *const _ as usize),
                "no-nonce" => format!("{pid}:{:x}", &stack_value as *const _ as usize),
                "words" => "not a runtime at all".to_string(),
                other => panic!("unknown stage {other}"),
            };
            std::env::set_var(&variable, value);
            use_streamdsl();
            println!("garbage {garbage}: ok");
        }
    }
}

#[test]
fn a_program_that_execs_itself_runs_on() {
    for evcxr in [true, false] {
        let envs: Vec<(&str, String)> = if evcxr { vec![("EVCXR_IS_RUNTIME", "1".into())] } else { vec![] };
        let out = run_child("exec", &envs);
        assert!(out.contains("after exec: ok"), "evcxr={evcxr}: {out}");
    }
}

#[test]
fn garbage_runtime_variables_are_ignored() {
    for stage in ["address-1", "unmapped", "stack", "no-nonce", "words"] {
        let out = run_child(stage, &[("EVCXR_IS_RUNTIME", "1".into())]);
        assert!(out.contains(&format!("garbage {stage}: ok")), "{stage}: {out}");
    }
}

#[test]
fn outside_evcxr_nothing_is_published() {
    // This test binary is not evcxr's runtime, so using streamdsl leaves the environment alone.
    if std::env::var_os("EVCXR_IS_RUNTIME").is_some() {
        return;
    }
    use_streamdsl();
    assert!(std::env::var(streamdsl::__private::runtime_variable()).is_err());
}
