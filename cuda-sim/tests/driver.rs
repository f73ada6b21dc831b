//! Driver semantics on the simulator: stream order, concurrency, priorities, events, host functions, copies,
//! frees and the checks, through the exported functions.
mod common;
use common::*;

use std::ffi::c_void;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// A boxed Rust closure run as a host function.
fn host_fn(s: CUstream, f: impl FnOnce() + Send + 'static) {
    type Job = Box<dyn FnOnce() + Send>;
    unsafe extern "C" fn tramp(data: *mut c_void) {
        // SAFETY: `data` is the box leaked below, handed back once.
        let job = unsafe { Box::from_raw(data.cast::<Job>()) };
        job();
    }
    let data = Box::into_raw(Box::new(Box::new(f) as Job)).cast::<c_void>();
    assert_eq!(cuLaunchHostFunc(s, Some(tramp), data), OK);
}

#[derive(Clone, Default)]
struct Gate(Arc<(Mutex<bool>, Condvar)>);
impl Gate {
    fn open(&self) {
        *self.0 .0.lock().unwrap() = true;
        self.0 .1.notify_all();
    }
    fn wait(&self) {
        let mut g = self.0 .0.lock().unwrap();
        while !*g {
            g = self.0 .1.wait(g).unwrap();
        }
    }
}

/// Blocks `s` until the gate opens.
fn block(s: CUstream) -> Gate {
    let g = Gate::default();
    let g2 = g.clone();
    host_fn(s, move || g2.wait());
    g
}

const KERNELS: &str = r#"
extern "C" __global__ void write(float* out, float v, unsigned long long n) {
    for (unsigned long long i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) out[i] = v;
}
extern "C" __global__ void read(const float* in, float* out, unsigned long long n) {
    for (unsigned long long i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) out[i] = in[i] + 1.0f;
}
// Reads element n (one past the end when n is the length).
extern "C" __global__ void read_at(const float* in, float* out, unsigned long long n) {
    if (threadIdx.x == 0) out[0] = in[n];
}
extern "C" __global__ void spin(unsigned long long ns) {
    unsigned long long t0 = ptx_globaltimer();
    while (ptx_globaltimer() - t0 < ns) ptx_nanosleep(1000);
}
extern "C" __global__ void divergent_barrier(int* out) {
    if (threadIdx.x < 16) __syncthreads();
    out[threadIdx.x] = 1;
}
"#;

fn kernels() -> CUmodule {
    module(KERNELS)
}

fn write(s: CUstream, p: CUdeviceptr, v: f32, n: usize) {
    let f = function(kernels(), "write");
    let (mut p, mut v, mut n) = (p, v, n as u64);
    assert_eq!(launch(f, (2, 1, 1), 64, s, &mut [arg(&mut p), arg(&mut v), arg(&mut n)]), OK);
}

fn read(s: CUstream, src: CUdeviceptr, dst: CUdeviceptr, n: usize) -> CUresult {
    let f = function(kernels(), "read");
    let (mut a, mut b, mut n) = (src, dst, n as u64);
    launch(f, (2, 1, 1), 64, s, &mut [arg(&mut a), arg(&mut b), arg(&mut n)])
}

#[test]
fn a_stream_runs_its_work_in_order() {
    setup();
    let s = stream(0);
    let log = Arc::new(Mutex::new(Vec::new()));
    let gate = block(s);
    for i in 0..20 {
        let log = log.clone();
        host_fn(s, move || log.lock().unwrap().push(i));
    }
    let p = alloc(4096, s);
    write(s, p, 3.0, 1024);
    let q = alloc(4096, s);
    assert_eq!(read(s, p, q, 1024), OK);
    assert_eq!(cuStreamQuery(s), CUresult::CUDA_ERROR_NOT_READY);
    gate.open();
    let out: Vec<f32> = download(q, 1024, s);
    assert!(out.iter().all(|&x| x == 4.0));
    assert_eq!(cuStreamSynchronize(s), OK);
    assert_eq!(*log.lock().unwrap(), (0..20).collect::<Vec<_>>());
    assert_eq!(cuStreamQuery(s), OK);
}

