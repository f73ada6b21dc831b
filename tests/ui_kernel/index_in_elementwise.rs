use streamdsl::prelude::*;

#[kernel]
fn ramp(x: f32) -> f32 {
    x + global_index() as f32
}

fn main() {}
