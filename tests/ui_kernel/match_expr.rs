use streamdsl::prelude::*;

#[kernel]
fn step(x: f32, mode: u32) -> f32 {
    match mode {
        0 => x,
        _ => -x,
    }
}

fn main() {}
