//! `kiln compdb`: a compilation database (clangd's `compile_commands.json`) for the tasks of the
//! rules that compile C or C++: by default those whose `ext_in` holds a C/C++ source extension,
//! or as `compdb = true/false` on the rule says. Each entry holds the directory commands run in
//! (the project root), the source file (absolute), the output and the arguments of the one
//! command of the task's chain that compiles the source, split as the shell would split them.

use crate::generator::Expansion;
use crate::paths;
use crate::project::Project;
use crate::shell;
use std::fmt::Write;

/// The extensions of C, C++ and Objective-C sources, as compilers tell languages by them.
const C_SOURCES: &[&str] = &[
    ".c", ".C", ".cc", ".cp", ".cpp", ".CPP", ".cxx", ".c++", ".m", ".mm", ".M",
];

/// Whether `ext` (with its dot) names a C or C++ source.
pub fn is_c_source(ext: &str) -> bool {
    C_SOURCES.contains(&ext)
}

/// One entry of the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub directory: String,
    pub file: String,
    pub output: String,
    pub arguments: Vec<String>,
}

/// The entries for every task of the rules in the database, in task order, and a warning for
/// each such task none of whose commands names its source.
pub fn entries(project: &Project, expansion: &Expansion) -> (Vec<Entry>, Vec<String>) {
    let graph = &expansion.graph;
    let directory = project.root.to_string_lossy().into_owned();
    let mut out = Vec::new();
    let mut warnings = Vec::new();
    for t in graph.task_ids() {
        let task = graph.task(t);
        let rule = &project.rules[task.rule];
        if !rule.compdb {
            continue;
        }
        let mut sources: Vec<&str> = task
            .inputs
            .iter()
            .map(|&f| graph.path(f))
            .filter(|p| {
                extension(p).is_some_and(|e| is_c_source(e) || rule.ext_in.iter().any(|x| x == e))
            })
            .collect();
        if sources.is_empty() {
            sources.extend(task.inputs.first().map(|&f| graph.path(f)));
        }
        let simple: Vec<shell::Simple> = task
            .commands
            .iter()
            .flat_map(|c| shell::simple_commands(c))
            .collect();
        for source in sources {
            let Some(command) = compile_command(&simple, source) else {
                warnings.push(format!(
                    "{}: no command names its source {source}; it is not in the database",
                    graph.describe(t, &rule.name)
                ));
                continue;
            };
            let output = command
                .words
                .iter()
                .position(|w| w == "-o")
                .and_then(|i| command.words.get(i + 1))
                .cloned()
                .or_else(|| task.outputs.first().map(|&f| graph.path(f).to_string()))
                .unwrap_or_default();
            out.push(Entry {
                directory: directory.clone(),
                file: paths::absolute(&project.root, source)
                    .to_string_lossy()
                    .into_owned(),
                output,
                arguments: command.words.clone(),
            });
        }
    }
    (out, warnings)
}

/// The simple command that compiles `source`: the first that names it and has `-c`, else the
/// first that names it.
fn compile_command<'a>(simple: &'a [shell::Simple], source: &str) -> Option<&'a shell::Simple> {
    let names = |s: &&shell::Simple| s.words.iter().skip(1).any(|w| w == source);
    simple
        .iter()
        .filter(names)
        .find(|s| s.words.iter().any(|w| w == "-c"))
        .or_else(|| simple.iter().find(names))
}

fn extension(path: &str) -> Option<&str> {
    let name = &path[path.rfind('/').map_or(0, |i| i + 1)..];
    name.rfind('.').filter(|&i| i > 0).map(|i| &name[i..])
}

/// The database as JSON, one entry per object, as CMake writes it.
pub fn render(entries: &[Entry]) -> String {
    let mut out = String::from("[");
    for (i, e) in entries.iter().enumerate() {
        out.push_str(if i == 0 { "\n" } else { ",\n" });
        let _ = write!(
            out,
            "  {{\n    \"directory\": {},\n    \"file\": {},\n    \"output\": {},\n    \"arguments\": [",
            json(&e.directory),
            json(&e.file),
            json(&e.output)
        );
        for (j, a) in e.arguments.iter().enumerate() {
            if j > 0 {
                out.push_str(", ");
            }
            out.push_str(&json(a));
        }
        out.push_str("]\n  }");
    }
    out.push_str(if entries.is_empty() { "]\n" } else { "\n]\n" });
    out
}

/// A JSON string.
pub fn json(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            '\n' => q.push_str("\\n"),
            '\t' => q.push_str("\\t"),
            '\r' => q.push_str("\\r"),
            c if (c as u32) < 0x20 => {
                let _ = write!(q, "\\u{:04x}", c as u32);
            }
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    fn simple(line: &str) -> Vec<shell::Simple> {
        shell::simple_commands(line)
    }

    #[test]
    fn the_compile_is_picked_out_of_a_chain() {
        let s = simple("mkdir -p build && cc -E a.c > a.i && cc -c a.c -o build/a.o && strip a.o");
        assert_eq!(
            compile_command(&s, "a.c").unwrap().words,
            ["cc", "-c", "a.c", "-o", "build/a.o"]
        );
        // Without `-c`, the first command that names the source.
        let s = simple("true; gcc a.c -o a");
        assert_eq!(compile_command(&s, "a.c").unwrap().words, ["gcc", "a.c", "-o", "a"]);
        assert!(compile_command(&s, "b.c").is_none());
    }

    #[test]
    fn c_and_cpp_sources_are_known_by_extension() {
        assert!(is_c_source(".c") && is_c_source(".cpp") && is_c_source(".cc"));
        assert!(!is_c_source(".h") && !is_c_source(".o") && !is_c_source(".S"));
        assert_eq!(extension("src/a.b/c.cc"), Some(".cc"));
        assert_eq!(extension("src/.hidden"), None);
    }

    #[test]
    fn the_json_escapes_what_it_must() {
        assert_eq!(json("a\"b\\c\nd\u{1}"), r#""a\"b\\c\nd\u0001""#);
        let e = Entry {
            directory: "/p".into(),
            file: "/p/a.c".into(),
            output: "a.o".into(),
            arguments: vec!["cc".into(), "-c".into()],
        };
        assert_eq!(
            render(&[e]),
            "[\n  {\n    \"directory\": \"/p\",\n    \"file\": \"/p/a.c\",\n    \"output\": \"a.o\",\n    \"arguments\": [\"cc\", \"-c\"]\n  }\n]\n"
        );
        assert_eq!(render(&[]), "[]\n");
    }
}
