"""ℓ2 loss against the explicit one-hot MSE, its memory against cross-entropy, and L2SGD against SGD."""

from __future__ import annotations

import pytest
import torch

from hf_uniform.errors import UniformError
from hf_uniform.train import L2SGD, L2Loss, l2_loss


def explicit_l2(logits: torch.Tensor, labels: torch.Tensor, variant: str, ignore_index: int = -100) -> torch.Tensor:
    """The authors' form: shift, keep target positions, build the one-hot tensor, mean over tokens × vocab."""
    z = logits[..., :-1, :].reshape(-1, logits.shape[-1])
    y = labels[..., 1:].reshape(-1)
    keep = y != ignore_index
    f = z[keep] if variant == "logits" else torch.softmax(z[keep], dim=-1)
    one_hot = torch.nn.functional.one_hot(y[keep], logits.shape[-1]).to(f.dtype)
    return torch.nn.functional.mse_loss(f, one_hot, reduction="mean")


def random_case(seed: int, batch: int = 3, seq: int = 7, vocab: int = 11, ignore_index: int = -100):
    g = torch.Generator().manual_seed(seed)
    logits = (3 * torch.randn(batch, seq, vocab, generator=g, dtype=torch.float64)).requires_grad_(True)
    labels = torch.randint(0, vocab, (batch, seq), generator=g)
    labels[0, :3] = ignore_index  # a prompt
    labels[1, -2:] = ignore_index  # padding
    labels[2, 4] = ignore_index  # a hole
    return logits, labels


