use streamdsl::prelude::*;

#[kernel(grid)]
fn clear(data: &[f32]) {
    let i = global_index() as usize;
    data[i] = 0.0;
}

fn main() {}
