"""Label frames: the annotation model, the gold standard, and label protocols.

A label frame table has ``time`` (seconds) then ``arousal`` and ``valence``
(the gold standard) on a fixed grid (10 Hz by default), optionally followed
by per-rater and reference columns.

The annotation model (:class:`AnnotationModel`) turns a latent trajectory
into what K simulated raters would report, with the flaws real annotators
show (RECOLA / SEWA style):

* each rater reacts late: the latent delayed by a rater-specific lag
  (default mean 3 s, spread 1 s);
* and smoothly: exponential smoothing with a rater-specific time constant
  (1-3 s);
* with slowly drifting noise (an Ornstein-Uhlenbeck process, time constant
  5 s, sd 0.18);
* and per-session bias and scale differences.

The gold standard is the mean of the raters. Beside it the model stores the
latent and the **ceiling** reference: the mean of the raters' noise-free
parts (delayed and smoothed latent, no bias, scale or noise), the best
prediction any model could make from the audio. ``ccc(gold, ceiling)`` is the
annotation ceiling; the mean pairwise CCC between raters is the inter-rater
agreement. Rater lags and smoothing are traits of the rater (fixed for a
corpus by ``AnnotationModel.seed``); bias, scale and noise are drawn per
session from the session's key, so labels can be re-derived from a stored
latent with another model (:func:`relabel`) without re-rendering audio.

Label protocols for corpora without emotion labels:

* ``seed``: one uniform random value per utterance held over its frames,
  the original project's labels, kept as a control. A correct pipeline
  scores CCC ~0 on it, never NaN.
* ``proxy``: the annotation model applied to an acoustic proxy of a latent,
  computed from the recording's own prosody (:data:`PROXY_CUES`). It is a
  proxy, not an emotion label, and is always labelled ``"proxy"``
  (``frame.attrs["protocol"]``).
"""

from .agreement import agreement, ceiling_ccc, rater_agreement
from .annotation import (
    TARGETS,
    AnnotationModel,
    LabelError,
    LabelProtocol,
    Rater,
    annotate,
    annotation_labels,
    frame_times,
    lag_labels,
    lag_model,
    rater_columns,
    relabel,
)
from .protocols import PROXY_CUES, chain_labels, proxy_labels, proxy_latent, seed_labels

__all__ = [
    "TARGETS",
    "LabelProtocol",
    "LabelError",
    "Rater",
    "AnnotationModel",
    "frame_times",
    "rater_columns",
    "annotate",
    "relabel",
    "lag_model",
    "lag_labels",
    "annotation_labels",
    "seed_labels",
    "chain_labels",
    "PROXY_CUES",
    "proxy_latent",
    "proxy_labels",
    "rater_agreement",
    "ceiling_ccc",
    "agreement",
]
