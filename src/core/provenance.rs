//! What a model was trained on: its files, their folder and image sizes, when, and a short
//! id. Written into the model file so that a model can say what parts it knows, and the
//! window can warn when it is used on parts unlike them.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// What a model did with a good image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelRole {
    /// It learnt from it: its score says little about the part.
    TrainedOn,
    /// It scored it to set its line.
    HeldOut,
}

impl ModelRole {
    /// Its word in exports: `trained_on` or `held_out`.
    pub fn name(self) -> &'static str {
        match self {
            ModelRole::TrainedOn => "trained_on",
            ModelRole::HeldOut => "held_out",
        }
    }
}

/// Where a model came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingRecord {
    /// A short id for reports and logs (12 hex digits of a hash of the files, the settings
    /// and the time).
    pub id: String,
    /// When training finished, UTC, as `YYYY-MM-DDTHH:MM:SSZ`.
    pub trained_at: String,
    /// The folder holding the training images (their deepest common folder).
    pub folder: Option<PathBuf>,
    /// The images trained on.
    pub train_files: Vec<PathBuf>,
    /// The good images held out to calibrate the line.
    pub validation_files: Vec<PathBuf>,
    /// The training images' sizes (width, height) and how many had each, commonest first.
    pub image_sizes: Vec<(u32, u32, usize)>,
    /// Images confirmed defective that the model learnt from (an evaluation must leave
    /// them out).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub defect_files: Vec<PathBuf>,
    /// The grey levels of the training and held-out good images (at most
    /// [`LEVEL_IMAGES`] of them), so that the line can tell when its parts look brighter,
    /// darker or flatter than those (see [`crate::core::drift`]). Empty in older files.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub levels: Vec<crate::core::image_io::ImageLevels>,
}

/// Good images whose grey levels a training record keeps.
pub const LEVEL_IMAGES: usize = 64;

impl TrainingRecord {
    /// The record of a training run on `train` and `validation` with settings described
    /// by `settings`, finished at `unix_secs`. Image sizes are read from the files'
    /// headers; unreadable files are left out of them.
    pub fn new(train: &[PathBuf], validation: &[PathBuf], settings: &str, unix_secs: u64) -> Self {
        let mut sizes: Vec<(u32, u32, usize)> = Vec::new();
        for path in train {
            if let Ok((w, h)) = image::image_dimensions(path) {
                match sizes.iter_mut().find(|(sw, sh, _)| (*sw, *sh) == (w, h)) {
                    Some(entry) => entry.2 += 1,
                    None => sizes.push((w, h, 1)),
                }
            }
        }
        sizes.sort_by_key(|s| std::cmp::Reverse(s.2));
        // Spread over the images when there are more than are kept.
        let all: Vec<&PathBuf> = train.iter().chain(validation).collect();
        let step = all.len().div_ceil(LEVEL_IMAGES).max(1);
        let levels = all
            .iter()
            .step_by(step)
            .filter_map(|p| crate::core::image_io::load_rgb(p).ok())
            .map(|img| crate::core::image_io::ImageLevels::of(&img))
            .collect();
        let mut hash = Sha256::new();
        for p in train.iter().chain(validation) {
            hash.update(p.to_string_lossy().as_bytes());
            hash.update([0]);
        }
        hash.update(settings.as_bytes());
        hash.update(unix_secs.to_le_bytes());
        let id: String = hash.finalize()[..6]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Self {
            id,
            trained_at: utc_text(unix_secs),
            folder: common_folder(train),
            train_files: train.to_vec(),
            validation_files: validation.to_vec(),
            image_sizes: sizes,
            defect_files: Vec::new(),
            levels,
        }
    }

    /// Whether an image of this size is like the training images: the same size when
    /// they all had one (a fixed camera); within half the smallest to twice the largest
    /// width and height when their sizes varied (cut-out parts, as magnetic tiles).
    pub fn knows_size(&self, width: u32, height: u32) -> bool {
        match self.image_sizes.as_slice() {
            [] => true,
            [(w, h, _)] => (*w, *h) == (width, height),
            sizes => {
                let range = |pick: fn(&(u32, u32, usize)) -> u32| {
                    let lo = sizes.iter().map(pick).min().unwrap_or(0);
                    let hi = sizes.iter().map(pick).max().unwrap_or(u32::MAX);
                    (lo / 2)..=hi.saturating_mul(2)
                };
                range(|s| s.0).contains(&width) && range(|s| s.1).contains(&height)
            }
        }
    }

