//! What a build is asked to do (`BuildOptions`), and where its job slots come from: make's
//! jobserver, or one of kiln's own.

use crate::jobserver::{Jobserver, Offer};
use crate::progress::Progress;
use std::path::PathBuf;

/// How to build: what `kiln build`'s options say. The default builds everything at `-j` the
/// number of CPUs, stopping at the first failure.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// At most this many tasks at once (`-j`).
    pub jobs: usize,
    /// Keep running every task that does not depend on a failed one (`-k`).
    pub keep_going: bool,
    /// Say what would run; run nothing, change nothing (`-n`).
    pub dry_run: bool,
    /// Show every full command and every input (`-v`).
    pub verbose: bool,
    /// Generator names or output paths; empty for everything.
    pub targets: Vec<String>,
    /// Do not wait for another kiln holding the lock.
    pub no_wait: bool,
    /// Print why each task that runs must run (on stdout).
    pub explain: bool,
    /// `kiln explain`: also say which tasks are up to date, and end with a verdict on stdout.
    pub explain_targets: bool,
    /// How long a task's commands may run before they are killed and the task fails.
    pub timeout: Option<std::time::Duration>,
    /// Where the job slots come from.
    pub slots: Slots,
    /// Write the scheduler's decisions here, one line each (`--scheduler-trace`).
    pub scheduler_trace: Option<PathBuf>,
    /// Write a Chrome trace of the build here (`--trace`).
    pub trace: Option<PathBuf>,
    /// Write `<out>/kiln-timings.html` (`--timings`).
    pub timings: bool,
    /// The local output cache (`--cache DIR`, `KILN_CACHE`).
    pub cache: Option<PathBuf>,
    /// Read the caches, store nothing (`--cache-readonly`).
    pub cache_readonly: bool,
    /// A remote cache's URL (`--remote-cache`, `KILN_REMOTE_CACHE`), the headers sent to it
    /// (`--remote-header`) and the bound on each request (`--remote-timeout`).
    pub remote_cache: Option<String>,
    pub remote_headers: Vec<(String, String)>,
    pub remote_timeout: std::time::Duration,
    /// A Remote Execution API engine to run tasks on (`--remote`), and the instance name it and
    /// a grpc:// remote cache are asked for (`--remote-instance`).
    pub remote: Option<String>,
    pub remote_instance: String,
}

impl BuildOptions {
    /// Whether what the build does is recorded for a trace or the timings page.
    pub fn traced(&self) -> bool {
        self.scheduler_trace.is_some() || self.trace.is_some() || self.timings
    }
}

/// Where a build's job slots come from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Slots {
    /// A jobserver of kiln's own with `-j` slots, which the commands kiln runs share.
    #[default]
    Own,
    /// make's jobserver, which MAKEFLAGS offers (under `make -jN`, without `-j`).
    Make(Offer),
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
            keep_going: false,
            dry_run: false,
            verbose: false,
            targets: Vec::new(),
            no_wait: false,
            explain: false,
            explain_targets: false,
            timeout: None,
            slots: Slots::Own,
            scheduler_trace: None,
            trace: None,
            timings: false,
            cache: None,
            cache_readonly: false,
            remote_cache: None,
            remote_headers: Vec::new(),
            remote_timeout: std::time::Duration::from_secs(10),
            remote: None,
            remote_instance: String::new(),
        }
    }
}

/// The jobserver of a build: make's when the options say so and it can be used (else, as make
/// does, one slot), or kiln's own; none when not even a pipe can be made.
pub(super) fn jobserver(opts: &BuildOptions, progress: &mut dyn Progress) -> Option<Jobserver> {
    let makeflags = std::env::var("MAKEFLAGS").ok();
    let jobs = match &opts.slots {
        Slots::Own => opts.jobs,
        Slots::Make(offer) => match Jobserver::join(offer) {
            Ok(j) => return Some(j),
            Err(why) => {
                progress.message(&format!("warning: {why}; running one task at a time"));
                1
            }
        },
    };
    match Jobserver::serve(jobs, makeflags.as_deref()) {
        Ok(j) => Some(j),
        Err(e) => {
            progress.message(&format!(
                "warning: cannot make a jobserver for the commands ({e}); a make inside a task \
                 will not share -j"
            ));
            None
        }
    }
}

