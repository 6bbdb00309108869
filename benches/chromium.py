#!/usr/bin/env python3
"""kiln against ninja on a Chromium-sized tree: ninja's own fake manifests, converted to build.toml.

Usage (from anywhere; the repository root is found from this file's location):

    python3 benches/chromium.py --scale 1            # the real figures: 1,500 targets
    python3 benches/chromium.py --scale 0.02         # a check of the whole pipeline, ~1 minute
        [--runs R] [--full-runs F] [--includes K] [--jobs J] [--kiln PATH] [--cache DIR]
        [--scratch DIR] [--out DIR] [--keep]

The tree. `misc/write_fake_manifests.py` of ninja's source (Debian's `ninja-build` source package,
fetched once with `apt-get source --download-only ninja-build` into --cache, default
~/.cache/kiln-bench/ninja-src; never committed) writes a build.ninja that `subninja`s one manifest
per target: 1,499 static libraries and one program that links them all, each library depending on
about 5% of the libraries before it; 40% of the targets have a `stamp` task that every one of their
compiles implicitly depends on. At full size that is 87,119 tasks: 85,017 compiles, 1,499 archives,
one link and 602 stamps. --scale F passes `-t round(1500 * F)` (at least 2 targets); F may go up
to 4 (--scale 2.3: about 200,000 tasks; each library then depends on more earlier ones, 5% of them).

The sources are written by this script in the form the generator's `-s` gives them (write_sources
below): a header per source, and every source of a target including the headers of its target's
sources, then those of the targets it depends on. `-s` itself includes all of them, 2,244 per
compile on average at full size (190 million include lines, several GB of sources); here the list
is cut after its first K entries (--includes, default 120, the ~120 headers per compile of the
issue), so the libraries early in the list, which many depend on, are the widely included ones.

The tools. benches/fakecc.c, compiled once with `cc -O2`, is the compiler, archiver and linker of
both build descriptions: a compile follows its source's `#include "..."` lines as a compiler would
(beside the source, then `-Isrc`), hashes the source and the headers into the object and writes a
depfile naming them; an archive or a link hashes its inputs. So every depfile names real headers,
the same for both tools, and an object changes exactly when its source or a header does.

The build descriptions, each in its own copy of the tree:

    ninja       the generated build.ninja, its `cxx` and `alink` variables pointed at fakecc
    kiln        build.toml: the four rules of build.ninja (cxx with its depfile, alink, link,
                stamp) and one `[[gen]]` per target, as a person would write it: the target's
                sources listed (mapped through `cxx` by their extension), its defines in its `env`,
                the targets it links in `use`, its stamp (a generator of its own, `map = false`)
                in `deps`. `use` puts a library's dependencies into its archive's `${SRC}`, where
                ninja's manifest has them as implicit inputs: either way the archive is remade
                when one of them changes, and fakecc hashes whatever it is given
    kiln-parts  the same split into parts: the top build.toml holds the rules and names one part
                per target in `[project] subdirs`, src/<dir>/build.toml, beside its sources

Scenarios, all at -j2, tools alternating within each round (the first tool rotating), medians of
wall-clock time and of peak RSS (ru_maxrss of the tool's own process, as harness.py takes it):

    full        from clean (kiln: out/ deleted; ninja: its outputs, .ninja_log and .ninja_deps
                deleted), then sync and a one-second pause before the build; F rounds
    null        nothing changed (after one uncounted warm-up null build)
    dry         `-n` with nothing to do
    source      one source gets a line appended: its object, its archive, every archive that
                depends on that one (ninja's manifest makes an archive depend on the archives it
                names), and the program
    header      the header included by the most compiles gets a line appended: every compile
                that includes it, and the archives downstream
  kiln only, in kiln and kiln-parts, the first build after an edit of a build file (the target's
  generator in build.toml, or its part); ninja's null build is the comparison:
    edit-comment  a comment appended: no task runs
    edit-flags    one generator's defines gain one: its compiles, its archive and downstream run
    edit-add      one source added to one generator (and to the tree): one compile, its archive
                  and downstream
  Each edit is undone after its timed build, and the tree rebuilt (untimed).

The edited target is the library without a stamp nearest the middle of the list. Its first source
is the one edited: a stamp's source is avoided because ninja reruns a stamped target's every
compile when the stamp is touched (mtimes), where kiln sees that the empty stamp did not change.

Checks, any failure aborting the run: every timed build ran exactly the expected outputs, each once
(kiln's output names are mapped to ninja's: out/src/D/S.o is obj/D/NAME.S.o), every tool the same
set as ninja; after the full builds every kiln object is byte-identical to ninja's.

Output: DIR/results.md and DIR/raw.json (every sample, the commit, versions, the machine, the
tree's size, the date); DIR defaults to benches/results/<UTC timestamp>-chromium-<scale>.
"""

