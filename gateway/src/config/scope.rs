//! Scopes (what a credential grants) and permissions (what a request needs).

use std::fmt;
use std::str::FromStr;

/// One thing a credential may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Everything.
    Admin,
    /// Produce to topics matching the pattern.
    Produce(Pattern),
    /// Create and manage subscriptions whose topics all match the pattern.
    Subscribe(Pattern),
    /// Read the embedded registry.
    RegistryRead,
    /// Register and delete schemas and change compatibility in the embedded registry.
    RegistryWrite,
}

/// What a request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission<'a> {
    Produce(&'a str),
    Subscribe(&'a str),
    RegistryRead,
    RegistryWrite,
    /// The admin API (plugins).
    Admin,
}

impl Scope {
    pub fn grants(&self, permission: Permission<'_>) -> bool {
        match (self, permission) {
            (Scope::Admin, _) => true,
            (Scope::Produce(pattern), Permission::Produce(topic))
            | (Scope::Subscribe(pattern), Permission::Subscribe(topic)) => pattern.matches(topic),
            (Scope::RegistryRead | Scope::RegistryWrite, Permission::RegistryRead) => true,
            (Scope::RegistryWrite, Permission::RegistryWrite) => true,
            _ => false,
        }
    }
}

impl FromStr for Scope {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let pattern = |p: &str| {
            if p.is_empty() {
                Err(format!("'{text}' needs a topic pattern after the colon, e.g. '{text}orders.*'"))
            } else {
                Ok(Pattern(p.to_owned()))
            }
        };
        match text.split_once(':') {
            None if text == "admin" => Ok(Scope::Admin),
            Some(("produce", p)) => pattern(p).map(Scope::Produce),
            Some(("subscribe", p)) => pattern(p).map(Scope::Subscribe),
            Some(("registry", "read")) => Ok(Scope::RegistryRead),
            Some(("registry", "write")) => Ok(Scope::RegistryWrite),
            _ => Err(format!(
                "'{text}' is not a scope: use admin, produce:<topics>, subscribe:<topics>, registry:read or \
                 registry:write"
            )),
        }
    }
}

impl fmt::Display for Permission<'_> {
    /// The scope that would grant it, for 403 answers.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Permission::Produce(topic) => write!(f, "produce:{topic}"),
            Permission::Subscribe(topic) => write!(f, "subscribe:{topic}"),
            Permission::RegistryRead => f.write_str("registry:read"),
            Permission::RegistryWrite => f.write_str("registry:write"),
            Permission::Admin => f.write_str("admin"),
        }
    }
}

/// A topic pattern: `*` matches any run of characters, everything else itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern(String);

impl Pattern {
    pub fn matches(&self, topic: &str) -> bool {
        glob(self.0.as_bytes(), topic.as_bytes())
    }
}

/// Wildcard matching with backtracking to the last `*` only: linear in practice, no recursion.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_whole_topic_names() {
        let orders = Pattern("orders.*".into());
        assert!(orders.matches("orders.placed"));
        assert!(orders.matches("orders."));
        assert!(!orders.matches("orders"));
        assert!(!orders.matches("payments.orders.placed"));
        assert!(Pattern("*".into()).matches("anything"));
        assert!(Pattern("*.dlq".into()).matches("orders.placed.dlq"));
        assert!(!Pattern("*.dlq".into()).matches("orders.placed"));
        assert!(Pattern("a*b*c".into()).matches("axxbyyc"));
        assert!(!Pattern("a*b*c".into()).matches("axxbyy"));
        assert!(Pattern("exact".into()).matches("exact"));
        assert!(!Pattern("exact".into()).matches("exactly"));
    }

    #[test]
    fn scopes_grant_what_they_say() {
        let produce: Scope = "produce:orders.*".parse().unwrap();
        assert!(produce.grants(Permission::Produce("orders.placed")));
        assert!(!produce.grants(Permission::Produce("payments.confirmed")));
        assert!(!produce.grants(Permission::Subscribe("orders.placed")));
        let read: Scope = "registry:read".parse().unwrap();
        assert!(read.grants(Permission::RegistryRead) && !read.grants(Permission::RegistryWrite));
        let write: Scope = "registry:write".parse().unwrap();
        assert!(write.grants(Permission::RegistryRead) && write.grants(Permission::RegistryWrite));
        let admin: Scope = "admin".parse().unwrap();
        assert!(admin.grants(Permission::Produce("x")) && admin.grants(Permission::Subscribe("y")));
        assert!("produce:".parse::<Scope>().is_err());
        assert!("write:all".parse::<Scope>().is_err());
    }
}
