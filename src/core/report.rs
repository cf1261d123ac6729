//! Reports written for other tools: the CSV of every part's score and decision, and the
//! file names of exported heatmap images.

use crate::core::decision::Decision;
use std::collections::HashMap;
use std::path::Path;

/// One row of the parts CSV.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PartRow<'a> {
    /// The image file.
    pub path: &'a Path,
    /// Its anomaly score.
    pub score: f64,
    /// The call made at the current thresholds.
    pub decision: Decision,
}

/// The CSV text `path,score,decision` with a header line, one row per part, in the order
/// given. Fields are quoted when they need it.
pub fn parts_csv(rows: &[PartRow<'_>]) -> String {
    let mut text = String::from("path,score,decision\n");
    for row in rows {
        text += &format!(
            "{},{},{}\n",
            csv_field(&row.path.display().to_string()),
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
    fn csv_quotes_awkward_paths() {
        let a = Path::new("/data/a,b.png");
        let b = Path::new("/data/c.png");
        let text = parts_csv(&[
            PartRow {
                path: a,
                score: 1.5,
                decision: Decision::Reject,
            },
            PartRow {
                path: b,
                score: 0.25,
                decision: Decision::Review,
            },
        ]);
        assert_eq!(
            text,
            "path,score,decision\n\"/data/a,b.png\",1.5,reject\n/data/c.png,0.25,review\n"
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
