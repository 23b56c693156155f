"""xtmr: the Streamlit app. The entry point routes to the pages in ``pages/`` and draws the Home page.

Run with ``make run`` (``streamlit run app.py``): it starts on the embedded mnist5k data and the
shipped lenet5 checkpoint, with no training and no network.
"""

from __future__ import annotations

import streamlit as st

import app_state
from xtmr_core.errors import XtmrError
from xtmr_core.layers_view import weight_memory_bytes
from xtmr_core.vocabulary import WORD_BITS

st.set_page_config(page_title="xtmr: protect the weights that matter", page_icon=":material/shield:", layout="wide")


def home() -> None:
    st.title("xtmr: protect the weights that matter")
    st.markdown(
        "This app flips random bits in a trained network's weight memory and shows how much accuracy survives. "
        "It ranks every weight by Layer-wise Relevance Propagation (LRP) and stores only the most relevant few "
        "(about 1%) three times, read back by a bitwise majority vote (TMR), instead of paying full TMR's 200% "
        "memory. Drag the protection budget and the bit error rate in the **Fault lab** to watch that trade-off live."
    )
    choice, exp = app_state.require_experiment()
    fmt = app_state.setting("fmt")
    st.subheader("Current model")
    cols = st.columns(6)
    cols[0].metric("Model", choice.model, help=f"Weights: {choice.label}.")
    cols[1].metric("Dataset", choice.dataset, help=f"{exp.x_test.shape[0]} test images.")
    cols[2].metric("Format", fmt, help=app_state.FORMAT_HELP[fmt])
    with cols[3].container(key="home_clean_accuracy"):
        st.metric(
            "Clean accuracy",
            app_state.pct(exp.clean_accuracy(fmt)),
            help="Test accuracy of the model stored in this format, without faults.",
        )
    cols[4].metric(
        "Weights",
        f"{exp.n_weights:,}",
        help="Conv and linear weights: the memory that is faulted "
        "(biases are not, they are under 1% of the parameters).",
    )
    mem = weight_memory_bytes(exp.n_weights, fmt)
    cols[5].metric(
        "Weight memory",
        f"{mem / 1024:,.1f} KiB",
        help=f"{exp.n_weights:,} weights × {WORD_BITS[fmt]} bits = {exp.n_weights * WORD_BITS[fmt]:,} bits.",
    )
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


HOME = st.Page(home, title="Home", icon=":material/home:", default=True)
MODEL = st.Page("pages/model.py", title="Model", icon=":material/memory:", url_path="model")
RELEVANCE = st.Page(
    "pages/relevance.py", title="Relevance", icon=":material/local_fire_department:", url_path="relevance"
)
FAULT_LAB = st.Page("pages/fault_lab.py", title="Fault lab", icon=":material/bolt:", url_path="fault_lab")
SWEEPS = st.Page("pages/sweeps.py", title="Sweeps", icon=":material/show_chart:", url_path="sweeps")

page = st.navigation([HOME, MODEL, RELEVANCE, FAULT_LAB, SWEEPS])

with st.sidebar:
    _choice = app_state.current_choice()
    st.caption(
        f"**{_choice.model}** on **{_choice.dataset}**, stored as **{app_state.setting('fmt')}**; "
        f"weights: {_choice.label}."
    )

try:
    page.run()
except XtmrError as e:  # e.g. a weak model with too few correct images for relevance: one line, no traceback
    st.error(str(e))
    st.info(
        "Change the model or its weights on the **Model** page (a model trained longer classifies more images "
        "correctly)."
    )
