//! Finding the images of a data set on disk.
//!
//! Two layouts are understood:
//!
//! - **MVTec AD**: `ROOT/train/good/*` are the defect-free training images,
//!   `ROOT/test/<type>/*` the test images (type `good` is defect-free, every other type is a
//!   kind of defect) and `ROOT/ground_truth/<type>/<stem>_mask.png` the defect masks.
//! - **A plain folder**: every image in the folder and its subfolders is an unlabelled
//!   image to inspect.
//!
//! Everything is sorted by path so the same folder always gives the same lists. Hidden
//! entries (whose name starts with `.`) and files without an image extension are skipped.
//! Symbolic links to files are followed, symbolic links to folders are not, so a link loop
//! cannot make discovery run forever. A broken link with an image name (dangling, or part
//! of a loop) is listed like an image: loading it fails with a message that says why, so
//! it is reported with the other unreadable images instead of vanishing.

use crate::core::image_io::{io_reason, is_image_path};
use crate::core::rng::SplitMix64;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The name of the MVTec AD folders that hold defect-free images.
const GOOD: &str = "good";

/// What is known about one image before it is scored.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Label {
    /// Known to be defect-free.
    Good,
    /// Known to be defective; the string is the defect type (the MVTec folder name, e.g.
    /// `scratch`).
    Defect(String),
    /// Not labelled: an image to inspect.
    Unknown,
}

impl Label {
    /// `Some(true)` for a defect, `Some(false)` for a good image, `None` when unlabelled.
    pub fn is_defect(&self) -> Option<bool> {
        match self {
            Label::Good => Some(false),
            Label::Defect(_) => Some(true),
            Label::Unknown => None,
        }
    }

    /// `"good"`, the defect type, or `"unknown"`.
    pub fn type_name(&self) -> &str {
        match self {
            Label::Good => GOOD,
            Label::Defect(kind) => kind,
            Label::Unknown => "unknown",
        }
    }
}

/// One image to score, with its label and, for a labelled defect, its ground-truth mask.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Sample {
    /// The image file.
    pub path: PathBuf,
    /// What is known about the image.
    pub label: Label,
    /// The defect mask (nonzero = defective pixel), when the data set has one.
    pub mask: Option<PathBuf>,
}

/// The images of a data set, found by [`discover`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dataset {
    /// The folder the data set was found in.
    pub root: PathBuf,
    /// Defect-free training images, sorted by path; empty for a plain folder.
    pub train_good: Vec<PathBuf>,
    /// Images to score, sorted by path: labelled for MVTec AD, [`Label::Unknown`] for a
    /// plain folder.
    pub test: Vec<Sample>,
    /// Entries left out while listing, with the reason (a folder named like an image, a
    /// link to a folder, an unreachable entry).
    pub skipped: Vec<(PathBuf, String)>,
}

impl Dataset {
    /// The distinct defect types of the test images, sorted (without `good`).
    pub fn defect_types(&self) -> Vec<String> {
        let mut types: Vec<String> = self
            .test
            .iter()
            .filter_map(|sample| match &sample.label {
                Label::Defect(kind) => Some(kind.clone()),
                Label::Good | Label::Unknown => None,
            })
            .collect();
        types.sort_unstable();
        types.dedup();
        types
    }
}

/// Why a data set could not be found. Every variant names the path at fault.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// The data set folder does not exist.
    #[error("data set folder not found: {}", path.display())]
    Missing {
        /// The missing folder.
        path: PathBuf,
    },
    /// The path exists but is not a folder.
    #[error("data set path is not a folder: {}", path.display())]
    NotAFolder {
        /// The path that is not a folder.
        path: PathBuf,
    },
    /// A folder could not be listed.
    ///
    /// The I/O error is kept in `error` but is not the error's `source`, because its reason
    /// is already in the message.
    #[error("cannot read data set folder ({}): {}", io_reason(error), path.display())]
    Read {
        /// The folder that could not be listed.
        path: PathBuf,
        /// What the operating system reported.
        error: io::Error,
    },
    /// A folder that must hold images holds none.
    #[error("no images found in folder: {}", path.display())]
    NoImages {
        /// The folder without images (the root, or `ROOT/train/good` for MVTec AD).
        path: PathBuf,
    },
}

