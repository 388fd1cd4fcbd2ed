//! Loader for a folder of ordinary image files, labelled by their immediate subfolder.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use image::imageops::{self, FilterType};
use image::metadata::Orientation;
use image::{DynamicImage, GenericImageView, ImageBuffer, ImageDecoder, ImageReader, Limits, Pixel};
use rayon::prelude::*;

use super::raw::{DataError, Progress, RawImages};
pub use crate::config::Fit;

/// Extensions (lower case) of the formats the `image` crate is built with here.
const EXTENSIONS: [&str; 7] = ["png", "jpg", "jpeg", "bmp", "gif", "webp", "jfif"];
/// Image sizes the models are built for.
const SIZES: [usize; 3] = [28, 32, 64];
/// How many skipped files a note names before summarising the rest.
const NAMED_SKIPS: usize = 3;

/// How folder images are decoded and brought to the training resolution.
#[derive(Debug, Clone, PartialEq)]
pub struct FolderOptions {
    /// Output width and height: 28, 32 or 64.
    pub size: usize,
    /// 1 for grayscale, 3 for RGB.
    pub channels: usize,
    pub fit: Fit,
    /// Images whose header declares more pixels than this are skipped without being decoded,
    /// so one enormous (or hostile) file cannot exhaust memory.
    pub max_pixels: u64,
}

impl Default for FolderOptions {
    fn default() -> Self {
        FolderOptions {
            size: 32,
            channels: 3,
            fit: Fit::CenterCrop,
            max_pixels: 50_000_000,
        }
    }
}

/// One image file found under the folder, with the label of its immediate subfolder.
struct Found {
    path: PathBuf,
    label: Option<u32>,
}

/// Loads every PNG, JPEG, BMP, GIF and WebP under `dir` (recursively, in path order), resized to
/// `opts.size` square. Unreadable files are skipped and listed in `notes`.
///
/// Files in an immediate subfolder are labelled by its name; labels are returned only when every
/// file has one, as a mix of labelled and unlabelled images cannot train a conditional model.
pub fn load_image_folder(dir: &Path, opts: &FolderOptions, progress: Progress) -> Result<RawImages, DataError> {
    if !SIZES.contains(&opts.size) {
        return Err(DataError(format!(
            "image size {} is not supported; choose 28, 32 or 64",
            opts.size
        )));
    }
    if opts.channels != 1 && opts.channels != 3 {
        return Err(DataError(format!(
            "{} channels is not supported; choose 1 (grayscale) or 3 (RGB)",
            opts.channels
        )));
    }
    let mut notes = Vec::new();
    let mut paths = Vec::new();
    collect_images(dir, dir, &mut paths, &mut notes)?;
    if paths.is_empty() {
        return Err(DataError(format!(
            "no PNG/JPEG/BMP/GIF/WebP files under {}",
            dir.display()
        )));
    }
    paths.sort();
    let (files, label_names) = label_files(dir, paths);
    let labelled = files.iter().all(|f| f.label.is_some());
    if !labelled && !label_names.is_empty() {
        let loose = files.iter().filter(|f| f.label.is_none()).count();
        notes.push(format!(
            "{loose} of {} files lie directly in {} rather than in a class subfolder, so the \
             dataset is loaded without labels",
            files.len(),
            dir.display()
        ));
    }

    let total = files.len();
    let item_len = opts.channels * opts.size * opts.size;
    let mut pixels = vec![0u8; total * item_len];
    let done = AtomicU64::new(0);
    let step = (total as u64 / 200).max(1);
    let results: Vec<Result<(), String>> = pixels
        .par_chunks_mut(item_len)
        .zip(&files)
        .map(|(out, file)| {
            let result = decode_into(&file.path, opts, out);
            let n = done.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_multiple_of(step) || n == total as u64 {
                progress("decoding images", n, total as u64);
            }
            result
        })
        .collect();

    // Close up the gaps left by skipped files, keeping the survivors in path order.
    let mut kept = 0;
    let mut labels = Vec::new();
    let mut skipped = Vec::new();
    for (i, (file, result)) in files.iter().zip(results).enumerate() {
        match result {
            Ok(()) => {
                pixels.copy_within(i * item_len..(i + 1) * item_len, kept * item_len);
                labels.extend(file.label);
                kept += 1;
            }
            Err(reason) => skipped.push((relative(dir, &file.path), reason)),
        }
    }
    pixels.truncate(kept * item_len);
    if kept == 0 {
        let (first, reason) = &skipped[0];
        return Err(DataError(format!(
            "none of the {total} image files under {} could be read (first, {first}: {reason})",
            dir.display()
        )));
    }
    if !skipped.is_empty() {
        notes.push(skip_note(&skipped, total));
    }
    Ok(RawImages {
        count: kept,
        channels: opts.channels,
        height: opts.size,
        width: opts.size,
        pixels,
        labels: labelled.then_some(labels),
        label_names,
        notes,
    })
}

