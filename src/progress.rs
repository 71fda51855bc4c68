//! The progress display of `sync`: on a terminal, two indicatif bars on stderr (images
//! copied out of the total, and bytes with their throughput); elsewhere nothing is drawn
//! (logs and the final summary line tell the story).

use std::collections::HashSet;
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::digest::Digest;
use crate::registry::mirror::MirrorObserver;

/// Images and bytes of one sync run.
#[derive(Debug)]
pub struct Progress {
    multi: Option<MultiProgress>,
    images: ProgressBar,
    bytes: ProgressBar,
    done: Mutex<HashSet<(String, Digest)>>,
}

impl Progress {
    /// A display of `images` images to copy; drawn on stderr when `draw`, else hidden.
    pub fn new(draw: bool, images: u64) -> Progress {
        if !draw {
            return Progress {
                multi: None,
                images: ProgressBar::hidden(),
                bytes: ProgressBar::hidden(),
                done: Mutex::new(HashSet::new()),
            };
        }
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let image_style =
            ProgressStyle::with_template("{prefix:>7} [{bar:30}] {pos}/{len} {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
        let byte_style = ProgressStyle::with_template(
            "{prefix:>7} [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} {elapsed}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        let image_bar = multi.add(
            ProgressBar::new(images)
                .with_style(image_style)
                .with_prefix("images"),
        );
        let byte_bar = multi.add(
            ProgressBar::new(0)
                .with_style(byte_style)
                .with_prefix("bytes"),
        );
        Progress {
            multi: Some(multi),
            images: image_bar,
            bytes: byte_bar,
            done: Mutex::new(HashSet::new()),
        }
    }

    /// The image `digest` is complete in `target` (counted once however often reported).
    pub fn image_done(&self, target: &str, digest: &Digest, label: &str) {
        let first = self
            .done
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((target.to_string(), digest.clone()));
        if first {
            self.images.inc(1);
            self.images.set_message(label.to_string());
        }
    }

    /// Whether bars are drawn.
    pub fn is_drawn(&self) -> bool {
        self.multi.is_some()
    }

    /// Removes the bars (before the summary is printed).
    pub fn finish(&self) {
        self.images.finish_and_clear();
        self.bytes.finish_and_clear();
        if let Some(m) = &self.multi {
            let _ = m.clear();
        }
    }
}

impl MirrorObserver for Progress {
    fn blob_started(&self, _digest: &Digest, size: Option<u64>) {
        if let Some(s) = size {
            self.bytes.inc_length(s);
        }
    }

    fn bytes(&self, n: u64) {
        self.bytes.inc(n);
    }
}
