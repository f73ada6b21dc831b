use streamdsl::prelude::*;

/// Hands a value to a worker thread, as `std::thread::scope(|t| t.spawn(..))` or a channel to a pool would.
fn on_another_thread<T: Send>(value: T) {
    std::thread::scope(|t| {
        t.spawn(move || drop(value));
    });
}

fn main() -> Result<()> {
    let s = Stream::new(&Device::cpu())?;
    let guard = s.scope();
    on_another_thread(guard);
    Ok(())
}
