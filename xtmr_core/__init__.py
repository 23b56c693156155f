"""xtmr: how DNNs survive bit flips in their weights, and how to protect them cheaply.

The engine under the Streamlit app: LRP weight relevance, exact bit-flip faults in several number
formats, selective Triple Modular Redundancy and seeded fault campaigns. No Streamlit import here.
"""
from xtmr_core.errors import XtmrError

__all__ = ["XtmrError"]
