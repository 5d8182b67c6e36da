//! The invariants of `ARCHITECTURE.md` that no compiler checks: the layer order of the crate's
//! top-level modules (every `crate::` path in non-test code points to a module earlier in the
//! order), and that the document names only files that exist.
//!
//! The order is read from the document itself (the fenced block under `## Layers`), so the
//! document and the check cannot disagree.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// One `crate::` path that goes against the order.
#[derive(Debug, PartialEq)]
struct BackEdge {
    file: String,
    line: usize,
    from: String,
    to: String,
}

/// The top-level modules in order, from `ARCHITECTURE.md`'s `## Layers` block: modules
/// separated by `→`, over as many lines as it takes.
fn layer_order(doc: &str) -> Vec<String> {
    let section = doc
        .split("\n## Layers")
        .nth(1)
        .expect("ARCHITECTURE.md has a `## Layers` section");
    let block = section
        .split("```")
        .nth(1)
        .expect("the Layers section has a fenced block");
    block
        .split(['→', '\n'])
        .map(str::trim)
        .filter(|m| !m.is_empty() && !m.starts_with("text"))
        .map(str::to_owned)
        .collect()
}

/// Non-test source files by module path (`["alert", "engine"]` for `src/alert/engine/mod.rs`),
/// skipping every module declared under `#[cfg(test)]` and what lies below it.
fn sources(src: &Path) -> Vec<(Vec<String>, String, String)> {
    let mut out = Vec::new();
    let mut queue = vec![(Vec::<String>::new(), src.join("lib.rs"))];
    while let Some((module, file)) = queue.pop() {
        let text =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let code = strip_tests(&strip_comments(&text));
        // Children of `a.rs` live in `a/`, of `a/mod.rs` and `lib.rs` beside them.
        let dir = match file.file_name().and_then(|n| n.to_str()) {
            Some("mod.rs" | "lib.rs") => file.parent().unwrap().to_path_buf(),
            _ => file.with_extension(""),
        };
        for child in declared_modules(&code) {
            let mut path = module.clone();
            path.push(child.clone());
            let flat = dir.join(format!("{child}.rs"));
            let nested = dir.join(&child).join("mod.rs");
            let found = if flat.exists() { flat } else { nested };
            assert!(
                found.exists(),
                "module {} declared in {} has no file",
                path.join("::"),
                file.display()
            );
            queue.push((path, found));
        }
        let rel = file
            .strip_prefix(ROOT)
            .unwrap_or(&file)
            .display()
            .to_string();
        out.push((module, rel, code));
    }
    out
}

/// The text with `//` comments (doc comments included) blanked out; string literals are kept
/// whole so a `//` inside one is not taken for a comment. Line numbers are preserved.
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let mut in_str = false;
        let mut prev = '\0';
        let mut cut = line.len();
        for (i, c) in line.char_indices() {
            if c == '"' && prev != '\\' {
                in_str = !in_str;
            }
            if !in_str && c == '/' && prev == '/' {
                cut = i - 1;
                break;
            }
            prev = if prev == '\\' && c == '\\' { '\0' } else { c };
        }
        out.push_str(&line[..cut]);
        out.push('\n');
    }
    out
}

/// The code with every item marked `#[cfg(test)]` blanked out (lines kept): a `mod x;` line, or
/// a braced item up to its closing brace.
fn strip_tests(code: &str) -> String {
    let lines: Vec<&str> = code.lines().collect();
    let mut out: Vec<String> = Vec::with_capacity(lines.len());
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim() != "#[cfg(test)]" {
            out.push(lines[i].to_owned());
            i += 1;
            continue;
        }
        out.push(String::new());
        i += 1;
        let mut depth = 0i32;
        let mut opened = false;
        while i < lines.len() {
            let line = lines[i];
            // A test-only `mod x;` stays, so `sources` knows the child is a test module.
            if !opened && line.trim_start().starts_with("mod ") && line.trim_end().ends_with(';') {
                out.push(format!("#[cfg(test)] {line}"));
                i += 1;
                break;
            }
            out.push(String::new());
            depth += line.matches('{').count() as i32 - line.matches('}').count() as i32;
            opened |= line.contains('{');
            i += 1;
            if (opened && depth <= 0) || (!opened && line.trim_end().ends_with(';')) {
                break;
            }
        }
    }
    out.join("\n")
}

