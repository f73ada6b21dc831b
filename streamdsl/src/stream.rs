//! Streams: in-order queues of device work, with `torch.Stream` semantics.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use crate::backend::{Access, Backend, Machine, Queue, Work};
use crate::device::{Device, DeviceKind};
use crate::error::{Error, Result};
use crate::event::Event;
use crate::runtime::ProcessWide;

/// Numbers in stream names, unique per process.
static NEXT_NAME: ProcessWide<AtomicU64> = ProcessWide::new("streams.next_name", AtomicU64::default);

/// The CPU backend's default stream, made on first use: one per process.
static CPU_DEFAULT: ProcessWide<OnceLock<Stream>> = ProcessWide::new("streams.cpu_default", OnceLock::new);

/// Each opened CUDA device's default stream, by ordinal.
static CUDA_DEFAULTS: ProcessWide<Mutex<HashMap<usize, Stream>>> =
    ProcessWide::new("streams.cuda_defaults", Mutex::default);

/// An in-order queue of work on a device, like `torch.Stream` / a CUDA stream.
///
/// Work enqueued on one stream runs in submission order; work on different streams may run
/// concurrently unless ordered with [`wait_event`](Stream::wait_event) or
/// [`wait_stream`](Stream::wait_stream). Tensor ops order themselves across streams automatically (see
/// the crate docs' safety model), so safe code cannot race. `Stream` is a cheap handle: clones name the
/// same stream and compare equal. Work already enqueued still runs when the last handle is dropped.
///
/// ```
/// use streamdsl::prelude::*;
/// let dev = Device::cpu();
/// let s = Stream::with_priority(&dev, -1)?;
/// let x = ops::randn_on::<f32>(&s, [256, 256])?;
/// let y = x.mm(&x)?;                  // enqueued on x's device's current stream
/// s.synchronize()?;
/// assert!(s.query());
/// assert_eq!(y.shape(), &[256, 256]);
/// # Ok::<(), streamdsl::Error>(())
/// ```
#[derive(Clone)]
pub struct Stream {
    inner: Arc<StreamInner>,
}

struct StreamInner {
    device: Device,
    id: u64,
    priority: i32,
    backend: Backend,
}

impl Drop for StreamInner {
    fn drop(&mut self) {
        self.backend.machine().release_stream(self.id);
    }
}

impl Stream {
    /// A new stream with the default priority 0.
    ///
    /// ```
    /// let s = streamdsl::Stream::new(&streamdsl::Device::cpu())?;
    /// assert_eq!(s.priority(), 0);
    /// # Ok::<(), streamdsl::Error>(())
    /// ```
    pub fn new(device: &Device) -> Result<Stream> {
        Self::with_priority(device, 0)
    }

    /// A new stream with `priority`: 0 or negative, lower runs first. Values below the device's highest
    /// priority clamp to it (as CUDA does); a positive value is [`Error::InvalidPriority`].
    ///
    /// ```
    /// use streamdsl::prelude::*;
    /// let dev = Device::cpu();
    /// assert_eq!(Stream::with_priority(&dev, -1)?.priority(), -1);
    /// assert_eq!(Stream::with_priority(&dev, -100)?.priority(), dev.priority_range().1);
    /// assert!(matches!(Stream::with_priority(&dev, 1), Err(Error::InvalidPriority { priority: 1 })));
    /// # Ok::<(), streamdsl::Error>(())
    /// ```
    pub fn with_priority(device: &Device, priority: i32) -> Result<Stream> {
        if priority > 0 {
            return Err(Error::InvalidPriority { priority });
        }
        Self::create(*device, priority.max(device.priority_range().1))
    }

    /// A stream on `device` with an already validated and clamped priority.
    pub(crate) fn create(device: Device, priority: i32) -> Result<Stream> {
        Self::on_backend(device, device.backend()?, priority)
    }

    /// A stream of `backend`, which runs `device`'s streams.
    fn on_backend(device: Device, backend: Backend, priority: i32) -> Result<Stream> {
        let name = format!("{device}/{}", NEXT_NAME.get().fetch_add(1, Ordering::Relaxed));
        if crate::trace::enabled() {
            let id = backend.machine().create_stream(priority, name.clone())?;
            crate::trace::stream_created(device, id, &name, priority);
            return Ok(Stream { inner: Arc::new(StreamInner { device, id, priority, backend }) });
        }
        let id = backend.machine().create_stream(priority, name)?;
        Ok(Stream { inner: Arc::new(StreamInner { device, id, priority, backend }) })
    }

    /// The stream's device.
    ///
    /// ```
    /// let s = streamdsl::Stream::new(&streamdsl::Device::cpu())?;
    /// assert!(s.device().is_cpu());
    /// # Ok::<(), streamdsl::Error>(())
    /// ```
    pub fn device(&self) -> Device {
        self.inner.device
    }

    /// The stream's priority after clamping.
    ///
    /// ```
    /// let s = streamdsl::Stream::with_priority(&streamdsl::Device::cpu(), -2)?;
    /// assert_eq!(s.priority(), -2);
    /// # Ok::<(), streamdsl::Error>(())
    /// ```
    pub fn priority(&self) -> i32 {
        self.inner.priority
    }

