"""Home's parts: the current model's card and the list of pages to go to next."""

from __future__ import annotations

from collections.abc import Sequence

import streamlit as st

import ui
from app_session import ModelChoice
from xtmr_core.vocabulary import WORD_BITS

#: What the app does, in the words Home opens with.
INTRO = (
    "This app flips random bits in a trained network's weight memory and shows how much accuracy survives. "
    "It ranks every weight by Layer-wise Relevance Propagation (LRP) and stores only the most relevant few "
    "(about 1%) three times, read back by a bitwise majority vote (TMR), instead of paying full TMR's 200% "
    "memory. Drag the protection budget and the bit error rate in the **Fault lab** to watch that trade-off live."
)
LABELS = ("Model", "Dataset", "Format", "Clean accuracy", "Weights", "Weight memory")


def model_card(choice: ModelChoice, n_weights: int, n_test: int, fmt: str, accuracy: float) -> None:
    """The current model in two rows of three metrics: model, dataset, format, clean accuracy (``accuracy``, in
    ``fmt``), weights and their memory."""
    st.subheader("Current model")
    bits = n_weights * WORD_BITS[fmt]
    card = (
        (ui.short_model(choice.model), f"Weights: {choice.label}. Reference: {choice.model}."),
        (ui.short_dataset(choice.dataset), f"{n_test:,} test images. Reference: {choice.dataset}."),
        (fmt, ui.FORMAT_HELP[fmt]),
        (ui.pct(accuracy), "Test accuracy of the model stored in this format, no faults."),
        (f"{n_weights:,}", "Conv and linear weights: the memory that is faulted (biases are not, under 1%)."),
        (ui.memory(bits / 8), f"{n_weights:,} weights × {WORD_BITS[fmt]} bits = {bits:,} bits."),
    )
    # Two rows of three: six columns cut "mobilenetv2" and "2,225.9 KiB" at 1024 px and on a projector (1280×720
    # at 150%); values also scale with their column and a long name wraps (ui.CSS, st-key-card_).
    for row in (0, 3):
        for col, label, (value, help_text) in zip(st.columns(3), LABELS[row : row + 3], card[row : row + 3]):
            with col.container(key=f"card_{label.lower().replace(' ', '_')}"):
                st.metric(label, value, help=help_text)
    st.caption("Change the model, its number format or its weights on the Model page.")


def next_steps(pages: Sequence[ui.PageFile]) -> None:
    """A link to each page with a line on what it is for."""
    st.subheader("Where to go next")
    for page in pages:
        c1, c2 = st.columns([1, 4])
        with c1:
            st.page_link(f"pages/{page.stem}.py", label=page.title, icon=page.icon)
        c2.write(page.blurb)
