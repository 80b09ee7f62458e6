"""Verifies captured webhook requests with the Standard Webhooks reference library (PyPI
`standardwebhooks`), an implementation independent of Sluice's.

usage: verify_webhooks.py SECRET REQUESTS.json
REQUESTS.json: [{"headers": {...}, "body": "..."}]; prints the number verified, exits non-zero
on the first request that does not verify.
"""

import json
import sys

from standardwebhooks.webhooks import Webhook


def main():
    secret, path = sys.argv[1:3]
    webhook = Webhook(secret)
    with open(path) as f:
        requests = json.load(f)
    for i, request in enumerate(requests):
        headers = {k.lower(): v for k, v in request["headers"].items()}
        try:
            webhook.verify(request["body"], headers)
        except Exception as error:  # the library raises its own WebhookVerificationError
            sys.exit(f"request {i} does not verify: {error!r}")
    print(len(requests))


if __name__ == "__main__":
    main()
