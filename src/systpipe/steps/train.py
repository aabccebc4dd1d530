"""Step of ``workflow/rules/train.smk``: train one classifier."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .. import io
from ..errors import ModelError
from ..partitions import read_sample
from ..provenance import derive_seed
from ._registry import StepContext, step

if TYPE_CHECKING:
    from ..systematics import VaryContext


@step(
    "train",
    # systematics, input and files: only systematics-aware classifiers read them (a plain
    # classifier's rule blanks them, so a systematic's change does not retrain it)
    uses=("classifiers", "training", "features", "systematics", "input", "files"),
    seeded=True,
    # the thread count reaches the step as the rule's threads; models do not depend on it
    ignores=("training.threads",),
    help="train one classifier (set: clf; in: train, test; out: model, info)",
)
def train(
    ctx: StepContext,
    *,
    clf: str,
    train: str | Path,
    test: str | Path,
    model: str | Path,
    info: str | Path,
) -> None:
    """Train classifier ``clf``, save it in its library's native format and record its metadata."""
    from ..augment import parse_aware, with_alphas
    from ..metrics import evaluate
    from ..models import save_model
    from ..train import train_classifier, write_model_info

    specs = [c for c in ctx.settings["classifiers"] if c["name"] == clf]
    if not specs:
        raise ModelError(f"classifier {clf!r} is not in 'classifiers' of the config")
    spec = dict(specs[0])
    training = ctx.settings["training"]
    features = list(ctx.settings["features"])
    max_events = spec.get("max_train_events", training["max_train_events"])
    seed = derive_seed(ctx.seed, "train", clf)
    # the seeded subsample train_classifier would draw from the whole file, read chunk by
    # chunk: memory is the subsample's however many events the file holds
    tr, n_input = read_sample(train, max_events, seed=seed)
    aware_entry = spec.get("systematics_aware")
    systematics = ctx.settings["systematics"] if aware_entry is not None else []
    aware = parse_aware(aware_entry, systematics, key=f"classifiers[{clf!r}].systematics_aware")
    fitted, meta = train_classifier(
        tr,
        features=features,
        name=clf,
        type_=spec["type"],
        params=spec.get("params", {}),
        weighting=training["weighting"],
        negative_weights=training["negative_weights"],
        max_train_events=None,
        n_input=n_input,
        threads=ctx.threads,
        seed=seed,
        source=str(train),
        aware=aware,
        systematics=systematics,
        vary_context=_vary_context(ctx, features) if aware is not None else None,
    )
    te = io.read_table(test, required=("label", "weight", *features))
    te, alpha_cols = with_alphas(te, aware)
    metrics = evaluate(fitted, te, features=[*features, *alpha_cols], threads=ctx.threads)
    written = save_model(fitted, Path(model).with_suffix(""), spec["type"])
    if Path(written) != Path(model):
        raise ModelError(f"model written to {written}, expected {model}")
    write_model_info(info, meta, metrics)


def _vary_context(ctx: StepContext, features: list[str]) -> VaryContext:
    """The vary step's context (same smearing seed, same recomputation of derived columns)."""
    from ..systematics import VaryContext
    from ..variations import Recompute

    files = ctx.settings["files"] if ctx.settings["input"]["source"] == "files" else None
    return VaryContext(
        seed=derive_seed(ctx.seed, "smear"),
        features=tuple(features),
        recompute=Recompute.from_files(files),
    )
