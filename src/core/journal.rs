//! The watch mode's journal: what makes "every part decided exactly once" survive a
//! `kill -9`, a power cut or a full disk.
//!
//! Each part goes through four steps, and the journal (an append-only text file, synced
//! after every line) records the two that matter:
//!
//! 1. `decided`: the part's number, its file, the score, the decision and where it goes.
//!    Written before anything is moved or logged, so the decision is never made twice.
//! 2. its row is appended to `log.csv` (synced), unless a row with its number is there;
//! 3. the file is renamed into its folder (or copied, with `--copy`);
//! 4. `done`.
//!
//! On start, every `decided` part without `done` is finished from step 2; a file in the
//! input folder that a `done` part came from (same name, size and modification time:
//! `--copy` leaves it there) is not scored again. A line cut short by a crash (no final
//! newline) is ignored and overwritten.

use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// What a file looked like when it was decided: a file with the same name, size and
/// modification time is the same part.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FileKey {
    /// File name in the input folder.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, in nanoseconds since 1970 (an `i64`: 128-bit numbers do not
    /// survive serde's buffering of tagged entries).
    pub mtime_ns: i64,
}

/// The decision for one part and what follows from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decided {
    /// The part's number in this output folder (1, 2, ...): the key of its log row.
    pub part: u64,
    /// The file it came from.
    pub file: FileKey,
    /// Its score (`None` when the file could not be read).
    pub score: Option<f64>,
    /// `accept`, `review`, `reject` or `unreadable` (a journal of an older version may
    /// say `ok` or `ng`: its parts are finished as written).
    pub decision: String,
    /// Where the file goes, relative to the output folder (e.g. `reject/a.png`).
    pub dest: PathBuf,
    /// The log row, without its line break.
    pub row: String,
}

/// One journal line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Entry {
    /// Step 1: the decision, before anything is moved or logged.
    Decided(Decided),
    /// Step 4: logged and moved.
    Done {
        /// The part's number.
        part: u64,
    },
}

impl Entry {
    /// The line for the journal file, with its line break.
    pub fn line(&self) -> String {
        let mut text = serde_json::to_string(self).expect("journal entries serialize");
        text.push('\n');
        text
    }
}

/// What a journal says, read back.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JournalState {
    /// Parts decided but not done, in order: to finish before anything else.
    pub pending: Vec<Decided>,
    /// Files of parts done (to skip when `--copy` left them in the input folder).
    pub done_files: HashSet<FileKey>,
    /// Destinations taken, relative to the output folder.
    pub taken: HashSet<PathBuf>,
    /// The next part number.
    pub next_part: u64,
    /// Bytes of whole lines; anything after (a line cut by a crash) is to be cut off.
    pub valid_len: usize,
    /// Whole lines that could not be parsed (reported, skipped).
    pub bad_lines: usize,
}

/// Reads a journal's text (see [`JournalState`]).
pub fn read(text: &str) -> JournalState {
    let mut state = JournalState {
        next_part: 1,
        ..Default::default()
    };
    let mut decided: HashMap<u64, Decided> = HashMap::new();
    let mut order: Vec<u64> = Vec::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if !line.ends_with('\n') {
            break;
        }
        offset += line.len();
        match serde_json::from_str::<Entry>(line.trim_end()) {
            Ok(Entry::Decided(d)) => {
                state.next_part = state.next_part.max(d.part + 1);
                state.taken.insert(d.dest.clone());
                order.push(d.part);
                decided.insert(d.part, d);
            }
            Ok(Entry::Done { part }) => {
                if let Some(d) = decided.remove(&part) {
                    state.done_files.insert(d.file);
                }
            }
            Err(_) => state.bad_lines += 1,
        }
    }
    state.valid_len = offset;
    state.pending = order
        .into_iter()
        .filter_map(|part| decided.remove(&part))
        .collect();
    state
}

/// A destination for `name` in `folder` that no other part took: `name`, else
/// `stem~2.ext`, `stem~3.ext`, ...
pub fn free_dest(folder: &str, name: &str, taken: &dyn Fn(&Path) -> bool) -> PathBuf {
    let first = Path::new(folder).join(name);
    if !taken(&first) {
        return first;
    }
    let path = Path::new(name);
    let stem = path
        .file_stem()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    let ext = path
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    (2..)
        .map(|n| Path::new(folder).join(format!("{stem}~{n}{ext}")))
        .find(|p| !taken(p))
        .expect("some number is free")
}

/// The header of `log.csv`: the columns of every parts CSV
/// ([`crate::core::report::PARTS_CSV_HEADER`]), then the line's `drift` and `part`.
pub const LOG_HEADER: &str = "path,label,score,decision,reject_threshold,review_threshold,model,model_id,time,hot_area_px,model_role,drift,part";

/// Whether a log row belongs to `part` (its last field).
pub fn row_is_part(row: &str, part: u64) -> bool {
    row.rsplit(',').next() == Some(part.to_string().as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decided(part: u64, name: &str) -> Decided {
        Decided {
            part,
            file: FileKey {
                name: name.into(),
                size: 10,
                mtime_ns: 1_795_759_688_949_021_560,
            },
            score: Some(1.5),
            decision: "accept".into(),
            dest: PathBuf::from("accept").join(name),
            row: format!("t,{name},1.5,ok,2,,m,id,{part}"),
        }
    }

    #[test]
    fn pending_parts_and_done_files_are_read_back() {
        let mut text = String::new();
        text += &Entry::Decided(decided(1, "a.png")).line();
        text += &Entry::Done { part: 1 }.line();
        text += &Entry::Decided(decided(2, "b.png")).line();
        let whole = text.len();
        // A crash in the middle of the next line.
        text += &Entry::Decided(decided(3, "c.png")).line()[..20];
        let state = read(&text);
        assert_eq!(state.pending, vec![decided(2, "b.png")]);
        assert!(state.done_files.contains(&decided(1, "a.png").file));
        assert_eq!(state.next_part, 3);
        assert_eq!(state.valid_len, whole);
        assert!(state.taken.contains(Path::new("accept/b.png")));
        assert_eq!(state.bad_lines, 0);
        assert_eq!(read("").next_part, 1);
        assert_eq!(read("garbage\n").bad_lines, 1);
    }

    #[test]
    fn destinations_never_clash() {
        let taken: HashSet<PathBuf> = ["reject/a.png", "reject/a~2.png"]
            .iter()
            .map(PathBuf::from)
            .collect();
        let is_taken = |p: &Path| taken.contains(p);
        assert_eq!(
            free_dest("reject", "a.png", &is_taken),
            PathBuf::from("reject/a~3.png")
        );
        assert_eq!(
            free_dest("accept", "a.png", &is_taken),
            PathBuf::from("accept/a.png")
        );
        assert_eq!(
            free_dest("reject", "b", &is_taken),
            PathBuf::from("reject/b")
        );
    }

    #[test]
    fn log_rows_are_found_by_part() {
        assert!(row_is_part("t,a.png,1,ok,2,,m,id,12", 12));
        assert!(!row_is_part("t,a.png,1,ok,2,,m,id,12", 1));
    }

    #[test]
    fn the_log_has_the_columns_of_every_parts_csv_then_its_own() {
        let parts = crate::core::report::PARTS_CSV_HEADER;
        assert_eq!(LOG_HEADER, format!("{parts},drift,part"));
    }
}
