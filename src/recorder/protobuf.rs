//! Protobuf schemas as MCAP stores them: a binary `FileDescriptorSet` holding the message's
//! file and everything it imports, under the message's full name (the MCAP registry's
//! `protobuf` schema encoding, what Foxglove and `mcap-protobuf-support` decode with).
//!
//! A LiveKit schema definition is a string, so a publisher sends one of two things
//! (docs/wire.md): `.proto` source text, compiled here with `protox` (imports of Google's
//! well-known types resolve; other imports cannot, there is only the one file), or a
//! `FileDescriptorSet` encoded in base64 (what Foxglove's WebSocket protocol sends), stored
//! decoded.

use base64::Engine;
use prost::Message;
use prost_types::{DescriptorProto, FileDescriptorSet};
use protox::file::{ChainFileResolver, File, FileResolver, GoogleFileResolver};

/// The name the publisher's `.proto` text is compiled under (it appears in the stored set).
const SOURCE_FILE: &str = "dtbridge_schema.proto";

/// The `FileDescriptorSet` bytes for `text`, a schema named `message` (e.g. `foxglove.Pose`).
/// Errors say what is wrong, for the operator's log.
pub fn descriptor_set(message: &str, text: &str) -> Result<Vec<u8>, String> {
    let set = match decode_base64_set(text) {
        Some(set) => set,
        None => compile(text)?,
    };
    let message = message.strip_prefix('.').unwrap_or(message);
    let names = message_names(&set);
    if !names.iter().any(|name| name == message) {
        return Err(format!(
            "it defines no message '{message}' (the schema name must be a message's full name; it defines {})",
            if names.is_empty() { "none".to_string() } else { names.join(", ") }
        ));
    }
    Ok(set.encode_to_vec())
}

/// A base64 `FileDescriptorSet` with at least one named file, or `None` for anything else.
fn decode_base64_set(text: &str) -> Option<FileDescriptorSet> {
    let compact: String = text.split_ascii_whitespace().collect();
    let bytes = base64::engine::general_purpose::STANDARD.decode(compact).ok()?;
    let set = FileDescriptorSet::decode(bytes.as_slice()).ok()?;
    set.file.iter().any(|f| !f.name().is_empty()).then_some(set)
}

/// Compiles one `.proto` file given as text, with its imports, into a set.
fn compile(text: &str) -> Result<FileDescriptorSet, String> {
    struct OneFile(String);
    impl FileResolver for OneFile {
        fn open_file(&self, name: &str) -> Result<File, protox::Error> {
            if name == SOURCE_FILE {
                File::from_source(name, &self.0)
            } else {
                Err(protox::Error::file_not_found(name))
            }
        }
    }
    let mut resolver = ChainFileResolver::new();
    resolver.add(OneFile(text.to_string()));
    resolver.add(GoogleFileResolver::new());
    let mut compiler = protox::Compiler::with_file_resolver(resolver);
    compiler.include_imports(true);
    compiler.open_file(SOURCE_FILE).map_err(|err| {
        format!(
            "it is neither a base64 FileDescriptorSet nor .proto text that compiles alone (only google/protobuf imports resolve): {err}"
        )
    })?;
    Ok(compiler.file_descriptor_set())
}

/// Full names of every message the set defines, nested ones included.
fn message_names(set: &FileDescriptorSet) -> Vec<String> {
    let mut names = Vec::new();
    for file in &set.file {
        for message in &file.message_type {
            collect_names(file.package(), message, &mut names);
        }
    }
    names
}

/// Full names of `message` and the messages nested in it.
fn collect_names(scope: &str, message: &DescriptorProto, out: &mut Vec<String>) {
    let name = if scope.is_empty() {
        message.name().to_string()
    } else {
        format!("{scope}.{}", message.name())
    };
    for nested in &message.nested_type {
        collect_names(&name, nested, out);
    }
    out.push(name);
}

#[cfg(test)]
mod tests {
    use super::*;

    const POSE: &str = r#"
        syntax = "proto3";
        package robot;
        import "google/protobuf/timestamp.proto";
        message Pose {
          google.protobuf.Timestamp stamp = 1;
          double x = 2;
          message Covariance { repeated double values = 1; }
          Covariance covariance = 3;
        }
    "#;

    fn decoded(bytes: &[u8]) -> FileDescriptorSet {
        FileDescriptorSet::decode(bytes).expect("a FileDescriptorSet")
    }

    #[test]
    fn proto_text_compiles_with_its_well_known_imports() {
        let set = decoded(&descriptor_set("robot.Pose", POSE).unwrap());
        let files: Vec<&str> = set.file.iter().map(|f| f.name()).collect();
        assert!(files.contains(&SOURCE_FILE) && files.contains(&"google/protobuf/timestamp.proto"));
        // Nested messages and a leading dot are names too.
        assert!(descriptor_set(".robot.Pose.Covariance", POSE).is_ok());
    }

    #[test]
    fn a_base64_set_is_stored_decoded() {
        let bytes = descriptor_set("robot.Pose", POSE).unwrap();
        let text = base64::engine::general_purpose::STANDARD.encode(&bytes);
        assert_eq!(descriptor_set("robot.Pose", &text).unwrap(), bytes);
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let wrong_name = descriptor_set("robot.Twist", POSE).unwrap_err();
        assert!(wrong_name.contains("no message 'robot.Twist'"), "{wrong_name}");
        assert!(wrong_name.contains("robot.Pose, ") || wrong_name.contains("robot.Pose"));
        let broken = descriptor_set("robot.Pose", "message Pose { double x = }").unwrap_err();
        assert!(broken.contains(".proto text"), "{broken}");
        let import =
            descriptor_set("a.B", "syntax = \"proto3\";\nimport \"other.proto\";\n").unwrap_err();
        assert!(import.contains("other.proto"), "{import}");
    }
}
