//! Seeded generators: a seed plus an offset that advances by one per call.

use std::sync::Mutex;

use crate::runtime::ProcessWide;

/// The seed of the default generator until [`manual_seed`] changes it (PyTorch's default seed).
pub const DEFAULT_SEED: u64 = 67_280_421_310_721;

/// A Philox generator, like `torch.Generator`: a 64-bit seed and an offset.
///
/// Each `randn` call takes the current offset and advances it by one; element `i` of that call is drawn
/// from counter `(i / 4, offset)`. So a generator replays the same tensors after [`Generator::manual_seed`],
/// on any backend and for any stream the calls are enqueued on.
///
/// ```
/// use streamdsl::prelude::*;
/// let s = Stream::new(&Device::cpu())?;
/// let g = Generator::new(42);
/// let a = ops::randn_with_on::<f32>(&s, [3], &g)?.to_vec()?;
/// g.manual_seed(42);
/// let b = ops::randn_with_on::<f32>(&s, [3], &g)?.to_vec()?;
/// assert_eq!(a, b);
/// # Ok::<(), streamdsl::Error>(())
/// ```
#[derive(Debug)]
pub struct Generator {
    state: Mutex<(u64, u64)>,
}

impl Generator {
    /// A generator with `seed` and offset 0.
    ///
    /// ```
    /// assert_eq!(streamdsl::Generator::new(7).seed(), 7);
    /// ```
    pub fn new(seed: u64) -> Self {
        Generator { state: Mutex::new((seed, 0)) }
    }

    /// Resets to `seed` and offset 0.
    ///
    /// ```
    /// let g = streamdsl::Generator::new(1);
    /// g.manual_seed(2);
    /// assert_eq!((g.seed(), g.offset()), (2, 0));
    /// ```
    pub fn manual_seed(&self, seed: u64) {
        *self.lock() = (seed, 0);
    }

    /// The seed.
    ///
    /// ```
    /// assert_eq!(streamdsl::Generator::new(3).seed(), 3);
    /// ```
    pub fn seed(&self) -> u64 {
        self.lock().0
    }

    /// The offset the next call will use.
    ///
    /// ```
    /// assert_eq!(streamdsl::Generator::new(3).offset(), 0);
    /// ```
    pub fn offset(&self) -> u64 {
        self.lock().1
    }

    /// Takes `(seed, offset)` for one call and advances the offset.
    pub(crate) fn next_call(&self) -> (u64, u64) {
        let mut st = self.lock();
        let taken = *st;
        st.1 = st.1.wrapping_add(1);
        taken
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (u64, u64)> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The process-wide generator used by `randn` without an explicit generator.
///
/// ```
/// streamdsl::manual_seed(5);
/// assert_eq!(streamdsl::random::default_generator().seed(), 5);
/// ```
pub fn default_generator() -> &'static Generator {
    DEFAULT_GENERATOR.get()
}

/// The default generator: one per process.
static DEFAULT_GENERATOR: ProcessWide<Generator> =
    ProcessWide::new("rng.default_generator", || Generator::new(DEFAULT_SEED));

/// Seeds the default generator, like `torch.manual_seed`.
///
/// ```
/// use streamdsl::prelude::*;
/// streamdsl::manual_seed(9);
/// let a = randn::<f32>([4])?.to_vec()?;
/// streamdsl::manual_seed(9);
/// assert_eq!(a, randn::<f32>([4])?.to_vec()?);
/// # Ok::<(), streamdsl::Error>(())
/// ```
pub fn manual_seed(seed: u64) {
    default_generator().manual_seed(seed);
}
