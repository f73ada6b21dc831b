//! The same bits whatever runs them: `sum` and `mean` follow one fixed tree, so the result does not depend on
//! the number of CPU stream workers or rayon threads, nor on the GPU's multiprocessor count (checked on the
//! simulated driver with two counts, where it is present). Each configuration runs in a child process of this
//! binary (the `child` test), because worker and thread counts are fixed when a process starts.

use std::process::Command;

use streamdsl::prelude::*;

const CHILD: &str = "STREAMDSL_TEST_NUMERICS_CHILD";

/// The bits of a few sums and means of fixed random data, as the child prints them.
fn run_child(envs: &[(&str, String)]) -> String {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--ignored", "--exact", "child", "--nocapture", "--test-threads=1"]).env(CHILD, "1");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{envs:?}:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    // The harness may print `test child ... ` on the same line first.
    stdout.lines().filter_map(|l| l.find("bits ").map(|i| &l[i..])).collect::<Vec<_>>().join("\n")
}

#[test]
#[ignore = "a child process of the test below"]
fn child() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let dev = Device::default();
    let s = Stream::new(&dev).unwrap();
    let g = Generator::new(2026);
    let x = ops::randn_with_on::<f32>(&s, [1_000_003], &g).unwrap();
    let y = ops::randn_with_on::<f64>(&s, [65_537], &g).unwrap();
    let h = ops::randn_with_on::<bf16>(&s, [4_099], &g).unwrap();
    let sums = [
        ops::sum_on(&s, &x).unwrap().item().unwrap().to_bits() as u64,
        ops::mean_on(&s, &x).unwrap().item().unwrap().to_bits() as u64,
        ops::sum_on(&s, &y).unwrap().item().unwrap().to_bits(),
        ops::mean_on(&s, &y).unwrap().item().unwrap().to_bits(),
        u64::from(ops::sum_on(&s, &h).unwrap().item().unwrap().to_bits()),
    ];
    println!("bits {sums:x?}");
}

#[test]
fn sums_are_the_same_bits_for_any_thread_count_and_gpu() {
    let on_cpu = |workers: usize| {
        run_child(&[
            ("STREAMDSL_DEVICE", "cpu".into()),
            ("STREAMDSL_CPU_WORKERS", workers.to_string()),
            ("RAYON_NUM_THREADS", workers.to_string()),
        ])
    };
    let reference = on_cpu(1);
    assert!(reference.starts_with("bits "), "{reference}");
    for workers in [2, 4, 16] {
        assert_eq!(on_cpu(workers), reference, "{workers} CPU workers and rayon threads");
    }
    // The simulated driver, with two multiprocessor counts: the CUDA sum's grid depends only on the length.
    let simulated = Device::cuda_devices().is_ok_and(|(_, gpus)| gpus.first().is_some_and(|g| g.simulated));
    if simulated {
        for sms in [8, 132] {
            let on_gpu = run_child(&[("STREAMDSL_DEVICE", "cuda".into()), ("STREAMDSL_SIM_SMS", sms.to_string())]);
            assert_eq!(on_gpu, reference, "the simulated GPU with {sms} multiprocessors");
        }
    } else {
        streamdsl_tests::report(
            "skipped the GPU half of sums_are_the_same_bits_for_any_thread_count_and_gpu: no simulated driver",
        );
    }
}