@pytest.mark.parametrize("variant", ["logits", "softmax"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_l2_loss_matches_explicit_one_hot_mse_and_gradients(variant, seed):
    logits, labels = random_case(seed)
    ours = l2_loss(logits, labels, variant=variant)
    ref = explicit_l2(logits, labels, variant)
    assert torch.allclose(ours, ref, rtol=1e-12, atol=1e-14)
    g_ours, = torch.autograd.grad(ours, logits)
    g_ref, = torch.autograd.grad(ref, logits)
    assert torch.allclose(g_ours, g_ref, rtol=1e-10, atol=1e-14)
    # no gradient reaches the logits of ignored targets, nor the last position (it has no next token)
    shifted = torch.nn.functional.pad(labels, (0, 1), value=-100)[..., 1:]
    assert torch.all(g_ours[shifted == -100] == 0)


def test_l2_loss_custom_ignore_index_and_hand_value():
    logits = torch.tensor([[[1.0, 2.0, 0.0], [0.5, 0.0, -1.0], [9.0, 9.0, 9.0]]])
    labels = torch.tensor([[7, 1, 7]])  # 7 = ignore; the target of position 0 is token 1
    # position 0 predicts label 1: (1-0)^2 + (2-1)^2 + (0-0)^2 = 2, over 1 token x 3 classes
    assert float(l2_loss(logits, labels, ignore_index=7)) == pytest.approx(2 / 3)
    logits2, labels2 = random_case(5, ignore_index=7)
    assert torch.allclose(l2_loss(logits2, labels2, ignore_index=7), explicit_l2(logits2, labels2, "logits", 7))


def test_l2_loss_num_items_in_batch_makes_accumulation_exact():
    """Two micro-batches divided by the total token count sum to the loss of the whole batch."""
    logits, labels = random_case(3, batch=4)
    whole = l2_loss(logits, labels)
    total = int((labels[:, 1:] != -100).sum())
    parts = l2_loss(logits[:2], labels[:2], num_items_in_batch=total) + \
        l2_loss(logits[2:], labels[2:], num_items_in_batch=torch.tensor(total))
    assert torch.allclose(whole, parts, rtol=1e-12)


def test_l2_loss_half_precision_is_accumulated_in_float32():
    logits, labels = random_case(4)
    half = l2_loss(logits.detach().to(torch.bfloat16), labels)
    assert half.dtype == torch.float32
    ref = explicit_l2(logits.detach().to(torch.bfloat16).double(), labels, "logits")
    assert float(half) == pytest.approx(float(ref), rel=1e-5)


def test_l2_loss_half_precision_gradient():
    logits, labels = random_case(8)
    half = logits.detach().to(torch.bfloat16).requires_grad_(True)
    g_half, = torch.autograd.grad(l2_loss(half, labels), half)
    ref_in = half.detach().double().requires_grad_(True)
    g_ref, = torch.autograd.grad(explicit_l2(ref_in, labels, "logits"), ref_in)
    assert g_half.dtype == torch.bfloat16
    assert torch.allclose(g_half.double(), g_ref, rtol=2e-2, atol=1e-5)


def test_l2_loss_without_targets_is_zero_with_gradient():
    logits = torch.randn(1, 4, 5, requires_grad=True)
    loss = l2_loss(logits, torch.full((1, 4), -100))
    loss.backward()
    assert float(loss.detach()) == 0.0 and torch.all(logits.grad == 0)


def test_l2_loss_already_shifted_labels():
    logits, labels = random_case(6)
    shifted = torch.nn.functional.pad(labels, (0, 1), value=-100)[..., 1:]
    assert torch.allclose(l2_loss(logits, shifted, shift=False), l2_loss(logits, labels))


def test_l2_loss_bad_input():
    with pytest.raises(UniformError, match="variant"):
        l2_loss(torch.zeros(1, 2, 3), torch.zeros(1, 2, dtype=torch.long), variant="mse")
    with pytest.raises(UniformError, match="disagree"):
        l2_loss(torch.zeros(1, 2, 3), torch.zeros(1, 3, dtype=torch.long))
    with pytest.raises(UniformError):
        L2Loss("brier")


def test_l2loss_callable_is_a_compute_loss_func():
    from transformers.modeling_outputs import CausalLMOutputWithPast

    logits, labels = random_case(7)
    out = CausalLMOutputWithPast(logits=logits)
    assert torch.allclose(L2Loss("softmax")(out, labels), explicit_l2(logits, labels, "softmax"))
    assert torch.allclose(L2Loss()({"logits": logits}, labels, num_items_in_batch=3),
                          l2_loss(logits, labels, num_items_in_batch=3))


def saved_bytes(fn, logits: torch.Tensor, labels: torch.Tensor) -> int:
    """Bytes autograd keeps for backward, beyond the logits themselves (what decides the peak memory)."""
    seen: dict[int, int] = {}
    base = logits.untyped_storage().data_ptr()

    def pack(t):
        ptr = t.untyped_storage().data_ptr()
        if ptr != base:
            seen[ptr] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(logits, labels)
    return sum(seen.values())


def test_l2_memory_matches_cross_entropy_not_a_one_hot():
    tokens, vocab = 256, 4096
    logits = torch.randn(1, tokens, vocab, requires_grad=True)
    labels = torch.randint(0, vocab, (1, tokens))
    matrix = tokens * vocab * 4  # one float32 (tokens, vocab) tensor

    def ce(z, y):
        return torch.nn.functional.cross_entropy(z[:, :-1].reshape(-1, vocab), y[:, 1:].reshape(-1))

    ce_bytes = saved_bytes(ce, logits, labels)
    l2_bytes = saved_bytes(lambda z, y: l2_loss(z, y), logits, labels)
    brier_bytes = saved_bytes(lambda z, y: l2_loss(z, y, variant="softmax"), logits, labels)
    onehot_bytes = saved_bytes(lambda z, y: explicit_l2(z, y, "logits"), logits, labels)
    assert ce_bytes >= 0.9 * matrix  # cross-entropy keeps its log-softmax
    assert l2_bytes < 0.05 * matrix  # the ℓ2 loss keeps only per-token vectors
    assert brier_bytes <= 1.1 * ce_bytes  # the softmax form keeps one probability matrix, like CE
    assert onehot_bytes >= 1.9 * matrix  # the explicit form keeps the one-hot and a copy


@pytest.mark.parametrize(("momentum", "weight_decay"), [(0.0, 0.0), (0.9, 0.01)])
def test_l2sgd_matches_explicit_update_and_torch_sgd(momentum, weight_decay):
    torch.manual_seed(0)
    w0 = torch.randn(5, 3)
    grads = [torch.randn(5, 3) for _ in range(4)]
    lr = 0.05
    p = torch.nn.Parameter(w0.clone())
    q = torch.nn.Parameter(w0.clone())
    ours = L2SGD([p], lr=lr, momentum=momentum, weight_decay=weight_decay)
    ref = torch.optim.SGD([q], lr=lr, momentum=momentum, weight_decay=weight_decay)
    w, buf = w0.clone(), None
    for g in grads:
        p.grad, q.grad = g.clone(), g.clone()
        ours.step()
        ref.step()
        d = g + weight_decay * w
        buf = d.clone() if buf is None else momentum * buf + d
        w = w - lr * (buf if momentum else d)
    assert torch.allclose(p.detach(), w, atol=1e-6)
    assert torch.allclose(p.detach(), q.detach(), atol=1e-6)
    assert ours.num_steps == 4 and ours.num_updated == 4 * 15


def test_l2sgd_defaults_are_the_papers_and_skip_params_without_grad():
    a, b = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2))
    opt = L2SGD([a, b], lr=1.0)
    assert opt.defaults == {"lr": 1.0, "momentum": 0.0, "weight_decay": 0.0}
    a.grad = torch.tensor([0.5, -0.5])
    opt.step()
    assert a.detach().tolist() == [0.5, 1.5] and b.detach().tolist() == [1.0, 1.0]
    assert opt.num_updated == 2
    opt.load_state_dict(opt.state_dict())  # checkpoints round-trip
    with pytest.raises(UniformError, match="learning rate"):
        L2SGD([a], lr=0.0)
    with pytest.raises(UniformError, match="momentum"):
        L2SGD([a], lr=1.0, momentum=-0.1)