/// Walks `current` recursively, gathering image files by extension. Subfolders that cannot be
/// read are noted and passed over; only the top folder failing is an error.
fn collect_images(
    root: &Path,
    current: &Path,
    paths: &mut Vec<PathBuf>,
    notes: &mut Vec<String>,
) -> Result<(), DataError> {
    let entries = match std::fs::read_dir(current) {
        Ok(entries) => entries,
        Err(e) if current == root => return Err(DataError::unreadable_dir(root, &e)),
        Err(e) => {
            notes.push(format!("skipped folder {}: {e}", current.display()));
            return Ok(());
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        // `file_type` does not follow symlinks, so a link cycle cannot make the walk endless;
        // linked files are still taken.
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            collect_images(root, &path, paths, notes)?;
        } else if has_image_extension(&path) && (kind.is_file() || path.is_file()) {
            paths.push(path);
        }
    }
    Ok(())
}

fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Labels each sorted path by its immediate subfolder of `root`; the names come back sorted.
fn label_files(root: &Path, paths: Vec<PathBuf>) -> (Vec<Found>, Vec<String>) {
    let class_of = |path: &Path| -> Option<String> {
        let mut parts = path.strip_prefix(root).ok()?.components();
        let first = parts.next()?;
        parts.next()?; // a file directly in root has no class folder
        Some(first.as_os_str().to_string_lossy().into_owned())
    };
    let mut names: Vec<String> = paths.iter().filter_map(|p| class_of(p)).collect();
    names.sort();
    names.dedup();
    let files = paths
        .into_iter()
        .map(|path| Found {
            label: class_of(&path).and_then(|c| names.binary_search(&c).ok().map(|i| i as u32)),
            path,
        })
        .collect();
    (files, names)
}

/// Decodes one file into `out` (planar, `opts.channels` x size x size), or says why it could not.
fn decode_into(path: &Path, opts: &FolderOptions, out: &mut [u8]) -> Result<(), String> {
    let reader = ImageReader::open(path).map_err(|e| e.to_string())?;
    decode_from(reader, opts, out)
}

/// Decodes image bytes as a file in an image folder would be (size limits included): the entry point of the
/// fuzzing harness. Fills `out` (planar, `opts.channels` x size x size).
pub fn decode_image_bytes(bytes: &[u8], opts: &FolderOptions, out: &mut [u8]) -> Result<(), String> {
    decode_from(ImageReader::new(std::io::Cursor::new(bytes)), opts, out)
}

