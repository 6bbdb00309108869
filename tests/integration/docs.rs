//! The documentation stands on its own: every link in README.md and docs/ leads to a file of this
//! repository, and no page sends the reader outside it (to the contracts' own copies, say) for
//! what kiln does.

use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// README.md and every page under docs/.
fn pages() -> Vec<PathBuf> {
    let mut pages = vec![Path::new(ROOT).join("README.md")];
    for entry in std::fs::read_dir(Path::new(ROOT).join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            pages.push(path);
        }
    }
    pages.sort();
    pages
}

/// The targets of the page's markdown links, `[text](target)`, without a `#fragment`.
fn links(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("](") {
        rest = &rest[at + 2..];
        if let Some(end) = rest.find(')') {
            let target = rest[..end].split('#').next().unwrap_or("");
            found.push(target.to_string());
        }
    }
    found
}

#[test]
fn every_link_in_the_docs_leads_to_a_file_of_the_repository() {
    let root = Path::new(ROOT).canonicalize().unwrap();
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        let dir = page.parent().unwrap();
        for link in links(&text) {
            if link.is_empty() || link.contains("://") || link.starts_with("mailto:") {
                continue;
            }
            let target = dir.join(&link);
            let resolved = target
                .canonicalize()
                .unwrap_or_else(|e| panic!("{}: `{link}` leads nowhere: {e}", page.display()));
            assert!(
                resolved.starts_with(&root),
                "{}: `{link}` leads outside the repository",
                page.display()
            );
        }
    }
}

#[test]
fn no_page_sends_the_reader_outside_the_repository() {
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        for (n, line) in text.lines().enumerate() {
            assert!(
                !line.contains("../shared"),
                "{}:{}: points outside the repository: {line}",
                page.display(),
                n + 1
            );
        }
    }
}

#[test]
fn the_build_file_reference_says_when_a_command_runs_without_a_shell() {
    let text = std::fs::read_to_string(Path::new(ROOT).join("docs/build-file.md")).unwrap();
    assert!(
        text.contains("kiln starts a command directly, without a shell, when"),
        "docs/build-file.md must say when kiln runs a command without `sh -c`, and why that is the same"
    );
}