import argparse
import datetime
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.dont_write_bytecode = True  # no benches/__pycache__ in the work tree
sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402
from harness import BenchError  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
FULL_TARGETS = 1500
TOOLS = ["ninja", "kiln", "kiln-parts"]
KILNS = ["kiln", "kiln-parts"]
SCENARIOS = [
    ("full", "full build"),
    ("null", "null build"),
    ("dry", "-n, nothing to do"),
    ("source", "one source edited"),
    ("header", "widely included header edited"),
    ("edit-comment", "build file: comment appended"),
    ("edit-flags", "build file: one generator's flags changed"),
    ("edit-add", "build file: one source added"),
]
EDITS = ["edit-comment", "edit-flags", "edit-add"]
STATUS_RE = re.compile(r"^\[\d+/\d+\] ")
ADDED = "bench_added"


# ----------------------------------------------------------------------------------------------
# The generator, the fake tools


def fetch_generator(cache):
    """Returns the directory holding write_fake_manifests.py and ninja_syntax.py, fetching
    Debian's ninja-build source package into `cache` the first time."""
    cache = Path(cache)
    found = sorted(cache.glob("ninja-*/misc/write_fake_manifests.py"))
    if found:
        return found[-1].parent
    cache.mkdir(parents=True, exist_ok=True)
    print(f"fetching ninja's source: apt-get source --download-only ninja-build (in {cache})",
          flush=True)
    r = subprocess.run(["apt-get", "source", "--download-only", "ninja-build"], cwd=cache)
    if r.returncode != 0:
        raise BenchError("apt-get source --download-only ninja-build failed (is a deb-src line "
                         "in /etc/apt/sources.list.d and `apt-get update` done?)")
    tars = sorted(cache.glob("ninja-build_*.orig.tar.*"))
    if not tars:
        raise BenchError(f"no ninja-build_*.orig.tar.* in {cache}")
    with tarfile.open(tars[-1]) as t:
        members = [m for m in t.getmembers() if "/misc/" in m.name and m.isfile()]
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        t.extractall(cache, members=members, **safe)
    found = sorted(cache.glob("ninja-*/misc/write_fake_manifests.py"))
    if not found:
        raise BenchError(f"{tars[-1]} holds no misc/write_fake_manifests.py")
    return found[-1].parent


def build_fakecc(bin_dir):
    """Compiles benches/fakecc.c into bin_dir; returns the absolute path of the program."""
    exe = Path(bin_dir) / "fakecc"
    src = Path(__file__).resolve().parent / "fakecc.c"
    harness.sh(["cc", "-O2", "-o", str(exe), str(src)])
    return str(exe)


def generate(misc, ninja_dir, targets):
    """Runs write_fake_manifests.py into ninja_dir: build.ninja and obj/**/*.ninja. Not its `-s`:
    write_sources() below writes the sources."""
    harness.sh([sys.executable, str(misc / "write_fake_manifests.py"), "-t", str(targets),
                str(ninja_dir)])


def write_sources(root, targets, cap):
    """Writes src/ as write_fake_manifests.py's `-s` does (a header and a source per object, every
    source of a target `#include`ing the same list: its target's headers, then those of each
    target it depends on, in order; the program's first source has a main), except that the list
    is cut after its first `cap` entries. Uncut, a compile at full size includes 2,244 headers on
    average (the program's ten include all 85,017), 190 million include lines in all; cut at 120
    it is about the ~120 the issue describes. Sets each target's "includes": the header paths its
    compiles read."""
    by = {t["name"]: t for t in targets}
    for t in targets:
        includes, paths = [], []
        for owner in [t] + [by[d] for d in t["deps"]]:
            for src in owner["sources"]:
                if len(includes) == cap:
                    break
                h = os.path.basename(header_of(src))
                includes.append(h if owner is t else f"{owner['dir']}/{h}")
                paths.append(header_of(src))
        t["includes"] = paths
        namespace = os.path.basename(t["dir"])
        head = "".join(f'#include "{i}"\n' for i in includes) + "\n"
        os.makedirs(Path(root) / "src" / t["dir"], exist_ok=True)
        for k, src in enumerate(t["sources"]):
            cls = Path(src).stem
            main = "int main(int argc, char **argv) {}\n" if t["kind"] == "exe" and k == 0 else ""
            (Path(root) / header_of(src)).write_text(
                f"namespace {namespace} {{ struct {cls} {{ {cls}(); }}; }}")
            (Path(root) / src).write_text(
                f"{head}namespace {namespace} {{ {cls}::{cls}() {{}} }}{main}")


