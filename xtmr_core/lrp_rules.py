"""LRP rules for the operations of modern classifiers, as small modules that ``canonize.lrp_ready`` puts into a
traced graph in place of the plain operation (and the attention modules it swaps in).

Relevance flows backwards as the gradient (Zennit's convention): each rule is a ``torch.autograd.Function``
whose backward maps the relevance at its output to relevance at its inputs. The rules (references in
docs/DESIGN.md, section 5):

* ``IdentityRule``: element-wise non-linearities (SiLU, GELU, Hardswish, Sigmoid, ...), a product with a
  constant (``x * 0.125``, a layer scale) and a normalisation by a norm held constant: relevance passes
  unchanged (AttnLRP's identity rule, Achtibat et al. 2024, eq. 9 and Prop. 3.4).
* ``EpsilonRule``: a parameter-free linear map (mean, sum, average pooling): ``R_i = x_i * d/dx_i <z, R / z>``
  (the epsilon rule of Bach et al. 2015 with a tiny stabiliser).
* ``GateRule``: ``x * g`` where ``g`` is a gate (squeeze-excitation's sigmoid, a gated unit): the gate is a
  constant, relevance follows ``x`` unchanged and none reaches the gate's branch.
* ``ProductRule``: a product of two activations (``q @ k^T``, ``attention @ v``, einsum, ``a * b``): the epsilon
  rule on the sum, then each factor gets half of every term (AttnLRP's uniform rule, Prop. 3.2 and 3.3).
* ``SoftmaxRule``: ``R_i = x_i (R_i - s_i sum_j R_j)`` (AttnLRP, Prop. 3.1); the rest is its bias share.
* ``AddConstRule``: ``z = x + c`` with ``c`` not depending on the input (a position embedding, a relative
  position bias, a mask): ``R_x = x / z * R``, and ``c / z * R`` is a bias share.
* ``NormRule``: LayerNorm, LayerNorm2d, GroupNorm: the division by the standard deviation is held constant
  (identity rule) and the mean subtraction and the affine part are linear layers under the epsilon rule
  (AttnLRP, Prop. 3.4; the ``lxt`` package's ``layer_norm``); ``beta / y * R`` is a bias share.
* ``ConstRouteRule``: a routing operation (``cat``) with a constant operand (a class token): relevance is
  routed, and what reaches the constant is a bias share.

Every bias share (relevance that reaches a constant, not the input) is added to the graph's ``Sink``, so the
network balance ``input relevance + bias shares = start logits`` can be checked.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd import Function
from zennit.core import stabilize  # type: ignore[import-untyped]  # Zennit ships no type hints

from xtmr_core.errors import XtmrError

__all__ = [
    "Sink",
    "IdentityRule",
    "EpsilonRule",
    "GateRule",
    "ProductRule",
    "SoftmaxRule",
    "AddConstRule",
    "NormRule",
    "ConstRouteRule",
    "RULE_MODULES",
    "LrpSelfAttention",
    "lrp_attention_swap",
]

#: Stabiliser of the rules here (the products' and reductions' epsilon): as the pooling layers'.
STABILISER = 1e-9


class Sink:
    """The bias shares of one LRP pass: relevance that reached a constant instead of the input."""

    def __init__(self) -> None:
        self.total = 0.0

    def add(self, share: Tensor) -> None:
        """Add a tensor's sum (in float64) to the total."""
        self.total += float(share.detach().double().sum())


def _sum_to(t: Tensor, shape: torch.Size) -> Tensor:
    return t if t.shape == shape else t.sum_to_size(shape)


def _call(
    fn: Callable[..., Tensor], args: tuple[Any, ...], index: int, value: Tensor, kwargs: dict[str, Any]
) -> Tensor:
    full = list(args)
    full[index] = value
    result: Tensor = fn(*full, **kwargs)
    return result


