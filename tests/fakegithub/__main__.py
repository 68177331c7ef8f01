"""Run the fake GitHub by hand: `python -m tests.fakegithub --port 8765 --data /tmp/fake`."""

from __future__ import annotations

import argparse
import secrets
import threading
from pathlib import Path

from .fake import FakeGitHub
from .server import serve


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.fakegithub", description=__doc__)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--data", type=Path, required=True, help="folder for repos and the key")
    parser.add_argument("--account", default="octo-org", help="account the App is installed on")
    parser.add_argument("--repo", default="demo", help="repository to create on that account")
    parser.add_argument("--webhook-url", help="deliver webhooks here (e.g. the bot's endpoint)")
    parser.add_argument("--webhook-secret", default=None)
    args = parser.parse_args(argv)

    secret = args.webhook_secret or secrets.token_hex(16)
    fake = FakeGitHub(args.data, webhook_secret=secret)
    installation = fake.add_installation(args.account)
    repo = fake.create_repo(
        args.account, args.repo, {"README.md": f"# {args.repo}\n", "app.py": "print('hi')\n"}
    )
    if args.webhook_url:
        fake.set_webhook_sink(url=args.webhook_url)
    key_path = fake.write_private_key()
    with serve(fake, port=args.port) as base_url:
        print(f"fake GitHub at      {base_url}  (REST API: {base_url}/api/v3)")
        print(f"app id:             {fake.app_id}")
        print(f"private key:        {key_path}")
        print(f"webhook secret:     {secret}")
        print(f"installation id:    {installation}")
        print(f"repository:         {repo}  (clone: {fake.clone_url(repo)})")
        print("Ctrl-C to stop.", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