/// Modules declared with `mod x;` (not the test-only ones).
fn declared_modules(code: &str) -> Vec<String> {
    code.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("#[cfg(test)]"))
        .filter_map(|l| {
            let l = l
                .strip_prefix("pub ")
                .or_else(|| l.strip_prefix("pub(crate) "))
                .unwrap_or(l);
            l.strip_prefix("mod ")?
                .strip_suffix(';')
                .map(|m| m.trim().to_owned())
        })
        .collect()
}

/// The top-level modules a piece of code names, with their line: `crate::x`, every name of a
/// `crate::{x, y::…}` group, and `super::` chains that climb to the crate root (counting the
/// inline `mod x { … }` blocks the line is in).
fn named_top_modules(module: &[String], code: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let starts: Vec<usize> = std::iter::once(0)
        .chain(code.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    let line_of = |offset: usize| starts.partition_point(|&s| s <= offset);
    for (at, _) in code.match_indices("crate::") {
        if code[..at]
            .chars()
            .last()
            .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':' || c == '$')
        {
            continue; // `$crate::`, `other_crate::`
        }
        let after = at + "crate::".len();
        if code[after..].starts_with('{') {
            for (offset, name) in group_heads(&code[after + 1..]) {
                out.push((line_of(after + 1 + offset), name));
            }
        } else {
            out.push((line_of(at), ident(&code[after..])));
        }
    }
    // Inline modules open at a brace depth and close when the depth falls back to it.
    let mut depth = 0usize;
    let mut inline: Vec<usize> = Vec::new();
    for (n, line) in code.lines().enumerate() {
        let trimmed = line.trim_start();
        let is_mod = ["mod ", "pub mod ", "pub(crate) mod ", "pub(super) mod "]
            .iter()
            .any(|p| trimmed.starts_with(p))
            && trimmed.trim_end().ends_with('{');
        if is_mod {
            inline.push(depth);
        }
        let mut rest = line;
        while let Some(at) = rest.find("super::") {
            let before = rest[..at].chars().last();
            let mut tail = &rest[at..];
            rest = &rest[at + "super::".len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let mut ups = 0;
            while let Some(t) = tail.strip_prefix("super::") {
                ups += 1;
                tail = t;
            }
            let here = module.len() + inline.len();
            if ups >= here && here > 0 {
                out.push((n + 1, ident(tail)));
            }
        }
        for c in line.chars() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth = depth.saturating_sub(1);
                    if inline.last() == Some(&depth) {
                        inline.pop();
                    }
                }
                _ => {}
            }
        }
    }
    out.retain(|(_, m)| !m.is_empty() && m != "self");
    out.sort();
    out
}

fn ident(s: &str) -> String {
    s.chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// The first name of each item of a `{a::b, c, d::{e, f}}` group (the text after its `{`),
/// with its offset in `text`.
fn group_heads(text: &str) -> Vec<(usize, String)> {
    let mut heads = Vec::new();
    let mut depth = 0;
    let mut expecting = true;
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => expecting = true,
            c if expecting && depth == 0 && (c.is_alphanumeric() || c == '_') => {
                heads.push((i, ident(&text[i..])));
                expecting = false;
            }
            _ => {}
        }
    }
    heads
}

/// Every `crate::` path against the order, and every top-level module the order lacks.
fn check(
    order: &[String],
    files: &[(Vec<String>, String, String)],
) -> (Vec<BackEdge>, BTreeSet<String>) {
    let rank: BTreeMap<&str, usize> = order
        .iter()
        .enumerate()
        .map(|(i, m)| (m.as_str(), i))
        .collect();
    let mut edges = Vec::new();
    let mut unlisted = BTreeSet::new();
    for (module, file, code) in files {
        let Some(from) = module.first() else { continue };
        let Some(&from_rank) = rank.get(from.as_str()) else {
            unlisted.insert(from.clone());
            continue;
        };
        for (line, to) in named_top_modules(module, code) {
            match rank.get(to.as_str()) {
                Some(&to_rank) if to_rank > from_rank => edges.push(BackEdge {
                    file: file.clone(),
                    line,
                    from: from.clone(),
                    to,
                }),
                Some(_) => {}
                None => {
                    unlisted.insert(to);
                }
            }
        }
    }
    (edges, unlisted)
}

