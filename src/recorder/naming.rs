//! Topic and file names: templates and sanitizing, so that a hostile track name (`..`, `/`,
//! NUL, 256 characters) gives a harmless topic and can never put a file outside the output
//! directory.

use std::time::{SystemTime, UNIX_EPOCH};

/// Topics are at most this many characters after sanitizing.
pub const MAX_TOPIC_CHARS: usize = 256;
/// File names are cut to this many bytes before the collision suffix and `.mcap`.
const MAX_FILE_STEM_BYTES: usize = 200;
/// The extension of every recording.
pub const EXTENSION: &str = ".mcap";

/// A template: literal text and `{name}` placeholders.
#[derive(Debug, Clone)]
pub(crate) struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone)]
enum Part {
    Literal(String),
    Field(&'static str),
}

impl Template {
    /// Parses `text`, accepting only the placeholders in `allowed`.
    pub fn parse(text: &str, allowed: &[&'static str]) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Literal(rest[..open].to_string()));
            }
            let after = &rest[open + 1..];
            let close = after.find('}').ok_or_else(|| format!("unclosed '{{' in '{text}'"))?;
            let name = &after[..close];
            let field = allowed.iter().find(|a| **a == name).ok_or_else(|| {
                let list: Vec<String> = allowed.iter().map(|a| format!("{{{a}}}")).collect();
                format!("unknown placeholder '{{{name}}}' in '{text}' (known: {})", list.join(", "))
            })?;
            parts.push(Part::Field(field));
            rest = &after[close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_string()));
        }
        Ok(Self { parts })
    }

    /// Whether the template uses placeholder `name`.
    pub fn uses(&self, name: &str) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Field(f) if *f == name))
    }

    /// The text with each placeholder replaced by `value(name)`.
    pub fn render(&self, value: impl Fn(&str) -> String) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Field(name) => out.push_str(&value(name)),
            }
        }
        out
    }
}

/// A topic in ROS-like form: `/` separates segments, empty segments are dropped, `.` and
/// `..` segments become `_`, control characters (NUL included) become `_`, at most
/// [`MAX_TOPIC_CHARS`] characters, never empty. A leading `/` is kept.
/// The topic of a track of `meta.publisher` under `template`, prefixed with `/<publisher>`
/// when another publisher has a track of the same name (`shared`) and the template does not
/// name the publisher; and whether sanitizing changed it. Every sink of the operator (the
/// recorder, the live view) names its channels with it.
pub fn track_topic(template: &Template, meta: &super::TrackMeta, shared: bool) -> (String, bool) {
    let publisher = topic_segment(&meta.publisher);
    let mut raw = template.render(|field| match field {
        "track" => meta.track.clone(),
        "publisher" => publisher.clone(),
        _ => String::new(),
    });
    if shared && !template.uses("publisher") {
        let sep = if raw.starts_with('/') { "" } else { "/" };
        raw = format!("/{publisher}{sep}{raw}");
    }
    let topic = sanitize_topic(&raw);
    let renamed = topic != raw;
    (topic, renamed)
}

pub fn sanitize_topic(raw: &str) -> String {
    let cleaned: String = raw.chars().map(|c| if c.is_control() { '_' } else { c }).collect();
    let segments: Vec<&str> = cleaned
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| if s == "." || s == ".." { "_" } else { s })
        .collect();
    let lead = if cleaned.starts_with('/') { "/" } else { "" };
    let joined = format!("{lead}{}", segments.join("/"));
    let mut topic = truncate_chars(&joined, MAX_TOPIC_CHARS).trim_end_matches('/').to_string();
    if topic.is_empty() || topic == "/" {
        topic = format!("{lead}_");
    }
    topic
}

/// `topic` with `suffix` appended, cut so that the result stays within [`MAX_TOPIC_CHARS`].
pub fn topic_with_suffix(topic: &str, suffix: &str) -> String {
    let keep = MAX_TOPIC_CHARS.saturating_sub(suffix.chars().count());
    format!("{}{suffix}", truncate_chars(topic, keep))
}

/// One segment of a topic made from an identity: no `/`.
pub fn topic_segment(value: &str) -> String {
    value.replace('/', "_")
}

