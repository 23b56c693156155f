"""xtmr: how DNNs survive bit flips in their weights, and how to protect them cheaply.

The engine under the Streamlit app: LRP weight relevance, exact bit-flip faults in several number
formats, selective Triple Modular Redundancy and seeded fault campaigns. No Streamlit import here.

The public API is re-exported here and imported lazily (PEP 562), so ``python -m xtmr_core`` can reject
bad input before torch is loaded.
"""

from __future__ import annotations

import importlib

from xtmr_core.errors import XtmrError

_EXPORTS = {
    "Experiment": "experiment",
    "CampaignSpec": "spec",
    "CampaignResult": "campaign",
    "run_campaign": "campaign",
    "PointOptions": "campaign",
    "PointHooks": "campaign",
    "FaultModel": "faults",
    "FaultSet": "faults",
    "FaultInjector": "injection",
    "ProtectionPlan": "protection",
    "make_plan": "protection",
    "register_builder": "protection",
    "overhead": "protection",
    "PLANS": "vocabulary",
    "PlanInfo": "plan_registry",
    "plan_info": "plan_registry",
    "register_plan": "plan_registry",
    "FormatInfo": "format_registry",
    "format_info": "format_registry",
    "register_format": "format_registry",
    "FORMATS": "vocabulary",
    "encode": "formats",
    "majority": "voting",
    "score_weights": "scoring",
    "SCORERS": "vocabulary",
    "lrp_weight_relevance": "relevance",
    "input_relevance": "relevance",
    "load_dataset": "data",
    "DATASETS": "vocabulary",
    "build_model": "models",
    "MODELS": "vocabulary",
    "load_model": "checkpoints",
    "run_sweep": "sweep",
    "flip_one": "sensitivity",
    "bit_sensitivity": "sensitivity",
    "reliability_improvement": "stats",
    "mean_ci": "stats",
}

__all__ = ["XtmrError", *_EXPORTS]


def __getattr__(name: str) -> object:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"xtmr_core.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'xtmr_core' has no attribute {name!r}")
