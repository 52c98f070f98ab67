"""Small learned decisions, shipped as JSON parameter files in ``assistant/data/`` and applied with numpy.

A :class:`LogisticModel` is a standardised logistic regression over named features: the names
are stored with the weights, so a model can only be applied to the features it was fitted on.
``assistant/evaluation/learning.py`` fits them on the dev set with cross-validation and writes
the files; nothing here fits anything.

>>> model = load_model("sentence_model.json")
>>> model.probability({"sentence_terms": 0.8, "hit_rank_prior": 1.0, ...})
0.73

A :class:`QuestionPrior` reads the encoded question alone: how likely a question of that kind is
to be answered by the corpus it was fitted on. It holds the encoder id and the corpus files'
sha256 it was fitted with, and applies to an index of that corpus and encoder only.

>>> prior = load_model("question_prior.json")
>>> prior.applies_to(retriever.model_id, retriever.manifest["files"].values())
True
>>> prior.logit(result.query_vector)
1.8

A :class:`QueryAdapter` is a low-rank linear map added to the encoded question before the dense
search, ``q + (q @ down) @ up``, normalised: fitted so the hybrid fusion ranks the clauses that
answered dev questions higher. Like the prior it learned this corpus, and applies only to it.

>>> adapter = load_model("query_adapter.json")
>>> adapter.apply(query_vector)   # what the dense search is given
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from assistant.lexicon import DATA_DIR


@dataclass(frozen=True)
class LogisticModel:
    features: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    threshold: float = 0.5  # the decision threshold chosen on dev (what "positive" means for the caller)
    info: dict[str, Any] = field(default_factory=dict, compare=False)  # how it was fitted, its CV scores

    def __post_init__(self):
        n = len(self.features)
        if not n or not (len(self.mean) == len(self.scale) == len(self.coef) == n):
            raise ValueError("a LogisticModel needs one mean, scale and coefficient per feature")
        values = [*self.mean, *self.scale, *self.coef, self.intercept, self.threshold]
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
            raise ValueError("a LogisticModel's parameters must be finite numbers")
        if any(s <= 0 for s in self.scale):
            raise ValueError("a LogisticModel's scales must be positive")

    def vector(self, values: dict[str, float]) -> np.ndarray:
        missing = [name for name in self.features if name not in values]
        if missing:
            raise KeyError(f"features missing for the model: {missing}")
        return np.array([float(values[name]) for name in self.features], dtype=np.float64)

    def probabilities(self, rows: np.ndarray) -> np.ndarray:
        """P(positive) for each row of a (n, features) matrix."""
        z = ((np.asarray(rows, dtype=np.float64) - np.array(self.mean)) / np.array(self.scale)) @ np.array(self.coef)
        return 1.0 / (1.0 + np.exp(-(z + self.intercept)))

    def probability(self, values: dict[str, float]) -> float:
        return float(self.probabilities(self.vector(values)[None, :])[0])

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "logistic",
            "features": list(self.features),
            "mean": list(self.mean),
            "scale": list(self.scale),
            "coef": list(self.coef),
            "intercept": self.intercept,
            "threshold": self.threshold,
            "info": self.info,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LogisticModel:
        if data.get("kind") != "logistic":
            raise ValueError(f"not a logistic model: kind {data.get('kind')!r}")
        return cls(tuple(data["features"]), tuple(data["mean"]), tuple(data["scale"]), tuple(data["coef"]),
                   float(data["intercept"]), float(data.get("threshold", 0.5)), dict(data.get("info") or {}))


@dataclass(frozen=True)
class QuestionPrior:
    """A linear model over the encoder's question vector: the log-odds that a question like this
    one is answered by the corpus it was fitted on (「…补贴每辆车多少钱」 often is not; 「…能申请吗」
    often is). It says nothing about another corpus, so it applies only to an index built from the
    same files (``corpus``: their sha256) with the same encoder (``model_id``)."""

    coef: tuple[float, ...]
    intercept: float
    model_id: str
    corpus: tuple[str, ...]  # sha256 of each corpus file it was fitted on, sorted
    info: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self):
        if not self.coef or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in (*self.coef, self.intercept)):
            raise ValueError("a QuestionPrior needs finite coefficients, one per vector dimension")
        if not self.model_id or not self.corpus:
            raise ValueError("a QuestionPrior must name the encoder and the corpus it was fitted on")

    @property
    def dimension(self) -> int:
        return len(self.coef)

    def applies_to(self, model_id: str, corpus_sha256s) -> bool:
        return _fitted_on(self, model_id, corpus_sha256s)

    def logit(self, vector) -> float:
        vector = np.asarray(vector, dtype=np.float64).reshape(-1)
        if vector.shape[0] != self.dimension:
            raise ValueError(f"a {vector.shape[0]}-d vector for a {self.dimension}-d QuestionPrior")
        return float(vector @ np.asarray(self.coef) + self.intercept)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "question_prior", "model_id": self.model_id, "corpus": list(self.corpus),
                "intercept": self.intercept, "coef": list(self.coef), "info": self.info}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QuestionPrior:
        if data.get("kind") != "question_prior":
            raise ValueError(f"not a question prior: kind {data.get('kind')!r}")
        return cls(tuple(map(float, data["coef"])), float(data["intercept"]), str(data["model_id"]),
                   tuple(sorted(map(str, data["corpus"]))), dict(data.get("info") or {}))


@dataclass(frozen=True)
class QueryAdapter:
    """``q -> normalise(q + (q @ down) @ up)``: a rank-r correction of the encoded question, fitted on
    dev questions so the hybrid fusion puts the clauses that answer them higher; a search that uses
    it weighs the cosine ``dense_weight`` in the fusion, the weight it was fitted for. What it corrects
    is how people ask about *these* notices (「税交不上能拖几个月」 -> 延期缴纳税款), so, like
    :class:`QuestionPrior`, it applies only to an index of the same files and encoder."""

    down: tuple[tuple[float, ...], ...]  # dimension x rank
    up: tuple[tuple[float, ...], ...]  # rank x dimension
    model_id: str
    corpus: tuple[str, ...]  # sha256 of each corpus file it was fitted on, sorted
    dense_weight: float  # the hybrid fusion's dense weight it was fitted for (searches using it take it)
    info: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self):
        if not isinstance(self.dense_weight, (int, float)) or not math.isfinite(self.dense_weight) or self.dense_weight <= 0:
            raise ValueError(f"a QueryAdapter's dense_weight must be a positive number, not {self.dense_weight!r}")
        down, up = np.asarray(self.down, dtype=np.float64), np.asarray(self.up, dtype=np.float64)
        if (down.ndim != 2 or up.ndim != 2 or down.shape[1] != up.shape[0] or down.shape[0] != up.shape[1]
                or not down.size or not np.isfinite(down).all() or not np.isfinite(up).all()):
            raise ValueError("a QueryAdapter needs finite matrices down (d x r) and up (r x d)")
        if not self.model_id or not self.corpus:
            raise ValueError("a QueryAdapter must name the encoder and the corpus it was fitted on")
        object.__setattr__(self, "_map", (down @ up).astype(np.float32))  # d x d, made once

    @property
    def dimension(self) -> int:
        return len(self.down)

    def applies_to(self, model_id: str, corpus_sha256s) -> bool:
        return _fitted_on(self, model_id, corpus_sha256s)

    def apply(self, vectors: np.ndarray) -> np.ndarray:
        """The adapted, unit-length vector(s): one (d,) vector or a (n, d) matrix."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.shape[-1] != self.dimension:
            raise ValueError(f"a {vectors.shape[-1]}-d vector for a {self.dimension}-d QueryAdapter")
        adapted = vectors + vectors @ self._map
        norms = np.linalg.norm(adapted, axis=-1, keepdims=True)
        return (adapted / np.where(norms > 0, norms, 1.0)).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "query_adapter", "model_id": self.model_id, "corpus": list(self.corpus),
                "dense_weight": self.dense_weight, "down": [list(row) for row in self.down], "up": [list(row) for row in self.up], "info": self.info}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QueryAdapter:
        if data.get("kind") != "query_adapter":
            raise ValueError(f"not a query adapter: kind {data.get('kind')!r}")
        return cls(tuple(tuple(map(float, row)) for row in data["down"]), tuple(tuple(map(float, row)) for row in data["up"]),
                   str(data["model_id"]), tuple(sorted(map(str, data["corpus"]))), float(data["dense_weight"]),
                   dict(data.get("info") or {}))


