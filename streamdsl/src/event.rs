//! Events: markers in a stream's queue, with `torch.Event` semantics.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::backend::{Backend, Stamp};
use crate::device::Device;
use crate::error::{Error, Result};
use crate::hazard::Point;

/// A marker in a stream's queue, like `torch.Event` / a CUDA event.
///
/// An event completes when all work before its record point on that stream has completed. Timed events
/// ([`Event::timed`]) also carry the completion time, so two of them measure the work between them.
/// Recording again moves the event; waits already enqueued keep the old point. Clones share the event.
///
/// ```
/// use streamdsl::prelude::*;
/// let dev = Device::cpu();
/// let s = Stream::new(&dev)?;
/// let (start, end) = (Event::timed(&dev), Event::timed(&dev));
/// s.record(&start)?;
/// s.launch_host_func(|| std::thread::sleep(std::time::Duration::from_millis(10)));
/// s.record(&end)?;
/// end.synchronize()?;
/// assert!(start.elapsed_time(&end)? >= std::time::Duration::from_millis(10));
/// # Ok::<(), streamdsl::Error>(())
/// ```
#[derive(Clone)]
pub struct Event {
    inner: Arc<EventInner>,
}

struct EventInner {
    device: Device,
    timed: bool,
    recorded: Mutex<Option<Recorded>>,
}

#[derive(Clone)]
struct Recorded {
    point: Point,
    stamp: Option<Stamp>,
    backend: Backend,
}

impl Event {
    /// An event without timing (cheaper, like `torch.Event(enable_timing=False)`).
    ///
    /// ```
    /// let e = streamdsl::Event::new(&streamdsl::Device::cpu());
    /// assert!(!e.is_timed());
    /// assert!(e.query()); // never recorded: nothing to wait for
    /// ```
    pub fn new(device: &Device) -> Event {
        Self::create(device, false)
    }

    /// An event that records its completion time, for [`elapsed_time`](Event::elapsed_time).
    ///
    /// ```
    /// assert!(streamdsl::Event::timed(&streamdsl::Device::cpu()).is_timed());
    /// ```
    pub fn timed(device: &Device) -> Event {
        Self::create(device, true)
    }

    fn create(device: &Device, timed: bool) -> Event {
        Event { inner: Arc::new(EventInner { device: *device, timed, recorded: Mutex::new(None) }) }
    }

    /// The event's device.
    ///
    /// ```
    /// assert!(streamdsl::Event::new(&streamdsl::Device::cpu()).device().is_cpu());
    /// ```
    pub fn device(&self) -> Device {
        self.inner.device
    }

    /// Whether the event records timestamps.
    ///
    /// ```
    /// assert!(!streamdsl::Event::new(&streamdsl::Device::cpu()).is_timed());
    /// ```
    pub fn is_timed(&self) -> bool {
        self.inner.timed
    }

    /// Whether the event has been recorded on a stream.
    ///
    /// ```
    /// let s = streamdsl::Stream::new(&streamdsl::Device::cpu())?;
    /// let e = streamdsl::Event::new(&s.device());
    /// assert!(!e.is_recorded());
    /// s.record(&e)?;
    /// assert!(e.is_recorded());
    /// # Ok::<(), streamdsl::Error>(())
    /// ```
    pub fn is_recorded(&self) -> bool {
        self.recorded().is_some()
    }

    /// True when the work before the record point has completed (or the event was never recorded).
    /// Never blocks.
    ///
    /// ```
    /// let s = streamdsl::Stream::new(&streamdsl::Device::cpu())?;
    /// s.launch_host_func(|| std::thread::sleep(std::time::Duration::from_millis(50)));
    /// let e = s.record_event();
    /// assert!(!e.query());
    /// e.synchronize()?;
    /// assert!(e.query());
    /// # Ok::<(), streamdsl::Error>(())
    /// ```
    pub fn query(&self) -> bool {
        self.recorded().is_none_or(|r| r.backend.machine().is_complete(r.point))
    }

    /// Blocks the host until the event completes; returns the error of a failed op before it, if any.
    ///
    /// ```
    /// let s = streamdsl::Stream::new(&streamdsl::Device::cpu())?;
    /// s.record_event().synchronize()?;
    /// # Ok::<(), streamdsl::Error>(())
    /// ```
    pub fn synchronize(&self) -> Result<()> {
        match self.recorded() {
            Some(r) => {
                let _trace = crate::trace::host_call("Event::synchronize", self.inner.device, Some(r.point.stream));
                r.backend.machine().wait_host(r.point)
            }
            None => Ok(()),
        }
    }

    /// The time from this event's completion to `end`'s, like `torch.Event.elapsed_time` (which
    /// returns milliseconds). Both must be timed, recorded and complete.
    ///
    /// ```
    /// use streamdsl::prelude::*;
    /// let dev = Device::cpu();
    /// let (a, b) = (Event::timed(&dev), Event::new(&dev));
    /// assert!(matches!(a.elapsed_time(&b), Err(Error::EventNotTimed)));
    /// assert!(matches!(a.elapsed_time(&a), Err(Error::EventNotRecorded)));
    /// ```
    pub fn elapsed_time(&self, end: &Event) -> Result<Duration> {
        if !self.is_timed() || !end.is_timed() {
            return Err(Error::EventNotTimed);
        }
        let stamp = |e: &Event| -> Result<Stamp> {
            e.recorded().ok_or(Error::EventNotRecorded)?.stamp.ok_or(Error::EventNotTimed)
        };
        let backwards = || Error::InvalidArgument {
            op: "elapsed_time",
            reason: "the end event completed before the start event".into(),
        };
        match (stamp(self)?, stamp(end)?) {
            (Stamp::Host(t0), Stamp::Host(t1)) => {
                let (t0, t1) =
                    (t0.get().copied().ok_or(Error::EventNotReady)?, t1.get().copied().ok_or(Error::EventNotReady)?);
                t1.checked_duration_since(t0).ok_or_else(backwards)
            }
            (Stamp::Device(t0), Stamp::Device(t1)) => crate::backend::cuda::elapsed(&t0, &t1),
            _ => Err(Error::DeviceMismatch { op: "elapsed_time", expected: self.device(), found: end.device() }),
        }
    }

    pub(crate) fn point(&self) -> Option<Point> {
        self.recorded().map(|r| r.point)
    }

    fn recorded(&self) -> Option<Recorded> {
        self.inner.recorded.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Makes the event stand for `point` of a stream of `backend` (what `Stream::record` measured there).
    pub(crate) fn set_recorded(&self, point: Point, stamp: Option<Stamp>, backend: Backend) {
        *self.inner.recorded.lock().unwrap_or_else(|e| e.into_inner()) = Some(Recorded { point, stamp, backend });
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Event(device={}, timed={}, recorded={})", self.inner.device, self.inner.timed, self.is_recorded())
    }
}
