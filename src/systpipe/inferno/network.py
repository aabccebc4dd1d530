"""The MLP, its training (INFERNO loss or cross-entropy) and its pickle-free model file.

A model file is one ``.npz`` (``numpy.load(allow_pickle=False)``): the weight matrices and
biases as float32 arrays (as trained) (``w0, b0, w1, b1, ...``, layer ``k`` computes ``x @ w_k.T + b_k``,
ReLU between layers), the input standardisation (``x_mean``, ``x_scale``) and ``meta``, the
JSON of the architecture and training settings. Scoring needs numpy only; torch (optional
extra ``nn``) is imported inside the training functions.

Determinism: :func:`torch_session` seeds torch, turns on ``torch.use_deterministic_algorithms``
and sets the thread count for the duration of a fit, restoring the previous state after it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelError
from .fisher import BinnedSpec, inferno_loss

log = logging.getLogger(__name__)

FORMAT = "systpipe-inferno-mlp/1"


@dataclass
class Network:
    """A trained MLP in numpy: ``weights[k]`` (out x in), ``biases[k]``, input standardisation.

    ``meta`` holds ``kind`` (``inferno`` or ``bce``), ``temperature``, ``bin_purity`` (INFERNO:
    ``s_k / (s_k + b_k)`` of every output bin on the training sample, used by :meth:`score`)
    and the training settings.
    """

    weights: list[np.ndarray]
    biases: list[np.ndarray]
    x_mean: np.ndarray
    x_scale: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n_outputs(self) -> int:
        return int(self.weights[-1].shape[0])

    def logits(self, x: np.ndarray) -> np.ndarray:
        """Output-layer values (float64) of every row of ``x``."""
        h = (np.asarray(x, dtype=np.float64) - self.x_mean) / self.x_scale
        for k, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = h @ w.T.astype(np.float64) + b.astype(np.float64)
            if k < len(self.weights) - 1:
                h = np.maximum(h, 0.0)
        return h

    def soft_bins(self, x: np.ndarray, temperature: float | None = None) -> np.ndarray:
        """``softmax(logits / T)``, the soft bin memberships (T: the training temperature)."""
        t = float(self.meta.get("temperature", 1.0) if temperature is None else temperature)
        z = self.logits(x) / t
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def bins(self, x: np.ndarray) -> np.ndarray:
        """Hard bin (argmax) of every row."""
        return np.argmax(self.logits(x), axis=1)

    def score(self, x: np.ndarray) -> np.ndarray:
        """A signal-like score in [0, 1]: the signal probability (BCE) or the soft-bin
        average of the bins' training signal purity (INFERNO), so working points and
        binnings can be scanned on it like on any classifier output."""
        if self.meta.get("kind") == "bce":
            return self.soft_bins(x, 1.0)[:, 1]
        purity = np.asarray(self.meta["bin_purity"], dtype=float)
        return self.soft_bins(x) @ purity


# ---------------------------------------------------------------------------------- files


def save_network(net: Network, path: str | os.PathLike[str]) -> Path:
    """Write ``net`` to ``path`` (``.npz``) atomically, without pickle."""
    path = Path(path)
    arrays: dict[str, np.ndarray] = {"x_mean": net.x_mean, "x_scale": net.x_scale}
    for k, (w, b) in enumerate(zip(net.weights, net.biases, strict=True)):
        arrays[f"w{k}"], arrays[f"b{k}"] = np.asarray(w), np.asarray(b)
    meta = {"format": FORMAT, "n_layers": len(net.weights), **net.meta}
    arrays["meta"] = np.array(json.dumps(meta, sort_keys=True))
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".npz")
    os.close(fd)
    try:
        np.savez(tmp, allow_pickle=False, **arrays)  # uncompressed: small model, fast
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def load_network(path: str | os.PathLike[str]) -> Network:
    """Read a file written by :func:`save_network` (``allow_pickle=False``).

    Raises:
        ModelError: missing file, another format, or missing arrays (named).
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: not a readable .npz model file: {exc}") from exc
    if "meta" not in data:
        raise ModelError(f"{path}: no 'meta' entry; not a systpipe INFERNO model")
    meta = json.loads(str(data["meta"]))
    if meta.get("format") != FORMAT:
        raise ModelError(f"{path}: format {meta.get('format')!r}, expected {FORMAT!r}")
    n = int(meta.pop("n_layers"))
    meta.pop("format")
    needed = ("x_mean", "x_scale", *(f"{p}{i}" for i in range(n) for p in "wb"))
    missing = [k for k in needed if k not in data]
    if missing:
        raise ModelError(f"{path}: missing arrays {missing}")
    return Network(
        weights=[data[f"w{i}"] for i in range(n)],
        biases=[data[f"b{i}"] for i in range(n)],
        x_mean=data["x_mean"],
        x_scale=data["x_scale"],
        meta=meta,
    )


