//! `kiln build --watch`: build, then wait for changes under the project root and build again,
//! until a signal ends it.
//!
//! Approach: the project's directories are watched (inotify, through the notify crate; `tree.rs`)
//! before the first build, so that nothing written while it builds is missed. Each cycle is a whole
//! `driver::build`: the driver decides what is out of date, as a plain build does (it re-reads the
//! build file, takes the lock only while it builds, re-stats and re-hashes what it must). The
//! watcher only says when to ask it. Events are debounced: after the first, kiln waits for a
//! quiet spell of [`QUIET`], and never longer than [`LATEST`] after the first, before it builds.
//! Events in kiln's own state directory never start a build (the build writes there), nor do
//! reads (inotify's open and close-without-write).
//!
//! Between builds kiln keeps what the last build knew of the files' contents
//! ([`driver::Settled`]): when every changed path still holds what it held then, a build would
//! find nothing to do, and none is started. Events that came while kiln built (its own outputs,
//! mostly) are told apart by a mark written into the state directory after the build, as inotify
//! reports events in order.

mod tree;

pub use tree::SCAN_EVERY;
use tree::Tree;

use crate::driver::{self, BuildOptions, Settle, Settled};
use crate::filestate;
use crate::error::Error;
use crate::interrupt;
use crate::load::Workspace;
use crate::progress::Progress;
use crossbeam_channel::{Receiver, RecvTimeoutError, never, select, tick, unbounded};
use notify::event::{AccessKind, AccessMode, CreateKind, EventKind, ModifyKind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long kiln waits after an event for more before it builds.
pub const QUIET: Duration = Duration::from_millis(5);
/// The longest it waits after the first event of a cycle: a build starts within this.
pub const LATEST: Duration = Duration::from_millis(50);
/// The file in kiln's state directory written after each build to learn which events came
/// before.
const MARK: &str = "watch-mark";
/// How many changed paths a cycle's line names.
const SHOWN: usize = 3;

/// Builds, then builds again on every change, until a signal arrives; returns its exit status.
/// Each build reports to a new `progress`.
pub fn watch(
    ws: &Workspace,
    opts: &BuildOptions,
    progress: &mut dyn FnMut() -> Box<dyn Progress>,
    signals: &Receiver<i32>,
) -> Result<i32, Error> {
    let root = ws
        .build_file
        .parent()
        .unwrap_or(Path::new("/"))
        .to_path_buf();
    let (tx, events) = unbounded();
    let watcher = notify::recommended_watcher(move |e| {
        let _ = tx.send(e);
    })
    .map_err(|e| Error::Usage(format!("cannot watch {}: {e}", root.display())))?;
    let mut tree = Tree::new(watcher);
    if let Some(dir) = state_dir(ws) {
        tree.set_ignored(dir);
    }
    tree.add(&root, &mut Vec::new());
    // What the last build that ended with everything up to date knew of the files' contents.
    let mut hot: Option<Settled> = None;
    loop {
        let mut p = progress();
        say(&mut tree, p.as_mut());
        match driver::build_watched(ws, opts, p.as_mut(), signals) {
            Ok((code, _)) if code > 128 => return Ok(code),
            Ok((_, Settle::Unchanged)) => {}
            Ok((_, Settle::Now(settled))) => hot = settled,
            Err(e) => {
                hot = None;
                p.message(e.to_string().trim_end());
            }
        }
        if let Some(dir) = state_dir(ws) {
            tree.set_ignored(dir);
        }
        // What changed while it built: mostly its own outputs, which are as it recorded them.
        let during = drain(&events, &mut tree, &root);
        say(&mut tree, p.as_mut());
        let out = tree.ignored().and_then(Path::parent).map(Path::to_path_buf);
        let out = out.as_deref();
        let changed = if !during.is_empty() && !as_built(hot.as_ref(), out, &during) {
            during
        } else {
            p.message("watch: waiting for changes");
            drop(p);
            loop {
                let changed = match wait(&events, signals, &mut tree, &root) {
                    Ok(changed) => changed,
                    Err(sig) => return Ok(interrupt::exit_status(sig)),
                };
                let mut p = progress();
                say(&mut tree, p.as_mut());
                if !as_built(hot.as_ref(), out, &changed) {
                    break changed;
                }
                p.message(&cycle_line(&changed, &root, "nothing to do"));
            }
        };
        progress().message(&cycle_line(&changed, &root, "building"));
    }
}

/// Prints what the watches have to say (the limit reached).
fn say(tree: &mut Tree, p: &mut dyn Progress) {
    for m in tree.messages.drain(..) {
        p.message(&m);
    }
}

/// Whether every changed path holds what the last build left there, so that a build would find
/// nothing to do: each one a file of the graph whose content (or absence) is as recorded, a
/// directory inside the build directory `out` (which globs never look into; the files in it
/// have events of their own), or the tag kiln marks its build directory with.
fn as_built(hot: Option<&Settled>, out: Option<&Path>, changed: &[PathBuf]) -> bool {
    let Some(hot) = hot else {
        return false;
    };
    changed.iter().all(|p| {
        let Some(recorded) = hot.files.get(p) else {
            return out.is_some_and(|out| {
                p.starts_with(out) && p.is_dir() || *p == out.join(crate::outdir::TAG)
            });
        };
        let now = match filestate::hash_file(p) {
            Ok(h) => h,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => filestate::MISSING,
            Err(_) => return false,
        };
        now == *recorded
    })
}

/// The events that arrived while kiln built, up to now: a mark written into kiln's state
/// directory comes after all of them, as inotify keeps the order of the events it reports.
fn drain(
    events: &Receiver<notify::Result<notify::Event>>,
    tree: &mut Tree,
    root: &Path,
) -> Vec<PathBuf> {
    let mut changed = Vec::new();
    let mark = tree
        .ignored()
        .filter(|dir| dir.starts_with(root))
        .map(|dir| dir.join(MARK))
        .filter(|mark| std::fs::write(mark, b"").is_ok());
    match mark {
        Some(mark) => {
            let deadline = Instant::now() + Duration::from_millis(200);
            while let Ok(e) = events.recv_deadline(deadline) {
                if e.as_ref().is_ok_and(|e| e.paths.contains(&mark)) {
                    break;
                }
                gather(e, tree, root, &mut changed);
            }
        }
        None => {
            for e in events.try_iter() {
                gather(e, tree, root, &mut changed);
            }
        }
    }
    changed.sort();
    changed.dedup();
    changed
}

/// kiln's state directory, when the build file can be read.
fn state_dir(ws: &Workspace) -> Option<PathBuf> {
    let dir = ws.read_build_file().ok()?.state_dir;
    // Events name paths under the watched root as given, which is canonical.
    Some(dir.canonicalize().unwrap_or(dir))
}

/// Waits for changes and gathers them until they settle; `Err(signal)` when a signal came first.
fn wait(
    events: &Receiver<notify::Result<notify::Event>>,
    signals: &Receiver<i32>,
    tree: &mut Tree,
    root: &Path,
) -> Result<Vec<PathBuf>, i32> {
    let mut changed = Vec::new();
    let scans = if tree.scanning() {
        tick(SCAN_EVERY)
    } else {
        never()
    };
    // Idle: wait for the first event that matters, or a scan that finds a change.
    let first = loop {
        select! {
            recv(signals) -> sig => return Err(sig.unwrap_or(2)),
            recv(events) -> e => {
                let Ok(e) = e else { return Err(2) };
                if gather(e, tree, root, &mut changed) {
                    break Instant::now();
                }
            }
            recv(scans) -> _ => {
                tree.scan(&mut changed);
                if !changed.is_empty() {
                    break Instant::now();
                }
            }
        }
    };
    let latest = first + LATEST;
    let mut quiet_until = first + QUIET;
    loop {
        if let Ok(sig) = signals.try_recv() {
            return Err(sig);
        }
        let until = quiet_until.min(latest);
        match events.recv_deadline(until) {
            Ok(e) => {
                if gather(e, tree, root, &mut changed) {
                    quiet_until = Instant::now() + QUIET;
                }
            }
            Err(RecvTimeoutError::Timeout) => break,
            Err(RecvTimeoutError::Disconnected) => return Err(2),
        }
    }
    changed.sort();
    changed.dedup();
    Ok(changed)
}

/// Adds an event's paths to `changed`, and watches a directory it shows new (with the files
/// already in it, which may have come before its watch); whether it may change what a build does.
fn gather(
    event: notify::Result<notify::Event>,
    tree: &mut Tree,
    root: &Path,
    changed: &mut Vec<PathBuf>,
) -> bool {
    let event = match event {
        Ok(e) => e,
        // The watcher lost track (e.g. its queue overflowed): build to be sure.
        Err(_) => {
            changed.push(root.to_path_buf());
            return true;
        }
    };
    match event.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => {}
        EventKind::Access(_) => return false,
        _ => {}
    }
    if event.need_rescan() {
        changed.push(root.to_path_buf());
        return true;
    }
    let appears = matches!(
        event.kind,
        EventKind::Create(CreateKind::Folder | CreateKind::Any) | EventKind::Modify(ModifyKind::Name(_))
    );
    let before = changed.len();
    for p in event.paths {
        if tree.ignored().is_some_and(|dir| p.starts_with(dir)) {
            continue;
        }
        if appears && p.is_dir() {
            tree.add(&p, changed);
        }
        changed.push(p);
    }
    changed.len() > before
}

/// `watch: 2 changes (src/a.c, src/b.c); building`.
fn cycle_line(changed: &[PathBuf], root: &Path, then: &str) -> String {
    let names: Vec<String> = changed
        .iter()
        .take(SHOWN)
        .map(|p| {
            let rel = p.strip_prefix(root).unwrap_or(p);
            if rel.as_os_str().is_empty() {
                ".".to_string()
            } else {
                rel.to_string_lossy().into_owned()
            }
        })
        .collect();
    let more = if changed.len() > SHOWN { ", ..." } else { "" };
    format!(
        "watch: {} change{} ({}{more}); {then}",
        changed.len(),
        if changed.len() == 1 { "" } else { "s" },
        names.join(", ")
    )
}
