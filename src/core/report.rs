//! Reports written for other tools: the CSV of every part's score and decision, and the
//! file names of exported heatmap images.

use crate::core::decision::Thresholds;
use std::collections::HashMap;
use std::path::Path;

/// One row of the parts CSV.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PartRow<'a> {
    /// The image file.
    pub path: &'a Path,
    /// What is known about it: "good", a defect type, or "unknown".
    pub label: &'a str,
    /// Its anomaly score (`None`: it could not be read).
    pub score: Option<f64>,
    /// The call made at the lines: [`Decision::name`], `unknown` without a line
    /// ([`crate::core::decision::decision_name`]), or the line's `unreadable`.
    pub decision: &'a str,
    /// Pixels of its heatmap at or above the reject line's level (the decision scale of
    /// [`crate::core::heat_layer::DecisionScale`]), when it has a map.
    pub hot_area: Option<usize>,
    /// What the current model did with the image (trained on it, held it out), when it
    /// was one of its good images.
    pub model_role: Option<crate::core::provenance::ModelRole>,
}

/// What every row of a parts CSV shares: the lines, the model and the time.
#[derive(Debug, Clone, PartialEq)]
pub struct CsvContext {
    /// The lines the decisions were made at (`None`: the model has none).
    pub thresholds: Option<Thresholds>,
    /// The model: its file name or "trained here", and its settings.
    pub model: String,
    /// The model's id, when it records one.
    pub model_id: Option<String>,
    /// When the decisions were exported, UTC.
    pub time: String,
}

/// The header line of [`parts_csv`].
pub const PARTS_CSV_HEADER: &str = "path,label,score,decision,reject_threshold,review_threshold,model,model_id,time,hot_area_px,model_role";

/// The fields of one row of a parts CSV ([`PARTS_CSV_HEADER`]): the one row builder of
/// the window's export, `differnet score --csv`, `differnet eval --csv` and the line's
/// `log.csv` (which adds its own columns after these). An absent value is an empty field.
pub fn part_fields(row: &PartRow<'_>, context: &CsvContext) -> Vec<String> {
    let t = context.thresholds;
    vec![
        row.path.display().to_string(),
        row.label.to_owned(),
        row.score.map_or_else(String::new, |s| s.to_string()),
        row.decision.to_owned(),
        t.map_or_else(String::new, |t| t.reject.to_string()),
        t.and_then(|t| t.review)
            .map_or_else(String::new, |r| r.to_string()),
        context.model.clone(),
        context.model_id.clone().unwrap_or_default(),
        context.time.clone(),
        row.hot_area.map_or_else(String::new, |a| a.to_string()),
        row.model_role.map_or("", |r| r.name()).to_owned(),
    ]
}