/// A file name made from a rendered template: characters other than letters, digits and
/// `-_.+=@,` become `_`, runs of dots become `_`, no leading dot, at most
/// [`MAX_FILE_STEM_BYTES`] bytes before the `.mcap` extension (added when missing). The result
/// is one plain path component.
pub fn sanitize_file_name(raw: &str) -> String {
    let stem = raw.strip_suffix(EXTENSION).unwrap_or(raw);
    let mut out = String::with_capacity(stem.len());
    let mut chars = stem.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '.' {
            let mut run = 1;
            while chars.peek() == Some(&'.') {
                chars.next();
                run += 1;
            }
            out.push(if run > 1 || out.is_empty() { '_' } else { '.' });
        } else if c.is_alphanumeric() || "-_+=@,".contains(c) {
            out.push(c);
        } else {
            out.push('_');
        }
    }
    let mut stem = truncate_bytes(&out, MAX_FILE_STEM_BYTES).to_string();
    if stem.ends_with('.') {
        // `a.` + `.mcap` would contain `..`.
        stem.pop();
        stem.push('_');
    }
    if stem.is_empty() {
        stem = "recording".into();
    }
    format!("{stem}{EXTENSION}")
}

/// `name` (from [`sanitize_file_name`]) with `-n` before the extension.
pub fn numbered_file_name(name: &str, n: u32) -> String {
    let stem = name.strip_suffix(EXTENSION).unwrap_or(name);
    format!("{stem}-{n}{EXTENSION}")
}

/// UTC `YYYYMMDD-HHMMSS` of `time` (the epoch for times before it).
pub fn utc_stamp(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}{m:02}{d:02}-{:02}{:02}{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn truncate_chars(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((at, _)) => &s[..at],
        None => s,
    }
}

fn truncate_bytes(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut at = max;
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    &s[..at]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Component, Path};
    use std::time::Duration;

    #[test]
    fn topics() {
        assert_eq!(sanitize_topic("/camera/color/image_raw"), "/camera/color/image_raw");
        assert_eq!(sanitize_topic("chatter"), "chatter");
        assert_eq!(sanitize_topic("/a/../../etc//passwd/"), "/a/_/_/etc/passwd");
        assert_eq!(sanitize_topic("a\0b\nc"), "a_b_c");
        assert_eq!(sanitize_topic(""), "_");
        assert_eq!(sanitize_topic("/"), "/_");
        assert_eq!(sanitize_topic(".."), "_");
        let long = format!("/{}", "é".repeat(300));
        assert_eq!(sanitize_topic(&long).chars().count(), MAX_TOPIC_CHARS);
        assert_eq!(topic_with_suffix(&sanitize_topic(&long), "_2").chars().count(), 256);
    }

    #[test]
    fn file_names_stay_one_component() {
        for raw in
            ["../../x", "/etc/passwd", "a/b\\c", "..", ".hidden", "x\0y", "", "a..b.mcap", "a."]
        {
            let name = sanitize_file_name(raw);
            assert!(name.ends_with(".mcap"), "{name}");
            assert!(!name.contains(".."), "{name}");
            assert!(!name.starts_with('.'), "{name}");
            let parts: Vec<_> = Path::new(&name).components().collect();
            assert!(matches!(parts.as_slice(), [Component::Normal(_)]), "{raw:?} -> {name}");
        }
        assert_eq!(sanitize_file_name("20240101_lab_op_0.mcap"), "20240101_lab_op_0.mcap");
        assert_eq!(sanitize_file_name("a..b.mcap"), "a_b.mcap");
        assert!(sanitize_file_name(&"x".repeat(1000)).len() <= 255);
        assert_eq!(numbered_file_name("a_0.mcap", 2), "a_0-2.mcap");
    }

    #[test]
    fn templates() {
        let t = Template::parse("{date}_{room}.mcap", &["date", "room"]).unwrap();
        assert!(t.uses("room") && !t.uses("index"));
        assert_eq!(t.render(|f| f.to_uppercase()), "DATE_ROOM.mcap");
        assert!(Template::parse("{nope}", &["date"]).unwrap_err().contains("{nope}"));
        assert!(Template::parse("{date", &["date"]).is_err());
    }

    #[test]
    fn utc_stamps() {
        assert_eq!(utc_stamp(UNIX_EPOCH), "19700101-000000");
        let t = UNIX_EPOCH + Duration::from_secs(1_709_210_096); // 2024-02-29 12:34:56 UTC
        assert_eq!(utc_stamp(t), "20240229-123456");
        let t = UNIX_EPOCH + Duration::from_secs(4_102_444_799); // 2099-12-31 23:59:59 UTC
        assert_eq!(utc_stamp(t), "20991231-235959");
    }
}
