//! The images the user is working with: good parts to train on and parts to inspect, from
//! an MVTec AD folder, a plain folder or dropped files.

use crate::core::dataset::{Dataset, Label, Sample};
use crate::core::folder_edits::{FolderBaseline, FolderEdits, Images};
use crate::core::protocol::LabelledDefect;
use crate::core::training_set::{RoleChoice, Roles, assign_roles_preferring};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What a batch of added images is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageRole {
    /// Known good parts, to train on.
    Good,
    /// Parts to inspect.
    Inspect,
}

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
    /// The user's choices for single good images (train on it, hold it out, exclude it);
    /// the others are split by the seeded shuffle.
    pub choices: BTreeMap<PathBuf, RoleChoice>,
    /// The folder's images as listed, before the user's edits (`None` for dropped files).
    baseline: Option<Arc<FolderBaseline>>,
    /// The good images in the order to train on them, chosen by how they look to the
    /// backbone ([`crate::engine::choose`]), and the good images it was chosen among;
    /// `None`: the seeded order.
    preferred: Option<Preferred>,
}

/// An order to train on good images in, and the good images it was chosen among.
type Preferred = (Arc<Vec<PathBuf>>, Arc<Vec<PathBuf>>);

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
            baseline: Some(Arc::new(FolderBaseline::of(&data.train_good, &data.test))),
            preferred: None,
            root: Some(data.root),
            layout,
            good: data.train_good,
            inspect: data.test,
            choices: BTreeMap::new(),
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
            choices: BTreeMap::new(),
            baseline: None,
            preferred: None,
        }
    }

    /// What the user changed in the opened folder's images, to keep for the next time it
    /// is opened; `None` for dropped files.
    pub fn edits(&self) -> Option<FolderEdits> {
        let (root, baseline) = (self.root.as_ref()?, self.baseline.as_ref()?);
        Some(FolderEdits::between(
            root,
            baseline,
            &self.good,
            &self.inspect,
            &self.choices,
        ))
    }

    /// Restores edits saved for this folder. Returns how many images were left out
    /// because they are gone.
    pub fn restore(&mut self, edits: &FolderEdits) -> usize {
        edits
            .apply(
                Images {
                    good: &mut self.good,
                    inspect: &mut self.inspect,
                    choices: &mut self.choices,
                },
                &|p| p.is_file(),
            )
            .len()
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

    /// Images to inspect labelled defective.
    pub fn defect_count(&self) -> usize {
        self.inspect
            .iter()
            .filter(|s| s.label.is_defect() == Some(true))
            .count()
    }

    /// Up to `per_type` of the images labelled defective of each type, drawn with a fixed
    /// seed (the same draw until the labels change), with their masks: what "Train on
    /// confirmed defects too" learns from.
    pub fn draw_defects(&self, per_type: usize) -> Vec<LabelledDefect> {
        crate::core::dataset::draw_defects(&self.inspect, per_type, 0)
            .into_iter()
            .map(|s| LabelledDefect {
                path: s.path,
                mask: s.mask,
            })
            .collect()
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

    /// Every good image's role for `train_count` and `val_count` (or the default
    /// held-out count), seeded so the same settings give the same split, with the user's
    /// choices kept. Parts called good to train on come on top of `train_count`: calling
    /// a part good adds it and takes no other image out.
    pub fn roles(&self, train_count: usize, val_count: Option<usize>) -> Roles {
        let extra = self.called_good_to_train();
        let preferred = self
            .preferred
            .as_ref()
            .map_or(&[][..], |(order, _)| order.as_slice());
        assign_roles_preferring(
            &self.good,
            &self.choices,
            train_count + extra,
            val_count,
            0,
            preferred,
        )
    }

    /// Sets the order to train on the good images in, chosen among `among` (`None`: the
    /// seeded order); whether that changed anything.
    pub fn set_preferred(&mut self, order: Option<(Vec<PathBuf>, Vec<PathBuf>)>) -> bool {
        let same = match (&self.preferred, &order) {
            (None, None) => true,
            (Some((o, a)), Some((order, among))) => **o == *order && **a == *among,
            _ => false,
        };
        self.preferred = order.map(|(o, a)| (Arc::new(o), Arc::new(a)));
        !same
    }

    /// Whether the training images are in an order chosen for these good images (parts
    /// called good aside: they are trained on whatever the order).
    pub fn has_preferred_order(&self) -> bool {
        self.preferred
            .as_ref()
            .is_some_and(|(_, among)| **among == self.own_good())
    }

    /// The good images that are not parts called good: what an order is chosen among.
    pub fn own_good(&self) -> Vec<PathBuf> {
        let parts: HashSet<&Path> = self.inspect.iter().map(|s| s.path.as_path()).collect();
        self.good
            .iter()
            .filter(|p| !parts.contains(p.as_path()))
            .cloned()
            .collect()
    }

    /// Whether there are more good images than `train_count` and the held-out ones take,
    /// so which ones to train on is a choice.
    pub fn training_is_a_choice(&self, train_count: usize, val_count: Option<usize>) -> bool {
        self.roles(train_count, val_count).unused.len() > self.excluded_count()
    }

    /// Inspected parts the user called good and chose to train on.
    pub fn called_good_to_train(&self) -> usize {
        self.inspect
            .iter()
            .filter(|s| {
                self.choices.get(&s.path) == Some(&RoleChoice::Train)
                    && self
                        .good
                        .binary_search_by(|p| p.as_path().cmp(&s.path))
                        .is_ok()
            })
            .count()
    }

    /// The training and held-out images for `train_count` and `val_count`.
    pub fn split(
        &self,
        train_count: usize,
        val_count: Option<usize>,
    ) -> (Vec<PathBuf>, Vec<PathBuf>) {
        let r = self.roles(train_count, val_count);
        (r.train, r.held_out)
    }

    /// Sets (or with `None` clears) the user's choice for a good image.
    pub fn choose(&mut self, path: &Path, choice: Option<RoleChoice>) {
        match choice {
            Some(c) => {
                self.choices.insert(path.to_path_buf(), c);
            }
            None => {
                self.choices.remove(path);
            }
        }
    }

    /// Good images the user excluded.
    pub fn excluded_count(&self) -> usize {
        self.choices
            .values()
            .filter(|c| **c == RoleChoice::Exclude)
            .count()
    }

    /// Says an inspected part is good: it is labelled good (its defect mask dropped) and
    /// joins the good images, chosen for training. It stays among the parts to inspect,
    /// so the next inspection shows where it lands. False when it is not one of them.
    pub fn mark_good(&mut self, path: &Path) -> bool {
        let Some(sample) = self.inspect.iter_mut().find(|s| s.path == path) else {
            return false;
        };
        sample.label = Label::Good;
        sample.mask = None;
        if let Err(i) = self.good.binary_search_by(|p| p.as_path().cmp(path)) {
            self.good.insert(i, path.to_path_buf());
        }
        self.choices.insert(path.to_path_buf(), RoleChoice::Train);
        true
    }

    /// Whether `path` is one of the good images and would be trained on or held out
    /// with these settings (an inspected part that was marked good).
    pub fn is_training_image(&self, path: &Path) -> bool {
        self.good
            .binary_search_by(|p| p.as_path().cmp(path))
            .is_ok()
            && self.choices.get(path) != Some(&RoleChoice::Exclude)
    }

    /// Sets the label of an image to inspect. False when it is not one of them.
    pub fn relabel(&mut self, path: &Path, label: Label) -> bool {
        let Some(sample) = self.inspect.iter_mut().find(|s| s.path == path) else {
            return false;
        };
        if label.is_defect() != Some(true) {
            sample.mask = None;
        }
        sample.label = label;
        true
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
