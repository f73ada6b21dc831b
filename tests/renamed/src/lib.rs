//! `gpu_scope!` with streamdsl renamed to `sdl`: its expansion names the runtime through `$crate`, so there is
//! no `::streamdsl` in this crate's namespace to find and the test compiles only if the macro does that right.

#[cfg(test)]
mod tests {
    use sdl::prelude::*;

    #[test]
    fn gpu_scope_names_the_runtime_through_its_crate_path() -> sdl::Result<()> {
        let s = Stream::new(&Device::cpu())?;
        let c = gpu_scope!(stream = s, {
            let a = ones::<f32>([2, 3])?;
            let b = full::<f32>([3, 2], 2.0)?;
            a.mm(&b)?.add_scalar(1.0)?
        });
        assert_eq!(c.producer_stream_id(), Some(s.id()));
        assert_eq!(c.to_vec()?, vec![7.0; 4]);
        Ok(())
    }

    // `#[kernel]` cannot see `$crate` (it is an attribute): `crate = sdl` names the runtime.
    #[kernel(crate = sdl)]
    fn twice_plus(x: f32, y: f32) -> f32 {
        2.0 * x + y
    }

    #[kernel(grid, crate = "sdl")]
    fn iota(out: &mut [f64]) {
        let i = global_index() as usize;
        out[i] = i as f64;
    }

    #[test]
    fn kernels_name_the_runtime_through_their_crate_option() -> sdl::Result<()> {
        let s = Stream::new(&Device::cpu())?;
        let y = gpu_scope!(stream = s, { twice_plus(&ones::<f32>([3])?, 0.5)? });
        assert_eq!(y.to_vec()?, vec![2.5; 3]);
        let mut t = zeros::<f64>([4])?;
        iota(&mut t).on(&s).launch(4)?;
        assert_eq!(t.to_vec()?, vec![0.0, 1.0, 2.0, 3.0]);
        Ok(())
    }

    // Every op the rewrite can produce exists under the renamed path too.
    sdl::__private::check_rewrite_targets!([sdl]);
}
