use streamdsl::prelude::*;

#[kernel(grid)]
fn histogram(counts: &mut [u32], values: &[f32]) {
    let i = global_index() as usize;
    counts[i] += 1;
}

fn main() {}