class _Identity(Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, f: Callable[[Tensor], Tensor]) -> Tensor:
        ctx.shape = x.shape
        out = f(x)
        return out.clone() if out is x else out

    @staticmethod
    def backward(ctx: Any, r: Tensor) -> tuple[Tensor, None]:
        return _sum_to(r, ctx.shape), None


class _Epsilon(Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, f: Callable[[Tensor], Tensor]) -> Tensor:
        ctx.save_for_backward(x)
        ctx.f = f
        return f(x)

    @staticmethod
    def backward(ctx: Any, r: Tensor) -> tuple[Tensor, None]:
        (x,) = ctx.saved_tensors
        with torch.enable_grad():
            leaf = x.detach().requires_grad_(True)
            z = ctx.f(leaf)
            (g,) = torch.autograd.grad(z, leaf, r / stabilize(z.detach(), STABILISER))
        return leaf.detach() * g, None


class _Gate(Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, gate: Tensor, f: Callable[[Tensor, Tensor], Tensor]) -> Tensor:
        ctx.shape = x.shape
        ctx.save_for_backward(gate)
        return f(x, gate)

    @staticmethod
    def backward(ctx: Any, r: Tensor) -> tuple[Tensor, Tensor, None]:
        # Zeros, not None, for the gate: its branch's rules then see zero relevance rather than none.
        (gate,) = ctx.saved_tensors
        return _sum_to(r, ctx.shape), torch.zeros_like(gate), None


class _Product(Function):
    @staticmethod
    def forward(ctx: Any, f: Callable[..., Tensor], *factors: Tensor) -> Tensor:
        ctx.save_for_backward(*factors)
        ctx.f = f
        return f(*factors)

    @staticmethod
    def backward(ctx: Any, r: Tensor) -> tuple[Tensor | None, ...]:
        factors = ctx.saved_tensors
        with torch.enable_grad():
            leaves = [t.detach().requires_grad_(True) for t in factors]
            z = ctx.f(*leaves)
            grads = torch.autograd.grad(z, leaves, r / stabilize(z.detach(), STABILISER))
        n = len(leaves)
        return (None, *(leaf.detach() * g / n for leaf, g in zip(leaves, grads)))


class _Softmax(Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, dim: int, sink: Sink) -> Tensor:
        s = torch.softmax(x, dim)
        ctx.save_for_backward(x, s)
        ctx.dim, ctx.sink = dim, sink
        return s

    @staticmethod
    def backward(ctx: Any, r: Tensor) -> tuple[Tensor, None, None]:
        x, s = ctx.saved_tensors
        finite = torch.isfinite(x)
        xf = torch.where(finite, x, torch.zeros_like(x))
        total = r.sum(ctx.dim, keepdim=True)
        r_in = torch.where(finite, xf * (r - s * total), torch.zeros_like(x))
        # The linearisation's bias: s_i(x) = sum_j J_ij x_j + b_i with b_i / s_i = 1 - x_i + <s, x>.
        ctx.sink.add(r * (1 - xf + (s * xf).sum(ctx.dim, keepdim=True)))
        return r_in, None, None


class _AddConst(Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, const: Tensor, sign: float, sink: Sink) -> Tensor:
        z = x + sign * const
        ctx.save_for_backward(x, z)
        ctx.sink = sink
        return z

    @staticmethod
    def backward(ctx: Any, r: Tensor) -> tuple[Tensor, None, None, None]:
        x, z = ctx.saved_tensors
        ratio = r / stabilize(z, STABILISER)
        r_x = _sum_to(x * ratio, x.shape)
        ctx.sink.add((z - x) * ratio)
        return r_x, None, None, None


class _Norm(Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, module: nn.Module, sink: Sink) -> Tensor:
        ctx.save_for_backward(x)
        ctx.module, ctx.sink = module, sink
        result: Tensor = module(x)
        return result

    @staticmethod
    def backward(ctx: Any, r: Tensor) -> tuple[Tensor, None, None]:
        (x,) = ctx.saved_tensors
        with torch.enable_grad():
            leaf = x.detach().requires_grad_(True)
            y, shift = _norm_linearised(ctx.module, leaf)
            ratio = r / stabilize(y.detach(), STABILISER)
            (g,) = torch.autograd.grad(y, leaf, ratio)
        if shift is not None:
            ctx.sink.add(shift * ratio)
        return leaf.detach() * g, None, None


