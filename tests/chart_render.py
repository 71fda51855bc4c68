"""Renders and lints a Helm chart with helm-python-sdk (Helm v4's Go SDK through libhelm_c,
no helm binary), for tests/chart.rs.

Reads one JSON request on stdin:
    {"chart": "<dir>", "release": "<name>", "namespace": "<ns>", "values": {...}}
Writes one JSON object on stdout:
    {"helm": "<Helm SDK version>", "helmC": "<libhelm_c version>",
     "manifests": {"<template path>": "<rendered text>"} | null,
     "renderError": "<message>" | null,
     "lint": {"total_charts_linted", "messages": [{"severity", "path", "error"}], "errors"}}
Exits 3 (with a message on stderr) when helm-python-sdk cannot be imported.
"""

import json
import sys

try:
    import helm_python as helm
except ImportError as e:  # the test turns this into a failure with install instructions
    sys.stderr.write(
        f"helm-python-sdk is not importable ({e}); install it with "
        "`pip install helm-python-sdk==0.2.2`\n"
    )
    sys.exit(3)


def main() -> None:
    req = json.load(sys.stdin)
    out = {
        "helm": helm.helm_sdk_version(),
        "helmC": helm.helm_c_version(),
        "manifests": None,
        "renderError": None,
    }
    with helm.Chart.load(req["chart"]) as chart:
        try:
            out["manifests"] = chart.render(
                values=req["values"],
                name=req["release"],
                namespace=req["namespace"],
                is_install=True,
            )
        except helm.HelmError as e:
            out["renderError"] = str(e)
    out["lint"] = helm.lint(
        req["chart"], req["values"], strict=True, namespace=req["namespace"]
    )
    json.dump(out, sys.stdout)


main()
