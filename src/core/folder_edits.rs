//! What the user changed in a data folder's images (labels, parts called good, roles of
//! the good images), kept in a file of the workstation's own, next to its settings, so
//! that reopening the folder restores it. Nothing is ever written inside the user's data.
//!
//! The edits are the difference between the images as the folder lists them
//! ([`FolderBaseline`]) and as the user left them: applying them to a fresh listing of
//! the same folder gives the same images, whatever order the edits were made in and
//! however many were undone.

use crate::core::atomic_file::write_atomic;
use crate::core::dataset::{Label, Sample};
use crate::core::training_set::RoleChoice;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

/// The images of a folder as it lists them, before any edit.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FolderBaseline {
    /// The good images.
    pub good: HashSet<PathBuf>,
    /// The images to inspect, with their labels.
    pub labels: HashMap<PathBuf, Label>,
}

impl FolderBaseline {
    /// The baseline of a listing.
    pub fn of(good: &[PathBuf], inspect: &[Sample]) -> Self {
        Self {
            good: good.iter().cloned().collect(),
            labels: inspect
                .iter()
                .map(|s| (s.path.clone(), s.label.clone()))
                .collect(),
        }
    }
}

/// The user's edits of one folder's images.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct FolderEdits {
    /// The folder (absolute), to tell files apart and to check a file is the right one.
    pub folder: PathBuf,
    /// Images that became good images (parts called good, a plain folder's images).
    pub good_added: Vec<PathBuf>,
    /// Good images the listing has that the user's set does not.
    pub good_removed: Vec<PathBuf>,
    /// Images to inspect whose label the user set (or that the user added), with it.
    pub labels: Vec<(PathBuf, Label)>,
    /// Images to inspect the user's set no longer has.
    pub inspect_removed: Vec<PathBuf>,
    /// The user's choices for single good images.
    pub choices: Vec<(PathBuf, RoleChoice)>,
}

/// The images an edit is applied to: the good images, the images to inspect and the
/// choices, as a work set holds them.
pub struct Images<'a> {
    /// Good images, sorted.
    pub good: &'a mut Vec<PathBuf>,
    /// Images to inspect.
    pub inspect: &'a mut Vec<Sample>,
    /// Choices for single good images.
    pub choices: &'a mut BTreeMap<PathBuf, RoleChoice>,
}

impl FolderEdits {
    /// The edits that turn `baseline` into these images of `folder`.
    pub fn between(
        folder: &Path,
        baseline: &FolderBaseline,
        good: &[PathBuf],
        inspect: &[Sample],
        choices: &BTreeMap<PathBuf, RoleChoice>,
    ) -> Self {
        let now_good: HashSet<&PathBuf> = good.iter().collect();
        let mut good_removed: Vec<PathBuf> = baseline
            .good
            .iter()
            .filter(|p| !now_good.contains(p))
            .cloned()
            .collect();
        good_removed.sort();
        let now_inspect: HashSet<&PathBuf> = inspect.iter().map(|s| &s.path).collect();
        let mut inspect_removed: Vec<PathBuf> = baseline
            .labels
            .keys()
            .filter(|p| !now_inspect.contains(p))
            .cloned()
            .collect();
        inspect_removed.sort();
        Self {
            folder: folder.to_path_buf(),
            good_added: good
                .iter()
                .filter(|p| !baseline.good.contains(*p))
                .cloned()
                .collect(),
            good_removed,
            labels: inspect
                .iter()
                .filter(|s| baseline.labels.get(&s.path) != Some(&s.label))
                .map(|s| (s.path.clone(), s.label.clone()))
                .collect(),
            inspect_removed,
            choices: choices.iter().map(|(p, c)| (p.clone(), *c)).collect(),
        }
    }

    /// Whether there is nothing to restore.
    pub fn is_empty(&self) -> bool {
        self.good_added.is_empty()
            && self.good_removed.is_empty()
            && self.labels.is_empty()
            && self.inspect_removed.is_empty()
            && self.choices.is_empty()
    }

    /// The images edited, each once (as the window reports what it restored).
    pub fn images(&self) -> HashSet<&Path> {
        self.good_added
            .iter()
            .chain(&self.good_removed)
            .chain(self.labels.iter().map(|(p, _)| p))
            .chain(&self.inspect_removed)
            .chain(self.choices.iter().map(|(p, _)| p))
            .map(PathBuf::as_path)
            .collect()
    }

    /// Applies the edits to a fresh listing of the folder. An image that is no longer on
    /// disk is skipped (`exists` says which are); returns the images skipped.
    pub fn apply(&self, images: Images<'_>, exists: &dyn Fn(&Path) -> bool) -> HashSet<PathBuf> {
        let mut skipped = HashSet::new();
        let mut skip = |p: &PathBuf| {
            skipped.insert(p.clone());
        };
        let removed: HashSet<&PathBuf> = self.good_removed.iter().collect();
        images.good.retain(|p| !removed.contains(p));
        for p in &self.good_added {
            if !exists(p) {
                skip(p);
            } else if let Err(i) = images.good.binary_search(p) {
                images.good.insert(i, p.clone());
            }
        }
        let removed: HashSet<&PathBuf> = self.inspect_removed.iter().collect();
        images.inspect.retain(|s| !removed.contains(&s.path));
        let mut index: HashMap<PathBuf, usize> = images
            .inspect
            .iter()
            .enumerate()
            .map(|(i, s)| (s.path.clone(), i))
            .collect();
        for (p, label) in &self.labels {
            match index.get(p) {
                Some(&i) => {
                    let sample = &mut images.inspect[i];
                    if label.is_defect() != Some(true) {
                        sample.mask = None;
                    }
                    sample.label = label.clone();
                }
                None if exists(p) => {
                    index.insert(p.clone(), images.inspect.len());
                    images.inspect.push(Sample {
                        path: p.clone(),
                        label: label.clone(),
                        mask: None,
                    });
                }
                None => skip(p),
            }
        }
        images.choices.clear();
        for (p, c) in &self.choices {
            if images.good.binary_search(p).is_ok() {
                images.choices.insert(p.clone(), *c);
            } else {
                skip(p);
            }
        }
        skipped
    }

