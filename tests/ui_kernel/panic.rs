use streamdsl::prelude::*;

#[kernel(grid)]
fn checked_copy(out: &mut [f32], inp: &[f32]) {
    let i = global_index() as usize;
    if i >= inp.len() {
        panic!("index {} out of range", i);
    }
    out[i] = inp[i];
}

fn main() {}
