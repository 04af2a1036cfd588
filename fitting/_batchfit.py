"""Batched bounded least squares: many fits of small laws in one numpy solve.

A question bootstrap refits the same 2-3 parameter law to hundreds of resampled curves,
and a multi-start fit runs the same problem from several starts. Calling
``scipy.optimize.least_squares`` once per problem spends most of its time in Python
overhead around (n, p) arrays of a few dozen numbers. :func:`least_squares_batch` instead
advances every problem of a batch together: one projected Levenberg-Marquardt iteration is
a few array operations over the batch and one ``np.linalg.solve`` of the stacked ``(B, p, p)``
normal equations.

The objective is exactly the one ``least_squares`` minimizes (residuals
``r = sw * (f(u; theta) - y)``, robust ``loss`` with ``f_scale``, box bounds) and so are the
termination tests, so a well-posed problem converges to the same optimum; only the path
differs. Robust losses use the Gauss-Newton model scipy uses (curvature weights
``rho' + 2 rho'' z``, clipped at machine epsilon) with Marquardt damping scaled by the
reweighted curvature, and a step is accepted only when it lowers the cost; bounds by
projection, with parameters on a bound whose gradient points outward held fixed for the
step (an "interior" mode stops short of bounds instead, as scipy's iterates do).

On top of it, for the laws of :mod:`fitting.laws`:

* :func:`refit_laws`: warm-started refits of many curves (a bootstrap's replicates, of
  many curves at once), what ``Law.fit`` with ``warm_start`` does row by row;
* :func:`fit_laws`: ``Law.fit`` itself (multi-start, two-stage robust, same verdict) for
  many problems at once, and for one (``Law(solver="batched")``).

A problem that does not converge within the law's ``max_nfev`` iterations is reported,
not hidden: the callers refit it with ``least_squares``.

Laws give their Jacobian for a batch when called with ``x`` of shape (B, n) and parameters
of shape (B, 1): ``jacobian(x, *params)`` then has shape (B, n, p).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import OptimizeResult

from ._fitutil import ROBUST_ROUNDS, bound_hits, inside_bounds, robust_f_scale

__all__ = [
    "BatchResult",
    "RefitResult",
    "RefitTask",
    "fit_laws",
    "least_squares_batch",
    "refit_laws",
    "robust_loss",
]

_EPS = float(np.finfo(float).eps)
#: BOUND_STEPS: "project" clips a step into the box; "interior" shortens it to stop short of
#: the nearest bound by this fraction of the way (iterates stay inside, as in scipy's "trf")
_INTERIOR_FRACTION = 0.95
BOUND_STEPS = ("project", "interior")


def robust_loss(name: str, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``rho(z)``, ``rho'(z)`` and ``rho''(z)`` of the losses of ``scipy.optimize.least_squares``.

    ``z`` is the squared scaled residual ``(r / f_scale)**2``; the cost is
    ``0.5 * f_scale**2 * sum(rho(z))`` (scipy's definition).

    Examples
    --------
    >>> rho, d1, d2 = robust_loss("soft_l1", np.array([0.0, 3.0]))
    >>> rho.tolist(), d1.tolist(), d2.tolist()
    ([0.0, 2.0], [1.0, 0.5], [-0.5, -0.0625])
    """
    if name == "linear":
        return z, np.ones_like(z), np.zeros_like(z)
    if name == "soft_l1":
        t = np.sqrt(1.0 + z)
        return 2.0 * (t - 1.0), 1.0 / t, -0.5 / (t * t * t)
    if name == "huber":
        small = z <= 1.0
        root = np.sqrt(np.where(small, 1.0, z))
        rho = np.where(small, z, 2.0 * root - 1.0)
        return rho, np.where(small, 1.0, 1.0 / root), np.where(small, 0.0, -0.5 / (root * root * root))
    if name == "cauchy":
        return np.log1p(z), 1.0 / (1.0 + z), -1.0 / (1.0 + z) ** 2
    if name == "arctan":
        return np.arctan(z), 1.0 / (1.0 + z * z), -2.0 * z / (1.0 + z * z) ** 2
    raise ValueError(f"unknown loss {name!r}; choose from linear, soft_l1, huber, cauchy, arctan")


