//! Checking content against its digest while it streams: [`Verifier`] hashes chunks as
//! they pass and counts bytes; [`verifying`] wraps a [`ByteStream`] so that a source whose
//! bytes do not hash to the digest asked for (or that sends more or fewer bytes than it
//! announced) ends in an error instead of a clean end, which aborts whatever consumes it
//! (an HTTP upload, a file write).

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use sha2::Digest as _;

use super::RegistryError;
use super::content::{ByteStream, MAX_MANIFEST_BYTES, RawManifest};
use crate::digest::Digest;

/// An incremental hash of one of the algorithms a [`Digest`] may name.
#[derive(Clone)]
enum Hasher {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl Hasher {
    fn for_algorithm(algorithm: &str) -> Hasher {
        match algorithm {
            "sha512" => Hasher::Sha512(sha2::Sha512::new()),
            _ => Hasher::Sha256(sha2::Sha256::new()),
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Sha512(h) => h.update(bytes),
        }
    }

    fn finish(self) -> String {
        match self {
            Hasher::Sha256(h) => format!("sha256:{}", hex::encode(h.finalize())),
            Hasher::Sha512(h) => format!("sha512:{}", hex::encode(h.finalize())),
        }
    }
}

/// The digest of `bytes` in the algorithm of `like` (sha256 or sha512).
pub(crate) fn digest_like(like: &Digest, bytes: &[u8]) -> String {
    let mut h = Hasher::for_algorithm(like.algorithm());
    h.update(bytes);
    h.finish()
}

/// Checks bytes against an expected digest (and size, when announced) as they pass.
pub(crate) struct Verifier {
    expected: Digest,
    size: Option<u64>,
    hasher: Hasher,
    seen: u64,
    context: String,
}

impl Verifier {
    /// Expects content hashing to `expected`, of `size` bytes when announced; `context`
    /// names what is being copied (repository and digest) for errors.
    pub(crate) fn new(expected: &Digest, size: Option<u64>, context: &str) -> Verifier {
        Verifier {
            hasher: Hasher::for_algorithm(expected.algorithm()),
            expected: expected.clone(),
            size,
            seen: 0,
            context: context.to_string(),
        }
    }

    /// Takes the next chunk; refuses it when it runs past the announced size.
    pub(crate) fn update(&mut self, chunk: &[u8]) -> Result<(), RegistryError> {
        let seen = self.seen + chunk.len() as u64;
        if let Some(size) = self.size
            && seen > size
        {
            return Err(self.size_mismatch(size, &format!("more than {size} bytes")));
        }
        self.seen = seen;
        self.hasher.update(chunk);
        Ok(())
    }

    /// At the end of the content: the byte count when size and digest match.
    pub(crate) fn finish(self) -> Result<u64, RegistryError> {
        if let Some(size) = self.size
            && self.seen != size
        {
            return Err(self.size_mismatch(size, &format!("{} bytes", self.seen)));
        }
        let actual = self.hasher.finish();
        if actual != self.expected.as_str() {
            return Err(RegistryError::DigestMismatch {
                context: self.context,
                expected: self.expected.to_string(),
                actual,
            });
        }
        Ok(self.seen)
    }

    fn size_mismatch(&self, size: u64, actual: &str) -> RegistryError {
        RegistryError::DigestMismatch {
            context: format!("{} (the source announced {size} bytes)", self.context),
            expected: format!("{size} bytes"),
            actual: actual.to_string(),
        }
    }
}

/// What a [`verifying`] stream saw, readable after its consumer is done with it.
#[derive(Clone, Default)]
pub(crate) struct VerifyHandle {
    inner: Arc<Mutex<HandleState>>,
}

#[derive(Default)]
struct HandleState {
    error: Option<RegistryError>,
    verified: Option<u64>,
}

impl VerifyHandle {
    fn lock(&self) -> std::sync::MutexGuard<'_, HandleState> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The error that ended the stream (a digest or size mismatch, or the source's own
    /// error), if one did.
    pub(crate) fn take_error(&self) -> Option<RegistryError> {
        self.lock().error.take()
    }

