//! JPEG and PNG encoding of raw [`Image`]s into [`CompressedImage`]s, as ROS 2's
//! `compressed_image_transport` would publish them.
//!
//! The `format` field follows image_transport: `ORIG_PIXFMT; CODEC compressed [PIXFMT]`, with
//! `bgr8` appended for colour images (the transport's OpenCV pixel order; the file itself is a
//! standard RGB JPEG/PNG) and nothing after `compressed ` for mono images, e.g.
//! `rgb8; jpeg compressed bgr8`, `mono8; jpeg compressed `, `16UC1; png compressed `.
//! Foxglove's image panel decodes these by content and needs `jpeg`/`png` in the format,
//! which it has.
//!
//! Supported: JPEG from `rgb8`, `bgr8`, `mono8`; PNG from those and `mono16`/`16UC1`
//! (16-bit grayscale, either byte order). Rows may be padded (`step` > `width * bpp`).

use super::CodecError;
use super::ros::{CompressedImage, Image};
use ::image::codecs::png::{CompressionType, FilterType, PngEncoder};
use ::image::{ExtendedColorType, ImageEncoder};
use std::borrow::Cow;

/// How to compress an [`Image`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageCodec {
    /// Lossy JPEG at quality 1..=100 (8-bit colour or mono).
    Jpeg {
        /// JPEG quality, 1..=100.
        quality: u8,
    },
    /// Lossless PNG (8-bit colour or mono, 16-bit mono).
    Png {
        /// Speed/size trade-off.
        compression: PngCompression,
    },
}

/// PNG deflate effort. For 640x480 16-bit depth [`PngCompression::Fast`] is ~20x faster than
/// [`PngCompression::Default`] for ~15% more bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PngCompression {
    /// The fastest useful compression (fdeflate).
    #[default]
    Fast,
    /// Balanced.
    Default,
    /// Smallest output, slowest.
    Best,
}

/// Bytes per pixel of the encodings this module handles, `None` for others.
pub fn bytes_per_pixel(encoding: &str) -> Option<usize> {
    match encoding {
        "mono8" | "8UC1" => Some(1),
        "mono16" | "16UC1" => Some(2),
        "rgb8" | "bgr8" => Some(3),
        _ => None,
    }
}

/// Compresses `image` with `codec`; see [`encode_jpeg`] and [`encode_png`].
pub fn compress_image(image: &Image, codec: ImageCodec) -> Result<CompressedImage, CodecError> {
    match codec {
        ImageCodec::Jpeg { quality } => encode_jpeg(image, quality),
        ImageCodec::Png { compression } => encode_png(image, compression),
    }
}

/// JPEG-encodes an `rgb8`, `bgr8` or `mono8` image at `quality` (1..=100); the header is
/// copied.
pub fn encode_jpeg(image: &Image, quality: u8) -> Result<CompressedImage, CodecError> {
    if !(1..=100).contains(&quality) {
        return Err(CodecError::JpegQuality(quality));
    }
    let (color, suffix) = match image.encoding.as_str() {
        "rgb8" | "bgr8" => (jpeg_encoder::ColorType::Rgb, "bgr8"),
        "mono8" => (jpeg_encoder::ColorType::Luma, ""),
        _ => {
            return Err(CodecError::UnsupportedEncoding {
                encoding: image.encoding.clone(),
                codec: "jpeg",
                supported: "rgb8, bgr8, mono8",
            });
        }
    };
    let pixels = packed_pixels(image)?;
    let (Ok(width), Ok(height)) = (u16::try_from(image.width), u16::try_from(image.height)) else {
        return Err(CodecError::ImageGeometry {
            width: image.width,
            height: image.height,
            step: image.step,
            bytes_per_pixel: bytes_per_pixel(&image.encoding).unwrap_or_default(),
            problem: "JPEG allows at most 65535 pixels per side".into(),
        });
    };
    let mut data = Vec::with_capacity(pixels.len() / 8);
    // jpeg-encoder rather than the `image` crate's encoder: SIMD colour conversion and DCT,
    // and 4:2:0 chroma subsampling as cameras and libjpeg use; a 1280x720 frame took 41 ms
    // with the `image` crate on the benchmark machine, too slow for 30 fps (BENCHMARKS.md).
    let mut encoder = jpeg_encoder::Encoder::new(&mut data, quality);
    encoder.set_sampling_factor(jpeg_encoder::SamplingFactor::R_4_2_0);
    encoder.encode(&pixels, width, height, color)?;
    Ok(CompressedImage {
        header: image.header.clone(),
        format: format!("{}; jpeg compressed {suffix}", image.encoding),
        data,
    })
}

