//! A child's last words: the last few lines of its output that say why it stopped, without
//! the boilerplate tools print after the error. `npx` for a package that does not exist
//! ends with "npm error A complete log of this run can be found in: ...", a line that says
//! nothing; the 404 is a few lines above it.

use std::collections::VecDeque;

/// Lines kept, and lines shown.
const KEEP: usize = 20;
const SHOW: usize = 3;
/// Longest line kept, in bytes.
const LINE: usize = 300;

#[derive(Default)]
pub struct LastWords {
    lines: VecDeque<String>,
}

impl LastWords {
    pub fn push(&mut self, line: &str) {
        if self.lines.len() == KEEP {
            self.lines.pop_front();
        }
        self.lines
            .push_back(crate::lines::clip(line, LINE).to_string());
    }

    /// The last lines that carry meaning (at most three, oldest first, joined by " | "),
    /// or "" when there are none.
    pub fn summary(&self) -> String {
        let mut shown: Vec<&str> = self
            .lines
            .iter()
            .rev()
            .filter(|l| !is_boilerplate(l))
            .take(SHOW)
            .map(String::as_str)
            .collect();
        shown.reverse();
        shown.join(" | ")
    }
}

/// Lines that come after an error and explain nothing about it.
fn is_boilerplate(line: &str) -> bool {
    let lower = line.trim().to_ascii_lowercase();
    const NOISE: &[&str] = &[
        "a complete log of this run can be found in",
        "note that you can also install from a",
        "tarball, folder, http url, or git url",
        "traceback (most recent call last)",
    ];
    if NOISE.iter().any(|n| lower.contains(n))
        || lower.starts_with("npm notice")
        || lower.starts_with("npm warn")
        || lower.starts_with("file \"")
    {
        return true;
    }
    // "npm error", "npm ERR! 404": the prefix and a code, nothing else.
    let rest = ["npm error", "npm err!"]
        .iter()
        .find_map(|p| lower.strip_prefix(p))
        .map(str::trim);
    rest.is_some_and(|r| r.chars().all(|c| c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npm_404_shows_the_404_not_the_log_path() {
        let mut w = LastWords::default();
        for line in [
            "npm error code E404",
            "npm error 404 Not Found - GET https://registry.npmjs.org/@nope%2fnope - Not found",
            "npm error 404",
            "npm error 404  '@nope/nope@*' is not in this registry.",
            "npm error 404",
            "npm error 404 Note that you can also install from a",
            "npm error 404 tarball, folder, http url, or git url.",
            "npm error A complete log of this run can be found in: /root/.npm/_logs/x-debug-0.log",
        ] {
            w.push(line);
        }
        assert_eq!(
            w.summary(),
            "npm error code E404 | npm error 404 Not Found - GET https://registry.npmjs.org/@nope%2fnope - Not found | npm error 404  '@nope/nope@*' is not in this registry."
        );
    }

    #[test]
    fn a_python_traceback_ends_with_its_error() {
        let mut w = LastWords::default();
        for line in [
            "Traceback (most recent call last):",
            "  File \"/srv/server.py\", line 3, in <module>",
            "    import fastmcp",
            "ModuleNotFoundError: No module named 'fastmcp'",
        ] {
            w.push(line);
        }
        assert_eq!(
            w.summary(),
            "    import fastmcp | ModuleNotFoundError: No module named 'fastmcp'"
        );
        let mut w = LastWords::default();
        assert_eq!(w.summary(), "");
        for i in 0..30 {
            w.push(&format!("line {i}"));
        }
        assert_eq!(w.summary(), "line 27 | line 28 | line 29");
    }
}
