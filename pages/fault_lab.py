"""Fault lab: drag the protection budget and the bit error rate, watch accuracy under faults live.

Live means: the first estimate appears after the first two trials of the plan and its unprotected baseline,
then is refined as trials complete, with the trial count on screen; numbers of an older setting are dimmed
while a run is in flight; a new slider value reruns the live part (a fragment, not the page), which cancels the
old run at its next trial. Below it, the teaching corner flips one bit of one weight.
"""

from __future__ import annotations

import streamlit as st

import app_session
import ui
from app_views import fault_lab_parts, teaching_corner

ui.enter_page()
st.title("Fault lab")
ui.link_notes(app_session.current_choice())
choice, exp = app_session.require_experiment()
settings = fault_lab_parts.page_settings()
fault_lab_parts.live_lab(choice, exp.n_weights, exp.splits.num_classes, settings)
st.divider()
teaching_corner.teaching_corner(choice, exp.layout, *settings)
