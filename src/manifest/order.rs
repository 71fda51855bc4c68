//! How a stream orders its versions: semver precedence (build metadata ignored) or the
//! order in which the stream lists them (newest last).

use std::cmp::Ordering;

/// A stream's `order`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    /// Semver 2.0 precedence; build metadata is ignored.
    #[default]
    Semver,
    /// The order of the stream's `releases`, newest last.
    Listed,
}

/// A version's sort key under its stream's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionKey {
    /// A parsed semver version (compared by precedence).
    Semver(semver::Version),
    /// Position in the stream's `releases`.
    Listed(usize),
}

impl VersionKey {
    /// Compares two keys of the same stream: `Less` means `self` is older. Semver keys
    /// compare by precedence, so `4.2.14` and `4.2.14+amd64` are `Equal`.
    pub fn precedence(&self, other: &VersionKey) -> Ordering {
        match (self, other) {
            (VersionKey::Semver(a), VersionKey::Semver(b)) => a.cmp_precedence(b),
            (VersionKey::Listed(a), VersionKey::Listed(b)) => a.cmp(b),
            // Keys of one stream are always of one kind; order kinds arbitrarily but totally.
            (VersionKey::Semver(_), VersionKey::Listed(_)) => Ordering::Less,
            (VersionKey::Listed(_), VersionKey::Semver(_)) => Ordering::Greater,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> VersionKey {
        VersionKey::Semver(semver::Version::parse(s).unwrap())
    }

    #[test]
    fn build_metadata_is_ignored_and_alphanumeric_beats_numeric() {
        assert_eq!(
            key("4.2.14").precedence(&key("4.2.14+amd64")),
            Ordering::Equal
        );
        assert_eq!(
            key("4.15.0-okd-scos.ec.1").precedence(&key("4.15.0-okd-scos.0")),
            Ordering::Greater
        );
        assert_eq!(
            key("4.14.0-rc.3").precedence(&key("4.14.0")),
            Ordering::Less
        );
        assert_eq!(
            VersionKey::Listed(1).precedence(&VersionKey::Listed(3)),
            Ordering::Less
        );
    }
}
