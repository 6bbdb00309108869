#!/usr/bin/env python3
"""Writes the synthetic benchmark project: N sources in modules of 100, one header per module that
every compile of the module reads, one archive per module, one final output. Every task is
`cat IN... > OUT`. The same project is written four times, each copy with its own build description
and build directory `out/`:

  kiln-explicit/   build.toml with one generator per task
  kiln-idiomatic/  build.toml with globs, extension mapping, `deps` and `use`
  ninja/           build.ninja
  make/            Makefile

Usage: gen_project.py N DIR          the four copies above
       gen_project.py N DIR --scan   kiln-idiomatic/ and kiln-scan/ only, see generate_scan()
"""

import os
import random
import sys

MODULE = 100


def layout(n):
    """(module name, [source stems]) for each module."""
    mods = []
    for m in range((n + MODULE - 1) // MODULE):
        count = min(MODULE, n - m * MODULE)
        mods.append((f"mod{m}", [f"f{k:03d}" for k in range(count)]))
    return mods


def write(path, text):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def write_sources(root, mods, seed=1, include=False):
    rnd = random.Random(seed)
    for mod, stems in mods:
        write(f"{root}/{mod}/mod.h", f"/* header of {mod} */\n#define {mod.upper()} 1\n")
        for s in stems:
            body = "".join(rnd.choice("abcdefghij \n") for _ in range(80))
            head = '#include "mod.h"\n' if include else ""
            write(f"{root}/{mod}/{s}.c", f"{head}/* {mod}/{s}.c */\n{body}\n")


def kiln_explicit(mods):
    out = ['[project]\nout = "out"\n\n[rule.cat]\nrun = "cat ${SRC} > ${TGT}"\n']
    for mod, stems in mods:
        for s in stems:
            out.append(f'[[gen]]\nrule = "cat"\nsource = ["{mod}/{s}.c", "{mod}/mod.h"]\ntarget = "{mod}/{s}.o"\n')
        objs = ", ".join(f'"{mod}/{s}.o"' for s in stems)
        out.append(f'[[gen]]\nname = "{mod}"\nrule = "cat"\nsource = [{objs}]\ntarget = "lib{mod}.a"\n')
    libs = ", ".join(f'"lib{mod}.a"' for mod, _ in mods)
    out.append(f'[[gen]]\nname = "final"\nrule = "cat"\nsource = [{libs}]\ntarget = "final"\n')
    return "\n".join(out)


def kiln_idiomatic(mods):
    out = [
        '[project]\nout = "out"\n\n'
        '[rule.cc]\nrun = "cat ${SRC} ${HDR} > ${TGT}"\next_in = [".c"]\next_out = [".o"]\n\n'
        '[rule.ar]\nrun = "cat ${SRC} > ${TGT}"\n\n'
        '[rule.link]\nrun = "cat ${SRC} > ${TGT}"\n'
    ]
    for mod, _ in mods:
        out.append(
            f'[[gen]]\nname = "{mod}"\nrule = "ar"\nsource = ["{mod}/*.c"]\ndeps = ["{mod}/mod.h"]\n'
            f'env = {{ HDR = "{mod}/mod.h" }}\ntarget = "lib{mod}.a"\n'
        )
    uses = ", ".join(f'"{mod}"' for mod, _ in mods)
    out.append(f'[[gen]]\nname = "final"\nrule = "link"\nuse = [{uses}]\ntarget = "final"\n')
    return "\n".join(out)


def ninja(mods):
    out = ["rule cat\n  command = cat $in > $out\n"]
    for mod, stems in mods:
        for s in stems:
            out.append(f"build out/{mod}/{s}.o: cat {mod}/{s}.c {mod}/mod.h")
        objs = " ".join(f"out/{mod}/{s}.o" for s in stems)
        out.append(f"build out/lib{mod}.a: cat {objs}")
    libs = " ".join(f"out/lib{mod}.a" for mod, _ in mods)
    out.append(f"build out/final: cat {libs}\ndefault out/final\n")
    return "\n".join(out)


def make(mods):
    libs = " ".join(f"out/lib{mod}.a" for mod, _ in mods)
    out = [f"out/final: {libs}\n\tcat $^ > $@\n"]
    for mod, stems in mods:
        objs = " ".join(f"out/{mod}/{s}.o" for s in stems)
        out.append(f"out/lib{mod}.a: {objs}\n\tcat $^ > $@\n")
        for s in stems:
            out.append(f"out/{mod}/{s}.o: {mod}/{s}.c {mod}/mod.h\n\tcat $^ > $@\n")
    return "\n".join(out)


FORMS = {
    "kiln-explicit": ("build.toml", kiln_explicit),
    "kiln-idiomatic": ("build.toml", kiln_idiomatic),
    "ninja": ("build.ninja", ninja),
    "make": ("Makefile", make),
}


def kiln_scan(mods):
    """kiln-idiomatic with the include scanner on the compile rule (`scan = "c"`)."""
    return kiln_idiomatic(mods).replace('ext_out = [".o"]\n', 'ext_out = [".o"]\nscan = "c"\n', 1)


def generate_scan(n, root):
    """Two copies whose sources each `#include "mod.h"`: kiln-idiomatic/ and kiln-scan/, the same
    build file with `scan = "c"` on its compile rule, for measuring what scanning costs."""
    mods = layout(n)
    for form, render in (("kiln-idiomatic", kiln_idiomatic), ("kiln-scan", kiln_scan)):
        d = f"{root}/{form}"
        write_sources(d, mods, include=True)
        write(f"{d}/build.toml", render(mods))
    return mods


def generate(n, root):
    mods = layout(n)
    for form, (name, render) in FORMS.items():
        d = f"{root}/{form}"
        write_sources(d, mods)
        write(f"{d}/{name}", render(mods))
        if form == "make":
            # make does not create directories: they exist before any timing starts.
            for mod, _ in mods:
                os.makedirs(f"{d}/out/{mod}", exist_ok=True)
    return mods


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--scan"]
    if len(args) != 2:
        sys.exit(__doc__)
    (generate_scan if "--scan" in sys.argv else generate)(int(args[0]), args[1])
