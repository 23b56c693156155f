"""Relevance: which weights LRP finds relevant, layer by layer, for inputs (beside Captum's gradient methods),
and against other scorers. A script of calls: the parts are in ``app_views/relevance_parts.py``."""

from __future__ import annotations

import streamlit as st

import app_session
import app_state
import ui
from app_views import relevance_parts as parts
from xtmr_core.errors import XtmrError

ui.enter_page()
st.title("Relevance")
ui.link_notes(app_session.current_choice())
choice, exp = app_session.require_experiment()
caption = st.empty()  # says how many reference images once LRP has run on them
rule = parts.rule_select()
shares = parts.lrp_shares(choice, rule, caption)
lrp_ok = shares is not None
if shares is not None:
    parts.layer_shares(shares)
    layer, show = parts.layer_controls(shares, choice.key)
    shape = exp.layout.shapes[list(shares["layer"]).index(layer)]
    parts.layer_map(app_state.layer_heatmap(choice, rule, layer, show), show, layer, shape)
    parts.relevance_scatter(app_state.relevance_points(choice, rule), list(shares["layer"]))

picked, target = parts.image_controls(int(exp.x_test.shape[0]), choice.dataset)
if not picked:
    st.info("Pick at least one test image to see its relevance map.")
else:
    images = app_state.display_images(choice, tuple(picked))
    classes = app_state.image_classes(choice, tuple(picked))
    heat = parts.lrp_heatmaps(choice, tuple(picked), rule, target) if lrp_ok else None
    parts.input_maps(images, heat, picked, classes)
    index, fraction = parts.attribution_controls(picked)
    try:
        methods = parts.captum_methods(lrp_ok and heat is not None)
        comparison = app_state.attribution_comparison(choice, index, rule, target, methods, fraction)
        start = classes[picked.index(index)][0 if target == "true" else 1]
        parts.attribution_comparison(images[picked.index(index)], comparison, index, start)
    except XtmrError as e:
        st.error(str(e))

a, b = parts.scorer_controls(lrp_ok)
if a == b:
    st.info("Pick two different scorers to compare their top-k sets.")
else:
    try:
        parts.scorer_overlap(app_state.overlap(choice, a, b, parts.OVERLAP_FRACTIONS, rule), a, b)
    except XtmrError as e:  # e.g. gradient scores of a model that classifies too few reference images
        st.error(str(e))
