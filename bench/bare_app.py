"""The baseline: a bare Flask app answering the same JSON as /api/v1/me, no auth, no database."""

import json
import os

from flask import Flask

app = Flask(__name__)
PAYLOAD = json.loads(os.environ.get("BENCH_PAYLOAD", "{}"))


@app.get("/api/v1/me")
def me():
    return PAYLOAD
