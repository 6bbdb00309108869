//! The command line: flags parsed by clap into `Args` (mirroring what was typed), validated into
//! the library's options, dispatched, and mapped to an exit status. Errors are printed here.

use crate::driver::{self, BuildOptions};
use crate::error::Error;
use crate::load::{Location, Workspace};
use crate::progress;
use cache::{CacheAction, cache_command};
use clap::{Parser, Subcommand};
use parse::{destdir, parse_define, parse_timeout};
use std::io::Write;
use std::path::PathBuf;

mod cache;
mod completions;
mod parse;
mod queries;

/// The help heading of the options every subcommand takes.
const GLOBAL: &str = "Global options";

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
    #[arg(short = 'C', value_name = "DIR", global = true, help_heading = GLOBAL)]
    dir: Option<PathBuf>,
    /// Use FILE instead of the build.toml found in the current directory or its nearest parent
    #[arg(short = 'f', value_name = "FILE", global = true, help_heading = GLOBAL)]
    file: Option<PathBuf>,
    /// Build into DIR instead of [project] out
    #[arg(long, value_name = "DIR", global = true, help_heading = GLOBAL)]
    out: Option<PathBuf>,
    /// Build (or clean, list, explain) the [variant.NAME] variant, in its own build directory
    #[arg(long, value_name = "NAME", global = true, help_heading = GLOBAL)]
    variant: Option<String>,
    /// Set an [env] value to one string for this build (repeatable)
    #[arg(short = 'D', value_name = "NAME=VALUE", value_parser = parse_define, global = true, help_heading = GLOBAL)]
    define: Vec<(String, String)>,
    /// Share outputs through the local output cache in DIR
    #[arg(long, value_name = "DIR", env = "KILN_CACHE", global = true, help_heading = GLOBAL)]
    cache: Option<PathBuf>,
    /// Share outputs through a remote cache: http:// or https:// (the Bazel HTTP cache protocol),
    /// grpc:// or grpcs:// (the Remote Execution API's ActionCache and CAS)
    #[arg(long = "remote-cache", value_name = "URL", env = "KILN_REMOTE_CACHE", global = true, help_heading = GLOBAL)]
    remote_cache: Option<String>,
    /// Run tasks on a Remote Execution API (v2) engine at grpc://HOST:PORT or grpcs://HOST:PORT;
    /// -j then counts remote slots [default: 4x the CPUs]
    #[arg(long = "remote", value_name = "URL", env = "KILN_REMOTE", global = true, help_heading = GLOBAL)]
    remote: Option<String>,
    /// The engine's instance name, for --remote and grpc:// remote caches [default: none]
    #[arg(long = "remote-instance", value_name = "NAME", global = true, help_heading = GLOBAL)]
    remote_instance: Option<String>,
    /// Send this header to remote caches and engines (repeatable), e.g. 'Authorization: Bearer TOKEN'
    #[arg(long = "remote-header", value_name = "NAME: VALUE", value_parser = crate::cache::http::parse_header, global = true, help_heading = GLOBAL)]
    remote_header: Vec<(String, String)>,
    /// Bound each remote request to SECS seconds [default: 10]; past it, a miss
    #[arg(long = "remote-timeout", value_name = "SECS", value_parser = parse_timeout, global = true, help_heading = GLOBAL)]
    remote_timeout: Option<std::time::Duration>,
    /// Fail at once (exit 2) instead of waiting when another kiln works in the build directory
    #[arg(long = "no-wait", global = true, help_heading = GLOBAL)]
    no_wait: bool,
    /// Colour what kiln prints: auto follows the terminal, NO_COLOR and CLICOLOR_FORCE
    #[arg(long, value_name = "WHEN", value_enum, default_value_t = Color::Auto, global = true, help_heading = GLOBAL)]
    color: Color,
    /// `kiln` alone builds: it takes the options of `kiln build` (also when they come before
    /// `build`).
    #[command(flatten)]
    build: BuildArgs,
}

/// `--color`'s values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Color {
    Auto,
    Always,
    Never,
}

impl From<Color> for progress::ColorChoice {
    fn from(c: Color) -> Self {
        match c {
            Color::Auto => progress::ColorChoice::Auto,
            Color::Always => progress::ColorChoice::Always,
            Color::Never => progress::ColorChoice::Never,
        }
    }
}