    /// The byte count, once the whole stream passed and matched its digest.
    pub(crate) fn verified(&self) -> Option<u64> {
        self.lock().verified
    }
}

/// The error a [`verifying`] stream hands its consumer when it stops; the real cause is in
/// its [`VerifyHandle`].
#[derive(Debug, thiserror::Error)]
#[error("the upload was aborted: {0}")]
pub(crate) struct Aborted(String);

/// `chunks`, checked against `expected` (and `size`) while they pass. The stream ends
/// cleanly only when everything matched; otherwise its last item is an [`Aborted`] error
/// and the cause (a [`RegistryError::DigestMismatch`], or the source's own error) is kept
/// in the returned handle.
pub(crate) fn verifying(
    chunks: ByteStream,
    expected: &Digest,
    size: Option<u64>,
    context: &str,
) -> (VerifyingStream, VerifyHandle) {
    let handle = VerifyHandle::default();
    (
        VerifyingStream {
            inner: chunks,
            state: State::Running(Box::new(Verifier::new(expected, size, context))),
            handle: handle.clone(),
            context: context.to_string(),
        },
        handle,
    )
}

/// See [`verifying`].
pub(crate) struct VerifyingStream {
    inner: ByteStream,
    state: State,
    handle: VerifyHandle,
    context: String,
}

enum State {
    /// Chunks are being checked.
    Running(Box<Verifier>),
    /// The announced size was reached and the digest matched: a consumer that knows the
    /// length (an HTTP body with `Content-Length`) stops here; one that polls on must find
    /// the source ended.
    Verified,
    /// Ended, cleanly or not.
    Done,
}

impl VerifyingStream {
    fn fail(&mut self, error: RegistryError) -> Poll<Option<Result<Bytes, Aborted>>> {
        self.state = State::Done;
        let message = error.to_string();
        let mut h = self.handle.lock();
        h.verified = None;
        h.error = Some(error);
        Poll::Ready(Some(Err(Aborted(message))))
    }

    fn verified(&mut self, n: u64) {
        self.state = State::Verified;
        self.handle.lock().verified = Some(n);
    }
}

impl Stream for VerifyingStream {
    type Item = Result<Bytes, Aborted>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            let polled = match this.state {
                State::Done => return Poll::Ready(None),
                _ => this.inner.as_mut().poll_next(cx),
            };
            let item = match polled {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(item) => item,
            };
            match (std::mem::replace(&mut this.state, State::Done), item) {
                (State::Done, _) => return Poll::Ready(None),
                (_, Some(Err(e))) => return this.fail(e),
                (State::Verified, None) => return Poll::Ready(None),
                (State::Verified, Some(Ok(chunk))) => {
                    if chunk.is_empty() {
                        this.state = State::Verified;
                        continue;
                    }
                    // Bytes past the announced size (and past a matching digest).
                    let expected = this.handle.lock().verified.unwrap_or(0);
                    return this.fail(RegistryError::DigestMismatch {
                        context: format!(
                            "{} (the source sent more bytes than it announced)",
                            this.context
                        ),
                        expected: format!("{expected} bytes"),
                        actual: format!("more than {expected} bytes"),
                    });
                }
                (State::Running(v), None) => {
                    return match v.finish() {
                        Ok(n) => {
                            this.verified(n);
                            this.state = State::Done;
                            Poll::Ready(None)
                        }
                        Err(e) => this.fail(e),
                    };
                }
                (State::Running(mut v), Some(Ok(chunk))) => {
                    if let Err(e) = v.update(&chunk) {
                        return this.fail(e);
                    }
                    if v.size.is_some_and(|size| v.seen == size) {
                        // The last announced byte: check the digest before handing the
                        // chunk on, so that a consumer that stops at the announced length
                        // never sends a wrong last chunk.
                        return match v.finish() {
                            Ok(n) => {
                                this.verified(n);
                                Poll::Ready(Some(Ok(chunk)))
                            }
                            Err(e) => this.fail(e),
                        };
                    }
                    this.state = State::Running(v);
                    return Poll::Ready(Some(Ok(chunk)));
                }
            }
        }
    }
}