#[test]
fn two_streams_run_at_the_same_time() {
    setup();
    let (a, b) = (stream(0), stream(0));
    let arrived = Arc::new(AtomicUsize::new(0));
    let met = Arc::new(AtomicUsize::new(0));
    for s in [a, b] {
        let (arrived, met) = (arrived.clone(), met.clone());
        host_fn(s, move || {
            arrived.fetch_add(1, Ordering::SeqCst);
            let t0 = Instant::now();
            while arrived.load(Ordering::SeqCst) < 2 && t0.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(1));
            }
            if arrived.load(Ordering::SeqCst) == 2 {
                met.fetch_add(1, Ordering::SeqCst);
            }
        });
    }
    assert_eq!(cuStreamSynchronize(a), OK);
    assert_eq!(cuStreamSynchronize(b), OK);
    assert_eq!(met.load(Ordering::SeqCst), 2, "the two streams' host functions did not overlap");
}

#[test]
fn high_priority_blocks_are_dispatched_first() {
    setup();
    let low = stream(0);
    let high = stream(-5);
    let mut p = 0;
    // SAFETY: out-parameter.
    assert_eq!(unsafe { cuStreamGetPriority(high, &mut p) }, OK);
    assert_eq!(p, -5);
    let f = function(kernels(), "spin");
    let (l0, l1, h1) = (event(true), event(true), event(true));
    assert_eq!(cuEventRecord(l0, low), OK);
    // Many waves of 5 ms blocks: far more blocks than workers.
    let mut ns = 5_000_000u64;
    assert_eq!(launch(f, (64, 1, 1), 32, low, &mut [arg(&mut ns)]), OK);
    assert_eq!(cuEventRecord(l1, low), OK);
    std::thread::sleep(Duration::from_millis(10));
    let mut short = 1_000_000u64;
    assert_eq!(launch(f, (1, 1, 1), 32, high, &mut [arg(&mut short)]), OK);
    assert_eq!(cuEventRecord(h1, high), OK);
    assert_eq!(cuStreamSynchronize(low), OK);
    assert_eq!(cuStreamSynchronize(high), OK);
    let (mut total, mut high_done) = (0f32, 0f32);
    // SAFETY: out-parameters.
    unsafe {
        assert_eq!(cuEventElapsedTime_v2(&mut total, l0, l1), OK);
        assert_eq!(cuEventElapsedTime_v2(&mut high_done, l0, h1), OK);
    }
    assert!(total >= 40.0, "{total}");
    assert!(high_done * 3.0 < total, "high-priority block done after {high_done} ms of {total} ms");
}

#[test]
fn events_record_query_synchronize_and_time() {
    setup();
    let s = stream(0);
    let never = event(true);
    assert_eq!(cuEventQuery(never), OK, "a never-recorded event is complete");
    assert_eq!(cuEventSynchronize(never), OK);
    let (start, end, untimed) = (event(true), event(true), event(false));
    assert_eq!(cuEventRecord(start, s), OK);
    let gate = block(s);
    host_fn(s, || std::thread::sleep(Duration::from_millis(20)));
    assert_eq!(cuEventRecord(end, s), OK);
    assert_eq!(cuEventRecord(untimed, s), OK);
    assert_eq!(cuEventQuery(end), CUresult::CUDA_ERROR_NOT_READY);
    let mut ms = 0f32;
    // SAFETY: out-parameter.
    assert_eq!(unsafe { cuEventElapsedTime_v2(&mut ms, start, end) }, CUresult::CUDA_ERROR_NOT_READY);
    gate.open();
    assert_eq!(cuEventSynchronize(end), OK);
    assert_eq!(cuEventQuery(end), OK);
    // SAFETY: out-parameters.
    unsafe {
        assert_eq!(cuEventElapsedTime_v2(&mut ms, start, end), OK);
        assert!(ms >= 20.0, "{ms}");
        assert_eq!(cuEventElapsedTime_v2(&mut ms, end, start), OK);
        assert!(ms <= -20.0, "{ms}");
        assert_eq!(cuEventElapsedTime_v2(&mut ms, start, untimed), CUresult::CUDA_ERROR_INVALID_HANDLE);
        assert_eq!(cuEventElapsedTime_v2(&mut ms, start, never), CUresult::CUDA_ERROR_INVALID_HANDLE);
    }
    assert_eq!(cuEventDestroy_v2(untimed), OK);
    assert_eq!(cuEventQuery(untimed), CUresult::CUDA_ERROR_INVALID_HANDLE);
}

