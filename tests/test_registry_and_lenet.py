"""Registry behaviour and LeNet-5's own layers (Table I, fixed RBF output, paper parameter counts)."""

import pytest
import torch
from torch import nn

from cnnzoo import create_model, list_models
from cnnzoo.errors import UnknownModelError
from cnnzoo.layers import LENET5_C3_TABLE, RBF_DIGIT_BITMAPS, RBFOutput, SparseConv2d, Subsampling
from cnnzoo.models import register_model
from cnnzoo.models.lenet import lenet5_loss


def test_duplicate_registration_is_an_error():
    with pytest.raises(ValueError, match="already registered"):
        register_model("lenet5", input_size=(1, 32, 32), family="lenet")(lambda **kw: nn.Identity())


def test_unknown_name_suggests_close_ones():
    with pytest.raises(UnknownModelError, match=r"did you mean 'lenet5'"):
        create_model("lenet-5")


def test_list_models_pattern():
    assert "lenet5" in list_models("lenet*")
    assert list_models("no-such-*") == []


def test_create_model_options():
    m = create_model("lenet5", num_classes=7, in_channels=3)
    assert m.card.input_size == (3, 32, 32) and m.card.model == "lenet5"
    assert m(torch.randn(2, 3, 32, 32)).shape == (2, 7)


def test_c3_follows_table_one():
    sizes = [len(row) for row in LENET5_C3_TABLE]
    assert sizes == [3] * 6 + [4] * 9 + [6]  # 6 maps of 3, 6 of 4 contiguous, 3 of 4 non-contiguous, 1 of all
    assert all(len(set(row)) == len(row) and max(row) < 6 for row in LENET5_C3_TABLE)
    c3 = SparseConv2d(6, LENET5_C3_TABLE)
    assert sum(p.numel() for p in c3.parameters()) == 1_516  # not 16 × (6·25 + 1) = 2,416
    dense = c3.dense_weight()
    for o, row in enumerate(LENET5_C3_TABLE):
        for i in range(6):
            assert bool(dense[o, i].abs().sum() > 0) == (i in row)


def test_c3_output_depends_only_on_connected_maps():
    c3 = SparseConv2d(6, LENET5_C3_TABLE)
    x = torch.randn(1, 6, 14, 14)
    y = c3(x)
    x2 = x.clone()
    x2[:, 5] += 10.0  # change S2 map 5: C3 map 0 (reads 0,1,2) must not move; map 3 (reads 3,4,5) must
    y2 = c3(x2)
    assert torch.equal(y[:, 0], y2[:, 0]) and not torch.allclose(y[:, 3], y2[:, 3])
    # and it equals a dense conv with the unconnected kernels zeroed
    ref = nn.functional.conv2d(x, c3.dense_weight().detach(), c3.bias.detach())
    torch.testing.assert_close(y, ref)


def test_subsampling_is_a_weighted_window_sum():
    s = Subsampling(2)
    with torch.no_grad():
        s.weight.copy_(torch.tensor([2.0, -1.0]))
        s.bias.copy_(torch.tensor([0.5, 0.0]))
    x = torch.arange(32.0).reshape(1, 2, 4, 4)
    y = s(x)
    assert y[0, 0, 0, 0] == 2 * (0 + 1 + 4 + 5) + 0.5
    assert y[0, 1, 1, 1] == -(26 + 27 + 30 + 31)


def test_rbf_centres_are_fixed_bitmaps_and_outputs_are_negative_distances():
    rbf = RBFOutput(84, 10)
    assert not rbf.centers.requires_grad and set(rbf.centers.unique().tolist()) == {-1.0, 1.0}
    assert all(len(bm) == 12 and all(len(r) == 7 for r in bm) for bm in RBF_DIGIT_BITMAPS)  # 7×12 images
    x = rbf.centers[3:4].clone()  # sitting exactly on centre 3
    logits = rbf(x)
    assert logits.argmax().item() == 3 and logits[0, 3].item() == pytest.approx(0.0, abs=1e-4)
    other = ((rbf.centers[3] - rbf.centers[5]) ** 2).sum()
    assert logits[0, 5].item() == pytest.approx(-other.item(), rel=1e-5)


def test_lenet5_trains_only_its_trainable_weights_and_loss_is_the_papers():
    model = create_model("lenet5")
    x, y = torch.randn(4, 1, 32, 32), torch.tensor([0, 1, 2, 3])
    loss = lenet5_loss(model(x), y)
    loss.backward()
    assert model.output.centers.grad is None
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    # MAP criterion = cross-entropy with an extra constant "rubbish" class
    logits = model(x).detach()
    ref = nn.functional.cross_entropy(torch.cat([torch.full((4, 1), -0.1), logits], 1), y + 1)
    assert lenet5_loss(logits, y).item() == pytest.approx(ref.item(), rel=1e-6)


def test_registry_is_a_table_below_the_models():
    """The table imports no model (cnnzoo.models imports the families, whose decorators fill it)."""
    import ast
    import inspect

    import cnnzoo.models
    from cnnzoo.models import registry as table

    imported = {
        node.module
        for node in ast.walk(ast.parse(inspect.getsource(table)))
        if isinstance(node, ast.ImportFrom) and node.module
    }
    assert not any(m.startswith(("models", "alexnet", "lenet", "vgg", "resnet")) for m in imported), imported
    assert cnnzoo.models.create_model is table.create_model


def test_create_model_attaches_the_card():
    m = create_model("lenet_d2l", num_classes=5, input_size=32)
    assert m.card.model == "lenet_d2l" and m.card.input_size == (1, 32, 32)
    assert m.card.model_kwargs == {"num_classes": 5, "input_size": 32}
