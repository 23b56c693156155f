"""Tests for the LRP rules of modern layers (xtmr_core.lrp_rules, canonize.lrp_ready, relevance.lrp_balance):
each rule against a slow float64 loop over its formula, a small ViT and a squeeze-excitation CNN against a slow
per-sample reference of the whole network, the network balance on torchvision architectures, and the zoo."""

from __future__ import annotations

import csv
import itertools
import math

import numpy as np
import pytest
import torch
from torch import nn

from xtmr_core.canonize import lrp_ready
from xtmr_core.errors import XtmrError
from xtmr_core.models import Add, VisionTransformer
from xtmr_core.relevance import input_relevance, lrp_balance, lrp_weight_relevance

EPS = 1e-9  # the epsilon rule's default and the rules' stabiliser


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """One intra-op thread for this module's many small float64 ops: on 2 cores shared with other work, torch's
    second thread spin-waits for a core (measured: the torchvision tests took 97 s with 2 threads and 18 s with
    1 under load 3, and the whole module 9.5 s and 9.1 s on an idle machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _stab(z: float) -> float:
    return z + (EPS if z >= 0 else -EPS)


def _assert_close(got: torch.Tensor, want: np.ndarray, rtol: float = 1e-6) -> None:
    want_t = torch.from_numpy(np.asarray(want, dtype=np.float64))
    assert float((want_t != 0).double().mean()) > 0.2, "too little relevance to test anything"
    torch.testing.assert_close(got.double(), want_t, rtol=rtol, atol=rtol * float(want_t.abs().max()))


# --------------------------------------------------------------------------------------------------
# Slow, explicit rules (float64, one sample, plain loops)


def slow_linear(a: np.ndarray, w: np.ndarray, b: np.ndarray, r: np.ndarray, acc_w: np.ndarray, acc_b: np.ndarray):
    """Epsilon rule through ``z = W a + b`` for one vector: returns R_a, adds messages to acc_w / acc_b."""
    z = w @ a + b
    r_a = np.zeros_like(a)
    for j in range(w.shape[0]):
        d = _stab(z[j])
        acc_b[j] += b[j] * r[j] / d
        for i in range(w.shape[1]):
            msg = a[i] * w[j, i] * r[j] / d
            acc_w[j, i] += msg
            r_a[i] += msg
    return r_a


def slow_layernorm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float, r: np.ndarray, bias: list[float]):
    """AttnLRP / lxt LayerNorm rule on one vector: sigma constant, epsilon rule on (x - mean) * w / sigma + b."""
    n = len(x)
    mu, sigma = x.mean(), math.sqrt(x.var() + eps)
    y = (x - mu) / sigma * w + b
    r_x = np.zeros_like(x)
    for j in range(n):
        d = _stab(y[j])
        bias.append(b[j] * r[j] / d)
        for i in range(n):
            r_x[i] += x[i] * ((1.0 if i == j else 0.0) - 1.0 / n) * w[j] / sigma * r[j] / d
    return r_x


def slow_softmax(x: np.ndarray, r: np.ndarray, bias: list[float]) -> np.ndarray:
    """AttnLRP's softmax rule on one row: R_i = x_i (R_i - s_i sum_j R_j)."""
    s = np.exp(x - x.max())
    s /= s.sum()
    total = sum(r)
    out = np.array([x[i] * (r[i] - s[i] * total) for i in range(len(x))])
    bias.append(total - out.sum())
    return out


# --------------------------------------------------------------------------------------------------
# 1. A small vision transformer against a slow reference of the whole network