def _fitted_on(model, model_id: str, corpus_sha256s) -> bool:
    """Fitted with this encoder on exactly these corpus files (in any order, under any names)."""
    return model_id == model.model_id and tuple(sorted(corpus_sha256s)) == model.corpus


QUERY_ADAPTER_FILE = "query_adapter.json"


def applicable_model(name: str, kind: type, manifest: dict | None):
    """The shipped model ``name`` if it is a ``kind`` fitted with this index's encoder on this
    index's corpus files (its manifest's ``model_id`` and ``files``), else None."""
    model = load_model(name)
    manifest = manifest or {}
    files = manifest.get("files") or {}
    if not isinstance(model, kind) or not model.applies_to(manifest.get("model_id"), files.values()):
        return None
    return model


MODEL_KINDS = {"logistic": LogisticModel, "question_prior": QuestionPrior, "query_adapter": QueryAdapter}
LearnedModel = LogisticModel | QuestionPrior | QueryAdapter


def save_model(model: LearnedModel, name: str, directory: Path = DATA_DIR) -> Path:
    path = Path(directory) / name
    path.write_text(json.dumps(model.to_dict(), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return path


@lru_cache(maxsize=None)
def load_model(name: str, directory: Path = DATA_DIR) -> LearnedModel | None:
    """The model in ``directory/name`` (of the kind its file names), loaded once; None when the
    file does not exist."""
    path = Path(directory) / name
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        kind = data.get("kind") if isinstance(data, dict) else None
        if kind not in MODEL_KINDS:
            raise ValueError(f"unknown model kind {kind!r}")
        return MODEL_KINDS[kind].from_dict(data)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path} is not a valid model file ({error}); refit it with "
                         f"python -m assistant.evaluation.learning") from None
