//! Kernels written in Rust with `#[kernel]`: an elementwise `gelu` and a grid `transpose`, run in a
//! `gpu_scope!` on the default device (the CPU backend where no GPU is present), and the CUDA C generated for
//! `gelu`.
//!
//! ```sh
//! cargo run --release --example custom_kernel
//! ```

use streamdsl::prelude::*;

/// GELU (tanh approximation), elementwise: one output element from one input element.
#[kernel]
fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + (0.797_884_6 * (x + 0.044_715 * x * x * x)).tanh())
}

/// A matrix transpose over a 1-D index space: `out` (cols × rows) from `inp` (rows × cols).
#[kernel(grid)]
fn transpose(out: &mut [f32], inp: &[f32], rows: u32, cols: u32) {
    let i = global_index();
    if i < rows * cols {
        out[((i % cols) * rows + i / cols) as usize] = inp[i as usize];
    }
}

fn main() -> Result<()> {
    let dev = Device::default();
    let s = Stream::new(&dev)?;
    let (rows, cols) = (1024u32, 768u32);
    let (x, y) = gpu_scope!(stream = s, {
        let x = randn::<f32>([rows as usize, cols as usize])?;
        let mut t = zeros::<f32>([cols as usize, rows as usize])?;
        transpose(&mut t, &x, rows, cols).launch((rows * cols) as usize)?; // enqueued on `s`
        let y = gelu(&t)?; // a tensor op, on `s`
        (x, y)
    });
    s.synchronize()?;
    let (xv, yv) = (x.to_vec()?, y.to_vec()?);
    // y[c][r] = gelu(x[r][c]), bit for bit the plain-Rust formula with the portable tanh (on either backend).
    let reference = |x: f32| 0.5 * x * (1.0 + streamdsl::math::tanh_f32(0.797_884_6 * (x + 0.044_715 * x * x * x)));
    let (rows, cols) = (rows as usize, cols as usize);
    let mismatches =
        (0..rows * cols).filter(|&i| yv[(i % cols) * rows + i / cols].to_bits() != reference(xv[i]).to_bits()).count();
    assert_eq!(mismatches, 0, "elements that differ from the reference");
    let (r, c) = (3, 5);
    println!("device:    {dev}");
    println!("stream:    {s:?}");
    println!("x:         {:?}", x.shape());
    println!("gelu(xᵀ):  {:?}", y.shape());
    println!("y[5][3]:   {:.6} = gelu(x[3][5] = {:.6})", yv[c * rows + r], xv[r * cols + c]);
    println!("checked:   all {} elements equal the plain-Rust reference, bit for bit", rows * cols);
    println!("\n// ---- gelu::CUDA_SOURCE ----\n{}", gelu::CUDA_SOURCE);
    Ok(())
}
