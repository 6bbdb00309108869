#!/usr/bin/env python3
"""Benchmark driver: kiln against ninja and make on the synthetic project of gen_project.py.

Usage (from anywhere; the repository root is found from this file's location):

    python3 benches/harness.py [--sizes 1000,10000,50000] [--runs R] [--full-runs F]
                               [--out DIR] [--scratch DIR] [--keep] [--quick]

It first builds kiln (`cargo build --release` in the repository root) and installs ninja
(`apt-get update`, `apt-get install -y ninja-build`) when `ninja` is not on PATH. Then, for each
size N (default 1000, 10000 and 50000 sources; 100000 works too), it writes the project with
gen_project.generate() into a scratch directory (under /tmp unless --scratch; removed afterwards
unless --keep, and kept when a run fails so that it can be inspected) and measures four tools,
each in its own copy of the project, all at -j2:

    kiln-explicit   `kiln -j2`  build.toml with one generator per task
    kiln-idiomatic  `kiln -j2`  build.toml with globs, extension mapping, deps and use
    ninja           `ninja -j2`
    make            `make -j2`

Scenarios (one table row each):

    full build   from clean. kiln: out/ is deleted, its state out/.kiln with it. ninja: out/,
                 .ninja_log and .ninja_deps are deleted. make: the files under out/ are deleted,
                 the directories are kept (make does not create them). Each tool's tree is
                 cleaned just before its build, then sync(2) and a one-second pause, so that the
                 file system's work on the deleted files is not charged to the build.
                 F rounds (default 3).
    null build   nothing changed. After the last full-build round every tool does one warm-up
                 null build that is not counted, then R timed null builds.
    one source   mod0/f000.c gets a line appended (different text in every round, the same text for
                 every tool), then one timed build: 3 tasks (f000.o, libmod0.a, final). R rounds.
    one header   mod0/mod.h gets a line appended likewise, then one timed build: every object of
                 mod0 plus libmod0.a and final (102 tasks). R rounds.

R is 10 for N <= 10000 and 5 above, unless --runs says otherwise. --quick runs N=1000 with F=2 and
R=3 as a smoke test (under a minute once kiln is built).

Method. Within each round the tools ALTERNATE (round-robin, the starting tool rotating from round
to round), so that slow drifts of the machine (thermal state, other load, page cache) fall on every
tool alike instead of on whichever tool happens to run last. The table shows the MEDIAN of each
tool's samples, which ignores a single outlier. A sample is the wall-clock time
(time.perf_counter) around the whole tool process and its peak resident memory (ru_maxrss, KB on
Linux) as os.wait4() reports it for that very process. The ratio columns are kiln's median time
over ninja's.

How a tool is started, and why. Linux carries a process's ru_maxrss across exec(), and a child
forked (or vforked, as subprocess does) from this script starts with this script's resident size:
a tool started directly by Popen reports max(harness RSS, tool RSS), i.e. about 18 MB for every
tool at N=1000, more at large N. So Popen starts `/bin/sh`, which starts the tool in the
background (a fresh fork of the small shell, whose own RSS is about 1 MB), prints its pid and
exits; this script is the child subreaper (prctl PR_SET_CHILD_SUBREAPER, through ctypes), so the
orphaned tool becomes its child and os.wait4(pid) returns the tool's own rusage. The timer runs
from before Popen to the wait4 of the tool; the shell adds about 0.3 ms to every sample, the same
for every tool. The kiln binary is copied out of target/ after the build, so that a concurrent
`cargo build` cannot swap it (and the format of its state) during a run.

Each tool's stdout and stderr go to a log file in the scratch directory (not a terminal; cheap as
/dev/null). The log is printed when a build fails (then the run aborts), and it is how the driver
learns which tasks each build ran:

    kiln    prints `[n/N] rule: inputs -> outputs` per task; the outputs are after ` -> `.
    ninja   NINJA_STATUS is set to "[%f/%t] " and the rule has no description, so ninja prints
            `[n/N] cat INPUTS > OUTPUT` per command it runs (non-terminal output is never elided);
            the output is the word after the last ` > `. This is what ninja actually ran, so no
            second dry run is needed.
    make    echoes each recipe, `cat INPUTS > OUTPUT`; parsed the same way.

Correctness checks; any failure aborts with a message that names the tool, scenario and round:

  * Every timed build (full, null, one source, one header) ran exactly the expected set of outputs,
    each once, and every tool's set equals ninja's in the same round. Expected: everything for a
    full build, nothing for a null build, {mod0/f000.o, libmod0.a, final} for one source, every
    object of mod0 plus libmod0.a and final for one header.
  * After the full builds and again at the end, every tool's out/ (ignoring out/.kiln, kiln's
    CACHEDIR.TAG and ninja's own files) holds the same set of files as ninja's, with byte-identical contents. (Source names
    are zero-padded, f000.c ... f099.c, so that the order of kiln-idiomatic's glob matches the
    order the other forms list them in.)

Output: a markdown table per size, printed and written to DIR/results.md, and DIR/raw.json with
every sample, the commit (`git rev-parse HEAD`, with -dirty when `git status --porcelain` lists
anything outside benches/results/), the kiln, ninja and make versions, nproc, the CPU model and the
date. DIR defaults to benches/results/<UTC timestamp>. Both files are rewritten after each size, so
a long run that is interrupted keeps what it measured.
"""

