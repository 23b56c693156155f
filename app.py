"""xtmr: the Streamlit app. The entry point draws the shell (page config, styling, top navigation, the sidebar's
model line), then runs the page chosen: Home (``home`` below, its parts in ``app_views.home_parts``) or one of
``pages/`` (listed in ``ui.PAGE_FILES``).

Run with ``make run`` (``streamlit run app.py``): it starts on the embedded mnist5k data and the
shipped lenet5 checkpoint, with no training and no network.
"""

from __future__ import annotations

import importlib

import streamlit as st

import ui
from xtmr_core.errors import XtmrError

st.set_page_config(
    page_title="xtmr: protect the weights that matter",
    page_icon=str(ui.FAVICON),
    layout="wide",
    initial_sidebar_state="collapsed",
)
ui.style()


def home() -> None:
    """Home: what the app does, the current model's card, and where to go next."""
    app_session = importlib.import_module("app_session")
    app_state = importlib.import_module("app_state")
    parts = importlib.import_module("app_views.home_parts")
    st.title("xtmr: protect the weights that matter")
    ui.link_notes(app_session.current_choice())
    st.markdown(parts.INTRO)
    choice, exp = app_session.require_experiment()
    fmt = ui.setting("fmt")
    parts.model_card(choice, exp.n_weights, exp.x_test.shape[0], fmt, app_state.clean_accuracies(choice)[fmt])
    parts.next_steps(ui.PAGE_FILES)


# Top navigation: the sidebar stays collapsed, so a projector keeps its whole width for the page.
page = st.navigation(ui.app_pages(home), position="top")

# The engine (PyTorch) loads once per server, in seconds: say so at once instead of showing a blank page.
with st.spinner("Starting the engine (PyTorch) and the model…"):
    app_session = importlib.import_module("app_session")  # imports app_state, which loads the engine

ui.init_settings()  # a shared link's settings, once per session (pages do the same under AppTest)
_choice = app_session.current_choice()
# the settings as they are now (widget values arrive before the run) go into the address bar, with a mark when the
# model rests on weights no link carries (the receiving page names it)
ui.sync_url(app_session.weights_origin(_choice))
with st.sidebar:
    st.caption(
        f"**{_choice.model}** on **{_choice.dataset}**, stored as **{ui.setting('fmt')}**; weights: {_choice.label}."
    )

try:
    with ui.shell_run():
        page.run()
except XtmrError as e:  # e.g. a weak model with too few correct images for relevance: one line, no traceback
    st.error(str(e))
    st.info(
        "Change the model or its weights on the **Model** page (a model trained longer classifies more images "
        "correctly)."
    )