    /// What the model did with `path`: trained on it, held it out to set its line, or
    /// neither (`None`).
    pub fn role_of(&self, path: &Path) -> Option<ModelRole> {
        if self.train_files.iter().any(|p| p == path) {
            Some(ModelRole::TrainedOn)
        } else if self.validation_files.iter().any(|p| p == path) {
            Some(ModelRole::HeldOut)
        } else {
            None
        }
    }

    /// "96×96" or "96×96, 128×128 and 2 more".
    pub fn sizes_text(&self) -> String {
        let shown: Vec<String> = self
            .image_sizes
            .iter()
            .take(2)
            .map(|(w, h, _)| format!("{w}×{h}"))
            .collect();
        let more = self.image_sizes.len().saturating_sub(2);
        match more {
            0 => shown.join(" and "),
            n => format!("{} and {n} more", shown.join(", ")),
        }
    }
}

/// The deepest folder holding every path; `None` for no paths.
pub fn common_folder(paths: &[PathBuf]) -> Option<PathBuf> {
    let mut common: Option<PathBuf> = None;
    for p in paths {
        let parent = p.parent().unwrap_or(Path::new(""));
        common = Some(match common {
            None => parent.to_path_buf(),
            Some(c) => c
                .components()
                .zip(parent.components())
                .take_while(|(a, b)| a == b)
                .map(|(a, _)| a)
                .collect(),
        });
    }
    common
}

/// `unix_secs` as `YYYY-MM-DDTHH:MM:SSZ` (the proleptic Gregorian calendar).
pub fn utc_text(unix_secs: u64) -> String {
    let days = (unix_secs / 86_400) as i64;
    let secs = unix_secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Seconds since 1970 now (0 if the clock is before it).
pub fn now_unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc_calendar_dates() {
        assert_eq!(utc_text(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_text(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc_text(1_795_737_599), "2026-11-26T23:59:59Z");
    }

    #[test]
    fn the_record_names_the_folder_sizes_and_an_id() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("train/good");
        std::fs::create_dir_all(&good).unwrap();
        let mut files = Vec::new();
        for (i, (w, h)) in [(8, 6), (8, 6), (5, 5)].into_iter().enumerate() {
            let p = good.join(format!("{i}.png"));
            image::RgbImage::new(w, h).save(&p).unwrap();
            files.push(p);
        }
        let r = TrainingRecord::new(&files[..3], &[], "patchcore", 0);
        assert_eq!(r.folder.as_deref(), Some(good.as_path()));
        assert_eq!(r.image_sizes, vec![(8, 6, 2), (5, 5, 1)]);
        // Black images: grey levels 0 and no spread, one per image.
        assert_eq!(r.levels.len(), 3);
        assert!(
            r.levels
                .iter()
                .all(|l| l.brightness == 0.0 && l.contrast == 0.0)
        );
        assert_eq!(r.sizes_text(), "8×6 and 5×5");
        // Varied training sizes: anything within half to twice their range.
        assert!(r.knows_size(5, 5) && r.knows_size(6, 8) && r.knows_size(16, 12));
        assert!(!r.knows_size(17, 6) && !r.knows_size(1, 6));
        // One training size: that size only.
        let one = TrainingRecord::new(&files[..2], &[], "patchcore", 0);
        assert!(one.knows_size(8, 6) && !one.knows_size(6, 8));
        assert_eq!(r.id.len(), 12);
        assert_ne!(
            r.id,
            TrainingRecord::new(&files[..3], &[], "patchcore", 1).id
        );
        assert_eq!(
            common_folder(&[PathBuf::from("/a/b/c.png"), PathBuf::from("/a/d/e.png")]),
            Some(PathBuf::from("/a"))
        );
    }
}
