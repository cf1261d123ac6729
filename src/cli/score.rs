//! `differnet score`: scores and decisions of images and folders, as a table or CSV,
//! with heatmap images.

use super::*;

pub(super) fn score(a: ScoreArgs) -> Result<()> {
    let (paths, skipped_inputs) = dataset::list_images(&a.paths);
    for (p, why) in &skipped_inputs {
        eprintln!("skipped: {}", skipped_line(p, why));
    }
    if paths.is_empty() {
        bail!("no images to score");
    }
    if let Some(dir) = &a.heatmaps {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let worker = start_worker(&a.engine, None)?;
    let mut progress = Progress::new(a.engine.json);
    let info = load_model(&worker, &a.model, &mut progress)?;
    let threshold = a.threshold.or(info.threshold).map(|reject| {
        let saved_review = if a.threshold.is_none() {
            info.review_threshold
        } else {
            None
        };
        Thresholds {
            reject,
            review: a.review_threshold.or(saved_review),
        }
        .ordered()
    });
    send(
        &worker,
        Command::Score(ScoreRequest {
            paths,
            heatmaps: a.heatmaps.is_some(),
            rotations: a.rotations,
        }),
    )?;
    let model_name = model_file_name(&a.model);
    let mut rows = Vec::new();
    let mut export_names = crate::core::report::ExportNames::default();
    let skipped = loop {
        match common_event(next_event(&worker)?, &mut progress)? {
            Some(Event::ScoringDone { skipped, .. }) => break skipped,
            Some(Event::Scored(s)) => {
                let mut hot = None;
                if let (Some(dir), Some(map)) = (&a.heatmaps, &s.heatmap) {
                    let scaled = ScaledHeat::new(
                        map,
                        s.score,
                        threshold.map(|t| t.reject),
                        info.typical_good_score(),
                        info.config.heat_vmax(),
                    );
                    hot = scaled.hot_area;
                    let caption = heatmap_caption(&s.path, s.score, threshold, Some(&model_name));
                    let dest = dir.join(export_names.heatmap_name(&s.path));
                    write_heatmap_file(
                        &s.path,
                        &scaled,
                        Colormap::default(),
                        HEATMAP_OPACITY,
                        &caption,
                        &dest,
                    )
                    .map_err(|e| anyhow!(e))?;
                }
                rows.push((s.path, s.score, hot));
            }
            _ => {}
        }
    };
    progress.finish();
    // The parts CSV of every front end; with maps, each part's hot area (pixels at or
    // above the reject line's level).
    let unknown = Label::Unknown.type_name();
    let scored = rows
        .iter()
        .map(|(path, score, hot)| (path.as_path(), unknown, *score, *hot));
    let text = scored_csv(scored, &a.model, &info, threshold);
    if let Some(csv) = &a.csv {
        crate::core::atomic_file::write_atomic(csv, text.as_bytes())
            .with_context(|| format!("cannot write {}", csv.display()))?;
    }
    if a.engine.json {
        let items: Vec<_> = rows
            .iter()
            .map(|(p, s, hot)| serde_json::json!({"path": text_path(p), "score": s, "decision": decision(*s, threshold), "hot_area_px": hot}))
            .collect();
        let skipped: Vec<_> = skipped
            .iter()
            .chain(skipped_inputs.iter())
            .map(|(p, r)| serde_json::json!({"path": text_path(p), "reason": r}))
            .collect();
        outln!(
            "{}",
            serde_json::json!({"threshold": threshold.map(|t| t.reject), "review_threshold": threshold.and_then(|t| t.review), "images": items, "skipped": skipped})
        )?;
    } else {
        if a.csv.is_none() {
            std::io::stdout().write_all(text.as_bytes())?;
        }
        let rejected = rows
            .iter()
            .filter(|(_, s, _)| decision(*s, threshold) == "reject")
            .count();
        eprintln!(
            "{} scored, {rejected} rejected, {} skipped",
            rows.len(),
            skipped.len() + skipped_inputs.len()
        );
        for (p, r) in &skipped {
            eprintln!("skipped: {}", skipped_line(p, r));
        }
    }
    if rows.is_empty() {
        bail!(
            "none of the {} images could be read, so nothing was scored",
            skipped.len()
        );
    }
    Ok(())
}