@dataclass(frozen=True)
class BatchResult:
    """What :func:`least_squares_batch` returns, one entry per problem.

    Attributes
    ----------
    theta : (B, p) parameters at the last accepted step.
    cost : (B,) ``0.5 * f_scale**2 * sum(rho(z))`` at ``theta``.
    fun : (B, n) residuals ``sw * (f(u; theta) - y)`` at ``theta`` (before the loss).
    converged : (B,) True where a tolerance was met; False where the iteration budget ran
        out or the model became non-finite (refit those another way).
    nit : (B,) iterations used.
    """

    theta: np.ndarray
    cost: np.ndarray
    fun: np.ndarray
    converged: np.ndarray
    nit: np.ndarray


def least_squares_batch(
    formula: Callable[..., np.ndarray],
    jacobian: Callable[..., np.ndarray],
    u: np.ndarray,
    y: np.ndarray,
    sw: np.ndarray,
    theta0: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    *,
    loss: str = "linear",
    f_scale=1.0,
    max_iter: int = 200,
    ftol: float = 1e-8,
    xtol: float = 1e-8,
    gtol: float = 1e-8,
    bound_steps: str = "project",
) -> BatchResult:
    """Minimize ``0.5 f_scale**2 sum rho((sw (f(u; theta) - y) / f_scale)**2)`` for B problems at once.

    Parameters
    ----------
    formula, jacobian : callables
        ``formula(x, *params)`` and its Jacobian (see the module doc for the batch shapes).
    u : (n,) or (B, n) compute values (shared, or one row per problem; pad a shorter
        problem with any valid value and weight 0).
    y : (B, n) or (n,) targets.
    sw : (B, n) or (n,) square roots of the weights.
    theta0 : (B, p) starting points (clipped into the bounds).
    lo, hi : (B, p) or (p,) bounds (may be infinite).
    loss : the robust loss of ``scipy.optimize.least_squares``.
    f_scale : float or (B,) its scale.
    max_iter : iterations (each one a trial step for every unfinished problem).
    ftol, xtol, gtol : the termination tests of ``least_squares`` ("trf"), same defaults:
        an accepted step lowers the cost by less than ``ftol`` of it (with ratio > 1/4 to
        the reduction predicted), a step is shorter than ``xtol * (xtol + |theta|)``, or
        the gradient, each component times the distance to the bound it points at, is
        below ``gtol``.
    bound_steps : {"project", "interior"}
        A step leaving the box is clipped into it ("project": bounds are reached exactly)
        or shortened to stop short of the nearest bound ("interior": iterates stay inside,
        as in scipy's "trf", and approach a bound geometrically).

    Examples
    --------
    >>> from fitting.laws import PowerLaw
    >>> u = 2.0 ** np.arange(6)
    >>> y = np.stack([PowerLaw.formula(u, 0.9, 0.5, a) for a in (0.3, 0.6)])
    >>> res = least_squares_batch(PowerLaw.formula, PowerLaw.jacobian, u, y, np.ones(6),
    ...     np.full((2, 3), 0.5), np.array([0.0, 0.0, 0.0]), np.array([1.0, np.inf, 10.0]))
    >>> res.theta[:, 2].round(6).tolist(), res.converged.tolist()
    ([0.3, 0.6], [True, True])
    """
    if bound_steps not in BOUND_STEPS:
        raise ValueError(f"bound_steps must be one of {BOUND_STEPS}, got {bound_steps!r}")
    theta = np.array(theta0, dtype=float, ndmin=2)
    n_prob, p = theta.shape
    u = np.asarray(u, dtype=float)
    n = u.shape[-1]
    u = np.broadcast_to(u, (n_prob, n))
    y = np.broadcast_to(np.asarray(y, dtype=float), (n_prob, n))
    sw = np.broadcast_to(np.asarray(sw, dtype=float), (n_prob, n))
    lo = np.broadcast_to(np.asarray(lo, dtype=float), (n_prob, p))
    hi = np.broadcast_to(np.asarray(hi, dtype=float), (n_prob, p))
    fs2 = np.broadcast_to(np.asarray(f_scale, dtype=float) ** 2, (n_prob,))[:, None]
    theta = np.clip(theta, lo, hi)
    eye = np.eye(p)

    def residuals(th, rows):
        return rows["sw"] * (formula(rows["u"], *th.T[:, :, None]) - rows["y"])

    def cost_of(r, rows):
        rho, _, _ = robust_loss(loss, r * r / rows["fs2"])
        return 0.5 * rows["fs2"][:, 0] * rho.sum(axis=1)

    def subset(rows, idx):
        return {key: value[idx] for key, value in rows.items()}

    lam = np.full(n_prob, 1.0)  # Marquardt damping, relative to diag(H): cautious first steps
    nit = np.zeros(n_prob, dtype=int)
    with np.errstate(all="ignore"):
        # a parameter this close to a bound counts as on it; bounds' finiteness for the gtol test
        lo_finite, hi_finite = np.isfinite(lo), np.isfinite(hi)
        lo_on = np.where(lo_finite, lo + 1e-10 * np.maximum(1.0, np.abs(lo)), lo)
        hi_on = np.where(hi_finite, hi - 1e-10 * np.maximum(1.0, np.abs(hi)), hi)
        every = {
            "u": u,
            "y": y,
            "sw": sw,
            "fs2": fs2,
            "lo": lo,
            "hi": hi,
            "lo_on": lo_on,
            "hi_on": hi_on,
            "lo_finite": lo_finite,
            "hi_finite": hi_finite,
        }
        fun = residuals(theta, every)
        cost = cost_of(fun, every)
        status = np.where(np.isfinite(cost), 0, -1)  # 0 running, 1 converged, -1 failed
        rows, n_rows = every, n_prob  # the constants of the running problems, gathered when they change
        for _ in range(max_iter):
            act = np.flatnonzero(status == 0)
            if act.size == 0:
                break
            if act.size != n_rows:  # problems only ever stop running: same count, same problems
                rows, n_rows = subset(every, act), act.size
            nit[act] += 1
            th, r, c = theta[act], fun[act], cost[act]
            jac = rows["sw"][:, :, None] * jacobian(rows["u"], *th.T[:, :, None])  # (b, n, p)
            z = r * r / rows["fs2"]
            _, d1, d2 = robust_loss(loss, z)
            jt = jac.transpose(0, 2, 1)
            g = (jt @ (d1 * r)[:, :, None])[:, :, 0]  # gradient of the cost
            # Gauss-Newton Hessian of the robust cost, with scipy's clip of the curvature weight
            h = jt @ (np.maximum(d1 + 2.0 * d2 * z, _EPS)[:, :, None] * jac)
            # Marquardt scaling from the reweighted (IRLS) curvature, which stays positive where
            # the robust curvature above is clipped (residuals beyond f_scale)
            d = (jac * jac * d1[:, :, None]).sum(axis=1)
            bad = ~(np.isfinite(g).all(axis=1) & np.isfinite(h).all(axis=(1, 2)) & np.isfinite(d).all(axis=1))
            out_lo, out_hi = (th <= rows["lo_on"]) & (g > 0), (th >= rows["hi_on"]) & (g < 0)
            free = ~(out_lo | out_hi)  # on a bound and pushing out: held for this step
            # scipy's gtol test: the gradient scaled by the distance to the bound it points at
            la, ha = rows["lo"], rows["hi"]
            v = np.where(
                (g < 0) & rows["hi_finite"], ha - th, np.where((g > 0) & rows["lo_finite"], th - la, 1.0)
            )
            flat = ~bad & (np.abs(g * v).max(axis=1) < gtol)
            status[act[bad]] = -1
            status[act[flat]] = 1
            go = ~bad & ~flat
            step_rows = rows
            if not go.all():
                act, th, c, g, h, d, v, free = act[go], th[go], c[go], g[go], h[go], d[go], v[go], free[go]
                if act.size == 0:
                    continue
                step_rows = subset(rows, go)
                la, ha = step_rows["lo"], step_rows["hi"]
            d = np.maximum(d, np.maximum(1e-12 * d.max(axis=1, keepdims=True), 1e-300))
            if bound_steps == "interior":
                # Coleman-Li scaling (scipy's "trf"): variables are scaled by the square root of
                # their distance to the bound the gradient points at, so steps toward a near
                # bound shrink and the path can turn before reaching it
                dv = np.where((g < 0) & np.isfinite(ha), -1.0, np.where((g > 0) & np.isfinite(la), 1.0, 0.0))
                sc = np.sqrt(v)
                h_s = sc[:, :, None] * h * sc[:, None, :] + (g * dv)[:, :, None] * eye
                a = h_s + (lam[act][:, None] * np.maximum(sc * sc * d, 1e-300))[:, :, None] * eye
                step = sc * np.linalg.solve(a, -(sc * g)[:, :, None])[:, :, 0]
                room = np.where(step < 0, (la - th) / step, np.where(step > 0, (ha - th) / step, np.inf))
                room = room.min(axis=1)
                move = step * np.where(room >= 1.0, 1.0, _INTERIOR_FRACTION * room)[:, None]
            else:
                a = h + (lam[act][:, None] * d)[:, :, None] * eye
                a = np.where(free[:, :, None] & free[:, None, :], a, eye)  # held parameters do not move
                step = move = np.linalg.solve(a, -np.where(free, g, 0.0)[:, :, None])[:, :, 0]
            new = np.clip(th + move, la, ha)
            dx = new - th
            r_new = residuals(new, step_rows)
            c_new = cost_of(r_new, step_rows)
            predicted = -(g * dx).sum(axis=1) - 0.5 * ((h @ dx[:, :, None])[:, :, 0] * dx).sum(axis=1)
            ok = np.isfinite(c_new) & (c_new < c)
            reduction = c - c_new
            take = act[ok]
            theta[take], fun[take], cost[take] = new[ok], r_new[ok], c_new[ok]
            lam[act] = np.where(ok, np.maximum(lam[act] / 3.0, 1e-12), lam[act] * 10.0)
            small_f = ok & (reduction <= ftol * c) & (reduction > 0.25 * predicted)
            # the step before it met a bound: a step cut to nothing by a bound is not convergence
            small_x = (step * step).sum(axis=1) <= (xtol * (xtol + np.sqrt((th * th).sum(axis=1)))) ** 2
            status[act[small_f | small_x]] = 1
    return BatchResult(theta, cost, fun, status == 1, nit)


