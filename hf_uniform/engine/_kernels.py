"""Numba kernels of the lazy blocked max-min engine.

Everything that decides the selection is computed by one scalar kernel, :func:`dist`: products of float32
inputs are exact in float64, the sum is accumulated in float64 and the distance is rounded once to float32.
The reduced-precision GEMMs in :mod:`hf_uniform.engine.lazy` only *filter*: a pair is sent to :func:`dist`
unless a proven error bound shows that it cannot change a row's minimum. The selection therefore never
depends on the filter precision, the block size or the chunk size.

Importing this module compiles nothing; numba compiles each kernel on first use and caches it on disk.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

COSINE = 0
EUCLIDEAN = 1
_BIG = np.iinfo(np.int64).max
_SLACK = 2.0 ** -20  # relative slack for float32 rounding of the exact kernel, euclidean (squared) filter

# reassoc lets LLVM vectorise the float64 sum; the float32 products are exact in float64 either way.
_FM = {"reassoc", "contract"}


@nb.njit(fastmath=_FM, cache=True, nogil=True)
def dot64(a, b):  # noqa: D103 - internal kernel
    s = 0.0
    for i in range(a.shape[0]):
        s += np.float64(a[i]) * np.float64(b[i])
    return s


@nb.njit(fastmath=_FM, cache=True, nogil=True)
def sqdist64(a, b):  # noqa: D103 - internal kernel
    s = 0.0
    for i in range(a.shape[0]):
        t = np.float64(a[i]) - np.float64(b[i])
        s += t * t
    return s


@nb.njit(cache=True, nogil=True)
def dist(metric, a, b, na, nb):
    """Exact distance (float32) between two prepared rows with squared norms ``na = dot64(a, a)``, ``nb``.

    Cosine: ``1 - <a, b> / sqrt(na nb)`` clamped at 0 -- exactly 0 for identical rows, because
    ``sqrt(na * na) == na`` in IEEE arithmetic. Euclidean: ``|a - b|``. Sums are float64, rounded once.
    """
    if metric == COSINE:
        s = 1.0 - dot64(a, b) / np.sqrt(na * nb)
        if s > 0.0:
            return np.float32(s)
        return np.float32(0.0)
    return np.float32(np.sqrt(sqdist64(a, b)))


@nb.njit(cache=True, nogil=True)
def normalise_rows(x, out):
    """``out[i] = x[i] / |x[i]|`` in float32 with the norm from a float64 sum (deterministic per row)."""
    for i in range(x.shape[0]):
        nrm = np.float32(np.sqrt(dot64(x[i], x[i])))
        for j in range(x.shape[1]):
            out[i, j] = x[i, j] / nrm


@nb.njit(cache=True, nogil=True)
def sq_norms64(x, out):
    """Squared norms ``dot64(x[i], x[i])`` of the rows of ``x`` (the ``na`` of :func:`dist`)."""
    for i in range(x.shape[0]):
        out[i] = dot64(x[i], x[i])


@nb.njit(cache=True, nogil=True)
def exact_value(x, start, C, cn2, c0, c1, metric):
    """``min(start, dist(x, C[c]) for c in [c0, c1))``: a row's exact min-distance brought up to date."""
    v = start
    nx = dot64(x, x)
    for c in range(c0, c1):
        dd = dist(metric, x, C[c], nx, cn2[c])
        if dd < v:
            v = dd
    return v


@nb.njit(cache=True, nogil=True)
def walk(rows, rid, an, ids, am, v, q, C, cn2, c0, t, metric, R, cnt):
    """One greedy step's search over the active rows, lazily.

    ``rows[rid[j]]``/``ids[j]``/``am[j]`` are the active rows sorted by their bound ``am`` (exact as of
    centre ``c0``), descending; ``an[rid[j]]``/``cn2`` are the squared norms of the rows/centres. ``v[j]`` is row ``j``'s min-distance over the first ``c0 + q[j]`` centres (an upper bound of
    its true value); the pending centres are ``C[c0:t]``. Rows beyond the walked prefix ``R`` have
    ``v == am`` and ``q == 0``. A row is refreshed only while it can still beat the best exact value found,
    and the walk stops at the first row whose bound is below it. Ties go to the lowest id.

    Returns ``(R, position, value)``; position is -1 when no active row is left. ``cnt`` accumulates
    (rows scanned, exact distances evaluated).
    """
    p = t - c0
    n_act = ids.shape[0]
    best = -np.inf
    bpos = -1
    bid = _BIG
    j = 0
    while j < n_act:
        if j >= R:
            if am[j] < best:
                break
            R = j + 1
        vj = v[j]
        idj = ids[j]
        if vj == -np.inf or vj < best or (vj == best and idj > bid):
            j += 1
            continue
        qj = q[j]
        if qj < p:
            x = rows[rid[j]]
            nx = an[rid[j]]
            while qj < p:
                dd = dist(metric, x, C[c0 + qj], nx, cn2[c0 + qj])
                cnt[1] += 1
                qj += 1
                if dd < vj:
                    vj = dd
                    if vj < best or (vj == best and idj > bid):
                        break
            v[j] = vj
            q[j] = qj
        if qj == p and (vj > best or (vj == best and idj < bid)):
            best = vj
            bpos = j
            bid = idj
        j += 1
    cnt[0] += j
    return R, bpos, best


