//! The seed's example: two random matrices multiplied on a high-priority stream, timed with events.
//!
//! Run with `cargo run --release --example quickstart`.

use streamdsl::prelude::*;

fn main() -> Result<()> {
    let dev = Device::default(); // CUDA device 0 when present, else the CPU backend
    let s = Stream::with_priority(&dev, -1)?;
    let (start, end) = (Event::timed(&dev), Event::timed(&dev));

    s.record(&start)?;
    let c = gpu_scope!(stream = s, {
        // like `with torch.cuda.stream(s):`
        let a = randn::<f32>([10, 5])?;
        let b = randn::<f32>([5, 10])?;
        mm(&a, &b)? // enqueued on `s`; returns at once
    });
    s.record(&end)?;
    s.synchronize()?;

    let values = c.to_vec()?;
    let checksum: f64 = values.iter().map(|&v| f64::from(v)).sum();
    println!("device:   {dev}");
    println!("stream:   {s}");
    println!("shape:    {:?}", c.shape());
    println!("checksum: {checksum:.6}");
    println!("time:     {:.3} ms", start.elapsed_time(&end)?.as_secs_f64() * 1e3);
    Ok(())
}
