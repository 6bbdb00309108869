//! GNU make's jobserver, both ways. A jobserver is a pipe (or, from make 4.4, a named fifo)
//! holding one byte per job slot beyond each process's first: a process runs one job freely and
//! reads a byte before each further one, writing it back when that job ends.
//!
//! - **Client**: under `make -jN`, when MAKEFLAGS names make's jobserver (`--jobserver-auth=R,W`
//!   as make 4.3 passes it to a recipe marked recursive, or `--jobserver-auth=fifo:PATH` as make
//!   4.4 does) and no `-j` was given, kiln's tasks beyond its first take their slots from make's.
//!   The commands kiln runs inherit MAKEFLAGS and the descriptors unchanged, so a `make` inside a
//!   task draws from the same pool.
//! - **Server**: otherwise kiln makes a jobserver of its own with `-j` slots (a pipe holding j-1
//!   bytes, in the style of make 4.3, which make 4.4 also reads) and gives its commands a
//!   MAKEFLAGS naming it; kiln's own tasks take their slots from it too, so a `make` or `cargo`
//!   inside a task shares kiln's `-j` instead of multiplying it.
//!
//! kiln reads and writes the pipe through a description of its own, opened through
//! `/proc/self/fd` (Linux) in non-blocking mode, so that it never blocks on a byte another process
//! took first and never changes the mode of the descriptors make and the commands share. Waiting
//! for a byte is a helper thread's poll, which only says "readable"; bytes are read by the build
//! loop. Every byte taken is written back when the build no longer needs it, and when the
//! jobserver is dropped.

use crossbeam_channel::{Receiver, Sender, bounded};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

/// What MAKEFLAGS offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Offer {
    /// `--jobserver-auth=R,W` (or make 4.2's `--jobserver-fds=R,W`): inherited descriptors.
    Pipe { read: i32, write: i32 },
    /// `--jobserver-auth=fifo:PATH` (make 4.4).
    Fifo(String),
}

/// The jobserver MAKEFLAGS names, and the `-jN` it gives (None for a bare `-j` or none); the last
/// of each wins, as make reads them.
pub fn offered(makeflags: &str) -> Option<(Offer, Option<usize>)> {
    let mut offer = None;
    let mut jobs = None;
    for word in makeflags.split_whitespace() {
        if let Some(auth) = word
            .strip_prefix("--jobserver-auth=")
            .or_else(|| word.strip_prefix("--jobserver-fds="))
        {
            offer = if let Some(path) = auth.strip_prefix("fifo:") {
                Some(Offer::Fifo(path.to_string()))
            } else {
                auth.split_once(',').and_then(|(r, w)| {
                    Some(Offer::Pipe {
                        read: r.parse().ok()?,
                        write: w.parse().ok()?,
                    })
                })
            };
        } else if let Some(n) = word.strip_prefix("-j") {
            jobs = n.parse().ok().filter(|&n: &usize| n >= 1);
        }
    }
    Some((offer?, jobs))
}

