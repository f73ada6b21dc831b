//! The stress suite: many threads, each running a random program of cross-stream reads and writes, in-place
//! `fill_`/`copy_`, dropped streams and tensors, events passed between threads, and poisoned streams with
//! `clear_error`, checked value by value against a sequential host reference. Part of it runs with the race
//! checker on. Seeds are fixed and printed on failure (`STREAMDSL_STRESS_SEED` replays one), so a failure
//! can be reproduced.
//!
//! Values stay small integers, so every result is exact in f32 and the reference can demand equality.

use std::sync::Mutex;

use streamdsl::prelude::*;

/// splitmix64: a small, seedable generator for the programs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn small(&mut self) -> f32 {
        self.below(17) as f32 - 8.0
    }
}

/// A tensor and what it must hold.
struct Slot {
    tensor: Tensor<f32>,
    expected: Vec<f32>,
}

const SLOTS: usize = 6;

/// One thread's program; `Err` says which seed and step went wrong.
fn program(dev: &Device, seed: u64, steps: usize, mailbox: &Mutex<Vec<Event>>) -> std::result::Result<(), String> {
    let fail = |step: usize, what: String| format!("seed {seed}, step {step}: {what}");
    let mut rng = Rng(seed);
    let n = 1 + rng.below(3000);
    let new_stream = |rng: &mut Rng| Stream::with_priority(dev, -(rng.below(3) as i32));
    let mut streams: Vec<Stream> =
        (0..4).map(|_| new_stream(&mut rng)).collect::<Result<_>>().map_err(|e| e.to_string())?;
    let mut slots: Vec<Slot> = Vec::new();
    for i in 0..SLOTS {
        let v = rng.small();
        let tensor = ops::full_on(&streams[i % 4], [n], v).map_err(|e| fail(0, e.to_string()))?;
        slots.push(Slot { tensor, expected: vec![v; n] });
    }
    for step in 0..steps {
        let s = &streams[rng.below(streams.len())].clone();
        let (i, j) = (rng.below(SLOTS), rng.below(SLOTS));
        let err = |e: Error| fail(step, e.to_string());
        match rng.below(12) {
            0 => {
                let v = rng.small();
                ops::fill_on(s, &slots[i].tensor, v).map_err(err)?;
                slots[i].expected = vec![v; n];
            }
            1 if i != j => {
                ops::copy_on(s, &slots[i].tensor, &slots[j].tensor).map_err(err)?;
                slots[i].expected = slots[j].expected.clone();
            }
            2 | 3 => {
                let k = rng.below(SLOTS);
                let (sub, t) = if rng.below(2) == 0 {
                    (false, ops::add_on(s, &slots[i].tensor, &slots[j].tensor).map_err(err)?)
                } else {
                    (true, ops::sub_on(s, &slots[i].tensor, &slots[j].tensor).map_err(err)?)
                };
                let e: Vec<f32> = slots[i]
                    .expected
                    .iter()
                    .zip(&slots[j].expected)
                    .map(|(a, b)| if sub { a - b } else { a + b })
                    .collect();
                slots[k] = Slot { tensor: t, expected: e };
            }
            4 => {
                let factor = if rng.below(2) == 0 { -1.0 } else { 2.0 };
                let t = ops::mul_scalar_on(s, &slots[i].tensor, factor).map_err(err)?;
                let e = slots[i].expected.iter().map(|v| v * factor as f32).collect();
                slots[j] = Slot { tensor: t, expected: e };
            }
            5 => {
                let got = slots[i].tensor.to_vec().map_err(err)?;
                if got != slots[i].expected {
                    return Err(fail(
                        step,
                        format!(
                            "slot {i} holds {:?}…, expected {:?}…",
                            &got[..3.min(n)],
                            &slots[i].expected[..3.min(n)]
                        ),
                    ));
                }
            }
            6 => {
                let got = ops::sum_on(s, &slots[i].tensor).and_then(|t| t.item()).map_err(err)?;
                let want: f64 = slots[i].expected.iter().map(|&v| f64::from(v)).sum();
                if f64::from(got) != want {
                    return Err(fail(step, format!("sum of slot {i} is {got}, expected {want}")));
                }
            }
            7 => {
                // Drop a stream with work possibly still queued; its work still runs.
                let k = rng.below(streams.len());
                streams[k] = new_stream(&mut rng).map_err(err)?;
            }
            8 => {
                // Events between threads: record here, wait there.
                let mut mailbox = mailbox.lock().unwrap();
                if rng.below(2) == 0 || mailbox.is_empty() {
                    mailbox.push(s.record_event());
                    if mailbox.len() > 64 {
                        mailbox.remove(0);
                    }
                } else {
                    let at = rng.below(mailbox.len());
                    let e = mailbox.swap_remove(at);
                    drop(mailbox);
                    // Another thread's device: only CPU events can be waited on a CPU stream and so on.
                    if e.device() == s.device() {
                        s.wait_event(&e).map_err(err)?;
                    }
                }
            }
            9 => {
                // A poisoned stream: what it was to produce is an error, then it recovers.
                let p = new_stream(&mut rng).map_err(err)?;
                p.launch_host_func(|| panic!("stress: injected failure"));
                // Refused at once (CUDA refuses work on a stream it knows is poisoned), or enqueued and then an
                // error to read. On CUDA, work enqueued before the failure is noticed runs on the device anyway:
                // its result is then the right value.
                if let Ok(t) = ops::add_scalar_on(&p, &slots[i].tensor, 1.0) {
                    let expected: Vec<f32> = slots[i].expected.iter().map(|v| v + 1.0).collect();
                    match t.to_vec() {
                        Err(_) => {}
                        Ok(v) if dev.is_cuda() && v == expected => {}
                        Ok(_) => return Err(fail(step, "a tensor produced on a poisoned stream read as valid".into())),
                    }
                }
                if p.synchronize().is_ok() || p.clear_error().is_none() {
                    return Err(fail(step, "the poisoned stream did not report its failure once".into()));
                }
                let v = rng.small();
                ops::fill_on(&p, &slots[j].tensor, v).map_err(err)?;
                slots[j].expected = vec![v; n];
            }
            10 => {
                // Drop a tensor while work that uses it may be pending, and make a new one.
                let v = rng.small();
                slots[i] = Slot { tensor: ops::full_on(s, [n], v).map_err(err)?, expected: vec![v; n] };
            }
            _ => {}
        }
        // Keep the values small integers (exact in f32).
        if slots[i].expected.iter().any(|v| v.abs() > 1e6) {
            ops::fill_on(s, &slots[i].tensor, 1.0).map_err(|e| fail(step, e.to_string()))?;
            slots[i].expected = vec![1.0; n];
        }
    }
    for (i, slot) in slots.iter().enumerate() {
        let got = slot.tensor.to_vec().map_err(|e| fail(steps, e.to_string()))?;
        if got != slot.expected {
            return Err(fail(steps, format!("at the end, slot {i} differs from the reference")));
        }
    }
    Ok(())
}