# ---------------------------------------------------------------------------------- torch


@contextlib.contextmanager
def torch_session(seed: int, threads: int) -> Iterator[Any]:
    """Seeded, deterministic torch with ``threads`` threads; the previous settings come back."""
    try:
        import torch
    except ImportError as exc:  # the optional extra is missing
        raise ModelError(
            "inference-aware training needs PyTorch: pip install 'systpipe[nn]' (torch==2.13.0)"
        ) from exc
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ModelError(f"threads must be a positive integer, got {threads!r}")
    old_threads, old_det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(seed)
    try:
        yield torch
    finally:
        torch.set_num_threads(old_threads)
        torch.use_deterministic_algorithms(old_det)


def _build(torch: Any, n_in: int, hidden: tuple[int, ...], n_out: int, temperature: float) -> Any:
    layers: list[Any] = []
    width = n_in
    for h in hidden:
        layers += [torch.nn.Linear(width, h), torch.nn.ReLU()]
        width = h
    layers.append(torch.nn.Linear(width, n_out))
    net = torch.nn.Sequential(*layers)  # float32: twice as fast; the Fisher matrix is float64
    for m in net:
        if isinstance(m, torch.nn.Linear):  # He initialisation, as the paper's Keras model
            torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            torch.nn.init.zeros_(m.bias)
    with torch.no_grad():
        # Output layer scaled by T: softmax(f / T) starts as soft as an unscaled net at T = 1.
        # Unscaled, f / 0.1 saturates the softmax at the start and the training stalls in a
        # poor optimum (measured on benchmark 4: sigma_s 21.3 unscaled vs 18.2 scaled).
        net[-1].weight.mul_(temperature)
    return net


def _to_network(net: Any, mean: np.ndarray, scale: np.ndarray, meta: dict[str, Any]) -> Network:
    lin = [m for m in net if hasattr(m, "weight")]
    return Network(
        weights=[m.weight.detach().numpy().copy() for m in lin],
        biases=[m.bias.detach().numpy().copy() for m in lin],
        x_mean=mean,
        x_scale=scale,
        meta=meta,
    )


