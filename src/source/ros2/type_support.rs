//! Message type supports loaded at run time, as rosbag2 and `ros2 topic echo` load them. rcl
//! needs a type's type support to subscribe even to serialized bytes, and r2r has only those of
//! the packages it generated when dtbridge was built. Loading the type support from the type's
//! `lib<package>__rosidl_typesupport_c.so` in the ament index instead means that any message
//! package installed and sourced where dtbridge runs (a team's own, or one installed after
//! dtbridge was built) is bridged without rebuilding dtbridge.

use super::definition::{AmentIndex, type_parts};
use libloading::Library;
use r2r::rosidl_message_type_support_t;
use std::collections::HashMap;
use std::path::Path;

/// The signature rosidl_typesupport_c generates for each message type's accessor.
type GetTypeSupport = unsafe extern "C" fn() -> *const rosidl_message_type_support_t;

/// Type support libraries, loaded once per package and never unloaded: rcl keeps pointers
/// into them for as long as a subscription lives, which may be the whole run.
pub struct TypeSupports {
    index: AmentIndex,
    libraries: HashMap<String, &'static Library>,
}

impl TypeSupports {
    /// Type supports found through `index`.
    pub fn new(index: AmentIndex) -> TypeSupports {
        TypeSupports { index, libraries: HashMap::new() }
    }

    /// The type support of `type_name` (`pkg/msg/Type`).
    pub fn get(
        &mut self,
        type_name: &str,
    ) -> Result<&'static rosidl_message_type_support_t, String> {
        let (package, kind, name) = type_parts(type_name)?;
        let library = self.library(package)?;
        let symbol = format!(
            "rosidl_typesupport_c__get_message_type_support_handle__{package}__{kind}__{name}"
        );
        // SAFETY: rosidl_typesupport_c generates this symbol as a function of no arguments that
        // returns a pointer to a static of its library, and the library is never unloaded.
        let type_support = unsafe {
            let get = library.get::<GetTypeSupport>(symbol.as_bytes()).map_err(|_| {
                format!(
                    "lib{package}__rosidl_typesupport_c.so has no {symbol}: is {package} the version the publisher uses?"
                )
            })?;
            get().as_ref()
        };
        type_support.ok_or_else(|| format!("{symbol} returned no type support"))
    }

    /// The type support library of `package`, loaded on first use.
    fn library(&mut self, package: &str) -> Result<&'static Library, String> {
        if let Some(library) = self.libraries.get(package) {
            return Ok(library);
        }
        let path = self
            .index
            .find(&Path::new("lib").join(format!("lib{package}__rosidl_typesupport_c.so")))?;
        // SAFETY: a type support library's initialisers only register its types with the
        // rosidl runtime, which is what loading it is for (rosbag2 loads them alike).
        let library = unsafe { Library::new(&path) }
            .map_err(|err| format!("cannot load {}: {err}", path.display()))?;
        let library: &'static Library = Box::leak(Box::new(library));
        self.libraries.insert(package.to_string(), library);
        Ok(library)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Needs scripts/ros2-env.sh's environment: the wheels' prefix has sensor_msgs and
    /// rosgraph_msgs, which its IDL_PACKAGE_FILTER leaves out of what r2r generates.
    #[test]
    fn loads_type_supports_from_the_ament_index() {
        let mut supports = TypeSupports::new(AmentIndex::from_env());
        for type_name in ["sensor_msgs/msg/Imu", "rosgraph_msgs/msg/Clock"] {
            let found = supports.get(type_name);
            assert!(
                found.is_ok(),
                "{type_name}: {:?} (run with scripts/ros2-env.sh sourced)",
                found.err()
            );
        }
        let again = supports.get("sensor_msgs/msg/Image").unwrap();
        assert!(std::ptr::eq(again, supports.get("sensor_msgs/msg/Image").unwrap()));
        let err = supports.get("sensor_msgs/msg/NoSuchType").err().unwrap();
        assert!(err.contains("has no rosidl_typesupport_c__get_message_type_support_handle__sensor_msgs__msg__NoSuchType"), "{err}");
    }

    #[test]
    fn names_the_missing_library() {
        let index = AmentIndex::new(vec!["/nonexistent".into()]);
        let err = TypeSupports::new(index).get("my_msgs/msg/Thing").err().unwrap();
        assert!(
            err.contains("no lib/libmy_msgs__rosidl_typesupport_c.so under AMENT_PREFIX_PATH"),
            "{err}"
        );
    }
}
