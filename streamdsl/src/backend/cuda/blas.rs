//! cuBLAS for `mm` on CUDA: finding and loading the library, the row-major → column-major argument mapping,
//! one handle per device, and the call on an op's stream.
//!
//! **Loading.** cuBLAS is found like NVRTC (`jit::library_candidates`): `STREAMDSL_CUBLAS` (the library or
//! its folder), `CUDA_PATH`/`CUDA_HOME`, `/usr/local/cuda`, the loader path, and the `nvidia-cublas` Python
//! wheel (`site-packages/nvidia/{cu13,cublas}/lib`, the copy torch installs). cudarc's own `cublas` feature
//! cannot be pointed at a path: it opens the first of `libcublas.so`, …, `libcublas.so.13`, `.so.12` the
//! loader finds and panics when there is none or a symbol is missing. So the library found is opened here by
//! its absolute path with `libloading`, and the six functions `mm` needs are looked up once: a missing
//! library or symbol is a reason to use the kernels (or an [`Error::CublasUnavailable`]), never a panic.
//!
//! **Arguments.** cuBLAS is column-major; streamdsl's tensors are row-major. A row-major `r × c` matrix with
//! leading dimension `c` is, read column-major, its transpose `c × r` with the same leading dimension. So
//! `C = A·B` (row-major, `m × k` times `k × n`) is computed as the column-major `Cᵀ = Bᵀ·Aᵀ`: no transposes,
//! cuBLAS's `m, n, k` = our `n, m, k`, its first operand is our `B` (`lda = n`), its second our `A`
//! (`ldb = k`), `ldc = n`. Batches use `cublasGemmStridedBatchedEx` with our batch strides (0 for a 2-D
//! operand shared by the batch); a batched `A` with a shared `B` is one product of `batch·m` rows instead.
//! [`GemmArgs::plan`] computes this and is unit-tested against a host GEMM that follows cuBLAS's definition.
//!
//! **Types.** f32: `CUBLAS_COMPUTE_32F` (or `…_32F_FAST_TF32` with [`crate::allow_tf32`]); f64:
//! `CUBLAS_COMPUTE_64F`; f16/bf16: 16-bit inputs and output, `CUBLAS_COMPUTE_32F` (f32 accumulation, tensor
//! cores), f32 `alpha`/`beta`, as torch calls it (which also leaves cuBLAS's reduced-precision split-K
//! reduction allowed, torch's default). Algorithm: `CUBLAS_GEMM_DEFAULT` (cuBLAS's heuristics; the
//! `_TENSOR_OP` algorithms are deprecated and mean the same since CUDA 11).
//!
//! **cuBLAS's GEMM call rather than cuBLASLt's.** `cublasGemmStridedBatchedEx` covers every product `mm` has
//! (2-D, strided batches, a shared operand) in one call, with no per-shape heuristic query or plan cache to keep;
//! cuBLAS runs it on cuBLASLt's kernels with cuBLASLt's heuristics when given a workspace, and torch's plain
//! `mm`/`bmm` call the same functions. cuBLASLt directly would add fused epilogues, which `mm` has no use for.
//!
//! **Streams and memory.** One handle per device, created with the device's primary context current and
//! kept for the life of the process; every call binds it to the op's stream (`cublasSetStream`) and gives it a
//! workspace (`cublasSetWorkspace`, which must follow `cublasSetStream`) allocated for this op from the
//! stream-ordered pool and freed after it on the same stream, so products on different streams never share
//! scratch memory. The call happens inside the machine's `submit`, so the op's reads and writes are in the
//! access logs like every other op, and calls on one machine are serialised by its lock.

use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use cudarc::driver::sys::{CUdeviceptr, CUstream};

use super::machine::CudaMachine;
use crate::backend::MatmulDims;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::mm_config::{MmPath, MmRoute};

/// `cublasHandle_t`.
type Handle = *mut c_void;
/// `cublasStatus_t` (`CUBLAS_STATUS_SUCCESS` = 0).
type Status = c_int;