@nb.njit(cache=True, nogil=True)
def run_block(rows, rid, an, ids, am, v, q, C, cn2, c0, t, t_end, metric, R, tau, sel_idx, sel_rad, m, cnt,
              eval_ratio, rstop):
    """Greedy steps ``t .. t_end`` without leaving compiled code.

    Stops early (status 1) when the best active value drops below ``tau``: a dormant row (bound < tau)
    might then win, so the caller must flush and re-activate rows first. Stops with status 2 when the
    scalar refreshes since the last flush exceed ``eval_ratio`` times the pairs a flush GEMM would
    compute (``active rows x pending centres``): flushing is then cheaper. Stops with status 3 (for good)
    when the best value -- exact, no dormant row can beat it -- is ``<= rstop`` (the radius; ``-inf``: none).
    Returns ``(t, R, status, best)``.
    """
    status = 0
    best = -np.inf
    e0 = cnt[1]
    n_act = ids.shape[0]
    while t < t_end:
        R, bpos, best = walk(rows, rid, an, ids, am, v, q, C, cn2, c0, t, metric, R, cnt)
        if bpos < 0 or best < tau:
            status = 1
            break
        if best <= rstop:
            status = 3
            break
        if cnt[1] - e0 > eval_ratio * n_act * (t - c0 + 10) and t > c0:
            status = 2
            break
        row = ids[bpos]
        C[t, :] = rows[rid[bpos], :]
        cn2[t] = an[rid[bpos]]
        sel_idx[t] = row
        sel_rad[t] = best
        v[bpos] = -np.inf
        m[row] = -np.inf
        t += 1
    return t, R, status, best


@nb.njit(cache=True, nogil=True)
def bf16_value(b):
    """Exact float64 value of the bfloat16 bit pattern ``b`` (int16), without reinterpreting memory."""
    u = np.int64(b) & 0xFFFF
    e = (u >> 7) & 0xFF
    mant = u & 0x7F
    sign = -1.0 if (u >> 15) else 1.0
    if e == 0xFF:
        return sign * np.inf if mant == 0 else np.nan
    if e == 0:
        return sign * math.ldexp(np.float64(mant), -133)
    return sign * math.ldexp(np.float64(mant | 0x80), int(e) - 134)


@nb.njit(cache=True, nogil=True)
def _rowmax_key(S16, i, qi, p):
    """Largest order key (see :func:`bf16_keys`) of ``S16[i, qi:p]``."""
    best = np.int16(-32768)
    for c in range(qi, p):
        b = S16[i, c]
        key = b ^ ((b >> np.int16(15)) & np.int16(0x7FFF))
        if key > best:
            best = key
    return best


@nb.njit(cache=True, nogil=True)
def floor_key(t):
    """Order key of a bfloat16 value ``<= t`` (float64 ``t``), computed arithmetically."""
    if not (t > -3.0e38):
        return np.int16(-32768)
    if t >= 3.0e38:
        t = 3.0e38
    if t == 0.0 or abs(t) < 1e-37:  # 0, or a subnormal range we round down to -tiny
        if t > 0.0:
            return np.int16(0)
        if t == 0.0:
            return np.int16(-1)  # the key of -0, which compares equal to 0
        return np.int16(-32768)  # tiny negative threshold: flag everything (never happens in practice)
    m, e = math.frexp(abs(t))  # |t| = m 2^e, m in [0.5, 1)
    if t > 0.0:
        mm = np.int64(np.floor(m * 256.0))  # 128..255: value mm 2^(e-8) <= t
    else:
        mm = np.int64(np.ceil(m * 256.0))  # 128..256: -mm 2^(e-8) <= t
        if mm == 256:
            mm = 128
            e += 1
    ex = e - 1 + 127
    if ex >= 255:
        ex, mm = 254, 255
    bits = (ex << 7) | (mm - 128)
    if t < 0.0:
        bits |= 0x8000
    b = np.int16(np.uint16(bits))
    return b ^ ((b >> np.int16(15)) & np.int16(0x7FFF))


