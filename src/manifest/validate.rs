//! Semantic checks on parsed documents.

use super::parse::ParsedDocs;
use super::{Diagnostics, Manifests};

pub(super) fn validate(docs: ParsedDocs) -> Result<Manifests, Diagnostics> {
    todo!("{}", docs.problems.len())
}
