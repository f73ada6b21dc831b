use streamdsl::prelude::*;

fn main() -> Result<()> {
    let s = Stream::new(&Device::cpu())?;
    let _c = gpu_scope!(stream = s, { zeros::<i32>([4])? });
    Ok(())
}
