"""Model: choose dataset, architecture and number format; use the shipped weights, train some, or upload some."""

from __future__ import annotations

import streamlit as st

import app_session
import app_state
import ui
from app_views import model_parts as parts
from app_views import model_summary as summary
from app_views import model_weights as weights
from xtmr_core.vocabulary import DATASETS

ui.enter_page()
st.title("Model")
missing = app_state.datasets_missing()
parts.fall_back_from(missing)
ui.link_notes(app_session.current_choice())
st.caption("What gets faulted: a trained classifier, its weights stored in one number format.")
c1, c2, c3 = st.columns(3)
dataset_entry = parts.dataset_select(c1, [d for d in DATASETS if d not in missing])
model_entry = parts.model_select(c2)
ui.format_select(c3)
if model_entry == ui.TORCHVISION_ENTRY:
    parts.torchvision_select(c2, app_state.torchvision_architectures())
if dataset_entry == ui.FOLDER_ENTRY:
    with st.container(border=True, key="folder_inputs"):
        parts.folder_inputs()
        parts.folder_summary(app_session.current_folder())
parts.missing_datasets(missing)
source = parts.weights_source()

# What the choices above name: a builtin name or torchvision:NAME, a builtin dataset or imagefolder:PATH.
model, folder, dataset = ui.model_ref(), app_session.current_folder(), app_session.current_dataset()
data_label = "an image folder" if folder is not None else dataset
until = parts.until_text(model, data_label, app_session.has_shipped_weights(model, dataset))
if source == "train":
    weights.train_section(model, dataset, folder, data_label, until)
elif source == "upload":
    weights.upload_section(model, dataset, folder, data_label, until)
if source != "shipped" and app_session.current_choice().ckpt_id == "missing":
    st.stop()  # nothing trained or uploaded yet and no shipped weights: the note above says what to do

choice, exp = app_session.require_experiment(on_model_page=True)
custom = app_session.custom_checkpoint()
summary.model_heading(choice, custom)
fmt = ui.setting("fmt")
accuracy = app_state.clean_accuracies(choice)
summary.metrics(fmt, accuracy[fmt], exp.n_weights, exp.x_test.shape[0])
layers = app_state.layer_rows(choice)
summary.layer_chart(layers)
summary.layer_table(layers)
summary.format_table(accuracy, exp.n_weights)
if choice.source == "custom" and custom and custom.get("history"):
    summary.history_chart(custom["history"])
summary.checkpoint_details(exp.meta)
