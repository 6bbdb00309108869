#!/usr/bin/env python3
"""A project of many generators in one build file or in several (`[project] subdirs`), for
measuring what editing one build file costs.

Usage:

    python3 benches/parts.py DIR [--gens 50000] [--parts 50]

writes two copies of one project under DIR, each with GENS generators (one copy task each, over a
source file of its own):

    DIR/one    every generator in DIR/one/build.toml
    DIR/parts  a top build.toml naming PARTS parts, p0 .. p{PARTS-1}, each with GENS/PARTS
               generators in pN/build.toml

and prints, for each copy, the command that appends a comment to one build file (a change that
changes no task) and builds. Build each copy twice first (the second build keeps kiln's caches),
then time the two commands side by side, alternated, for example with hyperfine:

    hyperfine -N --runs 10 "sh -c '<parts command>'" "sh -c '<one command>'"
"""

import argparse
import os
import sys


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


RULE = '[rule.cp]\nrun = "cp ${SRC} ${TGT}"\n'


def gen(i, source, target):
    return f'\n[[gen]]\nname = "g{i}"\nrule = "cp"\nsource = "{source}"\ntarget = "{target}"\n'


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir")
    ap.add_argument("--gens", type=int, default=50000)
    ap.add_argument("--parts", type=int, default=50)
    a = ap.parse_args()
    per = a.gens // a.parts
    one, parts = os.path.join(a.dir, "one"), os.path.join(a.dir, "parts")
    whole = [RULE]
    top = [f'[project]\nsubdirs = [{", ".join(f"{chr(34)}p{p}{chr(34)}" for p in range(a.parts))}]\n\n', RULE]
    for p in range(a.parts):
        part = []
        for k in range(per):
            i = p * per + k
            for root in (one, parts):
                write(os.path.join(root, f"p{p}", f"s{i}.txt"), f"{i}\n")
            whole.append(gen(i, f"p{p}/s{i}.txt", f"p{p}/o{i}"))
            part.append(gen(i, f"s{i}.txt", f"o{i}"))
        write(os.path.join(parts, f"p{p}", "build.toml"), "".join(part))
    write(os.path.join(one, "build.toml"), "".join(whole))
    write(os.path.join(parts, "build.toml"), "".join(top))
    kiln = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "target", "release", "kiln")
    kiln = os.path.normpath(kiln)
    edited = os.path.join(parts, f"p{a.parts // 2}", "build.toml")
    print(f"parts: echo \"# $(date +%s%N)\" >> {edited} && {kiln} -C {parts} build -j2")
    print(f"one:   echo \"# $(date +%s%N)\" >> {one}/build.toml && {kiln} -C {one} build -j2")
    return 0


if __name__ == "__main__":
    sys.exit(main())
