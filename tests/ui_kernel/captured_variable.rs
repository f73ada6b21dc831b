use streamdsl::prelude::*;

fn main() -> Result<()> {
    let scale = 3.0f32;

    #[kernel]
    fn scaled(x: f32) -> f32 {
        x * scale
    }

    let _y = scaled(&ones::<f32>([4])?)?;
    Ok(())
}