def _standardisation(x_sig: np.ndarray, x_bkg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.vstack([x_sig, x_bkg])
    scale = x.std(axis=0)
    return x.mean(axis=0), np.where(scale > 0, scale, 1.0)


def _check(x_sig: np.ndarray, x_bkg: np.ndarray, batch: int) -> None:
    if x_sig.ndim != 2 or x_bkg.ndim != 2 or x_sig.shape[1] != x_bkg.shape[1]:
        raise ModelError(
            f"inputs: shapes {x_sig.shape} and {x_bkg.shape} are not events x features"
        )
    if min(len(x_sig), len(x_bkg)) < max(1, batch // 2):
        raise ModelError(
            f"inputs: {len(x_sig)} signal / {len(x_bkg)} background events, fewer than half a "
            f"batch ({batch // 2})"
        )


def _batches(torch: Any, n_s: int, n_b: int, half: int, gen: Any) -> Iterator[tuple[Any, Any]]:
    """Balanced batches: ``half`` signal and ``half`` background events (as the paper)."""
    ps, pb = torch.randperm(n_s, generator=gen), torch.randperm(n_b, generator=gen)
    for k in range(min(n_s, n_b) // half):
        yield ps[k * half : (k + 1) * half], pb[k * half : (k + 1) * half]


def train_inferno(
    x_sig: np.ndarray,
    x_bkg: np.ndarray,
    spec: BinnedSpec,
    *,
    n_bins: int = 10,
    hidden: tuple[int, ...] = (100, 100),
    temperature: float = 0.1,
    epochs: int = 50,
    batch_size: int = 1000,
    lr: float = 1e-3,
    seed: int = 0,
    threads: int = 1,
    w_sig: np.ndarray | None = None,
    w_bkg: np.ndarray | None = None,
    valid: tuple[np.ndarray, np.ndarray] | None = None,
) -> Network:
    """Train the INFERNO network: Adam on the expected variance of mu (:func:`inferno_loss`).

    The nuisances' shifts are applied to the raw inputs inside the loss, before the network's
    standardisation. With ``valid`` = (signal, background) the weights of the epoch with the
    lowest validation loss are kept (as a hold-out check against over-fitting).
    """
    _check(x_sig, x_bkg, batch_size)
    mean, scale = _standardisation(x_sig, x_bkg)
    with torch_session(seed, threads) as torch:
        core = _build(torch, x_sig.shape[1], tuple(hidden), n_bins, temperature)
        m_t, s_t = torch.tensor(mean, dtype=torch.float32), torch.tensor(scale, dtype=torch.float32)

        def net(x: Any) -> Any:
            return core((x - m_t) / s_t)

        xs, xb = torch.tensor(x_sig, dtype=torch.float32), torch.tensor(x_bkg, dtype=torch.float32)
        ws = None if w_sig is None else torch.tensor(w_sig, dtype=torch.float32)
        wb = None if w_bkg is None else torch.tensor(w_bkg, dtype=torch.float32)
        opt = torch.optim.Adam(core.parameters(), lr=lr)
        steps = epochs * (min(len(xs), len(xb)) // (batch_size // 2))
        # Cosine decay to 0: the batch estimate of the Fisher information is noisy, a
        # decaying step lets the last epochs settle instead of jumping between solutions.
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, steps))
        gen = torch.Generator().manual_seed(seed)
        best: tuple[float, Any] | None = None
        history: list[float] = []
        began = time.perf_counter()
        for epoch in range(epochs):
            for i_s, i_b in _batches(torch, len(xs), len(xb), batch_size // 2, gen):
                opt.zero_grad()
                loss = inferno_loss(
                    net, xs[i_s], xb[i_b], spec, temperature,
                    None if ws is None else ws[i_s], None if wb is None else wb[i_b],
                )  # fmt: skip
                loss.backward()
                opt.step()
                sched.step()
            if valid is not None:
                vs, vb = (torch.tensor(v, dtype=torch.float32) for v in valid)
                v_loss = float(inferno_loss(net, vs, vb, spec, temperature).detach())
                history.append(v_loss)
                if best is None or v_loss < best[0]:
                    best = (v_loss, {k: v.clone() for k, v in core.state_dict().items()})
            log.debug("inferno epoch %d/%d %.1f s", epoch + 1, epochs, time.perf_counter() - began)
        if best is not None:
            core.load_state_dict(best[1])
        meta: dict[str, Any] = {
            "kind": "inferno",
            "temperature": temperature,
            "hidden": list(hidden),
            "n_bins": n_bins,
            "spec": spec.to_dict(),
            "train": {"epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed},
            "valid_loss": history,
        }
    out = _to_network(core, mean, scale, meta)
    out.meta["bin_purity"] = _bin_purity(out, x_sig, x_bkg, spec, w_sig, w_bkg)
    return out


def _bin_purity(
    net: Network,
    x_sig: np.ndarray,
    x_bkg: np.ndarray,
    spec: BinnedSpec,
    w_sig: np.ndarray | None,
    w_bkg: np.ndarray | None,
) -> list[float]:
    n = net.n_outputs
    hs = np.bincount(net.bins(x_sig), weights=w_sig, minlength=n)
    hb = np.bincount(net.bins(x_bkg), weights=w_bkg, minlength=n)
    s = spec.signal * hs / hs.sum()
    b = spec.background * hb / hb.sum()
    tot = s + b
    # An empty bin gets the overall purity: no event lands there on the training sample.
    return [float(v) for v in np.where(tot > 0, s / np.where(tot > 0, tot, 1), s.sum() / tot.sum())]


def train_bce(
    x_sig: np.ndarray,
    x_bkg: np.ndarray,
    *,
    hidden: tuple[int, ...] = (100, 100),
    epochs: int = 20,
    batch_size: int = 256,
    lr: float = 1e-3,
    seed: int = 0,
    threads: int = 1,
) -> Network:
    """The cross-entropy baseline: the same MLP with two softmax outputs (signal = column 1),
    balanced batches, Adam."""
    _check(x_sig, x_bkg, batch_size)
    mean, scale = _standardisation(x_sig, x_bkg)
    with torch_session(seed, threads) as torch:
        core = _build(torch, x_sig.shape[1], tuple(hidden), 2, 1.0)
        xs = torch.tensor((x_sig - mean) / scale, dtype=torch.float32)
        xb = torch.tensor((x_bkg - mean) / scale, dtype=torch.float32)
        half = batch_size // 2
        target = torch.cat(
            [torch.ones(half, dtype=torch.long), torch.zeros(half, dtype=torch.long)]
        )
        opt = torch.optim.Adam(core.parameters(), lr=lr)
        gen = torch.Generator().manual_seed(seed)
        lossf = torch.nn.CrossEntropyLoss()
        for _ in range(epochs):
            for i_s, i_b in _batches(torch, len(xs), len(xb), half, gen):
                opt.zero_grad()
                loss = lossf(core(torch.cat([xs[i_s], xb[i_b]])), target)
                loss.backward()
                opt.step()
        meta = {
            "kind": "bce",
            "temperature": 1.0,
            "hidden": list(hidden),
            "train": {"epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed},
        }
        return _to_network(core, mean, scale, meta)


__all__ = [
    "FORMAT",
    "Network",
    "load_network",
    "save_network",
    "torch_session",
    "train_bce",
    "train_inferno",
]
