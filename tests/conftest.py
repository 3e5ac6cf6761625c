"""Shared test setup: offline hub, W&B off, tiny backbones from conf/model."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from ptuning.config import ModelConfig  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
TINY_MODELS = ["tiny_bert", "tiny_roberta", "tiny_deberta", "tiny_deberta_v2", "tiny_gpt2", "tiny_llama",
               "tiny_xlm_roberta", "tiny_xlm_roberta_xl", "tiny_pythia"]
#: the scale-ladder families (XLM-R base..XXL, Pythia 160M..12B) at tiny size
SCALE_LADDER_MODELS = ["tiny_xlm_roberta", "tiny_xlm_roberta_xl", "tiny_pythia"]

torch.set_num_threads(1)  # tiny models: one thread is fastest on a shared 2-core machine


def model_cfg(name: str, **overrides):
    """The ``conf/model/<name>.yaml`` config on its schema, with overrides applied."""
    schema = OmegaConf.structured(ModelConfig)
    return OmegaConf.merge(schema, OmegaConf.load(CONF / "model" / f"{name}.yaml"), overrides)


def compose_config(overrides: list[str], hydra: bool = False):
    """``conf/config.yaml`` composed with ``overrides`` (and the ``hydra`` node when asked)."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=overrides, return_hydra_config=hydra)


class Interrupted(BaseException):
    """Stands for the process dying: not an ``Exception``, so no failed record is written."""


def save_then_stop_at(step: int):
    """A ``Checkpointer.save`` that raises :class:`Interrupted` (carrying the checkpoint's path)
    once the checkpoint at ``step`` or later is written: a cell killed right after it."""
    from ptuning.checkpoints import Checkpointer

    real_save = Checkpointer.save

    def save(self, state, *args):
        path = real_save(self, state, *args)
        if state.global_step >= step:
            raise Interrupted(path)
        return path

    return save


def method_cfg(name: str, **overrides) -> dict:
    """Options of method ``name`` (its dataclass supplies every default)."""
    return {"name": name, **overrides}


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real benchmark files (``PTUNING_DATA_DIR``); skips when unset."""
    value = os.environ.get("PTUNING_DATA_DIR")
    if not value:
        pytest.skip("PTUNING_DATA_DIR is not set")
    path = Path(value)
    if not path.is_dir():
        pytest.skip(f"PTUNING_DATA_DIR={value} is not a directory")
    return path