/// Finds the images of the data set in `root`.
///
/// When `root/train/good` is a folder, `root` is read as MVTec AD (see the module
/// documentation) and `train/good` must hold at least one image; `test` may be missing.
/// Otherwise every image in `root` and its subfolders becomes a [`Label::Unknown`] test
/// sample and `train_good` is empty. Images lying loose in `root/test` (outside a type
/// folder) are ignored.
pub fn discover(root: &Path) -> Result<Dataset, DatasetError> {
    match fs::metadata(root) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            return Err(DatasetError::Missing {
                path: root.to_owned(),
            });
        }
        Err(error) => {
            return Err(DatasetError::Read {
                path: root.to_owned(),
                error,
            });
        }
        Ok(metadata) if !metadata.is_dir() => {
            return Err(DatasetError::NotAFolder {
                path: root.to_owned(),
            });
        }
        Ok(_) => {}
    }

    let train_dir = root.join("train").join(GOOD);
    if train_dir.is_dir() {
        discover_mvtec(root, &train_dir)
    } else {
        let (images, skipped) = images_in(root)?;
        if images.is_empty() {
            return Err(DatasetError::NoImages {
                path: root.to_owned(),
            });
        }
        Ok(Dataset {
            root: root.to_owned(),
            train_good: Vec::new(),
            skipped,
            test: images
                .into_iter()
                .map(|path| Sample {
                    path,
                    label: Label::Unknown,
                    mask: None,
                })
                .collect(),
        })
    }
}

/// Reads the MVTec AD layout under `root`, whose `train/good` folder is `train_dir`.
fn discover_mvtec(root: &Path, train_dir: &Path) -> Result<Dataset, DatasetError> {
    let (train_good, mut skipped) = images_in(train_dir)?;
    if train_good.is_empty() {
        return Err(DatasetError::NoImages {
            path: train_dir.to_owned(),
        });
    }

    let mut test = Vec::new();
    let test_dir = root.join("test");
    if test_dir.is_dir() {
        let read_error = |error| DatasetError::Read {
            path: test_dir.clone(),
            error,
        };
        let mut type_dirs = Vec::new();
        for entry in fs::read_dir(&test_dir).map_err(read_error)? {
            let entry = entry.map_err(read_error)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            // A link to a folder is not followed, here as everywhere.
            if !is_hidden(&name) && entry.file_type().map_err(read_error)?.is_dir() {
                type_dirs.push((name, entry.path()));
            }
        }
        type_dirs.sort();

        for (kind, type_dir) in type_dirs {
            let label = if kind == GOOD {
                Label::Good
            } else {
                Label::Defect(kind.clone())
            };
            let mask_dir = root.join("ground_truth").join(&kind);
            let (images, left_out) = images_in(&type_dir)?;
            skipped.extend(left_out);
            for path in images {
                let mask = match label {
                    Label::Defect(_) => find_mask(&type_dir, &mask_dir, &path),
                    Label::Good | Label::Unknown => None,
                };
                test.push(Sample {
                    path,
                    label: label.clone(),
                    mask,
                });
            }
        }
        test.sort_by(|a, b| a.path.cmp(&b.path));
    }

    Ok(Dataset {
        root: root.to_owned(),
        train_good,
        test,
        skipped,
    })
}

/// The mask of `image` (found under `type_dir`): `mask_dir/<subfolders>/<stem>_mask.png`,
/// or `<stem>.png` there, when such a file exists.
fn find_mask(type_dir: &Path, mask_dir: &Path, image: &Path) -> Option<PathBuf> {
    let relative = image.strip_prefix(type_dir).ok()?;
    let stem = relative.file_stem()?.to_string_lossy();
    let folder = mask_dir.join(relative.parent().unwrap_or(Path::new("")));
    [format!("{stem}_mask.png"), format!("{stem}.png")]
        .into_iter()
        .map(|name| folder.join(name))
        .find(|candidate| candidate.is_file())
}

