"""The package's public API: every re-exported name resolves; the engine never imports Streamlit."""

import pathlib

import xtmr_core


def test_every_exported_name_resolves():
    for name in xtmr_core.__all__:
        assert getattr(xtmr_core, name) is not None


def test_engine_has_no_streamlit_import():
    for path in pathlib.Path(xtmr_core.__file__).parent.glob("*.py"):
        text = path.read_text()
        assert "import streamlit" not in text and "from streamlit" not in text, path.name
