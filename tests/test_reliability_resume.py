"""``sarclear train --out RUN --resume`` continues the run as it was configured, and says
which settings the user overrode (issue 15, item 4; docs/RELIABILITY.md)."""

import json
import logging

import pytest
from conftest import SAMPLES
from safetensors import safe_open

from sarclear import training
from sarclear.cli import main

MANIFEST = SAMPLES / "train_manifest.csv"


def _step(run):
    return int(training.latest_checkpoint(run).stem.split("-")[1])


def _model_step(run):
    with safe_open(str(run / "model.safetensors"), "pt") as f:
        return json.loads(f.metadata()["sarclear_info"])["step"]


def test_resume_takes_every_setting_from_the_run_and_names_the_overrides(tmp_path, caplog, capsys):
    run = tmp_path / "run"
    cfg = training.TrainConfig(data=str(MANIFEST), out=str(run), preset="lite", crop=128, batch_size=2,
                               samples_per_epoch=4, epochs=2, checkpoint_every=1, eval_max_pairs=1, seed=3)
    training.train(cfg, stop_after_steps=1)  # interrupted: 1 of 4 steps (2 per epoch, 2 epochs)
    caplog.set_level(logging.INFO)
    assert main(["-q", "train", "--out", str(run), "--resume"]) == 0  # the README's recovery command
    assert _step(run) == 4 and _model_step(run) == 4  # the run's 2 epochs, not the default 5
    assert "overridden" not in caplog.text
    caplog.clear()
    assert main(["-q", "train", "--out", str(run), "--resume", "--epochs", "3"]) == 0
    assert _step(run) == 6 and _model_step(run) == 6
    assert "with these settings overridden: epochs 2 -> 3" in caplog.text
    code = main(["-q", "train", "--out", str(run), "--resume", "--preset", "paper"])
    err = capsys.readouterr().err
    assert code == 2 and "trained with preset 'lite'; a resumed run cannot change the network" in err
    assert _step(run) == 6 and _model_step(run) == 6  # the run and its model untouched


@pytest.mark.parametrize(("options", "message"), [
    ({"batch_size": 0}, "batch_size is 0"), ({"lr": float("nan")}, "lr is nan"), ({"epochs": -1}, "epochs is -1"),
    ({"crop": "big"}, "crop is 'big'")])
def test_training_options_out_of_range_are_refused_from_a_config_file(tmp_path, capsys, options, message):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"data": str(MANIFEST), "out": str(tmp_path / "r"), **options}).replace("NaN", "NaN"))
    assert main(["train", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()