/// Whether a file or folder name marks it hidden.
fn is_hidden(name: &str) -> bool {
    name.starts_with('.')
}

/// What a walk through a folder tree found.
#[derive(Default)]
struct Walk {
    /// Entries with an image extension that are not folders: files, links to files and
    /// broken links.
    images: Vec<PathBuf>,
    /// Entries left out, with the reason: files without an image extension, links to
    /// folders, folders named like images that hold no images.
    skipped: Vec<(PathBuf, String)>,
    /// Folders that could not be listed.
    errors: Vec<(PathBuf, io::Error)>,
}

impl Walk {
    /// Walks `dir` and its subfolders, skipping hidden entries and not following links to
    /// folders. The lists are sorted.
    fn new(dir: &Path) -> Self {
        let mut walk = Walk::default();
        walk.visit(dir);
        walk.images.sort();
        walk.skipped.sort();
        walk
    }

    fn visit(&mut self, dir: &Path) {
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(error) => {
                self.errors.push((dir.to_owned(), error));
                return;
            }
        };
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(error) => {
                    self.errors.push((dir.to_owned(), error));
                    continue;
                }
            };
            if is_hidden(&entry.file_name().to_string_lossy()) {
                continue;
            }
            let path = entry.path();
            // `DirEntry::file_type` does not follow links.
            let file_type = match entry.file_type() {
                Ok(file_type) => file_type,
                Err(error) => {
                    self.errors.push((path, error));
                    continue;
                }
            };
            if file_type.is_dir() {
                let found = (self.images.len(), self.errors.len());
                self.visit(&path);
                // A folder named like an image (say `x.png`) is searched like any other,
                // but when it holds nothing it is worth a word: it looks like a lost image.
                if is_image_path(&path) && found == (self.images.len(), self.errors.len()) {
                    self.skipped
                        .push((path, "a folder, not an image file".to_owned()));
                }
            } else if file_type.is_symlink() && path.is_dir() {
                // Not followed, as a link to a folder can form a loop.
                self.skipped
                    .push((path, "a link to a folder, not followed".to_owned()));
            } else {
                // A file, a link to a file, or a broken link.
                self.add_file(path);
            }
        }
    }

    fn add_file(&mut self, path: PathBuf) {
        if is_image_path(&path) {
            self.images.push(path);
        } else {
            self.skipped
                .push((path, "not an image file extension".to_owned()));
        }
    }
}

/// Entries left out of a listing, with the reason.
type LeftOut = Vec<(PathBuf, String)>;

/// The sorted image files in `dir` and its subfolders with the entries left out (and
/// why), or the first folder that could not be listed.
fn images_in(dir: &Path) -> Result<(Vec<PathBuf>, LeftOut), DatasetError> {
    let mut walk = Walk::new(dir);
    match walk.errors.drain(..).next() {
        Some((path, error)) => Err(DatasetError::Read { path, error }),
        None => Ok((walk.images, walk.skipped)),
    }
}

/// Expands a mix of image files and folders (as given on a command line or dropped on the
/// window) into image files.
///
/// Files come in the order given; a folder is replaced by the images in it and its
/// subfolders, sorted by path. A file named twice is kept once. The second list holds
/// every path left out, with the reason: missing or unreachable (a link loop), not an
/// image extension, a folder without images, a folder named like an image, a link to a
/// folder, or a folder that could not be read. Hidden entries inside folders are left out
/// without a word. Files named like images are listed without being opened: whether they
/// decode is for [`crate::core::image_io::load_rgb`] to say.
pub fn list_images(paths: &[PathBuf]) -> (Vec<PathBuf>, Vec<(PathBuf, String)>) {
    let mut images = Vec::new();
    let mut skipped = Vec::new();
    let mut seen = HashSet::new();
    let mut keep = |path: PathBuf, images: &mut Vec<PathBuf>| {
        if seen.insert(path.clone()) {
            images.push(path);
        }
    };

    for path in paths {
        match fs::metadata(path) {
            Err(error) => skipped.push((path.clone(), io_reason(&error))),
            Ok(metadata) if metadata.is_dir() => {
                let walk = Walk::new(path);
                if walk.images.is_empty() && walk.errors.is_empty() {
                    skipped.push((path.clone(), "no images in the folder".to_owned()));
                }
                for image in walk.images {
                    keep(image, &mut images);
                }
                skipped.extend(walk.skipped);
                skipped.extend(
                    walk.errors
                        .into_iter()
                        .map(|(dir, error)| (dir, format!("cannot read ({})", io_reason(&error)))),
                );
            }
            Ok(metadata) if !metadata.is_file() => {
                skipped.push((path.clone(), "not a file".to_owned()));
            }
            Ok(_) if is_image_path(path) => keep(path.clone(), &mut images),
            Ok(_) => skipped.push((path.clone(), "not an image file extension".to_owned())),
        }
    }
    (images, skipped)
}