#[test]
fn a_wait_keeps_the_record_of_its_call() {
    setup();
    let (a, b, c) = (stream(0), stream(0), stream(0));
    let e = event(false);
    let gate = block(a);
    assert_eq!(cuEventRecord(e, a), OK);
    assert_eq!(cuStreamWaitEvent(b, e, 0), OK);
    // Re-recording on an idle stream does not move the wait already enqueued on b.
    assert_eq!(cuEventRecord(e, c), OK);
    assert_eq!(cuStreamSynchronize(c), OK);
    let ran = Arc::new(AtomicI32::new(0));
    let r2 = ran.clone();
    host_fn(b, move || r2.store(1, Ordering::SeqCst));
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(ran.load(Ordering::SeqCst), 0, "b ran before a's record completed");
    assert_eq!(cuStreamQuery(b), CUresult::CUDA_ERROR_NOT_READY);
    gate.open();
    assert_eq!(cuStreamSynchronize(b), OK);
    assert_eq!(ran.load(Ordering::SeqCst), 1);
    // A wait for a never-recorded event is a no-op.
    let never = event(false);
    assert_eq!(cuStreamWaitEvent(b, never, 0), OK);
    assert_eq!(cuStreamSynchronize(b), OK);
}

static INSIDE: AtomicI32 = AtomicI32::new(-1);

#[test]
fn driver_calls_inside_a_host_function_are_refused() {
    setup();
    let s = stream(0);
    let raw = s as usize;
    host_fn(s, move || {
        let r = cuStreamQuery(raw as CUstream);
        INSIDE.store(r as i32, Ordering::SeqCst);
    });
    assert_eq!(cuStreamSynchronize(s), OK);
    assert_eq!(INSIDE.load(Ordering::SeqCst), CUresult::CUDA_ERROR_NOT_PERMITTED as i32);
    assert!(last_report().contains("inside a host function"), "{}", last_report());
}

#[test]
fn copies_and_memsets_are_bounds_checked() {
    setup();
    let s = stream(0);
    let p = alloc(100, s);
    let data = [0u8; 101];
    // SAFETY: `data` is readable for 101 bytes.
    let r = unsafe { cuMemcpyHtoDAsync_v2(p, data.as_ptr().cast(), 101, s) };
    assert_eq!(r, CUresult::CUDA_ERROR_INVALID_VALUE);
    let rep = last_report();
    assert!(
        rep.contains("cuMemcpyHtoDAsync") && rep.contains("1 bytes past the end") && rep.contains("100 bytes"),
        "{rep}"
    );
    assert_eq!(cuStreamSynchronize(s), CUresult::CUDA_ERROR_INVALID_VALUE, "the stream is poisoned");
    // Later work on the poisoned stream does not run; other streams keep working.
    let s2 = stream(0);
    let q = alloc(64, s2);
    assert_eq!(cuMemsetD8Async(q + 60, 7, 5, s2), CUresult::CUDA_ERROR_INVALID_VALUE);
    assert!(last_report().contains("cuMemsetD8Async"), "{}", last_report());
    let s3 = stream(0);
    let r = alloc(64, s3);
    assert_eq!(cuMemsetD8Async(r, 7, 64, s3), OK);
    assert_eq!(download::<u8>(r, 64, s3), vec![7u8; 64]);
    assert_eq!(cuMemsetD8Async(0x1234, 0, 4, s3), CUresult::CUDA_ERROR_INVALID_VALUE);
    assert!(last_report().contains("not device memory"), "{}", last_report());
}

