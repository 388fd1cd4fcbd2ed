//! Small widgets the panels share: labelled form rows, enum pickers, the learning-rate field.

use crate::config::{Activation, Corruption, Fit, GanLoss, Norm, OptimizerKind, Recon};
use crate::numbers::significant;
use eframe::egui;
use egui::{ComboBox, DragValue, Response, Ui};
use std::cell::Cell;
use std::ops::RangeInclusive;

/// One row of a two-column `egui::Grid` form: the label, then the inputs `add` makes, named by the label
/// for screen readers and tests. Put a hint on the returned response, not inside `add`: a tooltip set
/// first would name the input instead of the label.
pub fn form_row<R>(ui: &mut Ui, label: &str, add: impl FnOnce(&mut Ui) -> R) -> R {
    let label = ui.label(label);
    let result = ui.label_inputs_by(label.id, |ui| ui.horizontal(add).inner);
    ui.end_row();
    result
}

/// A combo box choosing one of `options` (value, name).
pub fn choice<T: Copy + PartialEq>(ui: &mut Ui, id_salt: &str, value: &mut T, options: &[(T, &str)]) -> bool {
    let selected = options.iter().find(|(v, _)| v == value).map_or("?", |(_, name)| name);
    let mut changed = false;
    ComboBox::from_id_salt(id_salt)
        .selected_text(selected)
        .show_ui(ui, |ui| {
            for (option, name) in options {
                changed |= ui.selectable_value(value, *option, *name).changed();
            }
        });
    changed
}

/// Adds `field`, a number kept to `range`. egui keeps a typed number to its field's range without a word: a
/// number typed outside it leaves a note beside the field (the bound it took) until the field is next
/// changed.
pub fn bounded<N: egui::emath::Numeric>(ui: &mut Ui, range: RangeInclusive<N>, field: DragValue<'_>) -> Response {
    let (low, high) = (range.start().to_f64(), range.end().to_f64());
    let typed = Cell::new(None);
    let field = field.range(range).custom_parser(|text| {
        // egui's own parsing: spaces (thousands separators) ignored, the minus sign read as a hyphen.
        let text: String = text
            .chars()
            .filter(|c| !c.is_whitespace())
            .map(|c| if c == '\u{2212}' { '-' } else { c })
            .collect();
        let number = text.parse::<f64>().ok();
        typed.set(number);
        number
    });
    let response = ui.add(field);
    let note_id = response.id.with("kept to range");
    match typed.get() {
        Some(number) if number < low || number > high => {
            let bound = match number < low {
                true => format!("min {}", number_text(low)),
                false => format!("max {}", number_text(high)),
            };
            let (typed, low, high) = (number_text(number), number_text(low), number_text(high));
            let note = (bound, format!("{typed} is outside {low} to {high}"));
            ui.data_mut(|d| d.insert_temp(note_id, note));
        }
        Some(_) => ui.data_mut(|d| d.remove::<(String, String)>(note_id)),
        None if response.dragged() => ui.data_mut(|d| d.remove::<(String, String)>(note_id)),
        None => {}
    }
    if let Some((bound, why)) = ui.data(|d| d.get_temp::<(String, String)>(note_id)) {
        ui.colored_label(ui.visuals().warn_fg_color, bound).on_hover_text(why);
    }
    response
}

/// A whole number in full (a million items reads 1000000, not 1.000e6), others to a few significant digits.
fn number_text(value: f64) -> String {
    match value.fract() == 0.0 && value.abs() < 1e15 {
        true => format!("{}", value as i64),
        false => significant(value),
    }
}

/// A learning-rate field: shown as `2e-4`, typed as any float, dragged in proportion to its size so one
/// drag spans orders of magnitude.
pub fn learning_rate(ui: &mut Ui, value: &mut f64) -> Response {
    let speed = *value * 0.02;
    // Dragging stays in a sensible range, but a value loaded outside it is left alone.
    let field = DragValue::new(value)
        .clamp_existing_to_range(false)
        .speed(speed)
        .custom_formatter(|v, _| scientific(v));
    bounded(ui, 1e-7..=1.0, field)
}

/// `0.0002` as `2e-4`, `0.00025` as `2.5e-4`: how learning rates are written.
pub fn scientific(value: f64) -> String {
    let text = format!("{value:.2e}");
    let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
    let mantissa = mantissa.trim_end_matches('0').trim_end_matches('.');
    if exponent == "0" {
        mantissa.to_string()
    } else {
        format!("{mantissa}e{exponent}")
    }
}

pub const ACTIVATIONS: [(Activation, &str); 4] = [
    (Activation::Relu, "ReLU"),
    (Activation::LeakyRelu, "leaky ReLU"),
    (Activation::Gelu, "GELU"),
    (Activation::Silu, "SiLU"),
];

pub const NORMS: [(Norm, &str); 3] = [(Norm::None, "none"), (Norm::Batch, "batch"), (Norm::Layer, "layer")];

pub const RECONS: [(Recon, &str); 2] = [(Recon::Bce, "BCE (sigmoid output)"), (Recon::Mse, "MSE (tanh output)")];

pub const CORRUPTIONS: [(Corruption, &str); 2] = [
    (Corruption::Gaussian, "Gaussian noise"),
    (Corruption::Mask, "masked pixels"),
];

pub const OPTIMIZERS: [(OptimizerKind, &str); 4] = [
    (OptimizerKind::Adam, "Adam"),
    (OptimizerKind::AdamW, "AdamW"),
    (OptimizerKind::Sgd, "SGD"),
    (OptimizerKind::Rmsprop, "RMSprop"),
];

pub const GAN_LOSSES: [(GanLoss, &str); 5] = [
    (GanLoss::NonSaturating, "non-saturating"),
    (GanLoss::Minimax, "minimax"),
    (GanLoss::LeastSquares, "least squares"),
    (GanLoss::Hinge, "hinge"),
    (GanLoss::Wasserstein, "Wasserstein (clipped)"),
];

pub const FITS: [(Fit, &str); 2] = [(Fit::CenterCrop, "center crop"), (Fit::Letterbox, "letterbox")];

#[cfg(test)]
mod tests {
    use super::{number_text, scientific};

    #[test]
    fn a_range_note_writes_whole_numbers_in_full() {
        assert_eq!(number_text(1_000_000.0), "1000000");
        assert_eq!(number_text(4096.0), "4096");
        assert_eq!(number_text(0.9999), "0.9999");
        assert_eq!(number_text(1.5), "1.5");
    }

    #[test]
    fn learning_rates_read_as_scientific_notation() {
        assert_eq!(scientific(2e-4), "2e-4");
        assert_eq!(scientific(2.5e-4), "2.5e-4");
        assert_eq!(scientific(1e-3), "1e-3");
        assert_eq!(scientific(0.5), "5e-1");
        assert_eq!(scientific(1.0), "1");
    }
}
