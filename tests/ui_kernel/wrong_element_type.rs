use streamdsl::prelude::*;

#[kernel]
fn relu(x: f32) -> f32 {
    x.max(0.0)
}

fn main() -> Result<()> {
    let x = ones::<f64>([4])?;
    let _y = relu(&x)?;
    Ok(())
}