fn decode_from<R: std::io::BufRead + std::io::Seek>(
    reader: ImageReader<R>,
    opts: &FolderOptions,
    out: &mut [u8],
) -> Result<(), String> {
    let mut reader = reader.with_guessed_format().map_err(|e| e.to_string())?;
    let mut limits = Limits::default();
    // The largest buffer a decoder legitimately needs is 16-bit RGBA at the pixel limit.
    limits.max_alloc = Some(opts.max_pixels.saturating_mul(8));
    reader.limits(limits);
    // Building the decoder reads only the header, so the size check below happens before any
    // pixel buffer exists.
    let mut decoder = reader.into_decoder().map_err(|e| e.to_string())?;
    let (w, h) = decoder.dimensions();
    let pixels = u64::from(w) * u64::from(h);
    if pixels > opts.max_pixels {
        return Err(format!(
            "{w}x{h} is {pixels} pixels, over the limit of {}",
            opts.max_pixels
        ));
    }
    // Phone photos are stored sideways with an EXIF note saying how to turn them.
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(|e| e.to_string())?;
    image.apply_orientation(orientation);
    if image.color().has_alpha() {
        image = flatten_onto_black(image);
    }
    let size = opts.size as u32;
    if opts.channels == 1 {
        write_planar(&fit(&image.into_luma8(), size, opts.fit), out);
    } else {
        write_planar(&fit(&image.into_rgb8(), size, opts.fit), out);
    }
    Ok(())
}

/// Composites a transparent image onto black, the letterbox colour; simply dropping alpha would
/// expose whatever colour happens to be stored under fully transparent pixels.
fn flatten_onto_black(image: DynamicImage) -> DynamicImage {
    let mut rgba = image.into_rgba8();
    for px in rgba.pixels_mut() {
        let alpha = u16::from(px[3]);
        for c in 0..3 {
            px[c] = ((u16::from(px[c]) * alpha + 127) / 255) as u8;
        }
    }
    DynamicImage::ImageRgba8(rgba)
}

/// Makes `image` exactly `size` square as `how` asks.
fn fit<P: Pixel<Subpixel = u8> + 'static>(
    image: &ImageBuffer<P, Vec<u8>>,
    size: u32,
    how: Fit,
) -> ImageBuffer<P, Vec<u8>> {
    let (w, h) = image.dimensions();
    match how {
        Fit::CenterCrop => {
            // Cropping before scaling gives the same picture as scaling first, without building
            // a huge intermediate for a very elongated source.
            let side = w.min(h);
            let square = imageops::crop_imm(image, (w - side) / 2, (h - side) / 2, side, side);
            scale_to(&*square, size, size)
        }
        Fit::Letterbox => {
            let long = w.max(h);
            let shrink =
                |d: u32| ((u64::from(d) * u64::from(size) + u64::from(long) / 2) / u64::from(long)).max(1) as u32;
            let (sw, sh) = (shrink(w), shrink(h));
            let mut canvas = ImageBuffer::new(size, size);
            let scaled = scale_to(image, sw, sh);
            imageops::replace(
                &mut canvas,
                &scaled,
                i64::from((size - sw) / 2),
                i64::from((size - sh) / 2),
            );
            canvas
        }
    }
}

/// Resizes with area averaging when shrinking (fast, and no aliasing however large the source)
/// and a triangle filter when enlarging.
fn scale_to<I, P>(image: &I, w: u32, h: u32) -> ImageBuffer<P, Vec<u8>>
where
    I: GenericImageView<Pixel = P>,
    P: Pixel<Subpixel = u8> + 'static,
{
    let (iw, ih) = image.dimensions();
    if w <= iw && h <= ih {
        imageops::thumbnail(image, w, h)
    } else {
        imageops::resize(image, w, h, FilterType::Triangle)
    }
}

/// Copies interleaved pixels into `out` one channel plane after another (CHW).
fn write_planar<P: Pixel<Subpixel = u8>>(image: &ImageBuffer<P, Vec<u8>>, out: &mut [u8]) {
    let channels = usize::from(P::CHANNEL_COUNT);
    let plane = out.len() / channels;
    for (i, px) in image.as_raw().chunks_exact(channels).enumerate() {
        for (c, &v) in px.iter().enumerate() {
            out[c * plane + i] = v;
        }
    }
}

fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root).unwrap_or(path).display().to_string()
}

