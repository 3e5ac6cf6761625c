"""Input-side prompts lengthen the sequence; every output must stay in the original
token coordinates: insert_prompt itself, token labels (NER), QA spans and offsets, and
the pooled [CLS] position."""

from __future__ import annotations

import re
import unicodedata

import numpy as np
import pytest
import torch
from conftest import method_cfg, model_cfg
from torch.nn import functional as F

from ptuning.backbones import load_backbone
from ptuning.methods import build_method
from ptuning.model import PromptedModel, insert_prompt
from ptuning.tasks import Encoded, get_task
from ptuning.tasks.synthetic import synthetic_rows
from ptuning.training import FeatureCollator

# ---------------------------------------------------------------- (a) insert_prompt

def _hand_made():
    batch, seq = 2, 5
    embeds = torch.tensor([[[100.0 * b + t, 0.0] for t in range(seq)] for b in range(batch)])
    prompt = torch.tensor([[[-(10.0 * b + j + 1), 1.0] for j in range(3)] for b in range(batch)])
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    types = torch.tensor([[0, 0, 1, 1, 1], [0, 1, 1, 0, 0]])
    return embeds, mask, types, prompt


def test_insert_prompt_positions_mask_and_types():
    embeds, mask, types, prompt = _hand_made()
    insert_at = torch.tensor([[0, 0, 3], [1, 3, 3]])
    new, new_mask, new_types, index = insert_prompt(embeds, mask, types, prompt, insert_at)
    assert new.shape == (2, 8, 2) and new_mask.shape == new_types.shape == (2, 8)
    # row 0: P0 P1 t0 t1 t2 P2 t3 t4 ; row 1: t0 P0 t1 t2 P1 P2 t3 t4
    assert new[0, :, 0].tolist() == [-1, -2, 0, 1, 2, -3, 3, 4]
    assert new[1, :, 0].tolist() == [100, -11, 101, 102, -12, -13, 103, 104]
    assert index.tolist() == [[2, 3, 4, 6, 7], [0, 2, 3, 6, 7]]
    for b in range(2):
        assert torch.equal(new[b, index[b]], embeds[b])  # token_index inverts the insertion
        prompt_at = sorted(set(range(8)) - set(index[b].tolist()))
        assert prompt_at == (insert_at[b] + torch.arange(3)).tolist()
        assert torch.equal(new[b, prompt_at], prompt[b])
        assert torch.equal(new_mask[b, index[b]], mask[b])
        assert new_mask[b, prompt_at].tolist() == [1, 1, 1]
        assert torch.equal(new_types[b, index[b]], types[b])
        assert new_types[b, prompt_at].tolist() == [0, 0, 0]


def test_insert_prompt_at_end_and_without_token_types():
    embeds, mask, _, prompt = _hand_made()
    insert_at = torch.tensor([[5, 5, 5], [0, 2, 5]])
    new, new_mask, new_types, index = insert_prompt(embeds, mask, None, prompt, insert_at)
    assert new_types is None
    assert new[0, :, 0].tolist() == [0, 1, 2, 3, 4, -1, -2, -3]
    assert new[1, :, 0].tolist() == [-11, 100, 101, -12, 102, 103, 104, -13]
    assert index.tolist() == [[0, 1, 2, 3, 4], [1, 2, 4, 5, 6]]
    assert new_mask[1].tolist() == [1, 1, 1, 1, 1, 0, 0, 1]


def test_insert_prompt_pairs_rows_with_their_slot():
    """Virtual token j goes before original index insert_at[:, j] (PromptOutput's contract),
    also when insert_at is not sorted."""
    embeds, mask, types, prompt = _hand_made()
    insert_at = torch.tensor([[3, 0, 0], [3, 1, 3]])
    new, _, _, _ = insert_prompt(embeds, mask, types, prompt, insert_at)
    # row 0: P1 P2 t0 t1 t2 P0 t3 t4 ; row 1: t0 P1 t1 t2 P0 P2 t3 t4
    assert new[0, :, 0].tolist() == [-2, -3, 0, 1, 2, -1, 3, 4]
    assert new[1, :, 0].tolist() == [100, -12, 101, 102, -11, -13, 103, 104]


def test_insert_prompt_gradient_reaches_prompt_only_at_its_rows():
    embeds, mask, types, prompt = _hand_made()
    prompt = prompt.clone().requires_grad_(True)
    new, _, _, _ = insert_prompt(embeds, mask, types, prompt, torch.tensor([[0, 1, 2], [2, 2, 4]]))
    weights = torch.arange(16.0).view(2, 8, 1)
    (new * weights).sum().backward()
    # row 0 prompts at 0, 2, 4; row 1 at 2, 3, 6
    assert prompt.grad[:, :, 0].tolist() == [[0, 2, 4], [10, 11, 14]]


