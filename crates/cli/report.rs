//! `omnimeter report`: one self-contained HTML file from an output folder's tables.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

#[derive(Debug, Args)]
pub(crate) struct ReportArgs {
    /// Output folder of a run (the Parquet tables).
    #[arg(long, value_name = "DIR")]
    pub(crate) input: PathBuf,
    /// HTML file to write.
    #[arg(long, value_name = "FILE")]
    pub(crate) html: PathBuf,
}

pub(crate) fn run(args: &ReportArgs) -> Result<()> {
    let report = omnimeter_report::Report::from_dir(&args.input)?;
    let html = report.to_html().context("rendering the report")?;
    std::fs::write(&args.html, html).with_context(|| format!("cannot write {}", args.html.display()))?;
    let h = report.headline();
    let pct = |x: Option<f64>| x.map_or("–".to_owned(), |v| format!("{:.1}%", v * 100.0));
    println!(
        "omnimeter report: {} journeys, conversion {}, first-contact resolution {} → {}",
        h.journeys,
        pct(h.conversion_rate),
        pct(h.fcr_rate),
        args.html.display()
    );
    Ok(())
}
