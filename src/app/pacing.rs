//! How often a training run's news redraws the window. Under a software renderer (a VM or remote desktop
//! without a GPU) one frame of the workbench costs tens of milliseconds of CPU taken straight from training,
//! so frames for training news follow what frames cost: they take at most `FRAME_SHARE` of the time, at
//! 20 to 1 frames per second. Input (hover, drag, typing) is not paced: egui draws it at once.

use eframe::egui::Context;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The frame rate for a training run's news, a setting in the toolbar.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum LiveRefresh {
    /// Up to 20 frames a second, fewer when frames are expensive.
    #[default]
    Auto,
    /// At most this many frames a second.
    PerSecond(u32),
}

impl LiveRefresh {
    /// The choices the toolbar offers.
    pub const CHOICES: [LiveRefresh; 6] = [
        LiveRefresh::Auto,
        LiveRefresh::PerSecond(20),
        LiveRefresh::PerSecond(10),
        LiveRefresh::PerSecond(5),
        LiveRefresh::PerSecond(2),
        LiveRefresh::PerSecond(1),
    ];

    pub fn label(self) -> String {
        match self {
            LiveRefresh::Auto => "auto".into(),
            LiveRefresh::PerSecond(n) => format!("{n} per s"),
        }
    }
}

/// The shortest wait between frames for training news: 20 frames a second is plenty for curves and samples.
const FASTEST: Duration = Duration::from_millis(50);
/// The longest: a run's progress still moves every second.
const SLOWEST: Duration = Duration::from_secs(1);
/// Frames for training news take at most this share of the time, as eframe measures frames (on the UI
/// thread; a software renderer's own threads take about twice as much again, BENCHMARKS.md, Window). At 3 %
/// the window on a 2-core Intel host took training to 85 % of its headless speed, on the target's edge.
const FRAME_SHARE: f64 = 0.02;
/// Weight of the newest frame in the running mean of frame costs (a few frames smooth one slow frame).
const NEWEST_WEIGHT: f64 = 0.2;

/// Measures frames and sets the wait of the trainer's repaint requests from them.
#[derive(Default)]
pub struct FramePacer {
    /// Running mean of what a frame cost, in seconds; `None` before the first measured frame.
    frame_cost: Option<f64>,
    /// The current wait in microseconds, shared with the trainers' wakers.
    wait_us: Arc<AtomicU64>,
}

impl FramePacer {
    /// Takes what the last frame cost (eframe's measure: building it and handing it to the renderer).
    pub fn record(&mut self, frame_s: f32) {
        let cost = f64::from(frame_s);
        self.frame_cost = Some(
            self.frame_cost
                .map_or(cost, |mean| mean + NEWEST_WEIGHT * (cost - mean)),
        );
    }

    /// Sets the wait the wakers use from the frames so far and the setting.
    pub fn update(&self, refresh: LiveRefresh) {
        self.wait_us
            .store(self.wait(refresh).as_micros() as u64, Ordering::Relaxed);
    }

    /// How long training news waits for a frame.
    pub fn wait(&self, refresh: LiveRefresh) -> Duration {
        match refresh {
            LiveRefresh::Auto => {
                let paced = Duration::from_secs_f64(self.frame_cost.unwrap_or(0.0) / FRAME_SHARE);
                paced.clamp(FASTEST, SLOWEST)
            }
            LiveRefresh::PerSecond(n) => Duration::from_secs_f64(1.0 / f64::from(n.max(1))),
        }
    }

    /// A waker for a trainer: asks for a frame no sooner than the current wait (a frame already due sooner
    /// stays due), so many events between two frames cost one frame.
    pub fn waker(&self, ctx: &Context) -> crate::train::worker::Waker {
        let (ctx, wait_us) = (ctx.clone(), self.wait_us.clone());
        Arc::new(move || ctx.request_repaint_after(Duration::from_micros(wait_us.load(Ordering::Relaxed))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expensive_frames_are_drawn_less_often() {
        let mut pacer = FramePacer::default();
        assert_eq!(pacer.wait(LiveRefresh::Auto), FASTEST, "no frame measured yet");
        // Frames of a GPU-drawn window (under 1 ms) keep 20 frames a second.
        for _ in 0..20 {
            pacer.record(0.0008);
        }
        assert_eq!(pacer.wait(LiveRefresh::Auto), FASTEST);
        // Software-rendered frames (15 ms) are drawn at most 1/FRAME_SHARE of their cost apart.
        for _ in 0..30 {
            pacer.record(0.015);
        }
        let wait = pacer.wait(LiveRefresh::Auto).as_secs_f64();
        assert!((0.72..=0.78).contains(&wait), "{wait}");
        // However slow the frames, the run's progress is drawn every second.
        pacer.record(5.0);
        assert_eq!(pacer.wait(LiveRefresh::Auto), SLOWEST);
        // A fixed rate ignores the cost.
        assert_eq!(pacer.wait(LiveRefresh::PerSecond(2)), Duration::from_millis(500));
    }
}
