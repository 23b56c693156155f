"""Sweeps: accuracy against BER and against budget for several plans; the smallest budget per scorer."""

from __future__ import annotations

import streamlit as st

import app_session
import ui
from app_views import sweeps_ber, sweeps_budget
from app_views import sweeps_parts as parts

ui.enter_page()
st.title("Sweeps", help=parts.INTRO)
ui.link_notes(app_session.current_choice())
choice, _ = app_session.require_experiment()
c1, c2 = st.columns(2)
fmt = ui.format_select(c1)
setting = parts.Setting(choice, fmt, int(parts.trials_select(c2)), str(ui.setting("rule")))
tab_ber, tab_budget = st.tabs(["Accuracy vs BER", "Accuracy vs budget, and the budget each scorer needs"])
with tab_ber:
    sweeps_ber.ber_tab(setting)
with tab_budget:
    sweeps_budget.budget_tab(setting)
