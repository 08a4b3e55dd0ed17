//! Topic name patterns, shared by routes and source filters.

/// Matches a topic against a glob: `*` matches within one `/`-separated segment, `**` across
/// segments (and `/**/` also matches a single `/`); every other character matches itself.
pub fn glob_match(pattern: &str, topic: &str) -> bool {
    fn matches(p: &[u8], t: &[u8]) -> bool {
        match p {
            [] => t.is_empty(),
            [b'*', b'*', rest @ ..] => {
                // `**/` may also stand for no segment at all.
                (rest.first() == Some(&b'/') && matches(&rest[1..], t))
                    || (0..=t.len()).any(|i| matches(rest, &t[i..]))
            }
            [b'*', rest @ ..] => {
                let segment = t.iter().position(|&c| c == b'/').unwrap_or(t.len());
                (0..=segment).any(|i| matches(rest, &t[i..]))
            }
            [c, rest @ ..] => t.first() == Some(c) && matches(rest, &t[1..]),
        }
    }
    matches(pattern.as_bytes(), topic.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::glob_match;

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
    }
}