/// PNG-encodes an `rgb8`, `bgr8`, `mono8`, `mono16` or `16UC1` image; the header is copied.
pub fn encode_png(
    image: &Image,
    compression: PngCompression,
) -> Result<CompressedImage, CodecError> {
    let (color, suffix) = match image.encoding.as_str() {
        "rgb8" | "bgr8" => (ExtendedColorType::Rgb8, "bgr8"),
        "mono8" => (ExtendedColorType::L8, ""),
        "mono16" | "16UC1" => (ExtendedColorType::L16, ""),
        _ => {
            return Err(CodecError::UnsupportedEncoding {
                encoding: image.encoding.clone(),
                codec: "png",
                supported: "rgb8, bgr8, mono8, mono16, 16UC1",
            });
        }
    };
    let pixels = packed_pixels(image)?;
    let compression = match compression {
        PngCompression::Fast => CompressionType::Fast,
        PngCompression::Default => CompressionType::Default,
        PngCompression::Best => CompressionType::Best,
    };
    let mut data = Vec::with_capacity(pixels.len() / 2);
    PngEncoder::new_with_quality(&mut data, compression, FilterType::Adaptive).write_image(
        &pixels,
        image.width,
        image.height,
        color,
    )?;
    Ok(CompressedImage {
        header: image.header.clone(),
        format: format!("{}; png compressed {suffix}", image.encoding),
        data,
    })
}

/// The pixels as the `image` crate takes them: rows without padding, RGB order, 16-bit values
/// in native byte order. Borrows when the data already is that.
fn packed_pixels(image: &Image) -> Result<Cow<'_, [u8]>, CodecError> {
    let bpp = bytes_per_pixel(&image.encoding).ok_or_else(|| CodecError::UnsupportedEncoding {
        encoding: image.encoding.clone(),
        codec: "image",
        supported: "rgb8, bgr8, mono8, mono16, 16UC1",
    })?;
    let geometry = |problem: String| CodecError::ImageGeometry {
        width: image.width,
        height: image.height,
        step: image.step,
        bytes_per_pixel: bpp,
        problem,
    };
    if image.width == 0 || image.height == 0 {
        return Err(geometry("empty image".into()));
    }
    let row = image.width as usize * bpp;
    let step = image.step as usize;
    if step < row {
        return Err(geometry(format!("step is smaller than width x bytes/pixel = {row}")));
    }
    let expected = step as u64 * u64::from(image.height);
    if image.data.len() as u64 != expected {
        return Err(geometry(format!(
            "data has {} bytes, expected height x step = {expected}",
            image.data.len()
        )));
    }
    let swap_rgb = image.encoding == "bgr8";
    let swap_bytes = bpp == 2 && (image.is_bigendian != 0) != cfg!(target_endian = "big");
    if step == row && !swap_rgb && !swap_bytes {
        return Ok(Cow::Borrowed(&image.data));
    }
    let mut out = Vec::with_capacity(row * image.height as usize);
    for line in image.data.chunks_exact(step) {
        let line = &line[..row];
        if swap_rgb {
            for px in line.chunks_exact(3) {
                out.extend_from_slice(&[px[2], px[1], px[0]]);
            }
        } else if swap_bytes {
            for px in line.chunks_exact(2) {
                out.extend_from_slice(&[px[1], px[0]]);
            }
        } else {
            out.extend_from_slice(line);
        }
    }
    Ok(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(encoding: &str, width: u32, height: u32, step: u32) -> Image {
        Image {
            encoding: encoding.into(),
            width,
            height,
            step,
            data: (0..step * height).map(|i| (i * 7) as u8).collect(),
            ..Image::default()
        }
    }

    #[test]
    fn formats_follow_image_transport() {
        let rgb = image("rgb8", 4, 2, 12);
        assert_eq!(encode_jpeg(&rgb, 80).unwrap().format, "rgb8; jpeg compressed bgr8");
        assert_eq!(
            encode_png(&image("16UC1", 4, 2, 8), PngCompression::Fast).unwrap().format,
            "16UC1; png compressed "
        );
        assert_eq!(
            encode_jpeg(&image("mono8", 4, 2, 4), 80).unwrap().format,
            "mono8; jpeg compressed "
        );
    }

    #[test]
    fn errors() {
        let rgb = image("rgb8", 4, 2, 12);
        assert!(matches!(encode_jpeg(&rgb, 0), Err(CodecError::JpegQuality(0))));
        assert!(matches!(encode_jpeg(&rgb, 101), Err(CodecError::JpegQuality(101))));
        assert!(matches!(
            encode_jpeg(&image("16UC1", 4, 2, 8), 80),
            Err(CodecError::UnsupportedEncoding { .. })
        ));
        assert!(matches!(
            encode_png(&image("32FC1", 4, 2, 16), PngCompression::Fast),
            Err(CodecError::UnsupportedEncoding { .. })
        ));
        let mut short = rgb.clone();
        short.data.pop();
        assert!(matches!(encode_jpeg(&short, 80), Err(CodecError::ImageGeometry { .. })));
        assert!(matches!(
            encode_jpeg(&image("rgb8", 4, 2, 11), 80),
            Err(CodecError::ImageGeometry { .. })
        ));
        assert!(matches!(
            encode_png(&image("mono8", 0, 0, 0), PngCompression::Fast),
            Err(CodecError::ImageGeometry { .. })
        ));
    }
}
