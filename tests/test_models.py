import pytest
import torch

from deepmerge_da.models import DeepMerge, build_network, count_trainable_parameters


def test_deepmerge_has_table_a1_parameter_count_and_shapes():
    model = DeepMerge()
    assert count_trainable_parameters(model) == 174_626
    logits, features = model(torch.randn(4, 3, 75, 75))
    assert logits.shape == (4, 2)
    assert features.shape == (4, 2592)
    # Table A1's per-layer counts: convolutions 608, 1168, 4640; dense 165952, 2080, 66.
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [sum(p.numel() for p in c.parameters()) for c in convs] == [608, 1168, 4640]
    dense = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert [sum(p.numel() for p in d.parameters()) for d in dense] == [165_952, 2_080, 66]


def test_resnet18_true_parameter_count_and_bottleneck():
    model = build_network("resnet18")
    n = count_trainable_parameters(model)
    assert 11.2e6 < n < 11.4e6  # the paper's 22,484,866 counts it twice
    logits, features = model.eval()(torch.randn(2, 3, 75, 75))
    assert logits.shape == (2, 2) and features.shape == (2, 256)


def test_unknown_network_is_named():
    with pytest.raises(ValueError, match="vgg"):
        build_network("vgg")
