"""The one training loop every torch model shares.

A torch model subclasses :class:`TorchRecommender` (any score function) or :class:`TorchFactorModel`
(inner-product scoring) and implements three hooks:

- ``_build(user_items, features) -> nn.Module``: create parameters (and precomputed graphs/buffers);
- ``_loss(module, batch) -> scalar tensor``: ``batch`` is a :class:`Batch` of ``users``, ``pos``, ``neg``
  index tensors on the training device;
- ``_final_embeddings(module) -> (user_emb, item_emb)`` numpy (factor models), or more generally
  ``_export_state(module) -> {attr_name_ending_in_underscore: ndarray}`` for models that score otherwise.

The trainer handles seeding, device, thread count, vectorised negative sampling per epoch, shuffled
minibatches, Adam, early stopping on the shared evaluator (best-valid-epoch state kept; the evaluator comes in
as the ``fit(validate=...)`` callback, so models never import the evaluation layer), progress bars and timing.
After ``fit`` the torch module is dropped: scoring uses numpy arrays only; its parameters at the kept epoch
are kept as numpy arrays too (``warm_*_``), so that ``fit(warm_start=...)`` can start a later fit from them.

Torch is imported lazily inside methods so that importing a model module (e.g. for ``fusionrec models``) stays
cheap.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import scipy.sparse as sp

from fusionrec import distributed
from fusionrec.data.dataset import Features
from fusionrec.data.sampling import NegativeSampler, minibatches, positive_pairs
from fusionrec.errors import ConfigError
from fusionrec.measures import matrix_rmse
from fusionrec.models.base import FactorModel, Recommender, WarmStart

if TYPE_CHECKING:
    import torch
    from torch import nn

log = logging.getLogger("fusionrec")

# The one source of the trainer's shared settings: a model that exposes one of these as a constructor
# parameter takes its default from here (``random_state: int = TRAINER_DEFAULTS["random_state"]``;
# tests/models/test_torch_trainer.py checks), one that does not gets it from ``_hp``.
TRAINER_DEFAULTS: dict[str, Any] = {
    "random_state": 0,
    "device": "cpu",
    "eval_every": 1,
    "valid_metric": "recall@20",
    "modality_dropout": 0.0,
    "feature_noise": 0.0,
    "n_neg": 1,
}
# Settings every torch model chooses itself (its constructor's defaults were picked on validation).
MODEL_TRAINER_PARAMS = ("epochs", "learning_rate", "batch_size", "reg", "patience")

# Spread of the popularity prior for item biases (see popularity_prior). At the raw log-degree scale (std
# ~0.8 on the benchmark) VBPR and the attention network lost 3-5 % N@20 on the dense benchmark; at 0.25 they
# kept their benchmark numbers and still start from most-popular's ranking on sparse data.
PRIOR_STD = 0.25


class Batch(NamedTuple):
    """One minibatch of training triples as index tensors on the training device.

    ``neg`` has shape ``(B,)`` (one negative per positive) or ``(B, n_neg)``.
    """

    users: torch.Tensor
    pos: torch.Tensor
    neg: torch.Tensor


def resolve_device(device: str | None) -> str:
    """``"auto"`` → ``"cuda"`` when available else ``"cpu"``; other values are checked."""
    import torch

    device = (device or "cpu").lower()
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but CUDA is not available; use device=cpu or auto")
    if not (device == "cpu" or device.startswith("cuda") or device == "mps"):
        raise ConfigError(f"unknown device {device!r}; use cpu, cuda, cuda:N or auto")
    return device


def default_threads() -> int:
    """Intra-op threads for training: ``FUSIONREC_THREADS`` if set, else half the cores, at most 4.

    Half, because these models are small: on a 2-core machine shared with other jobs, two spinning OpenMP
    threads made one LightGCN step 20× slower than a single thread (measured: 0.9 s against 0.04 s).
    """
    env = os.environ.get("FUSIONREC_THREADS")
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            raise ConfigError(f"FUSIONREC_THREADS must be an integer; got {env!r}") from None
    return max(1, min(4, (os.cpu_count() or 1) // 2))


def batch_l2(*tensors: torch.Tensor) -> torch.Tensor:
    """Squared L2 norm of the batch embeddings, halved and averaged over the batch (LightGCN's reg term)."""
    n = max(1, tensors[0].shape[0])
    return sum(t.pow(2).sum() for t in tensors) / (2.0 * n)


def popularity_prior(user_items: sp.spmatrix) -> np.ndarray:
    """Centred, rescaled ``log(1 + training degree)`` per item, ``(n_items, 1)`` float32: a start for biases.

    BPR models whose item biases start at zero learn popularity only after many steps; on sparse data (a few
    interactions per user, so a handful of minibatches per epoch) early stopping ran out of patience first
    and left VBPR and the attention network below most-popular. Starting from this prior, the first epoch
    already ranks like most-popular and training refines it.
    """
    deg = np.asarray((sp.csr_matrix(user_items) > 0).sum(axis=0), dtype=np.float64).ravel()
    prior = np.log1p(deg)
    prior = prior - prior.mean()
    # Scaled to a standard deviation of PRIOR_STD: above the random start of the factor products, so the
    # first ranking is most-popular's, yet small enough that popular positives do not saturate the loss
    prior *= PRIOR_STD / max(float(prior.std()), 1e-12)
    return prior.astype(np.float32)[:, None]


def embedding_module(n_users: int, n_items: int, factors: int) -> nn.Module:
    """A module holding ``user`` and ``item`` embedding tables, Xavier-uniform initialised."""
    from torch import nn

    module = nn.Module()
    module.user = nn.Embedding(n_users, factors)
    module.item = nn.Embedding(n_items, factors)
    nn.init.xavier_uniform_(module.user.weight)
    nn.init.xavier_uniform_(module.item.weight)
    return module


def bpr_loss(pos_scores: torch.Tensor, neg_scores: torch.Tensor) -> torch.Tensor:
    """Mean of −log σ(pos − neg); ``neg_scores`` may carry an extra negatives axis."""
    import torch.nn.functional as F

    if neg_scores.dim() > pos_scores.dim():
        pos_scores = pos_scores.unsqueeze(-1)
    return F.softplus(neg_scores - pos_scores).mean()


class SparseAdj:
    """A fixed sparse matrix (graph) to multiply dense embeddings with, differentiably: ``adj @ x``.

    On CPU the product runs in scipy (CSR × dense is ~4× faster than ``torch.sparse.mm`` on a COO tensor
    on these small machines, and single-threaded, so it does not fight other processes for cores); on CUDA
    it is ``torch.sparse.mm``. The transpose is precomputed for the backward pass.
    """

    def __init__(self, m: sp.spmatrix, device: str = "cpu") -> None:
        self.csr = sp.csr_matrix(m, dtype=np.float32)
        self.csr.sort_indices()
        self.shape = self.csr.shape
        self.device = device
        self.on_cpu = device == "cpu"
        if self.on_cpu:
            t = self.csr.T.tocsr()
            t.sort_indices()
            self.csr_t = t
        else:
            self.tensor = sparse_tensor(self.csr, device)
            self.tensor_t = sparse_tensor(self.csr.T, device)

    @property
    def nnz(self) -> int:
        return self.csr.nnz

    def __matmul__(self, x: torch.Tensor) -> torch.Tensor:
        return spmm(self, x)


def spmm(adj: SparseAdj, x: torch.Tensor) -> torch.Tensor:
    """``adj @ x`` with gradients for ``x`` (the graph itself is fixed)."""
    import torch

    if not adj.on_cpu:
        return torch.sparse.mm(adj.tensor, x)
    return _scipy_spmm().apply(x, adj)


_SPMM_FN = None


def _scipy_spmm():
    """The autograd Function behind CPU ``spmm`` (created lazily: torch is imported only when used)."""
    global _SPMM_FN
    if _SPMM_FN is None:
        import torch

        class ScipySpMM(torch.autograd.Function):
            @staticmethod
            def forward(ctx, x, adj):  # type: ignore[override]
                ctx.adj = adj
                return torch.from_numpy(np.asarray(adj.csr @ x.detach().numpy(), dtype=np.float32))

            @staticmethod
            def backward(ctx, grad):  # type: ignore[override]
                g = grad.detach().contiguous().numpy()
                return torch.from_numpy(np.asarray(ctx.adj.csr_t @ g, dtype=np.float32)), None

        _SPMM_FN = ScipySpMM
    return _SPMM_FN


def sparse_tensor(m: sp.spmatrix, device: str = "cpu") -> torch.Tensor:
    """A scipy sparse matrix as a coalesced torch COO float32 tensor (for ``torch.sparse.mm``)."""
    import torch

    coo = sp.coo_matrix(m)
    idx = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
    val = torch.from_numpy(coo.data.astype(np.float32))
    return torch.sparse_coo_tensor(idx, val, coo.shape, device=device, check_invariants=False).coalesce()


class TorchRecommender(Recommender):
    """Base of torch-trained models; see the module docstring for the hooks a subclass implements.

    Hyperparameters the trainer reads (keyword-only constructor arguments of the subclass, which must expose
    ``MODEL_TRAINER_PARAMS``; shared ones it lacks take ``TRAINER_DEFAULTS``):
    ``epochs``, ``learning_rate``, ``batch_size``, ``reg``, ``random_state``,
    ``device`` ("cpu", "cuda", "auto"), ``eval_every``, ``valid_metric``, ``patience`` (evaluations
    without improvement before stopping), ``modality_dropout``, ``feature_noise``, ``n_neg``,
    ``min_batches`` (models that expose it: an epoch has at least this many minibatches, the batch
    shrinks on small data).

    Learned scalars recorded after fit: ``epoch_seconds_`` (mean training seconds per epoch, validation
    excluded), ``best_epoch_`` (1-based; the last epoch when there is no validation), ``epochs_run_``,
    ``batch_size_`` (the minibatch size used, after ``min_batches``),
    ``best_valid_`` (the early-stopping metric at ``best_epoch_``, or None), ``fit_device_``, ``history_``
    (``{"metric", "epoch", "loss", "valid"}``: mean training loss and validation metric per epoch),
    ``warm_params_`` (the module's parameters at ``best_epoch_``, kept for warm starts: see
    ``_keep_parameters``). A warm-started fit validates its starting point as epoch 0: ``best_epoch_`` 0
    means no epoch beat it.
    """

    is_torch = True
    supports_warm_start = True
    #: whether each batch needs sampled negatives (BM3-style models may switch it off)
    uses_negatives: bool = True
    #: Called as ``on_valid(epoch, value)`` after each validation (tuning prunes or stops on it); a true
    #: return ends training with the best state so far. Not a hyperparameter.
    on_valid: Callable[[int, float], bool | None] | None = None

    def load_libraries(self) -> None:
        import torch  # noqa: F401

        # torch.use_deterministic_algorithms (called by every fit) imports this on first use: 2.5-5 s here
        import torch._inductor.config  # noqa: F401

    # ------------------------------------------------------------------ hooks
    def _build(self, user_items: sp.csr_matrix, features: Features | None) -> nn.Module:
        raise NotImplementedError

    def _loss(self, module: nn.Module, batch: Batch) -> torch.Tensor:
        raise NotImplementedError

    def _export_state(self, module: nn.Module) -> dict[str, np.ndarray]:
        """Every numpy array needed to score (names end in ``_``); called under ``inference_mode``."""
        raise NotImplementedError

    def _on_epoch_start(self, module: nn.Module, epoch: int) -> None:
        """Hook run before each epoch (e.g. to resample a pruned graph)."""

    # ------------------------------------------------------------------ helpers for subclasses
    def _hp(self, name: str) -> Any:
        """A trainer setting: the model's own parameter where it has one, else the shared default."""
        if name in self.param_defaults():
            return getattr(self, name)  # no fallback: a parameter the constructor forgot to store fails here
        if name not in TRAINER_DEFAULTS:
            raise ConfigError(f"{self.name}: the trainer needs parameter {name!r}, which the model lacks")
        return TRAINER_DEFAULTS[name]

    def _augment(self, feats: torch.Tensor) -> torch.Tensor:
        """Training-time augmentation for a ``(n, d)`` modality feature block against sparsity.

        ``modality_dropout`` zeroes whole rows (the item's modality goes missing) with that probability,
        rescaling kept rows by 1/(1−p); ``feature_noise`` adds Gaussian noise of that many per-dimension
        standard deviations. Identity when both are 0 or outside training.
        """
        import torch

        if not getattr(self, "_training", False):
            return feats
        p = float(self._hp("modality_dropout"))
        sigma = float(self._hp("feature_noise"))
        if sigma > 0:
            scale = feats.detach().std(dim=0, keepdim=True).clamp_min(1e-8)
            feats = feats + sigma * scale * torch.randn_like(feats)
        if p > 0:
            rows = torch.ones(feats.shape[0], 1, device=feats.device, dtype=feats.dtype)
            feats = feats * self._dropout(rows, p)
        return feats

    def _dropout(self, x: torch.Tensor, p: float) -> torch.Tensor:
        """Inverted dropout during training; on CPU the mask comes from numpy's PCG64 (seeded per fit),
        several times faster here than torch's CPU Bernoulli sampler. Identity outside training."""
        import torch

        if p <= 0 or not getattr(self, "_training", False):
            return x
        if x.device.type == "cpu":
            keep = torch.from_numpy(self._gen.random(tuple(x.shape), dtype=np.float32) >= p)
        else:
            keep = torch.rand_like(x) >= p
        return x * keep / (1.0 - p)

    # ------------------------------------------------------------------ training loop
    def _fit(
        self, user_items: sp.csr_matrix, features: Features | None, *, valid: sp.csr_matrix | None
    ) -> None:
        import torch

        epochs = int(self._hp("epochs"))
        batch_size = int(self._hp("batch_size"))
        # only models that train well on a few interactions per user expose it (vbpr, neural): the others keep
        # their validated batch size on any data
        min_batches = int(getattr(self, "min_batches", 0))
        lr = float(self._hp("learning_rate"))
        eval_every = max(1, int(self._hp("eval_every")))
        patience = int(self._hp("patience"))
        n_neg = max(1, int(self._hp("n_neg")))
        # a rating model early-stops on validation RMSE (tracked as −RMSE, so higher is better)
        metric = "rmse" if self.task == "rating" else str(self._hp("valid_metric"))
        if valid is not None and valid.nnz > 0 and metric != "rmse":
            self._validator_for("early stopping").check([metric])  # fail early on a typo
        if epochs < 1 or batch_size < 1 or lr <= 0:
            raise ConfigError(f"{self.name}: epochs, batch_size and learning_rate must be positive")
        device = resolve_device(self._hp("device"))
        world, device = distributed.init(device)
        seed = int(self._hp("random_state") or 0)

        prev_threads = torch.get_num_threads()
        prev_det = torch.are_deterministic_algorithms_enabled()
        torch.set_num_threads(default_threads())
        torch.use_deterministic_algorithms(True, warn_only=True)
        # Tiny gradients (e.g. a loss weighted 1e-4) leave denormal floats in Adam's second moments, and
        # denormal arithmetic made a FREEDOM step 1.75× slower; flushing them to zero changes nothing visible.
        torch.set_flush_denormal(True)
        torch.manual_seed(seed)
        rng = np.random.RandomState(seed)
        self._gen = np.random.default_rng(seed)
        self._device = device
        try:
            module = self._build(user_items, features).to(device)
            if self._warm is not None:
                self._start_from(module, self._warm)
            opt = torch.optim.Adam(module.parameters(), lr=lr)
            users_np, items_np = positive_pairs(user_items)
            if len(users_np) == 0:
                raise ConfigError(f"{self.name}: the training matrix has no interactions")
            if min_batches > 0:
                # A few thousand interactions in batches of 2048 made two steps per epoch: early stopping's
                # patience (counted in epochs) ran out before the model learned anything beyond its start.
                batch_size = max(1, min(batch_size, -(-len(users_np) // min_batches)))
            probe = torch.from_numpy(np.stack([users_np[:2], items_np[:2], items_np[:2][::-1].copy()])).to(
                device
            )
            step_module = _distributed_loss(self, module, world, Batch(*probe))
            # one process: one generator for batch order and negatives (as always); several: the batch
            # order is shared (ranks partition each epoch) and each rank draws its own negatives
            neg_rng = np.random.RandomState([seed, world.rank]) if world.distributed else rng
            sampler = NegativeSampler(user_items, neg_rng) if self.uses_negatives else None
            users_t = torch.from_numpy(users_np).to(device)
            items_t = torch.from_numpy(items_np).to(device)
            valid_users = valid is not None and valid.nnz > 0
            if valid_users and world.distributed:
                valid = distributed.shard_rows(
                    valid, world
                )  # each rank validates its users; sums all-reduced

            best_val, best_epoch, best_state, bad_evals = -np.inf, epochs, None, 0
            best_params: dict[str, np.ndarray] | None = None
            if self._warm is not None and valid_users:
                # the start is a candidate too: on unchanged data the earlier best stays unless training beats it
                best_state = self._export(module)
                best_val = self._validate(best_state, user_items, valid, metric, world=world, device=device)
                best_epoch, best_params = 0, _parameters(module)
            epoch_secs: list[float] = []
            # per-epoch training curve, saved with the model (valid is None on epochs without validation)
            history: dict[str, Any] = {"metric": metric, "epoch": [], "loss": [], "valid": []}
            bar = None
            if self.show_progress and world.is_main:
                from tqdm.auto import tqdm

                bar = tqdm(total=epochs, desc=f"{self.name}", unit="epoch", leave=False)
            epoch = 0
            for epoch in range(1, epochs + 1):
                t0 = time.perf_counter()
                module.train()
                self._training = True
                self._on_epoch_start(module, epoch)
                if world.distributed:
                    batches = distributed.epoch_shards(len(users_np), batch_size, rng, world)
                    mine = np.concatenate(batches) if batches else np.zeros(0, np.int64)
                    negs_np = np.zeros((len(users_np),) + ((n_neg,) if n_neg > 1 else ()), np.int64)
                    if sampler is not None:
                        negs_np[mine] = sampler.sample(users_np[mine], n_neg)
                    negs_t = torch.from_numpy(negs_np).to(device)
                else:
                    batches = minibatches(len(users_np), batch_size, rng)
                    if sampler is not None:
                        negs_t = torch.from_numpy(sampler.sample(users_np, n_neg)).to(device)
                    else:
                        negs_t = items_t.new_zeros(len(users_np))
                total, n_batches = 0.0, 0
                for idx in batches:
                    ix = torch.from_numpy(idx).to(device)
                    loss = step_module(users_t[ix], items_t[ix], negs_t[ix])
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    total += float(loss.detach())
                    n_batches += 1
                self._training = False
                epoch_secs.append(time.perf_counter() - t0)
                if world.distributed:
                    total, n_batches = distributed.all_reduce_sum(np.array([total, n_batches]), device)
                mean_loss = total / max(1, n_batches)
                if not np.isfinite(mean_loss):
                    raise ConfigError(
                        f"{self.name}: training loss became {mean_loss} at epoch {epoch}; "
                        "lower learning_rate or raise reg"
                    )
                history["epoch"].append(epoch)
                history["loss"].append(round(mean_loss, 6))
                history["valid"].append(None)
                post: dict[str, Any] = {"loss": f"{mean_loss:.4f}"}
                if valid_users and (epoch % eval_every == 0 or epoch == epochs):
                    state = self._export(module)
                    val = self._validate(state, user_items, valid, metric, world=world, device=device)
                    post[metric] = f"{val:.4f}"
                    history["valid"][-1] = round(float(val), 6)
                    if val > best_val:
                        best_val, best_epoch, best_state, bad_evals = val, epoch, state, 0
                        best_params = _parameters(module)
                    else:
                        bad_evals += 1
                    log.debug("%s epoch %d loss %.4f %s %.4f", self.name, epoch, mean_loss, metric, val)
                    if bad_evals >= patience > 0:
                        log.info(
                            "%s: early stop at epoch %d (best %s=%.4f at epoch %d)",
                            self.name,
                            epoch,
                            metric,
                            best_val,
                            best_epoch,
                        )
                        _finish_bar(bar, post)
                        break
                    if self.on_valid is not None and self.on_valid(epoch, val):
                        _finish_bar(bar, post)
                        break
                if bar is not None:
                    bar.set_postfix(post)
                    bar.update(1)
            if bar is not None:
                bar.close()
            if best_state is None:
                best_state, best_epoch = self._export(module), epoch
            if best_params is None:
                best_params = _parameters(module)
            for k, v in best_state.items():
                setattr(self, k, v)
            self._keep_parameters(best_params, user_items.shape)
            self.epoch_seconds_ = float(np.mean(epoch_secs)) if epoch_secs else 0.0
            self.best_epoch_ = int(best_epoch)
            self.epochs_run_ = int(epoch)
            self.batch_size_ = int(batch_size)
            self.best_valid_ = float(best_val) if np.isfinite(best_val) else None
            self.fit_device_ = device
            self.fit_world_size_ = int(world.size)
            self.history_ = history
        finally:
            self._training = False
            torch.set_num_threads(prev_threads)
            torch.use_deterministic_algorithms(prev_det)
            torch.set_flush_denormal(False)  # torch's default; there is no getter to restore from

    # ------------------------------------------------------------------ warm start
    # The module's parameters at the kept epoch travel with the model as ``warm_<name>_`` arrays (dots as
    # ``__``), listed with what their rows are in ``warm_params_``: [[name, "user"|"item"|"rows"|""], ...]
    # ("rows": one per user and per item, when the two counts are equal). A refit starts from them.
    def _keep_parameters(self, params: dict[str, np.ndarray], shape: tuple[int, int]) -> None:
        n_users, n_items = shape
        layout = []
        for name, value in params.items():
            rows = value.shape[0] if value.ndim else -1
            if rows == n_users and rows == n_items:
                kind = "rows"
            elif rows == n_users:
                kind = "user"
            elif rows == n_items:
                kind = "item"
            else:
                kind = ""
            layout.append([name, kind])
            setattr(self, _warm_attr(name), value)
        self.warm_params_ = layout

    def _start_from(self, module: nn.Module, warm: WarmStart) -> None:
        """Set ``module``'s parameters from an earlier fit's (rows mapped by id; new rows keep their fresh
        initialisation; a parameter whose shape changed, e.g. with a feature size, starts fresh)."""
        import torch

        layout = _warm_layout(warm.meta.get("warm_params_"))
        if not layout:
            raise ConfigError(
                f"{self.name}: the earlier fit kept no training parameters (saved by an older version); "
                "fit it cold"
            )
        same_rows = np.array_equal(warm.user_rows, warm.item_rows)
        started, total = 0, 0
        with torch.no_grad():
            for name, p in module.named_parameters():
                total += 1
                old, kind = warm.arrays.get(_warm_attr(name)), layout.get(name)
                if old is None or kind is None or old.shape[1:] != tuple(p.shape[1:]):
                    continue
                fresh = to_numpy(p)
                rows = {"user": warm.user_rows, "item": warm.item_rows}.get(kind)
                if kind == "rows" and same_rows:
                    rows = warm.user_rows
                if rows is not None and p.shape[0] == len(rows):
                    new = warm.take(old, fresh, rows)
                elif kind == "" and old.shape == tuple(p.shape):
                    new = old
                else:
                    continue
                p.copy_(torch.from_numpy(np.ascontiguousarray(new, dtype=fresh.dtype)).to(p.device))
                started += 1
        users, items = warm.known()
        log.info(
            "%s: warm start of %d of %d parameter tensors; %d of %d users and %d of %d items known",
            self.name,
            started,
            total,
            users,
            len(warm.user_rows),
            items,
            len(warm.item_rows),
        )

    def forget_user_rows(self, idx: int) -> None:
        """As for every model, plus the user's row of the kept training parameters (a parameter whose
        rows could be users or items is dropped whole: a refit then starts it fresh)."""
        n_users = int(self.n_users_)
        super().forget_user_rows(idx)
        layout = getattr(self, "warm_params_", None)
        if not layout:
            return
        kept = []
        for name, kind in layout:
            attr = _warm_attr(name)
            value = getattr(self, attr, None)
            if value is None:
                continue
            if kind == "rows" and value.shape[0] == n_users:
                delattr(self, attr)
                continue
            if kind in ("user", "rows") and idx < value.shape[0]:
                setattr(self, attr, np.delete(value, idx, axis=0))
            kept.append([name, kind])
        self.warm_params_ = kept

    def _export(self, module: nn.Module) -> dict[str, np.ndarray]:
        import torch

        module.eval()
        with torch.inference_mode():
            state = self._export_state(module)
        bad = [k for k, v in state.items() if not k.endswith("_") or not isinstance(v, np.ndarray)]
        if bad:
            raise TypeError(
                f"{type(self).__name__}._export_state must return numpy arrays named *_; got {bad}"
            )
        return state

    def _validate(
        self,
        state: dict[str, np.ndarray],
        train: sp.csr_matrix,
        valid: sp.csr_matrix,
        metric: str,
        *,
        world: distributed.World | None = None,
        device: str = "cpu",
    ) -> float:
        """Score ``valid`` with the evaluator's callback on the exported numpy state (what serving uses);
        ``metric="rmse"`` (rating models): −RMSE of ``predict`` on the valid ratings.

        Under several processes each rank holds its share of the valid users; the metric is their
        user-weighted mean, gathered with one all-reduce, so every rank takes the same early-stopping step.
        """
        saved = {k: getattr(self, k) for k in state if hasattr(self, k)}
        had_fitted = getattr(self, "fitted_", False)
        for k, v in state.items():
            setattr(self, k, v)
        self.fitted_ = True
        try:
            if metric == "rmse":
                value = -matrix_rmse(self.predict, valid)
                weight = float(valid.nnz)  # RMSE averages over ratings (a squared mean, approximated)
            else:
                value = self._validator_for("early stopping")(self.score, valid, train, (metric,))[metric]
                weight = float(np.count_nonzero(np.diff(valid.indptr)))  # the evaluator averages over users
        finally:
            for k in state:
                if k in saved:
                    setattr(self, k, saved[k])
                else:
                    delattr(self, k)
            if not had_fitted:
                del self.fitted_
        if world is not None and world.distributed:
            total, count = distributed.all_reduce_sum(np.array([value * weight, weight]), device)
            return float(total / max(count, 1.0))
        return float(value)


def _parameters(module: nn.Module) -> dict[str, np.ndarray]:
    """Numpy copies of the module's parameters, by name."""
    return {name: to_numpy(p) for name, p in module.named_parameters()}


def _warm_attr(name: str) -> str:
    return "warm_" + name.replace(".", "__") + "_"


def _warm_layout(value: Any) -> dict[str, str]:
    """``warm_params_`` read from an artifact (data: checked, not trusted) as ``{name: row kind}``."""
    if not isinstance(value, list):
        return {}
    out = {}
    for entry in value:
        if (
            isinstance(entry, list)
            and len(entry) == 2
            and isinstance(entry[0], str)
            and entry[1] in ("user", "item", "rows", "")
        ):
            out[entry[0]] = entry[1]
    return out


def _finish_bar(bar, post: dict[str, Any]) -> None:
    """A bar stopped early ends at the epoch it stopped at (not frozen part-way with an ETA for the rest)."""
    if bar is not None:
        bar.set_postfix(post)
        bar.update(1)
        bar.total = bar.n
        bar.refresh()


def _distributed_loss(model: TorchRecommender, module: nn.Module, world: distributed.World, probe: Batch):
    """``step(users, pos, neg) -> loss``: the model's loss, inside DistributedDataParallel when the world has
    several processes (gradients all-reduced in backward; rank 0's initial parameters broadcast to all)."""
    import torch

    class LossStep(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = module

        def forward(self, users, pos, neg):  # type: ignore[override]
            return model._loss(self.inner, Batch(users, pos, neg))

    step = LossStep()
    if not world.distributed:
        return step
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(step, find_unused_parameters=_has_unused_parameters(step, probe))


def _has_unused_parameters(step, probe: Batch) -> bool:
    """Whether one loss on a probe batch leaves some parameter without a gradient (DDP must then look
    for unused parameters in every step; checking costs one extra backward instead of a traversal per step)."""
    params = [p for p in step.parameters() if p.requires_grad]
    step(*probe).backward()
    unused = any(p.grad is None for p in params)
    for p in params:
        p.grad = None
    return unused


class TorchFactorModel(TorchRecommender, FactorModel):
    """A torch model that ends as ``user_factors_ @ item_factors_.T`` (MF, graph models, ...).

    Subclasses implement ``_final_embeddings(module) -> (user_emb, item_emb)`` as numpy float32 arrays.
    """

    def _final_embeddings(self, module: nn.Module) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def _export_state(self, module: nn.Module) -> dict[str, np.ndarray]:
        u, i = self._final_embeddings(module)
        return {
            "user_factors_": np.ascontiguousarray(u, dtype=np.float32),
            "item_factors_": np.ascontiguousarray(i, dtype=np.float32),
        }


def to_numpy(t: torch.Tensor) -> np.ndarray:
    """Detached float32 numpy copy of a tensor (any device)."""
    return t.detach().to("cpu", dtype=t.dtype).numpy().astype(np.float32, copy=True)
