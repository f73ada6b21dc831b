use streamdsl::prelude::*;

#[kernel]
fn blend(x: f32, weight: f64) -> f32 {
    x * weight
}

fn main() {}