def _norm_linearised(m: nn.Module, x: Tensor) -> tuple[Tensor, Tensor | None]:
    """The norm's output with its standard deviation held constant, and the broadcast bias (None without)."""
    if isinstance(m, nn.GroupNorm):
        n = x.shape[0]
        g = x.reshape(n, m.num_groups, -1)
        mean = g.mean(-1, keepdim=True)
        std = torch.sqrt(g.detach().var(-1, unbiased=False, keepdim=True) + m.eps)
        y = ((g - mean) / std).reshape(x.shape)
        shape = (1, -1) + (1,) * (x.ndim - 2)
    elif isinstance(m, nn.LayerNorm):
        dims = tuple(range(-len(m.normalized_shape), 0))
        channel_first = _channel_first(m)
        if channel_first:
            dims = (1,)
        mean = x.mean(dims, keepdim=True)
        std = torch.sqrt(x.detach().var(dims, unbiased=False, keepdim=True) + m.eps)
        y = (x - mean) / std
        shape = (1, -1) + (1,) * (x.ndim - 2) if channel_first else tuple(m.normalized_shape)
    else:  # pragma: no cover - NormRule only wraps the types above
        raise XtmrError(f"LRP has no rule for {type(m).__name__}")
    if m.weight is not None:
        y = y * m.weight.reshape(shape)
    shift = None
    if m.bias is not None:
        shift = m.bias.reshape(shape).expand_as(y)
        y = y + shift
    return y, shift


def _channel_first(m: nn.Module) -> bool:
    """torchvision's LayerNorm2d normalises NCHW tensors over the channel dimension."""
    return type(m).__name__ == "LayerNorm2d"


class _ConstRoute(Function):
    @staticmethod
    def forward(ctx: Any, f: Callable[..., Tensor], live: tuple[bool, ...], sink: Sink, *tensors: Tensor) -> Tensor:
        ctx.save_for_backward(*tensors)
        ctx.f, ctx.live, ctx.sink = f, live, sink
        return f(*tensors)

    @staticmethod
    def backward(ctx: Any, r: Tensor) -> tuple[Tensor | None, ...]:
        tensors = ctx.saved_tensors
        with torch.enable_grad():
            leaves = [t.detach().requires_grad_(True) for t in tensors]
            grads = torch.autograd.grad(ctx.f(*leaves), leaves, r, allow_unused=True)
        out: list[Tensor | None] = []
        for is_live, g in zip(ctx.live, grads):
            if is_live:
                out.append(g)
            else:
                if g is not None:
                    ctx.sink.add(g)
                out.append(None)
        return (None, None, None, *out)


class _RuleModule(nn.Module):
    """A rule put in place of one graph operation ``fn(*args, **kwargs)``; ``live`` are the positions of the
    arguments that depend on the network's input."""

    def __init__(self, fn: Callable[..., Tensor], live: tuple[int, ...], sink: Sink | None, label: str) -> None:
        super().__init__()
        self.fn, self.live, self.label = fn, live, label
        self.sink = sink if sink is not None else Sink()

    def extra_repr(self) -> str:
        return self.label


class IdentityRule(_RuleModule):
    """Element-wise non-linearity, product with a constant, or normalisation: relevance passes unchanged."""

    def forward(self, *args: Any, **kwargs: Any) -> Tensor:
        """Apply the operation (relevance: the identity rule)."""
        (i,) = self.live
        result: Tensor = _Identity.apply(args[i], lambda v: _call(self.fn, args, i, v, kwargs))
        return result