    /// A number that identifies the stream on its device.
    ///
    /// ```
    /// use streamdsl::prelude::*;
    /// let dev = Device::cpu();
    /// assert_ne!(Stream::new(&dev)?.id(), Stream::new(&dev)?.id());
    /// # Ok::<(), streamdsl::Error>(())
    /// ```
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// True when all work submitted so far has completed. Never blocks.
    ///
    /// ```
    /// let s = streamdsl::Stream::new(&streamdsl::Device::cpu())?;
    /// s.launch_host_func(|| std::thread::sleep(std::time::Duration::from_millis(50)));
    /// assert!(!s.query());
    /// s.synchronize()?;
    /// assert!(s.query());
    /// # Ok::<(), streamdsl::Error>(())
    /// ```
    pub fn query(&self) -> bool {
        self.machine().query(self.inner.id)
    }

    /// Blocks the host until all work submitted so far has completed. An error raised by that work
    /// comes back here as [`Error::StreamPoisoned`].
    ///
    /// ```
    /// let s = streamdsl::Stream::new(&streamdsl::Device::cpu())?;
    /// let t = streamdsl::ops::ones_on::<f32>(&s, [1000])?;
    /// s.synchronize()?;
    /// assert_eq!(t.sum()?.item()?, 1000.0);
    /// # Ok::<(), streamdsl::Error>(())
    /// ```
    pub fn synchronize(&self) -> Result<()> {
        let _trace = crate::trace::host_call("synchronize", self.inner.device, Some(self.inner.id));
        self.machine().synchronize(self.inner.id)
    }

    /// Records a new (untimed) event at the current tail of the queue.
    ///
    /// ```
    /// let s = streamdsl::Stream::new(&streamdsl::Device::cpu())?;
    /// let e = s.record_event();
    /// e.synchronize()?;
    /// assert!(e.query());
    /// # Ok::<(), streamdsl::Error>(())
    /// ```
    pub fn record_event(&self) -> Event {
        let e = Event::new(&self.device());
        // A failure to record (a broken CUDA context) leaves the event unrecorded; the next synchronize
        // reports the driver's error.
        let _ = self.record(&e);
        e
    }

    /// Records `event` at the current tail of the queue (overwriting an earlier record; waits already
    /// enqueued keep the old point). Err if the event belongs to another device.
    ///
    /// ```
    /// use streamdsl::prelude::*;
    /// let dev = Device::cpu();
    /// let s = Stream::new(&dev)?;
    /// let e = Event::timed(&dev);
    /// s.record(&e)?;
    /// e.synchronize()?;
    /// # Ok::<(), streamdsl::Error>(())
    /// ```
    pub fn record(&self, event: &Event) -> Result<()> {
        self.check_same_device("record", &event.device())?;
        let (point, stamp) = self.machine().record(self.inner.id, event.is_timed())?;
        event.set_recorded(point, stamp, self.inner.backend.clone());
        Ok(())
    }

    /// Later work on this stream waits until `event` completes. Does not block the host. Waiting on an
    /// event that was never recorded does nothing (CUDA semantics).
    ///
    /// ```
    /// use streamdsl::prelude::*;
    /// let dev = Device::cpu();
    /// let (a, b) = (Stream::new(&dev)?, Stream::new(&dev)?);
    /// a.launch_host_func(|| std::thread::sleep(std::time::Duration::from_millis(20)));
    /// let e = a.record_event();
    /// b.wait_event(&e)?;
    /// b.synchronize()?;          // returns only after `a`'s sleep
    /// assert!(e.query());
    /// # Ok::<(), streamdsl::Error>(())
    /// ```
    pub fn wait_event(&self, event: &Event) -> Result<()> {
        self.check_same_device("wait_event", &event.device())?;
        match event.point() {
            Some(p) => self.machine().wait(self.inner.id, p),
            None => Ok(()),
        }
    }

    /// Later work on this stream waits for all work already submitted to `other`.
    ///
    /// ```
    /// use streamdsl::prelude::*;
    /// let dev = Device::cpu();
    /// let (a, b) = (Stream::new(&dev)?, Stream::new(&dev)?);
    /// a.launch_host_func(|| std::thread::sleep(std::time::Duration::from_millis(20)));
    /// b.wait_stream(&a)?;
    /// b.synchronize()?;
    /// assert!(a.query());
    /// # Ok::<(), streamdsl::Error>(())
    /// ```
    pub fn wait_stream(&self, other: &Stream) -> Result<()> {
        self.check_same_device("wait_stream", &other.device())?;
        self.machine().wait(self.inner.id, other.machine().tail(other.inner.id))
    }

