//! Part 5: constraints: producer before consumer, precedence by rule name (`before`/`after`) and by
//! `ext_out`/`ext_in` symbols within a group, group barriers.

use crate::support::{Space, timed};

/// Position of the first log line containing `needle`.
fn at(log: &[String], needle: &str) -> usize {
    log.iter()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle} not in {log:?}"))
}

#[test]
fn before_and_after_order_rules_without_files() {
    let s = Space::new();
    s.write(
        "build.toml",
        format!(
            "[rule.late]\nrun = \"{}\"\n[rule.early]\nrun = \"{}\"\nbefore = [\"late\"]\n[rule.middle]\nrun = \"{}\"\nafter = [\"early\"]\n\
             [[gen]]\nrule = \"late\"\ntarget = \"l\"\n[[gen]]\nrule = \"middle\"\ntarget = \"m\"\n[[gen]]\nrule = \"early\"\ntarget = \"e1\"\n[[gen]]\nrule = \"early\"\ntarget = \"e2\"\n",
            timed("late", 0.05),
            timed("early", 0.3),
            timed("middle", 0.05)
        ),
    );
    s.kiln(&["build", "-j4"]).ok();
    let log = s.lines("log");
    let last_early_end = log.iter().rposition(|l| l == "end early").unwrap();
    assert!(last_early_end < at(&log, "start late"), "{log:?}");
    assert!(last_early_end < at(&log, "start middle"), "{log:?}");
}

#[test]
fn ext_out_symbols_precede_ext_in_within_a_group() {
    let s = Space::new();
    s.write("a.c", "");
    s.write(
        "build.toml",
        format!(
            "[rule.cc]\nrun = \"{}\"\next_in = [\".c\"]\next_out = [\".o\"]\n[rule.headers]\nrun = \"{}\"\next_out = [\".c\"]\n\
             [[gen]]\nname = \"objs\"\nsource = \"a.c\"\n[[gen]]\nrule = \"headers\"\ntarget = \"gen.h\"\n",
            timed("cc", 0.05),
            timed("headers", 0.3)
        ),
    );
    s.kiln(&["build", "-j4"]).ok();
    let log = s.lines("log");
    assert!(at(&log, "end headers") < at(&log, "start cc"), "{log:?}");
}

#[test]
fn groups_are_barriers() {
    let s = Space::new();
    s.write(
        "build.toml",
        format!(
            "[[group]]\nname = \"one\"\n[[group]]\nname = \"two\"\n\
             [[gen]]\ngroup = \"two\"\nrun = \"{}\"\ntarget = \"b\"\n[[gen]]\ngroup = \"one\"\nrun = \"{}\"\ntarget = \"a1\"\n[[gen]]\ngroup = \"one\"\nrun = \"{}\"\ntarget = \"a2\"\n",
            timed("two", 0.05),
            timed("one-fast", 0.05),
            timed("one-slow", 0.4)
        ),
    );
    s.kiln(&["build", "-j4"]).ok();
    let log = s.lines("log");
    assert!(at(&log, "end one-slow") < at(&log, "start two"), "{log:?}");
}

#[test]
fn producers_run_before_consumers() {
    let s = Space::new();
    s.write(
        "build.toml",
        "[[gen]]\nname = \"consumer\"\nrun = \"cat ${SRC} > ${TGT}\"\nsource = \"made\"\ntarget = \"copy\"\n\
         [[gen]]\nname = \"producer\"\nrun = \"sleep 0.3; echo made > ${TGT}\"\ntarget = \"made\"\n",
    );
    s.kiln(&["build", "-j4"]).ok();
    assert_eq!(s.read("build/copy"), "made\n");
}
