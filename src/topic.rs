//! Name patterns (topics, track names, participant identities), compiled once when the
//! configuration is loaded and matched in linear time (`globset`, which compiles to a regular
//! expression): `*` and `?` match within one `/`-separated segment, `**` across segments
//! (`/**/` also matches a single `/`; `**` must be a whole segment), `[abc]` and `{a,b}` as in
//! shell globs, every other character itself.

use globset::{Glob, GlobBuilder, GlobMatcher, GlobSet, GlobSetBuilder};
use serde::Deserialize;

/// One pattern, e.g. a route's `topic`.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "String")]
pub struct Pattern {
    text: String,
    matcher: GlobMatcher,
}

impl Pattern {
    /// Compiles `text`; the error says what is wrong with it.
    pub fn new(text: &str) -> Result<Self, String> {
        Ok(Self { text: text.to_string(), matcher: glob(text)?.compile_matcher() })
    }

    pub fn is_match(&self, name: &str) -> bool {
        self.matcher.is_match(name)
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl TryFrom<String> for Pattern {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        Self::new(&text)
    }
}

/// A list of patterns compiled into one set, e.g. a source's `topics`: a name matches the
/// list when it matches any of them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(try_from = "Vec<String>")]
pub struct Patterns {
    texts: Vec<String>,
    globs: Vec<Glob>,
    set: GlobSet,
}

impl Patterns {
    /// Compiles `texts`; the error names the pattern (by index) and what is wrong with it.
    pub fn new<S: AsRef<str>>(texts: &[S]) -> Result<Self, String> {
        let globs = texts
            .iter()
            .enumerate()
            .map(|(i, text)| glob(text.as_ref()).map_err(|why| format!("[{i}]: {why}")))
            .collect::<Result<Vec<_>, _>>()?;
        let set = compile(&globs)?;
        Ok(Self { texts: texts.iter().map(|t| t.as_ref().to_string()).collect(), globs, set })
    }

    /// Whether `name` matches any pattern.
    pub fn is_match(&self, name: &str) -> bool {
        self.set.is_match(name)
    }

    /// The indices of the patterns `name` matches, in ascending order.
    pub fn matches(&self, name: &str) -> Vec<usize> {
        self.set.matches(name)
    }

    /// The patterns as written.
    pub fn as_slice(&self) -> &[String] {
        &self.texts
    }

    pub fn is_empty(&self) -> bool {
        self.texts.is_empty()
    }
}

impl TryFrom<Vec<String>> for Patterns {
    type Error = String;
    fn try_from(texts: Vec<String>) -> Result<Self, String> {
        Self::new(&texts)
    }
}

/// An allow list and a deny list compiled into one set, e.g. a ROS 2 source's `topics` and
/// `deny`: a name passes when it matches some allowed pattern and no denied one, decided in one
/// pass over the name.
#[derive(Debug, Clone)]
pub struct Filter {
    /// The allowed patterns first, then the denied ones.
    set: GlobSet,
    allowed: usize,
}

impl Filter {
    /// The names `allow` matches and `deny` does not.
    pub fn new(allow: &Patterns, deny: &Patterns) -> Result<Self, String> {
        let globs: Vec<Glob> = allow.globs.iter().chain(&deny.globs).cloned().collect();
        Ok(Self { set: compile(&globs)?, allowed: allow.globs.len() })
    }

    /// Whether `name` passes: the indices of the patterns it matches, ascending, are all
    /// allowed ones.
    pub fn is_match(&self, name: &str) -> bool {
        self.set.matches(name).last().is_some_and(|&last| last < self.allowed)
    }
}

fn compile(globs: &[Glob]) -> Result<GlobSet, String> {
    let mut builder = GlobSetBuilder::new();
    for glob in globs {
        builder.add(glob.clone());
    }
    builder.build().map_err(|err| format!("the patterns cannot be compiled: {err}"))
}

fn glob(text: &str) -> Result<Glob, String> {
    // globset reads `a**` as `a*`: say so instead of matching less than the pattern suggests.
    let bytes = text.as_bytes();
    let partial = text.match_indices("**").any(|(at, _)| {
        (at > 0 && bytes[at - 1] != b'/') || bytes.get(at + 2).is_some_and(|&c| c != b'/')
    });
    if partial {
        return Err(format!(
            "'{text}' is not a valid pattern: `**` must be a whole segment (`/**/`, a leading `**/` or a trailing `/**`); `*` matches within a segment"
        ));
    }
    GlobBuilder::new(text)
        .literal_separator(true)
        .build()
        .map_err(|err| format!("'{}' is not a valid pattern: {}", text, err.kind()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filter_passes_what_is_allowed_and_not_denied() {
        let allow = Patterns::new(&["/camera/**", "/tf"]).unwrap();
        let deny = Patterns::new(&["/camera/*/compressed*"]).unwrap();
        let filter = Filter::new(&allow, &deny).unwrap();
        assert!(filter.is_match("/tf"));
        assert!(filter.is_match("/camera/color/image_raw"));
        assert!(!filter.is_match("/camera/color/compressed"));
        assert!(!filter.is_match("/tf_static"));
        let nothing_denied = Filter::new(&allow, &Patterns::default()).unwrap();
        assert!(nothing_denied.is_match("/camera/color/compressed"));
    }

    fn glob_match(pattern: &str, name: &str) -> bool {
        Pattern::new(pattern).unwrap().is_match(name)
    }

    #[test]
    fn globs() {
        assert!(glob_match("/camera/color/image_raw", "/camera/color/image_raw"));
        assert!(!glob_match("/camera/color/image_raw", "/camera/color/image_raw2"));
        assert!(glob_match("/camera/*/image_raw", "/camera/depth/image_raw"));
        assert!(!glob_match("/camera/*", "/camera/depth/image_raw"));
        assert!(glob_match("/camera/**", "/camera/depth/image_raw"));
        assert!(glob_match("/**/camera_info", "/camera/depth/camera_info"));
        assert!(glob_match("/robot/**/image", "/robot/image"));
        assert!(glob_match("**", "/anything/at/all"));
        assert!(glob_match("/cam*", "/camera"));
        assert!(!glob_match("/cam*", "/camera/x"));
        assert!(glob_match("*", ""));
        assert!(glob_match("/camera/{depth,color}/*", "/camera/color/image_raw"));
        assert!(glob_match("robot-?", "robot-7"));
    }

    #[test]
    fn sets_and_errors() {
        let set = Patterns::new(&["/tf", "/camera/**", "/odom"]).unwrap();
        assert_eq!(set.matches("/camera/imu"), [1]);
        assert!(set.is_match("/tf") && !set.is_match("/tf_static"));
        assert!(Patterns::new::<&str>(&[]).unwrap().matches("/x").is_empty());
        let err = Patterns::new(&["/ok", "/camera/[depth"]).unwrap_err();
        assert!(err.starts_with("[1]: '/camera/[depth' is not a valid pattern"), "{err}");
        let err = Pattern::new("/cam**").unwrap_err();
        assert!(err.contains("'/cam**'"), "{err}");
    }

    #[test]
    fn matching_is_linear_in_the_name() {
        // A backtracking matcher takes exponential time on this; a compiled one does not.
        let pattern = Pattern::new("/**/a/**/a/**/a/**/a/**/a/**/b").unwrap();
        let name = "/a".repeat(200);
        assert!(!pattern.is_match(&name));
    }
}
