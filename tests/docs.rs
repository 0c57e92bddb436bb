//! The docs stay true to the tree: ARCHITECTURE.md's code map names every source file and
//! test suite and only files that exist, its threads table names every thread the code
//! starts and only those, the top-level modules depend on each other without a cycle (as
//! its Dependencies section says), the README stays a newcomer's ten minutes, and every
//! link between the docs reaches a file and a heading that exist.

mod util;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Every file under `dir` (relative to the project root) whose name ends with `ext`.
fn files(dir: &str, ext: &str, deep: bool) -> Vec<String> {
    let root = util::root();
    let mut out = Vec::new();
    let mut todo = vec![root.join(dir)];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                if deep {
                    todo.push(path);
                }
            } else if path.to_string_lossy().ends_with(ext) {
                let rel = path.strip_prefix(&root).unwrap();
                out.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    out.sort();
    out
}

fn read(path: &str) -> String {
    std::fs::read_to_string(util::root().join(path)).unwrap()
}

/// The text of the section under `## title`, to the next `## `.
fn section<'a>(text: &'a str, title: &str) -> &'a str {
    let start = text
        .find(&format!("\n## {title}\n"))
        .unwrap_or_else(|| panic!("no section '{title}'"));
    let rest = &text[start + 1..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |e| e + 3);
    &rest[..end]
}

