//! Two streams working at once: a producer fills batches, a high-priority consumer multiplies them as soon as
//! each batch's event completes, and events time both sides.
//!
//! Run with `cargo run --release --example multistream`; `-- --one-stream` runs both sides on one stream.
//! With `STREAMDSL_TRACE=trace.json,timeline.svg` the run also writes a Chrome trace (open it in
//! <https://ui.perfetto.dev>) and the SVG timeline.

use streamdsl::prelude::*;

fn main() -> Result<()> {
    let dev = Device::default();
    let two_streams = !std::env::args().any(|a| a == "--one-stream");
    let run = streamdsl_examples::pipeline(&dev, two_streams, 8)?;

    println!("device:  {dev}");
    println!("streams: {} and {}", run.producer, run.consumer);
    for (i, m) in run.means.iter().enumerate() {
        println!("batch {i}: mean of x·W = {m:+.5}");
    }
    println!("consumer time: {:.3} ms", run.consumer_time.as_secs_f64() * 1e3);
    if streamdsl::trace::is_enabled() {
        println!("trace:   {}", streamdsl::trace::snapshot());
    }
    Ok(())
}
