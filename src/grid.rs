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
            let o = ((y0 + y) * width + x0) * 4;
            let row = rgba[o..o + w * 4].chunks_exact_mut(4);
            let at = |c: usize| &image[c * plane + y * w..c * plane + (y + 1) * w];
            if channels >= 3 {
                for (((pixel, r), g), b) in row.zip(at(0)).zip(at(1)).zip(at(2)) {
                    pixel[..3].copy_from_slice(&[to_byte(*r), to_byte(*g), to_byte(*b)]);
                }
            } else {
                for (pixel, v) in row.zip(at(0)) {
                    pixel[..3].fill(to_byte(*v));
                }
            }
        }
    }
    ImageGrid { width, height, rgba }
}

/// [-1, 1] to 0..=255, to the nearest level (+ 0.5 and truncation: `round` is a call into libm per value,
/// a third of the time a run takes to make its grids).
fn to_byte(v: f32) -> u8 {
    (((v + 1.0) * 127.5).clamp(0.0, 255.0) + 0.5) as u8
}

impl ImageGrid {
    /// Encodes as PNG (for run directories and "save grid"): a grey, opaque grid (every grid of grey
    /// images) as one grey channel, a third of the bytes that a run writes every `sample_every` steps.
    pub fn write_png(&self, path: &std::path::Path) -> Result<(), String> {
        let grey = self
            .rgba
            .chunks_exact(4)
            .all(|p| p[0] == p[1] && p[1] == p[2] && p[3] == 255);
        let (pixels, colour) = match grey {
            true => (
                std::borrow::Cow::Owned(self.rgba.chunks_exact(4).map(|p| p[0]).collect()),
                image::ColorType::L8,
            ),
            false => (std::borrow::Cow::Borrowed(&self.rgba[..]), image::ColorType::Rgba8),
        };
        let mut png = std::io::Cursor::new(Vec::new());
        image::write_buffer_with_format(
            &mut png,
            &pixels,
            self.width as u32,
            self.height as u32,
            colour,
            image::ImageFormat::Png,
        )
        .map_err(|e| format!("{}: cannot write PNG: {e}", path.display()))?;
        crate::fsio::write(path, png.get_ref())
    }
}

impl ImageGrid {
    /// A blank (black, opaque) image.
    pub fn filled(width: usize, height: usize, gray: u8) -> ImageGrid {
        let rgba = [gray, gray, gray, 255].repeat(width * height);
        ImageGrid { width, height, rgba }
    }

    /// Ok when `other` has this grid's size; two grids are compared pixel for pixel only then.
    fn check_same_size(&self, other: &ImageGrid) -> Result<(), String> {
        if (self.width, self.height) == (other.width, other.height) {
            Ok(())
        } else {
            Err(format!(
                "the grids differ in size ({}x{} vs {}x{}): compare grids of the same model and data",
                self.width, self.height, other.width, other.height
            ))
        }
    }

    /// |self - other| per colour channel, multiplied by `gain` so small differences show.
    pub fn difference(&self, other: &ImageGrid, gain: f32) -> Result<ImageGrid, String> {
        self.check_same_size(other)?;
        let rgba = self
            .rgba
            .chunks_exact(4)
            .zip(other.rgba.chunks_exact(4))
            .flat_map(|(a, b)| {
                let channel = |c: usize| (a[c].abs_diff(b[c]) as f32 * gain).min(255.0) as u8;
                [channel(0), channel(1), channel(2), 255]
            })
            .collect();
        Ok(ImageGrid {
            width: self.width,
            height: self.height,
            rgba,
        })
    }

    /// This grid left of the column at `fraction` of the width, `other` right of it.
    pub fn wipe(&self, other: &ImageGrid, fraction: f32) -> Result<ImageGrid, String> {
        self.check_same_size(other)?;
        let split = (fraction.clamp(0.0, 1.0) * self.width as f32).round() as usize;
        let mut rgba = other.rgba.clone();
        for (row, mine) in rgba
            .chunks_exact_mut(self.width * 4)
            .zip(self.rgba.chunks_exact(self.width * 4))
        {
            row[..split * 4].copy_from_slice(&mine[..split * 4]);
        }
        Ok(ImageGrid {
            width: self.width,
            height: self.height,
            rgba,
        })
    }

    /// Copies `other` into this image with its top-left corner at (x, y), clipped to this image.
    pub fn paste(&mut self, other: &ImageGrid, x: usize, y: usize) {
        let columns = other.width.min(self.width.saturating_sub(x));
        for row in 0..other.height.min(self.height.saturating_sub(y)) {
            let from = row * other.width * 4;
            let to = ((y + row) * self.width + x) * 4;
            self.rgba[to..to + columns * 4].copy_from_slice(&other.rgba[from..from + columns * 4]);
        }
    }
}

