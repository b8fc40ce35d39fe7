"""Recipe of one sim2sim object: a z ~ 2 single galaxy, future-merger pair or remnant in (F814W, F356W,
F160W), pristine (before the PSF), with faint tidal features normalised to the target's sky noise."""

from __future__ import annotations

import math

import numpy as np

from deepmerge_da.data import observe
from deepmerge_da.data.observe import mag_to_njy
from deepmerge_da.data.synthetic.morphology import (
    _MORPHS,
    _bridge,
    _galaxy,
    _loguniform,
    _neighbours,
    _plume,
    _sed,
    _shells,
    _Style,
    _tail,
)
from deepmerge_da.data.synthetic.parameters import Sim2SimParams
from deepmerge_da.data.synthetic.random_streams import _STREAM_SIM2SIM, _object_rngs
from deepmerge_da.data.synthetic.rendering import (
    _Blobs,
    _concat_blobs,
    _normalised_template,
    _peak_amplitude,
    _render,
    _Sersic,
)


def _sim2sim_style(P: Sim2SimParams) -> _Style:
    kpx = P.kpc_per_pixel
    return _Style(
        ref=P.reference_band,
        colours={"bulge": P.colour_bulge, "disc": P.colour_disc, "clump": P.colour_clump, "arm": P.colour_clump,
                 "tidal": P.colour_tidal},
        colour_scatter=P.colour_scatter_mag,
        bulge_n=P.bulge_sersic_n,
        bulge_re_fraction=P.bulge_re_fraction_range,
        q0=P.disc_min_axis_ratio,
        clump_flux_fraction=P.clump_flux_fraction_range,
        n_clumps=P.n_clumps_range,
        clump_sigma_px=(P.clump_sigma_kpc_range[0] / kpx, P.clump_sigma_kpc_range[1] / kpx),
    )


_SIM2SIM_CATALOG = {
    "merger_type": (np.int8, 0),
    "morphology": (np.int8, -1),
    "mag_ref": (np.float32, np.nan),
    "re_kpc": (np.float32, np.nan),
    "flux_ratio": (np.float32, np.nan),
    "separation_kpc": (np.float32, np.nan),
    "double_nucleus": (np.bool_, False),
    "has_tidal": (np.bool_, False),
    "tidal_peak_sigma": (np.float32, np.nan),
    "tidal_peak_njy": (np.float32, np.nan),  # (N, 3)
    "n_neighbours": (np.int8, 0),
}


