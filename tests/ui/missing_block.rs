use streamdsl::prelude::*;

fn main() -> Result<()> {
    let s = Stream::new(&Device::cpu())?;
    gpu_scope!(stream = s);
    Ok(())
}
