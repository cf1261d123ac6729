//! Which good images a model is trained on, which are held out to check it, and which are
//! left unused: the seeded split of [`crate::core::dataset::split_train_val`], with the
//! user's choices for single images on top. And what a retraining changed: the parts that
//! moved across the line.

#[cfg(test)]
use crate::core::dataset::split_train_val;
use crate::core::dataset::{default_val_count, seeded_order};
use crate::core::decision::Decision;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// What the user chose for one good image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum RoleChoice {
    /// Always train on it.
    Train,
    /// Always hold it out to check the model.
    HeldOut,
    /// Never use it (a blurred photo, a part that is not quite good).
    Exclude,
}

/// What a good image is used for in the next training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GoodRole {
    /// Trained on.
    Train,
    /// Held out: scored after training to learn what a good part scores.
    HeldOut,
    /// Not used (more good images than asked for, or excluded).
    Unused,
}

impl GoodRole {
    /// The role as a user reads it.
    pub fn name(self) -> &'static str {
        match self {
            GoodRole::Train => "train",
            GoodRole::HeldOut => "held out",
            GoodRole::Unused => "unused",
        }
    }
}

/// The good images by role, each list sorted by path.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Roles {
    /// Images to train on.
    pub train: Vec<PathBuf>,
    /// Images held out.
    pub held_out: Vec<PathBuf>,
    /// Images left out, excluded ones among them.
    pub unused: Vec<PathBuf>,
}

impl Roles {
    /// The role of `path`, if it is one of the good images.
    pub fn role_of(&self, path: &Path) -> Option<GoodRole> {
        let has = |v: &[PathBuf]| v.binary_search_by(|p| p.as_path().cmp(path)).is_ok();
        if has(&self.train) {
            Some(GoodRole::Train)
        } else if has(&self.held_out) {
            Some(GoodRole::HeldOut)
        } else if has(&self.unused) {
            Some(GoodRole::Unused)
        } else {
            None
        }
    }
}

/// Splits `good` into training, held-out and unused images.
///
/// Images the user chose keep their role; `Train` ones count towards `train_count` (which
/// grows when more are chosen) and `HeldOut` ones towards the held-out count. The others
/// fill the held-out count first (never more than half of them), then the training count,
/// in the [`seeded_order`] of the good images: choosing, adding or removing one image
/// moves at most the one image next in that order, never reshuffles the rest. `val_count`
/// `None` holds out [`default_val_count`] of the images not excluded. Without choices
/// this is exactly [`split_train_val`].
pub fn assign_roles(
    good: &[PathBuf],
    choices: &BTreeMap<PathBuf, RoleChoice>,
    train_count: usize,
    val_count: Option<usize>,
    seed: u64,
) -> Roles {
    assign_roles_preferring(good, choices, train_count, val_count, seed, &[])
}

/// [`assign_roles`], with the training images taken first from `preferred` (in its
/// order; see [`crate::core::diverse::preferred_order`]) and then in the seeded order.
/// The held-out images are the same as without it: the first free ones in the seeded
/// order, a fair sample of the parts, as the line's calibration needs.
pub fn assign_roles_preferring(
    good: &[PathBuf],
    choices: &BTreeMap<PathBuf, RoleChoice>,
    train_count: usize,
    val_count: Option<usize>,
    seed: u64,
    preferred: &[PathBuf],
) -> Roles {
    let mut roles = Roles::default();
    let shuffled = seeded_order(good, seed);
    let known: std::collections::HashSet<&PathBuf> = good.iter().collect();
    let count = |c: RoleChoice| {
        choices
            .iter()
            .filter(|(p, v)| **v == c && known.contains(p))
            .count()
    };
    let (forced_train, forced_val, excluded) = (
        count(RoleChoice::Train),
        count(RoleChoice::HeldOut),
        count(RoleChoice::Exclude),
    );
    let included = good.len() - excluded;
    let free = included - forced_train - forced_val;
    let val_target = val_count.unwrap_or_else(|| default_val_count(included, Some(train_count)));
    let mut val_left = val_target.saturating_sub(forced_val).min(free / 2);
    let mut train_left = train_count.saturating_sub(forced_train);
    let mut placed: std::collections::HashSet<&PathBuf> = std::collections::HashSet::new();
    for path in &shuffled {
        let list = match choices.get(path) {
            Some(RoleChoice::Train) => &mut roles.train,
            Some(RoleChoice::HeldOut) => &mut roles.held_out,
            Some(RoleChoice::Exclude) => &mut roles.unused,
            None if val_left > 0 => {
                val_left -= 1;
                &mut roles.held_out
            }
            None => continue,
        };
        list.push(path.clone());
        placed.insert(path);
    }
    for path in preferred
        .iter()
        .filter(|p| known.contains(p))
        .chain(&shuffled)
    {
        if train_left == 0 {
            break;
        }
        if placed.insert(path) {
            train_left -= 1;
            roles.train.push(path.clone());
        }
    }
    roles
        .unused
        .extend(shuffled.iter().filter(|p| !placed.contains(p)).cloned());
    roles.train.sort();
    roles.held_out.sort();
    roles.unused.sort();
    roles
}

