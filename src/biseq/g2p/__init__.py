"""English grapheme-to-phoneme conversion, ready to use: the bundled system, dictionary + model.

This subpackage stands above the toolkit core (it imports ``biseq.*``; nothing in the core
imports it): the system directory (:mod:`.system`), the pronouncing dictionary
(:mod:`.dictionary`), English text normalisation (:mod:`.text`), lexicon formats for aligners
and ASR (:mod:`.lexicon`) and the Python API (:mod:`.api`). Importing it loads neither Keras nor JAX.
"""

from biseq.g2p.api import G2P, G2PError, Pronunciation, WordResult, load

__all__ = ["G2P", "G2PError", "Pronunciation", "WordResult", "load"]