@nb.njit(cache=True, nogil=True)
def _bf16_row(S16, i, qi, p, su):
    for c in range(qi, p):
        su[c] = np.uint32(np.uint16(S16[i, c])) << 16


@nb.njit(cache=True, nogil=True)
def update_rows(S, is_bf16, S16, rows, rid, rres, rn2, v, q, C, c0, p, metric, cres, cn2, err_out, gam, nrm, su,
                sf, cnt, skip_key):
    """Fold the pending centres ``C[c0:c0+p]`` into the exact min-distances ``v`` of ``rows``.

    ``S[i, c]`` (float32) or ``S16[i, c]`` (bfloat16 bits, when ``is_bf16``) is the filter's estimate of
    ``<rows[rid[i]], C[c0+c]>`` computed from rounded copies ``x^ = x - r_x``, ``c^ = c - r_c``. Its error is at
    most ``|r_x||c| + |x^||r_c| + gam |x^||c^| + err_out |S|`` (Cauchy-Schwarz on the rounding residuals,
    the float32 accumulation, the output rounding). A pair is evaluated exactly with :func:`dist` unless that
    bound proves it cannot reach the row's new minimum. ``q[i]`` centres are already folded into ``v[i]``;
    on return every row is exact over all ``c0 + p`` centres. Under the cosine metric the rows are raw and
    the centres' filter copies unit vectors (``nrm`` bounds their norms, ``cres`` includes their distance
    to the exact direction): ``S / |x|`` estimates the cosine and the bound is applied in units of ``|x|``
    (``|x| = sqrt(rn2)``); under euclidean the norms are ``sqrt(cn2)`` and computed for the rows.
    ``skip_key`` (bf16 cosine; else empty) holds per-row order keys: a row whose largest estimate has a
    smaller key is provably unchanged (computed outside, vectorised, by :func:`skip_keys`).
    """
    n_rows = rid.shape[0]
    crmax = 0.0
    for c in range(p):
        if cres[c0 + c] > crmax:
            crmax = cres[c0 + c]
    for i in range(n_rows):
        vi = v[i]
        qi = q[i]
        q[i] = p
        if vi == -np.inf or qi >= p:
            continue
        rx = rres[i]
        x = rows[rid[i]]
        if metric == COSINE:
            mkey = np.int16(0)
            if is_bf16:
                mkey = _rowmax_key(S16, i, qi, p)
                if skip_key.shape[0] > 0 and mkey < skip_key[i]:
                    continue
            # raw rows, unit centres: S / |x| estimates the cosine; everything below is in units of |x|
            xn = np.sqrt(rn2[i])
            ri = 1.0 / xn
            rx = rx * ri * (1.0 + 2.0 ** -50)
            xh = nrm + rx  # |x^| / |x| <= 1 + |r_x| / |x|
            # one conservative error budget for the whole row: e_c <= base + err_out |S_c| (+ float32
            # underflow of the d products, absolute, relative to |x|)
            base = rx * nrm + xh * crmax + gam * xh * (nrm + crmax) + 1.1 * rows.shape[1] * 2.0 ** -149 * ri + 1e-30
            if is_bf16:
                smax = bf16_value(mkey ^ ((mkey >> np.int16(15)) & np.int16(0x7FFF)))
            else:
                smax = -np.inf
                for c in range(qi, p):
                    if S[i, c] > smax:
                        smax = np.float64(S[i, c])
            su_max = smax * ri
            # mu >= the row's new minimum: the pair with the largest estimate is at most this far
            mu = min(np.float64(vi), 1.0 - su_max + base + err_out * abs(su_max) + 2.0 ** -20)
            # a pair can only be at or below mu if S_c / |x| >= thr (solving S + base + err_out|S| < 1 - mu - eta)
            r = 1.0 - mu - 2.0 ** -20 - base
            thr = (r / (1.0 + err_out) if r >= 0.0 else r / (1.0 - err_out)) * xn  # back to raw units
            if smax < thr:
                continue
            cnt[3] += 1
            nx = rn2[i]
            if is_bf16:
                tkey = floor_key(thr)
                for cb in range(qi, p, 32):  # vectorised block maxima first: hits are rare
                    ce = min(p, cb + 32)
                    if _rowmax_key(S16, i, cb, ce) < tkey:
                        continue
                    for c in range(cb, ce):
                        b = S16[i, c]
                        if (b ^ ((b >> np.int16(15)) & np.int16(0x7FFF))) >= tkey:
                            cnt[2] += 1
                            dd = dist(COSINE, x, C[c0 + c], nx, cn2[c0 + c])
                            if dd < vi:
                                vi = dd
            else:
                for c in range(qi, p):
                    if not (S[i, c] < thr):
                        cnt[2] += 1
                        dd = dist(COSINE, x, C[c0 + c], nx, cn2[c0 + c])
                        if dd < vi:
                            vi = dd
            v[i] = vi
            continue
        if is_bf16:
            _bf16_row(S16, i, qi, p, su)
            srow = sf
        else:
            srow = S[i]
        nx = rn2[i]
        xn = np.sqrt(nx)
        xh = xn + rx
        mu2 = np.float64(vi) * np.float64(vi)
        for c in range(qi, p):
            cc = c0 + c
            s = np.float64(srow[c])
            cn = np.sqrt(cn2[cc])
            e = rx * cn + xh * cres[cc] + gam * xh * (cn + cres[cc]) + err_out * abs(s) + 1e-30
            sq = xn * xn + cn * cn - 2.0 * s
            u = (sq + 2.0 * e + 1e-12 * (xn * xn + cn * cn)) * (1.0 + _SLACK)
            if u < mu2:
                mu2 = u
        for c in range(qi, p):
            cc = c0 + c
            s = np.float64(srow[c])
            cn = np.sqrt(cn2[cc])
            e = rx * cn + xh * cres[cc] + gam * xh * (cn + cres[cc]) + err_out * abs(s) + 1e-30
            sq = xn * xn + cn * cn - 2.0 * s
            lo = (sq - 2.0 * e - 1e-12 * (xn * xn + cn * cn)) * (1.0 - _SLACK)
            if not (lo > mu2):
                cnt[2] += 1
                dd = dist(EUCLIDEAN, x, C[cc], nx, cn2[cc])
                if dd < vi:
                    vi = dd
        v[i] = vi


