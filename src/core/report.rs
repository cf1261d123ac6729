//! Reports written for other tools: the CSV of every part's score and decision, and the
//! file names of exported heatmap images.

use crate::core::decision::{Decision, Thresholds};
use std::collections::HashMap;
use std::path::Path;

/// One row of the parts CSV.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PartRow<'a> {
    /// The image file.
    pub path: &'a Path,
    /// What is known about it: "good", a defect type, or "unknown".
    pub label: &'a str,
    /// Its anomaly score.
    pub score: f64,
    /// The call made at the current thresholds.
    pub decision: Decision,
}

/// What every row of a parts CSV shares: the lines, the model and the time.
#[derive(Debug, Clone, PartialEq)]
pub struct CsvContext {
    /// The lines the decisions were made at.
    pub thresholds: Thresholds,
    /// The model: its file name or "trained here", and its settings.
    pub model: String,
    /// The model's id, when it records one.
    pub model_id: Option<String>,
    /// When the decisions were exported, UTC.
    pub time: String,
}

/// The header line of [`parts_csv`].
pub const PARTS_CSV_HEADER: &str =
    "path,label,score,decision,reject_threshold,review_threshold,model,model_id,time";

/// The parts CSV with a header line, one row per part, in the order given. Each row
/// carries the lines, the model and the time, so a row means the same on its own. Fields
/// are quoted when they need it; an absent review line is an empty field.
pub fn parts_csv(rows: &[PartRow<'_>], context: &CsvContext) -> String {
    let mut text = format!("{PARTS_CSV_HEADER}\n");
    let shared = format!(
        "{},{},{},{},{}",
        context.thresholds.reject,
        context
            .thresholds
            .review
            .map(|r| r.to_string())
            .unwrap_or_default(),
        csv_field(&context.model),
        csv_field(context.model_id.as_deref().unwrap_or("")),
        context.time
    );
    for row in rows {
        text += &format!(
            "{},{},{},{},{shared}\n",
            csv_field(&row.path.display().to_string()),
            csv_field(row.label),
            row.score,
            row.decision.name()
        );
    }
    text
}

/// Quotes a CSV field when it holds a comma, a quote or a line break.
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Gives exported heatmap images distinct names: the image's folder and file name, so that
/// `test/a/000.png` and `test/b/000.png` differ, with a counter for any further clash.
#[derive(Debug, Default)]
pub struct ExportNames {
    used: HashMap<String, usize>,
}

impl ExportNames {
    /// The file name (`<folder>_<stem>_heatmap.png`) for the heatmap of `image`.
    pub fn heatmap_name(&mut self, image: &Path) -> String {
        let part = |p: Option<&std::ffi::OsStr>| p.map(|n| n.to_string_lossy().to_string());
        let stem = match (
            part(image.parent().and_then(Path::file_name)),
            part(image.file_stem()),
        ) {
            (Some(dir), Some(file)) => format!("{dir}_{file}"),
            (None, Some(file)) => file,
            _ => "image".to_string(),
        };
        let n = self.used.entry(stem.clone()).or_insert(0);
        let name = if *n == 0 {
            format!("{stem}_heatmap.png")
        } else {
            format!("{stem}_{n}_heatmap.png")
        };
        *n += 1;
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows_carry_the_label_the_lines_the_model_and_the_time() {
        let a = Path::new("/data/a,b.png");
        let b = Path::new("/data/c.png");
        let context = CsvContext {
            thresholds: Thresholds {
                reject: 2.0,
                review: Some(0.5),
            },
            model: "tiles.differnet, PatchCore".into(),
            model_id: Some("0123456789ab".into()),
            time: "2026-11-27T05:00:00Z".into(),
        };
        let rows = [
            PartRow {
                path: a,
                label: "crack",
                score: 2.5,
                decision: Decision::Reject,
            },
            PartRow {
                path: b,
                label: "unknown",
                score: 0.75,
                decision: Decision::Review,
            },
        ];
        let text = parts_csv(&rows, &context);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], PARTS_CSV_HEADER);
        assert_eq!(
            lines[1],
            "\"/data/a,b.png\",crack,2.5,reject,2,0.5,\"tiles.differnet, PatchCore\",0123456789ab,2026-11-27T05:00:00Z"
        );
        assert!(lines[2].starts_with("/data/c.png,unknown,0.75,review,2,0.5,"));
        let no_band = CsvContext {
            thresholds: Thresholds::reject_at(2.0),
            model_id: None,
            ..context
        };
        let text = parts_csv(&rows[1..], &no_band);
        assert!(
            text.lines().nth(1).unwrap().contains(",review,2,,\"tiles"),
            "{text}"
        );
    }

    #[test]
    fn export_names_keep_the_folder_and_never_clash() {
        let mut names = ExportNames::default();
        assert_eq!(
            names.heatmap_name(Path::new("test/scratch/000.png")),
            "scratch_000_heatmap.png"
        );
        assert_eq!(
            names.heatmap_name(Path::new("test/stain/000.png")),
            "stain_000_heatmap.png"
        );
        assert_eq!(
            names.heatmap_name(Path::new("other/scratch/000.jpg")),
            "scratch_000_1_heatmap.png"
        );
    }
}
