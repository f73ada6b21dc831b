//! `gpu_scope!` at run time: where ops run, what is restored, and how scopes compose.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use streamdsl::prelude::*;
use streamdsl_tests::{block, Rendezvous};

/// The device implicit ops outside a scope use, so these tests run on the CPU and, on the simulated driver or a
/// GPU (`STREAMDSL_DEVICE=cuda`), on CUDA.
fn dev() -> Device {
    Device::default()
}

#[test]
fn rewritten_and_current_stream_ops_run_on_the_scope_stream() -> Result<()> {
    let s = Stream::new(&dev())?;
    let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], [2, 2], &dev())?;
    let outs = gpu_scope!(stream = s, {
        let a = randn::<f32>([2, 2])?; // rewritten free functions
        let o = ones::<f32>([2, 2])?;
        let f = full([2, 2], 2.0f32)?;
        let m = mm(&a, &o)?;
        let mm_method = x.mm(&f)?; // rewritten methods
        let scaled = x.mul_scalar(3.0)?;
        let mean = x.mean()?;
        let half = x.to_dtype::<f16>()?;
        let sum = x.add(&f)?; // runs on the current stream: the scope's
        let op = (&x * &f)?;
        let total = x.sum()?;
        vec![a, o, f, m, mm_method, scaled, mean, sum, op, total, half.to_dtype::<f32>()?]
    });
    for (i, t) in outs.iter().enumerate() {
        assert_eq!(t.producer_stream_id(), Some(s.id()), "output {i} ran on another stream");
    }
    assert_eq!(outs[4].to_vec()?, vec![6.0, 6.0, 14.0, 14.0]);
    assert_eq!(outs[5].to_vec()?, vec![3.0, 6.0, 9.0, 12.0]);
    assert_eq!(outs[6].item()?, 2.5);
    assert_eq!(outs[9].item()?, 10.0);
    // Outside the scope ops go back to the default stream.
    let after = ones::<f32>([1])?;
    assert_eq!(after.producer_stream_id(), Some(dev().default_stream().id()));
    Ok(())
}

#[test]
fn in_place_methods_are_rewritten() -> Result<()> {
    let s = Stream::new(&dev())?;
    let t = zeros::<f64>([3])?;
    let src = full([3], 4.0f64)?;
    gpu_scope!(stream = &s, {
        t.fill_(1.0)?;
        assert_eq!(t.producer_stream_id(), Some(s.id()));
        t.copy_(&src)?;
    });
    assert_eq!(t.to_vec()?, vec![4.0; 3]);
    Ok(())
}

#[test]
fn qualified_paths_opt_out_of_the_rewrite_but_still_use_the_scope() -> Result<()> {
    mod mine {
        pub fn mm(a: usize, b: usize) -> usize {
            a * b // a user function named like an op
        }
    }
    struct Stats(Vec<f64>);
    impl Stats {
        fn mean(&self) -> f64 {
            self.0.iter().sum::<f64>() / self.0.len() as f64 // a user method named like a tensor method
        }
    }
    let stats = Stats(vec![1.0, 2.0, 6.0]);
    let s = Stream::new(&dev())?;
    let (n, m, t) = gpu_scope!(stream = s, {
        let n = mine::mm(6, 7); // qualified: called as written
        let m = Stats::mean(&stats); // a method called as a path: not rewritten
        let t = ops::ones::<f32>([2])?; // qualified streamdsl op: the current stream, i.e. the scope's
        (n, m, t)
    });
    assert_eq!(n, 42);
    assert_eq!(m, 3.0);
    assert_eq!(t.producer_stream_id(), Some(s.id()));
    Ok(())
}

#[test]
fn nested_scopes_inner_wins_and_outer_returns() -> Result<()> {
    let (a, b) = (Stream::new(&dev())?, Stream::new(&dev())?);
    let (x, y, z) = gpu_scope!(stream = a, {
        let x = zeros::<f32>([1])?.add_scalar(1.0)?;
        let y = gpu_scope!(stream = b, { ones::<f32>([1])? });
        let z = ones::<f32>([1])?;
        assert_eq!(Stream::current(&dev()), a);
        (x, y, z)
    });
    assert_eq!(x.producer_stream_id(), Some(a.id()));
    assert_eq!(y.producer_stream_id(), Some(b.id()));
    assert_eq!(z.producer_stream_id(), Some(a.id()));
    assert_eq!(Stream::current(&dev()), dev().default_stream());
    Ok(())
}

fn early_return(s: &Stream, bail: bool) -> Result<u32> {
    gpu_scope!(stream = s, {
        if bail {
            return Ok(1);
        }
    });
    Ok(2)
}

fn question_mark(s: &Stream) -> Result<Tensor<f32>> {
    gpu_scope!(stream = s, {
        let a = ones::<f32>([2, 3])?;
        let b = ones::<f32>([2, 3])?;
        let c = mm(&a, &b)?; // shape mismatch: `?` leaves the scope
        Ok(c)
    })
}