# ---------------------------------------------------------------- model-level helpers

def _prompted(method: str, model_name: str, head: str, num_labels: int, **options) -> PromptedModel:
    backbone = load_backbone(model_cfg(model_name))
    torch.manual_seed(0)
    model = PromptedModel(backbone, build_method(method_cfg(method, **options), backbone), head,
                          num_labels)
    return model.eval()


def _capture(model: PromptedModel, batch: dict[str, torch.Tensor]):
    """Model outputs and the backbone's (lengthened) last hidden state; the lengthened input
    embeddings are kept in ``model.captured_embeds`` for :func:`_check_layout`."""
    captured = {}
    hook = model.backbone.register_forward_hook(
        lambda m, a, out: captured.update(hidden=out.last_hidden_state))
    pre = model.backbone.register_forward_pre_hook(
        lambda m, a, kwargs: captured.update(embeds=kwargs["inputs_embeds"]), with_kwargs=True)
    with torch.no_grad():
        out = model(**batch)
    hook.remove()
    pre.remove()
    model.captured_embeds = captured["embeds"]
    return out, captured["hidden"]


def _check_layout(model: PromptedModel, batch: dict[str, torch.Tensor], positions: torch.Tensor) -> None:
    """The sequence the backbone received has each original token's embedding at
    ``positions`` and the method's L prompt vectors everywhere else: the expected positions
    are checked against what the library built, not assumed."""
    embeds = model.captured_embeds
    with torch.no_grad():
        tokens = model.backbone.get_input_embeddings()(batch["input_ids"])
        prompt = model.method(1, batch["prompt_anchors"][:1]).input_prompt[0]
    for b in range(embeds.shape[0]):
        assert torch.equal(embeds[b, positions[b]], tokens[b])
        others = sorted(set(range(embeds.shape[1])) - set(positions[b].tolist()))
        assert len(others) == len(prompt)
        for row in embeds[b, others]:
            assert any(torch.allclose(row, p) for p in prompt)


def _expected_positions(method: str, options: dict, anchors: torch.Tensor, seq: int) -> torch.Tensor:
    """New position of every original token, from the anchors, independently of the library."""
    length = options["length"]
    template = options.get("template")
    if template is None:
        slots = torch.zeros(anchors.shape[0], length, dtype=torch.long)
    else:
        slots = torch.tensor([[a for a, n in zip(row, template, strict=True) for _ in range(n)]
                              for row in anchors.tolist()])
    t = torch.arange(seq)
    return t + (slots.unsqueeze(1) <= t.view(1, -1, 1)).sum(-1)


INPUT_PROMPTS = [
    ("prompt_tuning", {"length": 5}),
    ("ptuning_v1", {"length": 3}),
    ("ptuning_v1", {"length": 4, "template": [2, 1, 1]}),
]


# ---------------------------------------------------------------- (b) token labels

@pytest.mark.parametrize("model_name", ["tiny_bert", "tiny_llama"])
@pytest.mark.parametrize(("method", "options"), INPUT_PROMPTS, ids=lambda v: str(v))
def test_token_logits_in_original_coordinates(method, options, model_name):
    task = get_task("conll2003")
    model = _prompted(method, model_name, task.head, task.num_labels, **options)
    rows = synthetic_rows("conll2003", "validation", 6)
    encoded = task.encode(rows, model.info.tokenizer, 64, train=False)
    batch = FeatureCollator(model.info.tokenizer.pad_token_id)(encoded.features)
    assert (batch["attention_mask"] == 0).any()
    out, hidden = _capture(model, batch)
    b, seq = batch["input_ids"].shape
    length = options["length"]
    assert hidden.shape[:2] == (b, seq + length)
    assert out["logits"].shape == (b, seq, task.num_labels)

    positions = _expected_positions(method, options, batch["prompt_anchors"], seq)
    mapped = hidden[torch.arange(b).unsqueeze(1), positions]
    with torch.no_grad():
        expected = model.head.classifier(mapped)
    assert torch.allclose(out["logits"], expected, atol=1e-6)
    _check_layout(model, batch, positions)
    # the loss is the cross entropy of those logits at the labelled (first sub-token) positions
    labels = batch["labels"]
    want = F.cross_entropy(expected.flatten(0, 1), labels.flatten(), ignore_index=-100)
    assert torch.allclose(out["loss"], want, atol=1e-6)


# ---------------------------------------------------------------- (c) QA


def _plain(text: str) -> str:
    """Lower case, no accents, no whitespace: what an uncased WordPiece decode preserves."""
    text = unicodedata.normalize("NFKD", text.lower())
    return re.sub(r"\s+", "", "".join(c for c in text if not unicodedata.combining(c)))


