//! PURE: validated manifests → the desired state, keyed by target repository across all
//! streams (two streams may share a target; their tags are one set), plus one desired tag set
//! per ImageStream.
//!
//! - `types`: the desired state itself ([`DesiredState`] and its parts);
//! - `order`: a version's sort key and a channel's newest version ([`newest_version`]);
//! - `derive`: manifests → [`DesiredState`] ([`derive()`]), with the checks that need it;
//! - `payload`: the component tags of payload streams, added once the component lists are
//!   known ([`add_components`]).
//!
//! [`load`] is the whole way from files to manifests that validation and derivation both
//! judged: the manifest layer validates, and this one adds derivation's problems.

mod derive;
mod order;
mod payload;
#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;
mod types;

pub use derive::derive;
pub use order::{newest_version, version_key};
pub use payload::{
    ComponentOf, DesiredPayloads, PayloadRelease, add_components, payload_releases, source_allowed,
};
pub use types::{
    AbsentTag, DesiredImageStreamTag, DesiredRepo, DesiredState, DesiredTag, KnownRelease, TagKind,
};

use crate::manifest::{self, Diagnostics, Manifests, SourceFile, Validated};

/// Parses and validates every file (manifests and the policies under `policies_dir`), as
/// [`manifest::validate`] does, and reports every problem in one run: when validation finds
/// errors, the checks that need the derived state (claims, ties, floating tags) run on what
/// did parse and their errors are added, so fixing one error does not reveal the next.
/// Documents that failed are left out, so they cause no second error here.
///
/// `Ok` means validation passed (warnings are in [`Manifests::warnings`]); [`derive()`] may
/// still refuse the manifests, with its own errors only.
pub fn load(files: &[SourceFile], policies_dir: &str) -> Result<Manifests, Diagnostics> {
    let Validated {
        manifests,
        mut problems,
    } = manifest::validate(files, policies_dir);
    if !problems.has_errors() {
        return Ok(Manifests {
            warnings: problems,
            ..manifests
        });
    }
    if let Err(derived) = derive(&manifests) {
        for d in derived.0 {
            if !problems.0.contains(&d) {
                problems.push(d);
            }
        }
        problems.sort();
    }
    Err(problems)
}
