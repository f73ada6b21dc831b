use streamdsl::prelude::*;

fn main() -> Result<()> {
    let a = Stream::new(&Device::cpu())?;
    let b = Stream::new(&Device::cpu())?;
    let _c = gpu_scope!(stream = a, stream = b, { zeros::<f32>([2]) });
    Ok(())
}