def _long_rows(v2: bool = False, n: int = 6) -> list[dict]:
    """Synthetic SQuAD rows with filler around the context, so a 64-token window is too short."""
    rows = synthetic_rows("squad_v2" if v2 else "squad", "validation", n)
    filler = "Nothing else of note happened in the small town that quiet year. "
    out = []
    for i, row in enumerate(rows):
        before, after = filler * (1 + i % 3), filler * (3 - i % 3)
        answers = {"text": list(row["answers"]["text"]),
                   "answer_start": [s + len(before) for s in row["answers"]["answer_start"]]}
        out.append({**row, "context": before + row["context"] + " " + after, "answers": answers})
    return out


def _check_gold_spans(task, rows, encoded: Encoded, tokenizer) -> tuple[int, int]:
    """Every gold (start, end) is the minimal token span covering the answer characters and
    decodes to that text. Returns (windows holding an answer, of which exactly on token
    boundaries)."""
    with_answer = exact = 0
    for feature, owner, offsets in zip(encoded.features, encoded.extra["owners"],
                                       encoded.extra["offsets"], strict=True):
        row = rows[owner]
        start, end = feature["start_positions"], feature["end_positions"]
        spans = [o for o in offsets if o is not None]
        if start == 0:
            assert end == 0
            if row["answers"]["text"]:  # the answer is not inside this window
                a = row["answers"]["answer_start"][0]
                b = a + len(row["answers"]["text"][0])
                assert not (spans[0][0] <= a and spans[-1][1] >= b)
            continue
        with_answer += 1
        assert 0 < start <= end < len(feature["input_ids"])
        assert offsets[start] is not None and offsets[end] is not None
        answer = row["answers"]["text"][0]
        a = row["answers"]["answer_start"][0]
        b = a + len(answer)
        context = row["context"]
        assert context[a:b] == answer
        # minimal covering span: the start token is the first one ending after the answer
        # starts, the end token the last one starting before it ends
        assert offsets[start][1] > a and (offsets[start - 1] is None or offsets[start - 1][1] <= a)
        assert offsets[end][0] < b and (offsets[end + 1] is None or offsets[end + 1][0] >= b)
        covered = context[offsets[start][0]:offsets[end][1]]
        exact += covered == answer
        if covered != answer:  # only when the answer starts or ends inside a word ("gold")
            assert answer in covered and not re.search(r"\s", covered), (answer, covered)
        decoded = tokenizer.decode(feature["input_ids"][start:end + 1])
        if tokenizer.unk_token not in decoded:
            assert _plain(decoded) == _plain(covered), (decoded, covered)
    return with_answer, exact


@pytest.mark.parametrize("name", ["squad", "squad_v2"])
def test_gold_positions_point_at_answer_tokens(name):
    task = get_task(name)
    tokenizer = load_backbone(model_cfg("tiny_bert")).tokenizer
    rows = _long_rows(v2=name == "squad_v2", n=9)
    encoded = task.encode(rows, tokenizer, 64, train=True)
    assert len(encoded.features) >= 2 * len(rows)  # several windows per question
    answered = {i for i, r in enumerate(rows) if r["answers"]["text"]}
    with_answer, exact = _check_gold_spans(task, rows, encoded, tokenizer)
    assert with_answer == exact >= len(answered)
    owners_with_answer = {o for f, o in zip(encoded.features, encoded.extra["owners"], strict=True)
                          if f["start_positions"] > 0}
    assert owners_with_answer == answered
    if name == "squad_v2":
        assert 0 < len(answered) < len(rows)


def test_gold_positions_on_real_squad(data_dir):
    task = get_task("squad")
    tokenizer = load_backbone(model_cfg("tiny_bert")).tokenizer
    rows = task.read_local(str(data_dir / task.local_files["validation"]))[:300]
    for max_length in (384, 96):
        encoded = task.encode(rows, tokenizer, max_length, train=True)
        with_answer, exact = _check_gold_spans(task, rows, encoded, tokenizer)
        assert with_answer >= len(rows)
        assert exact >= 0.9 * with_answer


def _peaked_logits(encoded: Encoded, width: int | None = None) -> np.ndarray:
    width = width or max(len(f["input_ids"]) for f in encoded.features)
    logits = np.zeros((len(encoded.features), width, 2), dtype=np.float32)
    logits[:, :, :] = np.random.default_rng(0).normal(0, 0.1, logits.shape)
    for f, feature in enumerate(encoded.features):
        logits[f, len(feature["input_ids"]):] = -1e4  # padding as predict() pads
        logits[f, feature["start_positions"], 0] = 10.0
        logits[f, feature["end_positions"], 1] = 10.0
    return logits


