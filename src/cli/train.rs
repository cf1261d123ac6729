//! `differnet train`: the detector and its settings from the arguments, a training run
//! with a progress bar, the model file.

use super::*;

pub(super) fn train(a: TrainArgs) -> Result<()> {
    let data = discover(&a.data)?;
    let config = train_config(&a)?;
    if a.defects > 0
        && !matches!(
            config,
            DetectorConfig::PatchCore(_) | DetectorConfig::Fusion(_)
        )
    {
        bail!(
            "--defects: {} learns from good images only (use patchcore or fusion)",
            a.detector
        );
    }
    let defects: Vec<LabelledDefect> = dataset::draw_defects(&data.test, a.defects, a.seed)
        .into_iter()
        .map(|s| LabelledDefect {
            path: s.path,
            mask: s.mask,
        })
        .collect();
    if a.defects > 0 && defects.is_empty() {
        bail!(
            "--defects: no labelled defective images (test/<type>/) in {}",
            a.data.display()
        );
    }
    let worker = start_worker(&a.engine, Some(config.backbone()))?;
    let mut progress = Progress::new(a.engine.json);
    let (train_set, val_set) = match (&a.train_list, &a.val_list, a.pick) {
        (Some(t), Some(v), _) => (path_list(t)?, path_list(v)?),
        (_, _, Pick::Features) => chosen_split(
            &worker,
            &data,
            a.train_count,
            a.val_count,
            a.seed,
            config.backbone(),
            &mut progress,
        )?,
        _ => train_val(&data, a.train_count, a.val_count, a.seed, a.pick),
    };
    if train_set.is_empty() {
        bail!("no good images to train on in {}", a.data.display());
    }
    let settings = match &config {
        DetectorConfig::DifferNet(_) => format!("{} preset, {}", a.preset, config.describe()),
        _ => config.describe(),
    };
    let with_defects = if defects.is_empty() {
        String::new()
    } else {
        format!(" and {} confirmed defective ones", defects.len())
    };
    progress.note(&format!(
        "training on {} good images{with_defects}, {} held out for validation ({settings})",
        train_set.len(),
        val_set.len(),
    ));
    send(
        &worker,
        Command::Train(TrainRequest {
            train: train_set,
            validation: val_set,
            config,
            defects,
        }),
    )?;
    let info = loop {
        match common_event(next_event(&worker)?, &mut progress)? {
            Some(Event::Trained(info)) => break info,
            Some(Event::EpochDone { epoch, mean_loss }) => {
                if let Some(b) = &progress.bar {
                    b.set_message(format!("epoch {} loss {mean_loss:.3}", epoch + 1));
                    progress.label = b.message().to_string();
                }
            }
            _ => {}
        }
    };
    progress.finish();
    send(
        &worker,
        Command::SaveModel {
            path: a.out.clone(),
            threshold: None,
            review_threshold: None,
        },
    )?;
    loop {
        if let Some(Event::Saved { .. }) = common_event(next_event(&worker)?, &mut progress)? {
            break;
        }
    }
    if a.engine.json {
        outln!("{}", serde_json::to_string_pretty(&info)?)?;
    } else {
        outln!(
            "trained in {:.1} s on {} images ({:.1} s of it validating and calibrating heatmaps)",
            info.train_secs,
            info.train_count,
            info.validation_secs
        )?;
        if let Some(v) = &info.validation {
            outln!(
                "validation: {} good images, score mean {:.4}, std {:.4}, max {:.4}",
                v.count,
                v.mean,
                v.std,
                v.max
            )?;
        }
        if let Some(t) = info.threshold {
            outln!("default threshold: {t:.4}")?;
        }
        outln!("model written to {}", a.out.display())?;
    }
    Ok(())
}

/// The detector settings the training arguments ask for.
pub(super) fn train_config(a: &TrainArgs) -> Result<DetectorConfig> {
    refuse_other_kinds_flags(a)?;
    let mut config = match a.detector {
        DetectorKind::DifferNet => differnet_config(a)?,
        DetectorKind::PatchCore => patchcore_config(a)?,
        DetectorKind::Fusion => fusion_config(a)?,
        DetectorKind::CsFlow => cs_flow_config(a)?,
    };
    config.set_seed(a.seed);
    if let Some(n) = a.bank_rotations {
        config.set_bank_rotations(n);
    }
    if let Some(s) = &a.stages {
        config
            .set_stages(s.clone())
            .map_err(|e| anyhow!("invalid settings: {e}"))?;
    }
    if let Some(s) = a.image_size {
        config.set_image_size(s);
    }
    config
        .validate()
        .map_err(|e| anyhow!("invalid settings: {e}"))?;
    Ok(config)
}

