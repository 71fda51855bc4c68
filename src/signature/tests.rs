use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use p256::ecdsa::signature::Signer as _;
use p256::pkcs8::{EncodePublicKey as _, LineEnding};

use super::envelope::{self, pae};
use super::*;

const RSA_PEM: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA309iC4iWGL9lqn3bAnGh
BgKciueH+XlrntIySy7k2dl6sX/8mvPI2zk34sPPad+YGJFxN9s0HYQFuOSk06hE
jkBfneGnzSiuoYLTiCP+pH9X5+oQLzOYode1RQZPPXdlZQzStExOkadc0ptdHhn+
KqWCsKvoNIRr/m1blSTYDGcWoK9ar3bK2H3GGyLvpo0BUOHwJOAU9r+qCHMtjZX1
2c9y/8vO888XVqUs+uW622cbtrx8TMrGTpDz9hYnANywARJOsbNtcED0N1VQN48s
/r7bWHKtsqqCZT8En3rchhhVcNKJxLlygq5lcY0DgAUTvJOEuXiBiyLR+MksC6zD
SwIDAQAB
-----END PUBLIC KEY-----";

const P384_PEM: &str = "-----BEGIN PUBLIC KEY-----
MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAEdqPQSiGc+7fi7kTCeZCJCEcHNt/WCHm0
YdIJ/G5qA+MoHdU5HinnXbCH9diReQRVLJGMBLpgHDL3Iadc4tH3ZH3bm8zjK2zN
t4F1itn+UyvePsnxc6uMXSys7HNTXPC6
-----END PUBLIC KEY-----";

const REPO: &str = "registry.ci.openshift.org/origin/release-scos";
const TARGET: &str = "quay.io/okd/scos-release";

fn digest(byte: u8) -> Digest {
    Digest::parse(&format!("sha256:{}", hex::encode([byte; 32]))).unwrap()
}

struct Signer {
    key: p256::ecdsa::SigningKey,
}

impl Signer {
    fn new() -> Signer {
        Signer {
            key: p256::ecdsa::SigningKey::random(&mut rand_core::OsRng),
        }
    }

    fn trusted(&self, name: &str) -> TrustedKey {
        let pem = self
            .key
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap();
        TrustedKey {
            name: name.to_string(),
            key: PublicKey::from_pem(&pem).unwrap(),
        }
    }

    /// DER, as cosign writes it.
    fn sign(&self, message: &[u8]) -> Vec<u8> {
        let sig: p256::ecdsa::Signature = self.key.sign(message);
        sig.to_der().as_bytes().to_vec()
    }
}

/// A simple-signing payload exactly as cosign writes it.
fn payload(digest: &str, identity: &str) -> Vec<u8> {
    format!(
        r#"{{"critical":{{"identity":{{"docker-reference":"{identity}"}},"image":{{"docker-manifest-digest":"{digest}"}},"type":"cosign container image signature"}},"optional":null}}"#
    )
    .into_bytes()
}

fn legacy(signer: &Signer, digest: &str, identity: &str) -> Candidate {
    let p = payload(digest, identity);
    Candidate {
        place: "sha256-x.sig layer 0".into(),
        signed: envelope::simple_signing(&p, signer.sign(&p)),
    }
}

