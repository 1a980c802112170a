"""The layer analyzer: per-layer shapes, parameters, MACs/FLOPs, connections and receptive fields.

``summary(model_or_name, input_size=(C, H, W))`` runs the model's own ``forward`` once on PyTorch's *meta*
device: tensors carry shapes but no data, so nothing is computed and the cost does not grow with the
input or the model (VGG-16 at 1024×1024 takes as long as at 224). A model already built on the CPU or a
GPU is analysed through a meta copy (its weights are neither copied nor touched).

How it sees the network (details and the reasons for its speed: :mod:`cnnzoo.analysis.probe` and
:mod:`cnnzoo.analysis.recorder`):
- one row per *leaf* module call (a module called twice, like torchvision's ``BasicBlock.relu``, gives two
  rows; its parameters are counted once);
- operations outside leaf modules — residual additions, ``torch.flatten``, slicing — are costed too, and
  the receptive field follows every path;
- receptive fields are tracked per tensor (size, jump = effective stride, start = centre of the first
  unit, in input pixels); where paths merge (a residual add) the larger field wins.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from .. import figures
from .._torch_compat import PARAMETERS
from ..card import card_of
from ..errors import ShapeError
from ..models.source import check_model_arg, resolve_model
from ..shapes import conv_output_size, parse_input_size, smallest_input
from .inputs import parse_inputs
from .probe import Probe
from .recorder import Collapse, ForwardFailed, TraceResult, gc_paused
from .schema import BlockInfo, LayerInfo, ReceptiveField, Summary

__all__ = ["summary", "trace", "Summary", "LayerInfo", "BlockInfo", "ReceptiveField", "parse_input_size"]


def _prepare(model_or_name, model_kwargs: dict) -> tuple[Probe, str, tuple[int, int, int] | None]:
    """The probe, the name shown, and the input size the model is built for (its card's; None if unknown)."""
    if isinstance(model_or_name, str):
        check_model_arg(model_or_name)  # unknown names fail here, with suggestions; bad strings with a caret
        with torch.device("meta"):
            model = resolve_model(model_or_name, **model_kwargs)
        # built here: instrumented in place
        card = card_of(model)  # a user's file without an input size has none: the caller's input_size decides
        return Probe(model.to("meta"), copy=False), model_or_name, card.input_size if card else None
    # The card is read from the caller's model, not from the probe's copy: a copy need not keep attributes
    # (a torch.fx GraphModule, say, copies itself without them).
    card = card_of(model_or_name)
    name = card.model if card is not None else type(model_or_name).__name__
    return Probe(model_or_name), name, card.input_size if card is not None else None  # a meta copy


def _fmt(size) -> str:
    return "×".join(str(s) for s in size)


def _collapse_formula(c: Collapse) -> str:
    """The output-size formula of the side that collapses, with its numbers: ``⌊(H + 2p − d·(k − 1) − 1)/s⌋ + 1``."""
    w = c.window
    i = (
        0
        if conv_output_size(c.in_hw[0], w.kernel[0], w.stride[0], w.padding[0], w.dilation[0], w.ceil_mode)
        < 1
        else 1
    )
    n, k, s, p, d = c.in_hw[i], w.kernel[i], w.stride[i], w.padding[i], w.dilation[i]
    out = conv_output_size(n, k, s, p, d, w.ceil_mode)
    side = "H" if i == 0 else "W"
    floor = "⌈⌉" if w.ceil_mode else "⌊⌋"
    return (
        f"{side}_out = {floor[0]}({side} + 2p − d·(k − 1) − 1)/s{floor[1]} + 1 = "
        f"{floor[0]}({n} + 2·{p} − {d}·({k} − 1) − 1)/{s}{floor[1]} + 1 = {out}"
    )


def _smallest_working(probe: Probe, input_size: tuple[int, int, int]) -> int | None:
    """Smallest square side at which no feature map collapses (meta forwards are cheap)."""

    def works(side: int) -> bool:
        try:
            probe.run((input_size[0], side, side), allow_uncounted=True)
        except (Collapse, ShapeError):
            return False
        return True

    # only a size that ran is named (a head built for one size may make every other fail)
    side = smallest_input(works, start=max(input_size[1:]))
    return side if side is not None and works(side) else None


def _blocks(model: nn.Module, result: TraceResult) -> list[BlockInfo]:
    """Residual blocks (the rows each block's calls produced; the parameters under the block) and, for
    networks with a ``features`` Sequential (VGG, AlexNet), the stages that end in a max-pool (the
    parameters of their rows)."""
    rows = result.rows
    groups: list[tuple[str, str, list[LayerInfo], tuple[int, int] | None]] = []
    for name, spans in result.spans.items():
        members = [r for start, end in spans for r in rows[start:end]]
        groups.append((name, type(result.blocks[name]).__name__, members, result.block_params[name]))
    features = getattr(model, "features", None)
    if not groups and isinstance(features, nn.Sequential):
        stage: list[LayerInfo] = []
        for r in rows:
            if not r.name.startswith("features."):
                continue
            stage.append(r)
            if r.type == "MaxPool2d":
                groups.append((f"stage{len(groups) + 1}", "stage", stage, None))
                stage = []
    out = []
    for name, kind, members, counts in groups:
        if not members:
            continue
        params, trainable = counts or (
            sum(r.params for r in members),
            sum(r.trainable_params for r in members),
        )
        out.append(
            BlockInfo(
                name,
                kind,
                [members[0].name, members[-1].name],
                members[-1].output_shape,
                params,
                trainable,
                sum(r.macs for r in members),
                sum(r.flops for r in members),
                sum(r.connections for r in members),
                members[-1].receptive_field,
                [r.name for r in members if _on_shortcut(r.name, name)],
            )
        )
    return out


SHORTCUT_MODULES = ("downsample", "shortcut", "skip", "proj")  # a block's child module on its shortcut path


def _on_shortcut(row: str, block: str) -> bool:
    """Whether ``row`` (a layer of ``block``) is inside a child module named as a shortcut."""
    return row.startswith(block + ".") and row[len(block) + 1 :].split(".")[0] in SHORTCUT_MODULES


def summary(
    model_or_name: nn.Module | str,
    input_size: tuple[int, int, int] | str | None = None,
    *,
    allow_uncounted: bool = False,
    convention: str = "cnnzoo",
    dtype=None,
    **model_kwargs,
) -> Summary:
    """Analyse a model (or a registered name) for one input of ``input_size = (C, H, W)``.

    Every operation the forward runs is counted (layers by rule, anything else at the dispatcher level,
    :mod:`cnnzoo.analysis.dispatch`); one without a cost rule raises
    :class:`~cnnzoo.analysis.dispatch.UncountedOperation` naming it, or with ``allow_uncounted`` its row is
    marked (``note``) and left out of the MACs and FLOPs. The rows add up to the totals.

    Several inputs: ``input_size=[(3, 224, 224), (10,)]``; ``dtype`` one dtype or one per input
    (``"int64"`` for token indices), :mod:`cnnzoo.analysis.inputs`.

    ``convention`` ("paper", "torchinfo", "fvcore", "ptflops", "thop") adds that tool's MAC and parameter
    totals (``Summary.convention``; :mod:`cnnzoo.analysis.conventions`); the rows stay cnnzoo's.

    >>> s = summary("lenet5")
    >>> s.total["trainable_params"], s.total["connections"]
    (60000, 340908)
    >>> [r.receptive_field.to_dict()["size"] for r in s.layers if r.name in ("c1", "s2", "c3", "s4", "c5")]
    [5, 6, 14, 16, 32]
    """
    from .conventions import CONVENTIONS

    if convention not in CONVENTIONS:
        raise ShapeError(f"unknown convention {convention!r}: one of {', '.join(CONVENTIONS)}")
    with gc_paused():  # ~10k short-lived objects: a full collection must not land in the middle (tracer.py)
        s = _summary(model_or_name, input_size, model_kwargs, allow_uncounted, dtype)
    if convention != "cnnzoo":
        from .conventions import for_summary

        inputs = list(zip(s.inputs, s.dtypes, strict=True)) if s.inputs else [(s.input, None)]
        s.convention_count = for_summary(model_or_name, model_kwargs, inputs, convention)
        s.convention = s.convention_count.to_dict()
    return s


def _unused_parameters(probe: Probe, seen: set[int]) -> list[LayerInfo]:
    """A row per module whose own parameters no operation of this forward used (an auxiliary head in eval
    mode, a layer defined but not called): the totals count them, so a row must."""
    rows, done = [], set(seen)
    for name, module in probe.model.named_modules():
        own = [p for p in module.__dict__[PARAMETERS].values() if p is not None and id(p) not in done]
        if not own:
            continue
        done.update(id(p) for p in own)
        sizes = [probe.param_sizes[id(p)] for p in own]
        rows.append(
            LayerInfo(
                name or type(module).__name__,
                type(module).__name__,
                "",
                [],
                sum(n for n, _ in sizes),
                sum(n for n, t in sizes if t),
                0,
                0,
                0,
                None,
                0,
                "parameters not used by this forward",
            )
        )
    return rows


def _summary(
    model_or_name: nn.Module | str, input_size, model_kwargs: dict, allow_uncounted: bool, dtype=None
) -> Summary:
    probe, name, default = _prepare(model_or_name, model_kwargs)
    if input_size is None and default is None:
        raise ShapeError(f"no input size known for {name}: pass input_size=(C, H, W)")
    batch, size, more = parse_inputs(
        input_size if input_size is not None else default,
        dtype,
        None if isinstance(model_or_name, str) else model_or_name,
    )
    notes = []
    if len(more) > 1 or (more and more[0][1] != torch.float32):
        notes.append("inputs: " + ", ".join(f"{_fmt(d)} {str(t).removeprefix('torch.')}" for d, t in more))
    try:
        try:
            result = probe.run(size, allow_uncounted, more=more)
        except ForwardFailed:
            if isinstance(model_or_name, str):
                raise
            # The light copy keeps some original tensors (see Probe); the model's own code used one
            # outside its layer. A full meta copy is then traced: its error, if any, is the one reported.
            probe = Probe(model_or_name, light=False)
            try:
                result = probe.run(size, allow_uncounted, more=more)
            except ForwardFailed as e:
                if not _data_dependent(e):
                    raise
                # The forward reads values (``if x.mean() > 0``): a meta tensor has none. It runs for real,
                # on a CPU copy and a small random input, counted the same way.
                probe = Probe(copy.deepcopy(model_or_name).to("cpu"), copy=False)
                result = probe.run(size, allow_uncounted, device="cpu", more=more)
                notes.append(
                    f"the forward reads its data, so it ran for real on a random {_fmt(size)} CPU tensor "
                    "(counts are for that input's path through it)"
                )
    except ShapeError as e:
        hint = f"; {name} is built for {_fmt(default)}" if default and tuple(default) != size else ""
        raise ShapeError(f"{name}, input {_fmt(size)}: {e}{hint}") from None
    except Collapse as c:
        smallest = _smallest_working(probe, size) if len(size) == 3 and not more else None
        hint = (
            f" The smallest input that works is {size[0]}×{smallest}×{smallest}."
            if smallest
            else " No square input tried (up to 16384) works."
        )
        k = c.window.kernel
        raise ShapeError(
            f"input {_fmt(size)} is too small for {name}: the feature map collapses at layer {c.layer!r} "
            f"({c.kind} {k[0]}×{k[1]}), whose input is only {c.in_hw[0]}×{c.in_hw[1]}: "
            f"{_collapse_formula(c)}.{hint}"
        ) from None
    rows = result.rows
    rows += _unused_parameters(probe, probe.tracer.seen_params)
    total = {"params": result.params, "trainable_params": result.trainable_params}
    total |= {f.key: sum(f.read(r) for r in rows) for f in figures.FIGURES if f.summed and f.key not in total}
    if batch != 1:
        total["batch"] = (
            batch  # the figures above are per sample; a batch multiplies MACs, FLOPs, activations
        )
    rf = next((r.receptive_field for r in reversed(rows) if r.receptive_field is not None), None)
    if rf is not None:
        total["receptive_field"] = rf.to_dict()
    return Summary(
        name,
        size,
        rows,
        _blocks(probe.model, result),
        total,
        source=(model_or_name, model_kwargs),
        notes=notes,
        inputs=[list(d) for d, _ in more] if more else None,
        dtypes=[str(t).removeprefix("torch.") for _, t in more] if more else None,
    )


def _data_dependent(e: Exception) -> bool:
    """Whether a meta forward failed because the model's code reads tensor values."""
    text = str(e)
    return "meta" in text and any(w in text for w in ("item", "data", "Cannot copy", "is_nonzero", "bool"))


def trace(model_or_name: nn.Module | str, input_size=None, **model_kwargs) -> list[tuple[str, str, tuple]]:
    """Walk a real tensor through the network (random weights for a name) and return each leaf layer's
    ``(name, type, output shape)`` — what d2l's LeNet chapter prints with ``for layer in net: X = layer(X)``."""
    model = resolve_model(model_or_name, **model_kwargs) if isinstance(model_or_name, str) else model_or_name
    size = summary(model, input_size).input  # clear errors (an unknown size too) before touching real data
    device = next(model.parameters()).device
    shapes: list[tuple[str, str, tuple]] = []
    handles = [
        m.register_forward_hook(
            lambda mod, a, out, n=n: shapes.append((n, type(mod).__name__, tuple(out.shape)))
        )
        for n, m in model.named_modules()
        if next(m.children(), None) is None and n
    ]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.rand((1, *size), device=device))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return shapes
