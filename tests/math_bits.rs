//! The two forms of the portable math library give the same bits: `kernels/src/cuda/math.cuh` (with
//! `philox.cuh`), compiled as host C++ with `_rn` intrinsics that are the IEEE operations
//! (`tests/math_bits/shim.h`, `-ffp-contract=off`), against `streamdsl::math` — over 10⁷ inputs per function
//! (edge cases, random bit patterns, uniform samples of the useful range, a dense sweep of consecutive
//! floats, random significands near 1) in both precisions, and Philox → Box–Muller over 10⁷ + 3 normals in
//! each precision against the CPU backend's `randn`.
//!
//! Without a C++ compiler (`$CXX`, else `c++`) the test reports that it was skipped; with
//! `STREAMDSL_REQUIRE_CXX=1` that is a failure.

use std::path::{Path, PathBuf};
use std::process::Command;

use streamdsl::math;
use streamdsl::prelude::*;

const N: u64 = 10_000_000;
const RANDN_N: usize = 10_000_003;
const RANDN_SEED: u64 = 0x5EED;

fn splitmix(s: &mut u64) -> u64 {
    *s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *s;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

const EDGE32: [u32; 25] = [
    0x00000000, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC00001, 0x7F800001, 0x00000001, 0x807FFFFF,
    0x00800000, 0x7F7FFFFF, 0xFF7FFFFF, 0x3F800000, 0xBF800000, 0x42B17218, 0x42B17217, 0xC2CFF1B5, 0xC2CFF1B4,
    0x40C90FDB, 0x3FC90FDB, 0x46800000, 0x4E800000, 0x5A000000, 0x38800000, 0x39000000,
];
const EDGE64: [u64; 26] = [
    0x0000000000000000,
    0x8000000000000000,
    0x7FF0000000000000,
    0xFFF0000000000000,
    0x7FF8000000000000,
    0xFFF8000000000001,
    0x7FF0000000000001,
    0x0000000000000001,
    0x800FFFFFFFFFFFFF,
    0x0010000000000000,
    0x7FEFFFFFFFFFFFFF,
    0xFFEFFFFFFFFFFFFF,
    0x3FF0000000000000,
    0xBFF0000000000000,
    0x40862E42FEFA39EF,
    0x40862E42FEFA39F0,
    0xC0874910D52D3051,
    0xC0874910D52D3052,
    0x401921FB54442D18,
    0x3FF921FB54442D18,
    0x41D0000000000000,
    0x41E0000000000000,
    0x7FE0000000000000,
    0x4036000000000000,
    0x4018000000000000,
    0x3E40000000000000,
];

/// One function of the comparison: its name (as the C++ driver spells it), its input strategy, and the
/// output bits of its Rust form.
struct Spec32 {
    name: &'static str,
    lo: f32,
    hi: f32,
    sweep: u32,
    f: fn(f32, &mut dyn FnMut(u64)),
}
struct Spec64 {
    name: &'static str,
    lo: f64,
    hi: f64,
    sweep: u64,
    f: fn(f64, &mut dyn FnMut(u64)),
}

fn input32(s: &Spec32, i: u64, st: &mut u64) -> f32 {
    if i < EDGE32.len() as u64 {
        return f32::from_bits(EDGE32[i as usize]);
    }
    let r = splitmix(st);
    match i & 3 {
        0 => f32::from_bits(r as u32),
        1 => {
            let t = ((r >> 40) as u32) as f32 * 5.960_464_5e-8;
            s.lo + (s.hi - s.lo) * t
        }
        2 => f32::from_bits(s.sweep.wrapping_add((i >> 2) as u32)),
        _ => {
            let e = 111 + ((r >> 32) % 33) as u32;
            f32::from_bits((r as u32 & 0x807F_FFFF) | (e << 23))
        }
    }
}

fn input64(s: &Spec64, i: u64, st: &mut u64) -> f64 {
    if i < EDGE64.len() as u64 {
        return f64::from_bits(EDGE64[i as usize]);
    }
    let r = splitmix(st);
    match i & 3 {
        0 => f64::from_bits(r),
        1 => {
            let t = (r >> 11) as f64 * 1.110_223_024_625_156_5e-16;
            s.lo + (s.hi - s.lo) * t
        }
        2 => f64::from_bits(s.sweep.wrapping_add(i >> 2)),
        _ => {
            let e = 1007 + (r >> 58) % 33;
            f64::from_bits((r & 0x800F_FFFF_FFFF_FFFF) | (e << 52))
        }
    }
}

fn seed_of(name: &str) -> u64 {
    name.bytes().fold(0xCBF2_9CE4_8422_2325, |h, c| (h ^ u64::from(c)).wrapping_mul(0x100_0000_01B3))
}

#[derive(Clone, Copy)]
struct Hash(u64);
impl Hash {
    fn new() -> Hash {
        Hash(0xCBF2_9CE4_8422_2325)
    }
    fn add(&mut self, v: u64) {
        self.0 = (self.0 ^ v).wrapping_mul(0x100_0000_01B3);
    }
}

fn specs32() -> Vec<Spec32> {
    vec![
        Spec32 {
            name: "log_f32",
            lo: 0.0,
            hi: 4.0,
            sweep: 0x3F70_0000,
            f: |x, o| o(math::log_f32(x).to_bits().into()),
        },
        Spec32 {
            name: "exp_f32",
            lo: -104.0,
            hi: 89.0,
            sweep: 0xC200_0000,
            f: |x, o| o(math::exp_f32(x).to_bits().into()),
        },
        Spec32 {
            name: "expm1_f32",
            lo: -20.0,
            hi: 20.0,
            sweep: 0xBF00_0000,
            f: |x, o| o(math::expm1_f32(x).to_bits().into()),
        },
        Spec32 {
            name: "sin_f32",
            lo: -100.0,
            hi: 100.0,
            sweep: 0x4000_0000,
            f: |x, o| o(math::sin_f32(x).to_bits().into()),
        },
        Spec32 {
            name: "cos_f32",
            lo: -100.0,
            hi: 100.0,
            sweep: 0x4000_0000,
            f: |x, o| o(math::cos_f32(x).to_bits().into()),
        },
        Spec32 {
            name: "sincos_f32",
            lo: -7.0,
            hi: 7.0,
            sweep: 0x3F00_0000,
            f: |x, o| {
                let (s, c) = math::sincos_f32(x);
                o(s.to_bits().into());
                o(c.to_bits().into());
            },
        },
        Spec32 {
            name: "tanh_f32",
            lo: -10.0,
            hi: 10.0,
            sweep: 0x3E00_0000,
            f: |x, o| o(math::tanh_f32(x).to_bits().into()),
        },
        Spec32 {
            name: "erf_f32",
            lo: -6.0,
            hi: 6.0,
            sweep: 0x3F00_0000,
            f: |x, o| o(math::erf_f32(x).to_bits().into()),
        },
    ]
}

fn specs64() -> Vec<Spec64> {
    vec![
        Spec64 {
            name: "log_f64",
            lo: 0.0,
            hi: 4.0,
            sweep: 0x3FEF_0000_0000_0000,
            f: |x, o| o(math::log_f64(x).to_bits()),
        },
        Spec64 {
            name: "exp_f64",
            lo: -746.0,
            hi: 710.0,
            sweep: 0xC086_0000_0000_0000,
            f: |x, o| o(math::exp_f64(x).to_bits()),
        },
        Spec64 {
            name: "expm1_f64",
            lo: -40.0,
            hi: 40.0,
            sweep: 0xBFE0_0000_0000_0000,
            f: |x, o| o(math::expm1_f64(x).to_bits()),
        },
        Spec64 {
            name: "sin_f64",
            lo: -1e6,
            hi: 1e6,
            sweep: 0x4000_0000_0000_0000,
            f: |x, o| o(math::sin_f64(x).to_bits()),
        },
        Spec64 {
            name: "cos_f64",
            lo: -1e6,
            hi: 1e6,
            sweep: 0x4000_0000_0000_0000,
            f: |x, o| o(math::cos_f64(x).to_bits()),
        },
        Spec64 {
            name: "sincos_f64",
            lo: -7.0,
            hi: 7.0,
            sweep: 0x3FE0_0000_0000_0000,
            f: |x, o| {
                let (s, c) = math::sincos_f64(x);
                o(s.to_bits());
                o(c.to_bits());
            },
        },
        Spec64 {
            name: "tanh_f64",
            lo: -25.0,
            hi: 25.0,
            sweep: 0x3FC0_0000_0000_0000,
            f: |x, o| o(math::tanh_f64(x).to_bits()),
        },
        Spec64 {
            name: "erf_f64",
            lo: -7.0,
            hi: 7.0,
            sweep: 0x3FF0_0000_0000_0000,
            f: |x, o| o(math::erf_f64(x).to_bits()),
        },
    ]
}

/// The Rust side's outputs of one function (or randn), in order, to `out`; returns the count.
fn rust_outputs(name: &str, n: u64, out: &mut dyn FnMut(u64)) {
    if let Some(s) = specs32().into_iter().find(|s| s.name == name) {
        let mut st = seed_of(s.name);
        for i in 0..n {
            (s.f)(input32(&s, i, &mut st), out);
        }
    } else if let Some(s) = specs64().into_iter().find(|s| s.name == name) {
        let mut st = seed_of(s.name);
        for i in 0..n {
            (s.f)(input64(&s, i, &mut st), out);
        }
    } else {
        // randn on the CPU backend, through the public API.
        let s = Stream::new(&Device::cpu()).unwrap();
        let g = Generator::new(RANDN_SEED);
        if name == "randn_f32" {
            let t = streamdsl::ops::randn_with_on::<f32>(&s, [RANDN_N], &g).unwrap();
            t.to_vec().unwrap().into_iter().for_each(|v| out(v.to_bits().into()));
        } else {
            let t = streamdsl::ops::randn_with_on::<f64>(&s, [RANDN_N], &g).unwrap();
            t.to_vec().unwrap().into_iter().for_each(|v| out(v.to_bits()));
        }
    }
}

fn compile_driver() -> Option<PathBuf> {
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::env::temp_dir().join(format!("streamdsl-math-bits-{}", std::process::id()));
    let result = Command::new(&cxx)
        .args(["-std=c++17", "-O2", "-ffp-contract=off", "-fno-fast-math"])
        .arg(format!("-I{}", root.join("math_bits").display()))
        .arg(format!("-I{}", root.join("../kernels/src/cuda").display()))
        .arg(root.join("math_bits/driver.cpp"))
        .arg("-o")
        .arg(&out)
        .output();
    match result {
        Ok(o) if o.status.success() => Some(out),
        Ok(o) => panic!("{cxx} failed to compile the host form of math.cuh:\n{}", String::from_utf8_lossy(&o.stderr)),
        Err(e) if std::env::var("STREAMDSL_REQUIRE_CXX").is_ok_and(|v| v == "1") => {
            panic!("STREAMDSL_REQUIRE_CXX=1 but no C++ compiler ({cxx}): {e}")
        }
        Err(e) => {
            streamdsl_tests::report(&format!(
                "skipped math_bits::cuda_form_matches_rust_form: no C++ compiler ({cxx}): {e}"
            ));
            None
        }
    }
}

#[test]
fn cuda_form_matches_rust_form() {
    let Some(driver) = compile_driver() else { return };
    let output = Command::new(&driver).args(["hash", &N.to_string()]).output().unwrap();
    assert!(output.status.success(), "driver failed: {}", String::from_utf8_lossy(&output.stderr));
    let lines: Vec<(String, u64, u64)> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[0].to_string(), u64::from_str_radix(f[1], 16).unwrap(), f[2].parse().unwrap())
        })
        .collect();
    assert_eq!(lines.len(), 18, "one line per function and randn");
    // The Rust side, two threads at a time (debug builds are slow).
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()).min(4);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<(String, u64, u64)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some((name, _, _)) = lines.get(i) else { break };
                        let (mut h, mut c) = (Hash::new(), 0u64);
                        rust_outputs(name, N, &mut |v| {
                            h.add(v);
                            c += 1;
                        });
                        mine.push((name.clone(), h.0, c));
                    }
                    mine
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let mut failures = Vec::new();
    let mut total = 0;
    for (name, hash, count) in &lines {
        let (_, rh, rc) = results.iter().find(|r| &r.0 == name).unwrap();
        assert_eq!(count, rc, "{name}: output counts differ");
        total += count;
        if hash != rh {
            failures.push(first_differences(&driver, name));
        }
    }
    let _ = std::fs::remove_file(&driver);
    assert!(failures.is_empty(), "the CUDA C form and the Rust form differ:\n{}", failures.join("\n"));
    streamdsl_tests::report(&format!(
        "math_bits: math.cuh (host C++) and streamdsl::math agree bit for bit on {total} outputs ({} functions x {N} inputs, randn f32/f64 x {RANDN_N})",
        lines.len() - 2
    ));
}

/// The first few outputs where the two forms differ.
fn first_differences(driver: &Path, name: &str) -> String {
    let out = Command::new(driver).args(["dump", &N.to_string(), name]).output().unwrap();
    let wide = name.ends_with("f64");
    let width = if wide { 8 } else { 4 };
    let theirs: Vec<u64> =
        out.stdout.chunks(width).map(|c| c.iter().rev().fold(0u64, |acc, &b| (acc << 8) | u64::from(b))).collect();
    let mut ours = Vec::new();
    rust_outputs(name, N, &mut |v| ours.push(v));
    let diffs: Vec<String> = ours
        .iter()
        .zip(&theirs)
        .enumerate()
        .filter(|(_, (a, b))| a != b)
        .take(5)
        .map(|(i, (a, b))| format!("  output {i}: rust {a:#018x}, cuda {b:#018x}"))
        .collect();
    format!(
        "{name}: {} of {} outputs differ\n{}",
        ours.iter().zip(&theirs).filter(|(a, b)| a != b).count(),
        ours.len(),
        diffs.join("\n")
    )
}
