use streamdsl::prelude::*;

async fn load() -> Result<Tensor<f32>> {
    zeros::<f32>([2])
}

async fn run(s: &Stream) -> Result<Tensor<f32>> {
    gpu_scope!(stream = s, {
        let a = load().await?;
        a.mul_scalar(2.0)
    })
}

fn main() {
    let _ = run;
}
