"""Turning a gaussian's view-dependent colour with the scene: rotation of its SH bands 1 to 3.

The colour seen along view direction d is f(d) = Σ c_k Y_k(d). Turning the scene by R must give
f'(d) = f(Rᵀd). Each band l (its 2l+1 functions) maps onto itself under a rotation, so the turned
coefficients are c'_l = D_l c_l for a (2l+1)×(2l+1) matrix D_l, found here by least squares from the
band evaluated at sample directions: Y_l(d_i) D_l = Y_l(Rᵀd_i). The band is closed under rotation,
so the fit is exact (to float64 rounding) for any rotation.

Why not Wigner D matrices from a library: none is installed beside the project (e3nn, sphericart),
and each uses its own ordering, signs and normalisation of the real SH, so converting to the basis
the renderer evaluates would cost as much code as this fit, which needs only that basis.
"""

from __future__ import annotations

import torch

from pipeline.errors import PipelineError

# The real SH basis of 3D Gaussian Splatting, as gsplat evaluates it for splatfacto (degrees 1-3).
C1 = 0.4886025119029199
C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
C3 = (
    -0.5900435899266435,
    2.890611442640554,
    -0.4570457994644658,
    0.3731763325901154,
    -0.4570457994644658,
    1.445305721320277,
    -0.5900435899266435,
)
MAX_DEGREE = 3
SAMPLE_DIRECTIONS = 64  # more than the 2l+1 ≤ 7 unknowns per band, spread over the sphere


def sh_basis(directions: torch.Tensor) -> torch.Tensor:
    """Bands 1-3 at unit directions [M,3]: [M,15], in splatfacto's coefficient order."""
    x, y, z = directions.unbind(-1)
    xx, yy, zz = x * x, y * y, z * z
    return torch.stack(
        [
            -C1 * y,
            C1 * z,
            -C1 * x,
            C2[0] * x * y,
            C2[1] * y * z,
            C2[2] * (2 * zz - xx - yy),
            C2[3] * x * z,
            C2[4] * (xx - yy),
            C3[0] * y * (3 * xx - yy),
            C3[1] * x * y * z,
            C3[2] * y * (4 * zz - xx - yy),
            C3[3] * z * (2 * zz - 3 * xx - 3 * yy),
            C3[4] * x * (4 * zz - xx - yy),
            C3[5] * z * (xx - yy),
            C3[6] * x * (xx - 3 * yy),
        ],
        dim=-1,
    )


def band_rotations(rotation: torch.Tensor, degree: int = MAX_DEGREE) -> list[torch.Tensor]:
    """D_1 .. D_degree (float64) for a 3×3 rotation, so that a band's turned coefficients are D_l c_l."""
    directions = _fibonacci_sphere(SAMPLE_DIRECTIONS)
    here, looked_up = sh_basis(directions), sh_basis(directions @ rotation.double())  # Y(d), Y(Rᵀd)
    return [
        torch.linalg.lstsq(here[:, _band(band)], looked_up[:, _band(band)]).solution
        for band in range(1, degree + 1)
    ]


def rotate_sh_rest(sh_rest: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
    """Higher SH coefficients [N,K,3] of gaussians turned by ``rotation``, in their dtype."""
    degree = round((sh_rest.shape[1] + 1) ** 0.5) - 1
    if degree > MAX_DEGREE:
        raise PipelineError(f"cannot rotate SH of degree {degree}: splatfacto's degree 3 at most")
    if degree == 0:
        return sh_rest
    rest = sh_rest.double()
    turned = [
        torch.einsum("kj,njc->nkc", matrix, rest[:, _band(band)])
        for band, matrix in enumerate(band_rotations(rotation, degree), start=1)
    ]
    return torch.cat(turned, dim=1).to(sh_rest.dtype)


def _band(degree: int) -> slice:
    """Where band ``degree``'s coefficients sit among the higher ones (the DC term is apart)."""
    return slice(degree * degree - 1, (degree + 1) ** 2 - 1)


def _fibonacci_sphere(count: int) -> torch.Tensor:
    """``count`` unit directions spread evenly over the sphere, [count,3] float64."""
    index = torch.arange(count, dtype=torch.float64) + 0.5
    z = 1 - 2 * index / count
    azimuth = torch.pi * (3 - 5**0.5) * index
    ring = torch.sqrt(1 - z * z)
    return torch.stack([ring * torch.cos(azimuth), ring * torch.sin(azimuth), z], dim=-1)