@dataclass(frozen=True)
class RefitTask:
    """Fit ``law`` (its formula, loss and bounds) to every row of ``y``, from ``params0``.

    ``x`` (n,) compute values; ``y`` (B, n) one curve per row; ``sample_weight`` (n,) or
    None; ``params0`` (p,) or (B, p) starting parameters for the raw ``x`` in
    ``law.param_names`` order; ``f_scale`` the robust loss's scale (in a bootstrap, the
    point fit's ``f_scale_``).
    """

    law: Any
    x: np.ndarray
    y: np.ndarray
    sample_weight: np.ndarray | None
    params0: np.ndarray
    f_scale: float


@dataclass(frozen=True)
class RefitResult:
    """One :class:`RefitTask`'s fits.

    Attributes
    ----------
    params : (B, p) fitted parameters for the raw ``x``.
    ok : (B,) converged to a finite optimum with no parameter stuck at a search bound.
    solved : (B,) a pass converged; where False neither did, and ``params`` and ``ok`` are
        not to be used: refit those rows one by one with ``law.fit``.
    """

    params: np.ndarray
    ok: np.ndarray
    solved: np.ndarray


def refit_laws(tasks: Sequence[RefitTask]) -> list[RefitResult]:
    """Solve many :class:`RefitTask` together: one batched solve per law and loss.

    For each row, what ``law.fit(x, y_b, sample_weight)`` with ``warm_start`` does: the same
    rescaling of ``x``, weights normalized to mean 1, bounds from the row, one robust fit
    from the start with the given ``f_scale``, and the same verdict (finite, and no
    parameter stuck at a search bound: see :func:`fitting._fitutil.bound_hits`). Tasks of
    the same law class and loss share one batch (shorter curves padded with zero weight),
    so the per-iteration overhead is paid once for all of them.

    Each row gets the law's evaluation budget (``max_nfev``) in iterations, as
    ``least_squares`` does. Rows are solved with projected steps first. Projected steps can
    settle on a bound where a path that stays inside (as ``least_squares`` does) finds a
    better interior optimum, so rows that ended on a search bound are solved again from the
    same start with interior steps, and the lower cost wins.

    Examples
    --------
    >>> from fitting.laws import PowerLaw
    >>> k = 2.0 ** np.arange(7)
    >>> y = np.stack([0.9 - 0.5 * k**-a for a in (0.3, 0.5)])
    >>> res = refit_laws([RefitTask(PowerLaw(), k, y, None, np.array([0.8, 0.4, 0.4]), 1.0)])[0]
    >>> res.params.round(6).tolist(), res.ok.tolist()
    ([[0.9, 0.5, 0.3], [0.9, 0.5, 0.5]], [True, True])
    """
    prepared = [_prepare(t) for t in tasks]
    groups: dict[tuple, list[int]] = {}
    for i, t in enumerate(tasks):
        groups.setdefault((type(t.law), t.law.loss, t.law.max_nfev), []).append(i)
    theta = [None] * len(tasks)
    cost = [None] * len(tasks)
    solved = [None] * len(tasks)
    stuck = [None] * len(tasks)
    for (_, loss, max_iter), members in groups.items():
        law = tasks[members[0]].law
        stack = _stack([prepared[i] for i in members])
        rows = np.cumsum([0] + [len(prepared[i]["theta0"]) for i in members])
        th, c, conv, bad = _solve(law, stack, slice(None), loss, max_iter, "project")
        again = np.flatnonzero(conv & bad)
        if again.size:
            th2, c2, conv2, bad2 = _solve(law, stack, again, loss, max_iter, "interior")
            better = conv2 & (c2 < c[again])
            take = again[better]
            th[take], c[take], bad[take] = th2[better], c2[better], bad2[better]
        for j, i in enumerate(members):
            part = slice(rows[j], rows[j + 1])
            theta[i], cost[i], solved[i], stuck[i] = th[part], c[part], conv[part], bad[part]
    out = []
    for t, prep, th, conv, bad in zip(tasks, prepared, theta, solved, stuck, strict=True):
        names = t.law.param_names
        raw = t.law.rescale(dict(zip(names, th.T, strict=True)), 1.0 / prep["x_ref"])
        params = np.stack(
            [np.broadcast_to(np.asarray(raw[p], dtype=float), (len(th),)) for p in names], axis=1
        )
        with np.errstate(all="ignore"):
            pred = t.law.formula(np.broadcast_to(prep["x"], prep["y"].shape), *params.T[:, :, None])
        ok = conv & ~bad & np.isfinite(params).all(axis=1) & np.isfinite(pred).all(axis=1)
        out.append(RefitResult(params, ok, conv))
    return out


