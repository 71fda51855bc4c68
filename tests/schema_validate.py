"""Validates documents against a JSON Schema with Python's `jsonschema` (an independent
validator), for tests/ecosystem_schema.rs.

Reads one JSON request on stdin:
    {"schema": {...}, "documents": [{"name": "<file#n>", "document": {...}}]}
Writes one JSON object on stdout:
    {"jsonschema": "<version>", "results": [{"name", "valid", "errors": ["<message>"]}]}
Exits 3 (with a message on stderr) when jsonschema cannot be imported, 4 when the schema
itself is not a valid draft 2020-12 schema.
"""

import json
import sys
from importlib import metadata

try:
    import jsonschema
except ImportError as e:  # the test turns this into a failure with install instructions
    sys.stderr.write(
        f"jsonschema is not importable ({e}); install it with `pip install jsonschema`\n"
    )
    sys.exit(3)


def main() -> None:
    req = json.load(sys.stdin)
    schema = req["schema"]
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.exceptions.SchemaError as e:
        sys.stderr.write(f"not a valid draft 2020-12 schema: {e.message}\n")
        sys.exit(4)
    validator = jsonschema.Draft202012Validator(schema)
    results = []
    for doc in req["documents"]:
        errors = [
            f"{'/'.join(str(p) for p in e.absolute_path)}: {e.message}"
            for e in validator.iter_errors(doc["document"])
        ]
        results.append({"name": doc["name"], "valid": not errors, "errors": errors})
    json.dump({"jsonschema": metadata.version("jsonschema"), "results": results}, sys.stdout)


main()