// The values of cuBLAS's and CUDA's C enums that `mm` uses (cublas_api.h, library_types.h); C enums are
// passed as `int`.
const CUBLAS_OP_N: c_int = 0;
const CUDA_R_32F: c_int = 0;
const CUDA_R_64F: c_int = 1;
const CUDA_R_16F: c_int = 2;
const CUDA_R_16BF: c_int = 14;
const CUBLAS_COMPUTE_32F: c_int = 68;
const CUBLAS_COMPUTE_32F_FAST_TF32: c_int = 77;
const CUBLAS_COMPUTE_64F: c_int = 70;
const CUBLAS_GEMM_DEFAULT: c_int = -1;
const CUBLAS_DEFAULT_MATH: c_int = 0;
/// `libraryPropertyType`: `MAJOR_VERSION`, `MINOR_VERSION`, `PATCH_LEVEL`.
const PROPERTIES: [c_int; 3] = [0, 1, 2];

type CreateFn = unsafe extern "C" fn(*mut Handle) -> Status;
type SetStreamFn = unsafe extern "C" fn(Handle, CUstream) -> Status;
type SetWorkspaceFn = unsafe extern "C" fn(Handle, *mut c_void, usize) -> Status;
type SetMathModeFn = unsafe extern "C" fn(Handle, c_int) -> Status;
type GetPropertyFn = unsafe extern "C" fn(c_int, *mut c_int) -> Status;
type StatusStringFn = unsafe extern "C" fn(Status) -> *const c_char;
/// `cublasGemmStridedBatchedEx(handle, transa, transb, m, n, k, alpha, A, Atype, lda, strideA, B, Btype, ldb,
/// strideB, beta, C, Ctype, ldc, strideC, batchCount, computeType, algo)`.
type GemmFn = unsafe extern "C" fn(
    Handle,
    c_int,
    c_int,
    c_int,
    c_int,
    c_int,
    *const c_void,
    *const c_void,
    c_int,
    c_int,
    i64,
    *const c_void,
    c_int,
    c_int,
    i64,
    *const c_void,
    *mut c_void,
    c_int,
    c_int,
    i64,
    c_int,
    c_int,
    c_int,
) -> Status;

/// A loaded cuBLAS: its path, version and the functions `mm` calls.
pub(crate) struct Cublas {
    path: PathBuf,
    version: (i32, i32, i32),
    create: CreateFn,
    set_stream: SetStreamFn,
    set_workspace: SetWorkspaceFn,
    set_math_mode: SetMathModeFn,
    gemm: GemmFn,
    status_string: Option<StatusStringFn>,
}

impl Cublas {
    /// `"13.0.2 at /path/libcublas.so.13"`.
    pub(crate) fn describe(&self) -> String {
        let (a, b, c) = self.version;
        format!("cuBLAS {a}.{b}.{c} at {}", self.path.display())
    }

    fn status(&self, call: &str, status: Status) -> std::result::Result<(), String> {
        if status == 0 {
            return Ok(());
        }
        let text = self.status_string.and_then(|f| {
            // SAFETY: cublasGetStatusString returns a static NUL-terminated string (or null) for any value.
            let p = unsafe { f(status) };
            // SAFETY: non-null, static and NUL-terminated, as above.
            (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
        });
        Err(format!("{call} returned {status}{}", text.map(|t| format!(" ({t})")).unwrap_or_default()))
    }
}

const NAMES: &[&str] = &["libcublas.so.13", "libcublas.so.12", "libcublas.so"];

/// The process's cuBLAS, found and loaded once, or why there is none (where the search looked).
pub(crate) fn library() -> std::result::Result<&'static Cublas, String> {
    static LOADED: OnceLock<std::result::Result<Cublas, String>> = OnceLock::new();
    LOADED.get_or_init(find).as_ref().map_err(Clone::clone)
}

