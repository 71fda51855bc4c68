//! Pushing content to a registry over the distribution HTTP API, as a real client would.

use std::collections::BTreeMap;
use std::sync::Arc;

use relsync::digest::Digest;

use super::{
    Content, OCI_MANIFEST, PushedImage, PushedIndex, image_index, image_manifest, tiny_image,
    tls_dir,
};

/// Pushes content to a registry over the distribution HTTP API (monolithic blob uploads,
/// manifest PUTs), as a real client would.
#[derive(Clone)]
pub struct Pusher {
    client: reqwest::Client,
    base: String,
    basic: Option<(String, String)>,
}

impl Pusher {
    /// A pusher for the registry at `base` (`http://host:port`).
    pub fn new(base: &str, basic: Option<(String, String)>) -> Pusher {
        let ca = std::fs::read(tls_dir().join("ca.pem")).expect("test CA");
        Pusher {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("test CA"))
                .build()
                .expect("client"),
            base: base.trim_end_matches('/').to_string(),
            basic,
        }
    }

    fn req(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        let rb = self.client.request(method, url);
        match &self.basic {
            Some((u, p)) => rb.basic_auth(u, Some(p)),
            None => rb,
        }
    }

    /// Uploads a blob (POST, then PUT `?digest=`) unless the registry has it; returns its
    /// digest.
    pub async fn push_blob(&self, repo: &str, bytes: &[u8]) -> Digest {
        let digest = Digest::sha256_of(bytes);
        let head = self
            .req(
                reqwest::Method::HEAD,
                &format!("{}/v2/{repo}/blobs/{digest}", self.base),
            )
            .send()
            .await
            .expect("blob HEAD");
        if head.status() == 200 {
            return digest;
        }
        let start = self
            .req(
                reqwest::Method::POST,
                &format!("{}/v2/{repo}/blobs/uploads/", self.base),
            )
            .send()
            .await
            .expect("upload POST");
        assert_eq!(start.status(), 202, "upload POST to {repo}");
        let location = start
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .expect("upload Location")
            .to_string();
        let url = reqwest::Url::parse(&self.base)
            .and_then(|b| b.join(&location))
            .expect("upload URL");
        let sep = if url.query().is_some() { '&' } else { '?' };
        let put = self
            .req(reqwest::Method::PUT, &format!("{url}{sep}digest={digest}"))
            .header("content-type", "application/octet-stream")
            .body(bytes.to_vec())
            .send()
            .await
            .expect("upload PUT");
        assert_eq!(put.status(), 201, "upload PUT to {repo}");
        digest
    }

    /// PUTs a manifest under `reference` (a tag or its digest); returns its digest.
    pub async fn push_manifest(&self, repo: &str, reference: &str, manifest: &Content) -> Digest {
        let resp = self
            .req(
                reqwest::Method::PUT,
                &format!("{}/v2/{repo}/manifests/{reference}", self.base),
            )
            .header("content-type", &manifest.media_type)
            .body(manifest.bytes.clone())
            .send()
            .await
            .expect("manifest PUT");
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        assert_eq!(status, 201, "manifest PUT {repo}:{reference}: {body}");
        manifest.digest()
    }

    /// Pushes a tiny image (config + `layers` layers) tagged `tag` (by digest only when
    /// `None`).
    pub async fn push_image(&self, repo: &str, tag: Option<&str>, seed: &str) -> PushedImage {
        self.push_image_for(repo, tag, seed, "amd64", 2).await
    }

    /// Pushes a tiny image for `arch` with `layers` layers.
    pub async fn push_image_for(
        &self,
        repo: &str,
        tag: Option<&str>,
        seed: &str,
        arch: &str,
        layers: usize,
    ) -> PushedImage {
        let (config, layers, manifest) = tiny_image(seed, arch, layers);
        let mut layer_digests = Vec::new();
        for l in &layers {
            layer_digests.push(self.push_blob(repo, &l.bytes).await);
        }
        let config_digest = self.push_blob(repo, &config.bytes).await;
        let reference = match tag {
            Some(t) => t.to_string(),
            None => manifest.digest().to_string(),
        };
        let digest = self.push_manifest(repo, &reference, &manifest).await;
        PushedImage {
            manifest: digest,
            manifest_bytes: manifest.bytes,
            config: config_digest,
            layers: layer_digests,
        }
    }

    /// Pushes a two-platform image index (amd64, arm64) tagged `tag`: children by digest
    /// first, then the index.
    pub async fn push_index(&self, repo: &str, tag: &str, seed: &str) -> PushedIndex {
        let mut children = Vec::new();
        let mut contents = Vec::new();
        for (arch, layers) in [("amd64", 1), ("arm64", 3)] {
            let img = self
                .push_image_for(repo, None, &format!("{seed}-{arch}"), arch, layers)
                .await;
            contents.push((
                Content {
                    media_type: OCI_MANIFEST.to_string(),
                    bytes: img.manifest_bytes.clone(),
                },
                arch,
            ));
            children.push(img);
        }
        let pairs: Vec<(&Content, &str)> = contents.iter().map(|(c, a)| (c, *a)).collect();
        let index = image_index(&pairs);
        let digest = self.push_manifest(repo, tag, &index).await;
        PushedIndex {
            index: digest,
            index_bytes: index.bytes,
            children,
        }
    }

    /// Pushes `tags.len()` distinct small manifests sharing one config and one layer, one
    /// per tag, with up to `parallel` manifest PUTs in flight. Returns tag → digest.
    pub async fn push_many(
        &self,
        repo: &str,
        tags: &[String],
        parallel: usize,
    ) -> BTreeMap<String, Digest> {
        let (config, layers, _) = tiny_image(repo, "amd64", 1);
        for l in &layers {
            self.push_blob(repo, &l.bytes).await;
        }
        self.push_blob(repo, &config.bytes).await;
        let sem = Arc::new(tokio::sync::Semaphore::new(parallel.max(1)));
        let mut set = tokio::task::JoinSet::new();
        for tag in tags {
            let mut ann = BTreeMap::new();
            ann.insert(
                "org.opencontainers.image.version".to_string(),
                tag.to_string(),
            );
            let manifest = image_manifest(&config, &layers, Some(&ann));
            let pusher = self.clone();
            let sem = sem.clone();
            let repo = repo.to_string();
            let tag = tag.clone();
            set.spawn(async move {
                let _permit = sem.acquire_owned().await.expect("semaphore");
                let d = pusher.push_manifest(&repo, &tag, &manifest).await;
                (tag, d)
            });
        }
        let mut out = BTreeMap::new();
        while let Some(r) = set.join_next().await {
            let (tag, d) = r.expect("push task");
            out.insert(tag, d);
        }
        out
    }

    /// The registry's own tag list of `repo` (no pagination: distribution 2.8 sends all).
    pub async fn tags(&self, repo: &str) -> Vec<String> {
        let resp = self
            .req(
                reqwest::Method::GET,
                &format!("{}/v2/{repo}/tags/list", self.base),
            )
            .send()
            .await
            .expect("tags GET");
        if resp.status() == 404 {
            return Vec::new();
        }
        let v: serde_json::Value =
            serde_json::from_slice(&resp.bytes().await.expect("tags body")).expect("tags JSON");
        let mut tags: Vec<String> = v["tags"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|t| t.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        tags.sort();
        tags
    }
}