import argparse
import ctypes
import datetime
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.dont_write_bytecode = True  # no benches/__pycache__ in the work tree
sys.path.insert(0, str(Path(__file__).resolve().parent))
import gen_project  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
TOOLS = ["kiln-explicit", "kiln-idiomatic", "ninja", "make"]
SCENARIOS = [
    ("full", "full build"),
    ("null", "null build"),
    ("source", "one source edited"),
    ("header", "one header edited"),
]
JOBS = "-j2"
STATUS_RE = re.compile(r"^\[\d+/\d+\] ")
# Run by /bin/sh with $1 = log file, then the command: starts the command in the background (a
# fresh process forked from the small shell) and prints its pid.
LAUNCH = 'log=$1; shift; "$@" >"$log" 2>&1 </dev/null & echo $!'
PR_SET_CHILD_SUBREAPER = 36


class BenchError(Exception):
    """A failed build or a failed check: the run stops with this message."""


# ----------------------------------------------------------------------------------------------
# Setup: kiln, ninja, machine facts


def sh(cmd, cwd=None, check=True):
    """Runs a short helper command and returns its stdout, stripped."""
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise BenchError(f"`{' '.join(cmd)}` failed ({r.returncode}):\n{r.stdout}{r.stderr}")
    return r.stdout.strip()


def build_kiln(bin_dir):
    print("building kiln: cargo build --release", flush=True)
    r = subprocess.run(["cargo", "build", "--release"], cwd=REPO)
    if r.returncode != 0:
        raise BenchError("cargo build --release failed")
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    if not target.is_absolute():
        target = REPO / target
    kiln = target / "release" / "kiln"
    if not kiln.is_file():
        raise BenchError(f"no kiln binary at {kiln}")
    # Work on a copy: a concurrent `cargo build` in the repository must not swap the binary
    # (and with it, possibly, the format of kiln's state) in the middle of a run.
    copy = Path(bin_dir) / "kiln"
    shutil.copy2(kiln, copy)
    return str(copy)


def ensure_ninja():
    if shutil.which("ninja"):
        return
    print("ninja is not on PATH: installing ninja-build", flush=True)
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "ninja-build"]):
        if subprocess.run(sudo + cmd).returncode != 0:
            raise BenchError(f"`{' '.join(sudo + cmd)}` failed")
    if not shutil.which("ninja"):
        raise BenchError("ninja-build installed but `ninja` is still not on PATH")


def cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "cpu model"):
                return value.strip()
    except OSError:
        pass
    return "unknown"


