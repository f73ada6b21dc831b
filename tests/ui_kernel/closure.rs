use streamdsl::prelude::*;

#[kernel]
fn scaled(x: f32) -> f32 {
    let double = |v: f32| v * 2.0;
    double(x)
}

fn main() -> Result<()> {
    let x = ones::<f32>([4])?;
    let _y = scaled(&x)?; // still type-checks: one mistake, one error
    Ok(())
}
