#!/usr/bin/env python3
"""Generates the bundled example's OCI image layouts, deterministically.

    python3 example/generate.py            # rewrites example/registry.ci.openshift.org and example/quay.io

Each release is a real two-platform image index (linux/amd64, linux/arm64), laid out as
`oc adm release new` lays out a release payload: each platform image has a config and one
gzip layer whose tar holds `release-manifests/image-references` (an image.openshift.io/v1
ImageStream naming every component `<repo>@sha256:…`) and `release-manifests/release-metadata`
(cincinnati-metadata-v0). The components are small two-platform images too, in one content
repository; consecutive releases share most of them (each release rebuilds one or two).

- example/registry.ci.openshift.org/origin/scos-content: the components, untagged (reached
  by digest, as a CI payload's are).

- example/registry.ci.openshift.org/origin/release-scos: the source, every release tagged
  by its version (what CI produced), plus one newer nightly, NIGHTLY, that Git does not
  know yet: the README's `relsync add NIGHTLY --stream 4-scos --from NIGHTLY` adds it.
- example/quay.io/okd/scos-release: the "live" target, part-way through promotion, so that
  `relsync plan` and `relsync drift` have something to show: one release missing entirely,
  one whose content is present but untagged, floating tags behind, a tombstoned version
  still tagged, and an extra `latest` tag.
- example/quay.io/okd/scos-content: the live payload target (the stream's `payload.target`):
  the components of the releases already published, each tagged `<version tag>-<name>`;
  the untagged release's components present but untagged; the missing release's absent.
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
SOURCE_CONTENT = "registry.ci.openshift.org/origin/scos-content"
# Each release's components: name -> build. Consecutive releases share most components.
COMPONENTS = {
    RELEASES[0]: {"cli": 1, "cluster-version-operator": 1, "etcd": 1, "installer": 1},
    RELEASES[1]: {"cli": 1, "cluster-version-operator": 1, "etcd": 2, "installer": 1},
    RELEASES[2]: {"cli": 2, "cluster-version-operator": 2, "etcd": 2, "installer": 2},
    RELEASES[3]: {"cli": 2, "cluster-version-operator": 3, "etcd": 2, "installer": 3},
    NIGHTLY: {"cli": 2, "cluster-version-operator": 3, "etcd": 3, "installer": 3},
}
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
REF = "org.opencontainers.image.ref.name"


def canon(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def tar_gz(files):
    """A gzip tar of `files` ([(path, bytes)], directories end in "/"), deterministic.
    Returns (blob, diff_id)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for path, data in files:
            info = tarfile.TarInfo(path.rstrip("/"))
            info.mtime = 0
            if path.endswith("/"):
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
    raw = buf.getvalue()
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, compresslevel=9) as gz:
        gz.write(raw)
    return out.getvalue(), "sha256:" + hashlib.sha256(raw).hexdigest()


def image_index(blobs, layer_files, labels, annotations):
    """A two-platform image index whose platform images each hold one layer,
    `layer_files(arch)`; its blobs go into `blobs`. Returns (digest, size)."""

    def put(data):
        d = "sha256:" + hashlib.sha256(data).hexdigest()
        blobs[d] = data
        return d, len(data)

    children = []
    for arch, variant in PLATFORMS:
        layer, diff_id = tar_gz(layer_files(arch))
        ld, ls = put(layer)
        config = {
            "architecture": arch, "os": "linux",
            "config": {"Labels": labels},
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
             "annotations": annotations}
    return put(canon(index))


def component_blobs(name, build):
    """Returns (index_digest, index_size, {digest: bytes}) for one component build."""
    blobs = {}

    def files(arch):
        return [("usr/", b""), ("usr/share/", b""),
                (f"usr/share/{name}", f"{name} build {build} for linux/{arch}\n".encode())]

    d, size = image_index(blobs, files, {"io.openshift.build.name": f"{name}-{build}"},
                          {"org.opencontainers.image.title": name})
    return d, size, blobs


def image_references(version, components, digests):
    """`release-manifests/image-references` as `oc adm release new` writes it: an
    image.openshift.io/v1 ImageStream, one spec tag per component (Go's field order)."""
    minor = ".".join(version.split(".")[:2])
    stream = {
        "kind": "ImageStream",
        "apiVersion": "image.openshift.io/v1",
        "metadata": {
            "name": version,
            "creationTimestamp": None,
            "annotations": {"release.openshift.io/from-image-stream": f"origin/scos-{minor}"},
        },
        "spec": {
            "lookupPolicy": {"local": False},
            "tags": [{
                "name": name,
                "annotations": {"io.openshift.build.source-location": f"https://github.com/openshift/{name}"},
                "from": {"kind": "DockerImage", "name": f"{SOURCE_CONTENT}@{digests[(name, build)][0]}"},
                "generation": None,
                "importPolicy": {},
                "referencePolicy": {"type": ""},
            } for name, build in sorted(components.items())],
        },
        "status": {"dockerImageRepository": ""},
    }
    return (json.dumps(stream, indent=2) + "\n").encode()


def release_metadata(version):
    """`release-manifests/release-metadata` (cincinnati-metadata-v0)."""
    meta = {"kind": "cincinnati-metadata-v0", "version": version, "previous": [], "metadata": {}}
    return (json.dumps(meta, indent=2) + "\n").encode()


def release_blobs(version, digests):
    """Returns (index_digest, index_size, {digest: bytes}) for one release; `digests`
    maps (component, build) to its (digest, size)."""
    blobs = {}
    refs = image_references(version, COMPONENTS[version], digests)
    meta = release_metadata(version)

    def files(_arch):
        return [("release-manifests/", b""),
                ("release-manifests/image-references", refs),
                ("release-manifests/release-metadata", meta)]

    d, size = image_index(blobs, files, {"io.openshift.release": version},
                          {"io.openshift.release": version})
    return d, size, blobs


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
    builds = sorted({c for v in COMPONENTS.values() for c in v.items()})
    comp = {c: component_blobs(*c) for c in builds}
    digests = {c: (d, size) for c, (d, size, _) in comp.items()}
    rel = {v: release_blobs(v, digests) for v in RELEASES + [NIGHTLY]}
    r1, r2, r3, r4 = (rel[v] for v in RELEASES)

    src_blobs = {}
    for _, _, b in rel.values():
        src_blobs.update(b)
    write_layout(os.path.join(HERE, "registry.ci.openshift.org", "origin", "release-scos"),
                 [(v, rel[v][0], rel[v][1]) for v in RELEASES + [NIGHTLY]], src_blobs)

    content_blobs = {}
    for _, _, b in comp.values():
        content_blobs.update(b)
    write_layout(os.path.join(HERE, "registry.ci.openshift.org", "origin", "scos-content"),
                 [], content_blobs)

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

    # The live payload target: the components of r1..r3 present; those of r1 (tombstoned:
    # deleted with it) and r2 tagged, those of r3 not yet; r4's new components absent.
    live = {c for v in RELEASES[:3] for c in COMPONENTS[v].items()}
    payload_blobs = {}
    for c in live:
        payload_blobs.update(comp[c][2])
    write_layout(os.path.join(HERE, "quay.io", "okd", "scos-content"), [
        (f"{v}-{name}", *digests[(name, build)])
        for v in RELEASES[:2] for name, build in sorted(COMPONENTS[v].items())
    ], payload_blobs)

    for v in RELEASES + [NIGHTLY]:
        print(f"{v} {rel[v][0]}")


if __name__ == "__main__":
    sys.exit(main())