def point_ninja_at(ninja_dir, fakecc):
    """Points build.ninja's compiler and archiver (the linker is $cxx) at fakecc."""
    path = Path(ninja_dir) / "build.ninja"
    text = path.read_text()
    for var in ("cxx", "alink"):
        text, n = re.subn(rf"^{var} = .*$", f"{var} = {fakecc}", text, count=1, flags=re.M)
        if n != 1:
            raise BenchError(f"build.ninja has no `{var} = ` line")
    path.write_text(text)


# ----------------------------------------------------------------------------------------------
# Reading the generated manifests


def ninja_lines(path):
    """The logical lines of a .ninja file: `$` line continuations joined, comments dropped."""
    lines, cur = [], ""
    for raw in Path(path).read_text().splitlines():
        if cur:
            raw = raw.lstrip()
        if raw.endswith("$") and not raw.endswith("$$"):
            cur += raw[:-1]
            continue
        cur += raw
        if cur.strip() and not cur.lstrip().startswith("#"):
            lines.append(cur)
        cur = ""
    return lines


def parse_build(line):
    """`build OUTS: RULE INS | IMPLICIT || ORDER` -> (outs, rule, ins, implicit)."""
    head, _, rest = line[len("build "):].partition(": ")
    words = rest.split()
    rule, ins, implicit, order = words[0], [], [], []
    bucket = ins
    for w in words[1:]:
        if w == "|":
            bucket = implicit
        elif w == "||":
            bucket = order
        else:
            bucket.append(w)
    return head.split(), rule, ins, implicit


def read_targets(ninja_dir):
    """Every target of the generated tree, in build.ninja's order, as a dict: name, dir (below
    src/ and obj/), kind ("lib" or "exe"), output, sources, objs (ninja's object paths, in the
    sources' order), defines, stamp (its path, or None) and deps (names of targets it links)."""
    ninja_dir = Path(ninja_dir)
    subs = [ln.split()[1] for ln in ninja_lines(ninja_dir / "build.ninja")
            if ln.startswith("subninja ")]
    targets, by_output = [], {}
    for sub in subs:
        rel = Path(sub)
        t = {"name": rel.stem, "dir": str(rel.parent.relative_to("obj")), "sources": [],
             "objs": [], "defines": [], "stamp": None, "dep_outputs": []}
        for line in ninja_lines(ninja_dir / sub):
            if line.startswith("defines = "):
                t["defines"] = line.split()[2:]
            elif line.startswith("build "):
                outs, rule, ins, implicit = parse_build(line)
                if rule == "stamp":
                    t["stamp"] = outs[0]
                elif rule == "cxx":
                    t["objs"].append(outs[0])
                    t["sources"].append(ins[0])
                elif rule in ("alink", "link"):
                    t["kind"] = "lib" if rule == "alink" else "exe"
                    t["output"] = outs[0]
                    t["dep_outputs"] = implicit
        by_output[t["output"]] = t["name"]
        targets.append(t)
    for t in targets:
        t["deps"] = [by_output[o] for o in t.pop("dep_outputs")]
    return targets


def downstream(targets, name):
    """Names of the targets that depend on `name`, directly or not, and `name` itself."""
    users = {}
    for t in targets:
        for d in t["deps"]:
            users.setdefault(d, []).append(t["name"])
    seen, todo = {name}, [name]
    while todo:
        for u in users.get(todo.pop(), []):
            if u not in seen:
                seen.add(u)
                todo.append(u)
    return seen


def header_of(source):
    return source[:-len(".cc")] + ".h"


def stats(targets):
    """The tree's size: tasks, compiles, and the headers each compile includes."""
    includes = [len(t["includes"]) for t in targets for _ in t["sources"]]
    stamps = sum(1 for t in targets if t["stamp"])
    return {"targets": len(targets), "compiles": len(includes), "stamps": stamps,
            "tasks": len(includes) + stamps + len(targets),
            "headers_per_compile_mean": round(statistics.mean(includes), 1),
            "headers_per_compile_median": statistics.median(includes)}