    /// Enqueues a host function, like `cuLaunchHostFunc`: it runs on the stream's worker in queue order.
    /// A panic inside it poisons the stream.
    ///
    /// ```
    /// use std::sync::{Arc, atomic::{AtomicBool, Ordering}};
    /// let s = streamdsl::Stream::new(&streamdsl::Device::cpu())?;
    /// let ran = Arc::new(AtomicBool::new(false));
    /// let flag = ran.clone();
    /// s.launch_host_func(move || flag.store(true, Ordering::SeqCst));
    /// s.synchronize()?;
    /// assert!(ran.load(Ordering::SeqCst));
    /// # Ok::<(), streamdsl::Error>(())
    /// ```
    pub fn launch_host_func(&self, f: impl FnOnce() + Send + 'static) {
        let work = Work::Host(Box::new(move || {
            f();
            Ok(())
        }));
        // The CPU machine cannot fail here; on CUDA a refused launch means the stream is poisoned or the
        // context is broken, which the next synchronize reports.
        let _ = self.machine().submit(self.inner.id, "host_func", Access { reads: &[], writes: &[] }, work);
    }

    /// Ends the poisoned state left by a failed op and returns its error; later work runs again.
    /// Tensors produced while the stream was poisoned stay invalid (reading them is an error).
    ///
    /// ```
    /// let s = streamdsl::Stream::new(&streamdsl::Device::cpu())?;
    /// s.launch_host_func(|| panic!("boom"));
    /// assert!(s.synchronize().is_err());
    /// assert!(s.clear_error().unwrap().to_string().contains("boom"));
    /// s.synchronize()?;
    /// # Ok::<(), streamdsl::Error>(())
    /// ```
    pub fn clear_error(&self) -> Option<Error> {
        self.machine().clear_error(self.inner.id)
    }

    /// The stream's machine, for what every backend does alike.
    pub(crate) fn machine(&self) -> &dyn Machine {
        self.inner.backend.machine()
    }

    /// The stream as its backend's queue, for enqueueing kernels: what each op matches on.
    pub(crate) fn queue(&self) -> Queue<'_> {
        self.inner.backend.queue(self.inner.id)
    }

    /// `Ok` when `other` is this stream's device, else [`Error::DeviceMismatch`] naming `op`.
    pub(crate) fn check_same_device(&self, op: &'static str, other: &Device) -> Result<()> {
        if *other == self.device() {
            Ok(())
        } else {
            Err(Error::DeviceMismatch { op, expected: self.device(), found: *other })
        }
    }
}

impl From<&Stream> for crate::trace::StreamKey {
    /// The stream's key in a [`crate::trace::Trace`].
    fn from(s: &Stream) -> Self {
        crate::trace::StreamKey { device: s.inner.device, id: s.inner.id }
    }
}

impl PartialEq for Stream {
    fn eq(&self, other: &Self) -> bool {
        self.inner.device == other.inner.device && self.inner.id == other.inner.id
    }
}

impl Eq for Stream {}

impl std::hash::Hash for Stream {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (self.inner.device, self.inner.id).hash(state);
    }
}

impl fmt::Debug for Stream {
    /// `Stream(device=cpu, id=3, priority=-1)`, like torch's `<torch.cuda.Stream device=cuda:0 ...>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Stream(device={}, id={}, priority={})", self.inner.device, self.inner.id, self.inner.priority)
    }
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl Device {
    /// The device's default stream (priority 0), the current stream of every thread that set no other. One per
    /// device, shared by all threads, like torch's.
    ///
    /// ```
    /// use streamdsl::prelude::*;
    /// let dev = Device::cpu();
    /// assert_eq!(dev.default_stream(), Stream::current(&dev));
    /// assert_eq!(dev.default_stream().priority(), 0);
    /// ```
    pub fn default_stream(&self) -> Stream {
        let made = |device: Device| Stream::create(device, 0);
        match self.kind {
            DeviceKind::Cpu => CPU_DEFAULT
                .get()
                .get_or_init(|| made(Device::cpu()).unwrap_or_else(|_| unreachable!("CPU streams never fail")))
                .clone(),
            DeviceKind::Cuda(n) => {
                let mut defaults = CUDA_DEFAULTS.get().lock().unwrap_or_else(|e| e.into_inner());
                if let Some(s) = defaults.get(&n) {
                    return s.clone();
                }
                match made(*self) {
                    Ok(s) => defaults.entry(n).or_insert(s).clone(),
                    // A CUDA `Device` value exists only once its machine was opened, and creating a stream there
                    // fails only with a broken context; the CPU's default stream keeps such a program running,
                    // and its ops then report the device mismatch.
                    Err(_) => Device::cpu().default_stream(),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operands_on_another_device_are_rejected() {
        let s = Stream::new(&Device::cpu()).unwrap();
        let gpu = Device::cuda_unopened(0);
        let e = s.check_same_device("mm", &gpu).unwrap_err();
        assert!(
            matches!(&e, Error::DeviceMismatch { op: "mm", expected, found } if expected.is_cpu() && *found == gpu)
        );
        assert_eq!(e.to_string(), "device mismatch in `mm`: the stream is on cpu but an operand is on cuda:0");
        assert!(matches!(s.wait_event(&Event::new(&gpu)), Err(Error::DeviceMismatch { op: "wait_event", .. })));
        assert!(matches!(s.record(&Event::new(&gpu)), Err(Error::DeviceMismatch { op: "record", .. })));
    }
}
