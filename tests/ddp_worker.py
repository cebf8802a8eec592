"""Run by tests/test_training.py under torchrun: a few DDP training steps on CPU (gloo);
each rank writes the digest of its final generator weights."""

import json
import sys
from pathlib import Path

from sarclear.training import TrainConfig, train

config = TrainConfig.from_dict(json.loads(sys.argv[1]))
summary = train(config)
Path(config.out, f"digest-rank{summary['rank']}.json").write_text(json.dumps(
    {"digest": summary["generator_sha256"], "step": summary["step"], "world_size": summary["world_size"]}))
