use streamdsl::prelude::*;

#[kernel(grd)]
fn copy(out: &mut [f32], inp: &[f32]) {
    let i = global_index() as usize;
    out[i] = inp[i];
}

fn main() {}
