use streamdsl::prelude::*;

fn keep(_s: Stream) {}

fn main() -> Result<()> {
    let s = Stream::new(&Device::cpu())?;
    gpu_scope!(stream = &s, {
        keep(s);
    });
    Ok(())
}
