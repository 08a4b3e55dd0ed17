//! MCAP registry encoding names (`cdr`, `ros2msg`, `protobuf`, ...) and the data track
//! encodings that carry them, both ways: the one place they are mapped, at the LiveKit edge.
//! Everything inside dtbridge uses the MCAP names.

use livekit_datatrack::api::{DataTrackFrameEncoding, DataTrackSchemaEncoding};

/// Maps an MCAP registry message encoding to the data track frame encoding.
pub fn frame_encoding(name: &str) -> DataTrackFrameEncoding {
    match name {
        "ros1" => DataTrackFrameEncoding::Ros1,
        "cdr" => DataTrackFrameEncoding::Cdr,
        "protobuf" => DataTrackFrameEncoding::Protobuf,
        "flatbuffer" => DataTrackFrameEncoding::Flatbuffer,
        "cbor" => DataTrackFrameEncoding::Cbor,
        "msgpack" => DataTrackFrameEncoding::Msgpack,
        "json" => DataTrackFrameEncoding::Json,
        other => DataTrackFrameEncoding::Custom(other.into()),
    }
}

/// Maps an MCAP registry schema encoding to the data track schema encoding.
pub fn schema_encoding(name: &str) -> DataTrackSchemaEncoding {
    match name {
        "protobuf" => DataTrackSchemaEncoding::Protobuf,
        "flatbuffer" => DataTrackSchemaEncoding::Flatbuffer,
        "ros1msg" => DataTrackSchemaEncoding::Ros1Msg,
        "ros2msg" => DataTrackSchemaEncoding::Ros2Msg,
        "ros2idl" => DataTrackSchemaEncoding::Ros2Idl,
        "omgidl" => DataTrackSchemaEncoding::OmgIdl,
        "jsonschema" => DataTrackSchemaEncoding::JsonSchema,
        other => DataTrackSchemaEncoding::Custom(other.into()),
    }
}

/// The MCAP registry name of a data track frame encoding (the reverse of
/// [`frame_encoding`]); `None` for an encoding this client cannot name.
pub fn frame_encoding_name(encoding: &DataTrackFrameEncoding) -> Option<String> {
    let name = match encoding {
        DataTrackFrameEncoding::Ros1 => "ros1",
        DataTrackFrameEncoding::Cdr => "cdr",
        DataTrackFrameEncoding::Protobuf => "protobuf",
        DataTrackFrameEncoding::Flatbuffer => "flatbuffer",
        DataTrackFrameEncoding::Cbor => "cbor",
        DataTrackFrameEncoding::Msgpack => "msgpack",
        DataTrackFrameEncoding::Json => "json",
        DataTrackFrameEncoding::Custom(name) => return Some(name.clone()),
        _ => return None,
    };
    Some(name.into())
}

/// The MCAP registry name of a data track schema encoding (the reverse of
/// [`schema_encoding`]); `None` for an encoding this client cannot name.
pub fn schema_encoding_name(encoding: &DataTrackSchemaEncoding) -> Option<String> {
    let name = match encoding {
        DataTrackSchemaEncoding::Protobuf => "protobuf",
        DataTrackSchemaEncoding::Flatbuffer => "flatbuffer",
        DataTrackSchemaEncoding::Ros1Msg => "ros1msg",
        DataTrackSchemaEncoding::Ros2Msg => "ros2msg",
        DataTrackSchemaEncoding::Ros2Idl => "ros2idl",
        DataTrackSchemaEncoding::OmgIdl => "omgidl",
        DataTrackSchemaEncoding::JsonSchema => "jsonschema",
        DataTrackSchemaEncoding::Custom(name) => return Some(name.clone()),
        _ => return None,
    };
    Some(name.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mappings_round_trip() {
        for name in ["ros1", "cdr", "protobuf", "flatbuffer", "cbor", "msgpack", "json", "x+zstd"] {
            assert_eq!(frame_encoding_name(&frame_encoding(name)).as_deref(), Some(name));
        }
        for name in [
            "protobuf",
            "flatbuffer",
            "ros1msg",
            "ros2msg",
            "ros2idl",
            "omgidl",
            "jsonschema",
            "custom",
        ] {
            assert_eq!(schema_encoding_name(&schema_encoding(name)).as_deref(), Some(name));
        }
        assert_eq!(frame_encoding_name(&DataTrackFrameEncoding::Other), None);
    }
}