const DRY_RUN: &str = "-n/--dry-run";
const JOBS: &str = "-j/--jobs";
const KEEP_GOING: &str = "-k/--keep-going";
const VERBOSE: &str = "-v/--verbose";
const WATCH: &str = "--watch";

/// The options of a build, taken by `kiln build` and by `kiln` alone.
#[derive(Debug, Clone, clap::Args)]
struct BuildArgs {
    /// Run at most N tasks at once [default: the number of CPUs]
    #[arg(short = 'j', long = "jobs", value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    jobs: Option<u32>,
    /// On failure, keep running every task that does not depend on a failed one
    #[arg(short = 'k', long = "keep-going")]
    keep_going: bool,
    /// Print what would run, run nothing, change nothing
    #[arg(short = 'n', long = "dry-run")]
    dry_run: bool,
    /// Print each full command
    #[arg(short = 'v', long = "verbose")]
    verbose: bool,
    /// Build only what these generators or output paths need (comma-separated)
    #[arg(long, value_name = "A,B", value_delimiter = ',')]
    targets: Vec<String>,
    /// Print why each task that runs must run (on stdout)
    #[arg(long)]
    explain: bool,
    /// Kill a task whose commands run longer than SECS seconds, and fail it
    #[arg(long, value_name = "SECS", value_parser = parse_timeout)]
    timeout: Option<std::time::Duration>,
    /// Debugging modes: `-d explain` is --explain; `-d stats` prints how long each phase took
    #[arg(short = 'd', value_name = "MODE", value_parser = ["explain", "stats"])]
    debug: Vec<String>,
    /// Write one line per scheduler decision to FILE, with its time (as SCons' Taskmaster trace)
    #[arg(long = "scheduler-trace", value_name = "FILE")]
    scheduler_trace: Option<PathBuf>,
    /// Read the output caches, store nothing in them
    #[arg(long = "cache-readonly")]
    cache_readonly: bool,
    /// Write a Chrome trace (Perfetto, chrome://tracing) of the tasks and phases to FILE
    #[arg(long = "trace", value_name = "FILE")]
    trace: Option<PathBuf>,
    /// Write <out>/kiln-timings.html: each task on its worker, coloured by rule, the critical path
    #[arg(long = "timings")]
    timings: bool,
    /// Build, then wait for changes and build again, until interrupted
    #[arg(long = "watch")]
    watch: bool,
}

impl BuildArgs {
    /// These options with `later` ones (typed after the subcommand) added; a value given twice
    /// takes the later one.
    fn merge(mut self, later: BuildArgs) -> BuildArgs {
        self.jobs = later.jobs.or(self.jobs);
        self.keep_going |= later.keep_going;
        self.dry_run |= later.dry_run;
        self.verbose |= later.verbose;
        self.targets.extend(later.targets);
        self.explain |= later.explain;
        self.timeout = later.timeout.or(self.timeout);
        self.debug.extend(later.debug);
        self.scheduler_trace = later.scheduler_trace.or(self.scheduler_trace);
        self.trace = later.trace.or(self.trace);
        self.cache_readonly |= later.cache_readonly;
        self.timings |= later.timings;
        self.watch |= later.watch;
        self
    }

    /// The flags given, as a usage error names them.
    fn given(&self) -> Vec<&'static str> {
        [
            (self.jobs.is_some(), JOBS),
            (self.keep_going, KEEP_GOING),
            (self.dry_run, DRY_RUN),
            (self.verbose, VERBOSE),
            (!self.targets.is_empty(), "--targets"),
            (self.explain, "--explain"),
            (self.timeout.is_some(), "--timeout"),
            (!self.debug.is_empty(), "-d"),
            (self.scheduler_trace.is_some(), "--scheduler-trace"),
            (self.trace.is_some(), "--trace"),
            (self.cache_readonly, "--cache-readonly"),
            (self.timings, "--timings"),
            (self.watch, WATCH),
        ]
        .into_iter()
        .filter_map(|(given, name)| given.then_some(name))
        .collect()
    }
}