/// The parts CSV with a header line, one row per part, in the order given. Each row
/// carries the lines, the model and the time, so a row means the same on its own.
pub fn parts_csv(rows: &[PartRow<'_>], context: &CsvContext) -> String {
    let mut table = CsvTable::new(PARTS_CSV_HEADER.split(','));
    for row in rows {
        table.row(part_fields(row, context));
    }
    table.into_text()
}

/// The one CSV writer of the product (parts exports, `score` and `eval` reports, the
/// line's log): fields quoted as RFC 4180 says, by the `csv` crate, when they hold a
/// comma, a quote or a line break; records end in `\n`.
#[derive(Debug)]
pub struct CsvTable {
    writer: csv::Writer<Vec<u8>>,
}

impl CsvTable {
    /// A table that starts with `header`.
    pub fn new<I, F>(header: I) -> Self
    where
        I: IntoIterator<Item = F>,
        F: AsRef<[u8]>,
    {
        let mut table = Self {
            writer: csv_writer(),
        };
        table.row(header);
        table
    }

    /// Appends one record.
    pub fn row<I, F>(&mut self, fields: I)
    where
        I: IntoIterator<Item = F>,
        F: AsRef<[u8]>,
    {
        // Writing into memory cannot fail; a record of another length is allowed (flexible).
        self.writer
            .write_record(fields)
            .expect("a CSV record written to memory");
    }

    /// The whole table as text.
    pub fn into_text(self) -> String {
        let bytes = self
            .writer
            .into_inner()
            .expect("a CSV table flushed to memory");
        // Every field came in as UTF-8 text and quoting adds only ASCII.
        String::from_utf8(bytes).expect("CSV of UTF-8 fields is UTF-8")
    }
}

/// One CSV record without its line end, quoted as [`CsvTable`] quotes (for a log that
/// appends a row at a time).
pub fn csv_record<I, F>(fields: I) -> String
where
    I: IntoIterator<Item = F>,
    F: AsRef<[u8]>,
{
    let mut writer = csv_writer();
    writer
        .write_record(fields)
        .expect("a CSV record written to memory");
    let bytes = writer.into_inner().expect("a CSV record flushed to memory");
    let mut text = String::from_utf8(bytes).expect("CSV of UTF-8 fields is UTF-8");
    text.pop();
    text
}

fn csv_writer() -> csv::Writer<Vec<u8>> {
    csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .quote_style(csv::QuoteStyle::Necessary)
        .flexible(true)
        .from_writer(Vec::new())
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
            thresholds: Some(Thresholds {
                reject: 2.0,
                review: Some(0.5),
            }),
            model: "tiles.differnet, PatchCore".into(),
            model_id: Some("0123456789ab".into()),
            time: "2026-11-27T05:00:00Z".into(),
        };
        let rows = [
            PartRow {
                path: a,
                label: "crack",
                score: Some(2.5),
                decision: "reject",
                hot_area: Some(12),
                model_role: None,
            },
            PartRow {
                path: b,
                label: "unknown",
                score: Some(0.75),
                decision: "review",
                hot_area: None,
                model_role: Some(crate::core::provenance::ModelRole::TrainedOn),
            },
        ];
        let text = parts_csv(&rows, &context);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], PARTS_CSV_HEADER);
        assert_eq!(
            lines[1],
            "\"/data/a,b.png\",crack,2.5,reject,2,0.5,\"tiles.differnet, PatchCore\",0123456789ab,2026-11-27T05:00:00Z,12,"
        );
        assert!(lines[2].starts_with("/data/c.png,unknown,0.75,review,2,0.5,"));
        assert!(lines[2].ends_with(",,trained_on"), "{}", lines[2]);
        let no_band = CsvContext {
            thresholds: Some(Thresholds::reject_at(2.0)),
            model_id: None,
            ..context
        };
        let text = parts_csv(&rows[1..], &no_band);
        assert!(
            text.lines().nth(1).unwrap().contains(",review,2,,\"tiles"),
            "{text}"
        );
        // Without a line, and for a file that cannot be read: empty fields.
        let none = CsvContext {
            thresholds: None,
            ..no_band
        };
        let unread = PartRow {
            score: None,
            decision: "unreadable",
            ..rows[0]
        };
        let fields = part_fields(&unread, &none);
        assert_eq!(fields.len(), PARTS_CSV_HEADER.split(',').count());
        assert_eq!(fields[2..6], ["", "unreadable", "", ""]);
    }

    /// A label and a path that hold a comma, a quote and a line break come back whole
    /// through an RFC 4180 reader.
    #[test]
    fn fields_with_commas_quotes_and_line_breaks_round_trip() {
        let path = "/data/scratch, \"deep\"\nline 2/a.png";
        let label = "scratch, \"deep\"\r\n2";
        let mut table = CsvTable::new(["path", "label", "score"]);
        table.row([path, label, "1.5"]);
        table.row(["plain.png", "good", "0.25"]);
        let text = table.into_text();
        assert!(
            text.starts_with("path,label,score\n\"/data/scratch, \"\"deep\"\"\n"),
            "{text}"
        );
        assert!(text.ends_with("\nplain.png,good,0.25\n"), "{text}");
        let mut reader = csv::ReaderBuilder::new().from_reader(text.as_bytes());
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), 2);
        assert_eq!(&rows[0][0], path);
        assert_eq!(&rows[0][1], label);
        assert_eq!(&rows[1][1], "good");
        // One record for a log, without its line end.
        let line = csv_record(["a,b", "c"]);
        assert_eq!(line, "\"a,b\",c");
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