fn find() -> std::result::Result<Cublas, String> {
    let mut tried = Vec::new();
    for path in crate::jit::library_candidates("STREAMDSL_CUBLAS", NAMES) {
        if !path.is_file() {
            continue;
        }
        match load(&path) {
            Ok(lib) => return Ok(lib),
            Err(e) => tried.push(e),
        }
    }
    if tried.is_empty() {
        let searched = crate::jit::library_search_places("$STREAMDSL_CUBLAS").join(", ");
        Err(format!(
            "no libcublas found; searched {searched}. Install one with `pip install nvidia-cublas` (CUDA 13; \
             `nvidia-cublas-cu12` for CUDA 12) or set STREAMDSL_CUBLAS to its path"
        ))
    } else {
        Err(format!("libcublas found but could not be used: {}", tried.join("; ")))
    }
}

/// Opens `path` (kept loaded for the life of the process) and looks up the functions `mm` needs.
fn load(path: &Path) -> std::result::Result<Cublas, String> {
    // SAFETY: opening cuBLAS runs its initialisers, which have no preconditions; its dependencies
    // (libcublasLt, found through its RUNPATH or the loader path) load with it.
    let lib = unsafe { libloading::Library::new(path) }.map_err(|e| format!("{}: {e}", path.display()))?;
    let lib: &'static libloading::Library = Box::leak(Box::new(lib)); // never unloaded: the pointers below stay valid
    macro_rules! symbol {
        ($name:literal, $ty:ty) => {
            // SAFETY: the symbol is looked up with the C signature cuBLAS declares for it (cublas_api.h).
            match unsafe { lib.get::<$ty>(concat!($name, "\0").as_bytes()) } {
                Ok(f) => Ok(*f),
                Err(e) => Err(format!("{}: no {} ({e})", path.display(), $name)),
            }
        };
    }
    let get_property: GetPropertyFn = symbol!("cublasGetProperty", GetPropertyFn)?;
    let mut version = [0; 3];
    for (v, property) in version.iter_mut().zip(PROPERTIES) {
        // SAFETY: a plain out-parameter; needs no handle or device.
        let status = unsafe { get_property(property, v) };
        if status != 0 {
            return Err(format!("{}: cublasGetProperty returned {status}", path.display()));
        }
    }
    Ok(Cublas {
        path: path.to_path_buf(),
        version: (version[0], version[1], version[2]),
        create: symbol!("cublasCreate_v2", CreateFn)?,
        set_stream: symbol!("cublasSetStream_v2", SetStreamFn)?,
        set_workspace: symbol!("cublasSetWorkspace_v2", SetWorkspaceFn)?,
        set_math_mode: symbol!("cublasSetMathMode", SetMathModeFn)?,
        gemm: symbol!("cublasGemmStridedBatchedEx", GemmFn)?,
        status_string: symbol!("cublasGetStatusString", StatusStringFn).ok(),
    })
}

/// A cuBLAS handle of one device; used only under [`HANDLES`]' lock.
struct DeviceHandle(Handle);

// SAFETY: a cuBLAS handle may be used from any thread, one call sequence at a time (ensured by the lock
// around every use).
unsafe impl Send for DeviceHandle {}

/// One handle per device ordinal (or why it could not be created), created at the device's first cuBLAS `mm`.
static HANDLES: Mutex<Option<HashMap<usize, std::result::Result<DeviceHandle, String>>>> = Mutex::new(None);

