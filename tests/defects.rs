//! Learning from confirmed defects: a defect type that the good-only bank ranks poorly
//! ranks better once the model has seen three labelled examples of it; without labelled
//! defects the model is the good-only one; `eval` never scores an image the model
//! learnt from.

mod common;

use common::{scores, texture, tiny_patchcore, worker, write_set};
use differnet::core::config::{DetectorConfig, PatchCoreConfig};
use differnet::core::metrics::auroc;
use differnet::core::protocol::{LabelledDefect, ModelInfo};
use differnet::engine::worker::WorkerHandle;
use image::{GrayImage, Luma, Rgb, RgbImage};
use std::path::{Path, PathBuf};

/// A texture with a faint blotch: a 14 x 14 square 30 grey levels brighter, placed with
/// the seed. Returns the image and its mask.
fn blotched(seed: u64) -> (RgbImage, GrayImage) {
    let mut img = texture(seed, false);
    let (w, h) = img.dimensions();
    let x0 = 15 + (seed * 7 % 50) as u32;
    let y0 = 15 + (seed * 13 % 50) as u32;
    let mut mask = GrayImage::new(w, h);
    for y in y0..y0 + 14 {
        for x in x0..x0 + 14 {
            let Rgb([r, g, b]) = *img.get_pixel(x, y);
            img.put_pixel(
                x,
                y,
                Rgb([
                    r.saturating_add(30),
                    g.saturating_add(30),
                    b.saturating_add(30),
                ]),
            );
            mask.put_pixel(x, y, Luma([255]));
        }
    }
    (img, mask)
}

fn write_blotched(dir: &Path, masks: &Path, seeds: std::ops::Range<u64>) -> Vec<LabelledDefect> {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::create_dir_all(masks).unwrap();
    seeds
        .map(|s| {
            let (img, mask) = blotched(s);
            let path = dir.join(format!("blotch_{s:03}.png"));
            let mask_path = masks.join(format!("blotch_{s:03}_mask.png"));
            img.save(&path).unwrap();
            mask.save(&mask_path).unwrap();
            LabelledDefect {
                path,
                mask: Some(mask_path),
            }
        })
        .collect()
}

fn train(
    w: &WorkerHandle,
    train: &[PathBuf],
    val: &[PathBuf],
    defects: Vec<LabelledDefect>,
) -> ModelInfo {
    train_drawing(w, train, val, defects, 0)
}

/// [`train`], with `drawn` synthetic defects drawn on each good training image.
fn train_drawing(
    w: &WorkerHandle,
    train: &[PathBuf],
    val: &[PathBuf],
    defects: Vec<LabelledDefect>,
    drawn: u32,
) -> ModelInfo {
    // Standardised grey levels: a blotch only a little brighter than the texture is then
    // hard for the good-only bank (AUROC about 0.84 here, against 0.95 plain).
    let config = DetectorConfig::PatchCore(PatchCoreConfig {
        standardise: true,
        synthetic_defects: drawn,
        ..tiny_patchcore()
    });
    common::train(w, train, val, config, defects)
}

/// Good textures to train on and to hold out, and test parts: good textures and faintly
/// blotched ones.
struct BlotchCase {
    train_set: Vec<PathBuf>,
    val: Vec<PathBuf>,
    parts: Vec<PathBuf>,
    is_defect: Vec<bool>,
}

fn blotch_case(d: &Path) -> BlotchCase {
    let train_set = write_set(&d.join("train"), "good", 0..10, false);
    let val = write_set(&d.join("val"), "good", 100..106, false);
    let good = write_set(&d.join("test/good"), "good", 200..216, false);
    let test_blotched: Vec<PathBuf> =
        write_blotched(&d.join("test/blotch"), &d.join("masks"), 400..416)
            .into_iter()
            .map(|l| l.path)
            .collect();
    let parts: Vec<PathBuf> = good.iter().chain(&test_blotched).cloned().collect();
    let is_defect = parts
        .iter()
        .map(|p| p.to_string_lossy().contains("blotch"))
        .collect();
    BlotchCase {
        train_set,
        val,
        parts,
        is_defect,
    }
}

/// Trains the good-only model on `train_set`; its scores of `parts` and their AUROC.
fn good_only_auroc(
    w: &WorkerHandle,
    train_set: &[PathBuf],
    val: &[PathBuf],
    parts: &[PathBuf],
    is_defect: &[bool],
) -> (Vec<f64>, f64) {
    train(w, train_set, val, Vec::new());
    let good_only = scores(w, parts);
    let before = auroc(&good_only, is_defect).unwrap();
    (good_only, before)
}