#[test]
fn every_exit_path_restores_the_previous_stream() -> Result<()> {
    let d = dev();
    let s = Stream::new(&d)?;
    assert_eq!(early_return(&s, true)?, 1);
    assert_eq!(Stream::current(&d), d.default_stream());
    assert_eq!(early_return(&s, false)?, 2);
    assert!(matches!(question_mark(&s), Err(Error::ShapeMismatch { .. })));
    assert_eq!(Stream::current(&d), d.default_stream());
    for i in 0..5 {
        gpu_scope!(stream = s, {
            if i == 2 {
                break;
            }
            if i == 0 {
                continue;
            }
        });
    }
    assert_eq!(Stream::current(&d), d.default_stream());
    let r = catch_unwind(AssertUnwindSafe(|| {
        gpu_scope!(stream = s, {
            panic!("inside");
        })
    }));
    assert!(r.is_err());
    assert_eq!(Stream::current(&d), d.default_stream());
    Ok(())
}

#[test]
fn works_in_closures_and_loops_and_evaluates_the_stream_once() -> Result<()> {
    let d = dev();
    let streams: Vec<Stream> = (0..3).map(|_| Stream::new(&d)).collect::<Result<_>>()?;
    let mut evaluated = 0;
    let mut make = || -> Result<Tensor<f32>> {
        gpu_scope!(
            stream = {
                evaluated += 1;
                &streams[1]
            },
            { full([2], 5.0f32) }
        )
    };
    let t = make()?;
    assert_eq!(evaluated, 1);
    assert_eq!(t.producer_stream_id(), Some(streams[1].id()));
    for s in &streams {
        let t = gpu_scope!(stream = s, { zeros::<f32>([1])?.add_scalar(1.0)? });
        assert_eq!(t.producer_stream_id(), Some(s.id()));
    }
    Ok(())
}

#[test]
fn closures_take_the_stream_current_when_they_run() -> Result<()> {
    let (a, b) = (Stream::new(&dev())?, Stream::new(&dev())?);
    let make = gpu_scope!(stream = a, { || ones::<f32>([1]) });
    let t = gpu_scope!(stream = b, { make()? });
    assert_eq!(t.producer_stream_id(), Some(b.id()), "resolved when enqueued, not when created");
    Ok(())
}

#[test]
fn two_scopes_on_two_streams_overlap() -> Result<()> {
    let d = dev();
    let (a, b) = (Stream::new(&d)?, Stream::new(&d)?);
    let (ga, gb) = (block(&a), block(&b));
    let t0 = Instant::now();
    let x = gpu_scope!(stream = a, { randn::<f32>([128, 128])?.mm(&ones::<f32>([128, 128])?)? });
    let y = gpu_scope!(stream = b, { randn::<f32>([128, 128])?.mm(&ones::<f32>([128, 128])?)? });
    // Both streams are held: neither scope blocked the host.
    assert!(t0.elapsed() < Duration::from_millis(500));
    assert!(!x.is_ready() && !y.is_ready());
    let meeting = Rendezvous::new(2);
    let met = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    for s in [&a, &b] {
        let (meeting, met) = (meeting.clone(), met.clone());
        gpu_scope!(stream = s, {
            s.launch_host_func(move || {
                let both = meeting.meet();
                met.lock().unwrap().push(both);
            });
        });
    }
    ga.open();
    gb.open();
    a.synchronize()?;
    b.synchronize()?;
    assert_eq!(*met.lock().unwrap(), vec![true, true], "the scopes' work did not run at the same time");
    assert_eq!(x.producer_stream_id(), Some(a.id()));
    assert_eq!(y.producer_stream_id(), Some(b.id()));
    Ok(())
}

/// Every function the macro's rewrite tables name exists in `streamdsl::ops`: a missing one is a compile error
/// here, not a confusing one in a user's scope.
mod rewrite_targets {
    streamdsl::__private::check_rewrite_targets!([streamdsl]);
}

fn pick(streams: &[Stream], first: bool, _unused: [u8; 2]) -> &Stream {
    if first {
        &streams[0]
    } else {
        &streams[1]
    }
}

/// A block whose type is `!`: it always leaves the function.
fn diverges(s: &Stream) -> Result<u32> {
    gpu_scope!(stream = s, {
        let seven = 7;
        if seven > 0 {
            return Ok(seven);
        }
        unreachable!("seven is positive")
    })
}

/// The `macro_rules!` front looks for the block at the end of the input (so that rust-analyzer can type it, see
/// `gpu_scope!`'s docs) whatever the stream expression holds: commas and braces inside it, a trailing comma,
/// many tokens; moved values and diverging blocks behave as plain blocks.
#[test]
fn the_front_finds_the_block_after_any_stream_expression() -> Result<()> {
    let d = dev();
    let streams = [Stream::new(&d)?, Stream::new(&d)?];
    let on_second = gpu_scope!(
        stream = pick(
            &streams,
            {
                let one = 1;
                one + one == 3
            },
            [0, 1]
        ),
        { ones::<f32>([2])? },
    );
    assert_eq!(on_second.producer_stream_id(), Some(streams[1].id()));
    let long = gpu_scope!(
        stream =
            pick(&streams, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12].iter().sum::<i32>() == 78 && 1 + 2 + 3 == 6, [1, 2]),
        { zeros::<f32>([3])? }
    );
    assert_eq!(long.shape(), &[3]);
    let owned = vec![1.0f32, 2.0, 3.0];
    let moved = gpu_scope!(stream = &streams[0], { Tensor::from_vec(owned, [3], &d)? }); // `owned` moves in
    assert_eq!(moved.to_vec()?, [1.0, 2.0, 3.0]);
    assert_eq!(diverges(&streams[0])?, 7);
    assert_eq!(Stream::current(&d), d.default_stream());
    gpu_scope!(stream = streams[1], {});
    Ok(())
}
