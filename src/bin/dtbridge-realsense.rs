//! `dtbridge-realsense`: the camera driver of dtbridge's `realsense` sources. dtbridge starts it
//! as a child process and talks to it over stdin and stdout
//! (`dtbridge::source::realsense::protocol`); it is not meant to be run by hand.

use std::process::ExitCode;

fn main() -> ExitCode {
    dtbridge::util::reuse_large_buffers();
    dtbridge::logging::init();
    match dtbridge::source::realsense::driver::serve() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("camera driver: {err}");
            ExitCode::from(2)
        }
    }
}
