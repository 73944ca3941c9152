"""two_moons' exact likelihood (../shared/sbibm/TASKS.md), for the benchmark scripts beside it.

x = p + (0.25 − |θ₀+θ₁|/√2, (θ₁−θ₀)/√2) with p = r(cos a, sin a), r ~ N(0.1, 0.01²),
a ~ U(−π/2, π/2), so p(x|θ) = N(|p|; 0.1, 0.01²) / (π |p|) where p₀ > 0, else 0.
"""
import numpy as np


def log_likelihood(t0, t1, observations):
    """Σᵢ log p(xᵢ|θ) on arrays of θ₀, θ₁ (broadcast), for observations as rows (x₀, x₁)."""
    total = np.zeros(np.broadcast(t0, t1).shape)
    shift0 = 0.25 - np.abs(t0 + t1) / np.sqrt(2)
    shift1 = (t1 - t0) / np.sqrt(2)
    for x0, x1 in np.atleast_2d(observations):
        p0, p1 = x0 - shift0, x1 - shift1
        r = np.hypot(p0, p1)
        with np.errstate(divide="ignore"):
            ll = -0.5 * ((r - 0.1) / 0.01) ** 2 - np.log(np.pi * r * 0.01 * np.sqrt(2 * np.pi))
        total += np.where(p0 > 0, ll, -np.inf)
    return total
