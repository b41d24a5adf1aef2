//! Tables in the docs generated from the code: a test compares the committed section with
//! what the code generates now, and `CACHEME_UPDATE_DOCS=1` rewrites it instead.

use std::path::Path;

/// Checks the part of `path` between the lines `begin` (included, with its newline) and
/// `end` against `generated`. On a difference: rewrites it when `CACHEME_UPDATE_DOCS` is
/// set, else panics with `regenerate`, the command that does.
pub fn check_generated_section(
    path: &Path,
    begin: &str,
    end: &str,
    generated: &str,
    regenerate: &str,
) {
    let shown = path.display();
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{shown}: {e}"));
    let begin_line = format!("{begin}\n");
    let Some(start) = text.find(&begin_line) else {
        panic!("{shown} has no generated-section marker {begin}");
    };
    let Some(stop) = text[start..].find(end).map(|at| start + at) else {
        panic!("{shown} has no {end} after {begin}");
    };
    let current = &text[start + begin_line.len()..stop];
    if current == generated {
        return;
    }
    if std::env::var_os("CACHEME_UPDATE_DOCS").is_some() {
        let updated = format!("{}{begin_line}{generated}{}", &text[..start], &text[stop..]);
        std::fs::write(path, updated).unwrap_or_else(|e| panic!("cannot write {shown}: {e}"));
    } else {
        panic!("{shown} is out of date; regenerate it with\n  {regenerate}");
    }
}
