use streamdsl::prelude::*;

#[kernel]
fn safe_sqrt(x: f32) -> f32 {
    x.checked_sqrt().unwrap()
}

fn main() {}