class EpsilonRule(_RuleModule):
    """A parameter-free linear map (mean, sum, average pooling): the epsilon rule."""

    def forward(self, *args: Any, **kwargs: Any) -> Tensor:
        """Apply the operation (relevance: the epsilon rule)."""
        (i,) = self.live
        result: Tensor = _Epsilon.apply(args[i], lambda v: _call(self.fn, args, i, v, kwargs))
        return result


class GateRule(_RuleModule):
    """``x * gate``: the gate is a constant; relevance follows ``x``."""

    def __init__(self, fn: Callable[..., Tensor], signal: int, gate: int, sink: Sink | None, label: str) -> None:
        super().__init__(fn, (signal, gate), sink, label)

    def forward(self, *args: Any, **kwargs: Any) -> Tensor:
        """Return the gated signal (relevance: all of it to the signal)."""
        s, g = self.live

        def f(x: Tensor, gate: Tensor) -> Tensor:
            full = list(args)
            full[s], full[g] = x, gate
            result: Tensor = self.fn(*full, **kwargs)
            return result

        result: Tensor = _Gate.apply(args[s], args[g], f)
        return result


class ProductRule(_RuleModule):
    """A product of activations (matmul, einsum, ``a * b``): epsilon rule, then an equal split (uniform rule)."""

    def forward(self, *args: Any, **kwargs: Any) -> Tensor:
        """Return the product (relevance: AttnLRP's uniform rule)."""
        live = self.live

        def f(*factors: Tensor) -> Tensor:
            full = list(args)
            for i, t in zip(live, factors):
                full[i] = t
            result: Tensor = self.fn(*full, **kwargs)
            return result

        result: Tensor = _Product.apply(f, *(args[i] for i in live))
        return result


class SoftmaxRule(_RuleModule):
    """Softmax over ``dim``: AttnLRP's rule ``R_i = x_i (R_i - s_i sum_j R_j)``."""

    def __init__(self, dim: int, sink: Sink | None, label: str = "softmax") -> None:
        super().__init__(torch.softmax, (0,), sink, label)
        self.dim = int(dim)

    def forward(self, x: Tensor, *_args: Any, **_kwargs: Any) -> Tensor:
        """Return ``softmax(x, dim)`` (in x's dtype)."""
        result: Tensor = _Softmax.apply(x, self.dim, self.sink)
        return result


class AddConstRule(_RuleModule):
    """``x + c`` (or ``x - c``) with ``c`` a constant: relevance in proportion, the constant's part a bias share."""

    def __init__(self, live: int, sign: float, sink: Sink | None, label: str) -> None:
        super().__init__(torch.add, (live,), sink, label)
        self.sign = float(sign)

    def forward(self, a: Any, b: Any) -> Tensor:
        """Return the sum (or difference)."""
        x, c = (a, b) if self.live == (0,) else (b, a)
        if not isinstance(c, Tensor):
            c = torch.as_tensor(c, dtype=x.dtype, device=x.device)
        if self.live == (1,) and self.sign < 0:  # c - x = (-x) + c, and -x takes x's relevance (identity rule)
            flipped: Tensor = _AddConst.apply(_Identity.apply(x, torch.neg), c.detach(), 1.0, self.sink)
            return flipped
        result: Tensor = _AddConst.apply(x, c.detach(), self.sign, self.sink)
        return result


class NormRule(nn.Module):
    """LayerNorm / LayerNorm2d / GroupNorm: identity rule on the division by the std, epsilon rule on the rest."""

    def __init__(self, norm: nn.Module, sink: Sink | None) -> None:
        super().__init__()
        if isinstance(norm, nn.LayerNorm) and type(norm) is not nn.LayerNorm and not _channel_first(norm):
            raise XtmrError(f"LRP cannot handle the LayerNorm variant {type(norm).__name__}")
        self.norm = norm
        self.sink = sink if sink is not None else Sink()

    def forward(self, x: Tensor) -> Tensor:
        """Return the normalised ``x``."""
        result: Tensor = _Norm.apply(x, self.norm, self.sink)
        return result


