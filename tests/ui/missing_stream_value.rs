use streamdsl::prelude::*;

fn main() {
    let _c = gpu_scope!(stream = , { zeros::<f32>([2]) });
}
