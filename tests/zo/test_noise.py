"""The seeded noise (bbopt.noise): a pure function of (seed, chunk), with the distribution it claims."""

import math

import torch

from bbopt.noise import NoiseStream, gaussian_table


def normal_cdf(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * (1 + torch.erf(x / math.sqrt(2)))


def test_gaussian_table_is_symmetric_with_unit_variance():
    t = gaussian_table().double()
    assert t.numel() == 1 << 16 and bool((t[1:] > t[:-1]).all())
    assert torch.equal(t, -t.flip(0))  # exactly symmetric: E z = 0 exactly
    assert abs(float(t.square().mean()) - 1) < 1e-6
    assert 2.99 < float((t ** 4).mean()) < 3.0  # the normal's 3, less the clipped tails
    k = torch.arange(t.numel(), dtype=torch.float64)
    cdf = normal_cdf(t)  # the step CDF jumps from k/K to (k+1)/K at t_k
    assert max(float((cdf - k / t.numel()).abs().max()), float((cdf - (k + 1) / t.numel()).abs().max())) < 1.1e-5
    assert 4.3 < float(t.max()) < 4.4


def test_noise_is_a_pure_function_of_seed_and_chunk():
    a, b = NoiseStream("cpu"), NoiseStream("cpu")
    for kind in ("gaussian", "rademacher"):
        z = a.draw(11, 0, 3, 1000, kind).clone()
        a.draw(12, 0, 3, 5000, kind)  # other draws in between change nothing
        buffer = torch.full((1200,), 7.0)
        assert torch.equal(a.draw(11, 0, 3, 1000, kind, buffer), z) and torch.equal(buffer[1000:], torch.full((200,), 7.0))
        assert torch.equal(b.draw(11, 0, 3, 1000, kind), z)  # a fresh stream: the same
        assert torch.equal(a.draw(11, 0, 3, 999, kind), z[:999])  # a shorter chunk is a prefix
        assert not torch.equal(a.draw(11, 0, 4, 1000, kind), z) and not torch.equal(a.draw(13, 0, 3, 1000, kind), z)


def test_gaussian_draws_are_standard_normal_and_independent():
    n = 1 << 20
    z = NoiseStream("cpu").draw(5, 0, 0, n, "gaussian").double()
    assert abs(float(z.mean())) < 4 / math.sqrt(n) and abs(float(z.var()) - 1) < 4 * math.sqrt(2 / n)
    xs = z.sort().values
    ecdf = torch.arange(1, n + 1, dtype=torch.float64) / n
    assert float((normal_cdf(xs) - ecdf).abs().max()) < 1.63 / math.sqrt(n)  # Kolmogorov–Smirnov at 1%
    lanes = z.view(-1, 4)  # the four 16-bit fields of one 64-bit word, and neighbouring words
    for x, y in [(lanes[:, 0], lanes[:, 1]), (lanes[:, 1], lanes[:, 3]), (lanes[:-1, 3], lanes[1:, 0])]:
        assert abs(float(torch.corrcoef(torch.stack([x, y]))[0, 1])) < 4 / math.sqrt(n // 4)
    assert abs(float((z.abs()[:-1] * z.abs()[1:]).mean()) - 2 / math.pi) < 0.005  # no dependence in |z| either


def test_rademacher_draws_are_balanced_signs():
    n = 1 << 20
    z = NoiseStream("cpu").draw(5, 0, 0, n + 3, "rademacher")
    assert set(z.unique().tolist()) == {-1.0, 1.0}
    assert abs(float(z.double().mean())) < 4 / math.sqrt(n)
    assert abs(float((z[:-1] * z[1:]).double().mean())) < 4 / math.sqrt(n)


def test_noise_values_are_pinned():
    """Logged runs replay from (seed, chunk): a change of generator must be deliberate (update these)."""
    s = NoiseStream("cpu")
    assert [round(v, 4) for v in s.draw(1, 0, 0, 4, "gaussian").tolist()] == PINNED_GAUSSIAN
    assert s.draw(1, 0, 0, 8, "rademacher").tolist() == PINNED_RADEMACHER


PINNED_GAUSSIAN = [3.1139, 1.2802, -1.6762, 1.4558]
PINNED_RADEMACHER = [1.0, 1.0, -1.0, -1.0, -1.0, -1.0, 1.0, 1.0]
