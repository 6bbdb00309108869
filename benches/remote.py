#!/usr/bin/env python3
"""Remote execution's figures on loopback: BuildGrid with tests/remote/worker.py
(scripts/remote-setup installs it), against local builds, on release builds of kiln.

    python3 benches/remote.py [--kiln target/release/kiln] [--runs 5] [--out DIR]

1. Per-action overhead: 40 trivial tasks (`cp`), each with its own input, built clean at -j1
   locally and with --remote (inputs given new content every run, so no Action is cached);
   overhead = (remote - local) / 40, per run; the median of --runs runs. Then `kiln clean` and
   the same build again, every result from the ActionCache: (that - local) / 40.
2. Bytes uploaded (FindMissingBlobs at work), Lua example with --remote on a fresh engine:
   a first clean build, a second clean build of another checkout (every result cached), and a
   build after one source file is edited.
3. Clean-build wall time of the Lua example (examples/lua, sources from scripts/fetch-examples):
   local (default -j), --remote on a fresh engine (default -j: 4x the CPUs), and --remote again
   after `kiln clean` (every result from the ActionCache). Medians of --runs, alternated.

Writes results.json and summary.md into --out (default benches/results/<UTC time>-remote).
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHON = os.path.join(ROOT, "target/test-tools/buildgrid/bin/python")


class Engine:
    """tests/remote/engine.py: a BuildGrid server and its worker on a free loopback port."""

    def __init__(self, slots=4):
        self.dir = tempfile.mkdtemp(prefix="kiln-engine-")
        self.proc = subprocess.Popen(
            [PYTHON, os.path.join(ROOT, "tests/remote/engine.py"), "--dir", self.dir, "--slots", str(slots)],
            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("ready "):
            raise SystemExit(f"the engine did not start: {line!r}")
        self.url = line.split()[1]

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def kiln(kiln_bin, cwd, *args):
    t = time.monotonic()
    p = subprocess.run([kiln_bin, *args], cwd=cwd, capture_output=True, text=True)
    wall = time.monotonic() - t
    if p.returncode != 0:
        raise SystemExit(f"kiln {' '.join(args)} failed in {cwd}:\n{p.stderr}")
    stats = dict((m.group(1), int(m.group(2))) for m in re.finditer(r"^\s+(remote [a-z ]+?)\s+(\d+)$", p.stderr, re.M))
    return wall, stats, p.stderr


TRIVIAL = """
[rule.copy]
run = "cp ${SRC} ${TGT}"
ext_in = [".txt"]
ext_out = [".out"]

