//! The built-in kernel specialisations: which `.cu` file, with which defines, for which dtype and tiles.

use std::borrow::Cow;
use std::fmt;

use crate::dtype::DType;

/// One specialisation of a kernel source: what NVRTC compiles into one module.
///
/// ```
/// use streamdsl::{jit::KernelSpec, DType};
/// let spec = KernelSpec::randn(DType::BF16);
/// assert_eq!(spec.name(), "randn.bf16");
/// assert!(spec.source().starts_with("#define OUT_T bf16_t"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelSpec {
    name: String,
    file: Cow<'static, str>,
    text: Cow<'static, str>,
    defines: Vec<(String, String)>,
    entry_points: Vec<String>,
}

/// Tile parameters of the `mm` kernels: block tile `bm × bn × bk`, and `tm × tn` the register block of one
/// thread (the SIMT `mm_tiled`, f32/f64) or of one warp (the tensor-core `mm_mma`, f16/bf16, whose `bk` is
/// 32 and whose warp tile is a multiple of 16 × 16).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MmTile {
    /// Rows of C per block.
    pub bm: u32,
    /// Columns of C per block.
    pub bn: u32,
    /// Depth of one shared-memory stage.
    pub bk: u32,
    /// Rows per thread (SIMT) or per warp (tensor cores).
    pub tm: u32,
    /// Columns per thread (SIMT) or per warp (tensor cores).
    pub tn: u32,
}

impl MmTile {
    /// Large SIMT tiles for big f32 products.
    pub const LARGE: MmTile = MmTile { bm: 128, bn: 128, bk: 8, tm: 8, tn: 8 };
    /// Small SIMT tiles: small products (more blocks) and f64 (register pressure).
    pub const SMALL: MmTile = MmTile { bm: 64, bn: 64, bk: 8, tm: 4, tn: 4 };
    /// Large tensor-core tiles for big f16/bf16 products: 8 warps of 64 × 32.
    pub const MMA_LARGE: MmTile = MmTile { bm: 128, bn: 128, bk: 32, tm: 64, tn: 32 };
    /// Small tensor-core tiles: 4 warps of 32 × 32.
    pub const MMA_SMALL: MmTile = MmTile { bm: 64, bn: 64, bk: 32, tm: 32, tn: 32 };

    /// Threads per block of a SIMT tile.
    pub fn threads(&self) -> u32 {
        (self.bm / self.tm) * (self.bn / self.tn)
    }

    /// Threads per block of this tile in the kernel `dtype` uses: one per `tm × tn` block for f32/f64, a
    /// warp per `tm × tn` block for f16/bf16.
    ///
    /// ```
    /// use streamdsl::{jit::MmTile, DType};
    /// assert_eq!(MmTile::LARGE.threads_for(DType::F32), 256);
    /// assert_eq!(MmTile::MMA_LARGE.threads_for(DType::BF16), 256);
    /// assert_eq!(MmTile::MMA_SMALL.threads_for(DType::F16), 128);
    /// ```
    pub fn threads_for(&self, dtype: DType) -> u32 {
        match dtype {
            DType::F16 | DType::BF16 => self.threads() * 32,
            DType::F32 | DType::F64 => self.threads(),
        }
    }

    /// The tile used for an `m × n` output of `dtype`: large tiles where they still give enough blocks to fill
    /// the device (~132 SMs on an H100), else small ones; f64 always small (register pressure).
    ///
    /// ```
    /// use streamdsl::{jit::MmTile, DType};
    /// assert_eq!(MmTile::for_shape(DType::F32, 4096, 4096), MmTile::LARGE);
    /// assert_eq!(MmTile::for_shape(DType::F32, 100, 100), MmTile::SMALL);
    /// assert_eq!(MmTile::for_shape(DType::F64, 4096, 4096), MmTile::SMALL);
    /// assert_eq!(MmTile::for_shape(DType::BF16, 8192, 8192), MmTile::MMA_LARGE);
    /// assert_eq!(MmTile::for_shape(DType::F16, 1024, 1024), MmTile::MMA_SMALL);
    /// ```
    pub fn for_shape(dtype: DType, m: usize, n: usize) -> MmTile {
        let many = m.div_ceil(128) * n.div_ceil(128) >= 128;
        match dtype {
            DType::F32 if many => MmTile::LARGE,
            DType::F32 | DType::F64 => MmTile::SMALL,
            DType::F16 | DType::BF16 if many => MmTile::MMA_LARGE,
            DType::F16 | DType::BF16 => MmTile::MMA_SMALL,
        }
    }