/// MAKEFLAGS without its `-j` and jobserver words, for a jobserver of kiln's own to be added.
fn without_jobs(makeflags: &str) -> String {
    makeflags
        .split_whitespace()
        .filter(|w| !w.starts_with("-j") && !w.starts_with("--jobserver-"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A jobserver kiln takes slots from: make's, or its own.
pub struct Jobserver {
    /// kiln's own non-blocking description of the pipe or fifo.
    file: File,
    /// The bytes taken and not given back.
    held: Vec<u8>,
    /// MAKEFLAGS for the commands kiln runs, when it is not the one they inherit.
    makeflags: Option<String>,
    /// A server's pipe, kept open (and inheritable) for the commands.
    _pipe: Option<(OwnedFd, OwnedFd)>,
    /// Asks the helper to watch for a byte; it answers on `readable`.
    want: Option<Sender<()>>,
    readable: Receiver<()>,
    readable_tx: Sender<()>,
}

impl Jobserver {
    /// make's jobserver, as MAKEFLAGS offers it; why it cannot be used (make 4.3 closes the
    /// descriptors for a recipe it does not know to be recursive).
    pub fn join(offer: &Offer) -> Result<Jobserver, String> {
        let file = match offer {
            Offer::Pipe { read, write } => {
                for fd in [read, write] {
                    if !is_fifo(&format!("/proc/self/fd/{fd}")) {
                        return Err(format!(
                            "MAKEFLAGS names make's jobserver on descriptors {read},{write}, but \
                             descriptor {fd} is not an open pipe here: make passes them only to \
                             a recipe line it knows runs a make (mark the line with `+`, or use \
                             $(MAKE))"
                        ));
                    }
                }
                open_own(&format!("/proc/self/fd/{read}"))
                    .map_err(|e| format!("cannot open make's jobserver pipe: {e}"))?
            }
            Offer::Fifo(path) => open_own(path)
                .map_err(|e| format!("cannot open make's jobserver fifo {path}: {e}"))?,
        };
        if !file.metadata().is_ok_and(|m| {
            use std::os::unix::fs::FileTypeExt;
            m.file_type().is_fifo()
        }) {
            return Err("MAKEFLAGS names a jobserver that is not a fifo".into());
        }
        Ok(Jobserver::with(file, None, None))
    }

    /// A jobserver of kiln's own with `jobs` slots, for the commands to share; `makeflags` is the
    /// MAKEFLAGS kiln was given, whose other flags the commands keep.
    pub fn serve(jobs: usize, makeflags: Option<&str>) -> io::Result<Jobserver> {
        let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
        // The commands inherit both ends, as make's recursive recipes do.
        for fd in [&read, &write] {
            rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::empty())?;
        }
        let file = open_own(&format!("/proc/self/fd/{}", read.as_raw_fd()))?;
        (&file).write_all(&vec![b'+'; jobs.saturating_sub(1)])?;
        let mut flags = without_jobs(makeflags.unwrap_or(""));
        if !flags.is_empty() {
            flags.push(' ');
        }
        flags.push_str(&format!(
            "-j{jobs} --jobserver-auth={},{}",
            read.as_raw_fd(),
            write.as_raw_fd()
        ));
        Ok(Jobserver::with(file, Some(flags), Some((read, write))))
    }

    fn with(file: File, makeflags: Option<String>, pipe: Option<(OwnedFd, OwnedFd)>) -> Jobserver {
        let (readable_tx, readable) = bounded(1);
        Jobserver {
            file,
            held: Vec::new(),
            makeflags,
            _pipe: pipe,
            want: None,
            readable,
            readable_tx,
        }
    }

    /// The MAKEFLAGS the commands must get, when not the one they inherit.
    pub fn makeflags(&self) -> Option<&str> {
        self.makeflags.as_deref()
    }

    /// How many slots are held beyond the free one.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Takes a slot if one is free now.
    pub fn try_acquire(&mut self) -> bool {
        let mut byte = [0u8; 1];
        loop {
            match (&self.file).read(&mut byte) {
                Ok(1) => {
                    self.held.push(byte[0]);
                    return true;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                _ => return false,
            }
        }
    }

    /// Gives back the slots held beyond `keep`; why one could not be (the caller says so).
    pub fn release_to(&mut self, keep: usize) -> Result<(), String> {
        let mut result = Ok(());
        while self.held.len() > keep {
            let byte = self.held.pop().expect("a held slot");
            // A full pipe cannot happen (the byte came from it); a closed one loses the slot.
            if let Err(e) = (&self.file).write_all(&[byte]) {
                result = Err(format!("cannot give a job slot back to the jobserver: {e}"));
            }
        }
        result
    }

    /// A message arrives here once a slot may be free (after [`want`](Self::want)); then
    /// [`try_acquire`](Self::try_acquire) again.
    pub fn readable(&self) -> &Receiver<()> {
        &self.readable
    }

    /// Asks to be told on [`readable`](Self::readable) when a slot may be free; why it cannot
    /// be (then only a finished task frees a slot).
    pub fn want(&mut self) -> Result<(), String> {
        if self.want.is_none() {
            let tx = self
                .spawn_helper()
                .map_err(|e| format!("cannot watch the jobserver: {e}"))?;
            self.want = Some(tx);
        }
        if let Some(tx) = &self.want {
            let _ = tx.try_send(());
        }
        Ok(())
    }

    fn spawn_helper(&self) -> io::Result<Sender<()>> {
        let file = self.file.try_clone()?;
        let readable = self.readable_tx.clone();
        let (want_tx, want_rx) = bounded::<()>(1);
        std::thread::Builder::new()
            .name("jobserver".into())
            .spawn(move || {
                use rustix::event::{PollFd, PollFlags, Timespec, poll};
                let timeout = Timespec {
                    tv_sec: 0,
                    tv_nsec: 200_000_000,
                };
                // Each request is answered once, when the pipe is readable; the thread ends
                // when the jobserver is dropped.
                while want_rx.recv().is_ok() {
                    loop {
                        let mut fds = [PollFd::new(&file, PollFlags::IN)];
                        if matches!(poll(&mut fds, Some(&timeout)), Ok(n) if n > 0) {
                            let _ = readable.try_send(());
                            break;
                        }
                        // Not wanted any more: the jobserver is gone.
                        if matches!(
                            want_rx.try_recv(),
                            Err(crossbeam_channel::TryRecvError::Disconnected)
                        ) {
                            return;
                        }
                    }
                }
            })?;
        Ok(want_tx)
    }
}

impl Drop for Jobserver {
    fn drop(&mut self) {
        // Nothing is left to tell: the build has ended.
        let _ = self.release_to(0);
    }
}

impl std::fmt::Debug for Jobserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jobserver")
            .field("fd", &self.file.as_fd())
            .field("held", &self.held.len())
            .field("makeflags", &self.makeflags)
            .finish()
    }
}

/// Whether `path` is (or leads to) a pipe or fifo.
fn is_fifo(path: &str) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(path).is_ok_and(|m| m.file_type().is_fifo())
}

