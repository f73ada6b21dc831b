//! Soak benchmark: a million mixed ops on the CPU backend, with the process's resident memory and the op rate
//! sampled at intervals. Flat memory is the target: nothing the runtime keeps per op, per stream or per buffer
//! may accumulate over a long run.
//!
//! `cargo bench -p streamdsl --bench soak` (`-- 200000` for a shorter run).

use std::time::Instant;

use streamdsl::prelude::*;

/// Resident set size in MiB, from `/proc/self/statm`.
fn rss_mib() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: f64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0.0);
    pages * 4096.0 / (1 << 20) as f64
}

fn main() -> Result<()> {
    // The injected failures panic on purpose; keep their messages out of the table.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let injected = info.payload().downcast_ref::<&str>().is_some_and(|m| m.contains("injected"));
        if !injected {
            default_hook(info);
        }
    }));
    let total: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(1_000_000);
    let samples = 10;
    let dev = Device::cpu();
    let mut streams: Vec<Stream> = (0..8).map(|i| Stream::with_priority(&dev, -(i % 3))).collect::<Result<_>>()?;
    let g = Generator::new(7);
    let mut keep: Vec<Tensor<f32>> = (0..8).map(|i| ops::full_on(&streams[i], [64], 1.0f32)).collect::<Result<_>>()?;
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    println!(
        "soak: {total} mixed ops on the CPU backend ({cpu}, {} cores)\n",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!("| ops done | RSS MiB | ops/s since last row |");
    println!("| ---: | ---: | ---: |");
    println!("| 0 | {:.1} | |", rss_mib());
    let (mut done, mut last) = (0usize, Instant::now());
    let mut rss = Vec::new();
    for i in 0..total {
        let k = i % 8;
        let s = &streams[k];
        // Cross-stream reads and writes, in-place ops, fresh tensors dropped at once, reads by the host,
        // transient streams, events, and now and then a failure with recovery.
        match i % 16 {
            0..=5 => keep[k] = ops::add_on(s, &keep[k], &keep[(k + 3) % 8])?.mul_scalar(0.5)?,
            6 | 7 => ops::fill_on(s, &keep[(k + 1) % 8], 1.0)?,
            8 => ops::copy_on(s, &keep[k], &keep[(k + 5) % 8])?,
            9 => drop(ops::randn_with_on::<f32>(s, [32], &g)?),
            10 => {
                let _ = keep[k].to_vec()?;
            }
            11 => {
                let e = s.record_event();
                streams[(k + 1) % 8].wait_event(&e)?;
            }
            12 => streams[k] = Stream::with_priority(&dev, -((i % 3) as i32))?,
            13 if i % 4096 == 13 => {
                let p = Stream::new(&dev)?;
                p.launch_host_func(|| panic!("soak: injected failure"));
                let _ = p.synchronize();
                p.clear_error();
            }
            _ => drop(ops::sum_on(s, &keep[k])?),
        }
        done += 1;
        if done % (total / samples).max(1) == 0 {
            streams.iter().try_for_each(|s| s.synchronize())?;
            let rate = (total / samples) as f64 / last.elapsed().as_secs_f64();
            let now = rss_mib();
            rss.push(now);
            println!("| {done} | {now:.1} | {rate:.0} |");
            last = Instant::now();
        }
    }
    let growth = rss.last().copied().unwrap_or(0.0) - rss.get(1).copied().unwrap_or(0.0);
    println!("\nRSS from the second sample to the end: {growth:+.1} MiB (flat is the target)");
    Ok(())
}
