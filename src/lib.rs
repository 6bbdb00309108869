//! kiln: a declarative build tool with content signatures, in the tradition of waf.
//!
//! Data flows one way: the build file ([`manifest`]) is validated into a [`project`], whose
//! generators expand into tasks ([`generator`], [`task`]); the [`graph`] orders them; signatures
//! ([`signature`]) over file contents ([`filestate`]) are checked against the [`store`]; the
//! [`scheduler`] picks what runs next and the [`runner`] runs commands, knowing nothing of the graph.

pub mod cache;
pub mod clean;
pub mod cli;
pub mod codec;
pub mod constraints;
pub mod depfile;
pub mod direct;
pub mod driver;
pub mod env;
pub mod error;
pub mod explain;
pub mod filestate;
#[doc(hidden)]
pub mod fuzzing;
pub mod generator;
pub mod glob;
pub mod graph;
pub mod ids;
pub mod interrupt;
pub mod lock;
pub mod manifest;
pub mod outdir;
pub mod paths;
pub mod progress;
pub mod project;
pub mod runner;
pub mod scheduler;
pub mod signature;
pub mod snapshot;
pub mod stats;
pub mod store;
pub mod task;
pub mod template;
pub mod workspace;

/// Frees `value` on a thread of its own: a large graph takes a while to free, and a command that is
/// done need not wait for it (if the process ends first, that frees everything at once).
pub(crate) fn drop_in_background<T: Send + 'static>(value: T) {
    // Should the thread not start, the value is freed here, as the closure is dropped.
    let _ = std::thread::Builder::new().spawn(move || drop(value));
}
