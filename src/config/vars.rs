//! `${VAR}` in config values: which variables a text names, and its expansion.

/// The variables `${...}` references in `text`, in order.
pub fn variable_names(text: &str) -> Vec<String> {
    let names = std::cell::RefCell::new(Vec::new());
    let _ = expand_vars(text, &|name| {
        names.borrow_mut().push(name.to_string());
        Some("x".into())
    });
    names.into_inner()
}

/// Variables VS Code fills in itself, which only it knows.
const VSCODE_VARIABLES: &[&str] = &[
    "workspaceFolder",
    "workspaceFolderBasename",
    "userHome",
    "cwd",
    "file",
    "pathSeparator",
];

/// Expands `${VAR}`, `${env:VAR}` and `${VAR:-default}`; `$${` stands for a literal `${`.
/// An unset variable without a default is an error, never a silent empty string; so is
/// VS Code's `${input:ID}`, which needs someone to ask.
pub fn expand_vars(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            let Some(end) = tail.find('}') else {
                return Err(format!("unterminated '${{' in '{text}'"));
            };
            let inner = &tail[..end];
            if let Some(id) = inner.strip_prefix("input:") {
                return Err(format!(
                    "'${{input:{id}}}' asks VS Code to prompt for a value, which a gateway cannot do: put the value in an environment variable and write '${{env:NAME}}' (or '${{NAME}}') instead"
                ));
            }
            // `${env:VAR}` (VS Code, Cursor) is `${VAR}`.
            let reference = inner.strip_prefix("env:").unwrap_or(inner);
            let (name, default) = match reference.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (reference, None),
            };
            let valid = !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(format!("'${{{inner}}}' is not a valid variable reference"));
            }
            match (
                lookup(name).filter(|v| !v.is_empty() || default.is_none()),
                default,
            ) {
                (Some(value), _) => out.push_str(&value),
                (None, Some(default)) => out.push_str(default),
                (None, None) if VSCODE_VARIABLES.contains(&name) => {
                    return Err(format!(
                        "'${{{name}}}' is VS Code's own variable, unknown outside it: write the value, or set an environment variable '{name}'"
                    ));
                }
                (None, None) => {
                    return Err(format!(
                        "environment variable '{name}' is not set (write '${{{name}:-default}}' to give a default)"
                    ));
                }
            }
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOME" => Some("/home/u".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn variable_expansion() {
        let cases = [
            ("${HOME}/x", Ok("/home/u/x")),
            ("${NOPE:-fallback}", Ok("fallback")),
            ("${EMPTY:-fallback}", Ok("fallback")),
            ("${EMPTY}", Ok("")),
            ("a$b$${HOME}", Ok("a$b${HOME}")),
            ("cost $5", Ok("cost $5")),
            ("${NOPE}", Err("environment variable 'NOPE' is not set")),
            ("${HOME", Err("unterminated")),
            ("${1X}", Err("not a valid variable reference")),
            ("${env:HOME}/y", Ok("/home/u/y")),
            ("${env:NOPE:-d}", Ok("d")),
            ("${env:NOPE}", Err("environment variable 'NOPE' is not set")),
            (
                "${input:key}",
                Err("'${input:key}' asks VS Code to prompt for a value"),
            ),
            ("${workspaceFolder}/x", Err("is VS Code's own variable")),
        ];
        for (input, want) in cases {
            let got = expand_vars(input, &env);
            match (got, want) {
                (Ok(g), Ok(w)) => assert_eq!(g, w, "{input}"),
                (Err(g), Err(w)) => assert!(g.contains(w), "{input}: {g}"),
                (g, w) => panic!("{input}: got {g:?}, want {w:?}"),
            }
        }
    }
}
