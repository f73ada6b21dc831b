use streamdsl::prelude::*;

#[kernel]
fn smooth(x: f32) -> f32 {
    let mut window: Vec<f32> = Vec::new();
    x
}

fn main() -> Result<()> {
    let _y = smooth(&ones::<f32>([4])?)?;
    Ok(())
}
