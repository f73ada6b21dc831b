use streamdsl::prelude::*;

fn main() -> Result<()> {
    let s = Stream::new(&Device::cpu())?;
    let _c = gpu_scope!(stream = s, device = 0, { zeros::<f32>([2]) });
    Ok(())
}