class ConstRouteRule(_RuleModule):
    """A routing operation (``cat``, ``stack``) with constant operands: relevance is routed, and the part that
    reaches a constant is a bias share."""

    def __init__(
        self,
        fn: Callable[..., Tensor],
        consts: tuple[tuple[int, int], ...],
        live: tuple[tuple[int, int], ...],
        **kw: Any,
    ):
        super().__init__(fn, (), kw.get("sink"), kw.get("label", ""))
        self.where = consts + live
        self.flags = tuple([False] * len(consts) + [True] * len(live))

    def forward(self, *args: Any, **kwargs: Any) -> Tensor:
        """Apply the routing operation."""
        tensors = [_pick(args, pos) for pos in self.where]

        def f(*ts: Tensor) -> Tensor:
            full = [list(a) if isinstance(a, (list, tuple)) else a for a in args]
            for (i, j), t in zip(self.where, ts):
                if j < 0:
                    full[i] = t
                else:
                    full[i][j] = t
            result: Tensor = self.fn(*full, **kwargs)
            return result

        result: Tensor = _ConstRoute.apply(f, self.flags, self.sink, *tensors)
        return result


def _pick(args: tuple[Any, ...], pos: tuple[int, int]) -> Tensor:
    i, j = pos
    result: Tensor = args[i] if j < 0 else args[i][j]
    return result


#: Every rule module (a graph's operation that carries its own rule: no Zennit hook).
RULE_MODULES: tuple[type[nn.Module], ...] = (
    IdentityRule,
    EpsilonRule,
    GateRule,
    ProductRule,
    SoftmaxRule,
    AddConstRule,
    NormRule,
    ConstRouteRule,
)


# --------------------------------------------------------------------------------------------------
# Attention modules whose forward cannot be traced or hides its projections: replaced by eager versions.


