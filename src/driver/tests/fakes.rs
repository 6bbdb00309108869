//! The fakes the build loop's tests drive it with: a file system in memory, a clock that ticks
//! with its writes, and a runner that reads each command as a tiny script in simulated time.

use crate::filestate::{Clock, DirRefused, Disk, Hash, Stat};
use crate::runner::{Commands, Exit, Finished, Job, Output, Wake};
use crossbeam_channel::Receiver;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Files in memory; every write is one tick of the shared clock.
#[derive(Default)]
pub(super) struct FakeDisk {
    pub(super) files: Mutex<HashMap<PathBuf, (Vec<u8>, Stat)>>,
    pub(super) tick: Arc<AtomicI64>,
}

impl FakeDisk {
    pub(super) fn write(&self, path: &Path, bytes: &[u8]) {
        let t = self.tick.fetch_add(1, Ordering::SeqCst) + 1;
        let stat = Stat {
            size: bytes.len() as u64,
            mtime: t * 1000,
            ctime: t * 1000,
            ino: t as u64,
        };
        let mut files = self.files.lock().unwrap();
        files.insert(path.to_path_buf(), (bytes.to_vec(), stat));
    }

    pub(super) fn read(&self, path: &Path) -> Option<Vec<u8>> {
        self.files.lock().unwrap().get(path).map(|(b, _)| b.clone())
    }
}

impl Disk for FakeDisk {
    fn stat(&self, path: &Path) -> Option<Stat> {
        self.files.lock().unwrap().get(path).map(|(_, s)| *s)
    }

    fn stat_all(&self, root: &Path, paths: &[&str]) -> Vec<Option<Stat>> {
        paths.iter().map(|p| self.stat(&root.join(p))).collect()
    }

    fn hash(&self, path: &Path) -> std::io::Result<Hash> {
        let bytes = self.read(path).ok_or(std::io::ErrorKind::NotFound)?;
        Ok(*blake3::hash(&bytes).as_bytes())
    }

    fn make_dir(&self, _dir: &Path, _allowed: &Path) -> Result<(), DirRefused> {
        Ok(())
    }
}

/// The file system's clock: always after the last write.
pub(super) struct FakeClock(pub(super) Arc<AtomicI64>);

impl Clock for FakeClock {
    fn now(&self) -> i64 {
        (self.0.load(Ordering::SeqCst) + 1) * 1000
    }

    fn fresh(&self) -> i64 {
        self.now()
    }
}

/// A job the fake runner is running: when it ends (simulated time) and what it does then.
pub(super) struct Running {
    pub(super) ends: u64,
    pub(super) job: Job,
    pub(super) exit: Exit,
    pub(super) writes: Vec<(PathBuf, Vec<u8>)>,
}

/// Runs fake commands in simulated time, recording what started when.
pub(super) struct FakeRunner {
    pub(super) root: PathBuf,
    pub(super) disk: Arc<FakeDisk>,
    pub(super) now: u64,
    pub(super) running: Vec<Running>,
    /// Each start: the job's first output (or its id), and the simulated time.
    pub(super) started: Vec<(String, u64)>,
    /// Each failure: the simulated time it was reported.
    pub(super) failed_at: Vec<u64>,
    pub(super) highest: usize,
    pub(super) timeout: Option<u64>,
    /// A signal to deliver once this many jobs have started.
    pub(super) signal_after: Option<(usize, i32)>,
    pub(super) stopping: bool,
}

impl FakeRunner {
    pub(super) fn new(root: &Path, disk: Arc<FakeDisk>) -> FakeRunner {
        FakeRunner {
            root: root.to_path_buf(),
            disk,
            now: 0,
            running: Vec::new(),
            started: Vec::new(),
            failed_at: Vec::new(),
            highest: 0,
            timeout: None,
            signal_after: None,
            stopping: false,
        }
    }