def pick_edits(targets):
    """The target whose build-file entry and first source are edited (the library without a stamp
    nearest the middle of the list), and the header included by the most compiles with the
    number of compiles that include it."""
    libs = [t for t in targets if t["kind"] == "lib" and not t["stamp"]]
    index = {t["name"]: i for i, t in enumerate(targets)}
    edit = min(libs, key=lambda t: abs(index[t["name"]] - len(targets) // 2))
    count = {}
    for t in targets:
        for h in t["includes"]:
            count[h] = count.get(h, 0) + len(t["sources"])
    header = max(count, key=lambda h: (count[h], h))
    return edit, header, count[header]


# ----------------------------------------------------------------------------------------------
# The build.toml files


def toml_list(items, indent="", per_line=False):
    quoted = [json.dumps(i) for i in items]
    if per_line and quoted:
        return "[\n" + "".join(f"{indent}  {q},\n" for q in quoted) + f"{indent}]"
    return "[" + ", ".join(quoted) + "]"


def top_file(fakecc, subdirs=None):
    """The top build.toml's head: the project, the tools and the four rules of build.ninja."""
    parts = ["[project]", 'out = "out"']
    if subdirs is not None:
        parts.append("subdirs = " + toml_list(subdirs, per_line=True))
    parts += [
        "",
        "[env]",
        f"CXX = {json.dumps(fakecc)}",
        'LD = "${CXX}"',
        f"AR = {json.dumps(fakecc)}",
        "DEFINES = []",
        'INCLUDES = ["-Isrc"]',
        'CFLAGS = ["-Wall", "-fno-rtti", "-fno-exceptions"]',
        "",
        "[rule.cxx]",
        'run = "${CXX} -MMD -MF ${TGT}.d ${DEFINES} ${INCLUDES} ${CFLAGS} -c ${SRC} -o ${TGT}"',
        'ext_in = [".cc"]',
        'ext_out = [".o"]',
        'depfile = "${TGT}.d"',
        "",
        "[rule.alink]",
        'run = "rm -f ${TGT} && ${AR} -o ${TGT} ${SRC}"',
        "",
        "[rule.link]",
        'run = "${LD} -o ${TGT} ${SRC}"',
        "",
        "[rule.stamp]",
        'run = "touch ${TGT}"',
        "",
    ]
    return "\n".join(parts)


def target_gens(t, base):
    """The generators of one target: its stamp's, if any, and its own. Paths are relative to
    `base` (the top directory, or the target's source directory for a part)."""
    def rel(p):
        return os.path.relpath(p, base) if base != "." else p

    out = []
    deps = []
    if t["stamp"]:
        stamp_target = t["stamp"] if base == "." else f"{t['name']}.stamp"
        out.append(f'[[gen]]\nname = "{t["name"]}-stamp"\nrule = "stamp"\nmap = false\n'
                   f'source = {json.dumps(rel(t["sources"][0]))}\n'
                   f'target = {json.dumps(stamp_target)}\n')
        deps = [f"{t['name']}-stamp"]
    rule = "alink" if t["kind"] == "lib" else "link"
    lines = [
        "[[gen]]",
        f'name = "{t["name"]}"',
        f'rule = "{rule}"',
        "source = " + toml_list([rel(s) for s in t["sources"]], per_line=True),
    ]
    if t["deps"]:
        lines.append("use = " + toml_list(t["deps"]))
    if deps:
        lines.append("deps = " + toml_list(deps))
    lines.append("env = { DEFINES = " + toml_list(t["defines"]) + " }")
    lines.append(f"target = {json.dumps(t['output'])}")
    out.append("\n".join(lines) + "\n")
    return out


def write_kiln(root, targets, fakecc, parts):
    """Writes the kiln description into root (whose src/ is already there). Returns, for the
    edits, each target's build file (relative to root) and a map from kiln's output paths to
    ninja's."""
    root = Path(root)
    files, names = {}, {}
    if parts:
        subdirs = [f"src/{t['dir']}" for t in targets]
        (root / "build.toml").write_text(top_file(fakecc, subdirs))
        for t in targets:
            part = f"src/{t['dir']}/build.toml"
            (root / part).write_text("\n".join(target_gens(t, f"src/{t['dir']}")))
            files[t["name"]] = part
    else:
        body = [top_file(fakecc)]
        for t in targets:
            body += target_gens(t, ".")
            files[t["name"]] = "build.toml"
        (root / "build.toml").write_text("\n".join(body))
    for t in targets:
        base = f"out/src/{t['dir']}/" if parts else "out/"
        names[base + t["output"]] = t["output"]
        if t["stamp"]:
            names[(base + t["name"] + ".stamp") if parts else "out/" + t["stamp"]] = t["stamp"]
        for src, obj in zip(t["sources"], t["objs"]):
            names["out/" + src[:-len(".cc")] + ".o"] = obj
        names[f"out/src/{t['dir']}/{ADDED}.o"] = f"obj/{t['dir']}/{t['name']}.{ADDED}.o"
    return files, names


# ----------------------------------------------------------------------------------------------
# Running builds


class Tool:
    """One copy of the tree and the command that builds it."""

    def __init__(self, name, root, kiln, env, jobs, targets, names=None, files=None):
        self.name = name
        self.dir = Path(root) / name
        self.log = Path(root) / f"{name}.log"
        self.env = env
        self.cmd = [kiln if name in KILNS else "ninja", f"-j{jobs}"]
        self.targets = targets
        self.names = names or {}
        self.files = files or {}

    def clean(self):
        """Deletes everything a build made, and the tool's state."""
        if self.name in KILNS:
            shutil.rmtree(self.dir / "out", ignore_errors=True)
            return
        for t in self.targets:
            for p in t["objs"] + [t["output"]] + ([t["stamp"]] if t["stamp"] else []):
                (self.dir / p).unlink(missing_ok=True)
                (self.dir / (p + ".d")).unlink(missing_ok=True)
        for f in (".ninja_log", ".ninja_deps"):
            (self.dir / f).unlink(missing_ok=True)

    def build(self, what, dry=False):
        """Runs one build as harness.py does: returns (seconds, peak RSS in KB, outputs built,
        in ninja's names)."""
        cmd = self.cmd + (["-n"] if dry else [])
        start = time.perf_counter()
        launcher = subprocess.Popen(["/bin/sh", "-c", harness.LAUNCH, "sh", str(self.log), *cmd],
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
        text = self.log.read_text(errors="replace")
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            sys.stdout.flush()
            sys.stderr.write(text[-20000:])
            raise BenchError(f"{self.name}: {what} failed with exit status {code} "
                             f"(its output is above; {' '.join(cmd)} in {self.dir})")
        return seconds, usage.ru_maxrss, self.parse_outputs(text)

    def parse_outputs(self, text):
        """The outputs each `[n/N]` line names. kiln: `[n/N] rule: inputs -> outputs`; ninja:
        `[n/N] DESCRIPTION OUTPUT` (every rule of the manifest has a description)."""
        outs = []
        for line in text.splitlines():
            if not STATUS_RE.match(line):
                continue
            if self.name in KILNS:
                if " -> " in line:
                    for o in line.rsplit(" -> ", 1)[1].split():
                        if not o.endswith(".d"):
                            outs.append(self.names.get(o, "?" + o))
            else:
                outs.append(STATUS_RE.sub("", line).split(None, 1)[1].strip())
        return outs


def expected(targets, scenario, edit, header):
    """The outputs (ninja's names) a scenario's build must run."""
    by = {t["name"]: t for t in targets}
    if scenario == "full":
        return {p for t in targets
                for p in t["objs"] + [t["output"]] + ([t["stamp"]] if t["stamp"] else [])}
    if scenario in ("null", "dry", "edit-comment"):
        return set()
    if scenario == "header":
        hit = [t for t in targets if header in t["includes"]]
        objs = {o for t in hit for o in t["objs"]}
        return objs | {by[n]["output"] for t in hit for n in downstream(targets, t["name"])}
    outs = {by[n]["output"] for n in downstream(targets, edit["name"])}
    if scenario == "source":
        return outs | {edit["objs"][0]}
    if scenario == "edit-flags":
        return outs | set(edit["objs"])
    if scenario == "edit-add":
        return outs | {f"obj/{edit['dir']}/{edit['name']}.{ADDED}.o"}
    raise ValueError(scenario)


def check_ran(label, ran, want):
    """ran: tool -> outputs (ninja's names). Each tool ran every output once, kiln's the same
    set as ninja's where ninja ran too, and that set is the expected one."""
    ref = "ninja" if "ninja" in ran else KILNS[0]
    for name, outs in ran.items():
        got, other = set(outs), set(ran[ref])
        if len(got) != len(outs):
            raise BenchError(f"{label}: {name} built some outputs twice")
        if got != other:
            raise BenchError(f"{label}: {name} built other outputs than {ref}:\n"
                             f"  only {name}: {harness.describe(got - other)}\n"
                             f"  only {ref}: {harness.describe(other - got)}")
    got = set(ran[ref])
    if got != want:
        raise BenchError(f"{label}: {ref} built other outputs than expected:\n"
                         f"  unexpected: {harness.describe(got - want)}\n"
                         f"  missing: {harness.describe(want - got)}")


def check_objects(tools, label):
    """Every kiln object is byte-identical to ninja's."""
    ninja = tools["ninja"].dir
    for name in KILNS:
        tool = tools[name]
        for kpath, npath in tool.names.items():
            if not npath.endswith(".o") or ADDED in npath:
                continue
            got, want = (tool.dir / kpath).read_bytes(), (ninja / npath).read_bytes()
            if got != want:
                raise BenchError(f"{label}: {name}'s {kpath} differs from ninja's {npath}")


# ----------------------------------------------------------------------------------------------
# The run


def rotated(names, r):
    k = r % len(names)
    return names[k:] + names[:k]


def bench(args, kiln, misc, env):
    """Generates the tree, converts it, and measures every scenario. Returns the raw results."""
    n_targets = max(2, round(FULL_TARGETS * args.scale))
    root = Path(tempfile.mkdtemp(prefix=f"kiln-chromium-{n_targets}-",
                                 dir=args.scratch or tempfile.gettempdir()))
    print(f"\n== {n_targets} targets (scale {args.scale}): generating in {root}", flush=True)
    t0 = time.perf_counter()
    (root / "bin").mkdir()
    fakecc = build_fakecc(root / "bin")  # in the scratch tree, so that a kept tree still builds
    generate(misc, root / "ninja", n_targets)
    point_ninja_at(root / "ninja", fakecc)
    targets = read_targets(root / "ninja")
    write_sources(root / "ninja", targets, args.includes)
    size = stats(targets)
    tools = {"ninja": Tool("ninja", root, kiln, env, args.jobs, targets)}
    for name in KILNS:
        shutil.copytree(root / "ninja" / "src", root / name / "src")
        files, names = write_kiln(root / name, targets, fakecc, parts=name == "kiln-parts")
        tools[name] = Tool(name, root, kiln, env, args.jobs, targets, names, files)
    edit, header, header_count = pick_edits(targets)
    print(f"   {size['tasks']} tasks, {size['compiles']} compiles, {size['stamps']} stamps, "
          f"{size['headers_per_compile_mean']} headers per compile on average; generated and "
          f"converted in {time.perf_counter() - t0:.1f} s", flush=True)
    print(f"   edits: target {edit['name']} ({len(edit['sources'])} sources), "
          f"source {edit['sources'][0]}, header {header} ({header_count} compiles)", flush=True)

    samples = {key: {name: {"seconds": [], "maxrss_kb": [], "tasks": []} for name in TOOLS}
               for key, _ in SCENARIOS}

    def record(scenario, name, secs, rss, outs):
        s = samples[scenario][name]
        s["seconds"].append(secs)
        s["maxrss_kb"].append(rss)
        s["tasks"].append(len(outs))

    def measure(scenario, r, before=None, dry=False):
        ran = {}
        for name in rotated(TOOLS, r):
            tool = tools[name]
            if before:
                before(tool)
            secs, rss, outs = tool.build(f"{scenario} build, round {r + 1}", dry=dry)
            record(scenario, name, secs, rss, outs)
            ran[name] = outs
        check_ran(f"{scenario}, round {r + 1}", ran,
                  expected(targets, scenario, edit, header))
        line = "  ".join(f"{n} {samples[scenario][n]['seconds'][-1]:.3f}s" for n in TOOLS)
        print(f"   {scenario:12} {r + 1:2}: {line}", flush=True)

    def clean_and_settle(tool):
        tool.clean()
        os.sync()
        time.sleep(1)

    for r in range(args.full_runs):
        measure("full", r, before=clean_and_settle)
    check_objects(tools, "after the full builds")
    print("   check: every kiln object is byte-identical to ninja's", flush=True)
    for name in TOOLS:
        _, _, outs = tools[name].build("warm-up null build")
        if outs:
            raise BenchError(f"{name}'s warm-up null build ran {harness.describe(outs)}")
    for r in range(args.runs):
        measure("null", r)
    for r in range(args.runs):
        measure("dry", r, dry=True)

    for scenario, rel in (("source", edit["sources"][0]), ("header", header)):
        original = (root / "ninja" / rel).read_text()
        for r in range(args.runs):
            def before(tool, rel=rel, r=r, original=original):
                (tool.dir / rel).write_text(original + f"/* benchmark edit {r + 1} */\n")
            measure(scenario, r, before=before)

    for scenario in EDITS:
        for r in range(args.runs):
            ran = {}
            for name in rotated(KILNS, r):
                tool = tools[name]
                undo = edit_build_file(tool, edit, scenario, r)
                secs, rss, outs = tool.build(f"{scenario}, round {r + 1}")
                record(scenario, name, secs, rss, outs)
                ran[name] = outs
                undo()
                tool.build(f"undoing {scenario}, round {r + 1}")
            check_ran(f"{scenario}, round {r + 1}", ran,
                      expected(targets, scenario, edit, header))
            line = "  ".join(f"{n} {samples[scenario][n]['seconds'][-1]:.3f}s" for n in KILNS)
            print(f"   {scenario:12} {r + 1:2}: {line}", flush=True)

    if args.keep:
        print(f"   kept {root}", flush=True)
    else:
        shutil.rmtree(root, ignore_errors=True)
    return {"scale": args.scale, "targets_arg": n_targets, "size": size,
            "edited_target": edit["name"], "edited_source": edit["sources"][0],
            "edited_header": header, "header_compiles": header_count,
            "runs": args.runs, "full_runs": args.full_runs, "samples": samples}


def edit_build_file(tool, edit, scenario, r):
    """Applies one build-file edit to the edited target's build file; returns the undo."""
    path = tool.dir / tool.files[edit["name"]]
    original = path.read_text()
    added = tool.dir / "src" / edit["dir"] / f"{ADDED}.cc"
    if scenario == "edit-comment":
        text = original + f"# benchmark edit {r + 1}\n"
    else:
        start = original.index(f'[[gen]]\nname = "{edit["name"]}"\n')
        end = original.find("[[gen]]", start + 1)
        end = len(original) if end < 0 else end
        block = original[start:end]
        if scenario == "edit-flags":
            new = block.replace("env = { DEFINES = [", f'env = {{ DEFINES = ["-DBENCH_EDIT_{r}", ',
                                1)
        else:
            shutil.copy(tool.dir / edit["sources"][0], added)
            i = block.index("\n]\n", block.index("source = [")) + 1  # the list's last line
            prefix = "" if "-parts" in tool.name else f"src/{edit['dir']}/"
            new = block[:i] + f'  "{prefix}{ADDED}.cc",\n' + block[i:]
        if new == block:
            raise BenchError(f"cannot change {edit['name']}'s flags in {path}")
        text = original[:start] + new + original[end:]
    path.write_text(text)

    def undo():
        path.write_text(original)
        added.unlink(missing_ok=True)
    return undo


# ----------------------------------------------------------------------------------------------
# Reporting


def table(result):
    heads = (["scenario"] + [f"{t} time" for t in TOOLS] + [f"{t} peak KB" for t in TOOLS]
             + ["tasks run", "kiln/ninja", "kiln-parts/ninja"])
    lines = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    null = result["samples"]["null"]["ninja"]["seconds"]
    for key, title in SCENARIOS:
        s = result["samples"][key]
        cells = [f"{title} (median of {len(s['kiln']['seconds'])})"]
        times, mems = {}, {}
        for t in TOOLS:
            if s[t]["seconds"]:
                times[t] = statistics.median(s[t]["seconds"])
                mems[t] = statistics.median(s[t]["maxrss_kb"])
        cells += [harness.fmt_secs(times[t]) if t in times else "-" for t in TOOLS]
        cells += [f"{mems[t]:,.0f}" if t in mems else "-" for t in TOOLS]
        cells.append(str(s["kiln"]["tasks"][0]) if s["kiln"]["tasks"] else "-")
        base = times.get("ninja") or (statistics.median(null) if key in EDITS else None)
        cells += [f"{times[k] / base:.2f}x" if base else "-" for k in KILNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_report(out_dir, facts, config, result):
    size = result["size"]
    parts = [
        "# kiln against ninja on ninja's fake Chromium manifests",
        "",
        f"- date: {facts['date']}",
        f"- commit: {facts['commit']}",
        f"- {facts['kiln']}; ninja {facts['ninja']}",
        f"- nproc: {facts['nproc']}; CPU: {facts['cpu']}",
        f"- scale {result['scale']}: {size['targets']} targets, {size['tasks']} tasks, "
        f"{size['compiles']} compiles, {size['headers_per_compile_mean']} headers per compile "
        "on average",
        f"- edited: target {result['edited_target']}, source {result['edited_source']}, "
        f"header {result['edited_header']} ({result['header_compiles']} compiles include it)",
        f"- all tools at -j{config['jobs']}; tools alternate within each round; medians; the "
        "edits' ratios are over ninja's null build",
        "- command: " + " ".join(config["argv"]),
        "",
        table(result),
    ]
    (out_dir / "results.md").write_text("\n".join(parts) + "\n")
    raw = {"machine": facts, "config": config, "result": result}
    (out_dir / "raw.json").write_text(json.dumps(raw, indent=1) + "\n")


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale", type=float, default=1.0,
                   help="fraction of the 1,500 targets (default 1: the full tree)")
    p.add_argument("--runs", type=int, default=5,
                   help="timed rounds of every scenario but the full build (default 5)")
    p.add_argument("--full-runs", type=int, default=3, help="full-build rounds (default 3)")
    p.add_argument("--includes", type=int, default=120,
                   help="at most this many #include lines per source (default 120)")
    p.add_argument("--jobs", type=int, default=2, help="-j of every build (default 2)")
    p.add_argument("--kiln", help="a kiln binary to use instead of `cargo build --release`")
    p.add_argument("--cache", default=str(Path.home() / ".cache" / "kiln-bench" / "ninja-src"),
                   help="where ninja's source is fetched to")
    p.add_argument("--out", help="results directory "
                                 "(default benches/results/<UTC timestamp>-chromium-<scale>)")
    p.add_argument("--scratch", help="where the trees are made (default /tmp)")
    p.add_argument("--keep", action="store_true", help="keep the trees")
    args = p.parse_args(argv)
    if not 0 < args.scale <= 4:
        p.error("--scale takes a factor in (0, 4]: above 1, more targets than Chromium-sized")
    if min(args.runs, args.full_runs, args.jobs, args.includes) < 1:
        p.error("--runs, --full-runs, --jobs and --includes must be >= 1")
    return args


def machine_facts(kiln):
    """The commit, the tools' versions and the machine, for the report."""
    try:
        commit = harness.sh(["git", "rev-parse", "HEAD"], cwd=REPO)
        status = harness.sh(["git", "status", "--porcelain"], cwd=REPO).splitlines()
        if any(not line[3:].startswith("benches/results") for line in status):
            commit += "-dirty"
    except BenchError:
        commit = "unknown (not a git checkout)"
    return {"commit": commit, "kiln": harness.sh([kiln, "--version"]),
            "ninja": harness.sh(["ninja", "--version"]), "nproc": os.cpu_count(),
            "cpu": harness.cpu_model(),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def main(argv):
    args = parse_args(argv)
    started = time.perf_counter()
    bin_dir = tempfile.mkdtemp(prefix="kiln-chromium-bin-")
    try:
        if args.kiln:
            kiln = str(Path(bin_dir) / "kiln")
            shutil.copy2(args.kiln, kiln)
        else:
            kiln = harness.build_kiln(bin_dir)
        harness.ensure_ninja()
        misc = fetch_generator(args.cache)
        facts = machine_facts(kiln)
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        out_dir = (Path(args.out) if args.out
                   else REPO / "benches" / "results" / f"{stamp}-chromium-{args.scale:g}")
        config = {"scale": args.scale, "includes": args.includes, "runs": args.runs,
                  "full_runs": args.full_runs, "jobs": args.jobs, "tools": TOOLS,
                  "argv": ["python3", "benches/chromium.py"] + argv}
        harness.become_subreaper()
        result = bench(args, kiln, misc, harness.tool_env())
        out_dir.mkdir(parents=True, exist_ok=True)
        write_report(out_dir, facts, config, result)
        print("\n" + table(result), flush=True)
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
