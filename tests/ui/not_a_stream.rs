use streamdsl::prelude::*;

fn main() {
    let dev = Device::cpu();
    let _c = gpu_scope!(stream = dev, { zeros::<f32>([2]) });
}