    pub(super) fn started(&self) -> Vec<&str> {
        self.started.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// Reads a fake command: its duration, how it ends, and what it writes.
    pub(super) fn interpret(&self, command: &str) -> (u64, Exit, Vec<(PathBuf, Vec<u8>)>) {
        let mut duration = 0;
        let mut writes = Vec::new();
        for statement in command.split(';').map(str::trim) {
            let words: Vec<&str> = statement.split_whitespace().collect();
            match words.as_slice() {
                ["sleep", n] => duration += n.parse::<u64>().unwrap(),
                ["exit", n] => {
                    let code = n.parse().unwrap();
                    return (duration.max(1), Exit::Failed { command: 0, code }, writes);
                }
                ["cat", rest @ ..] => {
                    let (ins, out) = rest.split_at(rest.len() - 2);
                    let mut bytes = Vec::new();
                    for i in ins {
                        let path = self.root.join(i);
                        let done = writes.iter().find(|(p, _)| *p == path).map(|(_, b)| b);
                        match done.cloned().or_else(|| self.disk.read(&path)) {
                            Some(b) => bytes.extend(b),
                            None => panic!("fake `cat` of a missing input {i}"),
                        }
                    }
                    writes.push((self.root.join(out[1]), bytes));
                }
                ["echo", text, ">", out] => {
                    writes.push((self.root.join(out), text.as_bytes().to_vec()))
                }
                _ => panic!("not a fake command: {statement}"),
            }
        }
        (duration.max(1), Exit::Success, writes)
    }

    pub(super) fn finish(&mut self, r: Running) -> Finished {
        self.now = self.now.max(r.ends);
        let mut exit = r.exit;
        if exit == Exit::Success {
            for (path, bytes) in &r.writes {
                self.disk.write(path, bytes);
            }
        } else {
            self.failed_at.push(self.now);
        }
        let look = |p: &PathBuf, hash: bool| {
            let stat = self.disk.stat(p)?;
            Some((stat, hash.then(|| self.disk.hash(p).unwrap())))
        };
        let success = exit == Exit::Success;
        let outputs = r.job.outputs.iter().map(|p| look(p, success)).collect();
        let watch = r.job.watch.iter().map(|(p, h)| look(p, *h)).collect();
        if self.stopping && exit == Exit::Success {
            exit = Exit::Signaled {
                command: 0,
                signal: 2,
            };
        }
        Finished {
            id: r.job.id,
            exit,
            output: Output::default(),
            duration: Duration::from_millis(r.ends),
            start: Instant::now(),
            worker: 0,
            started_at: 0,
            ended_at: self.disk.tick.load(Ordering::SeqCst) * 1000,
            outputs,
            watch,
            depfile: None,
            remote: Default::default(),
        }
    }
}

impl Commands for FakeRunner {
    fn start(&mut self, job: Job) {
        assert!(!self.stopping, "a job was started after an interrupt");
        let name = job.outputs.first().map_or(job.id.to_string(), |p| {
            p.strip_prefix(&self.root).unwrap().display().to_string()
        });
        self.started.push((name, self.now));
        let (mut duration, mut exit, writes) = self.interpret(&job.commands.join(";"));
        if let Some(limit) = self.timeout.filter(|&l| duration > l) {
            duration = limit;
            exit = Exit::TimedOut { command: 0 };
        }
        self.running.push(Running {
            ends: self.now + duration,
            job,
            exit,
            writes,
        });
        self.highest = self.highest.max(self.running.len());
    }

    fn wait(
        &mut self,
        _signals: &Receiver<i32>,
        _slot: &Receiver<()>,
        _deadline: Option<Instant>,
    ) -> Wake {
        if let Some((after, sig)) = self.signal_after
            && self.started.len() >= after
        {
            self.signal_after = None;
            return Wake::Signal(sig);
        }
        let Some(i) = (0..self.running.len()).min_by_key(|&i| self.running[i].ends) else {
            return Wake::Closed;
        };
        let r = self.running.remove(i);
        Wake::Finished(Box::new(self.finish(r)))
    }

    fn signal(&mut self, _signal: rustix::process::Signal) {
        self.stopping = true;
    }
}

