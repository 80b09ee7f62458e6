//! `${VAR}` and `${VAR:-default}` expansion in the configuration text.
//!
//! Expansion happens on the text before TOML parsing (as in Vector), so a variable can fill any
//! value, numbers included: quote it in TOML when it is a string. `$$` writes a literal `$`.
//! Full-line comments are left alone, so a commented-out `${VAR}` needs no variable. A value with
//! a newline is refused: it could inject TOML keys.

/// Expands variables using `lookup`; returns every unset or unusable variable at once.
pub fn expand(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, Vec<String>> {
    let mut out = String::with_capacity(text.len());
    let mut problems = Vec::new();
    for (line_no, line) in text.split_inclusive('\n').enumerate() {
        if line.trim_start().starts_with('#') {
            out.push_str(line);
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find('$') {
            out.push_str(&rest[..at]);
            let after = &rest[at + 1..];
            if let Some(tail) = after.strip_prefix('$') {
                out.push('$');
                rest = tail;
            } else if let Some(body) = after.strip_prefix('{') {
                let Some(end) = body.find('}') else {
                    problems.push(format!("line {}: '${{' without a closing '}}'", line_no + 1));
                    out.push_str(&rest[at..]);
                    rest = "";
                    break;
                };
                let expr = &body[..end];
                let (name, default) = match expr.split_once(":-") {
                    Some((name, default)) => (name, Some(default)),
                    None => (expr, None),
                };
                if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    problems.push(format!("line {}: '${{{expr}}}' is not a variable reference", line_no + 1));
                } else {
                    match lookup(name).or_else(|| default.map(str::to_owned)) {
                        Some(value) if value.contains(['\n', '\r']) => {
                            problems.push(format!("line {}: variable {name} contains a newline", line_no + 1));
                        }
                        Some(value) => out.push_str(&value),
                        None => problems.push(format!(
                            "line {}: environment variable {name} is not set (write ${{{name}:-default}} to give a default)",
                            line_no + 1
                        )),
                    }
                }
                rest = &body[end + 1..];
            } else {
                out.push('$');
                rest = after;
            }
        }
        out.push_str(rest);
    }
    if problems.is_empty() { Ok(out) } else { Err(problems) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("kafka:9092".into()),
            "EVIL" => Some("x\"\nacks = 0".into()),
            _ => None,
        }
    }

    #[test]
    fn expands_set_variables_and_defaults() {
        let text = "a = \"${HOST}\"\nb = ${PORT:-8080}\nc = \"$$HOME and $5\"\n# d = ${UNSET}\n";
        assert_eq!(expand(text, env).unwrap(), "a = \"kafka:9092\"\nb = 8080\nc = \"$HOME and $5\"\n# d = ${UNSET}\n");
    }

    #[test]
    fn reports_every_problem_with_its_line() {
        let problems =
            expand("a = \"${NOPE}\"\nb = \"${EVIL}\"\nc = \"${ALSO_NOPE}\"\nd = \"${bad name}\"\n", env).unwrap_err();
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems[0].starts_with("line 1: environment variable NOPE is not set"));
        assert_eq!(problems[1], "line 2: variable EVIL contains a newline");
        assert!(problems[2].starts_with("line 3: environment variable ALSO_NOPE"));
        assert!(problems[3].starts_with("line 4:"));
    }
}