#[test]
fn every_crate_path_follows_the_layer_order() {
    let doc = std::fs::read_to_string(Path::new(ROOT).join("ARCHITECTURE.md")).unwrap();
    let order = layer_order(&doc);
    let files = sources(&Path::new(ROOT).join("src"));
    let (edges, unlisted) = check(&order, &files);
    let report: Vec<String> = edges
        .iter()
        .map(|e| {
            format!(
                "{}:{}: `{}` uses `{}`, which comes after it in the layer order",
                e.file, e.line, e.from, e.to
            )
        })
        .collect();
    assert!(
        unlisted.is_empty(),
        "modules missing from ARCHITECTURE.md's layer order: {unlisted:?}"
    );
    assert!(
        report.is_empty(),
        "{} back edge(s) against {}:\n{}",
        report.len(),
        order.join(" → "),
        report.join("\n")
    );
}

#[test]
fn the_checker_finds_back_edges_in_every_form() {
    let order: Vec<String> = ["journey", "step", "store", "api"]
        .map(String::from)
        .to_vec();
    let code = r#"
use crate::journey::Journey; // fine: earlier
use crate::{
    journey::x,
    api::Router,
};
fn f() { let _ = crate::store::Store::open(); }
// use crate::api::comment_is_ignored;
fn g() -> super::super::api::Thing { todo!() }
#[cfg(test)]
mod tests {
    use crate::api::TestOnly;
}
"#;
    let files = vec![(
        vec!["step".to_owned(), "http".to_owned()],
        "src/step/http.rs".to_owned(),
        strip_tests(&strip_comments(code)),
    )];
    let (edges, unlisted) = check(&order, &files);
    let found: Vec<(usize, &str)> = edges.iter().map(|e| (e.line, e.to.as_str())).collect();
    assert_eq!(found, vec![(5, "api"), (7, "store"), (9, "api")]);
    assert!(unlisted.is_empty());
}

/// Every path-like name in backquotes (`src/…`, `x.rs`, `dir/`, `tests/it/x.rs`) is a file or
/// folder of the repository: a path relative to the root, or the tail of one.
#[test]
fn architecture_names_only_files_that_exist() {
    let doc = std::fs::read_to_string(Path::new(ROOT).join("ARCHITECTURE.md")).unwrap();
    let mut all: Vec<String> = Vec::new();
    let mut stack: Vec<PathBuf> = [
        "src",
        "tests",
        "ui",
        "migrations",
        "docs",
        "benches",
        "fuzz",
        "scripts",
        "journeys",
    ]
    .iter()
    .map(|d| Path::new(ROOT).join(d))
    .collect();
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let rel = path.strip_prefix(ROOT).unwrap().display().to_string();
            if path.is_dir() {
                if !rel.contains("node_modules") && !rel.ends_with("target") {
                    all.push(format!("{rel}/"));
                    stack.push(path);
                }
            } else {
                all.push(rel);
            }
        }
    }
    // Names of things that are not files of the repository: the config file a user writes,
    // and what the tests produce.
    const NOT_FILES: &[&str] = &["waymark.toml", "target/test-artifacts/"];
    let mut missing = Vec::new();
    for (i, piece) in doc.split('`').enumerate() {
        let name = piece.trim();
        let looks_like_file = name.ends_with(".rs")
            || name.ends_with(".md")
            || name.ends_with(".mjs")
            || name.ends_with(".toml")
            || (name.contains('/')
                && !name.contains(' ')
                && !name.starts_with('/')
                && !name.contains('{')
                && !name.contains("://"));
        if i % 2 == 0 || !looks_like_file || name.contains('*') || NOT_FILES.contains(&name) {
            continue;
        }
        let exists = Path::new(ROOT).join(name).exists()
            || all.iter().any(|f| {
                f.ends_with(&format!("/{name}"))
                    || f.ends_with(&format!("/{}", name.trim_end_matches('/')))
                    || f == name
            });
        if !exists {
            missing.push(name.to_owned());
        }
    }
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md names files that do not exist: {missing:?}"
    );
}
