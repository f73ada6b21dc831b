//! `gpu_scope!`: a `macro_rules!` front that passes this crate's path (`$crate`) to the procedural macro that
//! does the work, so the expansion names the runtime correctly however the dependency is named.

/// Runs a block with a stream as the current stream, like `with torch.cuda.stream(s):`.
///
/// ```
/// use streamdsl::prelude::*;
/// use streamdsl::gpu_scope;
///
/// let s = Stream::with_priority(&Device::cpu(), -1)?;
/// let c = gpu_scope!(stream = s, {
///     let a = randn::<f32>([10, 5])?;
///     let b = randn::<f32>([5, 10])?;
///     mm(&a, &b)?                       // enqueued on `s`
/// });
/// s.synchronize()?;
/// assert_eq!(c.shape(), &[10, 10]);
/// assert_eq!(c.producer_stream_id(), Some(s.id()));
/// # Ok::<(), streamdsl::Error>(())
/// ```
///
/// `stream = EXPR` takes a `Stream` or a `&Stream`, evaluated once and borrowed for the whole block; the
/// macro's value is the block's value. Inside the block:
///
/// - **Rewritten to the explicit-stream form** (plain Rust that names the stream):
///   unqualified calls of `randn`, `randn_with`, `zeros`, `ones`, `full` and `mm`
///   (`randn::<f32>(shape)` becomes `streamdsl::ops::randn_on::<f32>(&s, shape)`, through `$crate`, so a
///   renamed dependency works), and the tensor methods
///   `mm`, `add_scalar`, `sub_scalar`, `mul_scalar`, `div_scalar`, `mean`, `to_dtype`, `fill_` and `copy_`
///   (`a.mm(&b)` becomes `streamdsl::ops::mm_on(&s, &a, &b)`).
/// - **Run on the stream without being rewritten**: the stream is also made current for the block (a
///   [`Stream::scope`] guard), so everything else that uses the current stream runs on it too: the
///   methods and operators whose names std shares (`a.add(&b)`, `a.sum()`, `&a + &b`), and library code
///   called from the block that the macro cannot see.
/// - **Opting out**: a qualified path is left alone (`ops::mm(&a, &b)`, `crate::mm(..)`, `self::randn(..)`),
///   so a function of your own named like an op is called as written when you qualify it; likewise a
///   method of your own type named like a tensor method, called as a path (`Stats::mean(&stats)`).
/// - **Closures, async blocks and nested items** are not rewritten: an op inside them takes the stream that
///   is current when it runs, not when the closure was created.
///
/// The previous current stream comes back on every exit from the block: its end, `return`, `?`, `break`
/// out of an enclosing loop, and panics. Scopes nest; the innermost wins. `.await` inside the block is a
/// compile error: the current stream is per thread.
///
/// Misuse is a compile error at the offending tokens:
///
/// ```compile_fail
/// # use streamdsl::prelude::*;
/// # let s = Stream::new(&Device::cpu()).unwrap();
/// // error: unknown key `steam`, did you mean `stream`? expected `stream`
/// let c = gpu_scope!(steam = s, { zeros::<f32>([2]) });
/// ```
///
/// ```compile_fail
/// # use streamdsl::prelude::*;
/// // error: expected a streamdsl `Stream`, found `{integer}`
/// let c = gpu_scope!(stream = 42, { zeros::<f32>([2]) });
/// ```
///
/// ```compile_fail
/// # use streamdsl::prelude::*;
/// # let s = Stream::new(&Device::cpu()).unwrap();
/// // error[E0505]: cannot move out of `s` because it is borrowed
/// gpu_scope!(stream = s, { drop(s); });
/// ```
///
/// [`Stream::scope`]: crate::Stream::scope
///
/// ## In evcxr and rust-analyzer
///
/// `let c = gpu_scope!(stream = s, { … });` needs no type annotation in an evcxr notebook. evcxr learns the
/// types of a cell's variables from rust-analyzer, which expands `macro_rules!` macros but not procedural
/// ones; so this front, a `macro_rules!` macro, finds the block at the end of its input and lets an analyser
/// see it as written (its value has the type of the scope's value), while the compiler sees only the
/// procedural macro's expansion. The choice is a `cfg(rust_analyzer)` (rust-analyzer sets it, rustc does not)
/// inside a small module of the expansion: nothing of it exists at run time, the block is type-checked and
/// borrow-checked once, and every diagnostic comes from the procedural macro's expansion, as before.
#[macro_export]
macro_rules! gpu_scope {
    // The block at the end of the input (an optional trailing comma after it): hand it to the analyser.
    (@__streamdsl_find [$($input:tt)*] , { $($body:tt)* } $(,)?) => {{
        #[allow(unexpected_cfgs)]
        mod __streamdsl_gpu_scope {
            #[cfg(not(rust_analyzer))]
            pub(crate) use $crate::__gpu_scope_compiled as expand;
            #[cfg(rust_analyzer)]
            pub(crate) use $crate::__gpu_scope_analysed as expand;
        }
        __streamdsl_gpu_scope::expand!([$($input)*] { $($body)* })
    }};
    // Not there yet: drop one token and look again (the stream expression is a few tokens).
    (@__streamdsl_find [$($input:tt)*] $skip:tt $($rest:tt)*) => {
        $crate::gpu_scope!(@__streamdsl_find [$($input)*] $($rest)*)
    };
    // No block at the end: the procedural macro says what is wrong.
    (@__streamdsl_find [$($input:tt)*]) => {
        $crate::__private::gpu_scope!([$crate] $($input)*)
    };
    ($($input:tt)*) => {
        $crate::gpu_scope!(@__streamdsl_find [$($input)*] $($input)*)
    };
}

/// What the compiler sees of `gpu_scope!`: the procedural macro on the whole input.
#[doc(hidden)]
#[macro_export]
macro_rules! __gpu_scope_compiled {
    ([$($input:tt)*] $body:tt) => {
        $crate::__private::gpu_scope!([$crate] $($input)*)
    };
}

/// What rust-analyzer sees of `gpu_scope!` (for evcxr's type inference): the user's block as written.
#[doc(hidden)]
#[macro_export]
macro_rules! __gpu_scope_analysed {
    ([$($input:tt)*] $body:tt) => {
        $body
    };
}
