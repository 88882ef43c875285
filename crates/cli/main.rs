//! `omnimeter`: the command line over the engine and its adapters. It parses
//! arguments, picks the mode, and turns every failure into one line on stderr
//! and an exit code (2 for bad usage, input or output, 3 for lost offsets).

mod args;
mod demo;
mod file_mode;
mod generate;
mod kafka_mode;
mod line_blocks;
mod output;
mod report;
mod resolve_mode;

use std::process::ExitCode;

use clap::Parser;

use crate::args::{Cli, Command};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            // clap's first line names the flag and what was wrong; the usage block after it is noise in logs.
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or("invalid arguments").trim_start_matches("error: ");
            eprintln!("omnimeter: {first} (see omnimeter --help)");
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Run(run) if run.input.is_some() => file_mode::run(&run).map_err(Failure::Usage),
        Command::Run(run) => kafka_mode::run(&run),
        Command::Generate(g) => generate::run(&g).map_err(Failure::Usage),
        Command::Demo(d) => demo::run(&d).map_err(Failure::Runtime),
        Command::Report(r) => report::run(&r).map_err(Failure::Usage),
        Command::Resolve(r) => resolve_mode::run(&r),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(e)) => {
            eprintln!("omnimeter: {e:#}");
            ExitCode::from(2)
        }
        Err(Failure::Runtime(e)) => {
            eprintln!("omnimeter: {e:#}");
            ExitCode::from(1)
        }
        Err(Failure::DataLoss(e)) => {
            eprintln!("omnimeter: {e:#}");
            ExitCode::from(3)
        }
    }
}

/// How a command failed: bad configuration, input or output (exit 2), a fault
/// while running, such as a broker or disk failure that did not heal (exit 1), or
/// offsets the broker deleted before they were read (exit 3, SPEC §4).
pub(crate) enum Failure {
    Usage(anyhow::Error),
    Runtime(anyhow::Error),
    DataLoss(anyhow::Error),
}