/// A bundle as cosign 3 writes it (its statement names no repository) or, with `name`,
/// one whose statement names one.
fn bundle_bytes(signer: &Signer, digest_hex: &str, name: Option<&str>) -> Vec<u8> {
    let name = name.map_or(String::new(), |n| format!(r#""name":"{n}","#));
    let statement = format!(
        r#"{{"_type":"https://in-toto.io/Statement/v1","subject":[{{{name}"digest":{{"sha256":"{digest_hex}"}}}}],"predicateType":"https://sigstore.dev/cosign/sign/v1","predicate":{{}}}}"#
    );
    let sig = signer.sign(&pae(envelope::IN_TOTO_PAYLOAD_TYPE, statement.as_bytes()));
    serde_json::json!({
        "mediaType": envelope::BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {"publicKey": {"hint": ""}, "tlogEntries": []},
        "dsseEnvelope": {
            "payload": STANDARD.encode(&statement),
            "payloadType": envelope::IN_TOTO_PAYLOAD_TYPE,
            "signatures": [{"sig": STANDARD.encode(sig), "keyid": ""}],
        }
    })
    .to_string()
    .into_bytes()
}

#[test]
fn a_cosign_signature_of_the_digest_and_repository_verifies() {
    let s = Signer::new();
    let d = digest(1);
    let v = judge(
        &d,
        &[REPO, TARGET],
        &[legacy(&s, d.as_str(), REPO)],
        &[s.trusted("okd")],
    );
    assert_eq!(
        v,
        Verdict::Verified {
            key: "okd".into(),
            place: "sha256-x.sig layer 0".into()
        }
    );
    // The target repository is an identity too, and a tag in the reference is no matter.
    let v = judge(
        &d,
        &[REPO, TARGET],
        &[legacy(&s, d.as_str(), &format!("{TARGET}:4.16"))],
        &[s.trusted("okd")],
    );
    assert!(v.is_verified(), "{v:?}");
}

#[test]
fn each_refusal_is_told_apart() {
    let s = Signer::new();
    let other = Signer::new();
    let d = digest(1);
    let keys = [s.trusted("okd")];
    let ids = [REPO, TARGET];
    assert_eq!(
        judge(&d, &ids, &[], &keys),
        Verdict::Refused(Refusal::NoSignature)
    );
    let v = judge(&d, &ids, &[legacy(&other, d.as_str(), REPO)], &keys);
    assert_eq!(
        v,
        Verdict::Refused(Refusal::NoTrustedKey {
            found: 1,
            keys: "okd".into()
        })
    );
    let replayed = digest(2);
    let v = judge(&d, &ids, &[legacy(&s, replayed.as_str(), REPO)], &keys);
    assert_eq!(
        v,
        Verdict::Refused(Refusal::OtherDigest {
            named: replayed.to_string()
        })
    );
    let v = judge(
        &d,
        &ids,
        &[legacy(&s, d.as_str(), "evil.example/other")],
        &keys,
    );
    assert!(
        matches!(&v, Verdict::Refused(Refusal::IdentityMismatch { named, .. }) if named == "evil.example/other"),
        "{v:?}"
    );
    if let Verdict::Refused(r) = v {
        assert!(r.to_string().contains(TARGET), "{r}");
    }
    // One good signature among bad ones passes.
    let v = judge(
        &d,
        &ids,
        &[
            legacy(&other, d.as_str(), REPO),
            legacy(&s, replayed.as_str(), REPO),
            legacy(&s, d.as_str(), REPO),
        ],
        &keys,
    );
    assert!(v.is_verified(), "{v:?}");
}

#[test]
fn a_tampered_payload_or_signature_does_not_verify() {
    let s = Signer::new();
    let d = digest(1);
    let p = payload(digest(2).as_str(), REPO);
    let sig = s.sign(&p);
    // The signature of a payload naming another digest, put beside a payload naming this one.
    let forged = Candidate {
        place: "forged".into(),
        signed: envelope::simple_signing(&payload(d.as_str(), REPO), sig.clone()),
    };
    assert!(matches!(
        judge(&d, &[REPO], &[forged], &[s.trusted("k")]),
        Verdict::Refused(Refusal::NoTrustedKey { .. })
    ));
    let mut bad = sig;
    let last = bad.len() - 1;
    bad[last] ^= 1;
    let c = Candidate {
        place: "x".into(),
        signed: envelope::simple_signing(&p, bad),
    };
    assert!(!judge(&digest(2), &[REPO], &[c], &[s.trusted("k")]).is_verified());
}

#[test]
fn a_sigstore_bundle_with_a_dsse_envelope_verifies_over_its_pae() {
    let s = Signer::new();
    let d = digest(7);
    let bytes = bundle_bytes(&s, d.hex(), Some(REPO));
    let signed = envelope::bundle(&bytes).unwrap();
    assert_eq!(signed.claim.digests, [d.to_string()]);
    assert!(
        signed
            .message
            .starts_with(b"DSSEv1 28 application/vnd.in-toto+json ")
    );
    let c = Candidate {
        place: "referrer".into(),
        signed: Ok(signed),
    };
    assert!(judge(&d, &[REPO], std::slice::from_ref(&c), &[s.trusted("k")]).is_verified());
    assert!(matches!(
        judge(&digest(8), &[REPO], &[c], &[s.trusted("k")]),
        Verdict::Refused(Refusal::OtherDigest { .. })
    ));
    // cosign 3's statement names no repository: the digest alone is bound.
    let nameless = Candidate {
        place: "referrer".into(),
        signed: envelope::bundle(&bundle_bytes(&s, d.hex(), None)),
    };
    assert!(judge(&d, &[REPO], &[nameless], &[s.trusted("k")]).is_verified());
    let elsewhere = Candidate {
        place: "referrer".into(),
        signed: envelope::bundle(&bundle_bytes(&s, d.hex(), Some("elsewhere.example/x"))),
    };
    assert!(matches!(
        judge(&d, &[REPO], &[elsewhere], &[s.trusted("k")]),
        Verdict::Refused(Refusal::IdentityMismatch { .. })
    ));
    // A bundle without a DSSE envelope is unreadable, not silently trusted.
    let e = envelope::bundle(br#"{"mediaType":"x","messageSignature":{}}"#).unwrap_err();
    assert!(e.to_string().contains("dsseEnvelope"), "{e}");
}

#[test]
fn ed25519_keys_verify_too() {
    use ed25519_dalek::Signer as _;
    use ed25519_dalek::pkcs8::EncodePublicKey as _;
    let key = ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng);
    let pem = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    let trusted = TrustedKey {
        name: "ed".into(),
        key: PublicKey::from_pem(&pem).unwrap(),
    };
    assert_eq!(trusted.key.algorithm(), "Ed25519");
    let d = digest(3);
    let p = payload(d.as_str(), REPO);
    let sig = key.sign(&p).to_bytes().to_vec();
    let c = Candidate {
        place: "x".into(),
        signed: envelope::simple_signing(&p, sig),
    };
    assert!(judge(&d, &[REPO], &[c], &[trusted]).is_verified());
}

#[test]
fn keys_other_than_p256_and_ed25519_are_named_and_refused() {
    let e = PublicKey::from_pem(RSA_PEM).unwrap_err();
    assert_eq!(
        e,
        KeyError::Unsupported {
            algorithm: "RSA".into()
        }
    );
    let e = PublicKey::from_pem(P384_PEM).unwrap_err();
    assert!(e.to_string().contains("ECDSA P-384"), "{e}");
    let e = PublicKey::from_pem("not a key").unwrap_err();
    assert!(matches!(e, KeyError::NotPem(_)), "{e}");
    assert!(e.to_string().contains("BEGIN PUBLIC KEY"), "{e}");
}

#[test]
fn sig_manifest_layers_carry_payload_and_signature() {
    let d = digest(9);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(4).as_str(), "size": 233},
        "layers": [
            {"mediaType": envelope::SIMPLE_SIGNING_MEDIA_TYPE, "digest": d.as_str(), "size": 250,
             "annotations": {envelope::SIGNATURE_ANNOTATION: STANDARD.encode(b"sig")}},
            {"mediaType": "application/octet-stream", "digest": digest(5).as_str(), "size": 1}
        ]
    });
    let layers = envelope::sig_layers(manifest.to_string().as_bytes()).unwrap();
    assert_eq!(layers.len(), 1);
    assert_eq!(layers[0].payload, d);
    assert_eq!(layers[0].size, Some(250));
    assert_eq!(layers[0].signature.as_deref(), Some(&b"sig"[..]));
    assert!(envelope::sig_layers(b"[]").is_err());
}

#[test]
fn references_compare_without_tag_digest_or_docker_hub_alias() {
    assert_eq!(normalize_reference("quay.io/okd/x:4.16"), "quay.io/okd/x");
    assert_eq!(
        normalize_reference("127.0.0.1:5000/okd/x@sha256:00"),
        "127.0.0.1:5000/okd/x"
    );
    assert_eq!(
        normalize_reference("127.0.0.1:5000/okd/x"),
        "127.0.0.1:5000/okd/x"
    );
    assert_eq!(
        normalize_reference("index.docker.io/library/nginx"),
        "docker.io/library/nginx"
    );
}
