#!/usr/bin/env python3
"""Watch mode against a plain null build, on the idiomatic project of gen_project.py.

Usage: python3 benches/watch.py [N] [--runs R] [--scratch DIR]   (N: 50000, R: 20)

Builds kiln in release mode, writes the kiln-idiomatic copy of the synthetic project with N sources
into a scratch directory, builds it once (-j2), then measures, each the median of R rounds:

  null build       `kiln -j2` with nothing changed, wall time of the whole process
  nothing to do    under `kiln build --watch -j2`: a source rewritten with the bytes it held, to the
                   `; nothing to do` line; and kiln's CPU time (user + system) per such cycle
  edit             a source given new bytes, to the `; building` line (the build's start) and to
                   the `waiting for changes` line after its build (one object, its archive and
                   the final output rebuilt)

The first edit under watch is a warm-up, not counted: a watch that starts on an up-to-date project
has its files' contents hot only after its first build that goes the whole way.
"""

import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gen_project  # noqa: E402

REPO = os.path.dirname(HERE)


def kiln_binary():
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=REPO, check=True)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target"))
    return os.path.join(target, "release", "kiln")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(") ", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Log:
    """kiln's stderr, read as it grows."""

    def __init__(self, path):
        self.path = path
        self.seen = 0

    def wait_for(self, text, timeout=120.0):
        """Polls until `text` appears past what was seen; returns the time it was seen."""
        deadline = time.monotonic() + timeout
        with open(self.path) as f:
            while True:
                f.seek(self.seen)
                new = f.read()
                at = new.find(text)
                if at >= 0:
                    now = time.monotonic()
                    self.seen += at + len(text)
                    return now
                if time.monotonic() > deadline:
                    sys.exit(f"no {text!r} within {timeout}s; log: {self.path}")
                time.sleep(0.0002)


def median_ms(xs):
    return statistics.median(xs) * 1000


def main():
    args = sys.argv[1:]
    n, runs, scratch = 50000, 20, None
    while args:
        a = args.pop(0)
        if a == "--runs":
            runs = int(args.pop(0))
        elif a == "--scratch":
            scratch = args.pop(0)
        else:
            n = int(a)
    kiln = kiln_binary()
    work = tempfile.mkdtemp(prefix="kiln-watch-bench-", dir=scratch)
    root = os.path.join(work, "project")
    mods = gen_project.layout(n)
    gen_project.write_sources(root, mods)
    gen_project.write(os.path.join(root, "build.toml"), gen_project.kiln_idiomatic(mods))
    print(f"{n} sources in {root}", flush=True)
    t = time.monotonic()
    subprocess.run([kiln, "-j2"], cwd=root, check=True, stderr=subprocess.DEVNULL)
    print(f"full build: {time.monotonic() - t:.1f}s", flush=True)

    null = []
    subprocess.run([kiln, "-j2"], cwd=root, check=True, stderr=subprocess.DEVNULL)
    for _ in range(runs):
        t = time.monotonic()
        subprocess.run([kiln, "-j2"], cwd=root, check=True, stderr=subprocess.DEVNULL)
        null.append(time.monotonic() - t)

    log_path = os.path.join(work, "watch.log")
    with open(log_path, "w") as log_file:
        watcher = subprocess.Popen(
            [kiln, "build", "--watch", "-j2"],
            cwd=root,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )
    log = Log(log_path)
    try:
        log.wait_for("watch: waiting for changes")
        touched = os.path.join(root, "mod0", "f000.c")
        edited = os.path.join(root, "mod1", "f001.c")
        original = open(edited).read()

        def edit(k):
            with open(edited, "w") as f:
                f.write(f"{original}/* edit {k} */\n")

        edit(-1)  # warm-up: the first whole build fills the hot state
        log.wait_for("; building")
        log.wait_for("watch: waiting for changes")
        time.sleep(0.5)

        starts, cycles = [], []
        for k in range(runs):
            t = time.monotonic()
            edit(k)
            starts.append(log.wait_for("; building") - t)
            cycles.append(log.wait_for("watch: waiting for changes") - t)
            time.sleep(0.2)

        same = open(touched).read()
        nothing = []
        cpu_before = cpu_seconds(watcher.pid)
        for _ in range(runs):
            t = time.monotonic()
            with open(touched, "w") as f:
                f.write(same)
            nothing.append(log.wait_for("; nothing to do") - t)
            time.sleep(0.05)
        cpu = (cpu_seconds(watcher.pid) - cpu_before) / runs
    finally:
        watcher.terminate()
        watcher.wait()

    print(f"median of {runs}, {n} sources:")
    print(f"  plain null build (whole process):           {median_ms(null):8.1f} ms")
    print(f"  watch, nothing to do (to its line):          {median_ms(nothing):8.1f} ms")
    print(f"  watch, nothing to do (kiln CPU per cycle):   {cpu * 1000:8.1f} ms")
    print(f"  watch, edit to the build's start:            {median_ms(starts):8.1f} ms")
    print(f"  watch, edit to its build's end:              {median_ms(cycles):8.1f} ms")
    print(f"scratch directory left in {work}")


if __name__ == "__main__":
    main()
