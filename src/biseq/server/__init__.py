"""``biseq serve``: G2P over HTTP (FastAPI on uvicorn) with dynamic micro-batching and a web page.

This subpackage stands above the toolkit core and :mod:`biseq.g2p` (it imports them; nothing
there imports it): the settings (:mod:`.settings`), the micro-batcher (:mod:`.batcher`), the
application and its routes (:mod:`.app`) and the page (``page.html``). It needs the ``serve``
extra: ``pip install 'biseq[serve]'``.
"""
