"""xtmr: the Streamlit app. The entry point draws the shell (page config, styling, top navigation) and the Home page,
then runs the page chosen in ``pages/``.

Run with ``make run`` (``streamlit run app.py``): it starts on the embedded mnist5k data and the
shipped lenet5 checkpoint, with no training and no network.
"""

from __future__ import annotations

import importlib

import streamlit as st

import ui
from xtmr_core.errors import XtmrError
from xtmr_core.vocabulary import WORD_BITS

st.set_page_config(
    page_title="xtmr: protect the weights that matter",
    page_icon=str(ui.FAVICON),
    layout="wide",
    initial_sidebar_state="collapsed",
)
ui.style()


def home() -> None:
    app_state = importlib.import_module("app_state")
    st.title("xtmr: protect the weights that matter")
    ui.link_notes(app_state.current_choice())
    st.markdown(
        "This app flips random bits in a trained network's weight memory and shows how much accuracy survives. "
        "It ranks every weight by Layer-wise Relevance Propagation (LRP) and stores only the most relevant few "
        "(about 1%) three times, read back by a bitwise majority vote (TMR), instead of paying full TMR's 200% "
        "memory. Drag the protection budget and the bit error rate in the **Fault lab** to watch that trade-off live."
    )
    choice, exp = app_state.require_experiment()
    fmt = ui.setting("fmt")
    st.subheader("Current model")
    bits = exp.n_weights * WORD_BITS[fmt]
    card = (
        (ui.short_model(choice.model), f"Weights: {choice.label}. Reference: {choice.model}."),
        (ui.short_dataset(choice.dataset), f"{exp.x_test.shape[0]:,} test images. Reference: {choice.dataset}."),
        (fmt, ui.FORMAT_HELP[fmt]),
        (
            ui.pct(app_state.clean_accuracies(choice)[fmt]),
            "Test accuracy of the model stored in this format, no faults.",
        ),
        (f"{exp.n_weights:,}", "Conv and linear weights: the memory that is faulted (biases are not, under 1%)."),
        (ui.memory(bits / 8), f"{exp.n_weights:,} weights × {WORD_BITS[fmt]} bits = {bits:,} bits."),
    )
    labels = ("Model", "Dataset", "Format", "Clean accuracy", "Weights", "Weight memory")
    # Two rows of three: six columns cut "mobilenetv2" and "2,225.9 KiB" at 1024 px and on a projector (1280×720
    # at 150%); values also scale with their column and a long name wraps (ui.CSS, st-key-card_).
    for row in (0, 3):
        for col, label, (value, help_text) in zip(st.columns(3), labels[row : row + 3], card[row : row + 3]):
            with col.container(key=f"card_{label.lower().replace(' ', '_')}"):
                st.metric(label, value, help=help_text)
    st.caption("Change the model, its number format or its weights on the Model page.")

    st.subheader("Where to go next")
    for page, text in (
        (MODEL, "choose dataset, architecture and number format; train or upload weights."),
        (RELEVANCE, "see which weights LRP finds relevant, layer by layer."),
        (FAULT_LAB, "drag the budget and the bit error rate; watch accuracy under faults."),
        (SWEEPS, "accuracy against BER and budget for several plans; the smallest budget per scorer."),
    ):
        c1, c2 = st.columns([1, 4])
        with c1:
            st.page_link(page)
        c2.write(text)


HOME, MODEL, RELEVANCE, FAULT_LAB, SWEEPS = ui.app_pages(home)

# Top navigation: the sidebar stays collapsed, so a projector keeps its whole width for the page.
page = st.navigation([HOME, MODEL, RELEVANCE, FAULT_LAB, SWEEPS], position="top")

# The engine (PyTorch) loads once per server, in seconds: say so at once instead of showing a blank page.
with st.spinner("Starting the engine (PyTorch) and the model…"):
    app_state = importlib.import_module("app_state")

ui.init_settings()  # a shared link's settings, once per session (pages do the same under AppTest)
_choice = app_state.current_choice()
# the settings as they are now (widget values arrive before the run) go into the address bar, with a mark when the
# model rests on weights no link carries (the receiving page names it)
ui.sync_url(app_state.weights_origin(_choice))
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
