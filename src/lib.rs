//! kiln: a declarative build tool with content signatures, in the tradition of waf.
//!
//! A program embeds kiln through a small API: find a project ([`Project::locate`]), build it with
//! [`BuildOptions`] and a [`Progress`] sink, list its generators, or explain why targets are or
//! are not up to date. Everything a build prints goes to the sink ([`Lines`] writes it to stderr
//! as `kiln` does).
//!
//! ```
//! # fn main() -> Result<(), kiln::Error> {
//! let dir = std::env::temp_dir().join(format!("kiln-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! std::fs::write(dir.join("greeting.txt"), "hello\n").unwrap();
//! std::fs::write(
//!     dir.join("build.toml"),
//!     "[[gen]]\nname = \"shout\"\nrun = \"tr a-z A-Z < ${SRC} > ${TGT}\"\n\
//!      source = \"greeting.txt\"\ntarget = \"greeting.up\"\n",
//! )
//! .unwrap();
//!
//! let project = kiln::Project::locate(&kiln::Location {
//!     dir: Some(dir.clone()),
//!     ..Default::default()
//! })?;
//! let generators = project.generators()?;
//! assert_eq!(generators[0].name, "shout");
//! assert_eq!(generators[0].outputs, ["build/greeting.up"]);
//!
//! let mut progress = kiln::Lines::new();
//! let status = project.build(&kiln::BuildOptions::default(), &mut progress)?;
//! assert_eq!(status, 0);
//! assert_eq!(std::fs::read_to_string(dir.join("build/greeting.up")).unwrap(), "HELLO\n");
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # Ok(())
//! # }
//! ```
//!
//! Inside, data flows one way: the build file (`manifest`) is validated into a project
//! (`project`), whose generators expand into tasks (`generator`, `task`); the graph (`graph`) and
//! the constraints (`constraints`) order them; signatures (`signature`) over file contents
//! (`filestate`) are checked against the store (`store`); the scheduler (`scheduler`) picks what
//! runs next and the runner (`runner`) runs commands, knowing nothing of the graph. The driver
//! (`driver`) drives it all, stage by stage. docs/design.md walks through it. With the feature `internals` the
//! modules are public, for the benchmarks, the fuzz targets and the tests.

mod api;

pub use api::{Generator, Project};
pub use driver::BuildOptions;
pub use error::Error;
pub use load::Location;
pub use progress::{Lines, Progress, Started, TaskLine};

/// Declares modules public with the feature `internals` and crate-private without it.
macro_rules! internal_modules {
    ($($name:ident),* $(,)?) => {
        $(
            #[cfg(feature = "internals")]
            #[doc(hidden)]
            pub mod $name;
            #[cfg(not(feature = "internals"))]
            pub(crate) mod $name;
        )*
    };
}

internal_modules!(
    graph_cache,
    clean,
    cache,
    codec,
    compdb,
    configure,
    constraints,
    depfile,
    dot,
    driver,
    env,
    error,
    explain,
    filestate,
    generator,
    glob,
    graph,
    ids,
    includes,
    index,
    install,
    interrupt,
    jobserver,
    lock,
    manifest,
    outdir,
    parsed,
    paths,
    progress,
    project,
    remote,
    shell,
    runner,
    scheduler,
    signature,
    snapshot,
    state,
    stats,
    store,
    task,
    template,
    trace,
    load,
    watch,
);

/// Entry points for the fuzz targets (and the tests that replay their corpora).
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod fuzzing;

/// The command line: `kiln`'s `main` is [`cli::main`].
pub mod cli;

/// Frees `value` on a thread of its own: a large graph takes a while to free, and a command that is
/// done need not wait for it (if the process ends first, that frees everything at once).
pub(crate) fn drop_in_background<T: Send + 'static>(value: T) {
    // Should the thread not start, the value is freed here, as the closure is dropped.
    let _ = std::thread::Builder::new().spawn(move || drop(value));
}
