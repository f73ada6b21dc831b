use streamdsl::prelude::*;

fn main() -> Result<()> {
    let s = Stream::new(&Device::cpu())?;
    let v = vec![1.0f32, 2.0];
    let _c = gpu_scope!(stream = s, { v.mean() });
    Ok(())
}