/// Creates device `machine`'s handle if it has none yet; the reason when it cannot be created (cached).
fn ensure_handle(lib: &Cublas, machine: &CudaMachine) -> std::result::Result<(), String> {
    let mut handles = HANDLES.lock().unwrap_or_else(|e| e.into_inner());
    let entry = handles.get_or_insert_with(HashMap::new).entry(machine.ordinal).or_insert_with(|| {
        // cublasCreate attaches the handle to the context current on this thread: the device's primary one.
        let _bound = machine.bind().map_err(|e| e.to_string())?;
        let mut h: Handle = std::ptr::null_mut();
        // SAFETY: an out-parameter; the device's context is current.
        lib.status("cublasCreate", unsafe { (lib.create)(&mut h) })
            .map_err(|e| format!("{} could not create a handle on cuda:{}: {e}", lib.describe(), machine.ordinal))?;
        // SAFETY: `h` is the live handle created above. Default math: no TF32 unless the compute type asks.
        lib.status("cublasSetMathMode", unsafe { (lib.set_math_mode)(h, CUBLAS_DEFAULT_MATH) })?;
        Ok(DeviceHandle(h))
    });
    entry.as_ref().map(|_| ()).map_err(Clone::clone)
}

/// What runs a CUDA `mm`.
pub(crate) enum Route {
    /// streamdsl's NVRTC kernels.
    Kernels,
    /// cuBLAS (its handle for this device exists).
    Cublas(&'static Cublas),
}

/// The route `mm` takes on `machine`, from the requested path, the library and the driver. `Err` only when
/// cuBLAS is required ([`MmPath::Cublas`]) and cannot be used, or `STREAMDSL_MM` is invalid.
pub(crate) fn route(machine: &CudaMachine) -> Result<Route> {
    let requested = crate::mm_config::mm_path()?;
    if requested == MmPath::Kernels {
        return Ok(Route::Kernels);
    }
    let usable = library().and_then(|lib| {
        if super::machine::on_simulator() {
            return Err(format!(
                "{} was found, but the CUDA driver is streamdsl's simulator (cuda-sim), on which cuBLAS cannot run",
                lib.describe()
            ));
        }
        ensure_handle(lib, machine).map(|()| lib)
    });
    match (usable, requested) {
        (Ok(lib), _) => Ok(Route::Cublas(lib)),
        (Err(_), MmPath::Auto) => Ok(Route::Kernels),
        (Err(reason), _) => Err(Error::CublasUnavailable { reason }),
    }
}

/// The route in words for `streamdsl info` and [`crate::cuda_mm_route`], without opening a device:
/// `simulator` says whether the driver loaded is the simulator (`None`: no driver).
pub(crate) fn describe(simulator: Option<bool>) -> Result<MmRoute> {
    let requested = crate::mm_config::mm_path()?;
    let source = match std::env::var("STREAMDSL_MM") {
        Ok(v) if v.parse::<MmPath>().ok() == Some(requested) => format!("STREAMDSL_MM={v}"),
        _ if requested == MmPath::Auto => "the default, STREAMDSL_MM=auto".to_string(),
        _ => format!("set_mm_path({requested:?})"),
    };
    let kernels = |reason: String| Ok(MmRoute { cublas: false, reason });
    if requested == MmPath::Kernels {
        return kernels(source);
    }
    let usable = library().and_then(|lib| match simulator {
        Some(true) => Err(format!(
            "{} was found, but the CUDA driver is streamdsl's simulator (cuda-sim), on which cuBLAS cannot run",
            lib.describe()
        )),
        _ => Ok(lib),
    });
    match (usable, requested) {
        (Ok(lib), _) => Ok(MmRoute { cublas: true, reason: format!("{}; {source}", lib.describe()) }),
        (Err(why), MmPath::Auto) => kernels(format!("{why}; {source}")),
        (Err(reason), _) => Err(Error::CublasUnavailable { reason: format!("{reason}; {source}") }),
    }
}

/// Which operand of the row-major product a cuBLAS operand is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// The left factor, `A` (`m × k`).
    Lhs,
    /// The right factor, `B` (`k × n`).
    Rhs,
}

