//! The images the user is working with: good parts to train on and parts to inspect, from
//! an MVTec AD folder, a plain folder or dropped files.

use crate::core::dataset::{self, Dataset, Label, Sample};
use crate::gui::command::ImageRole;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// Where the images came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// An MVTec AD folder: `train/good`, labelled `test/<type>`, `ground_truth` masks.
    Mvtec,
    /// A folder of images without that layout.
    Plain,
    /// Files and folders dropped on the window.
    Dropped,
}

/// Good images and images to inspect.
#[derive(Debug, Clone, PartialEq)]
pub struct Workset {
    /// The folder opened, if any.
    pub root: Option<PathBuf>,
    /// How it was found.
    pub layout: Layout,
    /// Whether it is the demo data set shipped with the program.
    pub is_demo: bool,
    /// Known good images (training and validation candidates), sorted.
    pub good: Vec<PathBuf>,
    /// Images to inspect, with labels when known.
    pub inspect: Vec<Sample>,
}

impl Workset {
    /// The images of a discovered data set.
    pub fn from_dataset(data: Dataset) -> Self {
        let layout = if data.train_good.is_empty() {
            Layout::Plain
        } else {
            Layout::Mvtec
        };
        Self {
            is_demo: is_demo_folder(&data.root),
            root: Some(data.root),
            layout,
            good: data.train_good,
            inspect: data.test,
        }
    }

    /// An empty set that dropped images are added to.
    pub fn dropped() -> Self {
        Self {
            root: None,
            layout: Layout::Dropped,
            is_demo: false,
            good: Vec::new(),
            inspect: Vec::new(),
        }
    }

    /// Adds image files (already expanded), skipping ones already present. Returns how
    /// many were added.
    pub fn add(&mut self, images: Vec<PathBuf>, role: ImageRole) -> usize {
        let known: HashSet<PathBuf> = self
            .good
            .iter()
            .cloned()
            .chain(self.inspect.iter().map(|s| s.path.clone()))
            .collect();
        let new: Vec<PathBuf> = images.into_iter().filter(|p| !known.contains(p)).collect();
        let added = new.len();
        match role {
            ImageRole::Good => {
                self.good.extend(new);
                self.good.sort();
            }
            ImageRole::Inspect => self.inspect.extend(new.into_iter().map(|path| Sample {
                path,
                label: Label::Unknown,
                mask: None,
            })),
        }
        added
    }

    /// Moves the unlabelled images to inspect into the good images (a plain folder of good
    /// parts).
    pub fn unlabelled_are_good(&mut self) {
        let (unknown, kept): (Vec<Sample>, Vec<Sample>) = std::mem::take(&mut self.inspect)
            .into_iter()
            .partition(|s| s.label == Label::Unknown);
        self.inspect = kept;
        self.good.extend(unknown.into_iter().map(|s| s.path));
        self.good.sort();
        self.good.dedup();
    }

    /// Images to inspect with a good or defect label.
    pub fn labelled_count(&self) -> usize {
        self.inspect
            .iter()
            .filter(|s| s.label.is_defect().is_some())
            .count()
    }

    /// Images to inspect without a label.
    pub fn unlabelled_count(&self) -> usize {
        self.inspect.len() - self.labelled_count()
    }

    /// Count of images to inspect per type name (`good`, defect types, `unknown`), sorted.
    pub fn type_counts(&self) -> Vec<(String, usize)> {
        let mut counts: Vec<(String, usize)> = Vec::new();
        for s in &self.inspect {
            let name = s.label.type_name();
            match counts.iter_mut().find(|(n, _)| n == name) {
                Some((_, c)) => *c += 1,
                None => counts.push((name.to_string(), 1)),
            }
        }
        counts.sort();
        counts
    }

    /// Images to inspect that have a defect mask.
    pub fn mask_count(&self) -> usize {
        self.inspect.iter().filter(|s| s.mask.is_some()).count()
    }

    /// The training and validation split for `train_count` and `val_count` (or the
    /// default validation count), seeded so the same settings give the same split.
    pub fn split(
        &self,
        train_count: usize,
        val_count: Option<usize>,
    ) -> (Vec<PathBuf>, Vec<PathBuf>) {
        let val = val_count
            .unwrap_or_else(|| dataset::default_val_count(self.good.len(), Some(train_count)));
        dataset::split_train_val(&self.good, Some(train_count), val, 0)
    }
}

/// Whether `root` is the demo data set shipped in `assets/demo`.
pub fn is_demo_folder(root: &Path) -> bool {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo");
    match (root.canonicalize(), shipped.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => root.ends_with("assets/demo"),
    }
}

/// The shipped demo data set, when it is present.
pub fn demo_folder() -> Option<PathBuf> {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo");
    shipped.join("train/good").is_dir().then_some(shipped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropped_images_are_added_once_and_plain_images_can_become_good() {
        let mut w = Workset::dropped();
        let a = PathBuf::from("/x/a.png");
        let b = PathBuf::from("/x/b.png");
        assert_eq!(w.add(vec![a.clone(), b.clone()], ImageRole::Inspect), 2);
        assert_eq!(w.add(vec![a.clone()], ImageRole::Good), 0);
        assert_eq!(w.unlabelled_count(), 2);
        w.unlabelled_are_good();
        assert_eq!(w.good, vec![a, b]);
        assert!(w.inspect.is_empty());
    }

    #[test]
    fn the_demo_folder_is_recognised() {
        let demo = demo_folder().expect("assets/demo is shipped");
        assert!(is_demo_folder(&demo));
        assert!(!is_demo_folder(Path::new("/tmp")));
    }
}