#[derive(Debug, Subcommand, Clone)]
enum Command {
    /// Build everything (all groups, in order), or only what TARGETs need; the default
    Build {
        #[command(flatten)]
        args: BuildArgs,
        /// Generator names or output paths, as with --targets
        #[arg(value_name = "TARGET")]
        positional: Vec<String>,
    },
    /// Delete every file kiln's tasks made inside the build directory
    Clean(DeleteArgs),
    /// Delete the build directory and kiln's state
    Distclean(DeleteArgs),
    /// Run the [configure] checks now (kiln build runs them when their inputs changed); results under the build directory
    Configure,
    /// Build, then copy what generators' `install` and `[[install]]` entries declare
    Install(InstallArgs),
    /// Remove what `kiln install` wrote (into the same --destdir), and nothing else
    Uninstall {
        /// Remove from under DIR, as installed with --destdir DIR [default: $DESTDIR]
        #[arg(long, value_name = "DIR")]
        destdir: Option<PathBuf>,
    },
    /// List generators and their outputs
    List,
    /// Print compile_commands.json (clangd's compilation database) for the C/C++ compiles on stdout
    Compdb,
    /// Print the task graph (or the part the targets need) in Graphviz DOT on stdout
    Graph {
        /// Generator names or output paths; none for the whole graph
        #[arg(value_name = "TARGET")]
        targets: Vec<String>,
    },
    /// Print a completion script for SHELL on stdout (e.g. `source <(kiln completions bash)`)
    Completions {
        #[arg(value_enum)]
        shell: completions::Shell,
    },
    /// Print kiln's man page (roff) on stdout (e.g. `kiln man | man -l -`)
    Man,
    /// The local output cache (--cache DIR, or KILN_CACHE): stats, gc, clear
    Cache {
        #[command(subcommand)]
        action: CacheAction,
    },
    /// Say why targets (generator names or output paths) are or are not up to date, building nothing
    Explain {
        /// Generator names or output paths
        #[arg(required = true, value_name = "TARGET")]
        targets: Vec<String>,
        /// Print each full command
        #[arg(short = 'v', long = "verbose")]
        verbose: bool,
    },
}

/// The options of `clean` and `distclean`.
#[derive(Debug, Clone, clap::Args)]
struct DeleteArgs {
    /// Print what would be deleted, delete nothing
    #[arg(short = 'n', long = "dry-run")]
    dry_run: bool,
}

/// The options of `install`.
#[derive(Debug, Clone, clap::Args)]
struct InstallArgs {
    /// Install under DIR (staging, as make's DESTDIR) [default: $DESTDIR]
    #[arg(long, value_name = "DIR")]
    destdir: Option<PathBuf>,
    /// Install into DIR: sets PREFIX, as -D PREFIX=DIR [default: /usr/local]
    #[arg(long, value_name = "DIR")]
    prefix: Option<PathBuf>,
    /// Run at most N tasks at once while building [default: the number of CPUs]
    #[arg(short = 'j', long = "jobs", value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    jobs: Option<u32>,
    /// On a build failure, keep running every task that does not depend on a failed one (nothing
    /// is installed)
    #[arg(short = 'k', long = "keep-going")]
    keep_going: bool,
}

/// What the command line asks for, validated.
enum Action {
    /// `kiln`, `kiln build` and `kiln explain`.
    Build(BuildOptions),
    /// `kiln build --watch`.
    Watch(BuildOptions),
    Clean {
        dry_run: bool,
    },
    Distclean {
        dry_run: bool,
    },
    List,
    Compdb,
    /// A completion script or the man page: printed, no project needed.
    Print(Vec<u8>),
    Graph(Vec<String>),
    Configure,
    /// Build with these options, then install under `destdir`.
    Install {
        opts: BuildOptions,
        destdir: Option<PathBuf>,
    },
    Uninstall {
        destdir: Option<PathBuf>,
    },
}