/// "skipped N of M files that could not be read: a, b, c and K more (a: reason)", or for one file
/// "…: a (reason)".
fn skip_note(skipped: &[(String, String)], total: usize) -> String {
    let names: Vec<&str> = skipped.iter().take(NAMED_SKIPS).map(|(n, _)| n.as_str()).collect();
    let more = match skipped.len().saturating_sub(NAMED_SKIPS) {
        0 => String::new(),
        k => format!(" and {k} more"),
    };
    let reason = match skipped {
        [(_, reason)] => reason.clone(),
        _ => skipped
            .first()
            .map_or_else(String::new, |(first, reason)| format!("{first}: {reason}")),
    };
    format!(
        "skipped {} of {total} files that could not be read: {}{more} ({reason})",
        skipped.len(),
        names.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{GrayImage, Luma, Rgb, RgbImage};

    fn quiet(_: &str, _: u64, _: u64) {}

    fn opts(size: usize, channels: usize, fit: Fit) -> FolderOptions {
        FolderOptions {
            size,
            channels,
            fit,
            ..FolderOptions::default()
        }
    }

    /// Saves a gradient image (format from the extension) at `dir/name`, creating subfolders.
    fn save(dir: &Path, name: &str, w: u32, h: u32) {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        RgbImage::from_fn(w, h, |x, y| Rgb([(x * 7) as u8, (y * 5) as u8, 128]))
            .save(&path)
            .unwrap();
    }

    /// A PNG file with a valid signature and IHDR declaring `w`x`h`, then a scrap of IDAT that
    /// could never hold that many pixels.
    fn png_header_only(w: u32, h: u32) -> Vec<u8> {
        fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
            out.extend((data.len() as u32).to_be_bytes());
            out.extend(kind);
            out.extend(data);
            let mut crc = flate2::Crc::new();
            crc.update(kind);
            crc.update(data);
            out.extend(crc.sum().to_be_bytes());
        }
        let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut ihdr = w.to_be_bytes().to_vec();
        ihdr.extend(h.to_be_bytes());
        ihdr.extend([8, 0, 0, 0, 0]); // 8-bit grayscale, deflate, no filter, no interlace
        chunk(&mut out, b"IHDR", &ihdr);
        chunk(&mut out, b"IDAT", &[0x78, 0x9c, 0x63, 0x00]);
        chunk(&mut out, b"IEND", &[]);
        out
    }

    #[test]
    fn loads_labelled_subfolders_of_mixed_formats_and_sizes() {
        let dir = tempfile::tempdir().unwrap();
        save(dir.path(), "cats/a.png", 40, 30);
        save(dir.path(), "cats/b.jpg", 17, 50);
        save(dir.path(), "dogs/c.bmp", 64, 64);
        save(dir.path(), "dogs/deep/d.webp", 10, 10);
        save(dir.path(), "dogs/e.gif", 100, 20);
        std::fs::rename(dir.path().join("dogs/e.gif"), dir.path().join("dogs/E.GIF")).unwrap();
        std::fs::write(dir.path().join("dogs/readme.txt"), "not an image").unwrap();
        for fit in [Fit::CenterCrop, Fit::Letterbox] {
            for channels in [1, 3] {
                for size in [28, 32, 64] {
                    let raw = load_image_folder(dir.path(), &opts(size, channels, fit), &quiet).unwrap();
                    assert_eq!(raw.count, 5);
                    assert_eq!((raw.channels, raw.height, raw.width), (channels, size, size));
                    assert_eq!(raw.pixels.len(), 5 * raw.item_len());
                    assert_eq!(raw.labels, Some(vec![0, 0, 1, 1, 1]));
                    assert_eq!(raw.label_names, ["cats", "dogs"]);
                    assert!(raw.notes.is_empty(), "{:?}", raw.notes);
                }
            }
        }
    }

    #[test]
    fn keeps_an_image_of_the_target_size_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let img = GrayImage::from_fn(28, 28, |x, y| Luma([(x * 9 + y) as u8]));
        img.save(dir.path().join("g.png")).unwrap();
        let raw = load_image_folder(dir.path(), &opts(28, 1, Fit::CenterCrop), &quiet).unwrap();
        assert_eq!(raw.pixels, img.into_raw());
        assert_eq!((raw.labels, raw.label_names.len()), (None, 0));
    }

    #[test]
    fn center_crop_keeps_the_middle_and_letterbox_pads_with_black() {
        let dir = tempfile::tempdir().unwrap();
        // Blue | red | blue, in thirds: the centre square is exactly the red third.
        RgbImage::from_fn(96, 32, |x, _| {
            if (32..64).contains(&x) {
                Rgb([255, 0, 0])
            } else {
                Rgb([0, 0, 255])
            }
        })
        .save(dir.path().join("wide.png"))
        .unwrap();
        let plane = 32 * 32;

        let raw = load_image_folder(dir.path(), &opts(32, 3, Fit::CenterCrop), &quiet).unwrap();
        assert!(raw.pixels[..plane].iter().all(|&r| r == 255));
        assert!(raw.pixels[2 * plane..].iter().all(|&b| b == 0));

        let raw = load_image_folder(dir.path(), &opts(32, 3, Fit::Letterbox), &quiet).unwrap();
        // Scaled to 32x11 (rounded), centred: rows 0..10 and 21..32 are padding.
        let blue = &raw.pixels[2 * plane..];
        assert!(blue[..10 * 32].iter().all(|&b| b == 0));
        assert!(blue[21 * 32..].iter().all(|&b| b == 0));
        assert_eq!(blue[15 * 32], 255); // left edge of a middle row is blue
        assert_eq!(raw.pixels[15 * 32 + 16], 255); // and its centre is red
    }

    #[test]
    fn puts_transparent_pixels_on_black() {
        let dir = tempfile::tempdir().unwrap();
        // Left half opaque red, right half fully transparent red.
        image::RgbaImage::from_fn(28, 28, |x, _| image::Rgba([255, 0, 0, if x < 14 { 255 } else { 0 }]))
            .save(dir.path().join("sprite.png"))
            .unwrap();
        let raw = load_image_folder(dir.path(), &opts(28, 3, Fit::CenterCrop), &quiet).unwrap();
        let red_row = &raw.pixels[..28];
        assert!(red_row[..14].iter().all(|&v| v == 255), "{red_row:?}");
        assert!(red_row[14..].iter().all(|&v| v == 0), "{red_row:?}");
    }

    #[test]
    fn enlarges_a_one_pixel_image() {
        let dir = tempfile::tempdir().unwrap();
        RgbImage::from_pixel(1, 1, Rgb([10, 20, 30]))
            .save(dir.path().join("dot.png"))
            .unwrap();
        for fit in [Fit::CenterCrop, Fit::Letterbox] {
            let raw = load_image_folder(dir.path(), &opts(28, 3, fit), &quiet).unwrap();
            assert_eq!(raw.count, 1);
            let plane = 28 * 28;
            assert!(raw.pixels[..plane].iter().all(|&v| v == 10));
            assert!(raw.pixels[2 * plane..].iter().all(|&v| v == 30));
        }
    }

    #[test]
    fn skips_a_text_file_named_png_with_its_reason() {
        let dir = tempfile::tempdir().unwrap();
        save(dir.path(), "a.png", 8, 8);
        std::fs::write(dir.path().join("x.png"), "hello, I am text").unwrap();
        save(dir.path(), "z.jpeg", 8, 8);
        let raw = load_image_folder(dir.path(), &opts(28, 1, Fit::CenterCrop), &quiet).unwrap();
        assert_eq!(raw.count, 2);
        assert_eq!(raw.notes.len(), 1);
        let note = &raw.notes[0];
        assert!(
            note.starts_with("skipped 1 of 3 files that could not be read: x.png ("),
            "{note}"
        );
        assert!(!note.contains("(x.png"), "the one file is named once: {note}");
        // The survivors close up in path order: a.png then z.jpeg.
        assert_eq!(raw.pixels.len(), 2 * 28 * 28);
    }

    #[test]
    fn notes_name_three_skipped_files_and_count_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        save(dir.path(), "ok.png", 4, 4);
        for name in ["b.png", "c.jpg", "d.gif", "e.bmp", "f.webp"] {
            std::fs::write(dir.path().join(name), [0u8; 10]).unwrap();
        }
        let raw = load_image_folder(dir.path(), &opts(28, 1, Fit::CenterCrop), &quiet).unwrap();
        assert!(
            raw.notes[0]
                .starts_with("skipped 5 of 6 files that could not be read: b.png, c.jpg, d.gif and 2 more (b.png: "),
            "{:?}",
            raw.notes
        );
    }

    #[test]
    fn refuses_a_huge_png_by_its_header_without_decoding_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("huge.png"), png_header_only(20000, 20000)).unwrap();
        let err = load_image_folder(dir.path(), &FolderOptions::default(), &quiet)
            .unwrap_err()
            .0;
        assert!(
            err.ends_with("(first, huge.png: 20000x20000 is 400000000 pixels, over the limit of 50000000)"),
            "{err}"
        );
        assert!(err.starts_with("none of the 1 image files under "), "{err}");

        save(dir.path(), "small.png", 5, 5);
        let raw = load_image_folder(dir.path(), &FolderOptions::default(), &quiet).unwrap();
        assert_eq!(raw.count, 1);
        assert!(
            raw.notes[0].contains("huge.png (20000x20000 is 400000000 pixels"),
            "{:?}",
            raw.notes
        );
    }

    #[test]
    fn labels_only_when_every_file_is_in_a_subfolder() {
        let dir = tempfile::tempdir().unwrap();
        save(dir.path(), "loose.png", 4, 4);
        save(dir.path(), "one/a.png", 4, 4);
        let raw = load_image_folder(dir.path(), &opts(28, 3, Fit::Letterbox), &quiet).unwrap();
        assert_eq!((raw.count, raw.labels), (2, None));
        assert!(
            raw.notes[0].starts_with("1 of 2 files lie directly in"),
            "{:?}",
            raw.notes
        );
    }

    #[test]
    fn reports_progress_up_to_the_total() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..5 {
            save(dir.path(), &format!("{i}.png"), 3, 3);
        }
        let last = std::sync::Mutex::new((String::new(), 0, 0));
        let progress = |what: &str, done: u64, total: u64| {
            let mut last = last.lock().unwrap();
            if done >= last.1 {
                *last = (what.to_string(), done, total);
            }
        };
        load_image_folder(dir.path(), &FolderOptions::default(), &progress).unwrap();
        assert_eq!(last.into_inner().unwrap(), ("decoding images".to_string(), 5, 5));
    }

    #[test]
    fn refuses_bad_options_and_bad_folders() {
        let dir = tempfile::tempdir().unwrap();
        let err = |path: &Path, o: &FolderOptions| load_image_folder(path, o, &quiet).unwrap_err().0;
        assert!(err(dir.path(), &opts(30, 3, Fit::CenterCrop)).contains("image size 30"));
        assert!(err(dir.path(), &opts(32, 2, Fit::CenterCrop)).contains("2 channels"));

        let o = FolderOptions::default();
        let missing = dir.path().join("missing");
        assert_eq!(
            err(&missing, &o),
            format!("{}: directory does not exist", missing.display())
        );
        std::fs::write(dir.path().join("notes.txt"), "x").unwrap();
        assert_eq!(
            err(dir.path(), &o),
            format!("no PNG/JPEG/BMP/GIF/WebP files under {}", dir.path().display())
        );
        let file = dir.path().join("notes.txt");
        assert_eq!(
            err(&file, &o),
            format!("{}: is a file, not a directory", file.display())
        );
    }

    #[cfg(unix)]
    #[test]
    fn reports_an_unreadable_dir() {
        let dir = tempfile::tempdir().unwrap();
        save(dir.path(), "a.png", 2, 2);
        super::super::idx::tests::check_unreadable_dir_error(dir.path(), |d| {
            load_image_folder(d, &FolderOptions::default(), &quiet)
        });
    }
}