def _sim2sim_object(P: Sim2SimParams, seed: int, index: int, label: int):
    r_main, r_tidal, r_nb, r_halo, _ = _object_rngs(seed, _STREAM_SIM2SIM, index)
    N = P.image_size
    kpx = P.kpc_per_pixel
    style = _sim2sim_style(P)
    sig_b = P.sky_sigma()
    c0 = (N - 1) / 2.0
    cx, cy = c0 + r_main.normal(0, P.centre_jitter_px), c0 + r_main.normal(0, P.centre_jitter_px)
    mag = r_main.uniform(*P.mag_range)
    fsys = float(mag_to_njy(mag))
    re1 = _loguniform(r_main, *P.re_kpc_range) / kpx
    info = {"mag_ref": mag, "re_kpc": re1 * kpx}
    morphs = ("clumpy_disc", "disc_bulge", "spheroid")
    comps = []
    tails: list[_Blobs] = []
    # tidal sub-stream: draw its decision and level first, always (ablation-stable)
    has_tidal = bool(label == 1 and r_tidal.random() < P.tidal_fraction)
    level = r_tidal.uniform(*P.tidal_peak_sigma)
    tw = r_tidal.uniform(*P.tail_width_kpc) / kpx
    if label == 1:
        past = r_main.random() < P.merger_past_fraction
        if not past:
            ratio = (_loguniform(r_main, *P.flux_ratio_range) if P.flux_ratio_range[1] > P.flux_ratio_range[0]
                     else P.flux_ratio_range[0])
            f1, f2 = fsys * ratio / (1 + ratio), fsys / (1 + ratio)
            re2 = max(0.6 / kpx, re1 * ratio**-0.3)
            smin = P.separation_min_kpc / kpx
            sep = r_main.uniform(smin, max(smin + 1.0, P.separation_max_re * re1))
            ang = r_main.uniform(0, 2 * math.pi)
            u = np.array([math.cos(ang), math.sin(ang)])
            p1 = np.array([cx, cy]) - sep * (f2 / fsys) * u
            p2 = np.array([cx, cy]) + sep * (f1 / fsys) * u
            m1 = morphs[r_main.choice(3, p=P.morphology_probs)]
            m2 = morphs[r_main.choice(3, p=P.morphology_probs)]
            c1, _, _ = _galaxy(r_main, style, x=p1[0], y=p1[1], flux=f1, re=re1, morph=m1,
                               disc_offset=tuple(r_main.normal(0, 0.1 * re1, 2)))
            c2, _, _ = _galaxy(r_main, style, x=p2[0], y=p2[1], flux=f2, re=re2, morph=m2,
                               disc_offset=tuple(r_main.normal(0, 0.1 * re2, 2)))
            comps += c1 + c2
            info.update(merger_type=1, morphology=_MORPHS.index(m1), flux_ratio=ratio, separation_kpc=sep * kpx)
            sense = 1.0 if r_tidal.random() < 0.5 else -1.0
            for pa, pb, rr in ((p1, p2, re1), (p2, p1, re2)):
                away = math.atan2(pa[1] - pb[1], pa[0] - pb[0])
                make = r_tidal.random() < 0.75
                t = _tail(r_tidal, pa[0], pa[1], rr, away + r_tidal.normal(0, 0.6), sense,
                          r_tidal.uniform(*P.tail_length_kpc) / kpx, tw)
                if make:
                    tails.append(t)
            make = r_tidal.random() < P.bridge_fraction
            b = _bridge(r_tidal, p1, p2, tw * 0.8)
            if make:
                tails.append(b)
        else:
            m = ("disc_bulge", "spheroid", "clumpy_disc")[r_main.choice(3, p=(0.5, 0.35, 0.15))]
            off_r = r_main.uniform(*P.remnant_offset_re) * re1
            off_a = r_main.uniform(0, 2 * math.pi)
            dn = r_main.random() < P.double_nucleus_fraction
            fdn = r_main.uniform(*P.double_nucleus_flux_fraction)
            dno = r_main.uniform(*P.double_nucleus_offset_kpc) / kpx
            dna = r_main.uniform(0, 2 * math.pi)
            dn_hlr = r_main.uniform(0.3, 0.8) / kpx
            fmain = fsys * (1 - fdn) if dn else fsys
            cg, _, _ = _galaxy(r_main, style, x=cx, y=cy, flux=fmain, re=re1, morph=m,
                               disc_offset=(off_r * math.cos(off_a), off_r * math.sin(off_a)))
            # remnants build bulges: move light from the disc to the bulge
            boost = P.remnant_bulge_boost
            if boost > 0 and cg[0][1] < fmain:
                move = min(boost * fmain, cg[1][1])
                cg[0] = (cg[0][0], cg[0][1] + move, cg[0][2])
                cg[1] = (cg[1][0], cg[1][1] - move, cg[1][2])
            comps += cg
            if dn:
                nuc = _Sersic(2.0, dn_hlr, r_main.uniform(0.6, 1.0), r_main.uniform(0, math.pi),
                              cx + dno * math.cos(dna), cy + dno * math.sin(dna))
                comps.append((nuc, fsys * fdn, cg[0][2]))
            info.update(merger_type=2, morphology=_MORPHS.index(m), double_nucleus=bool(dn),
                        separation_kpc=dno * kpx if dn else np.nan)
            make_sh = r_tidal.random() < P.shell_fraction
            sh = _shells(r_tidal, cx, cy, re1, tw * 0.7)
            if make_sh:
                tails += sh
            ntails = int(r_tidal.integers(1, 3))
            sense = 1.0 if r_tidal.random() < 0.5 else -1.0
            a0 = r_tidal.uniform(0, 2 * math.pi)
            for k in range(ntails):
                tails.append(_tail(r_tidal, cx, cy, re1, a0 + k * math.pi + r_tidal.normal(0, 0.4), sense,
                                   r_tidal.uniform(*P.tail_length_kpc) / kpx, tw))
            make_pl = r_tidal.random() < 0.5
            pl = _plume(r_tidal, cx, cy, re1)
            if make_pl:
                tails.append(pl)
    else:
        m = morphs[r_main.choice(3, p=P.morphology_probs)]
        cg, _, _ = _galaxy(r_main, style, x=cx, y=cy, flux=fsys, re=re1, morph=m)
        comps += cg
        info.update(merger_type=0, morphology=_MORPHS.index(m))
    nb, nnb = _neighbours(r_nb, style, N, fsys, P.neighbour_mag_offset,
                          (P.neighbour_re_kpc[0] / kpx, P.neighbour_re_kpc[1] / kpx), P.neighbour_prob, (c0, c0))
    comps += nb
    info["n_neighbours"] = nnb
    img = _render(comps, N)
    sed_t = _sed(style, "tidal", np.zeros(3))
    if has_tidal and tails:
        tmpl = _normalised_template(_concat_blobs(tails), N)
        if P.tidal_peak_sb_mag is not None:
            amp = float(observe.sb_mag_to_njy_per_pixel(P.tidal_peak_sb_mag, P.pixel_scale))
        else:
            amp = _peak_amplitude(level, sed_t, sig_b)
        img += (amp * sed_t)[:, None, None] * tmpl[None]
        info.update(has_tidal=True, tidal_peak_sigma=float(np.max(amp * sed_t / sig_b)), tidal_peak_njy=amp * sed_t)
    if label == 0 and r_halo.random() < P.nonmerger_halo_fraction:
        hl = r_halo.uniform(*P.nonmerger_halo_peak_sigma)
        halo = _Blobs(np.array([cx]), np.array([cy]), np.array([r_halo.uniform(2.0, 3.5) * re1]), np.array([1.0]))
        img += (_peak_amplitude(hl, sed_t, sig_b) * sed_t)[:, None, None] * _normalised_template(halo, N)[None]
    return img.astype(np.float32), info
