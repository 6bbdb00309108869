#!/usr/bin/env python3
"""The ported examples (Lua 5.4, zlib, LuaJIT) built by kiln and by their own Makefiles, side by
side, for docs/porting.md.

Usage:

    scripts/fetch-examples                   # the sources, into examples/*/upstream
    cargo build --release
    python3 benches/ports.py DIR [--jobs 2]

writes, for each project NAME, two copies of its sources under DIR/NAME:

    DIR/NAME/kiln   the example's build.toml and its upstream/ tree
    DIR/NAME/make   the upstream tree alone, ready for its own Makefile (Lua's own Makefile
                    restored by reversing Debian's build-system patch; zlib configured)

builds each once, and prints three pairs of commands per project, kiln's first, each a whole
build as a user runs it:

    clean    delete what the last build made (kiln distclean, make clean), then build
    null     build again, nothing changed
    header   append a comment to one header (a different one each run), then build

Time each pair alternated, A B A B, for example with hyperfine:

    hyperfine -N --runs 5 "sh -c '<kiln command>'" "sh -c '<make command>'"
"""

import argparse
import os
import shutil
import subprocess
import sys

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
KILN = os.path.join(ROOT, "target", "release", "kiln")

# name: (how make is prepared, make's directory inside the tree, make's arguments, the header)
PROJECTS = {
    "lua": (
        [
            ["patch", "-R", "-p1", "-s", "-i", "debian/patches/0001-build-system.patch"],
            # What debian/rules writes before building, and the kiln port generates.
            [
                "sh",
                "-c",
                "printf '#ifndef _LUA_DEB_MULTIARCH_\\n#define _LUA_DEB_MULTIARCH_\\n"
                "#define DEB_HOST_MULTIARCH \"%s\"\\n#endif\\n' \"$(gcc -print-multiarch)\" "
                "> src/lua5.4-deb-multiarch.h",
            ],
        ],
        "src",
        ["linux"],
        "src/lstring.h",
    ),
    "zlib": ([["sh", "./configure"]], ".", ["all"], "inftrees.h"),
    # The port keeps upstream's CCDEBUG (empty, then strip); Debian's 0002 patch sets -g.
    "luajit": (
        [["patch", "-R", "-p1", "-s", "-i", "debian/patches/0002-Enable-debugging-symbols-in-the-build.patch"]],
        ".",
        [],
        "src/lj_prng.h",
    ),
}


def run(cmd, cwd):
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--only", help="one project: lua, zlib or luajit")
    a = ap.parse_args()
    j = a.jobs
    for name, (prepare, make_dir, make_args, header) in PROJECTS.items():
        if a.only and name != a.only:
            continue
        upstream = os.path.join(ROOT, "examples", name, "upstream")
        if not os.path.isdir(upstream):
            sys.exit(f"{upstream} is missing: run scripts/fetch-examples first")
        base = os.path.join(os.path.abspath(a.dir), name)
        kiln_dir, make_dir_root = os.path.join(base, "kiln"), os.path.join(base, "make")
        shutil.rmtree(base, ignore_errors=True)
        shutil.copytree(upstream, os.path.join(kiln_dir, "upstream"), symlinks=True)
        shutil.copy(os.path.join(ROOT, "examples", name, "build.toml"), kiln_dir)
        shutil.copytree(upstream, make_dir_root, symlinks=True)
        for cmd in prepare:
            run(cmd, make_dir_root)
        make = f"make -C {os.path.join(make_dir_root, make_dir)} -j{j} {' '.join(make_args)}".strip()
        kiln = f"{KILN} -C {kiln_dir} build -j{j}"
        run(kiln.split(), "/")
        run(make.split(), "/")
        stamp = '"/* $(date +%s%N) */"'
        pairs = {
            "clean": (
                f"{KILN} -C {kiln_dir} distclean >/dev/null && {kiln}",
                f"make -C {os.path.join(make_dir_root, make_dir)} clean >/dev/null && {make}",
            ),
            "null": (kiln, make),
            "header": (
                f"echo {stamp} >> {os.path.join(kiln_dir, 'upstream', header)} && {kiln}",
                f"echo {stamp} >> {os.path.join(make_dir_root, header)} && {make}",
            ),
        }
        for scenario, (k, m) in pairs.items():
            print(f"{name} {scenario} kiln: {k}")
            print(f"{name} {scenario} make: {m}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
