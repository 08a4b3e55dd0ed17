//! Message definition texts from the ament index, in the `ros2msg` format rosbag2 writes to
//! MCAP (rosbag2_cpp's `LocalMessageDefinitionSource`): the type's `.msg` text, then for each
//! type it uses, depth first and each once, a line of 80 `=`, a line `MSG: pkg/Type`, and that
//! type's text. r2r has no API for definitions, and the operator needs the text to decode.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The `.msg` field types that are not messages.
const PRIMITIVE_TYPES: [&str; 14] = [
    "bool", "byte", "char", "float32", "float64", "int8", "uint8", "int16", "uint16", "int32",
    "uint32", "int64", "uint64", "string",
];

/// How deep nested types may go before the definition is taken to be cyclic.
const MAX_DEPTH: usize = 50;

/// The ament index: the prefixes in `AMENT_PREFIX_PATH`.
#[derive(Debug, Clone)]
pub struct AmentIndex {
    prefixes: Vec<PathBuf>,
}

impl AmentIndex {
    /// The index of `prefixes`, searched in order.
    pub fn new(prefixes: Vec<PathBuf>) -> AmentIndex {
        AmentIndex { prefixes }
    }

    /// The index of this process's environment.
    pub fn from_env() -> AmentIndex {
        let value = std::env::var_os("AMENT_PREFIX_PATH").unwrap_or_default();
        AmentIndex::new(std::env::split_paths(&value).collect())
    }

    /// The full definition of `type_name` (`pkg/msg/Type`).
    pub fn definition(&self, type_name: &str) -> Result<String, String> {
        let mut seen = BTreeSet::new();
        self.append(type_name, &mut seen, MAX_DEPTH)
    }

    fn append(
        &self,
        type_name: &str,
        seen: &mut BTreeSet<String>,
        depth: usize,
    ) -> Result<String, String> {
        if depth == 0 {
            return Err(format!("{type_name}: nested more than {MAX_DEPTH} deep (a cycle?)"));
        }
        let (package, text) = self.msg_text(type_name)?;
        let mut result = text.clone();
        for dependency in dependencies(&text, &package) {
            if seen.insert(dependency.clone()) {
                let nested = self.append(&dependency, seen, depth - 1)?;
                result.push_str(&format!("\n{}\nMSG: {dependency}\n{nested}", "=".repeat(80)));
            }
        }
        Ok(result)
    }

    /// The package and `.msg` text of `pkg/msg/Type` or `pkg/Type`.
    fn msg_text(&self, type_name: &str) -> Result<(String, String), String> {
        let (package, kind, name) = type_parts(type_name)?;
        let relative = PathBuf::from("share").join(package).join(kind).join(format!("{name}.msg"));
        let path = self.find(&relative)?;
        let text = std::fs::read_to_string(&path)
            .map_err(|err| format!("reading {}: {err}", path.display()))?;
        Ok((package.to_string(), text))
    }

    /// The first `<prefix>/<relative>` that exists, in `AMENT_PREFIX_PATH` order.
    pub fn find(&self, relative: &Path) -> Result<PathBuf, String> {
        self.prefixes.iter().map(|prefix| prefix.join(relative)).find(|path| path.exists()).ok_or_else(
            || {
                format!(
                    "no {} under AMENT_PREFIX_PATH ({}): is the package installed and its workspace (or ROS 2) sourced?",
                    relative.display(),
                    std::env::join_paths(&self.prefixes)
                        .map(|p| crate::text::printable(&p.to_string_lossy()).into_owned())
                        .unwrap_or_default()
                )
            },
        )
    }
}

/// The package, kind (`msg`) and name of a type name `pkg/msg/Type` (or `pkg/Type`). Type names
/// come from the ROS graph, that is from any node on the network, and become paths and symbol
/// names: only ROS name characters are accepted.
pub fn type_parts(type_name: &str) -> Result<(&str, &str, &str), String> {
    let parts: Vec<&str> = type_name.split('/').collect();
    let (package, kind, name) = match parts[..] {
        [package, name] => (package, "msg", name),
        [package, kind, name] => (package, kind, name),
        _ => ("", "", ""),
    };
    let is_token = |part: &str| {
        !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    if [package, kind, name].into_iter().all(is_token) {
        Ok((package, kind, name))
    } else {
        Err(format!(
            "'{}' is not a ROS message type name (pkg/msg/Type)",
            crate::text::printable(type_name)
        ))
    }
}

/// The message types a `.msg` text uses, as `pkg/Type`, sorted (rosbag2 keeps them in a set).
fn dependencies(text: &str, package: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|line| {
            // A field line: optional indentation, the type (with an optional array suffix),
            // whitespace, then the name; comments and blank lines have no such type token.
            let line = line.trim_start();
            let end = line.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '/'))?;
            let (ty, rest) = line.split_at(end);
            let rest = match rest.strip_prefix('[') {
                Some(after) => &after[after.find(']')? + 1..],
                None => rest,
            };
            let is_field = !ty.is_empty() && rest.starts_with(char::is_whitespace);
            (is_field && !PRIMITIVE_TYPES.contains(&ty))
                .then(|| if ty.contains('/') { ty.to_string() } else { format!("{package}/{ty}") })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::RosMessage;
    use crate::codec::ros::{CameraInfo, Image, Imu};

    #[test]
    fn finds_dependencies_like_rosbag2() {
        let text = "# a comment with std_msgs/Header in it\nstd_msgs/Header header\n\
                    uint32 height\nstring<=8 bounded\nPoint32[] points\nfloat64[9] k\n\
                    builtin_interfaces/Time[<=3] stamps\nuint8 CONSTANT=3\n";
        let found: Vec<String> = dependencies(text, "geometry_msgs").into_iter().collect();
        assert_eq!(found, ["builtin_interfaces/Time", "geometry_msgs/Point32", "std_msgs/Header"]);
    }

    /// The codec's definitions were checked against rosbag2's algorithm run by rclpy
    /// (tests/codec.rs); the index must assemble the same texts.
    #[test]
    fn assembles_the_codec_definitions_from_the_ament_index() {
        let index = AmentIndex::from_env();
        for (name, expected) in [
            (Image::TYPE_NAME, Image::DEFINITION),
            (CameraInfo::TYPE_NAME, CameraInfo::DEFINITION),
            (Imu::TYPE_NAME, Imu::DEFINITION),
        ] {
            let definition = index
                .definition(name)
                .unwrap_or_else(|err| panic!("{err} (run with scripts/ros2-env.sh sourced)"));
            assert_eq!(definition, expected, "{name}");
        }
    }

    #[test]
    fn takes_only_ros_names_as_type_names() {
        assert_eq!(type_parts("tf2_msgs/msg/TFMessage"), Ok(("tf2_msgs", "msg", "TFMessage")));
        assert_eq!(type_parts("std_msgs/String"), Ok(("std_msgs", "msg", "String")));
        for bad in ["../../lib/evil", "a/msg/b/c", "pkg//T", "pkg/msg/T.so", "pkg", "p\x1b/msg/T"] {
            let err = type_parts(bad).unwrap_err();
            assert!(err.contains("not a ROS message type name"), "{bad}: {err}");
        }
    }

    #[test]
    fn names_the_missing_file() {
        let index = AmentIndex::new(vec![PathBuf::from("/nonexistent")]);
        let err = index.definition("my_msgs/msg/Thing").unwrap_err();
        assert!(err.contains("share/my_msgs/msg/Thing.msg"), "{err}");
    }
}
