//! Support crate for the runnable examples in this folder: the pipeline of the `multistream` example, also run
//! by the trace tests.

use streamdsl::prelude::*;

/// What [`pipeline`] produced: the mean of each batch's product, and the two streams it used (the same stream
/// twice when it ran on one).
pub struct Pipeline {
    /// `mean(x_i · W)` per batch.
    pub means: Vec<f32>,
    /// The stream that made the batches.
    pub producer: Stream,
    /// The stream that multiplied them.
    pub consumer: Stream,
    /// The consumer's time from its first op to its last, measured with timed events.
    pub consumer_time: std::time::Duration,
}

/// The `multistream` example's work: a producer stream fills `batches` batches, a high-priority consumer
/// multiplies each by a weight matrix as soon as that batch's event completes. With `two_streams == false`
/// both sides run on one stream, in order. Returns once the consumer has drained.
///
/// ```
/// let dev = streamdsl::Device::cpu();
/// let run = streamdsl_examples::pipeline(&dev, true, 2)?;
/// assert_eq!(run.means.len(), 2);
/// assert_ne!(run.producer, run.consumer);
/// # Ok::<(), streamdsl::Error>(())
/// ```
pub fn pipeline(dev: &Device, two_streams: bool, batches: usize) -> Result<Pipeline> {
    let consumer = Stream::with_priority(dev, -1)?;
    let producer = if two_streams { Stream::new(dev)? } else { consumer.clone() };
    let (start, end) = (Event::timed(dev), Event::timed(dev));
    consumer.record(&start)?;
    let weights = gpu_scope!(stream = consumer, { randn_with::<f32>([256, 256], &Generator::new(7))? });
    let mut outputs = Vec::new();
    for batch in 0..batches {
        let (x, ready) = gpu_scope!(stream = producer, {
            let x = randn_with::<f32>([512, 256], &Generator::new(batch as u64))?.mul_scalar(1.0 + batch as f64)?;
            (x, producer.record_event())
        });
        // The consumer waits for this batch only; the producer moves on to the next one meanwhile.
        // (Tensor ops would wait by themselves; the explicit event shows the torch-style API.)
        consumer.wait_event(&ready)?;
        outputs.push(gpu_scope!(stream = consumer, { x.mm(&weights)?.mean()? }));
    }
    consumer.record(&end)?;
    consumer.synchronize()?;
    let means = outputs.iter().map(Tensor::item).collect::<Result<Vec<f32>>>()?;
    Ok(Pipeline { means, producer, consumer, consumer_time: start.elapsed_time(&end)? })
}
