//! The command line: flags parsed by clap into [`Args`] (mirroring what was typed), validated into
//! the library's options, dispatched, and mapped to an exit status. Errors are printed here.

use crate::driver::{self, BuildOptions};
use crate::error::Error;
use crate::generator::Expansion;
use crate::progress;
use crate::workspace::{Location, Workspace};
use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "kiln",
    version,
    about = "A declarative build tool with content signatures: reads build.toml and builds what changed",
    args_conflicts_with_subcommands = false
)]
pub struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// Run as if started in DIR
    #[arg(short = 'C', value_name = "DIR", global = true)]
    dir: Option<PathBuf>,
    /// Use FILE instead of the build.toml found in the current directory or its nearest parent
    #[arg(short = 'f', value_name = "FILE", global = true)]
    file: Option<PathBuf>,
    /// Build into DIR instead of [project] out
    #[arg(long, value_name = "DIR", global = true)]
    out: Option<PathBuf>,
    /// Set an [env] value to one string for this build (repeatable)
    #[arg(short = 'D', value_name = "NAME=VALUE", value_parser = parse_define, global = true)]
    define: Vec<(String, String)>,
    /// Run at most N tasks at once [default: the number of CPUs]
    #[arg(short = 'j', long = "jobs", value_name = "N", value_parser = clap::value_parser!(u32).range(1..), global = true)]
    jobs: Option<u32>,
    /// On failure, keep running every task that does not depend on a failed one
    #[arg(short = 'k', long = "keep-going", global = true)]
    keep_going: bool,
    /// Print what would run, run nothing, change nothing
    #[arg(short = 'n', long = "dry-run", global = true)]
    dry_run: bool,
    /// Print each full command
    #[arg(short = 'v', long = "verbose", global = true)]
    verbose: bool,
    /// Build only what these generators or output paths need (comma-separated)
    #[arg(long, value_name = "A,B", value_delimiter = ',', global = true)]
    targets: Vec<String>,
    /// Fail at once (exit 2) instead of waiting when another kiln works in the build directory
    #[arg(long = "no-wait", global = true)]
    no_wait: bool,
    /// Print why each task that runs must run (on stdout)
    #[arg(long, global = true)]
    explain: bool,
    /// Kill a task whose commands run longer than SECS seconds, and fail it
    #[arg(long, value_name = "SECS", value_parser = parse_timeout, global = true)]
    timeout: Option<std::time::Duration>,

    /// Debugging modes: `-d explain` is --explain; `-d stats` prints how long each phase took
    #[arg(short = 'd', value_name = "MODE", value_parser = ["explain", "stats"], global = true)]
    debug: Vec<String>,
}

#[derive(Debug, Subcommand, Clone, PartialEq, Eq)]
enum Command {
    /// Build everything (all groups, in order); the default
    Build,
    /// Delete every file kiln's tasks made inside the build directory
    Clean,
    /// Delete the build directory and kiln's state
    Distclean,
    /// List generators and their outputs
    List,
    /// Say why targets (generator names or output paths) are or are not up to date, building nothing
    Explain {
        /// Generator names or output paths
        #[arg(required = true, value_name = "TARGET")]
        targets: Vec<String>,
    },
}

fn parse_define(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_string(), value.to_string())),
        _ => Err(format!("expected NAME=VALUE, found `{s}`")),
    }
}

fn parse_timeout(s: &str) -> Result<std::time::Duration, String> {
    match s.parse::<f64>() {
        Ok(secs) if secs.is_finite() && (0.001..1e9).contains(&secs) => {
            Ok(std::time::Duration::from_secs_f64(secs))
        }
        _ => Err(format!(
            "expected a number of seconds from 0.001 up, found `{s}`"
        )),
    }
}

/// Runs kiln with these arguments and returns the exit status.
pub fn main(args: impl IntoIterator<Item = std::ffi::OsString>) -> i32 {
    let args = match Args::try_parse_from(args) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return e.exit_code();
        }
    };
    let stats = args.debug.iter().any(|d| d == "stats");
    crate::stats::start(stats);
    let result = run(&args);
    if stats {
        let _ = std::io::stderr().write_all(crate::stats::report().as_bytes());
    }
    match result {
        Ok(code) => code,
        Err(e) => {
            let text = e.to_string();
            let mut err = std::io::stderr().lock();
            let _ = err.write_all(text.as_bytes());
            if !text.ends_with('\n') {
                let _ = err.write_all(b"\n");
            }
            e.exit_code()
        }
    }
}

fn run(args: &Args) -> Result<i32, Error> {
    let location = Location {
        dir: args.dir.clone(),
        file: args.file.clone(),
        out: args.out.clone(),
        defines: args.define.clone(),
    };
    let command = args.command.clone().unwrap_or(Command::Build);
    let ws = Workspace::locate(&location)?;
    let mut progress = progress::for_stderr();
    match command {
        Command::List => list(&ws),
        Command::Build | Command::Explain { .. } => {
            let signals = crate::interrupt::listen()
                .map_err(|e| Error::io("cannot listen for signals", e))?;
            let explaining = matches!(command, Command::Explain { .. });
            let targets = match &command {
                Command::Explain { targets } => targets.clone(),
                _ => args.targets.clone(),
            };
            let opts = BuildOptions {
                jobs: args.jobs.map_or_else(default_jobs, |j| j as usize),
                keep_going: args.keep_going,
                dry_run: args.dry_run || explaining,
                verbose: args.verbose,
                targets: targets.into_iter().filter(|t| !t.is_empty()).collect(),
                no_wait: args.no_wait,
                explain: args.explain || explaining || args.debug.iter().any(|d| d == "explain"),
                explain_targets: explaining,
                timeout: args.timeout,
            };
            driver::build(&ws, &opts, progress.as_mut(), &signals)
        }
        Command::Clean | Command::Distclean => {
            let signals = crate::interrupt::listen()
                .map_err(|e| Error::io("cannot listen for signals", e))?;
            if command == Command::Clean {
                crate::clean::clean(&ws.load()?, progress.as_mut(), &signals, !args.no_wait)
            } else {
                crate::clean::distclean(&ws.load()?, progress.as_mut(), &signals, !args.no_wait)
            }
        }
    }
}

/// The default `-j`: the number of CPUs.
fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `kiln list`: one line per generator, its name then its outputs, on stdout.
fn list(ws: &Workspace) -> Result<i32, Error> {
    let project = ws.load()?;
    let x = Expansion::expand_all(&project)?;
    let mut text = String::new();
    for (g, gn) in project.gens.iter().enumerate() {
        text.push_str(&gn.name);
        for &f in &x.gen_outputs[g] {
            text.push(' ');
            text.push_str(x.graph.path(f));
        }
        text.push('\n');
    }
    // A closed stdout (`| head -1`) is not an error worth a message.
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    crate::drop_in_background((project, x));
    Ok(0)
}