    /// The file that holds the edits of `folder` in `dir` (one per folder, named by a
    /// hash of its path).
    pub fn file_for(dir: &Path, folder: &Path) -> PathBuf {
        // FNV-1a: stable across runs and versions, unlike std's hasher.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in folder.as_os_str().as_encoded_bytes() {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        dir.join(format!("{h:016x}.json"))
    }

    /// The saved edits of `folder` in `dir`: `Ok(None)` when there are none, an error
    /// naming the file when it cannot be read.
    pub fn load(dir: &Path, folder: &Path) -> Result<Option<Self>, String> {
        let path = Self::file_for(dir, folder);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        let edits: Self = serde_json::from_slice(&bytes)
            .map_err(|e| format!("{} is not a file of edits: {e}", path.display()))?;
        // Two folders whose paths hash alike never take each other's edits.
        Ok((edits.folder == folder).then_some(edits))
    }

    /// Saves the edits in `dir` atomically; no edits remove the file.
    pub fn save(&self, dir: &Path) -> Result<(), String> {
        let path = Self::file_for(dir, &self.folder);
        if self.is_empty() {
            return match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(format!("cannot remove {}: {e}", path.display()))
                }
                _ => Ok(()),
            };
        }
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let json = serde_json::to_vec_pretty(self).expect("edits serialise");
        write_atomic(&path, &json).map_err(|e| format!("cannot write {}: {e}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(p: &str, label: Label) -> Sample {
        Sample {
            path: PathBuf::from(p),
            label,
            mask: Some(PathBuf::from(format!("{p}.mask"))),
        }
    }

    fn listing() -> (Vec<PathBuf>, Vec<Sample>) {
        (
            vec![PathBuf::from("/d/g1"), PathBuf::from("/d/g2")],
            vec![
                sample("/d/a", Label::Defect("crack".into())),
                sample("/d/b", Label::Good),
                sample("/d/c", Label::Unknown),
            ],
        )
    }

    #[test]
    fn edits_replayed_on_a_fresh_listing_give_the_same_images() {
        let (mut good, mut inspect) = listing();
        let baseline = FolderBaseline::of(&good, &inspect);
        let mut choices = BTreeMap::new();
        // Call the defective part good, train on it; exclude a good image; drop one part.
        inspect[0].label = Label::Good;
        inspect[0].mask = None;
        good.insert(0, PathBuf::from("/d/a"));
        choices.insert(PathBuf::from("/d/a"), RoleChoice::Train);
        choices.insert(PathBuf::from("/d/g2"), RoleChoice::Exclude);
        inspect.retain(|s| s.path != Path::new("/d/c"));
        let edits = FolderEdits::between(Path::new("/d"), &baseline, &good, &inspect, &choices);
        assert_eq!(edits.images().len(), 3);

        let (mut good2, mut inspect2) = listing();
        let mut choices2 = BTreeMap::new();
        let skipped = edits.apply(
            Images {
                good: &mut good2,
                inspect: &mut inspect2,
                choices: &mut choices2,
            },
            &|_| true,
        );
        assert!(skipped.is_empty());
        assert_eq!((good2, inspect2, choices2), (good, inspect, choices));
    }

    #[test]
    fn no_edits_when_nothing_changed_and_missing_files_are_skipped() {
        let (good, inspect) = listing();
        let baseline = FolderBaseline::of(&good, &inspect);
        let none = FolderEdits::between(
            Path::new("/d"),
            &baseline,
            &good,
            &inspect,
            &BTreeMap::new(),
        );
        assert!(none.is_empty());
        let edits = FolderEdits {
            folder: "/d".into(),
            good_added: vec!["/d/gone".into()],
            choices: vec![("/d/gone".into(), RoleChoice::Train)],
            ..Default::default()
        };
        let (mut good, mut inspect) = listing();
        let mut choices = BTreeMap::new();
        let skipped = edits.apply(
            Images {
                good: &mut good,
                inspect: &mut inspect,
                choices: &mut choices,
            },
            &|p| p != Path::new("/d/gone"),
        );
        assert_eq!(skipped.len(), 1);
        assert_eq!(good.len(), 2);
        assert!(choices.is_empty());
    }

    #[test]
    fn saved_edits_load_for_their_folder_only_and_empty_ones_remove_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let edits = FolderEdits {
            folder: "/d".into(),
            labels: vec![("/d/x".into(), Label::Defect("dent".into()))],
            ..Default::default()
        };
        edits.save(dir.path()).unwrap();
        assert_eq!(
            FolderEdits::load(dir.path(), Path::new("/d")).unwrap(),
            Some(edits)
        );
        assert_eq!(
            FolderEdits::load(dir.path(), Path::new("/e")).unwrap(),
            None
        );
        FolderEdits {
            folder: "/d".into(),
            ..Default::default()
        }
        .save(dir.path())
        .unwrap();
        assert_eq!(
            FolderEdits::load(dir.path(), Path::new("/d")).unwrap(),
            None
        );
        std::fs::write(FolderEdits::file_for(dir.path(), Path::new("/d")), b"{oops").unwrap();
        let err = FolderEdits::load(dir.path(), Path::new("/d")).unwrap_err();
        assert!(err.contains(".json"), "{err}");
    }
}
