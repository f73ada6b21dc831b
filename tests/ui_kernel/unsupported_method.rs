use streamdsl::prelude::*;

#[kernel]
fn cube_root(x: f32) -> f32 {
    x.cbrt()
}

fn main() {}
