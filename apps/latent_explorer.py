"""otviz latent explorer: ``panel serve apps/latent_explorer.py --address 127.0.0.1``.

Only assembles library components; all state and training live in ``otviz``.
"""
import panel as pn

from otviz.ui.explorer import LatentExplorer

pn.extension("tabulator", sizing_mode="fixed")
LatentExplorer().servable(title="otviz latent explorer")
