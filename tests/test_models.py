import pytest
import torch

from deepmerge_da.nn.models import DeepMerge, build_network, count_trainable_parameters
from deepmerge_da.nn.pooling import MaxPool2x2, with_nn_max_pool2d


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


@pytest.mark.parametrize("shape", [(4, 3, 75, 75), (2, 5, 36, 37), (3, 2, 9, 8)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_max_pool_2x2_matches_nn_max_pool2d_bit_for_bit(shape, channels_last):
    g = torch.Generator().manual_seed(sum(shape))
    x = torch.randn(shape, generator=g)
    # ties, as batch norm leaves them: every value that ReLU zeroed maps to one value
    x = torch.where(x < 0.3, torch.tensor(-0.25), x)
    x[0, 0, :4, :4] = 1.0  # whole windows of equal maxima
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    ours_in, ref_in = x.clone().requires_grad_(), x.clone().requires_grad_()
    ours, ref = MaxPool2x2()(ours_in), torch.nn.MaxPool2d(2)(ref_in)
    assert torch.equal(ours, ref)
    grad = torch.randn(ref.shape, generator=g)
    ours.backward(grad)
    ref.backward(grad)
    assert torch.equal(ours_in.grad, ref_in.grad)
    with torch.inference_mode():
        assert torch.equal(MaxPool2x2()(x), ref)


def test_deepmerge_step_is_that_of_the_textbook_layers():
    """DeepMerge with MaxPool2x2 trains exactly as with nn.MaxPool2d(2): same losses and weights after 3 steps."""
    torch.manual_seed(0)
    ours = DeepMerge()
    textbook = with_nn_max_pool2d(DeepMerge())
    textbook.load_state_dict(ours.state_dict())
    assert sum(isinstance(m, torch.nn.MaxPool2d) for m in textbook.modules()) == 3
    g = torch.Generator().manual_seed(1)
    batches = [(torch.randn(16, 3, 75, 75, generator=g), torch.randint(0, 2, (16,), generator=g)) for _ in range(3)]
    losses = {}
    for name, model in (("ours", ours), ("textbook", textbook)):
        opt = torch.optim.Adam(model.parameters(), 1e-3)
        losses[name] = []
        for x, y in batches:
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x)[0], y)
            loss.backward()
            opt.step()
            losses[name].append(loss.item())
    assert losses["ours"] == losses["textbook"]
    for a, b in zip(ours.state_dict().values(), textbook.state_dict().values(), strict=True):
        assert torch.equal(a, b)