/// Checks that a manifest about to be written is what it says it is: at most
/// [`MAX_MANIFEST_BYTES`] long, its bytes hashing to its digest.
pub(crate) fn check_manifest(context: &str, manifest: &RawManifest) -> Result<(), RegistryError> {
    if manifest.bytes.len() > MAX_MANIFEST_BYTES {
        return Err(RegistryError::TooLarge {
            context: context.to_string(),
            limit: MAX_MANIFEST_BYTES as u64,
        });
    }
    let actual = digest_like(&manifest.digest, &manifest.bytes);
    if actual != manifest.digest.as_str() {
        return Err(RegistryError::DigestMismatch {
            context: context.to_string(),
            expected: manifest.digest.to_string(),
            actual,
        });
    }
    Ok(())
}

/// The media type a manifest's JSON declares (`mediaType`), else the one its shape implies
/// (`manifests` → OCI index; `config` → OCI image manifest: Docker's types always carry
/// `mediaType`), else `None`.
pub(crate) fn sniff_media_type(bytes: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Shape {
        #[serde(default)]
        media_type: Option<String>,
        #[serde(default)]
        manifests: Option<serde_json::Value>,
        #[serde(default)]
        config: Option<serde_json::Value>,
    }
    let shape: Shape = serde_json::from_slice(bytes).ok()?;
    if let Some(m) = shape.media_type.filter(|m| !m.is_empty()) {
        return Some(m);
    }
    if shape.manifests.is_some() {
        return Some(super::MANIFEST_MEDIA_TYPES[0].to_string());
    }
    if shape.config.is_some() {
        return Some(super::MANIFEST_MEDIA_TYPES[1].to_string());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    fn source(chunks: &[&[u8]]) -> ByteStream {
        let items: Vec<Result<Bytes, RegistryError>> = chunks
            .iter()
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        Box::pin(futures_util::stream::iter(items))
    }

    /// Drains the stream: the bytes passed on and whether it ended in an error.
    async fn drain(mut s: VerifyingStream) -> (Vec<u8>, Option<String>) {
        let mut out = Vec::new();
        while let Some(item) = s.next().await {
            match item {
                Ok(c) => out.extend_from_slice(&c),
                Err(e) => {
                    assert!(s.next().await.is_none(), "nothing after the error");
                    return (out, Some(e.to_string()));
                }
            }
        }
        (out, None)
    }

    const CONTENT: &[u8] = b"hello, layer";

    #[tokio::test]
    async fn honest_source_passes_through() {
        let d = Digest::sha256_of(CONTENT);
        for size in [None, Some(CONTENT.len() as u64)] {
            let (s, h) = verifying(source(&[b"hello", b", ", b"layer"]), &d, size, "copy");
            let (bytes, err) = drain(s).await;
            assert_eq!(bytes, CONTENT);
            assert_eq!(err, None);
            assert_eq!(h.verified(), Some(CONTENT.len() as u64));
            assert!(h.take_error().is_none());
        }
    }

    #[tokio::test]
    async fn wrong_bytes_end_in_a_digest_mismatch() {
        let d = Digest::sha256_of(CONTENT);
        let (s, h) = verifying(
            source(&[b"hello", b", ", b"LAYER"]),
            &d,
            None,
            "copying blob x to r",
        );
        let (bytes, err) = drain(s).await;
        assert_eq!(bytes.len(), CONTENT.len(), "chunks pass until the end");
        assert!(err.is_some(), "the stream must not end cleanly");
        assert_eq!(h.verified(), None);
        match h.take_error() {
            Some(RegistryError::DigestMismatch {
                context,
                expected,
                actual,
            }) => {
                assert_eq!(context, "copying blob x to r");
                assert_eq!(expected, d.to_string());
                assert_eq!(actual, Digest::sha256_of(b"hello, LAYER").to_string());
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn with_an_announced_size_the_last_chunk_is_checked_before_it_passes() {
        // A consumer that knows the length (HTTP with Content-Length) stops polling after
        // the last announced byte: the digest must be settled by then.
        let d = Digest::sha256_of(CONTENT);
        let n = CONTENT.len() as u64;
        let (mut s, h) = verifying(source(&[b"hello", b", ", b"layer"]), &d, Some(n), "c");
        let mut got = 0u64;
        while got < n {
            got += s.next().await.expect("chunk").expect("ok").len() as u64;
        }
        assert_eq!(
            h.verified(),
            Some(n),
            "verified without polling for the end"
        );
        // A wrong last chunk is withheld: the consumer sees a short body and an error.
        let (s, h) = verifying(source(&[b"hello", b", ", b"LAYER"]), &d, Some(n), "c");
        let (bytes, err) = drain(s).await;
        assert_eq!(bytes, b"hello, ");
        assert!(err.is_some());
        assert!(matches!(
            h.take_error(),
            Some(RegistryError::DigestMismatch { .. })
        ));
        assert_eq!(h.verified(), None);
    }

    #[tokio::test]
    async fn short_and_long_sources_are_refused() {
        let d = Digest::sha256_of(CONTENT);
        let n = CONTENT.len() as u64;
        // Short: fewer bytes than announced (a truncated body), digest unknowable.
        let (s, h) = verifying(source(&[b"hello"]), &d, Some(n), "c");
        let (_, err) = drain(s).await;
        assert!(err.is_some());
        assert!(matches!(
            h.take_error(),
            Some(RegistryError::DigestMismatch { actual, .. }) if actual == "5 bytes"
        ));
        // Short without an announced size: the digest differs.
        let (s, h) = verifying(source(&[b"hello"]), &d, None, "c");
        assert!(drain(s).await.1.is_some());
        assert!(matches!(
            h.take_error(),
            Some(RegistryError::DigestMismatch { .. })
        ));
        // Long: the chunk that runs past the announced size is not passed on.
        let (s, h) = verifying(source(&[CONTENT, b"more"]), &d, Some(n), "c");
        let (bytes, err) = drain(s).await;
        assert_eq!(bytes, CONTENT);
        assert!(err.is_some());
        assert!(matches!(
            h.take_error(),
            Some(RegistryError::DigestMismatch { expected, .. }) if expected == format!("{n} bytes")
        ));
        // Right bytes but a wrong announced size.
        let (s, h) = verifying(source(&[CONTENT]), &d, Some(n + 1), "c");
        assert!(drain(s).await.1.is_some());
        assert!(h.take_error().is_some());
        // Right bytes, then more: long without an announced size.
        let (s, h) = verifying(source(&[CONTENT, b"x"]), &d, None, "c");
        assert!(drain(s).await.1.is_some());
        assert!(h.take_error().is_some());
    }

    #[tokio::test]
    async fn a_source_error_is_kept_as_the_cause() {
        let d = Digest::sha256_of(CONTENT);
        let items: Vec<Result<Bytes, RegistryError>> = vec![
            Ok(Bytes::from_static(b"hello")),
            Err(RegistryError::Layout {
                path: "/x".into(),
                reason: "gone".into(),
            }),
            Ok(Bytes::from_static(b", layer")),
        ];
        let (s, h) = verifying(Box::pin(futures_util::stream::iter(items)), &d, None, "c");
        let (bytes, err) = drain(s).await;
        assert_eq!(bytes, b"hello");
        assert!(err.is_some());
        assert!(matches!(h.take_error(), Some(RegistryError::Layout { .. })));
        assert_eq!(h.verified(), None);
    }

    #[test]
    fn sha512_digests_are_checked_too() {
        let d = Digest::parse(&digest_like(
            &Digest::parse(&format!("sha512:{}", "0".repeat(128))).unwrap(),
            CONTENT,
        ))
        .unwrap();
        let mut v = Verifier::new(&d, None, "c");
        v.update(CONTENT).unwrap();
        assert_eq!(v.finish().unwrap(), CONTENT.len() as u64);
        let mut v = Verifier::new(&d, None, "c");
        v.update(b"other").unwrap();
        assert!(v.finish().is_err());
    }

    #[test]
    fn sniffs_media_types() {
        assert_eq!(
            sniff_media_type(br#"{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{}}"#).as_deref(),
            Some("application/vnd.docker.distribution.manifest.v2+json")
        );
        assert_eq!(
            sniff_media_type(br#"{"schemaVersion":2,"manifests":[]}"#).as_deref(),
            Some("application/vnd.oci.image.index.v1+json")
        );
        assert_eq!(
            sniff_media_type(br#"{"schemaVersion":2,"config":{},"layers":[]}"#).as_deref(),
            Some("application/vnd.oci.image.manifest.v1+json")
        );
        assert_eq!(sniff_media_type(b"{}"), None);
        assert_eq!(sniff_media_type(b"not json"), None);
    }
}