/// A description of its own of the pipe or fifo at `path`, read-write (a fifo opened so never
/// blocks and never sees end of file) and non-blocking.
fn open_own(path: &str) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn makeflags_are_read_as_make_writes_them() {
        assert_eq!(
            offered(" -j2 --jobserver-auth=3,4"),
            Some((Offer::Pipe { read: 3, write: 4 }, Some(2)))
        );
        assert_eq!(
            offered("-k -j8 --jobserver-auth=fifo:/tmp/GMfifo123"),
            Some((Offer::Fifo("/tmp/GMfifo123".into()), Some(8)))
        );
        assert_eq!(
            offered("--jobserver-fds=5,6 -j"),
            Some((Offer::Pipe { read: 5, write: 6 }, None))
        );
        assert_eq!(offered(" -j2"), None);
        assert_eq!(offered("--jobserver-auth=x,4"), None);
        assert_eq!(without_jobs(" -k -j2 --jobserver-auth=3,4 -s"), "-k -s");
    }

    #[test]
    fn a_server_holds_its_slots_and_gets_them_back() {
        let mut js = Jobserver::serve(3, Some("-k -j9 --jobserver-auth=7,8")).unwrap();
        let flags = js.makeflags().unwrap().to_string();
        assert!(flags.starts_with("-k -j3 --jobserver-auth="), "{flags}");
        assert!(js.try_acquire() && js.try_acquire());
        assert!(!js.try_acquire(), "two slots beyond the free one");
        js.release_to(1).unwrap();
        assert_eq!(js.held(), 1);
        // A slot given back is seen by a watcher.
        js.want().unwrap();
        js.release_to(0).unwrap();
        js.readable()
            .recv_timeout(Duration::from_secs(5))
            .expect("readable");
        assert!(js.try_acquire() && js.try_acquire() && !js.try_acquire());
    }

    #[test]
    fn a_jobserver_on_closed_descriptors_is_refused_with_the_reason() {
        let e = Jobserver::join(&Offer::Pipe {
            read: 999,
            write: 998,
        })
        .unwrap_err();
        assert!(e.contains("mark the line with `+`"), "{e}");
    }
}