impl Args {
    /// The action asked for, and whether `-d stats` was given.
    fn action(&self) -> Result<(Action, bool), Error> {
        let top = self.build.clone();
        let (args, explaining, targets) = match &self.command {
            None => (top, false, Vec::new()),
            Some(Command::Build { args, positional }) => {
                (top.merge(args.clone()), false, positional.clone())
            }
            Some(Command::Explain { targets, verbose }) => {
                let mut top = only(top, &[DRY_RUN, VERBOSE], "explain")?;
                top.verbose |= *verbose;
                (top, true, targets.clone())
            }
            Some(Command::Clean(d)) => {
                let dry_run = only(top, &[DRY_RUN], "clean")?.dry_run || d.dry_run;
                return Ok((Action::Clean { dry_run }, false));
            }
            Some(Command::Distclean(d)) => {
                let dry_run = only(top, &[DRY_RUN], "distclean")?.dry_run || d.dry_run;
                return Ok((Action::Distclean { dry_run }, false));
            }
            Some(Command::Install(i)) => {
                let top = only(top, &[JOBS, KEEP_GOING], "install")?;
                let (jobs, slots) = slots(i.jobs.or(top.jobs));
                let opts = BuildOptions {
                    jobs,
                    slots,
                    keep_going: i.keep_going || top.keep_going,
                    no_wait: self.no_wait,
                    ..self.cache_options()
                };
                let destdir = destdir(&i.destdir)?;
                return Ok((Action::Install { opts, destdir }, false));
            }
            Some(Command::Uninstall { destdir: d }) => {
                only(top, &[], "uninstall")?;
                let destdir = destdir(d)?;
                return Ok((Action::Uninstall { destdir }, false));
            }
            Some(Command::List) => {
                only(top, &[DRY_RUN], "list")?;
                return Ok((Action::List, false));
            }
            Some(Command::Completions { shell }) => {
                only(top, &[], "completions")?;
                return Ok((Action::Print(completions::script(*shell)), false));
            }
            Some(Command::Cache { action }) => {
                only(top, &[], "cache")?;
                let dir = self.cache.clone().ok_or_else(|| {
                    Error::Usage(
                        "`kiln cache` needs a cache: give --cache DIR or set KILN_CACHE".into(),
                    )
                })?;
                return Ok((Action::Print(cache_command(&dir, action)?), false));
            }
            Some(Command::Man) => {
                only(top, &[], "man")?;
                return Ok((Action::Print(completions::man()), false));
            }
            Some(Command::Compdb) => {
                only(top, &[], "compdb")?;
                return Ok((Action::Compdb, false));
            }
            Some(Command::Graph { targets }) => {
                only(top, &[], "graph")?;
                return Ok((Action::Graph(targets.clone()), false));
            }
            Some(Command::Configure) => {
                only(top, &[], "configure")?;
                return Ok((Action::Configure, false));
            }
        };
        let stats = args.debug.iter().any(|d| d == "stats");
        let (mut jobs, slots) = slots(args.jobs);
        // Remote slots wait on the network, not on this machine's CPUs.
        if args.jobs.is_none() && self.remote.is_some() && matches!(slots, driver::Slots::Own) {
            jobs *= 4;
        }
        let opts = BuildOptions {
            jobs,
            slots,
            keep_going: args.keep_going,
            dry_run: args.dry_run || explaining,
            verbose: args.verbose,
            targets: args
                .targets
                .into_iter()
                .chain(targets)
                .filter(|t| !t.is_empty())
                .collect(),
            no_wait: self.no_wait,
            explain: args.explain || explaining || args.debug.iter().any(|d| d == "explain"),
            explain_targets: explaining,
            timeout: args.timeout,
            cache_readonly: args.cache_readonly,
            scheduler_trace: args.scheduler_trace,
            trace: args.trace,
            timings: args.timings,
            ..self.cache_options()
        };
        if args.watch {
            if opts.dry_run {
                return Err(Error::Usage(format!(
                    "{WATCH} does not go with {DRY_RUN}: a dry run changes nothing to watch"
                )));
            }
            return Ok((Action::Watch(opts), stats));
        }
        Ok((Action::Build(opts), stats))
    }
}

