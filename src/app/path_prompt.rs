//! Choosing where to save, or which folder to open, without the UI ever waiting: the system's file dialog
//! runs on its own thread, and a path field beside it always works. Where no dialog can open (no desktop
//! portal and no zenity, as on a bare X server or over SSH) the prompt says so and the field remains.

use crate::grid::ImageGrid;
use crate::runs::GridKind;
use crossbeam_channel::{bounded, Receiver};
use eframe::egui;
use egui::{Context, TextEdit};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What a chosen path is for.
#[derive(Clone, Debug, PartialEq)]
pub enum PathFor {
    /// Save these metrics (CSV bytes), suggested as `name`.
    Csv { bytes: Vec<u8>, name: String },
    /// Save this picture as PNG, suggested as `name`.
    Image { grid: ImageGrid, name: String },
    /// Save the saved grids of the run in `dir` as a GIF (a file) or numbered PNGs (a folder).
    Filmstrip { dir: PathBuf, kind: GridKind, gif: bool },
    /// List and write runs in this folder.
    RunsFolder,
    /// Train on this folder, read as the data source with this prefix (`idx`, `folder`).
    DataFolder(&'static str),
}

impl PathFor {
    /// Whether the path names a folder (else a file to write).
    fn is_folder(&self) -> bool {
        match self {
            PathFor::Filmstrip { gif, .. } => !gif,
            PathFor::RunsFolder | PathFor::DataFolder(_) => true,
            PathFor::Csv { .. } | PathFor::Image { .. } => false,
        }
    }

    pub fn title(&self) -> &'static str {
        match self {
            PathFor::Csv { .. } => "Export the metrics as CSV",
            PathFor::Image { .. } => "Save the picture as PNG",
            PathFor::Filmstrip { gif: true, .. } => "Save the filmstrip as a GIF",
            PathFor::Filmstrip { gif: false, .. } => "Save the filmstrip's PNGs in a folder",
            PathFor::RunsFolder => "Runs folder",
            PathFor::DataFolder("idx") => "Folder with MNIST-style IDX files",
            PathFor::DataFolder(_) => "Folder of images",
        }
    }

    /// The file name to suggest, for files.
    pub fn file_name(&self) -> Option<String> {
        match self {
            PathFor::Csv { name, .. } | PathFor::Image { name, .. } => Some(name.clone()),
            PathFor::Filmstrip { dir, kind, gif: true } => {
                Some(format!("{}-{}.gif", crate::runs::dir_name(dir), kind.folder()))
            }
            _ => None,
        }
    }

    /// The file type's name and extension, for files.
    fn file_type(&self) -> Option<(&'static str, &'static str)> {
        match self {
            PathFor::Csv { .. } => Some(("CSV", "csv")),
            PathFor::Image { .. } => Some(("PNG image", "png")),
            PathFor::Filmstrip { gif: true, .. } => Some(("Animated GIF", "gif")),
            _ => None,
        }
    }
}

/// A dialog that answers sooner than this did not open: nobody cancels one that fast.
const FAILED_WITHIN: Duration = Duration::from_millis(700);

/// One pending choice of a path.
pub struct PathPrompt {
    purpose: PathFor,
    title: String,
    text: String,
    /// The system dialog's answer, and when it was opened.
    dialog: Option<(Receiver<Option<PathBuf>>, Instant)>,
    note: Option<String>,
    /// Just opened: its field takes the keyboard.
    focus: bool,
}

/// What the prompt came to in a frame.
pub enum Answer {
    Open,
    Cancelled,
    Chosen(PathFor, PathBuf),
}

impl PathPrompt {
    /// A prompt whose field starts at `suggested`; with `system_dialog` the system's file dialog opens at
    /// once on its own thread (the field stays usable meanwhile).
    pub fn new(purpose: PathFor, suggested: &Path, system_dialog: bool, ctx: &Context) -> PathPrompt {
        let title = purpose.title();
        let mut note = None;
        let dialog = system_dialog.then(|| {
            let (sender, receiver) = bounded(1);
            let mut dialog = rfd::FileDialog::new().set_title(title);
            if let Some(folder) = suggested.parent().filter(|_| !purpose.is_folder()) {
                dialog = dialog.set_directory(folder);
            }
            if let (Some((name, extension)), Some(file)) = (purpose.file_type(), suggested.file_name()) {
                dialog = dialog
                    .add_filter(name, &[extension])
                    .set_file_name(file.to_string_lossy());
            }
            let folder = purpose.is_folder();
            let ctx = ctx.clone();
            let spawned = std::thread::Builder::new()
                .name("gantry-file-dialog".into())
                .spawn(move || {
                    let chosen = if folder {
                        dialog.pick_folder()
                    } else {
                        dialog.save_file()
                    };
                    let _ = sender.send(chosen);
                    ctx.request_repaint();
                });
            match spawned {
                Ok(_) => Some((receiver, Instant::now())),
                Err(e) => {
                    note = Some(format!("No file dialog could open ({e}): type the path and press OK."));
                    None
                }
            }
        });
        PathPrompt {
            purpose,
            title: title.to_string(),
            text: suggested.display().to_string(),
            dialog: dialog.flatten(),
            note: note.or_else(|| (!system_dialog).then(|| "Type the path and press OK.".to_string())),
            focus: true,
        }
    }

    /// Draws the prompt as a small window.
    pub fn show(&mut self, ctx: &Context) -> Answer {
        if let Some((receiver, opened)) = &self.dialog {
            if let Ok(chosen) = receiver.try_recv() {
                let quick = opened.elapsed() < FAILED_WITHIN;
                self.dialog = None;
                match chosen {
                    Some(path) => return Answer::Chosen(self.purpose.clone(), path),
                    None if quick => {
                        self.note = Some(
                            "No file dialog could open here (it needs a desktop portal or zenity): type the \
                             path and press OK."
                                .into(),
                        )
                    }
                    None => return Answer::Cancelled,
                }
            }
        }
        let mut answer = Answer::Open;
        egui::Window::new(&self.title)
            .collapsible(false)
            .resizable(false)
            .anchor(egui::Align2::CENTER_CENTER, egui::Vec2::ZERO)
            .show(ctx, |ui| {
                if self.dialog.is_some() {
                    ui.horizontal(|ui| {
                        ui.spinner();
                        ui.weak("The system's file dialog is open (or type the path here).");
                    });
                }
                if let Some(note) = &self.note {
                    ui.label(note);
                }
                let kind = if self.purpose.is_folder() { "Folder" } else { "File" };
                let label = ui.label(kind);
                let field = ui
                    .add(TextEdit::singleline(&mut self.text).desired_width(420.0))
                    .labelled_by(label.id);
                if std::mem::take(&mut self.focus) {
                    field.request_focus();
                }
                let entered = field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
                if ui.input(|i| i.key_pressed(egui::Key::Escape)) {
                    answer = Answer::Cancelled;
                }
                ui.horizontal(|ui| {
                    let path = PathBuf::from(self.text.trim());
                    let ok = ui.add_enabled(!self.text.trim().is_empty(), egui::Button::new("OK"));
                    if ok.clicked() || (entered && !self.text.trim().is_empty()) {
                        answer = Answer::Chosen(self.purpose.clone(), path);
                    }
                    if ui.button("Cancel").on_hover_text("Escape").clicked() {
                        answer = Answer::Cancelled;
                    }
                });
            });
        answer
    }
}