class LrpSelfAttention(nn.Module):
    """``nn.MultiheadAttention`` used as self-attention, with its input projection as an ``nn.Linear`` (``in_proj``,
    sharing the parameters) and the rules above: softmax (AttnLRP) and the two products (uniform rule).

    Keeps ``out_proj`` (same module object) so its weights keep their qualified name."""

    def __init__(self, mha: nn.MultiheadAttention, sink: Sink) -> None:
        super().__init__()
        if not mha._qkv_same_embed_dim or mha.bias_k is not None or mha.add_zero_attn:
            raise XtmrError("LRP handles nn.MultiheadAttention with equal q/k/v sizes and no extra k/v bias only")
        e = mha.embed_dim
        self.in_proj = nn.Linear(e, 3 * e, bias=mha.in_proj_bias is not None)
        self.in_proj.weight = mha.in_proj_weight
        if mha.in_proj_bias is not None:
            self.in_proj.bias = mha.in_proj_bias
        self.out_proj = mha.out_proj
        self.heads, self.batch_first = mha.num_heads, mha.batch_first
        self.sink = sink
        self.softmax = SoftmaxRule(-1, sink)
        self.scores = ProductRule(torch.matmul, (0, 1), sink, "q @ k^T")
        self.mix = ProductRule(torch.matmul, (0, 1), sink, "attention @ v")
        self.scale = IdentityRule(torch.mul, (0,), sink, "q * scale")

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        key_padding_mask: Tensor | None = None,
        need_weights: bool = True,
        attn_mask: Tensor | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[Tensor, None]:
        """Self-attention of ``query`` (which must be ``key`` and ``value``); no masks."""
        if not (query is key and key is value) or key_padding_mask is not None or attn_mask is not None or is_causal:
            raise XtmrError("LRP handles nn.MultiheadAttention as unmasked self-attention (query = key = value) only")
        x = query if self.batch_first else query.transpose(0, 1)
        n, t, e = x.shape
        q, k, v = self.in_proj(x).reshape(n, t, 3, self.heads, e // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        q = self.scale(q, (e // self.heads) ** -0.5)
        attn = self.softmax(self.scores(q, k.transpose(-2, -1)))
        out = self.out_proj(self.mix(attn, v).transpose(1, 2).reshape(n, t, e))
        return (out if self.batch_first else out.transpose(0, 1)), None


@dataclass(frozen=True)
class _Windows:
    """Where the windows of one Swin attention call lie: their size, the cyclic shift (0 on a side one window
    covers) and the padded height and width."""

    size: tuple[int, int]
    shift: tuple[int, int]
    pad_h: int
    pad_w: int

    @property
    def rows(self) -> int:
        return self.pad_h // self.size[0]

    @property
    def cols(self) -> int:
        return self.pad_w // self.size[1]

    @property
    def count(self) -> int:
        return self.rows * self.cols

    @property
    def shifted(self) -> bool:
        return sum(self.shift) > 0


def _swin_partition(x: Tensor, window_size: list[int], shift_size: list[int]) -> tuple[Tensor, _Windows]:
    """``x`` (b, h, w, c) padded, shifted and cut into windows of ``window_size`` ((b * windows, tokens, c))."""
    b, h, w, c = x.shape
    pad_r = (window_size[1] - w % window_size[1]) % window_size[1]
    pad_b = (window_size[0] - h % window_size[0]) % window_size[0]
    x = F.pad(x, (0, 0, 0, pad_r, 0, pad_b))
    _, pad_h, pad_w, _ = x.shape
    shift = list(shift_size)
    if window_size[0] >= pad_h:
        shift[0] = 0
    if window_size[1] >= pad_w:
        shift[1] = 0
    win = _Windows((window_size[0], window_size[1]), (shift[0], shift[1]), pad_h, pad_w)
    if win.shifted:
        x = torch.roll(x, shifts=(-shift[0], -shift[1]), dims=(1, 2))
    x = x.view(b, win.rows, window_size[0], win.cols, window_size[1], c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(b * win.count, window_size[0] * window_size[1], c), win


def _swin_merge(x: Tensor, win: _Windows, b: int, c: int) -> Tensor:
    """The windows put back in place and shifted back: (b, padded height, padded width, c)."""
    x = x.view(b, win.rows, win.cols, win.size[0], win.size[1], c)
    x = x.permute(0, 1, 3, 2, 4, 5).reshape(b, win.pad_h, win.pad_w, c)
    if win.shifted:
        x = torch.roll(x, shifts=(win.shift[0], win.shift[1]), dims=(1, 2))
    return x


def _swin_scores(self: Any, x: Tensor) -> tuple[Tensor, Tensor]:
    """The attention scores of the windows ``x`` (before biases and masks) and their values ``v``."""
    rules: dict[str, nn.Module] = self._xtmr_rules
    num_heads, c = self.num_heads, x.shape[-1]
    logit_scale = getattr(self, "logit_scale", None)
    if logit_scale is not None and self.qkv.bias is not None:
        # Swin V2 zeroes the key bias (torchvision does it on a copy at every call; here once, in the LRP copy).
        length = self.qkv.bias.numel() // 3
        with torch.no_grad():
            self.qkv.bias[length : 2 * length].zero_()
    qkv = self.qkv(x)
    qkv = qkv.reshape(x.size(0), x.size(1), 3, num_heads, c // num_heads).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    if logit_scale is not None:
        qn = rules["norm_q"](q, dim=-1)
        kn = rules["norm_k"](k, dim=-1)
        attn = rules["scores"](qn, kn.transpose(-2, -1))
        scale = torch.clamp(logit_scale.detach(), max=math.log(100.0)).exp()
        return rules["logit_scale"](attn, scale), v
    q = rules["scale"](q, (c // num_heads) ** -0.5)
    return rules["scores"](q, k.transpose(-2, -1)), v


def _swin_mask(like: Tensor, win: _Windows) -> Tensor:
    """The shifted windows' attention mask: 0 between tokens of one region, -100 across regions (windows x 1 x
    tokens x tokens), built on ``like``'s device and dtype."""
    (wh, ww), (sh, sw) = win.size, win.shift
    attn_mask = like.new_zeros((win.pad_h, win.pad_w))
    h_slices = ((0, -wh), (-wh, -sh), (-sh, None))
    w_slices = ((0, -ww), (-ww, -sw), (-sw, None))
    count = 0
    for hs in h_slices:
        for ws in w_slices:
            attn_mask[hs[0] : hs[1], ws[0] : ws[1]] = count
            count += 1
    attn_mask = attn_mask.view(win.rows, wh, win.cols, ww)
    attn_mask = attn_mask.permute(0, 2, 1, 3).reshape(win.count, wh * ww)
    attn_mask = attn_mask.unsqueeze(1) - attn_mask.unsqueeze(2)
    attn_mask = attn_mask.masked_fill(attn_mask != 0, (-100.0)).masked_fill(attn_mask == 0, 0.0)
    return attn_mask.unsqueeze(1).unsqueeze(0)


def _swin_forward(self: Any, x: Tensor) -> Tensor:
    """torchvision's ``shifted_window_attention`` (BSD-3-Clause) with the projections called as modules and
    LRP rules on the softmax, the products and the constant biases and masks.

    ``self`` is torchvision's ``ShiftedWindowAttention`` (or its V2), typed ``Any`` as torchvision has no hints."""
    rules: dict[str, nn.Module] = self._xtmr_rules
    num_heads = self.num_heads
    relative_position_bias = self.get_relative_position_bias().detach()
    b, h, w, c = x.shape
    x, win = _swin_partition(x, list(self.window_size), list(self.shift_size))
    attn, v = _swin_scores(self, x)
    attn = rules["bias"](attn, relative_position_bias)
    if win.shifted:
        attn_mask = _swin_mask(x, win)
        attn = attn.view(x.size(0) // win.count, win.count, num_heads, x.size(1), x.size(1))
        attn = rules["mask"](attn, attn_mask)
        attn = attn.view(-1, num_heads, x.size(1), x.size(1))
    attn = rules["softmax"](attn)
    x = rules["mix"](attn, v).transpose(1, 2).reshape(x.size(0), x.size(1), c)
    x = _swin_merge(self.proj(x), win, b, c)
    return x[:, :h, :w, :].contiguous()


def _swin_rules(sink: Sink) -> nn.ModuleDict:
    return nn.ModuleDict(
        {
            "norm_q": IdentityRule(F.normalize, (0,), sink, "normalize q"),
            "norm_k": IdentityRule(F.normalize, (0,), sink, "normalize k"),
            "scores": ProductRule(torch.matmul, (0, 1), sink, "q @ k^T"),
            "logit_scale": IdentityRule(torch.mul, (0,), sink, "* logit scale"),
            "scale": IdentityRule(torch.mul, (0,), sink, "q * scale"),
            "bias": AddConstRule(0, 1.0, sink, "+ relative position bias"),
            "mask": AddConstRule(0, 1.0, sink, "+ shift mask"),
            "softmax": SoftmaxRule(-1, sink),
            "mix": ProductRule(torch.matmul, (0, 1), sink, "attention @ v"),
        }
    )


def lrp_attention_swap(model: nn.Module, sink: Sink) -> None:
    """In place (on a private copy): replace ``nn.MultiheadAttention`` by ``LrpSelfAttention`` and give torchvision's
    shifted-window attention an eager forward with LRP rules. Qualified names of all weights are kept."""
    for name, m in list(model.named_modules()):
        if isinstance(m, nn.MultiheadAttention):
            parent, _, attr = name.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, attr, LrpSelfAttention(m, sink))
        elif type(m).__name__ in ("ShiftedWindowAttention", "ShiftedWindowAttentionV2") and hasattr(m, "qkv"):
            m._xtmr_sink = sink
            m._xtmr_rules = _swin_rules(sink)
            m.__class__ = type(f"Lrp{type(m).__name__}", (type(m),), {"forward": _swin_forward, "_xtmr_leaf": True})
