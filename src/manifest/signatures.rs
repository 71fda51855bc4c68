//! A Policy's `signatures`: `require` and the trusted `keys` (`name`, `publicKey` in PEM),
//! checked and merged into [`super::SignaturePolicy`]. A key that cannot be used (not PEM,
//! an unsupported type) is an error at its `publicKey`; `require: true` with no usable key in
//! any document is an error at `require` (nothing could ever be published).

use super::parse::RawSignatures;
use super::{Diagnostic, Diagnostics, Located, SignaturePolicy};
use crate::signature::{PublicKey, TrustedKey};

/// Checks one document's `signatures` and merges it into `merged`.
pub(super) fn check(
    diags: &mut Diagnostics,
    policy: &Located<String>,
    sigs: &RawSignatures,
    merged: &mut SignaturePolicy,
) {
    for k in &sigs.keys {
        let Some(name) = &k.name else {
            diags.push(Diagnostic::error(
                k.span.clone(),
                format!(
                    "missing field `name` in signatures.keys of policy `{}`",
                    policy.value
                ),
            ));
            continue;
        };
        let Some(pem) = &k.public_key else {
            diags.push(Diagnostic::error(
                k.span.clone(),
                format!(
                    "missing field `publicKey` of signatures key `{}` in policy `{}`",
                    name.value, policy.value
                ),
            ));
            continue;
        };
        if name.value.trim().is_empty() {
            diags.push(Diagnostic::error(
                name.span.clone(),
                "`signatures.keys[].name` must not be empty",
            ));
            continue;
        }
        if let Some(other) = merged.keys.iter().find(|o| o.value.name == name.value) {
            diags.push(Diagnostic::error(
                name.span.clone(),
                format!(
                    "signatures key `{}` is listed twice (also at {})",
                    name.value, other.span
                ),
            ));
            continue;
        }
        match PublicKey::from_pem(&pem.value) {
            Ok(key) => merged.keys.push(Located::new(
                TrustedKey {
                    name: name.value.clone(),
                    key,
                },
                pem.span.clone(),
            )),
            Err(e) => diags.push(Diagnostic::error(
                pem.span.clone(),
                format!("publicKey of signatures key `{}`: {e}", name.value),
            )),
        }
    }
    if let Some(r) = &sigs.require
        && r.value
        && merged.require.is_none()
    {
        merged.require = Some(r.span.clone());
    }
}

/// After every document: `require: true` with no usable key anywhere is an error at
/// `require` (no release could ever be published).
pub(super) fn check_merged(diags: &mut Diagnostics, merged: &SignaturePolicy) {
    if let Some(at) = &merged.require
        && merged.keys.is_empty()
    {
        diags.push(Diagnostic::error(
            at.clone(),
            "signatures.require is true but no policy lists a usable signatures key: no release could be published",
        ));
    }
}

#[cfg(test)]
mod tests {
    use p256::pkcs8::{EncodePublicKey as _, LineEnding};

    use crate::manifest::{SourceFile, validate};

    fn pem() -> String {
        p256::ecdsa::SigningKey::random(&mut rand_core::OsRng)
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap()
    }

    fn indent(pem: &str) -> String {
        pem.lines().map(|l| format!("          {l}\n")).collect()
    }

    fn policy(body: &str) -> Vec<SourceFile> {
        vec![SourceFile {
            path: "policies/signed.yaml".into(),
            contents: format!(
                "apiVersion: relsync.dev/v1alpha1\nkind: Policy\nmetadata:\n  name: signed\nspec:\n  signatures:\n{body}"
            )
            .into_bytes(),
        }]
    }

    #[test]
    fn keys_are_parsed_and_require_is_kept_with_its_place() {
        let body = format!(
            "    require: true\n    keys:\n      - name: okd-release\n        publicKey: |\n{}",
            indent(&pem())
        );
        let v = validate(&policy(&body), "policies");
        assert!(!v.problems.has_errors(), "{}", v.problems);
        let sigs = &v.manifests.policy.signatures;
        assert!(sigs.required());
        assert_eq!(
            sigs.require.as_ref().unwrap().to_string(),
            "policies/signed.yaml:7:14"
        );
        assert_eq!(sigs.keys.len(), 1);
        assert_eq!(sigs.keys[0].value.name, "okd-release");
        assert_eq!(sigs.keys[0].value.key.algorithm(), "ECDSA P-256");
    }

    #[test]
    fn a_bad_pem_an_unsupported_key_and_require_without_keys_are_errors_at_their_place() {
        let rsa = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA309iC4iWGL9lqn3bAnGh
BgKciueH+XlrntIySy7k2dl6sX/8mvPI2zk34sPPad+YGJFxN9s0HYQFuOSk06hE
jkBfneGnzSiuoYLTiCP+pH9X5+oQLzOYode1RQZPPXdlZQzStExOkadc0ptdHhn+
KqWCsKvoNIRr/m1blSTYDGcWoK9ar3bK2H3GGyLvpo0BUOHwJOAU9r+qCHMtjZX1
2c9y/8vO888XVqUs+uW622cbtrx8TMrGTpDz9hYnANywARJOsbNtcED0N1VQN48s
/r7bWHKtsqqCZT8En3rchhhVcNKJxLlygq5lcY0DgAUTvJOEuXiBiyLR+MksC6zD
SwIDAQAB
-----END PUBLIC KEY-----";
        let body = format!(
            "    require: true\n    keys:\n      - name: broken\n        publicKey: not a key\n      - name: rsa\n        publicKey: |\n{}",
            indent(rsa)
        );
        let v = validate(&policy(&body), "policies");
        let text = v.problems.to_string();
        assert!(
            text.contains("policies/signed.yaml:10:20: publicKey of signatures key `broken`: not a PEM public key"),
            "{text}"
        );
        assert!(
            text.contains("policies/signed.yaml:13:11: publicKey of signatures key `rsa`: unsupported key type RSA"),
            "{text}"
        );
        assert!(
            text.contains("policies/signed.yaml:7:14: signatures.require is true but no policy lists a usable signatures key"),
            "{text}"
        );
        let v = validate(&policy("    require: true\n    keyz: []\n"), "policies");
        assert!(v.problems.has_errors(), "unknown fields are errors");
    }
}
