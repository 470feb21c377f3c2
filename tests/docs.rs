//! The documentation's shape (no root, no BPF): the README stays a front door (at most 300
//! lines, no table of options, which live in the generated man pages), and every relative
//! link in the README and the pages it leads to reaches a file that exists and, where it
//! names an anchor, a heading in that file.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

const README_MAX_LINES: usize = 300;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The pages whose links are checked: the README, docs/*.md, and the two READMEs of the
/// folders it sends readers to.
fn pages() -> Vec<PathBuf> {
    let mut pages = vec![root().join("README.md")];
    let mut docs: Vec<PathBuf> = fs::read_dir(root().join("docs"))
        .expect("docs/ exists")
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
        .collect();
    docs.sort();
    pages.extend(docs);
    pages.push(root().join("contrib/README.md"));
    pages.push(root().join("tests/README.md"));
    pages
}

/// The page's lines outside fenced code blocks, with their line numbers.
fn prose_lines(text: &str) -> Vec<(usize, &str)> {
    let mut fenced = false;
    let mut lines = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced {
            lines.push((i + 1, line));
        }
    }
    lines
}

/// A line without its inline code spans, whose brackets are not links.
fn without_code(line: &str) -> String {
    line.split('`')
        .enumerate()
        .filter(|(i, _)| i % 2 == 0)
        .map(|(_, part)| part)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Every `[text](target)` (and image) target on a line.
fn link_targets(line: &str) -> Vec<String> {
    let line = without_code(line);
    let mut targets = Vec::new();
    let mut rest = line.as_str();
    while let Some(at) = rest.find("](") {
        let after = &rest[at + 2..];
        let Some(end) = after.find(')') else { break };
        targets.push(after[..end].trim().to_string());
        rest = &after[end..];
    }
    targets
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a page's headings; a repeated heading gets `-1`, `-2`, ... as on GitHub.
fn anchors(text: &str) -> HashSet<String> {
    let mut seen = HashSet::new();
    for (_, line) in prose_lines(text) {
        let Some(heading) = line.strip_prefix('#') else {
            continue;
        };
        let base = slug(heading.trim_start_matches('#'));
        let mut anchor = base.clone();
        let mut n = 0;
        while seen.contains(&anchor) {
            n += 1;
            anchor = format!("{base}-{n}");
        }
        seen.insert(anchor);
    }
    seen
}

/// What is wrong with one relative link of `page`, if anything.
fn broken(page: &Path, target: &str) -> Option<String> {
    let (file, anchor) = match target.split_once('#') {
        Some((file, anchor)) => (file, Some(anchor)),
        None => (target, None),
    };
    let path = if file.is_empty() {
        page.to_path_buf()
    } else {
        page.parent().unwrap().join(file)
    };
    if !path.exists() {
        return Some(format!("{} does not exist", path.display()));
    }
    let anchor = anchor.filter(|a| !a.is_empty())?;
    if path.is_dir() || !anchors(&read(&path)).contains(anchor) {
        return Some(format!("{} has no heading for #{anchor}", path.display()));
    }
    None
}

#[test]
fn readme_is_a_front_door_of_at_most_300_lines() {
    let lines = read(&root().join("README.md")).lines().count();
    assert!(
        lines <= README_MAX_LINES,
        "README.md has {lines} lines, at most {README_MAX_LINES}: move detail to docs/"
    );
}

/// A markdown table lists options when its header names them or a row starts with a flag.
fn lists_options(table: &[&str]) -> bool {
    let first_cell = |row: &str| -> String {
        let cell = row
            .trim()
            .trim_start_matches('|')
            .split('|')
            .next()
            .unwrap_or("");
        cell.trim().trim_matches('`').to_string()
    };
    let header = table[0].to_lowercase();
    header.contains("option")
        || header.contains("flag")
        || table[1..].iter().any(|row| {
            let cell = first_cell(row);
            // The row under the header (`|---|`) is not a flag.
            cell.starts_with('-') && !cell.chars().all(|c| c == '-' || c == ':')
        })
}

#[test]
fn readme_has_no_table_of_options() {
    let text = read(&root().join("README.md"));
    let lines = prose_lines(&text);
    let mut i = 0;
    while i < lines.len() {
        let start = i;
        while i < lines.len() && lines[i].1.trim_start().starts_with('|') {
            i += 1;
        }
        if i > start {
            let table: Vec<&str> = lines[start..i].iter().map(|(_, line)| *line).collect();
            assert!(
                !lists_options(&table),
                "README.md:{}: a table of options; they belong in the man pages (src/docs.rs)",
                lines[start].0
            );
        }
        i += 1;
    }
}

#[test]
fn every_relative_link_leads_somewhere() {
    let mut problems = Vec::new();
    for page in pages() {
        let text = read(&page);
        for (number, line) in prose_lines(&text) {
            for target in link_targets(line) {
                if target.contains("://") || target.starts_with("mailto:") {
                    continue;
                }
                if let Some(problem) = broken(&page, &target) {
                    problems.push(format!(
                        "{}:{number}: ({target}): {problem}",
                        page.display()
                    ));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "broken links:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_link_checker_sees_what_github_sees() {
    assert_eq!(
        slug(" Which hook and which store"),
        "which-hook-and-which-store"
    );
    assert_eq!(
        slug("`tcpstates`: differences from bcc"),
        "tcpstates-differences-from-bcc"
    );
    assert_eq!(
        link_targets("see [a](docs/a.md#x), `[b](not.md)` and ![c](c.png)"),
        ["docs/a.md#x", "c.png"]
    );
    let text = "# A\n## B\n```\n# not a heading\n```\n## B\n";
    let found = anchors(text);
    assert!(found.contains("a") && found.contains("b") && found.contains("b-1"));
    assert!(!found.contains("not-a-heading"));
    assert!(lists_options(&[
        "| option | meaning |",
        "|---|---|",
        "| `-L` | port |"
    ]));
    assert!(lists_options(&[
        "| x | y |",
        "|---|---|",
        "| `--json` | JSON |"
    ]));
    assert!(!lists_options(&[
        "| metric | type |",
        "|---|---|",
        "| `tcp_rtt` | h |"
    ]));
}
