//! librealsense's pipeline through its C API (`realsense-sys`). realsense-rust 1.3 starts a
//! pipeline without exposing the device it resolves to, and a recording needs that device
//! between resolving and starting:
//! - it must be switched to non-real-time playback there: playback runs from the moment the
//!   pipeline starts, and frames read before a later switch are dropped or, after a seek
//!   back, delivered twice;
//! - it must be paused there and resumed once the pipeline has started: playback starts
//!   reading when the first of the recording's sensors starts and drops the frames of
//!   sensors not started yet, which under load were the first frames of the color stream.
//!
//! For the same reason a looping recording is played again by starting a new pipeline,
//! not by librealsense's repeat option, which restarts the sensors one by one. Frames leave
//! as realsense-rust types.

use realsense_rust::frame::CompositeFrame;
use realsense_rust::kind::{Rs2Format, Rs2StreamKind};
use realsense_sys as sys;
use std::ffi::{CStr, CString};
use std::path::Path;
use std::ptr::NonNull;
use std::time::Duration;

/// Where the frames come from.
pub(super) enum Origin<'a> {
    /// The connected camera with this serial number.
    Camera { serial: &'a str },
    /// A recording, played once at its recorded pace (`realtime`) or as fast as it is read.
    Recording { file: &'a Path, realtime: bool },
}

/// One stream to enable; 0 for a size or rate leaves the choice to librealsense.
pub(super) struct StreamRequest {
    pub kind: Rs2StreamKind,
    pub width: u32,
    pub height: u32,
    pub format: Rs2Format,
    pub fps: u32,
}

/// A started pipeline; stopped and freed when dropped.
pub(super) struct Pipeline {
    context: NonNull<sys::rs2_context>,
    pipeline: Option<NonNull<sys::rs2_pipeline>>,
    config: Option<NonNull<sys::rs2_config>>,
    resolved: Option<NonNull<sys::rs2_pipeline_profile>>,
    started: Option<NonNull<sys::rs2_pipeline_profile>>,
    /// The playback device of a recording.
    playback: Option<Device>,
}

// SAFETY: librealsense handles may be used from any thread, one at a time; `Pipeline` is
// only ever used by the thread that owns it.
unsafe impl Send for Pipeline {}

impl Pipeline {
    /// Resolves and starts `streams` from `origin`.
    pub(super) fn start(origin: &Origin, streams: &[StreamRequest]) -> Result<Pipeline, String> {
        let api = sys::RS2_API_VERSION as i32;
        // SAFETY: every handle is checked for errors and null before use and owned by `this`,
        // whose Drop frees it; strings outlive the calls that read them.
        unsafe {
            let context =
                handle("create a librealsense context", |err| sys::rs2_create_context(api, err))?;
            let mut this = Pipeline {
                context,
                pipeline: None,
                config: None,
                resolved: None,
                started: None,
                playback: None,
            };
            let pipeline =
                handle("create a pipeline", |err| sys::rs2_create_pipeline(context.as_ptr(), err))?;
            this.pipeline = Some(pipeline);
            let config = handle("create a pipeline config", |err| sys::rs2_create_config(err))?;
            this.config = Some(config);
            match origin {
                Origin::Camera { serial } => {
                    let serial = CString::new(*serial).map_err(|e| e.to_string())?;
                    call("select the camera", |err| {
                        sys::rs2_config_enable_device(config.as_ptr(), serial.as_ptr(), err)
                    })?;
                }
                Origin::Recording { file, .. } => {
                    let path = CString::new(file.as_os_str().as_encoded_bytes())
                        .map_err(|e| e.to_string())?;
                    call("open the recording", |err| {
                        sys::rs2_config_enable_device_from_file_repeat_option(
                            config.as_ptr(),
                            path.as_ptr(),
                            0,
                            err,
                        )
                    })?;
                }
            }
            for s in streams {
                call(&format!("enable {:?}", s.kind), |err| {
                    sys::rs2_config_enable_stream(
                        config.as_ptr(),
                        s.kind as sys::rs2_stream,
                        -1,
                        s.width as i32,
                        s.height as i32,
                        s.format as sys::rs2_format,
                        s.fps as i32,
                        err,
                    )
                })?;
            }
            // The pipeline starts on the device resolved here, so a playback setting made on
            // it holds from the first frame.
            let resolved = handle("find the streams", |err| {
                sys::rs2_config_resolve(config.as_ptr(), pipeline.as_ptr(), err)
            })?;
            this.resolved = Some(resolved);
            if let Origin::Recording { realtime, .. } = origin {
                let device = Device::of(resolved)?;
                call("set the playback pace", |err| {
                    sys::rs2_playback_device_set_real_time(
                        device.0.as_ptr(),
                        i32::from(*realtime),
                        err,
                    )
                })?;
                call("pause the playback", |err| {
                    sys::rs2_playback_device_pause(device.0.as_ptr(), err)
                })?;
                this.playback = Some(device);
            }
            let started = handle("start streaming", |err| {
                sys::rs2_pipeline_start_with_config(pipeline.as_ptr(), config.as_ptr(), err)
            })?;
            this.started = Some(started);
            if let Some(device) = &this.playback {
                // Resuming plays from the start of the recording.
                call("start the playback", |err| {
                    sys::rs2_playback_device_resume(device.0.as_ptr(), err)
                })?;
            }
            Ok(this)
        }
    }

    /// The next set of frames, or `None` when none came within `timeout`.
    pub(super) fn wait(&mut self, timeout: Duration) -> Result<Option<CompositeFrame>, String> {
        let Some(pipeline) = self.pipeline else { return Err("not started".into()) };
        let timeout_ms = timeout.as_millis().min(u32::MAX as u128) as u32;
        let mut frame = std::ptr::null_mut();
        // SAFETY: the pipeline is started; a returned frame is owned by the CompositeFrame.
        unsafe {
            let got = call("wait for frames", |err| {
                sys::rs2_pipeline_try_wait_for_frames(
                    pipeline.as_ptr(),
                    &mut frame,
                    timeout_ms,
                    err,
                )
            })?;
            Ok(NonNull::new(frame).filter(|_| got != 0).map(CompositeFrame::from))
        }
    }

    /// Whether a recording has played to its end (never for a camera).
    pub(super) fn finished(&self) -> Result<bool, String> {
        let Some(device) = &self.playback else { return Ok(false) };
        // SAFETY: the device handle lives as long as `self`.
        let status = unsafe {
            call("read the playback status", |err| {
                sys::rs2_playback_device_get_current_status(device.0.as_ptr(), err)
            })?
        };
        Ok(status == sys::rs2_playback_status_RS2_PLAYBACK_STATUS_STOPPED)
    }

    /// "<name> (serial <serial>)" of the device streaming, for messages.
    pub(super) fn device_name(&self) -> String {
        let Some(profile) = self.started else { return "the camera".into() };
        // SAFETY: the device handle lives until `device` drops; info strings are copied.
        unsafe {
            let Ok(device) = Device::of(profile) else { return "the camera".into() };
            let info = |kind: sys::rs2_camera_info| {
                let supported =
                    call("", |err| sys::rs2_supports_device_info(device.0.as_ptr(), kind, err));
                if supported != Ok(1) {
                    return None;
                }
                let text = call("", |err| sys::rs2_get_device_info(device.0.as_ptr(), kind, err));
                text.ok().filter(|t| !t.is_null()).map(|t| CStr::from_ptr(t).to_string_lossy())
            };
            match (
                info(sys::rs2_camera_info_RS2_CAMERA_INFO_NAME),
                info(sys::rs2_camera_info_RS2_CAMERA_INFO_SERIAL_NUMBER),
            ) {
                (Some(name), Some(serial)) => format!("{name} (serial {serial})"),
                (Some(name), None) => name.into_owned(),
                _ => "the camera".into(),
            }
        }
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        // SAFETY: each handle was created by this struct and is freed once, in reverse order.
        unsafe {
            if let (Some(profile), Some(pipeline)) = (self.started, self.pipeline) {
                _ = call("stop the pipeline", |err| sys::rs2_pipeline_stop(pipeline.as_ptr(), err));
                sys::rs2_delete_pipeline_profile(profile.as_ptr());
            }
            if let Some(profile) = self.resolved {
                sys::rs2_delete_pipeline_profile(profile.as_ptr());
            }
            if let Some(config) = self.config {
                sys::rs2_delete_config(config.as_ptr());
            }
            if let Some(pipeline) = self.pipeline {
                sys::rs2_delete_pipeline(pipeline.as_ptr());
            }
            self.playback = None;
            sys::rs2_delete_context(self.context.as_ptr());
        }
    }
}

/// A device handle, deleted when dropped.
struct Device(NonNull<sys::rs2_device>);

impl Device {
    /// The device of a pipeline profile.
    ///
    /// # Safety
    /// `profile` must be a live profile handle.
    unsafe fn of(profile: NonNull<sys::rs2_pipeline_profile>) -> Result<Device, String> {
        // SAFETY: as the caller promises.
        unsafe {
            handle("find the device", |err| {
                sys::rs2_pipeline_profile_get_device(profile.as_ptr(), err)
            })
            .map(Device)
        }
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        // SAFETY: the handle came from rs2_pipeline_profile_get_device and is deleted once.
        unsafe { sys::rs2_delete_device(self.0.as_ptr()) }
    }
}

/// Makes a C API call that reports errors through its last argument; `what` names it in the
/// error ("cannot <what>: <librealsense's message>").
///
/// # Safety
/// `f` must be a sound C API call given a valid error out-pointer.
unsafe fn call<T>(what: &str, f: impl FnOnce(*mut *mut sys::rs2_error) -> T) -> Result<T, String> {
    let mut err = std::ptr::null_mut();
    let value = f(&mut err);
    if err.is_null() {
        return Ok(value);
    }
    // SAFETY: a non-null error carries a NUL-terminated message until it is freed.
    let message = unsafe {
        let message =
            CStr::from_ptr(sys::rs2_get_error_message(err)).to_string_lossy().into_owned();
        sys::rs2_free_error(err);
        message
    };
    Err(format!("cannot {what}: {message}"))
}

/// [`call`] for a call that returns a new handle, which must not be null.
///
/// # Safety
/// As for [`call`].
unsafe fn handle<T>(
    what: &str,
    f: impl FnOnce(*mut *mut sys::rs2_error) -> *mut T,
) -> Result<NonNull<T>, String> {
    // SAFETY: as the caller promises.
    let pointer = unsafe { call(what, f) }?;
    NonNull::new(pointer).ok_or_else(|| format!("cannot {what}"))
}
