//! Near misses: the field a misspelt one was probably meant to be (`comand` → `command`,
//! `enviroment` → `env`, `timout` → `timeout`), for the unknown-field warning and the
//! missing-field error. Pure.

/// Names people write for a field that has another name here.
const SYNONYMS: &[(&str, &str)] = &[
    ("environment", "env"),
    ("environ", "env"),
    ("envs", "env"),
    ("arguments", "args"),
    ("argv", "args"),
    ("cmd", "command"),
    ("program", "command"),
    ("exec", "command"),
    ("executable", "command"),
    ("workingdirectory", "cwd"),
    ("working_directory", "cwd"),
    ("workdir", "cwd"),
    ("dir", "cwd"),
    ("directory", "cwd"),
    ("header", "headers"),
    ("endpoint", "url"),
    ("uri", "url"),
    ("address", "url"),
    ("disabled", "enabled"),
    ("timeoutseconds", "timeout"),
];

/// The field of `known` that `given` was probably meant to be: a known synonym, or the
/// one closest in spelling (letters swapped, one missing or extra or wrong for each four).
pub fn meant<'a>(given: &str, known: &[&'a str]) -> Option<&'a str> {
    let lower = given.to_ascii_lowercase();
    let folded: String = lower.chars().filter(|c| *c != '-' && *c != '_').collect();
    for (word, field) in SYNONYMS {
        let word_folded: String = word.chars().filter(|c| *c != '_').collect();
        // A misspelt synonym counts too (`enviroment`).
        let close = distance(&folded, &word_folded) <= allowed(word);
        if (lower == *word || folded == word_folded || close) && known.contains(field) {
            return known.iter().copied().find(|k| k == field);
        }
    }
    known
        .iter()
        .copied()
        .filter(|k| *k != given)
        .map(|k| (distance(&lower, &k.to_ascii_lowercase()), k))
        .filter(|(d, k)| *d <= allowed(k))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Edits allowed for a word this long: one for every four letters, at least one.
fn allowed(word: &str) -> usize {
    (word.len() / 4).max(1)
}

/// Optimal string alignment distance: insertions, deletions, substitutions and swaps of
/// two neighbours, each one edit.
fn distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// For a missing required `field`: the key of `given` that was probably meant to be it,
/// as the end of the error (` ('comand' is there: did you mean 'command'?)`), or "".
pub fn missing_hint<'k>(field: &str, given: impl Iterator<Item = &'k String>) -> String {
    given
        .filter(|k| k.as_str() != field)
        .find(|k| meant(k, &[field]).is_some())
        .map(|k| format!(" ('{k}' is there: did you mean '{field}'?)"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const STDIO: &[&str] = &["command", "args", "env", "cwd", "timeout", "type", "scope"];

    #[test]
    fn typos_and_synonyms_find_the_field_meant() {
        assert_eq!(meant("comand", STDIO), Some("command"));
        assert_eq!(meant("enviroment", STDIO), Some("env"));
        assert_eq!(meant("environment", STDIO), Some("env"));
        assert_eq!(meant("timout", STDIO), Some("timeout"));
        assert_eq!(meant("agrs", STDIO), Some("args"));
        assert_eq!(
            meant("Command", STDIO),
            Some("command"),
            "names are case-sensitive"
        );
        assert_eq!(
            meant("command", STDIO),
            None,
            "a known field is not a near miss"
        );
        assert_eq!(meant("colour", STDIO), None);
        assert_eq!(meant("working_directory", STDIO), Some("cwd"));
        assert_eq!(meant("url", STDIO), None);
    }

    #[test]
    fn a_missing_field_names_the_near_miss_that_is_there() {
        let keys = ["comand".to_string(), "args".to_string()];
        assert_eq!(
            missing_hint("command", keys.iter()),
            " ('comand' is there: did you mean 'command'?)"
        );
        assert_eq!(missing_hint("url", keys.iter()), "");
    }
}