/// How many good images to hold out for validation when the user does not say.
///
/// Every image that `train_count` leaves unused, up to 64, when that is at least 16: the
/// more held out, the better the false-reject rate of a line is known (with none of 16
/// rejected it could still be 17 %; of 64, 4.6 %). Otherwise a fifth of the good images
/// (rounded down), at most 8, so a small data set keeps most of its images for training.
/// [`split_train_val`] further caps it at half of the images.
pub fn default_val_count(good_count: usize, train_count: Option<usize>) -> usize {
    const MIN_SPARE_VAL_COUNT: usize = 16;
    const MAX_SPARE_VAL_COUNT: usize = 64;
    const MAX_SHARED_VAL_COUNT: usize = 8;
    let spare = train_count.map_or(0, |count| good_count.saturating_sub(count));
    if spare >= MIN_SPARE_VAL_COUNT {
        spare.min(MAX_SPARE_VAL_COUNT)
    } else {
        (good_count / 5).min(MAX_SHARED_VAL_COUNT)
    }
}

/// `images` in a seeded random order in which each image's place depends only on its file
/// name and `seed`, not on which other images are there: adding or removing one image
/// never reorders the others (ties, such as equal names in two folders, go by path).
pub fn seeded_order(images: &[PathBuf], seed: u64) -> Vec<PathBuf> {
    let key = |p: &Path| -> u64 {
        let name = p.file_name().unwrap_or(p.as_os_str()).as_encoded_bytes();
        // FNV-1a of the name, mixed with the seed by SplitMix64.
        let hash = name.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
        });
        SplitMix64::new(hash ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)).next_u64()
    };
    let mut keyed: Vec<(u64, &PathBuf)> = images.iter().map(|p| (key(p), p)).collect();
    keyed.sort();
    keyed.into_iter().map(|(_, p)| p.clone()).collect()
}

/// Up to `per_type` labelled defective images of each defect type among `samples`,
/// drawn in the [`seeded_order`] of `seed` (so the same arguments give the same draw),
/// sorted by path, with their masks. The rest is what an evaluation of a model trained on
/// them may score.
pub fn draw_defects(samples: &[Sample], per_type: usize, seed: u64) -> Vec<Sample> {
    let mut kinds: Vec<&str> = samples
        .iter()
        .filter_map(|s| match &s.label {
            Label::Defect(kind) => Some(kind.as_str()),
            _ => None,
        })
        .collect();
    kinds.sort_unstable();
    kinds.dedup();
    let mut drawn = Vec::new();
    for kind in kinds {
        let of_kind: Vec<&Sample> = samples
            .iter()
            .filter(|s| matches!(&s.label, Label::Defect(k) if k == kind))
            .collect();
        let paths: Vec<PathBuf> = of_kind.iter().map(|s| s.path.clone()).collect();
        for path in seeded_order(&paths, seed).into_iter().take(per_type) {
            if let Some(sample) = of_kind.iter().find(|s| s.path == path) {
                drawn.push((*sample).clone());
            }
        }
    }
    drawn.sort_by(|a, b| a.path.cmp(&b.path));
    drawn
}

