use streamdsl::prelude::*;

#[kernel]
fn double(x: f32) -> f32 {
    x * 2
}

fn main() {}
