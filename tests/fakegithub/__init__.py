"""A stateful fake GitHub (REST API + git smart HTTP + signed webhooks) for tests.

fake = FakeGitHub(tmp_path, webhook_secret="s3cret")
inst = fake.add_installation("octo-org")
repo = fake.create_repo("octo-org", "demo", {"README.md": "hi\\n"})
with serve(fake) as base_url:
    gh = GitHub(AppAuthStrategy(fake.app_id, fake.private_key_pem),
                base_url=f"{base_url}/api/v3/")
"""

from __future__ import annotations

from .delivery import Delivery
from .fake import FakeGitHub
from .server import serve
from .state import BOT_LOGIN

__all__ = ["BOT_LOGIN", "Delivery", "FakeGitHub", "serve"]