#[test]
fn double_free_and_use_after_free_are_reported() {
    setup();
    let s = stream(0);
    let p = alloc(256, s);
    assert_eq!(cuMemFreeAsync(p, s), OK);
    assert_eq!(cuMemFreeAsync(p, s), CUresult::CUDA_ERROR_INVALID_VALUE);
    let rep = last_report();
    assert!(rep.contains("double free") && rep.contains("already freed by cuMemFreeAsync"), "{rep}");
    assert_eq!(cuStreamSynchronize(s), CUresult::CUDA_ERROR_INVALID_VALUE);

    // A copy from freed memory: refused at once.
    let s = stream(0);
    let p = alloc(256, s);
    assert_eq!(cuMemFreeAsync(p, s), OK);
    let mut buf = [0u8; 16];
    // SAFETY: `buf` is writable.
    let r = unsafe { cuMemcpyDtoHAsync_v2(buf.as_mut_ptr().cast(), p, 16, s) };
    assert_eq!(r, CUresult::CUDA_ERROR_INVALID_VALUE);
    assert!(last_report().contains("use after free"), "{}", last_report());

    // A kernel reading freed memory (ordered after the free): a hardware fault, reported.
    let s = stream(0);
    let p = alloc(1024, s);
    let out = alloc(1024, s);
    assert_eq!(cuMemFreeAsync(p, s), OK);
    assert_eq!(read(s, p, out, 256), OK);
    assert_eq!(cuStreamSynchronize(s), CUresult::CUDA_ERROR_ILLEGAL_ADDRESS);
    let rep = last_report();
    assert!(rep.contains("kernel `read`") && rep.contains("use after free") && rep.contains("invalid read"), "{rep}");
    // Unknown pointers.
    let s = stream(0);
    assert_eq!(cuMemFreeAsync(0xdead0, s), CUresult::CUDA_ERROR_INVALID_VALUE);
}

#[test]
fn a_kernel_reading_one_element_past_the_end_faults() {
    setup();
    let s = stream(-1);
    let n = 17usize;
    let p = alloc(n * 4, s);
    let out = alloc(4, s);
    write(s, p, 1.0, n);
    let f = function(kernels(), "read_at");
    let (mut a, mut b, mut i) = (p, out, (n - 1) as u64);
    assert_eq!(launch(f, (1, 1, 1), 32, s, &mut [arg(&mut a), arg(&mut b), arg(&mut i)]), OK);
    assert_eq!(cuStreamSynchronize(s), OK, "the last element is in bounds");
    let mut past = n as u64;
    assert_eq!(launch(f, (1, 1, 1), 32, s, &mut [arg(&mut a), arg(&mut b), arg(&mut past)]), OK);
    assert_eq!(cuStreamSynchronize(s), CUresult::CUDA_ERROR_ILLEGAL_ADDRESS);
    let rep = last_report();
    assert!(rep.contains("kernel `read_at`"), "{rep}");
    assert!(rep.contains(&format!("stream 0x{:x}", s as u64)), "{rep}");
    assert!(rep.contains("0 bytes past the end") && rep.contains("(68 bytes, allocated by cuMemAllocAsync"), "{rep}");
    assert!(rep.contains("block (0,0,0) thread (0,0,0)"), "{rep}");
    // The stream stays poisoned; later work is not run.
    write(s, p, 5.0, n);
    assert_eq!(cuStreamSynchronize(s), CUresult::CUDA_ERROR_ILLEGAL_ADDRESS);
}

#[test]
fn a_missing_wait_between_writer_and_reader_is_a_race() {
    setup();
    let (w, r) = (stream(0), stream(0));
    let p = alloc(4096, w);
    let q = alloc(4096, r);
    let e = record(w);
    assert_eq!(cuStreamWaitEvent(r, e, 0), OK);
    // Ordered: the reader waits for the writer.
    write(w, p, 2.0, 1024);
    let done = record(w);
    assert_eq!(cuStreamWaitEvent(r, done, 0), OK);
    assert_eq!(read(r, p, q, 1024), OK);
    assert_eq!(cuStreamSynchronize(r), OK);
    // Not ordered: a second write, read without a wait.
    write(w, p, 3.0, 1024);
    assert_eq!(read(r, p, q, 1024), OK, "a race is an asynchronous fault");
    assert_eq!(cuStreamSynchronize(r), CUresult::CUDA_ERROR_LAUNCH_FAILED);
    let rep = last_report();
    assert!(rep.starts_with("race on allocation"), "{rep}");
    assert!(rep.contains("kernel `read`") && rep.contains("reads it"), "{rep}");
    assert!(rep.contains("kernel `write`") && rep.contains("which writes it"), "{rep}");
    assert!(
        rep.contains(&format!("stream 0x{:x}", w as u64)) && rep.contains(&format!("stream 0x{:x}", r as u64)),
        "{rep}"
    );
    assert_eq!(cuStreamSynchronize(w), OK, "the writer's stream is fine");
}

