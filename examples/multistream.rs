//! Two streams working at once: a producer fills batches, a high-priority consumer multiplies them as soon as
//! each batch's event completes, and events time both sides.
//!
//! Run with `cargo run --release --example multistream`.

use streamdsl::prelude::*;

fn main() -> Result<()> {
    let dev = Device::default();
    let producer = Stream::new(&dev)?;
    let consumer = Stream::with_priority(&dev, -1)?;
    let weights = gpu_scope!(stream = consumer, { randn::<f32>([256, 256])? });
    let (start, end) = (Event::timed(&dev), Event::timed(&dev));

    consumer.record(&start)?;
    let mut outputs = Vec::new();
    for batch in 0..8 {
        let (x, ready) = gpu_scope!(stream = producer, {
            let x = randn::<f32>([512, 256])?.mul_scalar(1.0 + batch as f64)?;
            (x, producer.record_event())
        });
        // The consumer waits for this batch only; the producer moves on to the next one meanwhile.
        // (Tensor ops would wait by themselves; the explicit event shows the torch-style API.)
        consumer.wait_event(&ready)?;
        outputs.push(gpu_scope!(stream = consumer, { x.mm(&weights)?.mean()? }));
    }
    consumer.record(&end)?;
    consumer.synchronize()?;

    println!("device:  {dev}");
    println!("streams: {producer} and {consumer}");
    for (i, m) in outputs.iter().enumerate() {
        println!("batch {i}: mean of x·W = {:+.5}", m.item()?);
    }
    println!("consumer time: {:.3} ms", start.elapsed_time(&end)?.as_secs_f64() * 1e3);
    Ok(())
}
