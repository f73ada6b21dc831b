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

    // Every op the rewrite can produce exists under the renamed path too.
    sdl::__private::check_rewrite_targets!([sdl]);
}