@nb.njit(cache=True, nogil=True)
def fill_positions(pos_of, ids, value):
    """``pos_of[ids[j]] = j`` (or ``value`` when it is not -2)."""
    for j in range(ids.shape[0]):
        pos_of[ids[j]] = j if value == -2 else value


@nb.njit(cache=True, nogil=True)
def to_bf16(x, bits, res, scratch_u, scratch_f):
    """Round float32 rows to bfloat16 (round-to-nearest-even, as bit patterns) and return each row's
    rounding-residual norm ``|x - bf16(x)|`` (the differences are exact; the sum is float64)."""
    xu = x.view(np.uint32)
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            b = xu[i, j]
            hb = (b + np.uint32(0x7FFF) + ((b >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)
            bits[i, j] = np.uint16(hb)
            scratch_u[j] = np.uint32(hb) << np.uint32(16)
        s = 0.0
        for j in range(x.shape[1]):
            r = np.float64(x[i, j]) - np.float64(scratch_f[j])
            s += r * r
        res[i] = np.sqrt(s)


@nb.njit(cache=True, nogil=True)
def gather_bf16(x, rid, bits):
    """``bits[j] = bf16(x[rid[j]])`` (round to nearest even, as :func:`to_bf16`): one GEMM chunk gathered and
    rounded in one pass (``x`` C-contiguous float32, ``bits`` uint16)."""
    xu = x.view(np.uint32)
    for j in range(rid.shape[0]):
        i = rid[j]
        for c in range(x.shape[1]):
            b = xu[i, c]
            bits[j, c] = np.uint16((b + np.uint32(0x7FFF) + ((b >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16))


@nb.njit(cache=True, nogil=True)
def refine_rows(rows, rid, ids, E, ep, C, cn2, t, metric, cnt):
    """``E[ids[j]]`` brought up to date over the centres ``C[ep[ids[j]]:t]`` (row ``rows[rid[j]]``)."""
    for j in range(ids.shape[0]):
        i = ids[j]
        e = ep[i]
        if e < t and E[i] != -np.inf:
            E[i] = exact_value(rows[rid[j]], E[i], C, cn2, e, t, metric)
            cnt[0] += t - e
            ep[i] = t


@nb.njit(cache=True, nogil=True)
def pick_exact(rows, rid, ids, bound, E, ep, C, cn2, t, metric, is_max, cnt):
    """Exact best row among candidates ``ids`` walked in order of ``bound`` (upper bounds, descending, for
    the max objective; lower bounds, ascending, for min). ``E[i]`` is row ``i``'s exact min-distance over
    the first ``ep[i]`` centres (an upper bound of its current value); a row is refreshed only while it can
    still win, and the walk stops at the first bound that cannot. Ties go to the lowest id.
    Returns ``(value, id)``; id is -1 when there is no candidate."""
    best = -np.inf if is_max else np.inf
    bid = _BIG
    for j in range(ids.shape[0]):
        b = bound[j]
        if is_max:
            if b < best:
                break
        elif b > best:
            break
        i = ids[j]
        v = E[i]
        if is_max and (v < best or (v == best and i > bid)):
            continue
        e = ep[i]
        if e < t:
            x = rows[rid[j]]
            nx = dot64(x, x)
            while e < t:
                dd = dist(metric, x, C[e], nx, cn2[e])
                cnt[0] += 1
                e += 1
                if dd < v:
                    v = dd
                    if is_max and (v < best or (v == best and i > bid)):
                        break
            E[i] = v
            ep[i] = e
        if e == t:
            if is_max:
                if v > best or (v == best and i < bid):
                    best = v
                    bid = i
            elif v < best or (v == best and i < bid):
                best = v
                bid = i
    if bid == _BIG:
        return best, -1
    return best, bid


@nb.njit(fastmath=_FM, cache=True, nogil=True)
def sweep_fold(X, an, rinv, live, m, C, cn2, c, metric):
    """Fold centre ``C[c]`` into the exact min-distances ``m`` of rows ``X[live]`` (one full pass) and return
    ``(value, row)`` of the largest, ties to the lowest row (``live`` ascending); ``(-inf, -1)`` if none.

    A pair goes to :func:`dist` only when a cheap float64 test cannot prove it leaves ``m[i]`` unchanged:
    cosine ``<x, c> / (|x||c|)`` (``rinv = 1/|x|``, float64) more than ``2^-30`` below ``1 - m[i]``;
    euclidean the squared distance above ``m[i]^2`` (float64 rounding is ~1e-16, far inside the margins).
    """
    best = -np.inf
    bid = -1
    x_c = C[c]
    nc = cn2[c]
    rc = 1.0 / np.sqrt(nc) if metric == COSINE else 0.0
    for j in range(live.shape[0]):
        i = live[j]
        mi = m[i]
        if mi == -np.inf:
            continue
        if metric == COSINE:
            if dot64(X[i], x_c) * rinv[i] * rc >= 1.0 - np.float64(mi) - 2.0 ** -30:
                dd = dist(metric, X[i], x_c, an[i], nc)
                if dd < mi:
                    mi = dd
                    m[i] = dd
        else:
            s2 = sqdist64(X[i], x_c)
            if s2 <= np.float64(mi) * np.float64(mi) * (1.0 + 2.0 ** -30):
                dd = np.float32(np.sqrt(s2))
                if dd < mi:
                    mi = dd
                    m[i] = dd
        if mi > best:
            best = mi
            bid = i
    return best, bid


@nb.njit(cache=True, nogil=True)
def sweep_argmax(live, m):
    """``(value, row)`` of the largest ``m[live]``, ties to the lowest row; ``(-inf, -1)`` if none."""
    best = -np.inf
    bid = -1
    for j in range(live.shape[0]):
        if m[live[j]] > best:
            best = m[live[j]]
            bid = live[j]
    return best, bid


@nb.njit(cache=True, nogil=True)
def sweep_steps(X, an, rinv, live, m, C, cn2, t, t_end, metric, sel_idx, sel_rad, rstop):
    """Greedy steps ``t .. t_end`` by full exact sweeps (the lazy engine's fallback when pruning stops paying).

    On entry and on return ``m[i]`` is row ``i``'s exact min-distance over ``C[:t]`` for every row in
    ``live`` (ascending ids, chosen rows at ``-inf``). Each step picks the largest value (ties to the lowest
    row), records it as centre ``t`` and folds it into every row with :func:`dist` -- the same values the
    lazy walk computes. Returns ``(new t, stopped)``: it stops early when no row is left, and for good
    (``stopped``) before a step whose best value is ``<= rstop``.
    """
    best, bid = sweep_argmax(live, m)
    while t < t_end and bid >= 0:
        if best <= rstop:
            return t, True
        C[t, :] = X[bid, :]
        cn2[t] = an[bid]
        sel_idx[t] = bid
        sel_rad[t] = best
        m[bid] = -np.inf
        t += 1
        best, bid = sweep_fold(X, an, rinv, live, m, C, cn2, t - 1, metric)
    return t, False


@nb.njit(cache=True, nogil=True)
def catch_up(X, an, live, m, ep, C, cn2, t, metric):
    """``m[i]`` of every row in ``live`` brought up to date over ``C[ep[i]:t]`` exactly; returns the pairs."""
    pairs = 0
    for j in range(live.shape[0]):
        i = live[j]
        e = ep[i]
        if e < t and m[i] != -np.inf:
            m[i] = exact_value(X[i], m[i], C, cn2, e, t, metric)
            pairs += t - e
        ep[i] = t
    return pairs


@nb.njit(fastmath=_FM, cache=True, nogil=True)
def sweep_probe(X, an, rinv, live, C, cn2, c, metric):
    """Read-only cost probe of :func:`sweep_fold` (the same arithmetic per row, no writes); returns a checksum."""
    s = 0.0
    rc = 1.0 / np.sqrt(cn2[c]) if metric == COSINE else 0.0
    for j in range(live.shape[0]):
        i = live[j]
        if metric == COSINE:
            s += dot64(X[i], C[c]) * rinv[i] * rc
        else:
            s += sqdist64(X[i], C[c])
    return s


def bf16_floor_keys(t: np.ndarray) -> np.ndarray:
    """Order keys (``b ^ ((b >> 15) & 0x7FFF)`` of bfloat16 bits ``b``) of bfloat16 values ``<= t``.

    Example:
        >>> bf16_floor_keys(np.array([1.0, -1.0])).tolist()
        [16256, -16257]
    """
    t = np.clip(np.asarray(t, dtype=np.float64), -3.0e38, 3.0e38)
    f = t.astype(np.float32)
    over = f.astype(np.float64) > t
    f[over] = np.nextafter(f[over], np.float32(-np.inf))
    u = f.view(np.uint32)
    hi = u >> np.uint32(16)
    hi = hi + (((u >> np.uint32(31)) == 1) & ((u & np.uint32(0xFFFF)) != 0)).astype(np.uint32)
    b = hi.astype(np.uint16).view(np.int16)
    keys = b ^ ((b >> np.int16(15)) & np.int16(0x7FFF))
    keys[t == 0.0] = -1  # -0 compares equal to 0: its key (-1) must not count as below
    return keys


def skip_keys(v: np.ndarray, res: np.ndarray, crmax: float, nrm: float, gam: float, err_out: float,
              rn2: np.ndarray | None = None, d: int = 0) -> np.ndarray:
    """Per-row bfloat16 order keys below which a row's largest cosine estimate proves it unchanged.

    A row with value ``v`` is unchanged by a block when every estimate satisfies
    ``S / |x| + base + err_out |S| / |x| < 1 - v - 2^-20`` with ``base`` the row's error budget in units of
    ``|x| = sqrt(rn2)`` (see :func:`hf_uniform.engine._kernels.update_rows`; ``rn2=None``: unit rows);
    solved for ``S`` and rounded down to a bfloat16 key.

    Example:
        >>> skip_keys(np.array([0.5], np.float32), np.zeros(1), 0.0, 1.0, 0.0, 0.0).tolist()
        [16127]
    """
    xn = np.ones(v.shape[0]) if rn2 is None else np.sqrt(rn2)
    ri = 1.0 / xn
    rx = res * ri * (1.0 + 2.0 ** -50)
    xh = nrm + rx
    base = rx * nrm + xh * crmax + gam * xh * (nrm + crmax) + 1.1 * d * 2.0 ** -149 * ri + 1e-30
    r = 1.0 - v.astype(np.float64) - 2.0 ** -20 - base
    thr = np.where(r >= 0, r / (1.0 + err_out), r / (1.0 - err_out)) * xn
    return bf16_floor_keys(np.nan_to_num(thr, nan=-3.0e38, neginf=-3.0e38, posinf=3.0e38))
