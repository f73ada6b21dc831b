//! The CUDA C of a `#[kernel]`: its own code plus the `#[kernel(device)]` functions it calls, assembled into
//! one translation unit when it is compiled (dependencies first, each once).

use std::fmt;

use super::catalog::{cuda_type, KernelSpec};
use crate::dtype::DType;
use crate::error::{Error, Result};

/// The generated CUDA C of a kernel written with `#[kernel]`, as `name::CUDA_SOURCE`.
///
/// `Display` prints what NVRTC compiles (after the headers): the device functions the kernel calls, then the
/// kernel. An elementwise kernel is compiled once per element type `T` of its tensors (f16 and bf16 are
/// computed in f32 and rounded once).
///
/// ```
/// use streamdsl::prelude::*;
///
/// #[kernel]
/// fn axpy(a: f32, x: f32, y: f32) -> f32 {
///     a * x + y
/// }
///
/// let text = axpy::CUDA_SOURCE.to_string();
/// assert!(text.contains("__device__ __forceinline__ float axpy_scalar(float a, float x, float y)"));
/// assert!(text.contains("extern \"C\" __global__ void axpy_contiguous("));
/// assert_eq!(axpy::CUDA_SOURCE.entry_points(), ["axpy_contiguous", "axpy_broadcast"]);
/// ```
#[derive(Debug)]
pub struct KernelSource {
    form: u8,
    name: &'static str,
    entry: &'static str,
    text: &'static str,
    deps: &'static [&'static KernelSource],
}

const ELEMENTWISE: u8 = 0;
const GRID: u8 = 1;

impl KernelSource {
    /// Used by `#[kernel]`'s expansion; not public API.
    #[doc(hidden)]
    pub const fn __new(
        form: u8,
        name: &'static str,
        entry: &'static str,
        text: &'static str,
        deps: &'static [&'static KernelSource],
    ) -> KernelSource {
        KernelSource { form, name, entry, text, deps }
    }

    /// The kernel's Rust name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// This kernel's own code, without the device functions it calls.
    pub fn own_text(&self) -> &'static str {
        self.text
    }

    /// Whether this is an elementwise kernel (compiled per element type).
    pub fn is_elementwise(&self) -> bool {
        self.form == ELEMENTWISE
    }

    /// The `extern "C" __global__` functions: `name_contiguous` and `name_broadcast` for an elementwise kernel
    /// (every tensor of the output's shape, or some broadcast), `name` for a grid kernel (`name_kernel` where
    /// CUDA already uses the name), none for a device function.
    pub fn entry_points(&self) -> Vec<String> {
        match self.form {
            ELEMENTWISE => vec![format!("{}_contiguous", self.entry), format!("{}_broadcast", self.entry)],
            GRID => vec![self.entry.to_string()],
            _ => Vec::new(),
        }
    }

    /// The device functions it calls (directly or not) in dependency order, then itself; an error if they call
    /// one another in a circle.
    pub fn text(&self) -> Result<String> {
        let mut order: Vec<&KernelSource> = Vec::new();
        let mut path: Vec<&KernelSource> = Vec::new();
        visit(self, &mut order, &mut path)?;
        let parts: Vec<&str> = order.iter().map(|s| s.text).collect();
        Ok(parts.join("\n"))
    }

    /// What NVRTC compiles for tensors of `dtype` (an elementwise kernel; the other kinds ignore it), with its
    /// entry points, cached like the built-in kernels. The name carries a hash of the text, so two kernels of
    /// one name never share a compiled module.
    ///
    /// ```
    /// use streamdsl::prelude::*;
    /// #[kernel]
    /// fn double(x: f32) -> f32 {
    ///     2.0 * x
    /// }
    /// let spec = double::CUDA_SOURCE.spec(DType::BF16)?;
    /// assert!(spec.name().starts_with("kernel.double.bf16."));
    /// assert!(spec.source().contains("typedef bf16_t T;"));
    /// # Ok::<(), streamdsl::Error>(())
    /// ```
    pub fn spec(&self, dtype: DType) -> Result<KernelSpec> {
        let text = self.text()?;
        let typedef =
            if self.form == ELEMENTWISE { format!("typedef {} T;\n", cuda_type(dtype)) } else { String::new() };
        let source = format!("#include \"kernel.cuh\"\n{typedef}\n{text}");
        let hash = fnv1a(source.as_bytes());
        let name = if self.form == ELEMENTWISE {
            format!("kernel.{}.{dtype}.{hash:016x}", self.name)
        } else {
            format!("kernel.{}.{hash:016x}", self.name)
        };
        let entries = self.entry_points();
        let entries: Vec<&str> = entries.iter().map(String::as_str).collect();
        Ok(KernelSpec::custom(&name, source, &entries))
    }
}

fn visit<'a>(s: &'a KernelSource, order: &mut Vec<&'a KernelSource>, path: &mut Vec<&'a KernelSource>) -> Result<()> {
    if order.iter().any(|o| std::ptr::eq(*o, s) || (o.name == s.name && o.text == s.text)) {
        return Ok(());
    }
    if path.iter().any(|p| std::ptr::eq(*p, s) || (p.name == s.name && p.text == s.text)) {
        let mut names: Vec<&str> = path.iter().map(|p| p.name).collect();
        names.push(s.name);
        return Err(Error::InvalidArgument {
            op: "kernel",
            reason: format!(
                "device functions call one another in a circle ({}): recursion is not supported",
                names.join(" → ")
            ),
        });
    }
    path.push(s);
    for d in s.deps {
        visit(d, order, path)?;
    }
    path.pop();
    order.push(s);
    Ok(())
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

impl fmt::Display for KernelSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "// CUDA C generated by #[kernel] from `{}`; NVRTC compiles it after kernel.cuh", self.name)?;
        if self.form == ELEMENTWISE {
            writeln!(f, "// (with `typedef <element type> T;`: float, double, f16_t or bf16_t).")?;
        }
        writeln!(f, "#include \"kernel.cuh\"")?;
        writeln!(f)?;
        match self.text() {
            Ok(text) => f.write_str(&text),
            Err(e) => write!(f, "// {e}"),
        }
    }
}
