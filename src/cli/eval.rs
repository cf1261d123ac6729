//! `differnet eval`: a model on a labelled test set (image and pixel AUROC, per defect
//! type, what the default line did against its prediction).

use super::*;

pub(super) fn eval(a: EvalArgs) -> Result<()> {
    let data = discover(&a.data)?;
    let samples: Vec<_> = data
        .test
        .into_iter()
        .filter(|s| s.label != Label::Unknown)
        .collect();
    if samples.is_empty() {
        bail!(
            "no labelled test images (expected test/good and test/<defect>/) in {}",
            a.data.display()
        );
    }
    let worker = start_worker(&a.engine, None)?;
    let mut progress = Progress::new(a.engine.json);
    let info = load_model(&worker, &a.model, &mut progress)?;
    // Never score an image the model learnt from as a confirmed defect.
    let learnt: std::collections::HashSet<PathBuf> = info
        .trained_on
        .as_ref()
        .map(|t| t.defect_files.iter().map(|p| absolute(p)).collect())
        .unwrap_or_default();
    let before = samples.len();
    let samples: Vec<_> = samples
        .into_iter()
        .filter(|s| !learnt.contains(&absolute(&s.path)))
        .collect();
    let left_out = before - samples.len();
    if left_out > 0 {
        progress.note(&format!(
            "left out {left_out} defective images the model was trained on"
        ));
    }
    if samples.is_empty() {
        bail!("every labelled test image was used to train the model");
    }
    send(
        &worker,
        Command::Evaluate(EvaluateRequest {
            samples,
            pixel_metrics: !a.no_pixel,
            rotations: a.rotations,
        }),
    )?;
    let mut rows = Vec::new();
    let report = loop {
        match common_event(next_event(&worker)?, &mut progress)? {
            Some(Event::Evaluated(r)) => break r,
            Some(Event::Scored(s)) => rows.push((s.path, s.label.type_name().to_string(), s.score)),
            _ => {}
        }
    };
    progress.finish();
    if let Some(csv) = &a.csv {
        let threshold = info.threshold.map(|reject| Thresholds {
            reject,
            review: info.review_threshold,
        });
        let scored = rows
            .iter()
            .map(|(path, label, score)| (path.as_path(), label.as_str(), *score, None));
        let text = scored_csv(scored, &a.model, &info, threshold);
        crate::core::atomic_file::write_atomic(csv, text.as_bytes())
            .with_context(|| format!("cannot write {}", csv.display()))?;
    }
    // What the model's own line does here, beside what its held-out images predicted.
    let fit = info.validation.as_ref().and_then(|v| v.fit());
    let line = info.threshold.map(|t| {
        LineCheck::new(
            t,
            fit.as_ref(),
            rows.iter()
                .map(|(_, label, score)| (*score, label != "good")),
        )
    });
    if a.engine.json {
        let mut value = serde_json::to_value(&report)?;
        value["line"] = serde_json::to_value(line)?;
        value["left_out_trained_defects"] = left_out.into();
        outln!("{}", serde_json::to_string_pretty(&value)?)?;
        return Ok(());
    }
    let pct = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{:.1}", 100.0 * v));
    outln!("images: {}", report.count)?;
    outln!("image AUROC: {}", pct(report.image_auroc))?;
    for (t, v) in &report.per_type_auroc {
        outln!("  {t:>12}: {:.1}", 100.0 * v)?;
    }
    if let Some(b) = &report.best_f1 {
        outln!(
            "best F1 {:.3} at threshold {:.4} (precision {:.3}, recall {:.3})",
            b.f1,
            b.threshold,
            b.precision,
            b.recall
        )?;
    }
    if let Some(line) = &line {
        outln!(
            "at the model's line {:.4}: {}",
            line.threshold,
            line.summary()
        )?;
    }
    outln!("pixel AUROC: {}", pct(report.pixel_auroc))?;
    outln!("{:.3} s per image", report.secs_per_image)?;
    for (p, r) in &report.skipped {
        outln!("skipped: {}", skipped_line(p, r))?;
    }
    Ok(())
}
