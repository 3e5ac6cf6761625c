"""The verbalizer head (P-Tuning v2 Table 4's "verbalizer + LM head"): cloze inputs, label
words as single tokens, logits from the backbone's pretrained masked-LM head."""

from __future__ import annotations

import pytest
import torch
from conftest import compose_config, model_cfg
from omegaconf import OmegaConf
from transformers import AutoModelForMaskedLM

from ptuning.artefacts import load_trained
from ptuning.backbones import backbone_config, load_backbone, minilm_tokenizer
from ptuning.errors import ConfigError
from ptuning.heads import label_token_ids
from ptuning.methods import build_method
from ptuning.model import PromptedModel
from ptuning.runner import prepare, run_cell
from ptuning.tasks import TASKS, get_task
from ptuning.training import FeatureCollator, predict

CLOZE_TASKS = sorted(name for name, cls in TASKS.items() if cls.verbalizer)


def test_the_table_4_tasks_have_cloze_patterns():
    assert CLOZE_TASKS == ["boolq", "cb", "rte", "sst2"]
    assert get_task("rte").verbalizer == ("Yes", "No")  # official PT-Fewshot RtePVP, label order
    assert get_task("cb").verbalizer == ("Yes", "No", "Maybe")
    assert get_task("boolq").verbalizer == ("No", "Yes")  # False, True


@pytest.mark.parametrize("name", CLOZE_TASKS)
def test_label_words_are_single_tokens_and_the_mask_survives_truncation(name):
    tokenizer = minilm_tokenizer()
    task = get_task(name).configure(None, None, "verbalizer")
    ids = label_token_ids(tokenizer, task.verbalizer)
    assert len(set(ids)) == len(task.verbalizer) == task.num_labels
    encoded = task.encode(task.synthetic_rows("train", 4), tokenizer, 24, train=True)
    for feature in encoded.features:
        assert len(feature["input_ids"]) <= 24
        assert feature["input_ids"][feature["mask_position"]] == tokenizer.mask_token_id
        assert feature["input_ids"][0] == tokenizer.cls_token_id and feature["input_ids"][-1] == tokenizer.sep_token_id
        start, pattern, end = feature["prompt_anchors"]
        assert 1 == start < pattern < feature["mask_position"] < end == len(feature["input_ids"]) - 1


def test_a_word_of_several_tokens_is_refused():
    with pytest.raises(ConfigError, match=r"label word 'unbelievably' is 5 tokens .*\['un', '##bel', '##ie', '##va', '##bly'\]"):
        label_token_ids(minilm_tokenizer(), ("yes", "unbelievably"))


def test_logits_are_the_masked_lm_heads_at_the_mask():
    """Against transformers' own BertForMaskedLM with the same weights: its logits at [MASK]
    for the label words are ours."""
    cfg = OmegaConf.to_object(model_cfg("tiny_bert"))
    backbone = load_backbone(cfg, masked_lm=True)
    config = backbone_config(cfg)
    config.vocab_size = backbone.tokenizer.vocab_size
    torch.manual_seed(cfg.init_seed)
    reference = AutoModelForMaskedLM.from_config(config).eval()  # the same random init as load_backbone's
    task = get_task("rte").configure(None, None, "verbalizer")
    model = PromptedModel(backbone, build_method({"name": "finetune"}, backbone), task.head, 2,
                          label_words=task.verbalizer).eval()
    encoded = task.encode(task.synthetic_rows("validation", 5), backbone.tokenizer, 48, train=False)
    batch = FeatureCollator(backbone.tokenizer.pad_token_id)(encoded.features)
    with torch.no_grad():
        ours = model(**batch)["logits"]
        vocab = reference(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                          token_type_ids=batch["token_type_ids"]).logits
    words = label_token_ids(backbone.tokenizer, task.verbalizer)
    expected = vocab[torch.arange(5), batch["mask_position"]][:, words]
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)
    assert model.parameter_counts()["head"] == 0  # the LM head is the backbone's


def test_a_verbalizer_cell_trains_only_the_prompt_and_its_artefact_reloads(tmp_path):
    cfg = compose_config(["model=tiny_bert", "data.source=synthetic", "data.synthetic_train=16",
                          "data.synthetic_eval=8", "logger=none", "task=rte", "task.head=verbalizer",
                          "method=ptuning_v2", "method.length=4", "train.max_steps=4", f"paths.runs_dir={tmp_path}"])
    outcome = run_cell(cfg)
    record = outcome.record
    assert outcome.status == "completed" and record["identity"]["options"]["task.head"] == "verbalizer"
    assert record["params"]["head"] == 0 and record["params"]["trainable"] == record["params"]["method"]
    trained = load_trained(outcome.directory)
    assert trained.task.head == "verbalizer" and trained.backbone.lm_head is not None
    encoded = trained.task.encode(prepare(cfg).splits.validation, trained.backbone.tokenizer, trained.max_length,
                                  train=False)
    logits = predict(trained.model, encoded, FeatureCollator(trained.backbone.tokenizer.pad_token_id), batch_size=8)
    assert trained.task.score(logits, encoded) == pytest.approx(record["metrics"])


def test_tasks_and_backbones_without_a_verbalizer_are_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"task copa has no cloze pattern and label words; tasks with them: "
                                          r"boolq, cb, rte, sst2"):
        get_task("copa").configure(None, None, "verbalizer")
    with pytest.raises(ConfigError, match=r"task.head='linear': allowed: null"):
        get_task("rte").configure(None, None, "linear")
    with pytest.raises(ConfigError, match=r"model=tiny_gpt2 \(gpt2\) has no masked-LM head"):
        load_backbone(OmegaConf.to_object(model_cfg("tiny_gpt2")), masked_lm=True)


def test_a_prompt_table_of_verbalizer_artefacts_and_no_mixing(tmp_path):
    from ptuning.artefacts import ArtefactError
    from ptuning.prompt_table import PromptTable

    base = ["model=tiny_bert", "data.source=synthetic", "data.synthetic_train=8", "data.synthetic_eval=6",
            "logger=none", "method=ptuning_v2", "method.length=4", "train.max_steps=2", f"paths.runs_dir={tmp_path}"]
    rte = run_cell(compose_config([*base, "task=rte", "task.head=verbalizer"])).directory
    sst2 = run_cell(compose_config([*base, "task=sst2", "task.head=verbalizer"])).directory
    cb = run_cell(compose_config([*base, "task=cb"])).directory
    table = PromptTable.load([rte, sst2])
    rows = [("rte", r) for r in get_task("rte").synthetic_rows("validation", 3)] + [
        ("sst2", r) for r in get_task("sst2").synthetic_rows("validation", 3)]
    unlabelled = [(t, {k: v for k, v in r.items() if k != "label"}) for t, r in rows]
    predictions = table.predict(unlabelled, batch_size=4)
    for name in ("rte", "sst2"):
        entry = table.entries[name]
        encoded = entry.task.encode([r for t, r in rows if t == name], table.backbone.tokenizer, entry.max_length,
                                    train=False)
        alone = entry.task.predict(predict(entry.model, encoded, FeatureCollator(0), batch_size=2), encoded)
        assert [p for (t, _), p in zip(rows, predictions, strict=True) if t == name] == alone
    with pytest.raises(ArtefactError, match=r"verbalizer-head artefacts run on the backbone loaded with its masked-LM"):
        PromptTable.load([rte, cb])
    with pytest.raises(ArtefactError, match=r"put them in tables of their own"):
        table.add(cb)