/// A part whose call changed between two inspections.
#[derive(Debug, Clone, PartialEq)]
pub struct Move {
    /// The image.
    pub path: PathBuf,
    /// Its call before.
    pub before: Decision,
    /// Its call now.
    pub after: Decision,
}

/// The parts in `after` whose call differs from `before` (each at its own model's line),
/// in the order of `after`. Parts new to `after` are not moves.
pub fn moves(before: &HashMap<PathBuf, Decision>, after: &[(PathBuf, Decision)]) -> Vec<Move> {
    after
        .iter()
        .filter_map(|(path, now)| {
            let was = *before.get(path)?;
            (was != *now).then(|| Move {
                path: path.clone(),
                before: was,
                after: *now,
            })
        })
        .collect()
}

/// "3 parts moved across the line: 2 now called accept, 1 now called reject", or that none
/// did.
pub fn moves_summary(moves: &[Move]) -> String {
    if moves.is_empty() {
        return "No part changed its call.".to_owned();
    }
    let mut parts = Vec::new();
    for d in Decision::ALL {
        let n = moves.iter().filter(|m| m.after == d).count();
        if n > 0 {
            parts.push(format!("{n} now called {}", d.name()));
        }
    }
    format!(
        "{} part{} changed {} call: {}.",
        moves.len(),
        if moves.len() == 1 { "" } else { "s" },
        if moves.len() == 1 { "its" } else { "their" },
        parts.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_preferred_order_chooses_the_training_images_and_keeps_the_held_out_draw() {
        let good = paths(40);
        let plain = assign_roles(&good, &BTreeMap::new(), 8, Some(6), 3);
        // No preference: the seeded split.
        assert_eq!(
            assign_roles_preferring(&good, &BTreeMap::new(), 8, Some(6), 3, &[]),
            plain
        );
        // A preference: the same held-out images; the training images the first eight
        // preferred that are not held out.
        let preferred: Vec<PathBuf> = good.iter().rev().cloned().collect();
        let r = assign_roles_preferring(&good, &BTreeMap::new(), 8, Some(6), 3, &preferred);
        assert_eq!(r.held_out, plain.held_out);
        let mut expected: Vec<PathBuf> = preferred
            .iter()
            .filter(|p| !plain.held_out.contains(p))
            .take(8)
            .cloned()
            .collect();
        expected.sort();
        assert_eq!(r.train, expected);
        assert_eq!(r.train.len() + r.held_out.len() + r.unused.len(), 40);
        // A short preference is topped up in the seeded order; the user's choices stay.
        let mut choices = BTreeMap::new();
        choices.insert(good[0].clone(), RoleChoice::Exclude);
        let r = assign_roles_preferring(&good, &choices, 8, Some(6), 3, &preferred[..2]);
        assert_eq!(r.train.len(), 8);
        assert!(r.unused.contains(&good[0]));
        assert!(
            preferred[..2]
                .iter()
                .all(|p| r.train.contains(p) || r.held_out.contains(p))
        );
    }

    fn paths(n: usize) -> Vec<PathBuf> {
        (0..n)
            .map(|i| PathBuf::from(format!("/g/{i:03}.png")))
            .collect()
    }

    #[test]
    fn without_choices_the_split_is_the_seeded_one() {
        let good = paths(40);
        let r = assign_roles(&good, &BTreeMap::new(), 16, None, 0);
        let (train, val) = split_train_val(&good, Some(16), default_val_count(40, Some(16)), 0);
        assert_eq!((r.train.clone(), r.held_out.clone()), (train, val));
        assert_eq!(r.train.len() + r.held_out.len() + r.unused.len(), 40);
        assert_eq!(r.unused.len(), 40 - 16 - 20);
    }

    #[test]
    fn choices_are_kept_and_the_counts_still_hold() {
        let good = paths(40);
        let base = assign_roles(&good, &BTreeMap::new(), 16, Some(8), 0);
        let excluded = base.train[0].clone();
        let unused = base.unused[0].clone();
        let held = base.train[1].clone();
        let choices = BTreeMap::from([
            (excluded.clone(), RoleChoice::Exclude),
            (unused.clone(), RoleChoice::Train),
            (held.clone(), RoleChoice::HeldOut),
        ]);
        let r = assign_roles(&good, &choices, 16, Some(8), 0);
        assert_eq!(r.role_of(&excluded), Some(GoodRole::Unused));
        assert_eq!(r.role_of(&unused), Some(GoodRole::Train));
        assert_eq!(r.role_of(&held), Some(GoodRole::HeldOut));
        assert_eq!((r.train.len(), r.held_out.len()), (16, 8));
        // Every image has exactly one role.
        let mut all: Vec<PathBuf> = r
            .train
            .iter()
            .chain(&r.held_out)
            .chain(&r.unused)
            .cloned()
            .collect();
        all.sort();
        assert_eq!(all, good);
        // Choosing for an image the role it has moves nothing else; excluding one moves
        // only the next image in line into its place.
        let same = BTreeMap::from([(base.held_out[0].clone(), RoleChoice::HeldOut)]);
        assert_eq!(assign_roles(&good, &same, 16, Some(8), 0), base);
        let out = BTreeMap::from([(base.train[3].clone(), RoleChoice::Exclude)]);
        let r = assign_roles(&good, &out, 16, Some(8), 0);
        assert_eq!(r.held_out, base.held_out);
        let joined: Vec<&PathBuf> = r.train.iter().filter(|p| !base.train.contains(p)).collect();
        assert_eq!(joined.len(), 1, "one image takes the excluded one's place");
        // A new good image chosen for training pushes out at most one other.
        let mut more = good.clone();
        let new = PathBuf::from("/g/new.png");
        more.push(new.clone());
        let pick = BTreeMap::from([(new.clone(), RoleChoice::Train)]);
        let r = assign_roles(&more, &pick, 16, Some(8), 0);
        assert_eq!(r.held_out, base.held_out);
        assert_eq!(
            r.train.iter().filter(|p| !base.train.contains(p)).count(),
            1
        );
        assert!(r.train.contains(&new));
        // More images chosen for training than asked for: all of them are trained on.
        let many: BTreeMap<PathBuf, RoleChoice> = good[..20]
            .iter()
            .map(|p| (p.clone(), RoleChoice::Train))
            .collect();
        let r = assign_roles(&good, &many, 16, Some(8), 0);
        assert_eq!(r.train, good[..20].to_vec());
        assert_eq!(r.held_out.len(), 8);
    }

    #[test]
    fn moves_are_the_parts_whose_call_changed() {
        let before = HashMap::from([
            (PathBuf::from("a"), Decision::Reject),
            (PathBuf::from("b"), Decision::Accept),
            (PathBuf::from("c"), Decision::Reject),
        ]);
        let after = vec![
            (PathBuf::from("a"), Decision::Accept),
            (PathBuf::from("b"), Decision::Accept),
            (PathBuf::from("c"), Decision::Accept),
            (PathBuf::from("new"), Decision::Reject),
        ];
        let m = moves(&before, &after);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].path, PathBuf::from("a"));
        assert_eq!(
            moves_summary(&m),
            "2 parts changed their call: 2 now called accept."
        );
        assert_eq!(moves_summary(&[]), "No part changed its call.");
    }
}
