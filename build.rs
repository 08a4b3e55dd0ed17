//! With the PyPI ROS 2 wheels (scripts/ros2-env.sh), librcl loads the Python message
//! libraries, which need libpython in the process; that script names the library in
//! DTBRIDGE_LINK_LIBPYTHON. A ROS 2 installed from its own packages needs nothing here.

fn main() {
    println!("cargo:rerun-if-env-changed=DTBRIDGE_LINK_LIBPYTHON");
    if std::env::var_os("CARGO_FEATURE_ROS2").is_none() {
        return;
    }
    if let Ok(library) = std::env::var("DTBRIDGE_LINK_LIBPYTHON")
        && !library.is_empty()
    {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-l:{library},--as-needed");
    }
}
