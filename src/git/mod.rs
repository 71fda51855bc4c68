//! Adapter (git2): reads the desired-state files from a revision's tree, or from the working
//! tree for `validate` as a pre-commit hook.
