use streamdsl::prelude::*;

fn main() {
    let _c = gpu_scope!({ zeros::<f32>([2]) });
}
