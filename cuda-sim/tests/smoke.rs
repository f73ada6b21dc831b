mod common;
use common::*;

const SAXPY: &str = r#"
extern "C" __global__ void saxpy(float a, const float* __restrict__ x, float* y, unsigned long long n) {
    for (unsigned long long i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x)
        y[i] = a * x[i] + y[i];
}
"#;

#[test]
fn saxpy_runs() {
    setup();
    let s = stream(0);
    let n = 1000usize;
    let x: Vec<f32> = (0..n).map(|i| i as f32).collect();
    let y: Vec<f32> = vec![1.0; n];
    let (dx, dy) = (alloc(n * 4, s), alloc(n * 4, s));
    upload(dx, &x, s);
    upload(dy, &y, s);
    let f = function(module(SAXPY), "saxpy");
    let (mut a, mut px, mut py, mut nn) = (2.0f32, dx, dy, n as u64);
    assert_eq!(launch(f, (3, 1, 1), 128, s, &mut [arg(&mut a), arg(&mut px), arg(&mut py), arg(&mut nn)]), OK);
    let out: Vec<f32> = download(dy, n, s);
    assert_eq!(cuStreamSynchronize(s), OK);
    for (i, v) in out.iter().enumerate() {
        assert_eq!(*v, 2.0 * i as f32 + 1.0);
    }
}
