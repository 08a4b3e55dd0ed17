//! Text from the network made safe to print: names of remote tracks and participants end up
//! in terminals and log files, where a control character could forge a log line (a newline),
//! retitle the terminal or recolour it (escape sequences), or cut the line short (NUL).

use std::borrow::Cow;

/// `text` with every control character escaped as Rust escapes it (`\n`, `\u{1b}`, ...);
/// unchanged, and not copied, when it has none.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            escaped.extend(c.escape_default());
        } else {
            escaped.push(c);
        }
    }
    Cow::Owned(escaped)
}

/// For serde's "unknown field `x`, expected one of `a`, `b`", adds the closest known field.
pub(crate) fn with_suggestion(message: &str) -> String {
    let Some(rest) = message.strip_prefix("unknown field `") else {
        return message.to_string();
    };
    let Some((unknown, expected)) = rest.split_once('`') else {
        return message.to_string();
    };
    match closest(unknown, expected.split('`').skip(1).step_by(2)) {
        Some(known) => format!("{message} (did you mean `{known}`?)"),
        None => message.to_string(),
    }
}

/// The candidate most like `word`, if any is close enough to be a likely typo.
pub(crate) fn closest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|known| (strsim::jaro_winkler(word, known), known))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .filter(|(score, _)| *score > 0.8)
        .map(|(_, known)| known)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_stay_as_they_are() {
        for name in ["/camera/imu", "robot-7", "Kamera/Tiefe", "カメラ", "a b\\c\"d"] {
            assert!(matches!(printable(name), Cow::Borrowed(same) if same == name));
        }
    }

    #[test]
    fn control_characters_are_escaped() {
        let hostile = "imu\u{1b}]0;pwned\u{7}\nINFO forged\r\0end";
        let shown = printable(hostile);
        assert_eq!(shown, "imu\\u{1b}]0;pwned\\u{7}\\nINFO forged\\r\\u{0}end");
        assert!(!shown.chars().any(char::is_control));
    }
}
