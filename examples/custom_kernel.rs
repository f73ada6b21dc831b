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
    // y[c][r] = gelu(x[r][c])
    let (r, c) = (3usize, 5usize);
    let expected = gelu::__streamdsl_cpu(xv[r * cols as usize + c]);
    assert_eq!(yv[c * rows as usize + r].to_bits(), expected.to_bits());
    println!("device:  {dev}");
    println!("stream:  {s:?}");
    println!("x:       {:?}", x.shape());
    println!(
        "gelu(xᵀ): {:?}, y[5][3] = {:.6} = gelu(x[3][5] = {:.6})",
        y.shape(),
        yv[c * rows as usize + r],
        xv[r * cols as usize + c]
    );
    println!("\n// ---- gelu::CUDA_SOURCE ----\n{}", gelu::CUDA_SOURCE);
    Ok(())
}
