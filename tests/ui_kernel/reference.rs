use streamdsl::prelude::*;

#[kernel]
fn first(x: f32) -> f32 {
    let r = &x;
    x
}

fn main() {}
