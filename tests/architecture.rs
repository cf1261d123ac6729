//! The house rules a newcomer could break without noticing (ARCHITECTURE.md): no two files
//! of `src/` import each other in a circle, the floors only reach down (bin -> gui -> engine
//! -> core; only the engine touches tch), and the binaries stay thin. Run by `make lint`
//! and `make test`; it reads the sources as text.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module path (`["engine", "detectors", "fusion"]`) for every file of `src/` but the
/// binaries.
fn modules(src: &Path) -> BTreeMap<Vec<String>, PathBuf> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "bin") {
                    stack.push(path);
                }
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src).unwrap().with_extension("");
            let mut parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
                parts.pop();
            }
            out.insert(parts, path);
        }
    }
    out
}

/// The code of a file without its comments and its test module.
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let text = text.split("#[cfg(test)]").next().unwrap_or_default();
    text.lines()
        .map(|l| l.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The crate paths a file names: every `crate::a::b` and each item of a
/// `use crate::a::{b, c}` group (nested groups count their first segment).
fn named_paths(code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        let mut path = Vec::new();
        let mut grouped = false;
        let mut s = rest;
        loop {
            let end = s
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(s.len());
            if end == 0 {
                break;
            }
            path.push(s[..end].to_owned());
            s = &s[end..];
            if let Some(next) = s.strip_prefix("::") {
                s = next;
                if s.starts_with('{') {
                    // A group: each item's first segment.
                    let close = matching_brace(s);
                    let inner = &s[1..close];
                    for item in split_top_level(inner) {
                        let first: String = item
                            .trim()
                            .chars()
                            .take_while(|c| c.is_alphanumeric() || *c == '_')
                            .collect();
                        let mut p = path.clone();
                        if !first.is_empty() && first != "self" {
                            p.push(first);
                        }
                        out.push(p);
                    }
                    grouped = true;
                    break;
                }
            } else {
                break;
            }
        }
        if !path.is_empty() && !grouped {
            out.push(path);
        }
    }
    out
}

/// Whether `code` names the `tch` crate (`tch::`, not `watch::`).
fn uses_tch(code: &str) -> bool {
    code.match_indices("tch::").any(|(i, _)| {
        !code[..i]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}

fn matching_brace(s: &str) -> usize {
    let mut depth = 0;
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return i;
                }
            }
            _ => {}
        }
    }
    s.len()
}

fn split_top_level(s: &str) -> Vec<&str> {
    let (mut out, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

/// File -> the files it imports from (the longest module prefix of each named path).
fn graph() -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mods = modules(&src);
    let mut edges = BTreeMap::new();
    for (m, path) in &mods {
        let mut to = BTreeSet::new();
        for p in named_paths(&code(path)) {
            if let Some(target) = (1..=p.len())
                .rev()
                .map(|i| p[..i].to_vec())
                .find(|prefix| mods.contains_key(prefix))
                && target != *m
            {
                to.insert(target);
            }
        }
        edges.insert(m.clone(), to);
    }
    edges
}

/// The strongly connected components with more than one file (Tarjan).
fn circles(edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Vec<Vec<Vec<String>>> {
    struct T<'a> {
        edges: &'a BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        index: BTreeMap<&'a Vec<String>, usize>,
        low: BTreeMap<&'a Vec<String>, usize>,
        stack: Vec<&'a Vec<String>>,
        on: BTreeSet<&'a Vec<String>>,
        out: Vec<Vec<Vec<String>>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a Vec<String>) {
        let i = t.index.len();
        t.index.insert(v, i);
        t.low.insert(v, i);
        t.stack.push(v);
        t.on.insert(v);
        for w in &t.edges[v] {
            if !t.index.contains_key(w) {
                visit(t, w);
                let lw = t.low[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if t.on.contains(w) {
                let iw = t.index[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if t.low[v] == t.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on.remove(w);
                comp.push(w.clone());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                t.out.push(comp);
            }
        }
    }
    let mut t = T {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in edges.keys() {
        if !t.index.contains_key(v) {
            visit(&mut t, v);
        }
    }
    t.out
}

#[test]
fn no_two_files_of_src_import_each_other_in_a_circle() {
    let edges = graph();
    assert!(edges.len() > 50, "the sources were not found");
    let found = circles(&edges);
    let text: Vec<String> = found
        .iter()
        .map(|c| {
            c.iter()
                .map(|m| {
                    let to: Vec<String> = edges[m]
                        .iter()
                        .filter(|t| c.contains(t))
                        .map(|t| t.join("/"))
                        .collect();
                    format!("  {} -> {}", m.join("/"), to.join(", "))
                })
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect();
    assert!(
        found.is_empty(),
        "files that import each other in a circle:\n{}",
        text.join("\n--\n")
    );
}

#[test]
fn the_circle_check_finds_a_circle() {
    // The check itself can fail: a -> b -> c -> a is found, a -> b alone is not.
    let name = |s: &str| vec![s.to_owned()];
    let mut edges = BTreeMap::new();
    edges.insert(name("a"), BTreeSet::from([name("b")]));
    edges.insert(name("b"), BTreeSet::from([name("c")]));
    edges.insert(name("c"), BTreeSet::from([name("a")]));
    edges.insert(name("d"), BTreeSet::from([name("a")]));
    let found = circles(&edges);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].len(), 3);
    edges.insert(name("c"), BTreeSet::new());
    assert!(circles(&edges).is_empty());
    assert!(uses_tch("use tch::Tensor;") && !uses_tch("crate::engine::watch::Watch"));
    assert_eq!(
        named_paths(
            "use crate::core::{config::X, drift};\nlet a = crate::engine::watch::RECENT_GOOD;"
        ),
        vec![
            vec!["core".to_owned(), "config".to_owned()],
            vec!["core".to_owned(), "drift".to_owned()],
            vec![
                "engine".to_owned(),
                "watch".to_owned(),
                "RECENT_GOOD".to_owned()
            ],
        ]
    );
}

#[test]
fn the_floors_only_reach_down_and_only_the_engine_touches_tch() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let floor = |m: &[String]| match m.first().map(String::as_str) {
        Some("core") => 0,
        Some("engine") => 1,
        Some("cli") => 2,
        Some("gui") => 2,
        _ => 3,
    };
    let mut wrong = Vec::new();
    for (m, to) in graph() {
        for t in to {
            if floor(&t) > floor(&m) || (floor(&t) == 2 && floor(&m) == 2 && t[0] != m[0]) {
                wrong.push(format!("{} -> {}", m.join("/"), t.join("/")));
            }
        }
    }
    for (m, path) in modules(&src) {
        if m.first().is_none_or(|f| f != "engine") && uses_tch(&code(&path)) {
            wrong.push(format!("{} uses tch", m.join("/")));
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the floors:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_binaries_are_thin() {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/bin");
    for entry in std::fs::read_dir(bin).unwrap().flatten() {
        let lines = std::fs::read_to_string(entry.path())
            .unwrap()
            .lines()
            .count();
        assert!(
            lines < 150,
            "{} has {lines} lines: a binary parses its arguments and calls the library",
            entry.path().display()
        );
    }
}
