//! Prints synthetic events: `cargo run -p omnimeter-generate --example ndjson -- [customers] [days] [seed]`.

use std::io::Write as _;

use omnimeter_generate::{GenConfig, Generator};

fn main() -> std::io::Result<()> {
    let args: Vec<u64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let defaults = GenConfig::default();
    let cfg = GenConfig {
        customers: args.first().copied().unwrap_or(defaults.customers),
        days: args.get(1).map_or(defaults.days, |&d| d as u32),
        seed: args.get(2).copied().unwrap_or(defaults.seed),
        ..defaults
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let lines = Generator::new(cfg).write_to(&mut out, None)?;
    out.flush()?;
    eprintln!("{lines} lines");
    Ok(())
}
