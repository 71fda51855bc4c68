//! YAML → raw documents, with spans (serde-saphyr, budgets on).

use super::{Config, Diagnostics, SourceFile};

/// Raw documents of every file, plus the problems found while parsing.
pub(super) struct ParsedDocs {
    pub(super) problems: Diagnostics,
}

pub(super) fn parse_files(files: &[SourceFile], policies_dir: &str) -> ParsedDocs {
    todo!("{} {policies_dir}", files.len())
}

pub(super) fn parse_config(path: &str, contents: &[u8]) -> Result<Config, Diagnostics> {
    todo!("{path} {}", contents.len())
}
