//! `kiln build --watch`: build, then wait for changes under the project root and build again,
//! until a signal ends it.
//!
//! Approach: a recursive watcher (inotify, through the notify crate) is set up before the first
//! build, so that nothing written while it builds is missed. Each cycle is a whole
//! `driver::build`: the driver decides what is out of date, as a plain build does (it re-reads the
//! build file, takes the lock only while it builds, re-stats and re-hashes what it must). The
//! watcher only says when to ask it. Events are debounced: after the first, kiln waits for a
//! quiet spell of [`QUIET`], and never longer than [`LATEST`] after the first, before it builds.
//! Events in kiln's own state directory never start a build (the build writes there), nor do
//! reads (inotify's open and close-without-write). Outputs a build writes do start one more
//! cycle, which the driver finds up to date without running anything.

use crate::driver::{self, BuildOptions};
use crate::error::Error;
use crate::interrupt;
use crate::load::Workspace;
use crate::progress::Progress;
use crossbeam_channel::{Receiver, RecvTimeoutError, select, unbounded};
use notify::event::{AccessKind, AccessMode, EventKind};
use notify::{RecursiveMode, Watcher};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long kiln waits after an event for more before it builds.
pub const QUIET: Duration = Duration::from_millis(10);
/// The longest it waits after the first event of a cycle: a build starts within this.
pub const LATEST: Duration = Duration::from_millis(50);
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
    let mut watcher = notify::recommended_watcher(move |e| {
        let _ = tx.send(e);
    })
    .map_err(|e| Error::Usage(format!("cannot watch {}: {e}", root.display())))?;
    watcher
        .watch(&root, RecursiveMode::Recursive)
        .map_err(|e| Error::Usage(format!("cannot watch {}: {e}", root.display())))?;
    let mut ignored = state_dir(ws);
    loop {
        let mut p = progress();
        match driver::build(ws, opts, p.as_mut(), signals) {
            Ok(code) if code > 128 => return Ok(code),
            Ok(_) => {}
            Err(e) => p.message(e.to_string().trim_end()),
        }
        if let Some(dir) = state_dir(ws) {
            ignored = Some(dir);
        }
        p.message("watch: waiting for changes");
        drop(p);
        let changed = match wait(&events, signals, ignored.as_deref(), &root) {
            Ok(changed) => changed,
            Err(sig) => return Ok(interrupt::exit_status(sig)),
        };
        let mut p = progress();
        p.message(&cycle_line(&changed, &root));
    }
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
    ignored: Option<&Path>,
    root: &Path,
) -> Result<Vec<PathBuf>, i32> {
    let mut changed = Vec::new();
    // Idle: wait for the first event that matters.
    let first = loop {
        select! {
            recv(signals) -> sig => return Err(sig.unwrap_or(2)),
            recv(events) -> e => {
                let Ok(e) = e else { return Err(2) };
                if gather(e, ignored, root, &mut changed) {
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
                if gather(e, ignored, root, &mut changed) {
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

/// Adds an event's paths to `changed`; whether it may change what a build does.
fn gather(
    event: notify::Result<notify::Event>,
    ignored: Option<&Path>,
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
    let before = changed.len();
    changed.extend(
        event
            .paths
            .into_iter()
            .filter(|p| ignored.is_none_or(|dir| !p.starts_with(dir))),
    );
    changed.len() > before
}

/// `watch: 2 changes (src/a.c, src/b.c); building`.
fn cycle_line(changed: &[PathBuf], root: &Path) -> String {
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
        "watch: {} change{} ({}{more}); building",
        changed.len(),
        if changed.len() == 1 { "" } else { "s" },
        names.join(", ")
    )
}
