//! The modules of src/ form no import cycle: every path a module names
//! (`crate::a::b`, `super::c`, `use super::{d, e}`) is an edge to the
//! module it resolves to, and the graph must have no strongly connected
//! component larger than one module. Unit tests (`#[cfg(test)] mod tests`)
//! are left out: they may use anything of their own module.
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

type Graph = BTreeMap<String, BTreeSet<String>>;

#[test]
fn src_has_no_import_cycles() {
    let sources = read_modules(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/src")));
    let graph = import_graph(&sources);
    let cycles: Vec<Vec<String>> = strongly_connected(&graph)
        .into_iter()
        .filter(|c| c.len() > 1)
        .collect();
    let described: Vec<String> = cycles
        .iter()
        .map(|cycle| {
            let edges: Vec<String> = cycle
                .iter()
                .flat_map(|m| {
                    graph[m]
                        .iter()
                        .filter(|t| cycle.contains(t))
                        .map(move |t| format!("{m} -> {t}"))
                })
                .collect();
            edges.join(", ")
        })
        .collect();
    assert!(
        cycles.is_empty(),
        "expected no import cycles among the modules of src/, found: {}",
        described.join("; ")
    );
}

#[test]
fn the_checker_finds_a_cycle() {
    let sources: BTreeMap<String, String> = [
        ("".to_string(), "pub mod a; pub mod b;".to_string()),
        ("a".to_string(), "use crate::b::thing;".to_string()),
        ("b".to_string(), "use super::{a::other, c};".to_string()),
    ]
    .into();
    let cycles: Vec<Vec<String>> = strongly_connected(&import_graph(&sources))
        .into_iter()
        .filter(|c| c.len() > 1)
        .collect();
    assert_eq!(cycles, vec![vec!["a".to_string(), "b".to_string()]]);
}

/// Module path ("datapath::apply", "" for the crate root) -> its source,
/// unit tests cut off.
fn read_modules(src: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).expect("read src/") {
            let path = entry.expect("read src/ entry").path();
            if path.is_dir() {
                stack.push(path);
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
            if parts.last().is_some_and(|p| p == "mod") {
                parts.pop();
            }
            if parts == ["lib"] || parts == ["main"] {
                parts.clear();
            }
            let text = fs::read_to_string(&path).expect("read a source file");
            let code = match text.find("#[cfg(test)]\nmod tests") {
                Some(at) => text[..at].to_string(),
                None => text,
            };
            out.entry(parts.join("::"))
                .and_modify(|s: &mut String| s.push_str(&code))
                .or_insert(code);
        }
    }
    out
}

/// Edges from each module to the modules its paths resolve to. A path
/// into the crate root's re-exports (`crate::UsageError`) counts as a path
/// into the module the root re-exports it from.
fn import_graph(sources: &BTreeMap<String, String>) -> Graph {
    let reexports = root_reexports(sources.get("").map_or("", String::as_str));
    let mut graph = Graph::new();
    for (module, code) in sources {
        let targets = graph.entry(module.clone()).or_default();
        for path in paths_in(code) {
            let Some(target) = resolve(module, &path, sources, &reexports) else {
                continue;
            };
            let inside = target.is_empty() || module.starts_with(&format!("{target}::"));
            if target != *module && !inside {
                targets.insert(target);
            }
        }
    }
    graph
}

/// `pub use a::b::{X, Y};` in lib.rs: X and Y -> "a::b".
fn root_reexports(lib: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in lib.lines() {
        let Some(rest) = line.trim().strip_prefix("pub use ") else {
            continue;
        };
        let rest = rest.trim_end_matches(';');
        let (module, names) = match rest.split_once("::{") {
            Some((m, names)) => (m.to_string(), names.trim_end_matches('}').to_string()),
            None => match rest.rsplit_once("::") {
                Some((m, name)) => (m.to_string(), name.to_string()),
                None => continue,
            },
        };
        for name in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            out.insert(name.to_string(), module.clone());
        }
    }
    out
}

/// Every `crate::`, `super::` and `self::` path in `code`, brace groups
/// expanded one level (`super::{a, b::c}` -> `super::a`, `super::b::c`).
fn paths_in(code: &str) -> Vec<Vec<String>> {
    let bytes = code.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let starts = ["crate::", "super::", "self::"]
            .iter()
            .find(|p| bytes[i..].starts_with(p.as_bytes()))
            .filter(|_| i == 0 || !is_ident(bytes[i - 1]));
        if starts.is_none() {
            i += 1;
            continue;
        }
        let (segments, end) = segments_at(code, i);
        i = end;
        if bytes[i..].starts_with(b"::{") {
            let close = code[i..].find('}').map_or(code.len(), |c| i + c);
            for item in code[i + 3..close].split(',') {
                let item = item.trim();
                if item.is_empty() {
                    continue;
                }
                let (more, _) = segments_at(item, 0);
                let mut path = segments.clone();
                path.extend(more);
                out.push(path);
            }
            i = close;
        } else {
            out.push(segments);
        }
    }
    out
}

/// The `::`-separated identifiers starting at `at`, and where they end.
fn segments_at(code: &str, at: usize) -> (Vec<String>, usize) {
    let bytes = code.as_bytes();
    let mut segments = Vec::new();
    let mut i = at;
    loop {
        let start = i;
        while i < bytes.len() && is_ident(bytes[i]) {
            i += 1;
        }
        if i == start {
            break;
        }
        segments.push(code[start..i].to_string());
        if bytes[i..].starts_with(b"::") && bytes.get(i + 2).is_some_and(|b| is_ident(*b)) {
            i += 2;
        } else {
            break;
        }
    }
    (segments, i)
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The longest module the path names, from `module`.
fn resolve(
    module: &str,
    path: &[String],
    sources: &BTreeMap<String, String>,
    reexports: &BTreeMap<String, String>,
) -> Option<String> {
    let mut base: Vec<&str> = if module.is_empty() {
        Vec::new()
    } else {
        module.split("::").collect()
    };
    let mut rest = path;
    match rest.first().map(String::as_str) {
        Some("crate") => {
            base.clear();
            rest = &rest[1..];
        }
        Some("self") => rest = &rest[1..],
        Some("super") => {
            while rest.first().is_some_and(|s| s == "super") {
                base.pop();
                rest = &rest[1..];
            }
        }
        _ => return None,
    }
    if base.is_empty() {
        if let Some(module) = rest.first().and_then(|name| reexports.get(name)) {
            return Some(module.clone());
        }
    }
    let mut best = None;
    for n in 0..=rest.len() {
        let mut candidate: Vec<&str> = base.clone();
        candidate.extend(rest[..n].iter().map(String::as_str));
        let name = candidate.join("::");
        if sources.contains_key(&name) {
            best = Some(name);
        }
    }
    best
}

/// Tarjan's strongly connected components, each sorted.
fn strongly_connected(graph: &Graph) -> Vec<Vec<String>> {
    struct State<'a> {
        graph: &'a Graph,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        let graph = s.graph;
        for w in graph.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w.to_string());
                if w == v {
                    break;
                }
            }
            component.sort();
            s.out.push(component);
        }
    }
    let mut state = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !state.index.contains_key(v.as_str()) {
            visit(&mut state, v);
        }
    }
    state.out
}