/// Splits defect-free images into a training set and a validation set.
///
/// `good` is put in the [`seeded_order`] of `seed`. The validation set is the first
/// `val_count` images of that order, but never more than half of `good` (rounded down), so
/// at least one image is left for training whenever `good` is not empty. The training set
/// is the next `train_count` images, or all the rest when `train_count` is `None`. Both
/// lists come back sorted by path, the same arguments always give the same split, and
/// adding images to `good` moves at most as many images as were added.
pub fn split_train_val(
    good: &[PathBuf],
    train_count: Option<usize>,
    val_count: usize,
    seed: u64,
) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let mut shuffled = seeded_order(good, seed);
    let val_len = val_count.min(shuffled.len() / 2);
    let rest = shuffled.split_off(val_len);
    let mut val = shuffled;
    let train_len = train_count.map_or(rest.len(), |count| count.min(rest.len()));
    let mut train: Vec<PathBuf> = rest.into_iter().take(train_len).collect();
    train.sort();
    val.sort();
    (train, val)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defects_are_drawn_per_type_with_the_seed() {
        let sample = |p: &str, label: Label| Sample {
            path: PathBuf::from(p),
            label,
            mask: None,
        };
        let mut samples = vec![sample("good/0.png", Label::Good)];
        for i in 0..6 {
            samples.push(sample(
                &format!("crack/{i}.png"),
                Label::Defect("crack".into()),
            ));
        }
        samples.push(sample("hole/0.png", Label::Defect("hole".into())));
        let drawn = draw_defects(&samples, 2, 7);
        assert_eq!(drawn.len(), 3, "two cracks and the one hole");
        assert!(drawn.iter().all(|s| s.label.is_defect() == Some(true)));
        assert_eq!(draw_defects(&samples, 2, 7), drawn);
        assert!(draw_defects(&samples, 0, 7).is_empty());
        assert_ne!(
            (0..5)
                .map(|seed| draw_defects(&samples, 2, seed))
                .collect::<HashSet<_>>()
                .len(),
            1,
            "the seed decides the draw"
        );
    }

    /// Creates the files (with placeholder contents) and returns the temporary root.
    fn tree(files: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temporary folder");
        for file in files {
            let path = dir.path().join(file);
            fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            fs::write(&path, b"x").expect("write");
        }
        dir
    }

    fn mvtec() -> tempfile::TempDir {
        tree(&[
            "train/good/002.png",
            "train/good/000.png",
            "train/good/001.PNG",
            "train/good/.hidden.png",
            "train/good/readme.txt",
            "test/good/000.png",
            "test/scratch/001.png",
            "test/scratch/000.png",
            "test/crack/000.png",
            "test/loose.png",
            "test/.thumbs/000.png",
            "ground_truth/scratch/000_mask.png",
            "ground_truth/crack/000.png",
            "license.txt",
        ])
    }

    #[test]
    fn label_helpers() {
        assert_eq!(Label::Good.is_defect(), Some(false));
        assert_eq!(Label::Defect("hole".into()).is_defect(), Some(true));
        assert_eq!(Label::Unknown.is_defect(), None);
        assert_eq!(Label::Good.type_name(), "good");
        assert_eq!(Label::Defect("hole".into()).type_name(), "hole");
        assert_eq!(Label::Unknown.type_name(), "unknown");
    }

    #[test]
    fn label_and_sample_round_trip_through_json() {
        let sample = Sample {
            path: PathBuf::from("/d/test/hole/000.png"),
            label: Label::Defect("hole".into()),
            mask: Some(PathBuf::from("/d/ground_truth/hole/000_mask.png")),
        };
        let json = serde_json::to_string(&sample).expect("serialise");
        assert_eq!(
            serde_json::from_str::<Sample>(&json).expect("deserialise"),
            sample
        );
        for label in [Label::Good, Label::Unknown] {
            let json = serde_json::to_string(&label).expect("serialise");
            assert_eq!(serde_json::from_str::<Label>(&json).expect("parse"), label);
        }
    }

    #[test]
    fn discovers_mvtec_layout() {
        let dir = mvtec();
        let root = dir.path();
        let dataset = discover(root).expect("discover");
        assert_eq!(dataset.root, root);
        assert_eq!(
            dataset.train_good,
            vec![
                root.join("train/good/000.png"),
                root.join("train/good/001.PNG"),
                root.join("train/good/002.png"),
            ]
        );
        let summary: Vec<(PathBuf, &str, Option<PathBuf>)> = dataset
            .test
            .iter()
            .map(|s| {
                (
                    s.path.strip_prefix(root).expect("inside").to_owned(),
                    s.label.type_name(),
                    s.mask
                        .as_ref()
                        .map(|m| m.strip_prefix(root).expect("inside").to_owned()),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (
                    "test/crack/000.png".into(),
                    "crack",
                    Some("ground_truth/crack/000.png".into())
                ),
                ("test/good/000.png".into(), "good", None),
                (
                    "test/scratch/000.png".into(),
                    "scratch",
                    Some("ground_truth/scratch/000_mask.png".into())
                ),
                ("test/scratch/001.png".into(), "scratch", None),
            ]
        );
        assert_eq!(dataset.test[1].label, Label::Good);
        assert_eq!(dataset.defect_types(), vec!["crack", "scratch"]);
    }

    #[test]
    fn mvtec_without_test_folder_has_no_test_samples() {
        let dir = tree(&["train/good/a.png"]);
        let dataset = discover(dir.path()).expect("discover");
        assert_eq!(dataset.train_good.len(), 1);
        assert!(dataset.test.is_empty());
        assert!(dataset.defect_types().is_empty());
    }

    #[test]
    fn mvtec_with_empty_train_folder_is_an_error() {
        let dir = tree(&["train/good/notes.txt", "test/good/a.png"]);
        let error = discover(dir.path()).unwrap_err();
        assert!(matches!(error, DatasetError::NoImages { .. }), "{error:?}");
        assert_eq!(
            error.to_string(),
            format!(
                "no images found in folder: {}",
                dir.path().join("train/good").display()
            )
        );
    }

    #[test]
    fn plain_folder_is_unlabelled_and_recursive() {
        let dir = tree(&[
            "b.jpg",
            "a.png",
            "sub/c.bmp",
            "sub/deeper/d.tiff",
            "sub/notes.md",
            ".hidden/e.png",
            ".f.png",
        ]);
        let root = dir.path();
        let dataset = discover(root).expect("discover");
        assert!(dataset.train_good.is_empty());
        let paths: Vec<PathBuf> = dataset.test.iter().map(|s| s.path.clone()).collect();
        assert_eq!(
            paths,
            vec![
                root.join("a.png"),
                root.join("b.jpg"),
                root.join("sub/c.bmp"),
                root.join("sub/deeper/d.tiff"),
            ]
        );
        assert!(
            dataset
                .test
                .iter()
                .all(|s| s.label == Label::Unknown && s.mask.is_none())
        );
        assert!(dataset.defect_types().is_empty());
    }

    #[test]
    fn discovery_errors_name_the_path() {
        let dir = tree(&["file.png", "empty/readme.txt"]);
        let missing = dir.path().join("nope");
        let error = discover(&missing).unwrap_err();
        assert!(matches!(error, DatasetError::Missing { .. }));
        assert_eq!(
            error.to_string(),
            format!("data set folder not found: {}", missing.display())
        );

        let file = dir.path().join("file.png");
        let error = discover(&file).unwrap_err();
        assert!(matches!(error, DatasetError::NotAFolder { .. }));
        assert!(error.to_string().ends_with(&file.display().to_string()));

        let empty = dir.path().join("empty");
        let error = discover(&empty).unwrap_err();
        assert!(matches!(error, DatasetError::NoImages { .. }));
        assert!(error.to_string().ends_with(&empty.display().to_string()));
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_to_files_count_and_links_to_folders_are_not_followed() {
        let dir = tree(&["real/a.png", "outside/b.png"]);
        let root = dir.path().join("real");
        std::os::unix::fs::symlink(dir.path().join("outside/b.png"), root.join("b.png"))
            .expect("link");
        // A loop: real/loop -> real.
        std::os::unix::fs::symlink(&root, root.join("loop")).expect("link");
        std::os::unix::fs::symlink(dir.path().join("outside"), root.join("elsewhere"))
            .expect("link");
        std::os::unix::fs::symlink(dir.path().join("gone.png"), root.join("dangling.png"))
            .expect("link");
        // A link that points at itself.
        std::os::unix::fs::symlink(root.join("self.png"), root.join("self.png")).expect("link");
        let dataset = discover(&root).expect("discover");
        let paths: Vec<PathBuf> = dataset.test.iter().map(|s| s.path.clone()).collect();
        // The broken links are listed so that loading them reports why they are unusable.
        assert_eq!(
            paths,
            vec![
                root.join("a.png"),
                root.join("b.png"),
                root.join("dangling.png"),
                root.join("self.png"),
            ]
        );

        let (images, skipped) = list_images(std::slice::from_ref(&root));
        assert_eq!(images, paths);
        assert_eq!(
            skipped,
            vec![
                (
                    root.join("elsewhere"),
                    "a link to a folder, not followed".to_owned()
                ),
                (
                    root.join("loop"),
                    "a link to a folder, not followed".to_owned()
                ),
            ]
        );
    }

    #[cfg(unix)]
    #[test]
    fn list_images_names_links_it_cannot_follow() {
        let dir = tree(&[]);
        let root = dir.path();
        std::os::unix::fs::symlink(root.join("self.png"), root.join("self.png")).expect("link");
        std::os::unix::fs::symlink(root.join("gone.png"), root.join("dangling.png")).expect("link");
        let (images, skipped) = list_images(&[root.join("self.png"), root.join("dangling.png")]);
        assert!(images.is_empty());
        assert_eq!(
            skipped,
            vec![
                (
                    root.join("self.png"),
                    "too many levels of symbolic links".to_owned()
                ),
                (root.join("dangling.png"), "not found".to_owned()),
            ]
        );
    }

    #[test]
    fn folder_named_like_an_image_is_searched_and_reported_when_empty() {
        let dir = tree(&["a.png", "full.png/inner.png", "notes.png/readme.txt"]);
        let root = dir.path();
        std::fs::create_dir(root.join("x.png")).expect("mkdir");
        let (images, skipped) = list_images(&[root.to_owned()]);
        assert_eq!(
            images,
            vec![root.join("a.png"), root.join("full.png/inner.png")]
        );
        assert_eq!(
            skipped,
            vec![
                (
                    root.join("notes.png"),
                    "a folder, not an image file".to_owned()
                ),
                (
                    root.join("notes.png/readme.txt"),
                    "not an image file extension".to_owned()
                ),
                (root.join("x.png"), "a folder, not an image file".to_owned()),
            ]
        );
        // Named on its own, it is a folder without images.
        let (images, skipped) = list_images(&[root.join("x.png")]);
        assert!(images.is_empty());
        assert_eq!(
            skipped,
            vec![(root.join("x.png"), "no images in the folder".to_owned())]
        );
    }

    #[cfg(unix)]
    #[test]
    fn unreadable_subfolder_is_an_error() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tree(&["a.png", "locked/b.png"]);
        let locked = dir.path().join("locked");
        fs::set_permissions(&locked, fs::Permissions::from_mode(0o000)).expect("chmod");
        let readable = fs::read_dir(&locked).is_ok();
        let result = discover(dir.path());
        fs::set_permissions(&locked, fs::Permissions::from_mode(0o755)).expect("chmod back");
        if readable {
            // Running as root: permissions do not stop reading, so there is nothing to test.
            return;
        }
        let error = result.unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "cannot read data set folder (permission denied): {}",
                locked.display()
            )
        );
    }

    #[test]
    fn list_images_expands_folders_and_reports_skips() {
        let dir = tree(&[
            "one.png",
            "notes.txt",
            "folder/b.jpg",
            "folder/a.png",
            "folder/sub/c.tif",
            "folder/skip.csv",
            "folder/.hidden.png",
            "nothing/readme.md",
        ]);
        let root = dir.path();
        let (images, skipped) = list_images(&[
            root.join("one.png"),
            root.join("folder"),
            root.join("missing.png"),
            root.join("notes.txt"),
            root.join("folder/a.png"),
            root.join("nothing"),
        ]);
        assert_eq!(
            images,
            vec![
                root.join("one.png"),
                root.join("folder/a.png"),
                root.join("folder/b.jpg"),
                root.join("folder/sub/c.tif"),
            ]
        );
        assert_eq!(
            skipped,
            vec![
                (
                    root.join("folder/skip.csv"),
                    "not an image file extension".to_owned()
                ),
                (root.join("missing.png"), "not found".to_owned()),
                (
                    root.join("notes.txt"),
                    "not an image file extension".to_owned()
                ),
                (root.join("nothing"), "no images in the folder".to_owned()),
                (
                    root.join("nothing/readme.md"),
                    "not an image file extension".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn list_images_of_nothing_is_empty() {
        let (images, skipped) = list_images(&[]);
        assert!(images.is_empty());
        assert!(skipped.is_empty());
    }

    fn names(count: usize) -> Vec<PathBuf> {
        (0..count)
            .map(|i| PathBuf::from(format!("good/{i:03}.png")))
            .collect()
    }

    #[test]
    fn default_val_count_prefers_spare_images() {
        assert_eq!(default_val_count(300, Some(100)), 64);
        assert_eq!(default_val_count(140, Some(100)), 40);
        assert_eq!(default_val_count(116, Some(100)), 16);
        assert_eq!(default_val_count(115, Some(100)), 8);
        assert_eq!(default_val_count(300, None), 8);
        assert_eq!(default_val_count(20, None), 4);
        assert_eq!(default_val_count(4, None), 0);
        assert_eq!(default_val_count(0, Some(10)), 0);
    }

    #[test]
    fn split_is_deterministic_disjoint_and_sorted() {
        let good = names(20);
        let (train, val) = split_train_val(&good, None, 5, 7);
        assert_eq!((train.len(), val.len()), (15, 5));
        assert!(train.is_sorted() && val.is_sorted());
        assert!(val.iter().all(|v| !train.contains(v)));
        let mut all: Vec<PathBuf> = train.iter().chain(&val).cloned().collect();
        all.sort();
        assert_eq!(all, good);

        assert_eq!(
            split_train_val(&good, None, 5, 7),
            (train.clone(), val.clone())
        );
        let (_, other_val) = split_train_val(&good, None, 5, 8);
        assert_ne!(other_val, val);
        // One more image moves at most one image of either set.
        let mut more = good.clone();
        more.push(PathBuf::from("img_new.png"));
        more.sort();
        let (train2, val2) = split_train_val(&more, Some(10), 5, 7);
        let (train1, val1) = split_train_val(&good, Some(10), 5, 7);
        let moved = |a: &[PathBuf], b: &[PathBuf]| a.iter().filter(|p| !b.contains(p)).count();
        assert!(moved(&val1, &val2) <= 1 && moved(&train1, &train2) <= 1);
    }

    #[test]
    fn split_limits_training_count() {
        let good = names(20);
        let (train, val) = split_train_val(&good, Some(4), 3, 1);
        assert_eq!((train.len(), val.len()), (4, 3));
        assert!(val.iter().all(|v| !train.contains(v)));
        let (train, val) = split_train_val(&good, Some(100), 3, 1);
        assert_eq!((train.len(), val.len()), (17, 3));
        // The validation set does not depend on the training count.
        assert_eq!(split_train_val(&good, Some(4), 3, 1).1, val);
    }

    #[test]
    fn split_keeps_at_least_one_for_training() {
        assert_eq!(split_train_val(&[], None, 5, 0), (vec![], vec![]));
        let (train, val) = split_train_val(&names(1), None, 5, 0);
        assert_eq!((train.len(), val.len()), (1, 0));
        let (train, val) = split_train_val(&names(2), None, 5, 0);
        assert_eq!((train.len(), val.len()), (1, 1));
        let (train, val) = split_train_val(&names(5), None, 5, 0);
        assert_eq!((train.len(), val.len()), (3, 2));
        let (train, val) = split_train_val(&names(5), None, 0, 0);
        assert_eq!((train.len(), val.len()), (5, 0));
    }
}