def test_l2sgd_closure_returns_loss():
    p = torch.nn.Parameter(torch.tensor([2.0]))
    opt = L2SGD([p], lr=0.25)

    def closure():
        opt.zero_grad()
        loss = (p ** 2).sum()
        loss.backward()
        return loss

    assert float(opt.step(closure).detach()) == 4.0
    assert p.item() == pytest.approx(2.0 - 0.25 * 4.0)


def test_token_cross_entropy_matches_torch_on_labelled_positions():
    from hf_uniform.train.loss import token_cross_entropy

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 7, 11, generator=g, dtype=torch.float64) * 3
    labels = torch.randint(0, 11, (3, 7), generator=g)
    labels[0, :4] = -100  # a prompt
    labels[2, 5:] = -100  # padding
    total, n = token_cross_entropy(logits, labels, chunk_rows=4)  # several chunks
    shifted = torch.nn.functional.pad(labels, (0, 1), value=-100)[..., 1:]
    ref = torch.nn.functional.cross_entropy(logits.reshape(-1, 11), shifted.reshape(-1), ignore_index=-100,
                                            reduction="sum")
    assert int(n) == int((shifted != -100).sum()) and float(total) == pytest.approx(float(ref), rel=1e-6)


def test_l2_floor_is_the_loss_of_the_trivial_predictor():
    from hf_uniform.train.loss import l2_floor

    labels = torch.tensor([[-100, 3, 1, 4]])
    zeros = torch.zeros(1, 4, 8)
    assert float(l2_loss(zeros, labels)) == pytest.approx(l2_floor(8))  # all-zero logits: 1/V
    # softmax (Brier) variant: uniform probabilities, i.e. any constant logits
    assert float(l2_loss(zeros + 2.5, labels, variant="softmax")) == pytest.approx(l2_floor(8, "softmax"))
    with pytest.raises(UniformError):
        l2_floor(8, "hinge")
