//! The `ros2` source: live ROS 2 topics through an `r2r` node. Topics are found by polling the
//! graph, so a topic that appears while running is picked up; each is subscribed with QoS that
//! matches its publishers (or the route's `qos`), and its serialized CDR bytes are passed on
//! untouched. Only in builds with the `ros2` feature (r2r links the ROS 2 libraries).

mod definition;
mod node;
mod type_support;

use crate::topic::{Filter, Patterns};
use serde::Deserialize;

/// `[[sources]] type = "ros2"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ros2Config {
    /// Source name.
    pub name: String,
    /// The bridge's ROS node name.
    #[serde(default = "default_node_name")]
    pub node_name: String,
    /// The node's namespace.
    #[serde(default)]
    pub namespace: String,
    /// DDS domain; `ROS_DOMAIN_ID` (or 0) when unset.
    pub domain_id: Option<u32>,
    /// Topics to bridge: exact names or globs (`*` within a name segment, `**` across).
    #[serde(default = "default_topics")]
    pub topics: Patterns,
    /// Topics never bridged, even when `topics` matches them.
    #[serde(default)]
    pub deny: Patterns,
    /// How often the ROS graph is polled for new and vanished topics.
    #[serde(default = "default_discovery_interval_s")]
    pub discovery_interval_s: f64,
    /// How often the kept messages of transient-local ("latched") topics are sent again, so
    /// that an operator joining later gets them; 0 turns it off.
    #[serde(default = "default_latched_resend_s")]
    pub latched_resend_s: f64,
    /// How many of the last distinct messages of a latched topic are kept and re-sent.
    #[serde(default = "default_latched_depth")]
    pub latched_depth: usize,
}

fn default_node_name() -> String {
    "dtbridge".into()
}
fn default_topics() -> Patterns {
    Patterns::new(&["/**"]).expect("a valid pattern")
}
fn default_discovery_interval_s() -> f64 {
    1.0
}
fn default_latched_resend_s() -> f64 {
    5.0
}
fn default_latched_depth() -> usize {
    10
}

/// ROS domain ids a node can join (RTPS port arithmetic caps them).
const MAX_DOMAIN_ID: u32 = 232;

impl Ros2Config {
    /// Checks the values serde cannot, naming the key relative to this source's table.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let bad = |key: &str, message: String| Err((key.to_string(), message));
        if !is_ros_name(&self.node_name, false) {
            return bad(
                "node_name",
                format!(
                    "'{}' is not a ROS node name (letters, digits and '_', not starting with a digit)",
                    self.node_name
                ),
            );
        }
        if !self.namespace.is_empty() && !is_ros_name(&self.namespace, true) {
            return bad(
                "namespace",
                format!("'{}' is not a ROS namespace (e.g. \"/robot1\")", self.namespace),
            );
        }
        if let Some(id) = self.domain_id
            && id > MAX_DOMAIN_ID
        {
            return bad("domain_id", format!("{id} is not 0..={MAX_DOMAIN_ID}"));
        }
        if self.topics.is_empty() {
            return bad(
                "topics",
                "empty: list topic names or globs, e.g. [\"/tf\", \"/camera/**\"]".into(),
            );
        }
        for (key, patterns) in [("topics", &self.topics), ("deny", &self.deny)] {
            if let Some((i, pattern)) =
                patterns.as_slice().iter().enumerate().find(|(_, p)| !p.starts_with('/'))
            {
                return bad(
                    &format!("{key}[{i}]"),
                    format!(
                        "'{pattern}' does not start with '/': ROS topic names are absolute here"
                    ),
                );
            }
        }
        if let Err(why) = self.filter() {
            return bad("deny", why);
        }
        if !(self.discovery_interval_s.is_finite()
            && (0.05..=60.0).contains(&self.discovery_interval_s))
        {
            return bad(
                "discovery_interval_s",
                format!("{} is not in [0.05, 60]", self.discovery_interval_s),
            );
        }
        if let Err(why) = crate::duration::seconds(self.latched_resend_s) {
            return bad("latched_resend_s", why);
        }
        if self.latched_depth == 0 {
            return bad("latched_depth", "must be at least 1".into());
        }
        Ok(())
    }

    /// The topics to bridge: those some `topics` pattern matches and no `deny` one does.
    pub fn filter(&self) -> Result<Filter, String> {
        Filter::new(&self.topics, &self.deny)
    }
}

/// Whether `name` is a valid ROS node name, or with `namespace`, an absolute namespace.
fn is_ros_name(name: &str, namespace: bool) -> bool {
    let token = |t: &str| {
        !t.is_empty()
            && !t.starts_with(|c: char| c.is_ascii_digit())
            && t.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    match (namespace, name.strip_prefix('/')) {
        (true, Some(rest)) => rest.split('/').all(token),
        (true, None) => false,
        (false, _) => token(name),
    }
}

pub use node::Ros2Source;

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Ros2Config {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn allow_and_deny_patterns() {
        let c = config(
            "name = \"ros\"\ntopics = [\"/camera/**\", \"/tf\"]\ndeny = [\"/camera/*/compressed*\"]",
        );
        let filter = c.filter().unwrap();
        assert!(filter.is_match("/tf"));
        assert!(filter.is_match("/camera/color/image_raw"));
        assert!(!filter.is_match("/camera/color/compressed"));
        assert!(!filter.is_match("/tf_static"));
        assert!(c.validate().is_ok());
    }

    #[test]
    fn rejects_bad_names_with_their_key() {
        let key = |toml: &str| config(toml).validate().unwrap_err().0;
        assert_eq!(key("name = \"r\"\nnode_name = \"9lives\""), "node_name");
        assert_eq!(key("name = \"r\"\nnamespace = \"robot\""), "namespace");
        assert_eq!(key("name = \"r\"\ndomain_id = 300"), "domain_id");
        assert_eq!(key("name = \"r\"\ntopics = [\"/a\", \"b\"]"), "topics[1]");
        assert_eq!(key("name = \"r\"\nlatched_depth = 0"), "latched_depth");
        assert!(config("name = \"r\"\nnamespace = \"/robot_1/arm\"").validate().is_ok());
    }
}