#[test]
fn a_free_one_op_early_is_a_race() {
    setup();
    let (s, fs) = (stream(0), stream(0));
    let p = alloc(4096, s);
    let q = alloc(4096, s);
    write(s, p, 1.0, 1024);
    let first = record(s);
    assert_eq!(read(s, p, q, 1024), OK);
    let _last = record(s);
    // The free waits for the first use only.
    assert_eq!(cuStreamWaitEvent(fs, first, 0), OK);
    assert_eq!(cuMemFreeAsync(p, fs), OK);
    assert_eq!(cuStreamSynchronize(fs), CUresult::CUDA_ERROR_LAUNCH_FAILED);
    let rep = last_report();
    assert!(rep.contains("cuMemFreeAsync") && rep.contains("frees it"), "{rep}");
    assert!(rep.contains("kernel `read`") && rep.contains("which reads it"), "{rep}");
    assert_eq!(cuStreamSynchronize(s), OK);
}

#[test]
fn a_free_ordered_after_the_last_use_is_fine() {
    setup();
    let (s, fs) = (stream(0), stream(0));
    let p = alloc(4096, s);
    let q = alloc(4096, s);
    write(s, p, 1.0, 1024);
    assert_eq!(read(s, p, q, 1024), OK);
    let last = record(s);
    assert_eq!(cuStreamWaitEvent(fs, last, 0), OK);
    assert_eq!(cuMemFreeAsync(p, fs), OK);
    assert_eq!(cuMemFreeAsync(q, s), OK);
    assert_eq!(cuStreamSynchronize(fs), OK);
    assert_eq!(cuStreamSynchronize(s), OK);
}

#[test]
fn a_barrier_not_every_thread_reaches_is_a_deadlock() {
    setup();
    let s = stream(0);
    let p = alloc(4 * 64, s);
    let f = function(kernels(), "divergent_barrier");
    let mut a = p;
    assert_eq!(launch(f, (1, 1, 1), 64, s, &mut [arg(&mut a)]), OK);
    // Threads 16..64 exit; the barrier then completes for the 16 left (CUDA semantics since Volta).
    assert_eq!(cuStreamSynchronize(s), OK);
}

#[test]
fn calls_need_a_current_context_and_real_images_are_refused() {
    setup();
    let r = std::thread::spawn(|| {
        let mut s = std::ptr::null_mut();
        // SAFETY: out-parameter.
        unsafe { cuStreamCreateWithPriority(&mut s, 1, 0) }
    })
    .join()
    .unwrap();
    assert_eq!(r, CUresult::CUDA_ERROR_INVALID_CONTEXT);
    let cubin = b"\x7fELF\x02\x01\x01\0\0\0";
    let mut m = std::ptr::null_mut();
    // SAFETY: the image is read up to its first NUL.
    assert_eq!(unsafe { cuModuleLoadData(&mut m, cubin.as_ptr().cast()) }, CUresult::CUDA_ERROR_INVALID_IMAGE);
    assert_eq!(
        try_module("extern \"C\" __global__ void broken( { }").unwrap_err(),
        CUresult::CUDA_ERROR_INVALID_SOURCE
    );
    assert!(streamdsl_sim_version() >= 1);
    let mut name = [0i8; 64];
    // SAFETY: writable buffer.
    assert_eq!(unsafe { cuDeviceGetName(name.as_mut_ptr(), 64, 0) }, OK);
    // SAFETY: NUL-terminated by the call.
    let name = unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) }.to_string_lossy().into_owned();
    assert_eq!(name, "streamdsl simulated GPU");
}