[[gen]]
name = "copy"
rule = "copy"
source = ["in/*.txt"]
"""


def overhead(kiln_bin, runs, n=40):
    engine = Engine()
    rows = []
    try:
        d = tempfile.mkdtemp(prefix="kiln-trivial-")
        with open(os.path.join(d, "build.toml"), "w") as f:
            f.write(TRIVIAL)
        os.makedirs(os.path.join(d, "in"))
        for run in range(runs):
            for i in range(n):
                with open(os.path.join(d, "in", f"{i:03}.txt"), "w") as f:
                    f.write(f"run {run} file {i} {time.time_ns()}\n")
            kiln(kiln_bin, d, "distclean")
            local, _, _ = kiln(kiln_bin, d, "build", "-j1")
            kiln(kiln_bin, d, "distclean")
            remote, stats, _ = kiln(kiln_bin, d, "--remote", engine.url, "build", "-j1", "-d", "stats")
            assert stats.get("remote executed") == n, stats
            kiln(kiln_bin, d, "clean")
            hits, stats, _ = kiln(kiln_bin, d, "--remote", engine.url, "build", "-j1", "-d", "stats")
            assert stats.get("remote hits") == n, stats
            rows.append({"local_s": local, "remote_s": remote, "hits_s": hits,
                         "per_action_ms": (remote - local) / n * 1000,
                         "per_hit_ms": (hits - local) / n * 1000})
        shutil.rmtree(d)
    finally:
        engine.stop()
    return rows


def copy_lua():
    src = os.path.join(ROOT, "examples/lua")
    if not os.path.isdir(os.path.join(src, "upstream")):
        raise SystemExit("examples/lua/upstream is missing: run scripts/fetch-examples")
    d = tempfile.mkdtemp(prefix="kiln-lua-")
    shutil.copytree(src, d, dirs_exist_ok=True, ignore=shutil.ignore_patterns("build", "build-*"))
    return d


def uploads(kiln_bin):
    engine = Engine()
    try:
        a, b = copy_lua(), copy_lua()
        _, first, _ = kiln(kiln_bin, a, "--remote", engine.url, "build", "-d", "stats")
        _, second, _ = kiln(kiln_bin, b, "--remote", engine.url, "build", "-d", "stats")
        path = os.path.join(a, "upstream/src/lapi.c")
        with open(path, "a") as f:
            f.write("\n/* edited */\n")
        _, edit, _ = kiln(kiln_bin, a, "--remote", engine.url, "build", "-d", "stats")
        for d in (a, b):
            shutil.rmtree(d)
    finally:
        engine.stop()
    return {"first clean build": first, "second checkout, clean build": second, "one source edited": edit}


def lua_times(kiln_bin, runs):
    rows = []
    d = copy_lua()
    for _ in range(runs):
        kiln(kiln_bin, d, "distclean")
        local, _, _ = kiln(kiln_bin, d, "build")
        engine = Engine()
        try:
            kiln(kiln_bin, d, "distclean")
            remote, stats, _ = kiln(kiln_bin, d, "--remote", engine.url, "build", "-d", "stats")
            executed = stats.get("remote executed")
            kiln(kiln_bin, d, "clean")
            hits, stats2, _ = kiln(kiln_bin, d, "--remote", engine.url, "build", "-d", "stats")
        finally:
            engine.stop()
        rows.append({"local_s": local, "remote_s": remote, "remote_hits_s": hits,
                     "executed": executed, "hits": stats2.get("remote hits")})
    shutil.rmtree(d)
    return rows


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--kiln", default=os.path.join(ROOT, "target/release/kiln"))
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    out = args.out or os.path.join(ROOT, "benches/results", time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-remote")
    os.makedirs(out, exist_ok=True)
    kiln_bin = os.path.abspath(args.kiln)

    over = overhead(kiln_bin, args.runs)
    up = uploads(kiln_bin)
    lua = lua_times(kiln_bin, args.runs)
    med = lambda rows, k: statistics.median(r[k] for r in rows)
    results = {"overhead": over, "uploads": up, "lua": lua, "cpus": os.cpu_count()}
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    lines = [
        f"# Remote execution on loopback ({time.strftime('%Y-%m-%d', time.gmtime())}, {os.cpu_count()} CPUs)",
        "",
        f"Per-action overhead (40 trivial tasks, -j1, median of {args.runs}): "
        f"{med(over, 'per_action_ms'):.1f} ms (local {med(over, 'local_s'):.3f} s, remote {med(over, 'remote_s'):.3f} s); "
        f"a result from the ActionCache instead: {med(over, 'per_hit_ms'):.1f} ms per task ({med(over, 'hits_s'):.3f} s)",
        "",
        "| Lua example | bytes uploaded | blobs named | blobs missing | executed | hits |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, s in up.items():
        lines.append(f"| {name} | {s.get('remote bytes uploaded', 0):,} | {s.get('remote blobs named', 0)} | "
                     f"{s.get('remote blobs missing', 0)} | {s.get('remote executed', 0)} | {s.get('remote hits', 0)} |")
    lines += [
        "",
        f"Lua clean build, median of {args.runs} (alternated):",
        "",
        "| build | wall | against local |",
        "| --- | --- | --- |",
        f"| local | {med(lua, 'local_s'):.3f} s | 1.00x |",
        f"| --remote, fresh engine | {med(lua, 'remote_s'):.3f} s | {med(lua, 'remote_s') / med(lua, 'local_s'):.2f}x |",
        f"| --remote, every result cached | {med(lua, 'remote_hits_s'):.3f} s | {med(lua, 'remote_hits_s') / med(lua, 'local_s'):.2f}x |",
    ]
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"\nwritten to {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