/// The arguments of one `cublasGemmStridedBatchedEx` call (column-major; see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GemmArgs {
    pub transa: c_int,
    pub transb: c_int,
    pub m: c_int,
    pub n: c_int,
    pub k: c_int,
    /// Which of our operands is cuBLAS's `A`, with its leading dimension and batch stride (elements).
    pub a: Source,
    pub lda: c_int,
    pub stride_a: i64,
    /// Which of our operands is cuBLAS's `B`.
    pub b: Source,
    pub ldb: c_int,
    pub stride_b: i64,
    pub ldc: c_int,
    pub stride_c: i64,
    pub batch: c_int,
    /// `cudaDataType` of `A`, `B` and `C`.
    pub data_type: c_int,
    /// `cublasComputeType_t`.
    pub compute_type: c_int,
    /// `alpha`/`beta` are `double` (f64) or `float` (every other type).
    pub scale_f64: bool,
    /// `cublasGemmAlgo_t`.
    pub algo: c_int,
}

impl GemmArgs {
    /// The cuBLAS call computing the row-major `C[b] = A[b]·B[b]` of `dims` in `dtype`; `Err` with the reason
    /// when a dimension does not fit cuBLAS's 32-bit arguments.
    pub(crate) fn plan(dtype: DType, d: MatmulDims, allow_tf32: bool) -> std::result::Result<GemmArgs, String> {
        let int = |what: &str, v: usize| {
            c_int::try_from(v).map_err(|_| format!("{what} = {v} does not fit cuBLAS's 32-bit arguments"))
        };
        let long = |what: &str, v: usize| i64::try_from(v).map_err(|_| format!("{what} = {v} overflows"));
        // A batched A (contiguous batches) with a shared B is one product with batch·m rows: same bytes,
        // one larger GEMM instead of a batch of small ones.
        let fold = d.batch > 1 && d.b_batch_stride == 0 && d.a_batch_stride == d.m * d.k;
        let (rows, batch) = if fold { (d.batch * d.m, 1) } else { (d.m, d.batch) };
        let (data_type, compute_type) = match dtype {
            DType::F32 if allow_tf32 => (CUDA_R_32F, CUBLAS_COMPUTE_32F_FAST_TF32),
            DType::F32 => (CUDA_R_32F, CUBLAS_COMPUTE_32F),
            DType::F64 => (CUDA_R_64F, CUBLAS_COMPUTE_64F),
            DType::F16 => (CUDA_R_16F, CUBLAS_COMPUTE_32F),
            DType::BF16 => (CUDA_R_16BF, CUBLAS_COMPUTE_32F),
        };
        Ok(GemmArgs {
            transa: CUBLAS_OP_N,
            transb: CUBLAS_OP_N,
            m: int("n", d.n)?,
            n: int(if fold { "batch·m" } else { "m" }, rows)?,
            k: int("k", d.k)?,
            a: Source::Rhs,
            lda: int("n", d.n)?,
            stride_a: if batch > 1 { long("B's batch stride", d.b_batch_stride)? } else { 0 },
            b: Source::Lhs,
            ldb: int("k", d.k)?,
            stride_b: if batch > 1 { long("A's batch stride", d.a_batch_stride)? } else { 0 },
            ldc: int("n", d.n)?,
            stride_c: long("m·n", d.m * d.n)?,
            batch: int("batch", batch)?,
            data_type,
            compute_type,
            scale_f64: dtype == DType::F64,
            algo: CUBLAS_GEMM_DEFAULT,
        })
    }
}

/// Workspace bytes per call: what cuBLAS's documentation recommends (32 MiB on Hopper and later, 4 MiB before).
pub(crate) fn workspace_bytes(compute_capability: (u32, u32)) -> usize {
    if compute_capability.0 >= 9 {
        32 << 20
    } else {
        4 << 20
    }
}