#[test]
fn contexts_push_and_pop_per_thread() {
    setup();
    let ctx = std::thread::spawn(|| {
        let mut cur: cudarc::driver::sys::CUcontext = std::ptr::null_mut();
        let get = |cur: &mut cudarc::driver::sys::CUcontext| {
            // SAFETY: out-parameter.
            assert_eq!(unsafe { cuCtxGetCurrent(cur) }, OK);
        };
        get(&mut cur);
        assert!(cur.is_null(), "a new thread has no current context");
        let mut primary = std::ptr::null_mut();
        // SAFETY: out-parameter.
        assert_eq!(unsafe { cuDevicePrimaryCtxRetain(&mut primary, 0) }, OK);
        let mut popped = std::ptr::null_mut();
        // SAFETY: out-parameter.
        assert_eq!(unsafe { cuCtxPopCurrent_v2(&mut popped) }, CUresult::CUDA_ERROR_INVALID_CONTEXT);
        assert_eq!(cuCtxPushCurrent_v2(primary), OK);
        get(&mut cur);
        assert_eq!(cur, primary);
        assert_eq!(cuCtxPushCurrent_v2(primary), OK);
        // SAFETY: out-parameter.
        assert_eq!(unsafe { cuCtxPopCurrent_v2(&mut popped) }, OK);
        assert_eq!(popped, primary);
        get(&mut cur);
        assert_eq!(cur, primary, "the context below the popped one is current again");
        // SAFETY: null is allowed.
        assert_eq!(unsafe { cuCtxPopCurrent_v2(std::ptr::null_mut()) }, OK);
        get(&mut cur);
        assert!(cur.is_null(), "the stack is empty again");
        assert_eq!(cuCtxPushCurrent_v2(0x1234 as cudarc::driver::sys::CUcontext), CUresult::CUDA_ERROR_INVALID_CONTEXT);
        // cuCtxSetCurrent replaces the top of the stack; null pops it.
        assert_eq!(cuCtxSetCurrent(primary), OK);
        assert_eq!(cuCtxPushCurrent_v2(primary), OK);
        assert_eq!(cuCtxSetCurrent(std::ptr::null_mut()), OK);
        get(&mut cur);
        assert_eq!(cur, primary);
        assert_eq!(cuCtxSetCurrent(std::ptr::null_mut()), OK);
        get(&mut cur);
        assert!(cur.is_null());
        primary as usize
    })
    .join()
    .unwrap();
    assert_ne!(ctx, 0);
}

#[test]
fn injected_failures_and_faults() {
    setup();
    let s = stream(0);
    let name = std::ffi::CString::new("cuStreamWaitEvent").unwrap();
    let code = CUresult::CUDA_ERROR_INVALID_HANDLE;
    // SAFETY: a NUL-terminated name.
    assert_eq!(unsafe { streamdsl_sim_fail_next(name.as_ptr(), code as i32) }, 0);
    let e = record(s);
    // Only this thread's next call of that function fails.
    let (raw_s, raw_e) = (s as usize, e as usize);
    let other = std::thread::spawn(move || {
        setup();
        cuStreamWaitEvent(raw_s as CUstream, raw_e as CUevent, 0)
    });
    assert_eq!(other.join().unwrap(), OK);
    assert_eq!(cuStreamWaitEvent(s, e, 0), code);
    assert_eq!(cuStreamWaitEvent(s, e, 0), OK);
    // SAFETY: as above.
    assert_eq!(unsafe { streamdsl_sim_fail_next(name.as_ptr(), 0) }, -1);

    let faults = streamdsl_sim_report_count(CUresult::CUDA_ERROR_ILLEGAL_ADDRESS as i32);
    let p = alloc(64, s);
    streamdsl_sim_fault_next();
    upload(p, &[1.0f32; 16], s);
    let after = record(s);
    assert_eq!(cuStreamSynchronize(s), CUresult::CUDA_ERROR_ILLEGAL_ADDRESS);
    assert_eq!(cuEventQuery(after), CUresult::CUDA_ERROR_ILLEGAL_ADDRESS);
    assert!(last_report().contains("injected fault"), "{}", last_report());
    assert_eq!(streamdsl_sim_report_count(CUresult::CUDA_ERROR_ILLEGAL_ADDRESS as i32), faults + 1);
    assert!(streamdsl_sim_report_count(-1) > faults);
    // Other streams keep working.
    let t = stream(0);
    let q = alloc(64, t);
    upload(q, &[2.0f32; 16], t);
    assert_eq!(download::<f32>(q, 16, t), vec![2.0; 16]);
}
