//! Gantry: train GANs and autoencoders and watch them learn.
//!
//! The engine (`config`, `data`, `models`, `train`, `runs`) knows nothing of any UI; it sends plain data
//! (metric rows, RGBA8 grids) that the CLI and the workbench present.

pub mod app;
pub mod cli;
pub mod config;
pub mod cpu;
pub mod data;
pub mod errors;
pub mod footprint;
pub mod fsio;
pub mod grid;
pub mod memory;
pub mod models;
pub mod numbers;
pub mod presets;
pub mod quality;
pub mod rng;
pub mod runs;
pub mod sweep;
pub mod threads;
pub mod train;