def machine_facts(kiln):
    try:
        commit = sh(["git", "rev-parse", "HEAD"], cwd=REPO)
        status = sh(["git", "status", "--porcelain"], cwd=REPO).splitlines()
        if any(not line[3:].startswith("benches/results") for line in status):
            commit += "-dirty"
    except BenchError:
        commit = "unknown (not a git checkout)"
    return {
        "commit": commit,
        "kiln": sh([kiln, "--version"]),
        "ninja": sh(["ninja", "--version"]),
        "make": sh(["make", "--version"]).splitlines()[0],
        "nproc": int(sh(["nproc"])),
        "cpu": cpu_model(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


# ----------------------------------------------------------------------------------------------
# Running one build


def become_subreaper():
    """Orphans of our children become our children, so that we can wait4() for a tool started
    by the launcher shell (see Tool.build)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise BenchError(f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(ctypes.get_errno())}")


def tool_env():
    env = dict(os.environ)
    env["NINJA_STATUS"] = "[%f/%t] "  # the default, pinned: the parser relies on it
    env["LC_ALL"] = "C"
    for var in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL"):  # in case this runs under make
        env.pop(var, None)
    return env


class Tool:
    def __init__(self, name, root, kiln, env):
        self.name = name
        self.dir = Path(root) / name
        self.out = self.dir / "out"
        self.env = env
        self.log = Path(root) / f"{name}.log"
        if name.startswith("kiln"):
            self.cmd = [kiln, JOBS]
        else:
            self.cmd = [name, JOBS]

    def clean(self, mods):
        """Brings the tree back to the state before any build."""
        if self.name == "make":
            for dirpath, _, files in os.walk(self.out):
                for f in files:
                    os.unlink(os.path.join(dirpath, f))
            for mod, _ in mods:
                os.makedirs(self.out / mod, exist_ok=True)
        else:
            shutil.rmtree(self.out, ignore_errors=True)
            if self.name == "ninja":
                for f in (".ninja_log", ".ninja_deps"):
                    (self.dir / f).unlink(missing_ok=True)

    def build(self, what):
        """Runs one build: returns (seconds, peak RSS in KB, list of outputs it built)."""
        start = time.perf_counter()
        launcher = subprocess.Popen(["/bin/sh", "-c", LAUNCH, "sh", str(self.log), *self.cmd],
                                    cwd=self.dir, env=self.env, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE)
        pid = int(launcher.stdout.read())
        launcher.stdout.close()
        launcher.wait()
        try:
            _, status, usage = os.wait4(pid, 0)  # ours to reap: we are the subreaper
        except BaseException:
            os.kill(pid, signal.SIGTERM)
            os.waitpid(pid, 0)
            raise
        seconds = time.perf_counter() - start
        returncode = os.waitstatus_to_exitcode(status)
        text = self.log.read_text(errors="replace")
        if returncode != 0:
            sys.stdout.flush()
            sys.stderr.write(text)
            raise BenchError(f"{self.name}: {what} failed with exit status {returncode} "
                             f"(its output is above; command {' '.join(self.cmd)} in {self.dir})")
        return seconds, usage.ru_maxrss, self.parse_outputs(text)

    def parse_outputs(self, text):
        outs = []
        for line in text.splitlines():
            if self.name.startswith("kiln"):
                if STATUS_RE.match(line) and " -> " in line:
                    outs.extend(line.rsplit(" -> ", 1)[1].split())
            else:
                if self.name == "ninja":
                    if not STATUS_RE.match(line):
                        continue
                    line = STATUS_RE.sub("", line)
                if line.startswith("cat ") and " > " in line:
                    outs.append(line.rsplit(" > ", 1)[1].strip())
        return outs


# ----------------------------------------------------------------------------------------------
# Checks


def expected_outputs(mods, scenario):
    mod0, stems0 = mods[0]
    if scenario == "full":
        objs = [f"out/{m}/{s}.o" for m, stems in mods for s in stems]
        return set(objs) | {f"out/lib{m}.a" for m, _ in mods} | {"out/final"}
    if scenario == "null":
        return set()
    if scenario == "source":
        return {f"out/{mod0}/{stems0[0]}.o", f"out/lib{mod0}.a", "out/final"}
    if scenario == "header":
        return {f"out/{mod0}/{s}.o" for s in stems0} | {f"out/lib{mod0}.a", "out/final"}
    raise ValueError(scenario)


def describe(paths, limit=8):
    paths = sorted(paths)
    more = f" ... ({len(paths)} in all)" if len(paths) > limit else ""
    return " ".join(paths[:limit]) + more


def check_ran(results, mods, scenario, label):
    """results: tool -> list of outputs built. Checks each against ninja and the expectation."""
    want = expected_outputs(mods, scenario)
    ninja = set(results["ninja"])
    for name, outs in results.items():
        got = set(outs)
        if len(got) != len(outs):
            dup = {o for o in outs if outs.count(o) > 1} if len(outs) < 5000 else "(many)"
            raise BenchError(f"{label}: {name} built some outputs twice: {dup}")
        if got != ninja:
            raise BenchError(f"{label}: {name} built other outputs than ninja:\n"
                             f"  only {name}: {describe(got - ninja)}\n"
                             f"  only ninja: {describe(ninja - got)}")
    if ninja != want:
        raise BenchError(f"{label}: ninja built other outputs than expected:\n"
                         f"  unexpected: {describe(ninja - want)}\n"
                         f"  missing: {describe(want - ninja)}")


def tree(out_dir):
    """Relative paths of the files under out/, without kiln's state and mark and ninja's own
    files."""
    files = set()
    for dirpath, dirnames, filenames in os.walk(out_dir):
        rel = os.path.relpath(dirpath, out_dir)
        if rel == ".":
            dirnames[:] = [d for d in dirnames if d != ".kiln"]
        for f in filenames:
            # ninja's own files, and the mark kiln leaves in a build directory it made.
            if f in (".ninja_log", ".ninja_deps") or (rel == "." and f == "CACHEDIR.TAG"):
                continue
            files.add(os.path.normpath(os.path.join(rel, f)))
    return files


def check_trees(tools, mods, label):
    ref = tools["ninja"].out
    ref_files = tree(ref)

    def read(base, rel):
        return (base / rel).read_bytes()

    for name, tool in tools.items():
        if name == "ninja":
            continue
        files = tree(tool.out)
        if files != ref_files:
            raise BenchError(f"{label}: {name}'s out/ holds other files than ninja's:\n"
                             f"  only {name}: {describe(files - ref_files)}\n"
                             f"  only ninja: {describe(ref_files - files)}")
        for rel in sorted(ref_files):
            got, want = read(tool.out, rel), read(ref, rel)
            if got != want:
                raise BenchError(f"{label}: {name}'s out/{rel} differs from ninja's "
                                 f"({len(got)} bytes against {len(want)})")


# ----------------------------------------------------------------------------------------------
# One size


def rotated(r):
    k = r % len(TOOLS)
    return TOOLS[k:] + TOOLS[:k]


def append_line(path, original, text):
    path.write_text(original + text)


def bench_size(n, args, kiln, env):
    runs = args.runs if args.runs else (10 if n <= 10000 else 5)
    full_runs = args.full_runs
    load_before = os.getloadavg()
    if load_before[0] > 0.5:
        print(f"   warning: load average {load_before[0]:.2f} before N={n}: something else is "
              "running, timings will be noisy", flush=True)
    parent = args.scratch or tempfile.gettempdir()
    root = tempfile.mkdtemp(prefix=f"kiln-bench-{n}-", dir=parent)
    print(f"\n== N={n}: generating in {root}", flush=True)
    t = time.perf_counter()
    mods = gen_project.generate(n, root)
    print(f"   generated in {time.perf_counter() - t:.1f} s", flush=True)

    tools = {name: Tool(name, root, kiln, env) for name in TOOLS}
    samples = {key: {name: {"seconds": [], "maxrss_kb": []} for name in TOOLS} for key, _ in SCENARIOS}
    orders = {}

    def measure(scenario, r, before=None):
        ran = {}
        for name in rotated(r):
            tool = tools[name]
            if before:
                before(tool)
            secs, rss, outs = tool.build(f"{scenario} build, round {r + 1}")
            samples[scenario][name]["seconds"].append(secs)
            samples[scenario][name]["maxrss_kb"].append(rss)
            ran[name] = outs
        check_ran(ran, mods, scenario, f"N={n} {scenario} build, round {r + 1}")
        orders.setdefault(scenario, []).append(rotated(r))
        line = "  ".join(f"{name} {samples[scenario][name]['seconds'][-1]:.3f}s" for name in TOOLS)
        print(f"   {scenario:6} {r + 1:2}: {line}", flush=True)

    def clean_and_settle(tool):
        # The deletions are flushed to disk and the machine left idle for a second, so that no
        # build pays for the file system's work on deleted outputs.
        tool.clean(mods)
        os.sync()
        time.sleep(1)

    for r in range(full_runs):
        measure("full", r, before=clean_and_settle)
    check_trees(tools, mods, f"N={n} after the full builds")
    print("   check: same outputs and same tasks as ninja after the full builds", flush=True)

    for name in TOOLS:  # warm-up null build, not counted (it must build nothing all the same)
        _, _, outs = tools[name].build("warm-up null build")
        if outs:
            raise BenchError(f"N={n}: {name}'s warm-up null build after a full build ran "
                             f"{describe(outs)}")
    for r in range(runs):
        measure("null", r)

    mod0, stems0 = mods[0]
    for scenario, rel in (("source", f"{mod0}/{stems0[0]}.c"), ("header", f"{mod0}/mod.h")):
        originals = {name: (tools[name].dir / rel).read_text() for name in TOOLS}
        for r in range(runs):
            edit = f"/* benchmark edit {r + 1} */\n"

            def before(tool, rel=rel, edit=edit, originals=originals):
                append_line(tool.dir / rel, originals[tool.name], edit)

            measure(scenario, r, before=before)
    check_trees(tools, mods, f"N={n} after the edits")
    print("   check: same outputs as ninja after the edits", flush=True)

    if args.keep:
        print(f"   kept {root}", flush=True)
    else:
        shutil.rmtree(root, ignore_errors=True)
    return {"n": n, "runs": runs, "full_runs": full_runs, "modules": len(mods),
            "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
            "rounds_order": orders, "samples": samples}


# ----------------------------------------------------------------------------------------------
# Reporting


def fmt_secs(s):
    return f"{s:.3f} s" if s >= 0.1 else f"{s * 1000:.1f} ms"


def table(result):
    heads = (["scenario"] + [f"{t} time" for t in TOOLS] + [f"{t} peak KB" for t in TOOLS]
             + ["kiln-explicit/ninja", "kiln-idiomatic/ninja"])
    lines = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    for key, title in SCENARIOS:
        s = result["samples"][key]
        times = {t: statistics.median(s[t]["seconds"]) for t in TOOLS}
        mems = {t: statistics.median(s[t]["maxrss_kb"]) for t in TOOLS}
        count = len(s["ninja"]["seconds"])
        cells = [f"{title} (median of {count})"]
        cells += [fmt_secs(times[t]) for t in TOOLS]
        cells += [f"{mems[t]:,.0f}" for t in TOOLS]
        cells += [f"{times[k] / times['ninja']:.2f}x" for k in ("kiln-explicit", "kiln-idiomatic")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_report(out_dir, facts, config, results):
    parts = [
        "# kiln benchmark",
        "",
        f"- date: {facts['date']}",
        f"- commit: {facts['commit']}",
        f"- {facts['kiln']}; ninja {facts['ninja']}; {facts['make']}",
        f"- nproc: {facts['nproc']}; CPU: {facts['cpu']}",
        f"- all tools at {JOBS}; full builds {config['full_runs']} rounds; tools alternate within "
        "each round; medians of wall-clock time and of peak RSS (ru_maxrss via wait4)",
        "- command: " + " ".join(config["argv"]),
    ]
    for res in results:
        load = f"{res['loadavg_before'][0]:.2f} before, {res['loadavg_after'][0]:.2f} after"
        parts += ["", f"## N = {res['n']} sources ({res['modules']} modules)", "",
                  f"Load average (1 min): {load}.", "", table(res)]
    (out_dir / "results.md").write_text("\n".join(parts) + "\n")
    raw = {"machine": facts, "config": config, "sizes": {str(r["n"]): r for r in results}}
    (out_dir / "raw.json").write_text(json.dumps(raw, indent=1) + "\n")


# ----------------------------------------------------------------------------------------------


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="1000,10000,50000",
                   help="comma-separated numbers of sources (default 1000,10000,50000)")
    p.add_argument("--runs", type=int, default=0,
                   help="timed null / one-source / one-header builds per tool "
                        "(default 10 at N <= 10000, 5 above)")
    p.add_argument("--full-runs", type=int, default=3, help="full-build rounds (default 3)")
    p.add_argument("--out", help="results directory (default benches/results/<UTC timestamp>)")
    p.add_argument("--scratch", help="where the scratch project is made (default /tmp)")
    p.add_argument("--keep", action="store_true", help="keep the scratch projects")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: N=1000, 2 full rounds, 3 of everything else")
    args = p.parse_args(argv)
    if args.quick:
        args.sizes, args.full_runs, args.runs = "1000", 2, 3
    try:
        args.sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        p.error("--sizes takes comma-separated integers")
    if not args.sizes or min(args.sizes) < 1:
        p.error("--sizes needs positive integers")
    if args.runs < 0 or args.full_runs < 1:
        p.error("--runs must be >= 1 (or 0 for the default), --full-runs >= 1")
    return args


def main(argv):
    args = parse_args(argv)
    started = time.perf_counter()
    bin_dir = tempfile.mkdtemp(prefix="kiln-bench-bin-")
    try:
        kiln = build_kiln(bin_dir)
        ensure_ninja()
        facts = machine_facts(kiln)
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        out_dir = Path(args.out) if args.out else REPO / "benches" / "results" / stamp
        out_dir.mkdir(parents=True, exist_ok=True)
        config = {"sizes": args.sizes, "runs": args.runs or "default", "full_runs": args.full_runs,
                  "jobs": JOBS, "tools": TOOLS, "argv": ["python3", "benches/harness.py"] + argv}
        env = tool_env()
        become_subreaper()
        results = []
        for n in args.sizes:
            results.append(bench_size(n, args, kiln, env))
            write_report(out_dir, facts, config, results)
            print(f"\n## N = {n}\n\n{table(results[-1])}", flush=True)
    except BenchError as e:
        print(f"\nerror: {e}", file=sys.stderr)
        print("(the scratch directory, if any, is kept for inspection)", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(bin_dir, ignore_errors=True)
    print(f"\nresults: {out_dir}/results.md and raw.json "
          f"({time.perf_counter() - started:.0f} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
