"""otviz latent explorer: ``python -m otviz.ui.serve`` (or ``python apps/latent_explorer.py``)
serves it on http://localhost:5006/latent_explorer, bound to localhost and refusing foreign Host
names; ``panel serve apps/latent_explorer.py --address 127.0.0.1`` works too.

Only assembles library components; all state and training live in ``otviz``.
"""
import panel as pn

from otviz.ui.disconnects import quiet_closed_sockets
from otviz.ui.explorer import LatentExplorer
from otviz.ui.hosts import session_location
from otviz.ui.serve import foreign_host, main, refusal

if __name__ == "__main__":
    main()
else:
    pn.extension("tabulator")
    quiet_closed_sockets()  # a tab closed mid-write is one log line, not a traceback
    session_location()  # parsed before Panel's own use, which fails on an IPv6 Host ([::1]:5006)
    host = foreign_host()
    page = refusal(host) if host else LatentExplorer().template()
    page.servable(title="otviz latent explorer")