    /// Whether this is a tensor-core tile (`bk` = 32, warp tile a multiple of 16 × 16 with an even number of
    /// 8-column tiles, whole warps dividing the block tile).
    fn is_mma(&self) -> bool {
        self.bk == 32
            && self.tm > 0
            && self.tn > 0
            && self.tm.is_multiple_of(16)
            && self.tn.is_multiple_of(16)
            && self.bm.is_multiple_of(self.tm)
            && self.bn.is_multiple_of(self.tn)
    }
}

impl fmt::Display for MmTile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}x{}.{}x{}", self.bm, self.bn, self.bk, self.tm, self.tn)
    }
}

/// The CUDA C name of an element type.
pub fn cuda_type(dtype: DType) -> &'static str {
    match dtype {
        DType::F32 => "float",
        DType::F64 => "double",
        DType::F16 => "f16_t",
        DType::BF16 => "bf16_t",
    }
}

const ALL: [DType; 4] = [DType::F32, DType::F64, DType::F16, DType::BF16];

/// Threads per block of the reduction kernels.
pub const REDUCE_BLOCK: u32 = crate::math::SUM_LANES as u32;

impl KernelSpec {
    fn new(
        name: String,
        file: &'static str,
        text: &'static str,
        defines: Vec<(&str, String)>,
        entry_points: &[&str],
    ) -> Self {
        KernelSpec {
            name,
            file: file.into(),
            text: text.into(),
            defines: defines.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
            entry_points: entry_points.iter().map(|e| e.to_string()).collect(),
        }
    }

    /// A kernel of your own: CUDA C `source` (which may include `common.cuh` and `philox.cuh`), compiled
    /// and cached like the built-in ones. `entry_points` are its `extern "C" __global__` functions.
    ///
    /// ```
    /// use streamdsl::jit::KernelSpec;
    /// let src = r#"#include "common.cuh"
    /// extern "C" __global__ void scale(float* x, u64 n) { FOR_EACH_INDEX(i, n) x[i] *= 2.0f; }"#;
    /// let spec = KernelSpec::custom("scale", src, &["scale"]);
    /// assert!(spec.source().contains("typedef unsigned long long u64;"));
    /// ```
    pub fn custom(name: &str, source: impl Into<String>, entry_points: &[&str]) -> KernelSpec {
        KernelSpec {
            name: name.to_string(),
            file: format!("{name}.cu").into(),
            text: Cow::Owned(source.into()),
            defines: Vec::new(),
            entry_points: entry_points.iter().map(|e| e.to_string()).collect(),
        }
    }

    /// `randn` and `philox_bits` writing `dtype`.
    pub fn randn(dtype: DType) -> KernelSpec {
        let wide = if dtype == DType::F64 { "1" } else { "0" };
        let defines = vec![("OUT_T", cuda_type(dtype).to_string()), ("WIDE", wide.to_string())];
        Self::new(format!("randn.{dtype}"), "randn.cu", streamdsl_kernels::RANDN, defines, &["randn", "philox_bits"])
    }

    /// The elementwise kernels of `dtype`.
    pub fn elementwise(dtype: DType) -> KernelSpec {
        Self::new(
            format!("elementwise.{dtype}"),
            "elementwise.cu",
            streamdsl_kernels::ELEMENTWISE,
            vec![("T", cuda_type(dtype).to_string())],
            &["binary_same", "binary_broadcast", "scalar_op", "fill", "copy"],
        )
    }

    /// Conversion from `from` to `to`.
    pub fn convert(from: DType, to: DType) -> KernelSpec {
        Self::new(
            format!("convert.{from}.{to}"),
            "convert.cu",
            streamdsl_kernels::CONVERT,
            vec![("IN_T", cuda_type(from).to_string()), ("OUT_T", cuda_type(to).to_string())],
            &["convert"],
        )
    }

