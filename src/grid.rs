//! Image grids as plain RGBA8 buffers: what the engine sends to views and writes as PNG.

use crate::data::ItemShape;

/// An RGBA8 image, row-major, `width * height * 4` bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageGrid {
    pub width: usize,
    pub height: usize,
    pub rgba: Vec<u8>,
}

/// Pixels between tiles, as torchvision's `make_grid` uses.
pub const GRID_PADDING: usize = 2;

/// Tiles `count` images (CHW each, values in [-1, 1]) into rows of `nrow`, like torchvision's `make_grid`:
/// `GRID_PADDING` black pixels around every tile.
pub fn make_grid(pixels: &[f32], shape: ItemShape, count: usize, nrow: usize) -> ImageGrid {
    let ItemShape::Image {
        channels,
        height: h,
        width: w,
    } = shape
    else {
        panic!("make_grid takes images, not {shape:?}");
    };
    let cols = nrow.min(count).max(1);
    let rows = count.div_ceil(cols);
    let (cell_w, cell_h) = (w + GRID_PADDING, h + GRID_PADDING);
    let (width, height) = (cols * cell_w + GRID_PADDING, rows * cell_h + GRID_PADDING);
    let mut rgba = vec![0u8; width * height * 4];
    for a in rgba.chunks_exact_mut(4) {
        a[3] = 255;
    }
    let plane = h * w;
    for item in 0..count {
        let image = &pixels[item * channels * plane..(item + 1) * channels * plane];
        let (x0, y0) = (
            (item % cols) * cell_w + GRID_PADDING,
            (item / cols) * cell_h + GRID_PADDING,
        );
        for y in 0..h {
            for x in 0..w {
                let at = |c: usize| to_byte(image[c * plane + y * w + x]);
                let rgb = if channels >= 3 {
                    [at(0), at(1), at(2)]
                } else {
                    [at(0); 3]
                };
                let o = ((y0 + y) * width + x0 + x) * 4;
                rgba[o..o + 3].copy_from_slice(&rgb);
            }
        }
    }
    ImageGrid { width, height, rgba }
}

fn to_byte(v: f32) -> u8 {
    (((v + 1.0) * 0.5).clamp(0.0, 1.0) * 255.0).round() as u8
}

impl ImageGrid {
    /// Encodes as PNG (for run directories and "save grid").
    pub fn write_png(&self, path: &std::path::Path) -> Result<(), String> {
        image::save_buffer(
            path,
            &self.rgba,
            self.width as u32,
            self.height as u32,
            image::ColorType::Rgba8,
        )
        .map_err(|e| format!("{}: cannot write PNG: {e}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_layout_matches_make_grid() {
        let shape = ItemShape::Image {
            channels: 1,
            height: 3,
            width: 4,
        };
        let pixels = vec![1.0; 5 * 12];
        let grid = make_grid(&pixels, shape, 5, 2);
        assert_eq!((grid.width, grid.height), (2 * 6 + 2, 3 * 5 + 2));
        // Top-left pixel is padding, the first tile starts at (2, 2).
        assert_eq!(&grid.rgba[0..4], &[0, 0, 0, 255]);
        let o = (2 * grid.width + 2) * 4;
        assert_eq!(&grid.rgba[o..o + 4], &[255, 255, 255, 255]);
    }
}