/// The flags that only some detectors take: each flag, whether it is given, and the kinds
/// that take it. The one list that says which flag belongs to which kind.
fn kind_flags(a: &TrainArgs) -> [(&'static str, bool, &'static [DetectorKind]); 16] {
    use DetectorKind::{CsFlow, DifferNet, Fusion, PatchCore};
    [
        ("--epochs", a.epochs.is_some(), &[DifferNet, CsFlow]),
        ("--rotations", a.rotations.is_some(), &[DifferNet]),
        ("--hidden", a.hidden.is_some(), &[CsFlow]),
        ("--top-fraction", a.top_fraction.is_some(), &[CsFlow]),
        ("--dihedral", a.dihedral.is_some(), &[PatchCore, CsFlow]),
        ("--coreset", a.coreset.is_some(), &[PatchCore]),
        ("--keep-aspect", a.keep_aspect.is_some(), &[PatchCore]),
        ("--same-area", a.same_area.is_some(), &[PatchCore]),
        ("--standardise", a.standardise.is_some(), &[PatchCore]),
        (
            "--photometric-bank",
            a.photometric_bank.is_some(),
            &[PatchCore],
        ),
        ("--tile", a.tile.is_some(), &[PatchCore]),
        (
            "--scale-to-training",
            a.scale_to_training.is_some(),
            &[PatchCore],
        ),
        ("--neighbourhood", a.neighbourhood.is_some(), &[PatchCore]),
        (
            "--synthetic-defects",
            a.synthetic_defects.is_some(),
            &[PatchCore],
        ),
        ("--defect-weight", a.defect_weight.is_some(), &[PatchCore]),
        (
            "--bank-rotations",
            a.bank_rotations.is_some(),
            &[PatchCore, Fusion],
        ),
    ]
}

/// Refuses the first flag given that `a`'s detector does not take, naming the kinds that
/// do.
fn refuse_other_kinds_flags(a: &TrainArgs) -> Result<()> {
    let foreign = kind_flags(a)
        .into_iter()
        .find(|(_, given, kinds)| *given && !kinds.contains(&a.detector));
    match foreign {
        Some((flag, _, kinds)) => {
            let names: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
            bail!(
                "{flag} is a {} setting, not {}'s",
                names.join(" or "),
                a.detector
            )
        }
        None => Ok(()),
    }
}

/// DifferNet's settings: the preset on the chosen backbone, with its epochs and rotations.
fn differnet_config(a: &TrainArgs) -> Result<DetectorConfig> {
    let mut c = a
        .preset
        .config(a.backbone.unwrap_or(BackboneKind::EfficientnetLite0));
    if let Some(e) = a.epochs {
        c.train.epochs = e;
    }
    if let Some(r) = a.rotations {
        c.score.rotations = r;
    }
    Ok(DetectorConfig::DifferNet(c))
}

/// PatchCore's settings: the defaults with every PatchCore flag given applied.
fn patchcore_config(a: &TrainArgs) -> Result<DetectorConfig> {
    let mut c = PatchCoreConfig::default();
    if let Some(b) = a.backbone {
        c.backbone = b;
    }
    if let Some(f) = a.coreset {
        c.coreset_fraction = f;
    }
    if let Some(d) = a.dihedral {
        c.dihedral_bank = d;
    }
    if let Some(k) = a.keep_aspect {
        c.keep_aspect = k;
    }
    if let Some(k) = a.same_area {
        c.same_area = k;
    }
    if let Some(k) = a.standardise {
        c.standardise = k;
    }
    if let Some(k) = a.photometric_bank {
        c.photometric_bank = k;
    }
    if let Some(t) = a.tile {
        c.tile = t;
    }
    if let Some(k) = a.scale_to_training {
        c.scale_to_training = k;
    }
    if let Some(k) = a.neighbourhood {
        c.neighbourhood = k;
    }
    if let Some(k) = a.synthetic_defects {
        c.synthetic_defects = k;
    }
    if let Some(w) = a.defect_weight {
        c.defect_weight = w;
    }
    Ok(DetectorConfig::PatchCore(c))
}

/// A fusion's settings: the default members, on the chosen backbone; no member flags.
fn fusion_config(a: &TrainArgs) -> Result<DetectorConfig> {
    let mut c = DetectorConfig::Fusion(FusionConfig::default());
    if let Some(b) = a.backbone {
        c.set_backbone(b);
    }
    Ok(c)
}

/// CS-Flow's settings: the defaults with every CS-Flow flag given applied.
fn cs_flow_config(a: &TrainArgs) -> Result<DetectorConfig> {
    let mut c = CsFlowConfig::default();
    if let Some(b) = a.backbone {
        c.backbone = b;
    }
    if let Some(e) = a.epochs {
        c.epochs = e;
    }
    if let Some(d) = a.dihedral {
        c.dihedral = d;
    }
    if let Some(h) = a.hidden {
        c.hidden = h;
    }
    if let Some(f) = a.top_fraction {
        c.score = FlowScore::TopMean { fraction: f };
    }
    Ok(DetectorConfig::CsFlow(c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn args(line: &[&str]) -> TrainArgs {
        let mut full = vec!["differnet", "train", "--data", "d", "--out", "m"];
        full.extend_from_slice(line);
        match super::super::Cli::parse_from(full).command {
            super::super::Cmd::Train(a) => a,
            _ => unreachable!(),
        }
    }

    #[test]
    fn a_flag_of_another_kind_is_refused_with_the_kinds_that_take_it() {
        let e = train_config(&args(&["--detector", "differnet", "--coreset", "0.1"]))
            .unwrap_err()
            .to_string();
        assert_eq!(e, "--coreset is a patchcore setting, not differnet's");
        let e = train_config(&args(&["--detector", "fusion", "--dihedral", "true"]))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "--dihedral is a patchcore or cs-flow setting, not fusion's"
        );
        let e = train_config(&args(&["--detector", "cs-flow", "--bank-rotations", "4"]))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "--bank-rotations is a patchcore or fusion setting, not cs-flow's"
        );
        // Flags of the kind itself are taken.
        assert!(train_config(&args(&["--detector", "cs-flow", "--dihedral", "true"])).is_ok());
        assert!(train_config(&args(&["--detector", "differnet", "--epochs", "2"])).is_ok());
    }
}
