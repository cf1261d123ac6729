//! The house rules a newcomer could break without noticing (ARCHITECTURE.md): no two files
//! of `src/` import each other in a circle, the floors only reach down (bin -> gui, cli ->
//! line -> engine -> core; only the engine touches tch), the detector kinds share code only
//! through `engine/detectors/common.rs`, no function of `src/` is longer than 150 lines,
//! and the binaries stay thin. Run by `make lint` and `make test`; it reads the sources as
//! text.

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
        Some("line") => 2,
        Some("cli") => 3,
        Some("gui") => 3,
        _ => 4,
    };
    let mut wrong = Vec::new();
    for (m, to) in graph() {
        for t in to {
            if floor(&t) > floor(&m) || (floor(&t) == 3 && floor(&m) == 3 && t[0] != m[0]) {
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

/// The kinds of `engine/detectors/` (a file or a folder each), but the shared ones.
fn kinds(modules: &BTreeMap<Vec<String>, PathBuf>) -> BTreeSet<String> {
    modules
        .keys()
        .filter(|m| m.len() >= 3 && m[0] == "engine" && m[1] == "detectors")
        .map(|m| m[2].clone())
        .filter(|k| k != "common")
        .collect()
}

#[test]
fn the_detector_kinds_share_only_through_common() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let kinds = kinds(&modules(&src));
    assert!(
        kinds.contains("differnet") && kinds.contains("cs_flow"),
        "{kinds:?}"
    );
    let mut wrong = Vec::new();
    for (m, to) in graph() {
        let Some(kind) = (m.len() >= 3 && m[0] == "engine" && m[1] == "detectors")
            .then(|| &m[2])
            .filter(|k| kinds.contains(*k))
        else {
            continue;
        };
        for t in to {
            let other_kind = t.len() >= 3
                && t[0] == "engine"
                && t[1] == "detectors"
                && kinds.contains(&t[2])
                && &t[2] != kind;
            let interface = t.len() == 2 && t[0] == "engine" && t[1] == "detector";
            // The fusion is generic over its members and names none of them.
            if other_kind || interface {
                wrong.push(format!("{} -> {}", m.join("/"), t.join("/")));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "a kind imports another kind or the interface (share through common.rs):\n{}",
        wrong.join("\n")
    );
}

/// The longest function a file of `src/` may hold, from its `fn` line to its closing
/// brace: a longer one does several jobs and hides which.
const MAX_FUNCTION_LINES: usize = 150;

/// `(name, first line, lines)` of every function with a body in `text`. A light lexer:
/// braces in comments, strings (raw ones too) and character literals do not count.
fn function_lengths(text: &str) -> Vec<(String, usize, usize)> {
    let b = text.as_bytes();
    let find = |from: usize, what: &[u8]| {
        b[from.min(b.len())..]
            .windows(what.len())
            .position(|w| w == what)
            .map(|p| from + p)
    };
    // Whether each byte is code: not in a comment or a literal.
    let mut code = vec![false; b.len()];
    let mut i = 0;
    while i < b.len() {
        let rest = &b[i..];
        if rest.starts_with(b"//") {
            i = find(i, b"\n").unwrap_or(b.len());
        } else if rest.starts_with(b"/*") {
            i = find(i + 2, b"*/").map_or(b.len(), |e| e + 2);
        } else if rest.starts_with(b"r\"") || rest.starts_with(b"r#") {
            let hashes = rest[1..].iter().take_while(|&&c| c == b'#').count();
            let mut close = vec![b'"'];
            close.extend(std::iter::repeat_n(b'#', hashes));
            i = find(i + 2 + hashes, &close).map_or(b.len(), |e| e + close.len());
        } else if b[i] == b'"' {
            let mut j = i + 1;
            while j < b.len() && b[j] != b'"' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            i = j + 1;
        } else if b[i] == b'\'' && (rest.get(1) == Some(&b'\\') || rest.get(2) == Some(&b'\'')) {
            // A character literal ('{', '\'', '\u{7b}'), not a lifetime.
            i = find(i + 2, b"'").map_or(b.len(), |e| e + 1);
        } else {
            code[i] = true;
            i += 1;
        }
    }
    let line_of = |at: usize| b[..at].iter().filter(|&&c| c == b'\n').count() + 1;
    let mut out = Vec::new();
    let mut search = 0;
    while let Some(at) = find(search, b"fn ") {
        search = at + 3;
        let word_start = at == 0 || !(b[at - 1].is_ascii_alphanumeric() || b[at - 1] == b'_');
        if !code[at] || !word_start {
            continue;
        }
        let name: String = b[at + 3..]
            .iter()
            .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
            .map(|&c| char::from(c))
            .collect();
        if name.is_empty() {
            continue;
        }
        // The body: the first `{` at depth 0 of parentheses before any `;`.
        let mut j = at;
        let mut parens = 0i32;
        let open = loop {
            if j >= b.len() {
                break None;
            }
            if code[j] {
                match b[j] {
                    b'(' | b'[' | b'<' => parens += 1,
                    b')' | b']' => parens -= 1,
                    b'>' if j > 0 && b[j - 1] != b'-' && b[j - 1] != b'=' => parens -= 1,
                    b';' if parens <= 0 => break None,
                    b'{' if parens <= 0 => break Some(j),
                    _ => {}
                }
            }
            j += 1;
        };
        let Some(open) = open else { continue };
        let mut depth = 0i32;
        let mut k = open;
        while k < b.len() {
            if code[k] {
                match b[k] {
                    b'{' => depth += 1,
                    b'}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => {}
                }
            }
            k += 1;
        }
        out.push((
            name,
            line_of(at),
            line_of(k.min(b.len() - 1)) - line_of(at) + 1,
        ));
    }
    out
}

#[test]
fn the_function_measure_counts_from_fn_to_its_brace_and_skips_literals() {
    let text = "fn a() {\n    let s = \"}}}\";\n    let c = '}';\n    // }\n}\n\
                trait T { fn b(&self); }\n\
                pub(crate) fn c<T: Into<u8>>(x: [u8; 2]) -> Vec<u8> where T: Copy {\n    vec![]\n}\n\
                fn d<'a>(s: &'a str) -> &'a str { r#\"{\"# ; s }\n";
    let found = function_lengths(text);
    let names: Vec<(&str, usize, usize)> =
        found.iter().map(|(n, l, c)| (n.as_str(), *l, *c)).collect();
    assert_eq!(names, vec![("a", 1, 5), ("c", 7, 3), ("d", 10, 1)]);
}

#[test]
fn no_function_of_src_is_longer_than_150_lines() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files: Vec<PathBuf> = modules(&src).into_values().collect();
    files.extend(
        std::fs::read_dir(src.join("bin"))
            .unwrap()
            .flatten()
            .map(|e| e.path()),
    );
    let mut long = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        for (name, line, lines) in function_lengths(&text) {
            if lines > MAX_FUNCTION_LINES {
                let file = path.strip_prefix(&src).unwrap().display();
                long.push(format!("src/{file}:{line} `{name}`: {lines} lines"));
            }
        }
    }
    assert!(
        long.is_empty(),
        "functions over {MAX_FUNCTION_LINES} lines (split them where they do two jobs):\n{}",
        long.join("\n")
    );
}
