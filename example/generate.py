#!/usr/bin/env python3
"""Generates the bundled example's OCI image layouts, deterministically.

    python3 example/generate.py            # rewrites example/registry.ci.openshift.org and example/quay.io

Each release is a real two-platform image index (linux/amd64, linux/arm64); each platform
image has a config and one gzip layer whose tar holds a release-info file. Consecutive
releases share nothing but their structure, so digests are distinct and stable.

- example/registry.ci.openshift.org/origin/release-scos: the source, every release tagged
  by its version (what CI produced), plus one newer nightly, NIGHTLY, that Git does not
  know yet: the README's `relsync add NIGHTLY --stream 4-scos --from NIGHTLY` adds it.
- example/quay.io/okd/scos-release: the "live" target, part-way through promotion, so that
  `relsync plan` and `relsync drift` have something to show: one release missing entirely,
  one whose content is present but untagged, floating tags behind, a tombstoned version
  still tagged, and an extra `latest` tag.
"""
import gzip, hashlib, io, json, os, shutil, tarfile, sys

HERE = os.path.dirname(os.path.abspath(__file__))
RELEASES = [
    "4.14.0-0.okd-scos-2023-09-29-232633",
    "4.14.0-0.okd-scos-2023-10-11-084613",
    "4.15.0-0.okd-scos-2024-01-18-223523",
    "4.16.0-0.okd-scos-2024-09-24-151747",
]
# Built by CI, not yet in manifests/streams/4-scos.yaml: only in the source.
NIGHTLY = "4.17.0-0.okd-scos-2024-12-01-000000"
PLATFORMS = [("amd64", ""), ("arm64", "v8")]
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
REF = "org.opencontainers.image.ref.name"


def canon(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def layer_bytes(version, arch):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        data = f"version: {version}\narch: {arch}\n".encode()
        info = tarfile.TarInfo("release-manifests/release-metadata")
        info.size, info.mtime, info.mode = len(data), 0, 0o644
        tar.addfile(info, io.BytesIO(data))
    raw = buf.getvalue()
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, compresslevel=9) as gz:
        gz.write(raw)
    return out.getvalue(), "sha256:" + hashlib.sha256(raw).hexdigest()


def release_blobs(version):
    """Returns (index_digest, index_size, {digest: bytes}) for one release."""
    blobs = {}

    def put(data):
        d = "sha256:" + hashlib.sha256(data).hexdigest()
        blobs[d] = data
        return d, len(data)

    children = []
    for arch, variant in PLATFORMS:
        layer, diff_id = layer_bytes(version, arch)
        ld, ls = put(layer)
        config = {
            "architecture": arch, "os": "linux",
            "config": {"Labels": {"io.openshift.release": version}},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }
        if variant:
            config["variant"] = variant
        cd, cs = put(canon(config))
        manifest = {
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": cd, "size": cs},
            "layers": [{"mediaType": OCI_LAYER, "digest": ld, "size": ls}],
        }
        md, ms = put(canon(manifest))
        platform = {"architecture": arch, "os": "linux"}
        if variant:
            platform["variant"] = variant
        children.append({"mediaType": OCI_MANIFEST, "digest": md, "size": ms, "platform": platform})
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children,
             "annotations": {"io.openshift.release": version}}
    idx, size = put(canon(index))
    return idx, size, blobs


def write_layout(path, entries, blobs):
    """entries: list of (tag, digest, size); blobs: {digest: bytes}."""
    if os.path.exists(path):
        shutil.rmtree(path)
    os.makedirs(os.path.join(path, "blobs", "sha256"))
    with open(os.path.join(path, "oci-layout"), "wb") as f:
        f.write(canon({"imageLayoutVersion": "1.0.0"}))
    for d, data in sorted(blobs.items()):
        with open(os.path.join(path, "blobs", "sha256", d.split(":", 1)[1]), "wb") as f:
            f.write(data)
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_INDEX, "digest": d, "size": s, "annotations": {REF: tag}}
        for tag, d, s in entries]}
    with open(os.path.join(path, "index.json"), "wb") as f:
        f.write(json.dumps(index, indent=2, sort_keys=True).encode() + b"\n")


def main():
    rel = {v: release_blobs(v) for v in RELEASES + [NIGHTLY]}
    r1, r2, r3, r4 = (rel[v] for v in RELEASES)

    src_blobs = {}
    for _, _, b in rel.values():
        src_blobs.update(b)
    write_layout(os.path.join(HERE, "registry.ci.openshift.org", "origin", "release-scos"),
                 [(v, rel[v][0], rel[v][1]) for v in RELEASES + [NIGHTLY]], src_blobs)

    # The live target: r1..r3 content present, r4 absent.
    tgt_blobs = {}
    for b in (r1[2], r2[2], r3[2]):
        tgt_blobs.update(b)
    write_layout(os.path.join(HERE, "quay.io", "okd", "scos-release"), [
        (RELEASES[0], r1[0], r1[1]),          # tombstoned, still tagged: delete
        (RELEASES[1], r2[0], r2[1]),          # ok
        ("4.14.0-okd-scos.0", r2[0], r2[1]),  # ok (extra tag pinned to r2)
        ("4-scos-stable", r2[0], r2[1]),      # behind: retag to r3
        ("4-scos-next", r2[0], r2[1]),        # behind: retag to r4
        ("latest", r1[0], r1[1]),             # nobody claims it: extra
    ], tgt_blobs)

    for v in RELEASES + [NIGHTLY]:
        print(f"{v} {rel[v][0]}")


if __name__ == "__main__":
    sys.exit(main())