/// Enqueues `args` on `stream` with `workspace`: `lhs`, `rhs` and `c` are the device addresses of our `A`,
/// `B` and `C`.
///
/// # Safety
/// `stream` must be a live stream of `machine`'s context (whose handle exists: [`route`] returned
/// [`Route::Cublas`]), on which the calling op enqueues its work; `lhs`, `rhs` and `c` must be allocations
/// the op reads (`lhs`, `rhs`) and writes (`c`) holding the elements `args` indexes (what the op's shape
/// checks guarantee for the `dims` the args were planned from); `workspace` must hold `workspace_len` bytes
/// that nothing else uses until the call's work on `stream` has completed.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm(
    lib: &Cublas,
    machine: &CudaMachine,
    stream: CUstream,
    workspace: CUdeviceptr,
    workspace_len: usize,
    args: &GemmArgs,
    lhs: CUdeviceptr,
    rhs: CUdeviceptr,
    c: CUdeviceptr,
) -> Result<()> {
    let fail = |message: String| Error::OpFailed { op: "mm".into(), message };
    let handles = HANDLES.lock().unwrap_or_else(|e| e.into_inner());
    let Some(Ok(DeviceHandle(h))) = handles.as_ref().and_then(|m| m.get(&machine.ordinal)) else {
        return Err(fail(format!("no cuBLAS handle for cuda:{}", machine.ordinal)));
    };
    let pick = |s: Source| (if s == Source::Lhs { lhs } else { rhs }) as *const c_void;
    let (one32, zero32, one64, zero64) = (1.0f32, 0.0f32, 1.0f64, 0.0f64);
    let (alpha, beta): (*const c_void, *const c_void) = if args.scale_f64 {
        ((&one64 as *const f64).cast(), (&zero64 as *const f64).cast())
    } else {
        ((&one32 as *const f32).cast(), (&zero32 as *const f32).cast())
    };
    // SAFETY: `h` is this device's live handle, used under the lock; the stream and buffers are as the
    // caller guarantees. The workspace is set after the stream (cublasSetStream resets it). `alpha` and
    // `beta` are host values (the default pointer mode) that outlive the call, which reads them at once.
    let status = unsafe {
        lib.status("cublasSetStream", (lib.set_stream)(*h, stream))
            .and_then(|()| {
                lib.status("cublasSetWorkspace", (lib.set_workspace)(*h, workspace as *mut c_void, workspace_len))
            })
            .and_then(|()| {
                lib.status(
                    "cublasGemmStridedBatchedEx",
                    (lib.gemm)(
                        *h,
                        args.transa,
                        args.transb,
                        args.m,
                        args.n,
                        args.k,
                        alpha,
                        pick(args.a),
                        args.data_type,
                        args.lda,
                        args.stride_a,
                        pick(args.b),
                        args.data_type,
                        args.ldb,
                        args.stride_b,
                        beta,
                        c as *mut c_void,
                        args.data_type,
                        args.ldc,
                        args.stride_c,
                        args.batch,
                        args.compute_type,
                        args.algo,
                    ),
                )
            })
    };
    status.map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The f64 reference of row-major `C[b] = A[b]·B[b]`.
    fn naive_mm(a: &[f64], b: &[f64], d: MatmulDims) -> Vec<f64> {
        let mut c = vec![0.0; d.batch * d.m * d.n];
        for p in 0..d.batch {
            for i in 0..d.m {
                for j in 0..d.n {
                    c[(p * d.m + i) * d.n + j] = (0..d.k)
                        .map(|l| a[p * d.a_batch_stride + i * d.k + l] * b[p * d.b_batch_stride + l * d.n + j])
                        .sum();
                }
            }
        }
        c
    }

    /// cuBLAS's definition of the strided-batched GEMM, column-major, driven only by `args`:
    /// `C_p[i + j·ldc] = Σ_l A_p[i + l·lda] · B_p[l + j·ldb]` with `X_p = X + p·stride_x` (no transposes).
    fn cublas_reference(args: &GemmArgs, lhs: &[f64], rhs: &[f64], c_len: usize) -> Vec<f64> {
        assert_eq!((args.transa, args.transb), (CUBLAS_OP_N, CUBLAS_OP_N));
        let pick = |s: Source| if s == Source::Lhs { lhs } else { rhs };
        let (a, b) = (pick(args.a), pick(args.b));
        let mut c = vec![f64::NAN; c_len];
        let (m, n, k) = (args.m as usize, args.n as usize, args.k as usize);
        let (lda, ldb, ldc) = (args.lda as usize, args.ldb as usize, args.ldc as usize);
        assert!(lda >= m && ldb >= k && ldc >= m, "leading dimensions below the rows: {args:?}");
        for p in 0..args.batch as usize {
            let (oa, ob, oc) = (p * args.stride_a as usize, p * args.stride_b as usize, p * args.stride_c as usize);
            for j in 0..n {
                for i in 0..m {
                    c[oc + i + j * ldc] = (0..k).map(|l| a[oa + i + l * lda] * b[ob + l + j * ldb]).sum();
                }
            }
        }
        c
    }

    fn dims(batch: usize, m: usize, k: usize, n: usize, a_batched: bool, b_batched: bool) -> MatmulDims {
        MatmulDims {
            batch,
            m,
            k,
            n,
            a_batch_stride: if a_batched { m * k } else { 0 },
            b_batch_stride: if b_batched { k * n } else { 0 },
        }
    }

    fn values(len: usize, seed: u64) -> Vec<f64> {
        // Small integers: every product and sum is exact, so the comparison is exact.
        (0..len as u64).map(|i| ((i.wrapping_mul(2_654_435_761).wrapping_add(seed * 97)) % 17) as f64 - 8.0).collect()
    }

    #[test]
    fn arguments_compute_the_row_major_product() {
        let cases = [
            dims(1, 1, 1, 1, false, false),
            dims(1, 17, 33, 65, false, false),
            dims(1, 257, 129, 65, false, false),
            dims(1, 3, 1, 7, false, false),
            dims(1, 1, 9, 1, false, false),
            dims(4, 5, 3, 7, true, true),  // both batched
            dims(3, 4, 5, 6, true, false), // shared B: folded into one product of 12 rows
            dims(3, 2, 5, 6, false, true), // shared A: stride 0
            dims(2, 1, 1, 1, true, true),
        ];
        for d in cases {
            let a = values(d.batch.max(1) * d.m * d.k, 1);
            let b = values(d.batch.max(1) * d.k * d.n, 2);
            let expected = naive_mm(&a, &b, d);
            for dtype in [DType::F32, DType::F64, DType::F16, DType::BF16] {
                let args = GemmArgs::plan(dtype, d, false).unwrap();
                let got = cublas_reference(&args, &a, &b, expected.len());
                assert_eq!(got, expected, "{dtype} {d:?}: {args:?}");
            }
        }
    }

    #[test]
    fn arguments_swap_operands_and_set_strides() {
        // C (row-major m×n) = A·B is Cᵀ = Bᵀ·Aᵀ column-major: cuBLAS's m, n are our n, m; B comes first.
        let args = GemmArgs::plan(DType::F32, dims(4, 17, 33, 65, true, true), false).unwrap();
        assert_eq!((args.m, args.n, args.k), (65, 17, 33));
        assert_eq!((args.a, args.lda, args.stride_a), (Source::Rhs, 65, 33 * 65));
        assert_eq!((args.b, args.ldb, args.stride_b), (Source::Lhs, 33, 17 * 33));
        assert_eq!((args.ldc, args.stride_c, args.batch), (65, 17 * 65, 4));
        // A 2-D A shared by a batched B: stride 0.
        let shared_a = GemmArgs::plan(DType::F32, dims(3, 2, 5, 6, false, true), false).unwrap();
        assert_eq!((shared_a.stride_a, shared_a.stride_b, shared_a.batch), (30, 0, 3));
        // A batched A with a shared B: one product of batch·m rows.
        let folded = GemmArgs::plan(DType::F32, dims(3, 4, 5, 6, true, false), false).unwrap();
        assert_eq!((folded.m, folded.n, folded.k, folded.batch), (6, 12, 5, 1));
        assert_eq!((folded.stride_a, folded.stride_b), (0, 0));
    }

    #[test]
    fn the_reference_catches_wrong_mappings() {
        // The check above has teeth: plausible mistakes give other numbers (and stay in bounds).
        let differs = |d: MatmulDims, wrong: &dyn Fn(GemmArgs) -> GemmArgs| {
            let a = values(d.batch * d.m * d.k, 1);
            let b = values(d.batch * d.k * d.n, 2);
            let expected = naive_mm(&a, &b, d);
            let args = GemmArgs::plan(DType::F32, d, false).unwrap();
            assert_eq!(cublas_reference(&args, &a, &b, expected.len()), expected);
            // Either other numbers, or refused (a leading dimension below the rows: cuBLAS's INVALID_VALUE).
            let bad = wrong(args);
            let got = std::panic::catch_unwind(|| cublas_reference(&bad, &a, &b, expected.len()));
            assert!(got.map_or(true, |v| v != expected), "{d:?}: {bad:?} went unnoticed");
        };
        let square = dims(1, 4, 4, 4, false, false);
        // No row-major -> column-major swap: computes (B·A)ᵀ.
        differs(square, &|g| GemmArgs { a: Source::Lhs, b: Source::Rhs, ..g });
        // B's leading dimension taken from k instead of n (rows of B are n long): refused.
        differs(dims(1, 3, 4, 5, false, false), &|g| GemmArgs { lda: g.k, ..g });
        let batched = dims(2, 3, 4, 5, true, true);
        differs(batched, &|g| GemmArgs { stride_b: 0, ..g }); // A treated as shared
        differs(batched, &|g| GemmArgs { stride_c: 0, ..g }); // every product written over the first
    }

    #[test]
    fn compute_types_per_dtype() {
        let d = dims(1, 8, 8, 8, false, false);
        let kinds = |dtype, tf32| {
            let a = GemmArgs::plan(dtype, d, tf32).unwrap();
            (a.data_type, a.compute_type, a.scale_f64, a.algo)
        };
        assert_eq!(kinds(DType::F32, false), (CUDA_R_32F, CUBLAS_COMPUTE_32F, false, CUBLAS_GEMM_DEFAULT));
        assert_eq!(kinds(DType::F32, true), (CUDA_R_32F, CUBLAS_COMPUTE_32F_FAST_TF32, false, CUBLAS_GEMM_DEFAULT));
        assert_eq!(kinds(DType::F64, false), (CUDA_R_64F, CUBLAS_COMPUTE_64F, true, CUBLAS_GEMM_DEFAULT));
        assert_eq!(kinds(DType::F64, true), (CUDA_R_64F, CUBLAS_COMPUTE_64F, true, CUBLAS_GEMM_DEFAULT));
        // 16-bit inputs accumulate in f32 (float alpha/beta); TF32 does not apply to them.
        for dtype in [DType::F16, DType::BF16] {
            let t = if dtype == DType::F16 { CUDA_R_16F } else { CUDA_R_16BF };
            assert_eq!(kinds(dtype, false), (t, CUBLAS_COMPUTE_32F, false, CUBLAS_GEMM_DEFAULT));
            assert_eq!(kinds(dtype, true), (t, CUBLAS_COMPUTE_32F, false, CUBLAS_GEMM_DEFAULT));
        }
    }

    #[test]
    fn dimensions_beyond_32_bits_are_refused() {
        let big = dims(1, 1 << 31, 1, 1, false, false);
        assert!(GemmArgs::plan(DType::F32, big, false).unwrap_err().contains("32-bit"));
        // Folding would overflow the row count: refused, not wrapped.
        let fold = dims(1 << 16, 1 << 16, 1, 1, true, false);
        assert!(GemmArgs::plan(DType::F32, fold, false).unwrap_err().contains("batch·m"));
    }

    #[test]
    fn missing_library_is_a_reason_not_a_panic() {
        // Whatever this machine has, asking is never a panic; without a library the reason names the search.
        match library() {
            Ok(lib) => assert!(lib.describe().contains("cuBLAS")),
            Err(reason) => assert!(reason.contains("libcublas"), "{reason}"),
        }
    }
}