/// Runs `threads` programs at once on `dev`; the seeds are `base..base + threads`.
fn run(dev: &Device, base: u64, threads: u64, steps: usize) {
    let seeds: Vec<u64> = match std::env::var("STREAMDSL_STRESS_SEED").ok().and_then(|s| s.parse().ok()) {
        Some(seed) => vec![seed],
        None => (base..base + threads).collect(),
    };
    let mailbox = Mutex::new(Vec::new());
    let failures: Vec<String> = std::thread::scope(|sc| {
        let mailbox = &mailbox;
        let handles: Vec<_> = seeds.iter().map(|&seed| sc.spawn(move || program(dev, seed, steps, mailbox))).collect();
        handles
            .into_iter()
            .filter_map(|h| h.join().unwrap_or_else(|_| Err("a program panicked".into())).err())
            .collect()
    });
    assert!(failures.is_empty(), "replay with STREAMDSL_STRESS_SEED=<seed>:\n{}", failures.join("\n"));
}

#[test]
fn stress_cpu_with_the_race_checker() {
    streamdsl::set_sanitize(true);
    run(&Device::cpu(), 1_000, 6, 1_500);
    streamdsl::set_sanitize(false);
}

#[test]
fn stress_cpu() {
    run(&Device::cpu(), 2_000, 16, 3_000);
}

#[test]
fn stress_cuda() {
    let Some(dev) = streamdsl_tests::cuda_or_skip("stress_cuda") else { return };
    run(&dev, 3_000, 8, 600);
}