#[test]
fn three_labelled_examples_rank_a_faint_defect_type_better_and_none_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let BlotchCase {
        train_set,
        val,
        parts,
        is_defect,
    } = blotch_case(d);
    let labelled = write_blotched(&d.join("labelled"), &d.join("labelled_masks"), 300..303);

    let w = worker();
    let (good_only, before) = good_only_auroc(&w, &train_set, &val, &parts, &is_defect);

    let info = train(&w, &train_set, &val, labelled.clone());
    let record = info.trained_on.expect("a training record");
    assert_eq!(
        record.defect_files,
        labelled.iter().map(|l| l.path.clone()).collect::<Vec<_>>()
    );
    let learnt = scores(&w, &parts);
    let after = auroc(&learnt, &is_defect).unwrap();
    assert!(
        after > before + 0.05,
        "AUROC {before:.3} from good images only, {after:.3} with 3 labelled blotches"
    );

    // Labelled defects that cannot be read teach nothing: the good-only scores exactly.
    let unreadable = d.join("labelled/broken.png");
    std::fs::write(&unreadable, b"not a PNG").unwrap();
    let info = train(
        &w,
        &train_set,
        &val,
        vec![LabelledDefect {
            path: unreadable,
            mask: None,
        }],
    );
    assert!(info.trained_on.expect("record").defect_files.is_empty());
    assert_eq!(scores(&w, &parts), good_only);
}

#[test]
fn defects_drawn_on_the_good_images_rank_a_faint_defect_better_with_none_labelled() {
    let dir = tempfile::tempdir().unwrap();
    let case = blotch_case(dir.path());
    let (train_set, val, parts) = (&case.train_set, &case.val, &case.parts);
    let w = worker();
    let (_, before) = good_only_auroc(&w, train_set, val, parts, &case.is_defect);

    let info = train_drawing(&w, train_set, val, Vec::new(), 3);
    // Nothing labelled was used: the record says so.
    assert!(info.trained_on.expect("record").defect_files.is_empty());
    let drawn = scores(&w, parts);
    let after = auroc(&drawn, &case.is_defect).unwrap();
    assert!(
        after > before + 0.03,
        "AUROC {before:.3} from good images only, {after:.3} with 3 defects drawn on each"
    );
    // The drawing follows the seed: a second training scores the same.
    train_drawing(&w, train_set, val, Vec::new(), 3);
    assert_eq!(scores(&w, parts), drawn);
}

/// Writes an MVTec AD folder: good training textures, good and scratched test ones (with
/// masks) and blotched ones (without).
fn mvtec_folder(root: &Path) {
    write_set(&root.join("train/good"), "good", 0..10, false);
    write_set(&root.join("test/good"), "good", 200..206, false);
    let scratched = write_set(&root.join("test/scratch"), "bad", 300..306, true);
    std::fs::create_dir_all(root.join("ground_truth/scratch")).unwrap();
    for (p, seed) in scratched.iter().zip(300u64..) {
        let mask = common::scratch_mask(seed, 0);
        let (w, h) = texture(seed, true).dimensions();
        let img = GrayImage::from_fn(w, h, |x, y| {
            Luma([if mask[(y * w + x) as usize] { 255 } else { 0 }])
        });
        let stem = p.file_stem().unwrap().to_string_lossy().to_string();
        img.save(root.join(format!("ground_truth/scratch/{stem}_mask.png")))
            .unwrap();
    }
    write_blotched(
        &root.join("test/blotch"),
        &root.join("blotch_masks_elsewhere"),
        400..406,
    );
    std::fs::remove_dir_all(root.join("blotch_masks_elsewhere")).unwrap();
}

#[test]
fn eval_leaves_out_the_defects_the_model_learnt_from() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    mvtec_folder(&data);
    let model = dir.path().join("m.differnet");
    let cli = || std::process::Command::new(env!("CARGO_BIN_EXE_differnet"));
    let trained = cli()
        .args([
            "train",
            "--detector",
            "patchcore",
            "--device",
            "cpu",
            "--image-size",
            "96",
        ])
        .args([
            "--stages",
            "3,4",
            "--backbone",
            "efficientnet-lite0",
            "--defects",
            "2",
        ])
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(&model)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&trained.stderr);
    assert!(trained.status.success(), "{stderr}");
    assert!(
        stderr.contains("and 4 confirmed defective ones"),
        "{stderr}"
    );
    let eval = cli()
        .args(["eval", "--device", "cpu", "--json", "--no-pixel", "--csv"])
        .arg(dir.path().join("scores.csv"))
        .arg("--model")
        .arg(&model)
        .arg("--data")
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        eval.status.success(),
        "{}",
        String::from_utf8_lossy(&eval.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&eval.stdout).unwrap();
    assert_eq!(report["left_out_trained_defects"], 4);
    assert_eq!(report["count"], 6 + 6 + 6 - 4);
    // Not one of the learnt images was scored.
    let meta = differnet::engine::model_file::read_meta(&model).unwrap();
    let learnt = meta.state.trained_on.unwrap().defect_files;
    assert_eq!(learnt.len(), 4);
    let csv = std::fs::read_to_string(dir.path().join("scores.csv")).unwrap();
    for p in &learnt {
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        let folder = p
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .to_string();
        assert!(
            !csv.lines().any(|l| l.contains(&format!("{folder}/{name}"))),
            "{} was scored",
            p.display()
        );
    }
    // A detector that learns from good images only says so.
    let flow = cli()
        .args([
            "train",
            "--detector",
            "differnet",
            "--defects",
            "1",
            "--device",
            "cpu",
        ])
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(dir.path().join("f.differnet"))
        .output()
        .unwrap();
    assert!(!flow.status.success());
    assert!(String::from_utf8_lossy(&flow.stderr).contains("learns from good images only"));
}