    /// The sum of `dtype` along the fixed tree (see `reduce.cu`): one launch per level, then `sum_write`.
    pub fn reduce(dtype: DType) -> KernelSpec {
        Self::new(
            format!("reduce.{dtype}"),
            "reduce.cu",
            streamdsl_kernels::REDUCE,
            vec![("T", cuda_type(dtype).to_string()), ("BLOCK", REDUCE_BLOCK.to_string())],
            &["sum_chunks", "sum_chunks_f64", "sum_write"],
        )
    }

    /// The matrix product of `dtype`: `mm_tiled` with `tile` for f32/f64, `mm_mma` (tensor cores) for f16/bf16,
    /// whose tile must be a tensor-core one ([`MmTile::MMA_LARGE`], [`MmTile::MMA_SMALL`]; any other selects
    /// `MMA_SMALL`).
    pub fn mm(dtype: DType, tile: MmTile) -> KernelSpec {
        let t = cuda_type(dtype).to_string();
        let dims = |tile: MmTile| {
            vec![
                ("BM", tile.bm.to_string()),
                ("BN", tile.bn.to_string()),
                ("BK", tile.bk.to_string()),
                ("TM", tile.tm.to_string()),
                ("TN", tile.tn.to_string()),
            ]
        };
        match dtype {
            DType::F16 | DType::BF16 => {
                let tile = if tile.is_mma() { tile } else { MmTile::MMA_SMALL };
                let mut defines = vec![("T", t), ("MMA", "1".into()), ("MMA_AB", format!("\"{dtype}\""))];
                defines.extend(dims(tile));
                Self::new(format!("mm_mma.{dtype}.{tile}"), "mm.cu", streamdsl_kernels::MM, defines, &["mm_mma"])
            }
            DType::F32 | DType::F64 => {
                let mut defines = vec![("T", t.clone()), ("ACC", t)];
                defines.extend(dims(tile));
                Self::new(format!("mm_tiled.{dtype}.{tile}"), "mm.cu", streamdsl_kernels::MM, defines, &["mm_tiled"])
            }
        }
    }

    /// `busy`: blocks that spin on the GPU's global timer (test support for overlap and priorities).
    pub fn busy() -> KernelSpec {
        Self::new("busy".into(), "busy.cu", streamdsl_kernels::BUSY, Vec::new(), &["busy"])
    }

    /// A readable unique name, e.g. `mm_tiled.f32.128x128x8.8x8`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The `.cu` file it comes from.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The functions the compiled module exports.
    pub fn entry_points(&self) -> &[String] {
        &self.entry_points
    }

    /// The full source NVRTC compiles: the defines, then the file with our headers inlined.
    pub fn source(&self) -> String {
        super::source::assemble(&self.defines, &self.text)
    }
}

/// Every built-in specialisation, what `streamdsl precompile` compiles.
///
/// ```
/// let all = streamdsl::jit::catalog();
/// assert!(all.iter().any(|k| k.name() == "mm_mma.bf16.128x128x32.64x32"));
/// assert_eq!(all.len(), 32);
/// ```
pub fn catalog() -> Vec<KernelSpec> {
    let mut out = Vec::new();
    out.extend(ALL.iter().map(|&d| KernelSpec::randn(d)));
    out.extend(ALL.iter().map(|&d| KernelSpec::elementwise(d)));
    out.extend(ALL.iter().flat_map(|&a| ALL.iter().filter(move |&&b| b != a).map(move |&b| KernelSpec::convert(a, b))));
    out.extend(ALL.iter().map(|&d| KernelSpec::reduce(d)));
    out.push(KernelSpec::mm(DType::F32, MmTile::LARGE));
    out.push(KernelSpec::mm(DType::F32, MmTile::SMALL));
    out.push(KernelSpec::mm(DType::F64, MmTile::SMALL));
    for dtype in [DType::F16, DType::BF16] {
        out.push(KernelSpec::mm(dtype, MmTile::MMA_LARGE));
        out.push(KernelSpec::mm(dtype, MmTile::MMA_SMALL));
    }
    out.push(KernelSpec::busy());
    out
}
