"""Checkpoints whose config.json would load other code than their own are refused before
any weights load: remote code needs an explicit opt-in, and the 2021 GLM (model_type 'glm')
is never built as transformers' unrelated GLM-4."""

from __future__ import annotations

import json

import pytest
from conftest import model_cfg
from transformers import AutoConfig

from ptuning.backbones import backbone_config
from ptuning.errors import ConfigError

# THUDM/glm-2b's architecture keys as PaddleNLP records them (GLM_PRETRAINED_INIT_CONFIGURATION
# in paddlenlp/transformers/glm/configuration.py), plus the remote-code map of the hub repo
GLM_2B = {"architectures": ["GLMModel"], "model_type": "glm", "num_layers": 36, "hidden_size": 2048,
          "num_attention_heads": 32, "max_sequence_length": 1024, "block_position_encoding": True,
          "vocab_size": 50304,
          "auto_map": {"AutoConfig": "configuration_glm.GLMConfig", "AutoModel": "modeling_glm.GLMModel"}}


def _checkpoint(tmp_path, config: dict):
    (tmp_path / "config.json").write_text(json.dumps(config))
    return model_cfg("bert_large", path=str(tmp_path), display="under test")


def test_transformers_would_build_the_2021_glm_as_a_wrong_glm4(tmp_path):
    """The collision the check exists for (measured here, not assumed)."""
    config = {k: v for k, v in GLM_2B.items() if k != "auto_map"}
    (tmp_path / "config.json").write_text(json.dumps(config))
    loaded = AutoConfig.from_pretrained(str(tmp_path))
    assert type(loaded).__name__ == "GlmConfig" and loaded.num_hidden_layers != 36


def test_remote_code_is_refused_without_the_opt_in(tmp_path):
    with pytest.raises(ConfigError, match=r"model=bert_large: the checkpoint ships its own modelling code.*"
                                          r"model.trust_remote_code=true.*2021 GLM"):
        backbone_config(_checkpoint(tmp_path, GLM_2B))


def test_the_2021_glm_without_its_code_is_refused_even_with_the_opt_in(tmp_path):
    config = {k: v for k, v in GLM_2B.items() if k != "auto_map"}
    cfg = _checkpoint(tmp_path, config)
    cfg.trust_remote_code = True
    with pytest.raises(ConfigError, match=r"model_type 'glm' with the 2021 GLM's keys \(num_layers, "
                                          r"block_position_encoding, max_sequence_length\).*GLM-4.*num_layers 36"):
        backbone_config(cfg)


def test_a_genuine_glm4_config_is_not_mistaken_for_the_2021_glm(tmp_path):
    """GLM-4 is simply a family this suite does not support (no collision message)."""
    (tmp_path / "config.json").write_text(AutoConfig.for_model("glm", num_hidden_layers=2).to_json_string())
    with pytest.raises(ConfigError, match=r"family 'glm' is not supported") as refused:
        backbone_config(model_cfg("bert_large", path=str(tmp_path), display="under test"))
    assert "2021" not in str(refused.value)


def test_a_built_in_family_loads_its_config(tmp_path):
    config = AutoConfig.for_model("bert", num_hidden_layers=3).to_dict()
    assert backbone_config(_checkpoint(tmp_path, config)).num_hidden_layers == 3
