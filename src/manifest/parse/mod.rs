//! YAML → raw documents, with spans (serde-saphyr, budgets on).
//!
//! Each file is first scanned once with the YAML event parser (granit-parser, which
//! serde-saphyr re-exports) to find its document boundaries, syntax errors and nesting that
//! is too deep; nothing is expanded, so the scan is linear. Each document is then deserialized
//! on its own with serde-saphyr (budgets on) into one strict struct (`deny_unknown_fields`
//! everywhere, every field `Spanned`), so that a problem in one document never hides the
//! documents after it. (serde-saphyr's own multi-document iterator skips to the next document
//! after an error, but it stops silently when that skip itself meets a budget limit or a syntax
//! error, losing every later document; deserializing document slices avoids that.) When
//! serde-saphyr reports an error, the document is scanned again to name the field at fault
//! (`spec.releases[3].digest`) and what was expected there.
//!
//! The spec of every kind is one union struct; which fields a kind may carry, and which it
//! must, is checked here by hand, with the field's own place in the file.

mod convert;
mod duration;
mod fault;
mod hint;
mod raw;
mod read;
mod scan;
mod schema;
mod shape;

use serde_saphyr::Spanned;

pub(crate) use convert::{check_spec_fields, header, non_empty, required};
pub(crate) use duration::parse_duration;
pub(crate) use fault::shown;
pub(crate) use hint::{did_you_mean, hinted};
pub(crate) use raw::{ParsedDocs, RawChannel, RawPolicy, RawSignatures, RawStream};
pub(crate) use read::{DocCtx, for_each_document};
pub(crate) use schema::document_schema;
pub(crate) use shape::{DocDe, Kind, NotificationDe, RateLimitDe, RegistryDe};

use super::{Diagnostics, SourceFile};

/// Files larger than this are refused before parsing.
pub(crate) const MAX_FILE_BYTES: usize = 16 * 1024 * 1024;
/// Deepest nesting of mappings and sequences accepted (real manifests nest 4 deep).
pub(crate) const MAX_DEPTH: usize = 64;
/// Most aliases (`*name`) accepted in one document.
pub(crate) const MAX_ALIASES: usize = 1_000;
/// Most anchors (`&name`) accepted in one document.
const MAX_ANCHORS: usize = 1_000;
/// Most events replayed from aliases in one document.
const MAX_REPLAYED_EVENTS: usize = 100_000;
/// Most scalar bytes in one document, counting every alias expansion again: this bounds what
/// an alias bomb can make of a file.
const MAX_SCALAR_BYTES: usize = MAX_FILE_BYTES;

type S<T> = Spanned<T>;
/// A list of strings, each with its place.
type StringList = Vec<S<String>>;

/// Parses every manifest and policy file into raw documents; a Policy must live under
/// `policies_dir`.
pub(crate) fn parse_files(files: &[SourceFile], policies_dir: &str) -> ParsedDocs {
    let mut out = ParsedDocs::default();
    let policies_prefix = policies_dir.trim_end_matches('/');
    for file in files {
        let under_policies = !policies_prefix.is_empty()
            && file
                .path
                .strip_prefix(policies_prefix)
                .is_some_and(|rest| rest.starts_with('/'));
        let mut problems = Diagnostics::default();
        let broken = for_each_document(&file.path, &file.contents, &mut problems, |ctx, doc| {
            convert::convert_manifest(ctx, doc, under_policies, policies_prefix, &mut out)
        });
        out.broken.extend(broken);
        out.problems.0.extend(problems.0);
    }
    out
}
