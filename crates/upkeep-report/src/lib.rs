//! Merges `ComponentUpdates` documents into one `UpdateReport`, and renders
//! a report as text or markdown that an operator reads in ten seconds.

mod merge;
mod render;

pub use merge::{FailOn, matches_fail_on, merge};
pub use render::{render_markdown, render_text};