/// Build options typed before a subcommand that is not a build: only those in `allowed` mean
/// something there (`-n`: `kiln -n clean` is a dry run too); any other is a usage error, as it is
/// after the subcommand.
fn only(top: BuildArgs, allowed: &[&str], command: &str) -> Result<BuildArgs, Error> {
    let given: Vec<&str> = top
        .given()
        .into_iter()
        .filter(|f| !allowed.contains(f))
        .collect();
    if given.is_empty() {
        Ok(top)
    } else {
        Err(Error::Usage(format!(
            "{} {} not apply to `kiln {command}`; build options go with `kiln build`",
            given.join(", "),
            if given.len() == 1 { "does" } else { "do" }
        )))
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
    let result = args.action().and_then(|(action, stats)| {
        crate::stats::start(stats);
        let result = run(&args, action);
        if stats {
            let _ = std::io::stderr().write_all(crate::stats::report().as_bytes());
        }
        result
    });
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

fn run(args: &Args, action: Action) -> Result<i32, Error> {
    if let Action::Print(text) = action {
        // A closed stdout (`| head -1`) is not an error worth a message.
        let _ = std::io::stdout().lock().write_all(&text);
        return Ok(0);
    }
    let mut location = Location {
        dir: args.dir.clone(),
        file: args.file.clone(),
        out: args.out.clone(),
        defines: args.define.clone(),
        variant: args.variant.clone(),
    };
    // --prefix is -D PREFIX=DIR, given last so that it wins.
    if let Some(Command::Install(InstallArgs {
        prefix: Some(prefix),
        ..
    })) = &args.command
    {
        let cwd = std::env::current_dir()
            .map_err(|e| Error::io("cannot read the current directory", e))?;
        let abs = crate::paths::normalize(&cwd.join(prefix).to_string_lossy());
        location.defines.push(("PREFIX".to_string(), abs));
    }
    let ws = Workspace::locate(&location)?;
    // A dry run prints its lines even on a terminal: they are what it is asked for.
    let live = !matches!(&action, Action::Build(opts) if opts.dry_run);
    let mut progress = progress::for_stderr(args.color.into(), live);
    let listen =
        || crate::interrupt::listen().map_err(|e| Error::io("cannot listen for signals", e));
    let wait = !args.no_wait;
    match action {
        Action::List => queries::list(&ws),
        Action::Graph(targets) => queries::graph(&ws, &targets),
        Action::Compdb => queries::compdb(&ws, progress.as_mut()),
        Action::Print(_) => unreachable!("printed before the project is looked for"),
        Action::Configure => {
            let started = std::time::Instant::now();
            let project = ws.configure(&mut |line| progress.message(&line))?;
            if project.configure.is_none() {
                progress.message(&format!(
                    "nothing to configure: {} has no [configure]",
                    project.sources.top().name
                ));
            }
            progress.done(&format!(
                "'configure' finished successfully ({:.3}s)",
                started.elapsed().as_secs_f64()
            ));
            Ok(0)
        }
        Action::Build(opts) => driver::build(&ws, &opts, progress.as_mut(), &listen()?),
        Action::Watch(opts) => {
            drop(progress);
            let color = args.color.into();
            let mut progress = || progress::for_stderr(color, true);
            crate::watch::watch(&ws, &opts, &mut progress, &listen()?)
        }
        Action::Clean { dry_run } => {
            let signals = listen()?;
            let how = crate::clean::How { wait, dry_run };
            crate::clean::clean(&ws.load()?, how, progress.as_mut(), &signals)
        }
        Action::Distclean { dry_run } => {
            let signals = listen()?;
            let how = crate::clean::How { wait, dry_run };
            crate::clean::distclean(&ws.load()?, how, progress.as_mut(), &signals)
        }
        Action::Install { opts, destdir } => {
            let code = driver::build(&ws, &opts, progress.as_mut(), &listen()?)?;
            if code != 0 {
                return Ok(code);
            }
            // Parsed, not read from the graph cache, which keeps no install data.
            let project = ws.load()?;
            crate::install::install(&project, destdir.as_deref(), progress.as_mut())
        }
        Action::Uninstall { destdir } => {
            crate::install::uninstall(&ws.load()?, destdir.as_deref(), progress.as_mut())
        }
    }
}

/// `-j` and where the job slots come from: without `-j`, from the jobserver MAKEFLAGS offers (at
/// most make's `-jN`), as a recursive make takes them; else from kiln's own.
fn slots(jobs: Option<u32>) -> (usize, driver::Slots) {
    if let Some(j) = jobs {
        return (j as usize, driver::Slots::Own);
    }
    let offer = std::env::var("MAKEFLAGS")
        .ok()
        .and_then(|flags| crate::jobserver::offered(&flags));
    match offer {
        Some((offer, jobs)) => (
            jobs.unwrap_or_else(default_jobs),
            driver::Slots::Make(offer),
        ),
        None => (default_jobs(), driver::Slots::Own),
    }
}

/// The default `-j`: the number of CPUs.
fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_definition_is_consistent() {
        <Args as clap::CommandFactory>::command().debug_assert();
    }
}
