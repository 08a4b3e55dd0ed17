//! librealsense frames and intrinsics as the ROS messages the RealSense driver publishes.

use crate::codec::ros::{CameraInfo, Header, Image, Imu, RegionOfInterest, Vector3};
use realsense_rust::frame::ImageFrame;
use realsense_sys as sys;

/// The frame's pixels as a ROS Image, rows as librealsense lays them out.
pub(super) fn image<K>(
    frame: &ImageFrame<K>,
    encoding: &str,
    header: Header,
) -> Result<Image, String> {
    let size = frame.get_data_size();
    let (width, height, stride) = (frame.width(), frame.height(), frame.stride());
    if size < stride * height {
        return Err(format!(
            "a {width}x{height} frame holds {size} bytes, not {}",
            stride * height
        ));
    }
    // SAFETY: librealsense keeps `size` bytes at the frame's data pointer while the frame lives.
    let data = unsafe {
        std::slice::from_raw_parts(frame.get_data() as *const _ as *const u8, stride * height)
    };
    Ok(Image {
        header,
        height: height as u32,
        width: width as u32,
        encoding: encoding.into(),
        is_bigendian: 0,
        step: stride as u32,
        data: data.to_vec(),
    })
}

/// A CameraInfo as the ROS 2 driver fills it from librealsense intrinsics: the distortion
/// mapped by [`distortion`], rectification identity, projection = K with no baseline.
pub(super) fn camera_info(intrinsics: &sys::rs2_intrinsics, header: Header) -> CameraInfo {
    let (fx, fy) = (intrinsics.fx as f64, intrinsics.fy as f64);
    let (cx, cy) = (intrinsics.ppx as f64, intrinsics.ppy as f64);
    let (distortion_model, d) = distortion(intrinsics.model, intrinsics.coeffs);
    CameraInfo {
        header,
        height: intrinsics.height as u32,
        width: intrinsics.width as u32,
        distortion_model: distortion_model.into(),
        d,
        k: [fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0],
        r: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
        p: [fx, 0.0, cx, 0.0, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0, 0.0],
        binning_x: 0,
        binning_y: 0,
        roi: RegionOfInterest::default(),
    }
}

/// A librealsense distortion model as a ROS one, with its coefficients: the Brown-Conrady
/// family (plain, modified, inverse) is `plumb_bob` [k1, k2, p1, p2, k3]; Kannala-Brandt4 is
/// `equidistant` [k1, k2, k3, k4]; none is `plumb_bob` with zeros. F-theta has no ROS
/// counterpart and keeps its name (`ftheta`, [k1]).
pub fn distortion(model: sys::rs2_distortion, coeffs: [f32; 5]) -> (&'static str, Vec<f64>) {
    let coeffs = coeffs.map(f64::from);
    match model {
        sys::rs2_distortion_RS2_DISTORTION_BROWN_CONRADY
        | sys::rs2_distortion_RS2_DISTORTION_MODIFIED_BROWN_CONRADY
        | sys::rs2_distortion_RS2_DISTORTION_INVERSE_BROWN_CONRADY => {
            ("plumb_bob", coeffs.to_vec())
        }
        sys::rs2_distortion_RS2_DISTORTION_KANNALA_BRANDT4 => ("equidistant", coeffs[..4].to_vec()),
        sys::rs2_distortion_RS2_DISTORTION_FTHETA => ("ftheta", coeffs[..1].to_vec()),
        _ => ("plumb_bob", vec![0.0; 5]),
    }
}

/// One IMU sample as the driver publishes gyro and accel separately: no orientation
/// (covariance[0] = -1, as sensor_msgs/Imu defines), the other vector zero.
pub(super) fn imu(header: Header, value: Vector3, is_gyro: bool) -> Imu {
    let zero = Vector3 { x: 0.0, y: 0.0, z: 0.0 };
    let mut orientation_covariance = [0.0; 9];
    orientation_covariance[0] = -1.0;
    let (angular_velocity, linear_acceleration) =
        if is_gyro { (value, zero) } else { (zero, value) };
    Imu {
        header,
        orientation: Default::default(),
        orientation_covariance,
        angular_velocity,
        angular_velocity_covariance: [0.0; 9],
        linear_acceleration,
        linear_acceleration_covariance: [0.0; 9],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_distortion_models_as_the_ros_driver() {
        let coeffs = [0.1, -0.2, 0.001, 0.002, 0.05];
        for model in [
            sys::rs2_distortion_RS2_DISTORTION_BROWN_CONRADY,
            sys::rs2_distortion_RS2_DISTORTION_MODIFIED_BROWN_CONRADY,
            sys::rs2_distortion_RS2_DISTORTION_INVERSE_BROWN_CONRADY,
        ] {
            let (name, d) = distortion(model, coeffs);
            assert_eq!((name, d.len()), ("plumb_bob", 5));
            assert_eq!(d[1], -0.2f32 as f64);
        }
        let (name, d) = distortion(sys::rs2_distortion_RS2_DISTORTION_KANNALA_BRANDT4, coeffs);
        assert_eq!((name, d.len()), ("equidistant", 4));
        let (name, d) = distortion(sys::rs2_distortion_RS2_DISTORTION_NONE, coeffs);
        assert_eq!((name, d), ("plumb_bob", vec![0.0; 5]));
    }
}
