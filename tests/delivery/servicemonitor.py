"""Validates prometheus-operator resources (ServiceMonitor) against the CRD's schema.

kubernetes-validate knows only the built-in kinds. The CRD's openAPIV3Schema reaches us as
the pydantic models PyPI's cloudcoil-models-prometheus-operator generates from it (pinned in
the Makefile's PYDEPS); they are turned back into a JSON Schema here, with unknown fields
refused (as the API server's structural-schema pruning plus kubectl's strict field validation
would), and every document of kind ServiceMonitor in the files is checked against it.
usage: servicemonitor.py FILE...   exit 1 on any error, naming the file and the field.
"""
import sys

import jsonschema
import yaml
from cloudcoil.models.prometheus_operator import v1


def strict(node):
    if isinstance(node, dict):
        if node.get("type") == "object" and "properties" in node:
            node.setdefault("additionalProperties", False)
        for value in node.values():
            strict(value)
    elif isinstance(node, list):
        for value in node:
            strict(value)
    return node


def main(files):
    schema = strict(v1.ServiceMonitor.model_json_schema(by_alias=True, mode="validation"))
    validator = jsonschema.Draft202012Validator(schema)
    failed = checked = 0
    for path in files:
        with open(path) as f:
            for doc in yaml.safe_load_all(f):
                if not doc or doc.get("kind") != "ServiceMonitor":
                    continue
                checked += 1
                for error in validator.iter_errors(doc):
                    where = "/".join(str(p) for p in error.absolute_path)
                    print(f"{path}: {where}: {error.message}")
                    failed += 1
                # Required by the CRD though optional in the model.
                if not (doc.get("spec") or {}).get("selector"):
                    print(f"{path}: spec/selector: required")
                    failed += 1
                if failed == 0:
                    print(f"{path}: ServiceMonitor {doc['metadata']['name']} valid")
    if checked == 0:
        print("no ServiceMonitor in " + " ".join(files))
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
