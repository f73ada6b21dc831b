use streamdsl::prelude::*;

fn main() -> Result<()> {
    let s = Stream::new(&Device::cpu())?;
    let guard = s.scope();
    std::thread::scope(|t| {
        t.spawn(move || drop(guard));
    });
    Ok(())
}