/// The spans in backticks of `text`.
fn code_spans(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

/// The code map's items: each `- ` bullet with its continuation lines.
fn items(map: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in map.lines() {
        if let Some(rest) = line.strip_prefix("- ") {
            out.push(rest.to_string());
        } else if let Some(last) = out.last_mut() {
            last.push(' ');
            last.push_str(line.trim());
        }
    }
    out
}

/// Whether the code map names `file`: by its path, by its last two components
/// (`hub/demand.rs`), or by its name in an item that names its directory (`src/hub/`).
fn named(items: &[String], file: &str) -> bool {
    let p = Path::new(file);
    let name = p.file_name().unwrap().to_string_lossy();
    let dir = p.parent().unwrap().to_string_lossy().replace('\\', "/");
    let short = format!(
        "{}/{name}",
        Path::new(&dir).file_name().unwrap().to_string_lossy()
    );
    items.iter().any(|item| {
        let spans = code_spans(item);
        spans.iter().any(|s| *s == file || *s == short)
            || (spans.contains(&format!("{dir}/").as_str()) && spans.contains(&name.as_ref()))
    })
}

#[test]
fn the_code_map_names_every_source_file_and_test_suite_and_nothing_else() {
    let arch = read("ARCHITECTURE.md");
    let map = items(section(&arch, "Code map"));
    let mut all = files("src", ".rs", true);
    all.extend(files("servers", ".rs", true));
    let mut suites = files("tests", ".rs", false);
    suites.extend(files("tests/bench", ".rs", false));
    let unnamed: Vec<&String> = all
        .iter()
        .chain(&suites)
        .filter(|f| !named(&map, f))
        .collect();
    assert!(
        unnamed.is_empty(),
        "ARCHITECTURE.md's code map does not name: {unnamed:?}"
    );
    // Every file it names is there.
    let mut everything = all.clone();
    everything.extend(files("tests", ".rs", true));
    let ghosts: BTreeSet<&str> = map
        .iter()
        .flat_map(|item| code_spans(item))
        .filter(|s| s.ends_with(".rs") && !s.contains(' '))
        .filter(|s| {
            !everything
                .iter()
                .any(|f| f == s || f.ends_with(&format!("/{s}")))
        })
        .collect();
    assert!(
        ghosts.is_empty(),
        "ARCHITECTURE.md names files that do not exist: {ghosts:?}"
    );
}

/// A thread name as a pattern: every `{...}` or `<...>` is one `*`.
fn pattern(name: &str) -> String {
    let mut out = String::new();
    let mut depth = 0;
    for c in name.chars() {
        match c {
            '{' | '<' => {
                if depth == 0 {
                    out.push('*');
                }
                depth += 1;
            }
            '}' | '>' => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// The names of the threads the code starts: `.name("x".into())`, `.name(format!("x-{..}"))`
/// and the backends' `spawn(format!(..))` / `spawn_sized(format!(..))`.
fn spawned_threads() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut sources = files("src", ".rs", true);
    sources.extend(files("servers", ".rs", true));
    for file in sources {
        let text = read(&file);
        for opener in [".name(", "spawn(", "spawn_sized("] {
            for (at, _) in text.match_indices(opener) {
                let rest = text[at + opener.len()..].trim_start();
                let literal = rest
                    .strip_prefix("format!(\"")
                    .or_else(|| rest.strip_prefix('"'));
                let Some(literal) = literal else { continue };
                let Some(end) = literal.find('"') else {
                    continue;
                };
                let name = &literal[..end];
                // A name, not a tool's or a server's (`.name("x")` in JSON-building code
                // takes no `.into()` or `format!`).
                let is_thread =
                    rest.starts_with("format!") || literal[end + 1..].starts_with(".into())");
                if is_thread {
                    names.insert(pattern(name));
                }
            }
        }
    }
    names
}

#[test]
fn the_threads_table_names_every_thread_the_code_starts_and_nothing_else() {
    let arch = read("ARCHITECTURE.md");
    let table = section(&arch, "Threads");
    let listed: BTreeSet<String> = table
        .lines()
        .filter(|l| l.starts_with("| `"))
        .flat_map(|l| code_spans(l.split(" | ").next().unwrap_or_default()))
        .map(pattern)
        .collect();
    let spawned = spawned_threads();
    assert!(spawned.len() > 15, "the scan found too few: {spawned:?}");
    let missing: Vec<&String> = spawned.difference(&listed).collect();
    assert!(
        missing.is_empty(),
        "threads the code starts that ARCHITECTURE.md's table does not name: {missing:?}"
    );
    // `main` is the process's own; everything else it lists is started somewhere.
    let stale: Vec<&String> = listed
        .difference(&spawned)
        .filter(|n| *n != "main")
        .collect();
    assert!(
        stale.is_empty(),
        "ARCHITECTURE.md's table names threads nothing starts: {stale:?}"
    );
}

#[test]
fn the_readme_is_a_newcomers_ten_minutes() {
    let readme = read("README.md");
    let lines = readme.lines().count();
    assert!(
        lines <= 300,
        "README.md has {lines} lines; the rest belongs in docs/"
    );
    // The two commands, and the warning before the first.
    let warning = readme.find("runs any command").expect("the bash warning");
    let run = readme.find("cargo run --release").expect("the run command");
    assert!(
        warning < run,
        "the built-in bash warning comes before the command"
    );
    assert!(readme.contains("tests/run"));
    assert!(readme.contains("1.88"), "the minimum Rust version");
}

/// A heading's anchor as GitHub makes it.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut fence = false;
    for line in text.lines() {
        if line.starts_with("```") {
            fence = !fence;
        }
        if !fence && line.starts_with('#') {
            out.insert(anchor(line.trim_start_matches('#')));
        }
    }
    out
}

#[test]
fn every_link_between_the_docs_reaches_a_file_and_a_heading() {
    let mut pages = vec!["README.md".to_string(), "ARCHITECTURE.md".to_string()];
    pages.extend(files("docs", ".md", false));
    assert!(pages.len() >= 9, "{pages:?}");
    let mut broken = Vec::new();
    for page in &pages {
        let text = read(page);
        let dir = Path::new(page).parent().unwrap_or(Path::new(""));
        for (at, _) in text.match_indices("](") {
            let rest = &text[at + 2..];
            let Some(end) = rest.find(')') else { continue };
            let target = &rest[..end];
            if target.contains("://") || target.starts_with("mailto:") || target.contains(' ') {
                continue;
            }
            let (file, frag) = target.split_once('#').unwrap_or((target, ""));
            let path: PathBuf = if file.is_empty() {
                PathBuf::from(page)
            } else {
                dir.join(file)
            };
            let full = util::root().join(&path);
            if !full.exists() {
                broken.push(format!("{page}: {target} (no such file)"));
                continue;
            }
            if !frag.is_empty() {
                let text = std::fs::read_to_string(&full).unwrap_or_default();
                if !anchors(&text).contains(frag) {
                    broken.push(format!("{page}: {target} (no such heading)"));
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

/// The top-level module a source file belongs to: `src/hub/route.rs` → `hub`,
/// `src/jsonrpc.rs` → `jsonrpc`, `servers/shell.rs` → `servers`.
fn module_of(file: &str) -> String {
    let rest = file.strip_prefix("src/").unwrap_or("servers/x");
    if rest.starts_with("servers/") || file.starts_with("servers/") {
        return "servers".into();
    }
    let first = rest.split('/').next().unwrap();
    first.trim_end_matches(".rs").to_string()
}

/// Which top-level modules each one uses (`crate::x`, `use crate::{x, y::z}`).
fn module_graph() -> std::collections::BTreeMap<String, BTreeSet<String>> {
    let mut sources = files("src", ".rs", true);
    sources.extend(files("servers", ".rs", true));
    let modules: BTreeSet<String> = sources.iter().map(|f| module_of(f)).collect();
    let mut graph: std::collections::BTreeMap<String, BTreeSet<String>> = Default::default();
    for file in &sources {
        let from = module_of(file);
        // Code only: what a comment mentions is not a dependency.
        let text: String = read(file)
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let mut used = Vec::new();
        for (at, _) in text.match_indices("crate::") {
            let rest = &text[at + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                let inner = &group[..group.find('}').unwrap_or(0)];
                used.extend(
                    inner
                        .split(',')
                        .map(|i| i.trim().split("::").next().unwrap_or_default().to_string()),
                );
            } else {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                used.push(name);
            }
        }
        for to in used {
            if to != from && modules.contains(&to) {
                graph.entry(from.clone()).or_default().insert(to);
            }
        }
    }
    graph
}

#[test]
fn the_top_level_modules_depend_on_each_other_without_a_cycle() {
    let graph = module_graph();
    assert!(
        graph.get("hub").is_some_and(|d| d.contains("contract")),
        "{graph:?}"
    );
    // Depth-first, reporting the first cycle found as a path.
    fn visit(
        m: &str,
        graph: &std::collections::BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == m) {
            let mut cycle = path[at..].to_vec();
            cycle.push(m.to_string());
            return Some(cycle);
        }
        if done.contains(m) {
            return None;
        }
        path.push(m.to_string());
        for next in graph.get(m).into_iter().flatten() {
            if let Some(c) = visit(next, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(m.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for m in graph.keys() {
        if let Some(cycle) = visit(m, &graph, &mut Vec::new(), &mut done) {
            panic!("a cycle between top-level modules: {}", cycle.join(" -> "));
        }
    }
}

#[test]
fn the_scripts_say_before_they_install_as_root_and_leave_nothing_tracked_behind() {
    // Every apt-get in a script a newcomer runs comes after a line saying so, as root.
    for script in ["tests/run", "tests/release"] {
        let text = read(script);
        let first_install = ["apt-get update", "apt-get install"]
            .iter()
            .filter_map(|c| text.find(c))
            .min()
            .expect(script);
        let said = text[..first_install].rfind("echo \"");
        assert!(
            said.is_some_and(|at| text[at..first_install].contains("as root")),
            "{script} installs without saying so first"
        );
    }
    // What the tests write is ignored by git, never committed (a tracked file they rewrite
    // would leave `git status` dirty after tests/run).
    let Ok(out) = std::process::Command::new("git")
        .args(["ls-files"])
        .current_dir(util::root())
        .output()
    else {
        return;
    };
    let tracked = String::from_utf8_lossy(&out.stdout);
    let generated: Vec<&str> = tracked
        .lines()
        .filter(|f| {
            f.contains("__pycache__/")
                || f.ends_with(".pyc")
                || f.contains(".playwright-mcp/")
                || f.starts_with("logs/log_")
                || f.starts_with("target/")
        })
        .collect();
    assert!(
        generated.is_empty(),
        "generated files are tracked: {generated:?}"
    );
    let ignore = read(".gitignore");
    for pattern in [
        "__pycache__/",
        "node_modules/",
        "/target",
        "/.venv",
        ".playwright-mcp/",
    ] {
        assert!(ignore.contains(pattern), ".gitignore lacks {pattern}");
    }
}
