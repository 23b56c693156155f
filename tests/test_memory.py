"""The flat weight layout against the model's own tensors."""

import numpy as np
import pytest
import torch

from xtmr_core.memory import flat_weights, layout_of


def test_layout_follows_the_conv_and_linear_weights_in_order(tiny_model):
    layout = layout_of(tiny_model)
    assert layout.names == ("conv", "fc")
    assert layout.shapes == ((2, 1, 3, 3), (3, 32))
    assert layout.offsets.tolist() == [0, 18, 114] and layout.n_weights == 114
    flat = flat_weights(tiny_model)
    assert np.array_equal(flat[:18], tiny_model.conv.weight.detach().numpy().reshape(-1))
    assert np.array_equal(flat[18:], tiny_model.fc.weight.detach().numpy().reshape(-1))


def test_locate_layer_of_and_channels(tiny_model):
    layout = layout_of(tiny_model)
    assert layout.locate(0) == ("conv", (0, 0, 0, 0))
    assert layout.locate(17) == ("conv", (1, 0, 2, 2))
    assert layout.locate(18 + 32 + 5) == ("fc", (1, 5))
    assert layout.layer_of(np.array([0, 17, 18, 113])).tolist() == [0, 0, 1, 1]
    ch = layout.channel_ids()
    assert ch[:9].tolist() == [0] * 9 and ch[9:18].tolist() == [1] * 9 and ch[18] == 2 and ch[-1] == 4
    with pytest.raises(IndexError):
        layout.locate(114)


def test_flatten_and_split_round_trip(tiny_model):
    layout = layout_of(tiny_model)
    per_layer = {"conv": tiny_model.conv.weight, "fc": tiny_model.fc.weight}
    flat = layout.flatten(per_layer)
    back = layout.split(flat)
    assert torch.equal(torch.from_numpy(back["fc"]).float(), tiny_model.fc.weight.detach())
    with pytest.raises(KeyError):
        layout.flatten({"conv": tiny_model.conv.weight})
