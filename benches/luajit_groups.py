#!/usr/bin/env python3
"""The LuaJIT example two ways, for measuring what the include scanner buys on a clean build.

Usage:

    scripts/fetch-examples
    cargo build --release
    python3 benches/luajit_groups.py DIR [--jobs 2]

writes two copies of examples/luajit (its build.toml and upstream/) under DIR:

    DIR/scan     the example as it is: one group; rules cc, cc_pic and host_cc scan their
                 includes, so only the objects that include a generated header wait for buildvm
    DIR/grouped  the same build file without `scan`, and with the host tools and everything
                 buildvm generates in a group `codegen` before a group `main` holding the rest:
                 no object starts before code generation has ended (buildvm runs after
                 buildvm_arch.h through `order_only`)

and prints each copy's clean-build command (kiln distclean, then kiln build). Time the two
alternated, for example with hyperfine:

    hyperfine -N --runs 5 "sh -c '<scan command>'" "sh -c '<grouped command>'"
"""

import argparse
import os
import re
import shutil
import sys

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
KILN = os.path.join(ROOT, "target", "release", "kiln")
# The generators of the host tools and of what buildvm writes.
CODEGEN = {
    "minilua", "buildvm_arch.h", "buildvm", "lj_vm.S", "lj_bcdef.h", "lj_ffdef.h",
    "lj_libdef.h", "lj_recdef.h", "vmdef.lua", "lj_folddef.h",
}


def grouped(text):
    """The build file without scanning, each generator in `codegen` or `main`."""
    text = re.sub(r'(?m)^scan = "c"\n', "", text)

    def place(m):
        name = m.group(1)
        group = "codegen" if name in CODEGEN else "main"
        # Without the scanner, buildvm.o waits for DynASM's header as the grouped port would say.
        after = 'order_only = ["buildvm_arch.h"]\n' if name == "buildvm" else ""
        return f'{m.group(0)}group = "{group}"\n{after}'

    text = re.sub(r'(?m)^\[\[gen\]\]\nname = "([^"]+)"\n', place, text)
    return text + '\n[[group]]\nname = "codegen"\n\n[[group]]\nname = "main"\n'


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir")
    ap.add_argument("--jobs", type=int, default=2)
    a = ap.parse_args()
    example = os.path.join(ROOT, "examples", "luajit")
    if not os.path.isdir(os.path.join(example, "upstream")):
        sys.exit("examples/luajit/upstream is missing: run scripts/fetch-examples first")
    text = open(os.path.join(example, "build.toml")).read()
    for variant, build_file in (("scan", text), ("grouped", grouped(text))):
        d = os.path.join(os.path.abspath(a.dir), variant)
        shutil.rmtree(d, ignore_errors=True)
        shutil.copytree(os.path.join(example, "upstream"), os.path.join(d, "upstream"), symlinks=True)
        with open(os.path.join(d, "build.toml"), "w") as f:
            f.write(build_file)
        print(f"{variant}: {KILN} -C {d} distclean >/dev/null && {KILN} -C {d} build -j{a.jobs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
