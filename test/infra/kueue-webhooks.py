"""Writes the webhook configurations of the test Kueue (servers.sh start) as one JSON List.

Reads Kueue's own config/components/webhook/manifests.yaml from the pinned module's source and
keeps only the webhooks that this Kueue serves: its own API types (kueue.x-k8s.io) and
batch/v1 Jobs (the one integration it runs). Each one calls https://127.0.0.1:PORT<path>
with the test CA as caBundle instead of an in-cluster Service, and every namespaced object is
admitted by it only in namespaces with the label KEY=VALUE (servers.sh passes
smolstage.dev/kueue=enabled), so tests that do not use Kueue never reach it.

Usage: kueue-webhooks.py MANIFESTS.yaml PORT CA.crt KEY=VALUE > webhooks.json
"""

import base64
import json
import sys

import yaml

NAMES = {
    "MutatingWebhookConfiguration": "smolstage-test-kueue-mutating",
    "ValidatingWebhookConfiguration": "smolstage-test-kueue-validating",
}


def served(path: str) -> bool:
    return path.endswith("-batch-v1-job") or "-kueue-x-k8s-io-" in path


def main() -> None:
    manifests, port, ca_file, label = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    key, value = label.split("=", 1)
    with open(ca_file, "rb") as f:
        ca_bundle = base64.b64encode(f.read()).decode()
    items = []
    with open(manifests) as f:
        for doc in yaml.safe_load_all(f):
            if not doc or doc.get("kind") not in NAMES:
                continue
            webhooks = []
            for hook in doc["webhooks"]:
                path = hook["clientConfig"]["service"]["path"]
                if not served(path):
                    continue
                hook["clientConfig"] = {
                    "url": f"https://127.0.0.1:{port}{path}",
                    "caBundle": ca_bundle,
                }
                hook["namespaceSelector"] = {"matchLabels": {key: value}}
                webhooks.append(hook)
            if not webhooks:
                sys.exit(f"no Job or Kueue webhooks in {manifests}")
            items.append(
                {
                    "apiVersion": doc["apiVersion"],
                    "kind": doc["kind"],
                    "metadata": {"name": NAMES[doc["kind"]]},
                    "webhooks": webhooks,
                }
            )
    if len(items) != 2:
        sys.exit(f"expected a mutating and a validating configuration in {manifests}")
    json.dump({"apiVersion": "v1", "kind": "List", "items": items}, sys.stdout, indent=1)


if __name__ == "__main__":
    main()
