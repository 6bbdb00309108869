//! `kiln completions SHELL` and `kiln man`: shell completions and a man page, both made from the
//! command-line definition, so that they cannot drift from it. The static part (subcommands,
//! options) comes from clap_complete; for bash and fish a small addition completes the targets of
//! `build`, `graph`, `explain` and `--targets` with the generator names `kiln list` prints for
//! the project at hand (after any `-C DIR` or `-f FILE` on the line).

use super::Args;
use clap::CommandFactory;

/// The shells kiln writes completions for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(super) enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// The completion script for `shell`.
pub(super) fn script(shell: Shell) -> Vec<u8> {
    let mut cmd = Args::command();
    let mut out = Vec::new();
    let generator = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    clap_complete::generate(generator, &mut cmd, "kiln", &mut out);
    match shell {
        Shell::Bash => out.extend_from_slice(BASH_TARGETS.as_bytes()),
        Shell::Fish => out.extend_from_slice(FISH_TARGETS.as_bytes()),
        Shell::Zsh => {
            let text = String::from_utf8_lossy(&out).into_owned();
            out = zsh_with_targets(&text).into_bytes();
        }
    }
    out
}

/// zsh: the generated script with the targets' values completed by `_kiln_target_names`
/// (generator names, then files), defined after the script's `autoload` line.
fn zsh_with_targets(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + ZSH_TARGETS.len());
    for line in text.split_inclusive('\n') {
        if line.contains("Generator names or output paths") && line.starts_with("'*::") {
            out.push_str(&line.replace(":_default'", ":_kiln_target_names'"));
        } else {
            out.push_str(line);
        }
        if line.starts_with("autoload -U is-at-least") {
            out.push_str(ZSH_TARGETS);
        }
    }
    out
}

/// zsh: generator names of the project here (`kiln list`), and files (output paths).
const ZSH_TARGETS: &str = r#"
_kiln_target_names() {
    local -a names
    names=(${(f)"$(kiln list 2>/dev/null | cut -d' ' -f1)"})
    _alternative 'generators:generator:compadd -a names' 'files:output:_files'
}
"#;

/// bash: after the generated `_kiln`, generator names for the words that take targets.
const BASH_TARGETS: &str = r#"
# Targets: the generator names of the project the line names (`kiln list`).
_kiln_targets() {
    _kiln "$@"
    local cur="${COMP_WORDS[COMP_CWORD]}"
    local prev="${COMP_WORDS[COMP_CWORD-1]}"
    [[ "$cur" == -* ]] && return 0
    local i word sub="" takes=""
    local -a where=()
    for ((i = 1; i < COMP_CWORD; i++)); do
        word="${COMP_WORDS[i]}"
        case "$word" in
            -C|-f) where+=("$word" "${COMP_WORDS[i+1]}"); ((i++)) ;;
            -C?*|-f?*) where+=("$word") ;;
            build|graph|explain) [[ -z "$sub" ]] && sub="$word" && takes=1 ;;
            -*) ;;
            *) [[ -z "$sub" ]] && sub="$word" ;;
        esac
    done
    [[ "$prev" == "--targets" ]] && takes=1
    case "$prev" in -C|-f|-D|--out|--variant|--timeout|-j|--jobs|-d) takes="" ;; esac
    [[ -z "$takes" ]] && return 0
    local names
    names="$("${COMP_WORDS[0]}" "${where[@]}" list 2>/dev/null | cut -d' ' -f1)"
    local IFS=$'\n'
    COMPREPLY+=($(compgen -W "$names" -- "$cur"))
}
complete -F _kiln_targets -o nosort -o bashdefault -o default kiln
"#;

/// fish: generator names after the subcommands that take targets.
const FISH_TARGETS: &str = r#"
# Targets: the generator names of the project here (`kiln list`).
complete -c kiln -n "__fish_seen_subcommand_from build graph explain" -a "(kiln list 2>/dev/null | string replace -r ' .*' '')"
complete -c kiln -l targets -r -a "(kiln list 2>/dev/null | string replace -r ' .*' '')"
"#;

/// The man page, in roff.
pub(super) fn man() -> Vec<u8> {
    let mut out = Vec::new();
    // Writing to a Vec cannot fail.
    let _ = clap_mangen::Man::new(Args::command()).render(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shell_gets_the_subcommands_and_the_man_page_has_its_sections() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let text = String::from_utf8(script(shell)).unwrap();
            for word in [
                "build",
                "clean",
                "compdb",
                "graph",
                "completions",
                "keep-going",
            ] {
                assert!(text.contains(word), "{shell:?} lacks {word}");
            }
        }
        // zsh completes the targets of build, graph and explain with generator names.
        let zsh = String::from_utf8(script(Shell::Zsh)).unwrap();
        assert_eq!(zsh.matches(":_kiln_target_names'").count(), 3, "{zsh}");
        assert!(zsh.contains("_kiln_target_names() {"));
        let page = String::from_utf8(man()).unwrap();
        for part in [
            ".TH kiln",
            ".SH NAME",
            ".SH SYNOPSIS",
            ".SH SUBCOMMANDS",
            "compdb",
        ] {
            assert!(page.contains(part), "the man page lacks {part}");
        }
    }
}