def _prepare(task: RefitTask) -> dict[str, Any]:
    """The rescaled problem of one task, as ``Law.fit`` sets it up."""
    law = task.law
    names = law.param_names
    x = np.asarray(task.x, dtype=float)
    y = np.atleast_2d(np.asarray(task.y, dtype=float))
    w = np.ones(x.shape) if task.sample_weight is None else np.asarray(task.sample_weight, dtype=float)
    x_ref = law._x_ref(x)
    rows = [law._bounds(row) for row in y]
    start = np.broadcast_to(np.asarray(task.params0, dtype=float), (len(y), len(names)))
    scaled = law.rescale(dict(zip(names, start.T, strict=True)), x_ref)
    return {
        "x": x,
        "y": y,
        "x_ref": x_ref,
        "u": x / x_ref,
        "sw": np.sqrt(w / w.mean()),
        "lo": np.array([[b[p][0] for p in names] for b in rows]),
        "hi": np.array([[b[p][1] for p in names] for b in rows]),
        "theta0": np.stack([np.asarray(scaled[p], dtype=float) for p in names], axis=1),
        "f_scale": np.full(len(y), float(task.f_scale)),
        "user": set(law.bounds or {}),
    }


def _stack(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Problems of several tasks in one batch; shorter curves padded with weight 0 at u = 1."""
    n = max(len(p["u"]) for p in parts)

    def pad(values, rows, fill):
        out = np.full((rows, n), fill)
        out[:, : values.shape[-1]] = values
        return out

    sizes = [len(p["theta0"]) for p in parts]
    return {
        "u": np.concatenate([pad(p["u"], b, 1.0) for p, b in zip(parts, sizes, strict=True)]),
        "sw": np.concatenate([pad(p["sw"], b, 0.0) for p, b in zip(parts, sizes, strict=True)]),
        "y": np.concatenate([pad(p["y"], b, 0.0) for p, b in zip(parts, sizes, strict=True)]),
        "f_scale": np.concatenate([p["f_scale"] for p in parts]),
        "user": [p["user"] for p, b in zip(parts, sizes, strict=True) for _ in range(b)],
    } | {k: np.concatenate([p[k] for p in parts]) for k in ("lo", "hi", "theta0")}


def _solve(law, stack, idx, loss, max_iter, bound_steps, full=False):
    res = least_squares_batch(
        law.formula,
        law.jacobian,
        stack["u"][idx],
        stack["y"][idx],
        stack["sw"][idx],
        stack["theta0"][idx],
        stack["lo"][idx],
        stack["hi"][idx],
        loss=loss,
        f_scale=stack["f_scale"][idx],
        max_iter=max_iter,
        bound_steps=bound_steps,
    )
    users = np.asarray(stack["user"], dtype=object)[idx]
    bad = np.zeros(len(res.theta), dtype=bool)
    for user in {frozenset(u) for u in users}:  # user bounds are legitimate stops; usually one set
        rows = np.flatnonzero([frozenset(u) == user for u in users])
        _, hits = bound_hits(
            res.theta[rows],
            stack["lo"][idx][rows],
            stack["hi"][idx][rows],
            law.param_names,
            user,
            law.level_params,
        )
        bad[rows] = hits.any(axis=(1, 2))
    if full:
        return res.theta, res.cost, res.converged, bad, res.fun, res.nit
    return res.theta, res.cost, res.converged, bad


def fit_laws(problems: Sequence[tuple[Any, Any, Any, Any]]) -> list[Any]:
    """:meth:`Law.fit` of many problems at once: ``[(law, x, y, sample_weight), ...]``.

    Each law is fitted in place and returned, with the attributes ``law.fit`` sets
    (``params_``, ``converged_``, ``f_scale_``, ``rmse_``, ``aic_``, ...), from the same
    multi-start, two-stage robust procedure: every start of every problem in one batched
    solve per law class (linear loss), the best start per problem, then up to
    ``ROBUST_ROUNDS`` rounds of re-estimating ``f_scale`` from the residuals' MAD and
    refitting with the robust loss, all problems of a round together. The verdict is
    ``Law._finish``'s, as for ``law.fit``. A problem whose chosen solve did not converge is
    refitted with ``least_squares`` (``law.fit`` with ``solver="scipy"``). What
    ``Law(solver="batched").fit`` runs for one problem. Laws set to ``warm_start`` with previous
    parameters are refitted from those, as ``law.fit`` does.

    Examples
    --------
    >>> from fitting.laws import ExpDecay, PowerLaw
    >>> k = 2.0 ** np.arange(8)
    >>> a, b = fit_laws([(PowerLaw(), k, 0.9 - 0.5 * k**-0.4, None), (ExpDecay(), k, 0.8 - 0.6 * np.exp(-0.1 * k), None)])
    >>> round(a.params_["alpha"], 6), round(b.params_["rate"], 6), a.converged_ and b.converged_
    (0.4, 0.1, True)
    """
    setups = []
    for law, x, y, w in problems:
        x, y, w, x_ref, bounds, lo, hi = law._setup(x, y, w)
        u = x / x_ref
        previous = getattr(law, "params_", None)
        if law.warm_start and previous is not None:
            scaled = law.rescale(previous, x_ref)
            starts = [np.array([scaled[p] for p in law.param_names])]
            f_scale = law.f_scale if law.f_scale is not None else getattr(law, "f_scale_", 1.0)
            two_stage, first_loss = False, law.loss
        else:
            starts = law._starts(u, y, bounds, lo, hi)
            two_stage = law.loss != "linear" and law.f_scale is None
            first_loss = "linear" if two_stage else law.loss
            f_scale = 1.0 if law.f_scale is None else float(law.f_scale)
        starts = np.stack([inside_bounds(np.asarray(s, dtype=float), lo, hi) for s in starts])
        setups.append(
            {
                "law": law,
                "x": x,
                "y": y,
                "w": w,
                "x_ref": x_ref,
                "u": u,
                "bounds": bounds,
                "lo": lo,
                "hi": hi,
                "starts": starts,
                "f_scale": float(f_scale),
                "loss": first_loss,
                "two_stage": two_stage,
            }
        )

    def solve(members, starts_of):
        """One batched fit per (law class, loss) of the given problems from the given starts."""
        results = {}
        groups: dict[tuple, list[int]] = {}
        for i in members:
            law = setups[i]["law"]
            groups.setdefault((type(law), setups[i]["loss"], law.max_nfev), []).append(i)
        for (_, loss, max_iter), idx in groups.items():
            st = [setups[i] for i in idx]
            counts = [len(starts_of(i)) for i in idx]
            n = max(len(s["u"]) for s in st)

            def rows(key, fill, st=st, counts=counts, n=n):
                out = []
                for s, c in zip(st, counts, strict=True):
                    row = np.full(n, fill)
                    row[: len(s[key])] = s[key]
                    out.append(np.tile(row, (c, 1)))
                return np.concatenate(out)

            sw = rows("w", 0.0)
            stack = {
                "u": rows("u", 1.0),
                "sw": np.sqrt(sw),
                "y": rows("y", 0.0),
                "theta0": np.concatenate([starts_of(i) for i in idx]),
                "lo": np.concatenate([np.tile(s["lo"], (c, 1)) for s, c in zip(st, counts, strict=True)]),
                "hi": np.concatenate([np.tile(s["hi"], (c, 1)) for s, c in zip(st, counts, strict=True)]),
                "f_scale": np.repeat([s["f_scale"] for s in st], counts),
                "user": [
                    set(s["law"].bounds or {}) for s, c in zip(st, counts, strict=True) for _ in range(c)
                ],
            }
            law = st[0]["law"]
            th, cost, conv, bad, fun, nit = _solve(
                law, stack, slice(None), loss, max_iter, "project", full=True
            )
            again = np.flatnonzero(~conv | bad)
            if again.size:
                th2, c2, conv2, bad2, fun2, nit2 = _solve(
                    law, stack, again, loss, max_iter, "interior", full=True
                )
                better = conv2 & (~conv[again] | (c2 < cost[again]))
                take = again[better]
                th[take], cost[take], conv[take], fun[take] = th2[better], c2[better], True, fun2[better]
                nit[again] += nit2
            edges = np.cumsum([0, *counts])
            for j, i in enumerate(idx):
                part = slice(edges[j], edges[j + 1])
                results[i] = (th[part], cost[part], conv[part], fun[part, : len(setups[i]["u"])], nit[part])
        return results

    # every start of every problem, the best start of each problem
    best = {}
    for i, (th, cost, conv, fun, nit) in solve(range(len(setups)), lambda i: setups[i]["starts"]).items():
        k = int(np.argmin(np.where(np.isfinite(cost), cost, np.inf)))
        best[i] = (th[k], cost[k], conv[k], fun[k], int(nit.sum()))
    # robust rounds: f_scale from the best fit's residuals until it settles
    active = [i for i, s in enumerate(setups) if s["two_stage"]]
    for _ in range(ROBUST_ROUNDS):
        moving = []
        for i in active:
            s = setups[i]
            new = robust_f_scale(best[i][3], s["y"])
            if s["loss"] == s["law"].loss and abs(new - s["f_scale"]) <= 0.1 * s["f_scale"]:
                continue
            s["f_scale"], s["loss"] = new, s["law"].loss
            moving.append(i)
        if not moving:
            break
        for i, (th, cost, conv, fun, nit) in solve(moving, lambda i: best[i][0][None, :]).items():
            best[i] = (th[0], cost[0], conv[0], fun[0], best[i][4] + int(nit[0]))
        active = moving
    out = []
    for i, s in enumerate(setups):
        law = s["law"]
        theta, cost, conv, fun, nfev = best[i]
        if not conv:  # the batched solver could not settle it: least_squares decides
            out.append(law._fit_least_squares(s["x"], s["y"], s["w"]))
            continue
        res = OptimizeResult(
            x=theta, cost=float(cost), fun=fun, status=1, nfev=nfev, message="batched solve converged"
        )
        law.f_scale_ = s["f_scale"]
        law._finish(res, s["x"], s["y"], s["w"], s["x_ref"], s["lo"], s["hi"], s["bounds"])
        out.append(law)
    return out
