use streamdsl::prelude::*;

fn main() -> Result<()> {
    let s = Stream::new(&Device::cpu())?;
    let _c = gpu_scope!(stream = s, {
        let a = randn::<f32>([4, 4])?;
        let b = randn::<f16>([4, 4])?;
        mm(&a, &b)?
    });
    Ok(())
}