@pytest.mark.parametrize("name", ["squad", "squad_v2"])
@pytest.mark.parametrize("long", [False, True])
def test_predictions_recover_gold_from_peaked_logits(name, long):
    task = get_task(name)
    tokenizer = load_backbone(model_cfg("tiny_bert")).tokenizer
    rows = _long_rows(name == "squad_v2", 9) if long else synthetic_rows(name, "validation", 12)
    encoded = task.encode(rows, tokenizer, 64 if long else 128, train=False)
    assert (len(encoded.features) > len(rows)) == long
    predictions = task.predictions(_peaked_logits(encoded), encoded)
    assert set(predictions) == {r["id"] for r in rows}
    for row in rows:
        gold = row["answers"]["text"][0] if row["answers"]["text"] else ""
        assert predictions[row["id"]] == gold
    if name == "squad_v2":
        assert "" in predictions.values()
    scores = task.score(_peaked_logits(encoded), encoded)
    assert scores["em"] == scores["f1"] == 100.0


@pytest.mark.parametrize(("method", "options"), INPUT_PROMPTS[::2], ids=lambda v: str(v))
def test_span_logits_in_original_coordinates(method, options):
    task = get_task("squad")
    model = _prompted(method, "tiny_bert", task.head, 2, **options)
    rows = synthetic_rows("squad", "validation", 5)
    encoded = task.encode(rows, model.info.tokenizer, 128, train=False)
    batch = FeatureCollator(model.info.tokenizer.pad_token_id)(encoded.features)
    assert (batch["attention_mask"] == 0).any()
    out, hidden = _capture(model, batch)
    b, seq = batch["input_ids"].shape
    assert out["logits"].shape == (b, seq, 2)
    positions = _expected_positions(method, options, batch["prompt_anchors"], seq)
    _check_layout(model, batch, positions)
    with torch.no_grad():
        expected = model.head.qa_outputs(hidden[torch.arange(b).unsqueeze(1), positions])
    real = batch["attention_mask"].bool()
    assert torch.allclose(out["logits"][real], expected[real], atol=1e-6)
    assert (out["logits"][~real] == torch.finfo(torch.float32).min).all()
    # end to end: peaked *model-shaped* logits at the gold positions recover the answers
    logits = out["logits"].numpy().copy()
    for f, feature in enumerate(encoded.features):
        logits[f, feature["start_positions"], 0] = 1e3
        logits[f, feature["end_positions"], 1] = 1e3
    predictions = task.predictions(logits, encoded)
    assert predictions == {r["id"]: r["answers"]["text"][0] for r in rows}


# ---------------------------------------------------------------- (d) pooled position

@pytest.mark.parametrize(("method", "options"), INPUT_PROMPTS, ids=lambda v: str(v))
def test_classification_pools_original_cls(method, options):
    task = get_task("rte")
    model = _prompted(method, "tiny_bert", task.head, task.num_labels, **options)
    rows = synthetic_rows("rte", "validation", 4)
    batch = FeatureCollator(model.info.tokenizer.pad_token_id)(
        task.encode(rows, model.info.tokenizer, 64, train=False).features)
    out, hidden = _capture(model, batch)
    pooler = model.backbone.pooler
    positions = _expected_positions(method, options, batch["prompt_anchors"], batch["input_ids"].shape[1])
    _check_layout(model, batch, positions)
    cls_at = positions[:, 0]  # where the original [CLS] really sits
    with torch.no_grad():
        cls = hidden[torch.arange(4), cls_at].unsqueeze(1)
        expected = model.head.classifier(pooler(cls))
        first = model.head.classifier(pooler(hidden[:, :1]))
    assert torch.allclose(out["logits"], expected, atol=1e-6)
    if options.get("template") is None:
        assert not torch.allclose(out["logits"], first, atol=1e-4)  # not the first virtual token


def test_decoder_pools_last_real_token():
    """Decoders pool the last real token of the original sequence, not the last position."""
    task = get_task("cb")
    options = {"length": 4, "template": [1, 2, 1]}
    model = _prompted("ptuning_v1", "tiny_llama", task.head, task.num_labels, **options)
    rows = synthetic_rows("cb", "validation", 6)
    batch = FeatureCollator(model.info.tokenizer.pad_token_id)(
        task.encode(rows, model.info.tokenizer, 64, train=False).features)
    assert (batch["attention_mask"] == 0).any()
    out, hidden = _capture(model, batch)
    b, seq = batch["input_ids"].shape
    last = batch["attention_mask"].sum(1) - 1
    positions = _expected_positions("ptuning_v1", options, batch["prompt_anchors"], seq)
    _check_layout(model, batch, positions)
    with torch.no_grad():
        expected = model.head.classifier(hidden[torch.arange(b), positions[torch.arange(b), last]])
    assert torch.allclose(out["logits"], expected, atol=1e-6)
