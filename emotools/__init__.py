"""emotools: continuous speech emotion recognition, from audio to results.

Sub-modules are imported on use (``from emotools import metrics``) so that
importing the package stays cheap; see the README's architecture section.
"""

__version__ = "0.1.0"