def _tiny_vit(seed: int = 0) -> VisionTransformer:
    torch.manual_seed(seed)
    model = VisionTransformer((1, 8, 8), 3, dim=4, depth=1, heads=2)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape) * 0.7)  # not the small init: every path carries relevance
        for m in model.modules():
            if isinstance(m, nn.LayerNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    return model.double().eval()


class SlowViT:
    """LRP of ``_tiny_vit`` for one image, op by op with the rules above (4 tokens of width 4, 2 heads)."""

    def __init__(self, model: VisionTransformer) -> None:
        self.p = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
        self.m = model
        self.wrel = {k: np.zeros_like(v) for k, v in self.p.items() if k.endswith("weight") and v.ndim >= 2}
        self.brel = {k[: -len(".weight")]: np.zeros(v.shape[0]) for k, v in self.wrel.items()}
        self.other_bias: list[float] = []
        self.r_input: list[np.ndarray] = []

    def _lin(self, name: str, a: np.ndarray, r: np.ndarray | None = None):
        w, b = self.p[f"{name}.weight"], self.p[f"{name}.bias"]
        if r is None:
            return w @ a + b
        return slow_linear(a, w, b, r, self.wrel[f"{name}.weight"], self.brel[name])

    def run(self, img: np.ndarray, target: int) -> float:  # noqa: PLR0915 (a slow reference, written out step by step)
        p, m = self.p, self.m
        heads, dim = 2, 4
        dh = dim // heads
        # forward
        patches = np.stack(
            [img[0, 4 * (t // 2) : 4 * (t // 2) + 4, 4 * (t % 2) : 4 * (t % 2) + 4].reshape(-1) for t in range(4)]
        )
        wp = p["patch.weight"].reshape(dim, -1)
        tok = np.stack([wp @ patches[t] + p["patch.bias"] for t in range(4)])
        e = tok + p["pos"][0]

        def ln(name, x):
            w, b = p[f"{name}.weight"], p[f"{name}.bias"]
            return np.stack([(v - v.mean()) / math.sqrt(v.var() + 1e-5) * w + b for v in x])

        blk = "blocks.0"
        n1 = ln(f"{blk}.norm1", e)
        qkv = np.stack([self._lin(f"{blk}.attn.qkv", n1[t]) for t in range(4)])
        q = qkv[:, :dim].reshape(4, heads, dh)
        k = qkv[:, dim : 2 * dim].reshape(4, heads, dh)
        v = qkv[:, 2 * dim :].reshape(4, heads, dh)
        scale = dh**-0.5
        qs = q * scale
        scores = np.zeros((heads, 4, 4))
        for h, t, u in itertools.product(range(heads), range(4), range(4)):
            scores[h, t, u] = sum(qs[t, h, d] * k[u, h, d] for d in range(dh))
        att = np.exp(scores - scores.max(-1, keepdims=True))
        att /= att.sum(-1, keepdims=True)
        o = np.zeros((4, heads, dh))
        for h, t, d in itertools.product(range(heads), range(4), range(dh)):
            o[t, h, d] = sum(att[h, t, u] * v[u, h, d] for u in range(4))
        of = o.reshape(4, dim)
        pr = np.stack([self._lin(f"{blk}.attn.proj", of[t]) for t in range(4)])
        e2 = e + pr
        n2 = ln(f"{blk}.norm2", e2)
        hid = np.stack([self._lin(f"{blk}.fc1", n2[t]) for t in range(4)])
        gel = 0.5 * hid * (1 + np.vectorize(math.erf)(hid / math.sqrt(2)))
        f = np.stack([self._lin(f"{blk}.fc2", gel[t]) for t in range(4)])
        e3 = e2 + f
        nf = ln("norm", e3)
        mean = nf.mean(0)
        logits = self._lin("head", mean)

        # backward
        r_logits = np.zeros(3)
        r_logits[target] = logits[target]
        r_mean = self._lin("head", mean, r_logits)
        r_nf = np.zeros_like(nf)
        for t, d in itertools.product(range(4), range(dim)):
            r_nf[t, d] = nf[t, d] / 4 * r_mean[d] / _stab(mean[d])  # epsilon rule of the mean
        r_e3 = np.stack(
            [slow_layernorm(e3[t], p["norm.weight"], p["norm.bias"], 1e-5, r_nf[t], self.other_bias) for t in range(4)]
        )
        # residual add e3 = e2 + f: in proportion
        r_e2 = e2 * r_e3 / np.vectorize(_stab)(e3)
        r_f = f * r_e3 / np.vectorize(_stab)(e3)
        r_gel = np.stack([self._lin(f"{blk}.fc2", gel[t], r_f[t]) for t in range(4)])
        r_hid = r_gel  # GELU: identity rule
        r_n2 = np.stack([self._lin(f"{blk}.fc1", n2[t], r_hid[t]) for t in range(4)])
        ln2w, ln2b = p[f"{blk}.norm2.weight"], p[f"{blk}.norm2.bias"]
        r_e2 = r_e2 + np.stack([slow_layernorm(e2[t], ln2w, ln2b, 1e-5, r_n2[t], self.other_bias) for t in range(4)])
        r_e = e * r_e2 / np.vectorize(_stab)(e2)
        r_pr = pr * r_e2 / np.vectorize(_stab)(e2)
        r_of = np.stack([self._lin(f"{blk}.attn.proj", of[t], r_pr[t]) for t in range(4)])
        r_o = r_of.reshape(4, heads, dh)
        r_att = np.zeros_like(att)
        r_v = np.zeros_like(v)
        for h, t, d in itertools.product(range(heads), range(4), range(dh)):
            den = _stab(o[t, h, d])
            for u in range(4):
                half = att[h, t, u] * v[u, h, d] * r_o[t, h, d] / den / 2  # uniform rule: half to each factor
                r_att[h, t, u] += half
                r_v[u, h, d] += half
        r_scores = np.stack(
            [
                np.stack([slow_softmax(scores[h, t], r_att[h, t], self.other_bias) for t in range(4)])
                for h in range(heads)
            ]
        )
        r_qs = np.zeros_like(qs)
        r_k = np.zeros_like(k)
        for h, t, u in itertools.product(range(heads), range(4), range(4)):
            den = _stab(scores[h, t, u])
            for d in range(dh):
                half = qs[t, h, d] * k[u, h, d] * r_scores[h, t, u] / den / 2
                r_qs[t, h, d] += half
                r_k[u, h, d] += half
        r_q = r_qs  # times a constant: identity rule
        r_qkv = np.concatenate([r_q.reshape(4, dim), r_k.reshape(4, dim), r_v.reshape(4, dim)], axis=1)
        r_n1 = np.stack([self._lin(f"{blk}.attn.qkv", n1[t], r_qkv[t]) for t in range(4)])
        ln1w, ln1b = p[f"{blk}.norm1.weight"], p[f"{blk}.norm1.bias"]
        r_e = r_e + np.stack([slow_layernorm(e[t], ln1w, ln1b, 1e-5, r_n1[t], self.other_bias) for t in range(4)])
        # + position embedding: in proportion, the embedding's part a bias share
        r_tok = np.zeros_like(tok)
        for t, d in itertools.product(range(4), range(dim)):
            den = _stab(e[t, d])
            r_tok[t, d] = tok[t, d] * r_e[t, d] / den
            self.other_bias.append(p["pos"][0, t, d] * r_e[t, d] / den)
        # patch embedding: a linear layer per token
        wrel = self.wrel["patch.weight"].reshape(dim, -1)
        r_img = np.zeros_like(img)
        for t in range(4):
            r_patch = slow_linear(patches[t], wp, p["patch.bias"], r_tok[t], wrel, self.brel["patch"])
            r_img[0, 4 * (t // 2) : 4 * (t // 2) + 4, 4 * (t % 2) : 4 * (t % 2) + 4] += r_patch.reshape(4, 4)
        self.wrel["patch.weight"] = wrel.reshape(self.p["patch.weight"].shape)
        self.r_input.append(r_img)
        del m
        return float(logits[target])


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def _top_overlap(a: np.ndarray, b: np.ndarray, share: float) -> float:
    k = max(1, int(round(share * len(a))))
    return len(set(np.argsort(-a)[:k]) & set(np.argsort(-b)[:k])) / k


def test_vit_weight_relevance_matches_the_slow_reference():
    model = _tiny_vit()
    x = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64) - 0.3
    y = torch.tensor([0, 1, 2])
    got = lrp_weight_relevance(model, x, y, return_bias=True)
    ref = SlowViT(model)
    logits = sum(ref.run(xi, yi) for xi, yi in zip(x.numpy(), y.tolist()))
    names = ["patch", "blocks.0.attn.qkv", "blocks.0.attn.proj", "blocks.0.fc1", "blocks.0.fc2", "head"]
    assert [k for k in got if not k.endswith(".bias")] == names
    flat_got, flat_ref = [], []
    for name in names:
        _assert_close(got[name], ref.wrel[f"{name}.weight"])
        _assert_close(got[f"{name}.bias"], ref.brel[name])
        flat_got.append(got[name].double().abs().reshape(-1).numpy())
        flat_ref.append(np.abs(ref.wrel[f"{name}.weight"]).reshape(-1))
    # the scorer's view: |relevance| ranks the weights the same way (Spearman 1, top-1% and top-10% identical)
    a, b = np.concatenate(flat_got), np.concatenate(flat_ref)
    assert _spearman(a, b) > 0.9999
    assert _top_overlap(a, b, 0.01) == 1.0 and _top_overlap(a, b, 0.10) == 1.0
    _assert_close(input_relevance(model, x, y), np.stack(ref.r_input))
    # the balance: input + every bias share (layers, LayerNorm betas, position embedding, softmax) = logits
    balance = lrp_balance(model, x, y)
    want_bias = sum(float(v.sum()) for v in ref.brel.values()) + sum(ref.other_bias)
    assert balance.logits == pytest.approx(logits, rel=1e-12)
    assert balance.bias == pytest.approx(want_bias, rel=1e-6, abs=1e-9 * abs(logits))
    assert balance.error < 1e-7  # only the 1e-9 stabilisers leak


def test_multihead_attention_module_gives_the_same_relevance_as_the_traced_attention():
    """nn.MultiheadAttention (swapped for an eager rule-built module) = the project's traced Attention."""
    from xtmr_core.models import Attention

    class MhaBlock(nn.Module):
        def __init__(self, attn: Attention) -> None:
            super().__init__()
            self.embed = nn.Linear(3, 4)
            self.mha = nn.MultiheadAttention(4, 2, batch_first=True)
            with torch.no_grad():
                self.mha.in_proj_weight.copy_(attn.qkv.weight)
                self.mha.in_proj_bias.copy_(attn.qkv.bias)
                self.mha.out_proj.weight.copy_(attn.proj.weight)
                self.mha.out_proj.bias.copy_(attn.proj.bias)
            self.head = nn.Linear(4, 3)

        def forward(self, x):
            h = self.embed(x)
            return self.head(self.mha(h, h, h, need_weights=False)[0].mean(dim=1))

    class OwnBlock(nn.Module):
        def __init__(self, attn: Attention, other: MhaBlock) -> None:
            super().__init__()
            self.embed, self.attn, self.head = other.embed, attn, other.head

        def forward(self, x):
            return self.head(self.attn(self.embed(x)).mean(dim=1))

    torch.manual_seed(3)
    attn = Attention(4, 2)
    mha = MhaBlock(attn).double().eval()
    own = OwnBlock(attn, mha).double().eval()
    x = torch.randn(3, 5, 3, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    y = torch.tensor([0, 1, 2])
    with torch.no_grad():
        torch.testing.assert_close(mha(x), own(x))
    a, b = lrp_weight_relevance(mha, x, y, return_bias=True), lrp_weight_relevance(own, x, y, return_bias=True)
    assert "mha.out_proj" in a and "mha.in_proj_weight" not in a  # the raw in_proj parameter is not a layer
    for ours, theirs in (("embed", "embed"), ("head", "head"), ("attn.proj", "mha.out_proj")):
        torch.testing.assert_close(a[theirs], b[ours], rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(a[f"{theirs}.bias"], b[f"{ours}.bias"], rtol=1e-9, atol=1e-12)
    assert lrp_balance(mha, x, y).error < 1e-9


# --------------------------------------------------------------------------------------------------
# 2. A squeeze-excitation CNN with SiLU, Hardswish, an unfoldable BatchNorm and GroupNorm


class EdgeNet(nn.Module):
    """conv 3×3 → Hardswish → BatchNorm (after the activation: cannot be folded) → SE gate (sigmoid) →
    SiLU → GroupNorm(2 groups) → global mean (functional) → linear."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.act = nn.Hardswish()
        self.bn = nn.BatchNorm2d(4)
        self.fc1 = nn.Conv2d(4, 2, 1)
        self.fc2 = nn.Conv2d(2, 4, 1)
        self.silu = nn.SiLU()
        self.gn = nn.GroupNorm(2, 4)
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        h = self.bn(self.act(self.conv(x)))
        s = torch.sigmoid(self.fc2(torch.relu(self.fc1(h.mean((2, 3), keepdim=True)))))
        h = self.gn(self.silu(h * s))
        return self.head(h.mean(dim=(2, 3)))


def _edge(seed: int = 0) -> EdgeNet:
    torch.manual_seed(seed)
    model = EdgeNet()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        model.bn.weight.uniform_(0.5, 1.5, generator=g)
        model.bn.bias.uniform_(-0.3, 0.3, generator=g)
        model.bn.running_mean.uniform_(-0.2, 0.2, generator=g)
        model.bn.running_var.uniform_(0.5, 1.5, generator=g)
        model.gn.weight.uniform_(0.5, 1.5, generator=g)
        model.gn.bias.uniform_(-0.3, 0.3, generator=g)
    return model.double().eval()


def slow_edge(model: EdgeNet, img: np.ndarray, target: int, acc: dict, other: list[float], r_inputs: list) -> float:  # noqa: PLR0915 (slow reference)
    """The EdgeNet's LRP for one image (4×4 pixels), op by op."""
    P = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    wc, bc = P["conv.weight"], P["conv.bias"]
    c, hh, ww = 4, img.shape[1], img.shape[2]
    z = np.zeros((c, hh, ww))
    for o, y, x in itertools.product(range(c), range(hh), range(ww)):
        z[o, y, x] = bc[o] + sum(
            img[0, y + r - 1, x + s - 1] * wc[o, 0, r, s]
            for r, s in itertools.product(range(3), range(3))
            if 0 <= y + r - 1 < hh and 0 <= x + s - 1 < ww
        )
    a = z * np.clip(z + 3, 0, 6) / 6  # Hardswish
    std = np.sqrt(P["bn.running_var"] + 1e-5)
    sc = P["bn.weight"] / std
    sh = P["bn.bias"] - P["bn.running_mean"] * sc
    h = a * sc[:, None, None] + sh[:, None, None]
    pooled = h.mean((1, 2))
    u = np.maximum(P["fc1.weight"][:, :, 0, 0] @ pooled + P["fc1.bias"], 0)
    s = 1 / (1 + np.exp(-(P["fc2.weight"][:, :, 0, 0] @ u + P["fc2.bias"])))
    gated = h * s[:, None, None]
    si = gated / (1 + np.exp(-gated))
    gn = np.zeros_like(si)
    for g in range(2):
        blk = si[2 * g : 2 * g + 2]
        gn[2 * g : 2 * g + 2] = (blk - blk.mean()) / math.sqrt(blk.var() + 1e-5)
    gn = gn * P["gn.weight"][:, None, None] + P["gn.bias"][:, None, None]
    m = gn.mean((1, 2))
    logits = P["head.weight"] @ m + P["head.bias"]
    # backward
    r = np.zeros(3)
    r[target] = logits[target]
    r_m = slow_linear(m, P["head.weight"], P["head.bias"], r, acc["head"][0], acc["head"][1])
    n = hh * ww
    r_gn = np.zeros_like(gn)
    for ch, y, x in itertools.product(range(c), range(hh), range(ww)):
        r_gn[ch, y, x] = gn[ch, y, x] / n * r_m[ch] / _stab(m[ch])
    # GroupNorm: sigma per group constant, epsilon rule on (x - group mean) * w / sigma + b
    r_si = np.zeros_like(si)
    for g in range(2):
        idx = list(itertools.product(range(2 * g, 2 * g + 2), range(hh), range(ww)))
        blk = si[2 * g : 2 * g + 2]
        sigma = math.sqrt(blk.var() + 1e-5)
        for j in idx:
            d = _stab(gn[j])
            other.append(P["gn.bias"][j[0]] * r_gn[j] / d)
            for i in idx:
                dy = ((1.0 if i == j else 0.0) - 1.0 / len(idx)) * P["gn.weight"][j[0]] / sigma
                r_si[i] += si[i] * dy * r_gn[j] / d
    r_gated = r_si  # SiLU: identity rule
    r_h = r_gated  # gate: a constant, all relevance to the signal; fc1 and fc2 get none
    # unfoldable BatchNorm: a * s + t per channel, t a bias share
    r_a = np.zeros_like(a)
    for ch, y, x in itertools.product(range(c), range(hh), range(ww)):
        d = _stab(h[ch, y, x])
        msg = a[ch, y, x] * sc[ch] * r_h[ch, y, x] / d
        acc["bn"][0][ch] += msg
        acc["bn"][1][ch] += sh[ch] * r_h[ch, y, x] / d
        r_a[ch, y, x] = msg
    r_z = r_a  # Hardswish: identity rule
    r_img = np.zeros_like(img)
    for o, y, x in itertools.product(range(c), range(hh), range(ww)):
        d = _stab(z[o, y, x])
        acc["conv"][1][o] += bc[o] * r_z[o, y, x] / d
        for rr, ss in itertools.product(range(3), range(3)):
            yy, xx = y + rr - 1, x + ss - 1
            if 0 <= yy < hh and 0 <= xx < ww:
                msg = img[0, yy, xx] * wc[o, 0, rr, ss] * r_z[o, y, x] / d
                acc["conv"][0][o, 0, rr, ss] += msg
                r_img[0, yy, xx] += msg
    r_inputs.append(r_img)
    return float(logits[target])


def test_squeeze_excitation_cnn_matches_the_slow_reference():
    model = _edge()
    x = torch.rand(3, 1, 4, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 4 - 2
    y = torch.tensor([2, 0, 1])
    got = lrp_weight_relevance(model, x, y, return_bias=True)
    shapes = {n: dict(model.named_modules())[n].weight.shape for n in ("conv", "bn", "head")}
    acc = {n: [np.zeros(tuple(s)), np.zeros(s[0])] for n, s in shapes.items()}
    other: list[float] = []
    r_inputs: list[np.ndarray] = []
    logits = sum(slow_edge(model, xi, yi, acc, other, r_inputs) for xi, yi in zip(x.numpy(), y.tolist()))
    for name in ("conv", "bn", "head"):
        _assert_close(got[name], acc[name][0])
        _assert_close(got[f"{name}.bias"], acc[name][1])
    # the gate's layers get no relevance at all (not a small one)
    assert not got["fc1"].any() and not got["fc2"].any()
    _assert_close(input_relevance(model, x, y), np.stack(r_inputs))
    balance = lrp_balance(model, x, y)
    assert balance.logits == pytest.approx(logits, rel=1e-12)
    assert balance.error < 1e-7  # only the 1e-9 stabilisers leak
    want_bias = sum(float(v[1].sum()) for v in acc.values()) + sum(other)
    assert balance.bias == pytest.approx(want_bias, rel=1e-6)


# --------------------------------------------------------------------------------------------------
# 3. Single rules against their formulas, and refusals


def test_softmax_rule_is_attnlrp_and_its_bias_share_closes_the_balance():
    from xtmr_core.lrp_rules import SoftmaxRule

    g = torch.Generator().manual_seed(5)
    x = torch.randn(2, 3, 5, generator=g, dtype=torch.float64).requires_grad_(True)
    r = torch.randn(2, 3, 5, generator=g, dtype=torch.float64)
    rule = SoftmaxRule(-1, None)
    (r_x,) = torch.autograd.grad(rule(x), x, r)
    bias: list[float] = []
    want = np.stack(
        [np.stack([slow_softmax(x[a, b].detach().numpy(), r[a, b].numpy(), bias) for b in range(3)]) for a in range(2)]
    )
    torch.testing.assert_close(r_x, torch.from_numpy(want))
    assert rule.sink.total == pytest.approx(sum(bias), rel=1e-10)


def test_product_rule_splits_each_term_in_half():
    from xtmr_core.lrp_rules import ProductRule

    g = torch.Generator().manual_seed(6)
    a = torch.randn(3, 4, generator=g, dtype=torch.float64).requires_grad_(True)
    b = torch.randn(4, 2, generator=g, dtype=torch.float64).requires_grad_(True)
    r = torch.randn(3, 2, generator=g, dtype=torch.float64)
    z = ProductRule(torch.matmul, (0, 1), None, "a @ b")(a, b)
    r_a, r_b = torch.autograd.grad(z, (a, b), r)
    want_a, want_b = np.zeros((3, 4)), np.zeros((4, 2))
    an, bn, zn = a.detach().numpy(), b.detach().numpy(), z.detach().numpy()
    for i, k, j in itertools.product(range(3), range(4), range(2)):
        term = an[i, k] * bn[k, j] * r[i, j].item() / _stab(zn[i, j])
        want_a[i, k] += term / 2
        want_b[k, j] += term / 2
    torch.testing.assert_close(r_a, torch.from_numpy(want_a))
    torch.testing.assert_close(r_b, torch.from_numpy(want_b))
    assert float(r_a.sum() + r_b.sum()) == pytest.approx(float(r.sum()), rel=1e-8)


class _Routing(nn.Module):
    """Channel shuffle, chunk, cat, permute/transpose, integer shape arithmetic, an assertion, dropout,
    a scale, average pooling as a function, and a class token concatenated (a constant)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.token = nn.Parameter(torch.randn(1, 1, 4))
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        n, c, h, w = x.shape
        torch._assert(h == w, "square images")
        z = self.conv(x)
        z = z.view(n, 2, 2, h, w).transpose(1, 2).reshape(n, 4, h, w)  # channel shuffle
        a, b = z.chunk(2, dim=1)
        z = torch.cat([b, a], dim=1) * 0.5
        z = nn.functional.avg_pool2d(nn.functional.dropout(z, 0.3, training=False), h // 2)
        tokens = z.flatten(2).permute(0, 2, 1)
        tokens = torch.cat([self.token.expand(n, -1, -1), tokens], dim=1)
        return self.fc(tokens.mean(dim=1))


def test_routing_operations_are_routed_and_the_balance_holds():
    torch.manual_seed(7)
    model = _Routing().double().eval()
    x = torch.rand(3, 2, 4, 4, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    y = torch.tensor([0, 1, 2])
    balance = lrp_balance(model, x, y)
    assert balance.error < 1e-7 and abs(balance.logits) > 1e-3
    # the class token's share is a bias share: removing it from the count breaks the balance
    assert abs(balance.logits - balance.input) > 1e-6 * abs(balance.logits)
    rel = lrp_weight_relevance(model, x, y)
    assert rel["conv"].abs().sum() > 0


def test_refusals_name_the_operation_and_module_in_one_line():
    class Bad(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 3)

        def forward(self, x):
            return self.fc(torch.sort(x, dim=1).values)

    with pytest.raises(XtmrError, match="LRP cannot handle the operation sort in Bad") as info:
        lrp_ready(Bad())
    assert "\n" not in str(info.value)


def test_lrp_ready_puts_rules_in_the_graph_and_leaves_the_model_alone():
    model = _edge()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    work, folded = lrp_ready(model)
    assert folded == {}  # the BatchNorm follows an activation
    kinds = {type(m).__name__ for m in work.modules()}
    assert {"GateRule", "NormRule", "EpsilonRule"} <= kinds
    x = torch.rand(2, 1, 4, 4, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(work(x), model(x))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not any(isinstance(m, Add) for m in model.modules())


# --------------------------------------------------------------------------------------------------
# 4. torchvision architectures and the zoo


@pytest.fixture(scope="module")
def zoo_folder(tmp_path_factory):
    """One small image folder for every zoo test of the module (the zoo only reads it)."""
    from xtmr_core.zoo import write_image_folder

    return write_image_folder(tmp_path_factory.mktemp("zoo") / "imgs", per_class=2)


@pytest.mark.parametrize("name", ["mobilenet_v3_small", "shufflenet_v2_x0_5", "mnasnet0_5"])
def test_torchvision_edge_networks_balance_in_float64(name, zoo_folder):
    from xtmr_core.zoo import run_zoo

    (row,) = run_zoo(zoo_folder, [name], images=2)
    assert row.status == "pass", row.operation
    assert row.balance_error is not None and row.balance_error <= 1e-6 and row.size == 32
    assert row.logits_abs is not None and row.logits_abs > 1e-3  # not a balance of nothing


# Whole torchvision networks, 0.3-2.4 s each on an idle 2-core machine: end to end, so `slow` (`make test` runs
# them). The edge networks above stay in the quick run: squeeze-excitation, channel shuffle and Hardswish, cheaply.
@pytest.mark.slow
@pytest.mark.parametrize("name", ["efficientnet_b0", "regnet_y_400mf", "convnext_tiny", "swin_t", "densenet121"])
def test_torchvision_modern_networks_balance_in_float64(name, zoo_folder):
    from xtmr_core.zoo import run_zoo

    (row,) = run_zoo(zoo_folder, [name], images=2)
    assert row.status == "pass", row.operation
    assert row.balance_error is not None and row.balance_error <= 1e-4
    assert row.logits_abs is not None and row.logits_abs > 1e-3  # not a balance of nothing


def test_zoo_reports_a_balance_over_zero_logits_as_vacuous_not_pass(zoo_folder):
    from xtmr_core.zoo import VACUOUS_LOGITS, run_zoo

    # At its seeded random weights squeezenet1_0's last conv is negative everywhere on these images, so the
    # closing ReLU zeroes every logit: no relevance starts, and a balance error of 0 would have read as a pass.
    (row,) = run_zoo(zoo_folder, ["squeezenet1_0"], images=2)
    assert row.status == "vacuous" and row.logits_abs is not None and row.logits_abs <= VACUOUS_LOGITS
    assert "no relevance" in row.operation and "\n" not in row.operation
    # (its sibling squeezenet1_1 has non-zero logits and passes: test_zoo_command_writes_the_csv)


def test_zoo_command_writes_the_csv(tmp_path):
    from xtmr_core.cli import main

    out = tmp_path / "zoo.csv"
    folder = tmp_path / "imgs"
    assert (
        main(["zoo", "--image-folder", str(folder), "--out", str(out), "--names", "squeezenet1_1", "--images", "2"])
        == 0
    )
    with out.open() as f:
        rows = list(csv.DictReader(f))
    assert [r["name"] for r in rows] == ["squeezenet1_1"]
    assert rows[0]["status"] == "pass" and float(rows[0]["logits_abs"]) > 1e-3  # not a balance of nothing
    assert set(rows[0]) == {"name", "params", "status", "size", "operation", "balance_error", "logits_abs", "seconds"}
    assert main(["zoo", "--image-folder", str(folder), "--names", "nonet"]) == 2
    assert main(["zoo", "--image-folder", str(tmp_path / "empty"), "--images", "0"]) == 2


@pytest.mark.parametrize("expr", ["x - c", "c - x", "x + c", "c + x"])
def test_added_constants_take_their_share_in_both_orders(expr):
    class Shift(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1 = nn.Linear(4, 5)
            self.c = nn.Parameter(torch.linspace(-1, 1, 5))
            self.fc2 = nn.Linear(5, 3)

        def forward(self, x):
            h, c = self.fc1(x), self.c
            h = {"x - c": lambda: h - c, "c - x": lambda: c - h, "x + c": lambda: h + c, "c + x": lambda: c + h}[expr]()
            return self.fc2(h)

    torch.manual_seed(8)
    model = Shift().double().eval()
    x = torch.randn(4, 4, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 0])
    assert any(type(m).__name__ == "AddConstRule" for m in lrp_ready(model)[0].modules())
    got = lrp_weight_relevance(model, x, y, return_bias=True)
    # slow: R at fc2's input, then the constant's proportional share, then fc1's messages
    with torch.no_grad():
        h = model.fc1(x).numpy()
    w2, b2 = model.fc2.weight.detach().numpy(), model.fc2.bias.detach().numpy()
    w1, b1 = model.fc1.weight.detach().numpy(), model.fc1.bias.detach().numpy()
    c = model.c.detach().numpy()
    sign_x, sign_c = {"x - c": (1, -1), "c - x": (-1, 1), "x + c": (1, 1), "c + x": (1, 1)}[expr]
    acc = {"w1": np.zeros_like(w1), "b1": np.zeros_like(b1), "w2": np.zeros_like(w2), "b2": np.zeros_like(b2)}
    for n in range(4):
        z = sign_x * h[n] + sign_c * c
        out = w2 @ z + b2
        r = np.zeros(3)
        r[int(y[n])] = out[int(y[n])]
        r_z = slow_linear(z, w2, b2, r, acc["w2"], acc["b2"])
        r_h = np.array([sign_x * h[n][i] * r_z[i] / _stab(z[i]) for i in range(5)])
        slow_linear(x[n].numpy(), w1, b1, r_h, acc["w1"], acc["b1"])
    _assert_close(got["fc1"], acc["w1"])
    _assert_close(got["fc2"], acc["w2"])
    assert lrp_balance(model, x, y).error < 1e-7
