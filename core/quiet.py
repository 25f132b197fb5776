"""Quiet third-party start-up noise (gRPC keepalive chatter, model-loading progress bars).

Call `quiet_third_party()` before importing pymilvus or sentence-transformers: the variables are
read at import time. Explicit settings in the environment win.
"""

from __future__ import annotations

import os

_DEFAULTS = {
    "GRPC_VERBOSITY": "NONE",
    "TRANSFORMERS_VERBOSITY": "error",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


def quiet_third_party() -> None:
    for key, value in _DEFAULTS.items():
        os.environ.setdefault(key, value)
