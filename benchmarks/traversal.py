"""Latency of a 9×9 latent traversal of the shipped EMD-VAE, in one process:

* anchor — the paper's way of drawing it: 81 matplotlib scatter sub-plots (disc area ∝ pT)
  rendered to a PNG in memory;
* otviz library — decode the grid + rasterise the mosaic (``traverse`` + ``jet_mosaic``);
* otviz served — what one slider move costs the Panel server: the Latent traversal page's
  DynamicMap re-evaluated and its Bokeh models updated in a live document.

    .venv/bin/python benchmarks/traversal.py [--run data/pretrained/emdvae-wjets-centred] [--repeat 10]
"""
from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def timed(f, repeat):
    f()  # warm
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts)) * 1e3, float(np.min(ts)) * 1e3


def matplotlib_grid(jets, extent):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = jets.shape[0]
    fig, axes = plt.subplots(n, n, figsize=(6, 6), dpi=72)
    for j in range(n):
        for i in range(n):
            ax = axes[n - 1 - j, i]
            jet = jets[j, i]
            ax.scatter(jet[:, 1], jet[:, 2], s=400 * jet[:, 0], c="#c81e1e", alpha=0.55)
            ax.set_xlim(extent[:2])
            ax.set_ylim(extent[2:])
            ax.set_xticks([])
            ax.set_yticks([])
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", default=str(ROOT / "data/pretrained/emdvae-wjets-centred"))
    ap.add_argument("--repeat", type=int, default=10)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    import otviz
    from otviz.viz.jets import default_extent, jet_mosaic, top_kl_dimensions, traverse

    run = otviz.load_run(args.run)
    steps = run.production_steps()
    from otviz.ui.traversal_view import default_step

    step = steps[default_step(steps)]
    model = run.step_model(step)
    dims = top_kl_dimensions(step["kl_per_dim"])
    extent = default_extent("centred" in Path(args.run).name)
    trav = traverse(model, dims)
    print(f"run {args.run}, β = {step['beta']:.3g}, directions {dims}, 9×9 grid, {args.repeat} repeats (median / min)")
    t_mpl = timed(lambda: matplotlib_grid(trav.jets, extent), max(2, args.repeat // 4))
    t_dec = timed(lambda: traverse(model, dims), args.repeat)
    t_lib = timed(lambda: jet_mosaic(traverse(model, dims).jets, extent=extent), args.repeat)

    # the served path: the page component in a live Bokeh document, one slider move per repeat
    import panel as pn
    from bokeh.document import Document

    from otviz.ui.state import ExplorerState
    from otviz.ui.traversal_view import TraversalView

    pn.extension()
    state = ExplorerState()
    state.param.vae_path.objects = {"benchmark": str(Path(args.run).resolve())}
    state.vae_path = str(Path(args.run).resolve())
    view = TraversalView(state)
    pn.panel(view).get_root(Document())
    flip = [0.1]

    def move():
        flip[0] = -flip[0]
        view.centre_x = round(view.centre_x + flip[0], 2)

    t_srv = timed(move, args.repeat)
    print(f"  anchor: matplotlib 81 sub-plots → PNG       {t_mpl[0]:8.1f} ms  (min {t_mpl[1]:.1f})")
    print(f"  otviz: decode 81 latent points             {t_dec[0]:8.2f} ms  (min {t_dec[1]:.2f})")
    print(f"  otviz: decode + mosaic image               {t_lib[0]:8.1f} ms  (min {t_lib[1]:.1f})  "
          f"→ {t_mpl[0] / t_lib[0]:.0f}× faster than the anchor")
    print(f"  otviz served: slider move → Bokeh update   {t_srv[0]:8.1f} ms  (min {t_srv[1]:.1f})  "
          f"→ {t_mpl[0] / t_srv[0]:.0f}× the anchor; target ≤ 100 ms: {'met' if t_srv[0] <= 100 else 'NOT met'}")


if __name__ == "__main__":
    main()