/// Gap between the grids of a contact sheet, in pixels (grey, so tiles of black-edged grids stay apart).
pub const SHEET_GAP: usize = 8;

/// Lays `grids` out in rows of `columns`, in order, each in a cell as large as the largest grid.
pub fn contact_sheet(grids: &[ImageGrid], columns: usize) -> ImageGrid {
    let columns = columns.clamp(1, grids.len().max(1));
    let rows = grids.len().div_ceil(columns).max(1);
    let cell_w = grids.iter().map(|g| g.width).max().unwrap_or(1);
    let cell_h = grids.iter().map(|g| g.height).max().unwrap_or(1);
    let mut sheet = ImageGrid::filled(
        columns * (cell_w + SHEET_GAP) + SHEET_GAP,
        rows * (cell_h + SHEET_GAP) + SHEET_GAP,
        96,
    );
    for (i, grid) in grids.iter().enumerate() {
        let x = SHEET_GAP + (i % columns) * (cell_w + SHEET_GAP);
        let y = SHEET_GAP + (i / columns) * (cell_h + SHEET_GAP);
        sheet.paste(grid, x, y);
    }
    sheet
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
        // [-1, 1] to the nearest of 256 levels.
        let level = |k: f32| -1.0 + 2.0 * k / 255.0;
        let bytes: Vec<u8> = [
            -2.0,
            -1.0,
            level(0.49),
            level(0.51),
            0.0,
            level(254.4),
            level(254.6),
            1.0,
            2.0,
        ]
        .into_iter()
        .map(to_byte)
        .collect();
        assert_eq!(bytes, [0, 0, 0, 1, 128, 254, 255, 255, 255]);
    }

    #[test]
    fn a_grey_grid_is_written_as_one_grey_channel_and_a_coloured_one_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let mut grey = ImageGrid::filled(5, 3, 0);
        grey.rgba[4..8].copy_from_slice(&[200, 200, 200, 255]);
        let mut coloured = grey.clone();
        coloured.rgba[8..12].copy_from_slice(&[10, 20, 30, 255]);
        for (name, grid, colour) in [
            ("grey.png", &grey, image::ColorType::L8),
            ("colour.png", &coloured, image::ColorType::Rgba8),
        ] {
            let path = dir.path().join(name);
            grid.write_png(&path).unwrap();
            let read = image::open(&path).unwrap();
            assert_eq!(read.color(), colour, "{name}");
            assert_eq!(read.to_rgba8().into_raw(), grid.rgba, "{name} reads back as written");
        }
    }

    fn pixel(grid: &ImageGrid, x: usize, y: usize) -> [u8; 4] {
        let o = (y * grid.width + x) * 4;
        grid.rgba[o..o + 4].try_into().unwrap()
    }

    #[test]
    fn difference_amplifies_and_wipe_splits() {
        let a = ImageGrid::filled(4, 2, 100);
        let mut b = ImageGrid::filled(4, 2, 100);
        b.rgba[0] = 110;
        let diff = a.difference(&b, 8.0).unwrap();
        assert_eq!(pixel(&diff, 0, 0), [80, 0, 0, 255]);
        assert_eq!(pixel(&diff, 1, 0), [0, 0, 0, 255]);
        assert_eq!(a.difference(&b, 100.0).unwrap().rgba[0], 255, "saturates");

        let white = ImageGrid::filled(4, 2, 255);
        let wipe = a.wipe(&white, 0.5).unwrap();
        assert_eq!(pixel(&wipe, 1, 1), [100, 100, 100, 255]);
        assert_eq!(pixel(&wipe, 2, 1), [255, 255, 255, 255]);
        let error = a.wipe(&ImageGrid::filled(3, 2, 0), 0.5).unwrap_err();
        assert!(error.contains("4x2 vs 3x2"), "{error}");
    }

    #[test]
    fn a_contact_sheet_places_grids_in_order() {
        let grids: Vec<ImageGrid> = (1..=3).map(|g| ImageGrid::filled(5, 4, g * 50)).collect();
        let sheet = contact_sheet(&grids, 2);
        assert_eq!(
            (sheet.width, sheet.height),
            (2 * (5 + SHEET_GAP) + SHEET_GAP, 2 * (4 + SHEET_GAP) + SHEET_GAP)
        );
        assert_eq!(pixel(&sheet, SHEET_GAP, SHEET_GAP)[0], 50);
        assert_eq!(pixel(&sheet, 2 * SHEET_GAP + 5, SHEET_GAP)[0], 100);
        assert_eq!(pixel(&sheet, SHEET_GAP + 4, 2 * SHEET_GAP + 4 + 3)[0], 150);
        assert_eq!(pixel(&sheet, 0, 0)[0], 96, "the gap is grey");
    }
}
